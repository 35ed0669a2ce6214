#!/usr/bin/env python3
"""How far llamaroute's fast token estimate is from the exact Llama 3 tokenizer.

    pip install -e '.[bench]'
    python bench/token_accuracy.py               # markdown table over bench/data/eval/
    python bench/token_accuracy.py --calibrate   # CHARS_PER_TOKEN from bench/data/calibration/
    python bench/token_accuracy.py --tokenizer tokenizer.json   # also check the exact path

The exact counts come from quicktok-v1's bundled ``llama3`` encoding, whose ids match Meta's
Llama 3 tokenizer (the one Llama 3.2 uses) byte for byte. Each paragraph of a sample file is one
prompt. The table also checks that llamaroute's chat-template overhead equals what the exact
tokenizer counts for whole rendered conversations.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # measure this checkout, not an installed copy

from llamaroute.money import (  # noqa: E402
    CHARS_PER_TOKEN,
    SYMBOL_TOKENS_X100,
    SYMBOLS,
    chat_template_tokens,
    detect_language,
    estimate_text_tokens,
    text_counter,
)

DATA = Path(__file__).resolve().parent / "data"
LANGUAGES = ["en", "de", "fr", "it", "pt", "es", "hi", "th"]
NAMES = {
    "en": "English", "de": "German", "fr": "French", "it": "Italian",
    "pt": "Portuguese", "es": "Spanish", "hi": "Hindi", "th": "Thai",
}  # fmt: skip
LATIN = ["de", "fr", "it", "pt", "es"]


def exact_encoder():  # type: ignore[no-untyped-def]
    try:
        import quicktok
    except ImportError:
        sys.exit("token_accuracy: needs quicktok-v1: pip install -e '.[bench]'")
    return quicktok.get_encoding("llama3")


def paragraphs(split: str, lang: str) -> list[str]:
    text = (DATA / split / f"{lang}.txt").read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def calibrate(encoder) -> None:  # type: ignore[no-untyped-def]
    # Digits and punctuation are counted at SYMBOL_TOKENS_X100 each; the rate is fitted on the
    # remaining characters (the tokens left once the symbols' share is taken out).
    rates = {}
    for lang in LANGUAGES:
        texts = paragraphs("calibration", lang)
        chars = sum(map(len, texts))
        symbols = sum(len(SYMBOLS.findall(t)) for t in texts)
        tokens = sum(len(encoder.encode(t)) for t in texts)
        rest = tokens - symbols * SYMBOL_TOKENS_X100 / 100
        rates[lang] = round((chars - symbols) * 100 / rest)
        print(f"{lang}: {chars} chars ({symbols} digits or punctuation) / {tokens} tokens "
              f"= {chars / tokens:.3f} chars per token overall")  # fmt: skip
    rates["latin"] = round(statistics.mean(rates[lang] for lang in LATIN))
    print("\nCHARS_PER_TOKEN (x100) for _tokens.py:")
    print("    " + ", ".join(f'"{k}": {v}' for k, v in rates.items()))


def table(encoder) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    rows = [
        "| language | prompts | chars | exact tokens | estimated tokens | error | "
        "mean abs. error per prompt | worst prompt |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    misdetected = 0
    for lang in LANGUAGES:
        texts = paragraphs("eval", lang)
        exact = [len(encoder.encode(t)) for t in texts]
        guess = [estimate_text_tokens(t) for t in texts]
        misdetected += sum(detect_language(t) != lang for t in texts)
        errors = [(g - e) / e * 100 for g, e in zip(guess, exact, strict=True)]
        total = (sum(guess) - sum(exact)) / sum(exact) * 100
        worst = max(errors, key=abs)
        rows.append(
            f"| {NAMES[lang]} ({lang}) | {len(texts)} | {sum(map(len, texts)):,} | "
            f"{sum(exact):,} | {sum(guess):,} | {total:+.1f}% | "
            f"{statistics.mean(map(abs, errors)):.1f}% | {worst:+.1f}% |"
        )
    return "\n".join(rows), misdetected


def template_check(encoder) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Render whole conversations with the Llama 3 template and compare the exact count with
    llamaroute's overhead + exact content counts. Returns (conversations, mismatches)."""
    checked = mismatches = 0
    for lang in LANGUAGES:
        texts = paragraphs("eval", lang)
        conversations = [
            [("user", texts[0])],
            [("system", "You are a concise assistant."), ("user", texts[1])],
            [("user", texts[2]), ("assistant", texts[3]), ("user", texts[4])],
        ]
        for turns in conversations:
            rendered = (
                "<|begin_of_text|>"
                + "".join(
                    f"<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>"
                    for role, text in turns
                )
                + "<|start_header_id|>assistant<|end_header_id|>\n\n"
            )
            exact = len(encoder.encode(rendered, allowed_special="all"))
            ours = chat_template_tokens(len(turns)) + sum(len(encoder.encode(t)) for _, t in turns)
            checked += 1
            mismatches += exact != ours
    return checked, mismatches


def tokenizer_check(encoder, path: str) -> int:  # type: ignore[no-untyped-def]
    """Prompts where llamaroute's exact path (tokenizers + tokenizer.json) disagrees."""
    count = text_counter(path)
    return sum(
        count(t) != len(encoder.encode(t))
        for split in ("calibration", "eval")
        for lang in LANGUAGES
        for t in paragraphs(split, lang)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", action="store_true", help="print fitted constants")
    parser.add_argument("--tokenizer", help="also check exact counting with this tokenizer.json")
    args = parser.parse_args(argv)
    encoder = exact_encoder()
    if args.calibrate:
        calibrate(encoder)
        return 0
    text, misdetected = table(encoder)
    print(text)
    checked, mismatches = template_check(encoder)
    print(f"\nLanguage guessed wrong for {misdetected} eval prompts.")
    print(f"Chat template overhead: {checked} conversations, {mismatches} mismatches.")
    print(f"Constants in use (chars per token x100): {CHARS_PER_TOKEN}")
    if args.tokenizer:
        print(f"Exact path via {args.tokenizer}: {tokenizer_check(encoder, args.tokenizer)} "
              "prompts differ from quicktok.")  # fmt: skip
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
