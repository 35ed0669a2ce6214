#!/usr/bin/env python3
"""How far llamaroute's fast token estimate is from the exact Llama 3 tokenizer.

    pip install -e '.[tokens]'
    python bench/token_accuracy.py               # per-kind table over tests/data/tokens/
    python bench/token_accuracy.py --calibrate   # refit src/llamaroute/money/_token_rates.py
    python bench/token_accuracy.py --template    # the chat-template overheads, counted exactly

The exact counts come from quicktok-v1's bundled ``llama3`` encoding, whose ids match Meta's
Llama 3 tokenizer (the one Llama 3.2 uses) byte for byte. The corpus (``tests/_token_corpus.py``)
has prompts of many kinds: European languages, Cyrillic, Greek, Arabic, Hebrew, Devanagari,
Thai, Chinese, Japanese, Korean, Python and JavaScript code, JSON, numbers, emoji, markdown
with URLs, and mixed text. The table gives, per kind, the median and 95th-percentile absolute
error of the estimate and how many exact counts fall inside the estimate's ``[low, high]``.

--calibrate fits the rates on the even-numbered prompts of each kind and prints the table for
the odd-numbered ones (held out) before writing the rates fitted on all prompts.
"""

from __future__ import annotations

import argparse
import json
import math
import pprint
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # measure this checkout, not an installed copy
sys.path.insert(0, str(ROOT))

from tests._token_corpus import kinds, prompts  # noqa: E402

from llamaroute.money import (  # noqa: E402
    PIECES,
    detect_language,
    estimate_text_tokens,
    text_token_band,
    token_class_costs,
    token_pieces,
)

KANA = re.compile(r"[\u3040-\u30ff]")  # as in _token_heuristic: Han in Japanese text
RATES = ROOT / "src" / "llamaroute" / "money" / "_token_rates.py"
TABLE_LENGTH = {"hebrew": 8, "devanagari": 4}  # default 12 letters
PER_CHARACTER = {
    "han",
    "kanji",
    "kana",
    "hangul",
}  # one rate a character (whole in the vocabulary or not)
# Where the vocabulary's whole characters are looked up: symbols, CJK, Hangul, full-width.
SINGLE_RANGES = [(0x1100, 0x1200), (0x2000, 0x2C00), (0x3000, 0x3190), (0x3400, 0xA000),
                 (0xAC00, 0xD7A4), (0xF900, 0xFB00), (0xFF00, 0xFFF0)]  # fmt: skip
SHRINK = 4  # pieces of prior (the linear fit) per length bucket: smooths sparse buckets


def encoder():  # type: ignore[no-untyped-def]
    try:
        import quicktok
    except ImportError:
        sys.exit("token_accuracy: needs quicktok-v1: pip install -e '.[tokens]'")
    return quicktok.get_encoding("llama3")


def corpus(split: str = "all") -> dict[str, list[str]]:
    """Prompts per kind; ``even``/``odd`` keep every other prompt."""
    found = {}
    for kind in kinds():
        texts = prompts(kind)
        if split != "all":
            texts = texts[0 if split == "even" else 1 :: 2]
        found[kind] = texts
    return found


# --- fitting ------------------------------------------------------------------------------


def fit(texts: list[str], enc) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    """Word tables and symbol weights (hundredths of a token) fitted on ``texts``."""
    import numpy as np

    words: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    linear_rows: list[dict[str, int]] = []
    linear_tokens: list[int] = []
    prefixed: list[tuple[str, int, str, int]] = []
    symbol_rows: list[dict[str, int]] = []
    symbol_tokens: list[int] = []
    for text in texts:
        lang = detect_language(text)
        japanese = bool(KANA.search(text))
        for piece in PIECES.findall(text):
            described = token_pieces(piece, lang, japanese)
            kind, key, size = described[0]
            if kind == "word" and key.split("-")[0] in PER_CHARACTER:
                row = defaultdict(int)
                for what, sub, n in described:
                    row[sub if what == "word" else "^prefix"] += n
                linear_rows.append(row)
                linear_tokens.append(enc.count(piece))
            elif kind == "word":
                if len(described) > 1:  # not after a space, or capitalised: fitted below
                    prefixed.append((key, size, described[1][1], enc.count(piece)))
                else:
                    words[key][size].append(enc.count(piece))
            elif kind == "symbol":
                row: dict[str, int] = defaultdict(int)
                for _, sym, _ in described:
                    row[sym] += 1
                symbol_rows.append(row)
                symbol_tokens.append(enc.count(piece))
    tables = {}
    pooled = defaultdict(list)
    for key, buckets in words.items():
        for size, counts in buckets.items():
            pooled[key].extend((size, c) for c in counts)
    # Latin-script words of no detected language: all non-English languages pooled.
    for key in ("de", "fr", "it", "pt", "es"):
        pooled["latin"].extend(pooled.get(key, []))
    # Accented words of a language with too few of them: all languages' pooled.
    for key in list(pooled):
        if key.endswith("+accented"):
            pooled["accented"].extend(pooled[key])
    if "other" not in pooled:
        pooled["other"] = []
    for key, points in sorted(pooled.items()):
        if key.endswith("+accented") and len(points) < 30:
            continue  # too few: the pooled "accented" table serves
        tables[key] = _table(points, TABLE_LENGTH.get(key, 12))
    linear = sorted({k for row in linear_rows for k in row} - {"^prefix"})
    matrix = np.array([[row.get(k, 0) for k in linear] for row in linear_rows], float)
    rates, *_ = np.linalg.lstsq(matrix, np.array(linear_tokens, float), rcond=None)
    for key, rate in zip(linear, rates, strict=True):
        tables[key] = ((max(round(rate * 100), 25),), max(round(rate * 100), 25))
    kinds_ = sorted({k for row in symbol_rows for k in row})
    matrix = np.array([[row.get(k, 0) for k in kinds_] for row in symbol_rows], float)
    weights, *_ = np.linalg.lstsq(matrix, np.array(symbol_tokens, float), rcond=None)
    symbols = {k: max(round(w * 100), 0) for k, w in zip(kinds_, weights, strict=True)}
    # Extra per word position and case: the mean residual per table and variant, shrunk
    # toward the variant's mean over all tables ("*:variant").
    residuals: dict[str, list[int]] = defaultdict(list)
    for key, size, adjust, count in prefixed:
        extra = count * 100 - _lookup(tables, key, size)
        residuals[adjust].append(extra)
        residuals["*:" + adjust.partition(":")[2]].append(extra)
    adjust_table = {k: round(statistics.mean(v)) for k, v in residuals.items() if k[0] == "*"}
    for name, values in residuals.items():
        if name[0] != "*":
            prior = adjust_table["*:" + name.partition(":")[2]]
            adjust_table[name] = round((sum(values) + SHRINK * prior) / (len(values) + SHRINK))
    symbols["adjust"] = adjust_table  # type: ignore[assignment]
    # Kinds never seen in fitting: ^kind as its plain kind and vice versa, else one token.
    for kind in ("ascii", "two-byte", "bmp-1", "mark", "symbol", "astral", "emoji-2"):
        symbols.setdefault(kind, symbols.get("^" + kind, 100))
        symbols.setdefault("^" + kind, max(symbols[kind], 100))
    return tables, dict(sorted(symbols.items(), key=lambda kv: kv[0]))


def _table(points: list[tuple[int, int]], length: int) -> tuple[tuple[int, ...], int]:
    """Tokens (x100) by letters 1..length, smoothed toward a line, never decreasing, and the
    slope past ``length``. With no points: 1 token a letter (byte fallback, cautious)."""
    if len(points) < 10:
        return tuple(100 * n for n in range(1, 5)), 100
    n = len(points)
    mean_x = sum(p[0] for p in points) / n
    mean_y = sum(p[1] for p in points) / n
    var = sum((p[0] - mean_x) ** 2 for p in points) or 1.0
    slope = sum((p[0] - mean_x) * (p[1] - mean_y) for p in points) / var
    line = [max(mean_y + slope * (size - mean_x), 1.0) for size in range(1, length + 1)]
    values, floor = [], 100
    for size in range(1, length + 1):
        counts = [c for s, c in points if s == size]
        value = (sum(counts) + SHRINK * line[size - 1]) / (len(counts) + SHRINK)
        floor = max(floor, round(value * 100))
        values.append(floor)
    beyond = [(s, c) for s, c in points if s > length]
    if len(beyond) >= 5:
        extra = sum(c * 100 - values[-1] for _, c in beyond) / sum(s - length for s, _ in beyond)
    else:
        extra = slope * 100
    return tuple(values), max(round(extra), 25)


def _lookup(tables: dict, key: str, size: int) -> int:  # type: ignore[type-arg]
    values, slope = tables.get(key) or tables["other"]
    return values[size - 1] if size <= len(values) else values[-1] + (size - len(values)) * slope


def rescale(tables: dict, symbols: dict, texts: list[str], enc) -> tuple[dict, dict]:  # type: ignore[type-arg, no-untyped-def]
    """Scale each class's rates so that, summed over ``texts``, its estimate equals the exact
    count of its pieces: the per-piece fit weighs long pieces most, prompts weigh all alike."""
    exact: dict[str, int] = defaultdict(int)
    estimated: dict[str, int] = defaultdict(int)
    for text in texts:
        lang = detect_language(text)
        japanese = bool(KANA.search(text))
        for piece in PIECES.findall(text):
            _, classes = token_class_costs(piece, lang, japanese)
            if classes:
                owner = max(classes, key=lambda band: (band != "symbol", classes[band]))
                exact[owner] += enc.count(piece) * 100
                estimated[owner] += sum(classes.values())
    scaled = {}
    for key, (values, slope) in tables.items():
        ratio = exact[key] / estimated[key] if estimated.get(key, 0) >= 2000 else 1.0
        scaled[key] = (tuple(max(round(v * ratio), 25) for v in values),
                       max(round(slope * ratio), 25))  # fmt: skip
    ratio = exact["symbol"] / estimated["symbol"] if estimated.get("symbol") else 1.0
    rescaled = {k: round(v * ratio) for k, v in symbols.items() if k != "adjust"}
    adjust = {}
    for name, value in symbols.get("adjust", {}).items():
        key = name.partition(":")[0]
        share = exact[key] / estimated[key] if estimated.get(key, 0) >= 2000 else 1.0
        adjust[name] = round(value * share)
    return scaled, {**rescaled, "adjust": adjust}


def band_variances(texts_by_kind: dict[str, list[str]], enc) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Per band class: the variance of a piece's exact count around its estimate, per
    estimated token, x1000."""
    squares: dict[str, float] = defaultdict(float)
    tokens: dict[str, float] = defaultdict(float)
    for texts in texts_by_kind.values():
        for text in texts:
            lang = detect_language(text)
            japanese = bool(KANA.search(text))
            for piece in PIECES.findall(text):
                _, classes = token_class_costs(piece, lang, japanese)
                if classes:  # a word with a mark before it belongs to the word's class
                    owner = max(classes, key=lambda band: (band != "symbol", classes[band]))
                    cost = sum(classes.values()) / 100
                    squares[owner] += (enc.count(piece) - cost) ** 2
                    tokens[owner] += cost
    found = {k: math.ceil(squares[k] / tokens[k] * 1000) for k in tokens if tokens[k] >= 20}
    found["other"] = max(found.values())  # unseen scripts: the widest seen
    return dict(sorted(found.items()))


def choose_spread(
    tables: dict,
    symbols: dict,
    variances: dict,
    texts_by_kind: dict,
    enc,
    chars: tuple[str, str],  # type: ignore[type-arg]
) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """The narrowest (share per 1,000, z x100, slack) that keeps 99% of ``texts_by_kind``
    inside the band and at least 90% of each kind. Run on prompts the rates were not fitted
    on, so that it measures what unseen text needs."""
    exact = {kind: [enc.count(t) for t in texts] for kind, texts in texts_by_kind.items()}
    total = sum(map(len, texts_by_kind.values()))
    best: tuple[float, tuple[int, int, int]] | None = None
    for share in (20, 30, 40, 50, 60, 80):
        for z in (150, 200, 250, 300):
            spread = (share, z, 1)
            write_rates(tables, symbols, variances, spread, chars)
            _reload()
            inside, width = {}, 0.0
            for kind, texts in texts_by_kind.items():
                bands = [text_token_band(t) for t in texts]
                pairs = list(zip(bands, exact[kind], strict=True))
                inside[kind] = sum(lo <= e <= hi for (lo, _, hi), e in pairs)
                width += sum((hi - lo) / e for (lo, _, hi), e in pairs)
            enough = sum(inside.values()) >= 0.99 * total and all(
                inside[kind] >= 0.9 * len(texts) for kind, texts in texts_by_kind.items()
            )
            if enough and (best is None or width < best[0]):
                best = (width, spread)
    return best[1] if best else (80, 300, 2)


VOCAB = ROOT / "src" / "llamaroute" / "_data" / "token_vocab.json"
VOCAB_ABOUT = (
    "Slices of the Llama 3 vocabulary (quicktok-v1's llama3 encoding, the ids of Meta's "
    "tokenizer.model) that the fast token estimate looks up; written by `python "
    "bench/token_accuracy.py --calibrate`. Do not edit by hand. single_token_chars: symbols, "
    "Han, kana and Hangul characters that are one token each. two_token_emoji: emoji that are "
    "two tokens (the others are three). cjk_tokens: tokens of 2+ Han, kana or Hangul "
    "characters, space-separated (a leading space written as U+2581). word_vocab: per "
    "alphabetic script, its tokens of 2+ letters, written as cjk_tokens."
)
MATCHED = ("cyrillic", "greek", "arabic")  # Hebrew: 20 tokens, its letters go one by one


def write_vocab(enc) -> None:  # type: ignore[no-untyped-def]
    """The slices of the Llama 3 vocabulary the estimate looks things up in."""
    from llamaroute.money import token_script

    single = "".join(
        chr(p) for a, b in SINGLE_RANGES for p in range(a, b)
        if chr(p).isprintable() and enc.count(chr(p)) == 1
    )  # fmt: skip
    emoji = "".join(chr(p) for p in range(0x1F000, 0x1FB00) if enc.count(chr(p)) <= 2)
    scripts: dict[str, list[str]] = defaultdict(list)
    for rank in range(enc.n_vocab):
        try:
            text = enc.decode_single_token_bytes(rank).decode("utf-8")
        except (UnicodeDecodeError, KeyError, ValueError):
            continue
        word = text[1:] if text.startswith(" ") else text
        if len(text) < 2 or not word.isalpha() or word.isascii():
            continue
        found = {token_script(char) for char in word}
        if found <= {"han", "kana", "hangul"}:
            scripts["cjk"].append(text.replace(" ", "\u2581"))
        elif len(found) == 1 and (script := found.pop()) in MATCHED:
            scripts[script].append(text.replace(" ", "\u2581"))

    vocab = {k: " ".join(sorted(v)) for k, v in scripts.items() if k != "cjk"}
    data = {
        "about": VOCAB_ABOUT,
        "single_token_chars": single,
        "two_token_emoji": emoji,
        "cjk_tokens": " ".join(sorted(scripts["cjk"])),
        "word_vocab": vocab,
    }
    VOCAB.write_text(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n",
                     encoding="utf-8")  # fmt: skip


def write_rates(
    tables: dict,
    symbols: dict,
    band: dict,
    spread: tuple[int, int, int],
    chars: tuple[str, str],  # type: ignore[type-arg]
) -> None:

    def literal(value: object) -> str:
        return pprint.pformat(value, width=95, compact=True)

    adjust = symbols.get("adjust", {})
    weights = {k: v for k, v in symbols.items() if k != "adjust"}
    RATES.write_text(
        '"""Calibrated rates of the fast token estimate, written by\n``python '
        "bench/token_accuracy.py --calibrate`` from the exact Llama 3 counts (quicktok-v1)\nof "
        'the corpus in ``tests/data/tokens/``. Do not edit by hand."""\n\n'
        "from __future__ import annotations\n\n"
        "#: Per word table: tokens x100 for 1, 2, ... letters, then x100 per further letter.\n"
        f"WORD_TOKENS_X100: dict[str, tuple[tuple[int, ...], int]] = {literal(tables)}\n\n"
        "#: Tokens x100 a word costs beyond its table when it does not follow a space (at the\n"
        "#: start, or after a mark) or is capitalised; ``*:variant`` for any other table.\n"
        f"WORD_ADJUST_X100: dict[str, int] = {literal(adjust)}\n\n"
        "#: Tokens x100 per symbol character by kind; ``^kind`` for the first of a piece.\n"
        f"SYMBOL_TOKENS_X100: dict[str, int] = {literal(weights)}\n\n"
        "#: Per band class: the variance of a piece's count per estimated token, x1000.\n"
        f"BAND: dict[str, int] = {literal(band)}\n\n"
        "#: (share of the estimate per 1,000, standard deviations x100, tokens) of the band.\n"
        f"BAND_SPREAD = {spread!r}\n",
        encoding="utf-8",
    )


# --- reporting ----------------------------------------------------------------------------


def table(texts_by_kind: dict[str, list[str]], enc) -> tuple[str, list[float], float]:  # type: ignore[no-untyped-def]
    rows = [
        "| kind | prompts | exact tokens | estimated | p50 error | p95 error | in [low, high] "
        "| band width |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    p95s, inside, total = [], 0, 0
    for kind, texts in texts_by_kind.items():
        exact = [enc.count(t) for t in texts]
        bands = [text_token_band(t) for t in texts]
        pairs = list(zip(bands, exact, strict=True))
        errors = sorted(abs(b[1] - e) / e * 100 for b, e in zip(bands, exact, strict=True))
        ok = sum(b[0] <= e <= b[2] for b, e in zip(bands, exact, strict=True))
        p95 = _percentile(errors, 0.95)
        p95s.append(p95)
        inside += ok
        total += len(texts)
        rows.append(
            f"| {kind} | {len(texts)} | {sum(exact):,} | {sum(b[1] for b in bands):,} | "
            f"{_percentile(errors, 0.5):.1f}% | {p95:.1f}% | {ok}/{len(texts)} | "
            f"{statistics.median((b[2] - b[0]) / e * 100 for b, e in pairs):.0f}% |"
        )
    rows.append(f"| all | {total} | | | | max {max(p95s):.1f}% | {inside / total:.1%} | |")
    return "\n".join(rows), p95s, inside / total


def _percentile(values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    position = (len(values) - 1) * q
    below = math.floor(position)
    above = min(below + 1, len(values) - 1)
    return values[below] + (values[above] - values[below]) * (position - below)


def template(enc) -> None:  # type: ignore[no-untyped-def]
    """The chat-template overheads recorded in providers/*.toml, counted exactly."""
    from llamaroute.money import chat_template_tokens

    meta = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
    meta += "<|start_header_id|>assistant<|end_header_id|>\n\n"
    date = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
    hf = meta.replace(
        "<|begin_of_text|>",
        f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{date}<|eot_id|>",
    )
    hi = enc.count("Hi")
    for name, rendered in (("meta", meta), ("hf-date-header", hf)):
        total = len(enc.encode(rendered, allowed_special="all")) - hi
        print(f"{name}: one user message adds {total} tokens")
    print(f"llamaroute's chat_template_tokens(1) = {chat_template_tokens(1)}")
    print(f"the date header alone (system block): {enc.count(date)} text tokens + 5")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", action="store_true", help="refit and write the rates")
    parser.add_argument("--template", action="store_true", help="count the template overheads")
    args = parser.parse_args(argv)
    enc = encoder()
    if args.template:
        template(enc)
        return 0
    if args.calibrate:
        write_vocab(enc)
        chars: tuple[str, ...] = ()
        unset = {"other": 0}
        write_rates({"other": ((100,), 100)}, {}, unset, (0, 0, 0), chars)
        _reload()
        train = corpus("even")
        tables, symbols = fit([t for texts in train.values() for t in texts], enc)
        write_rates(tables, symbols, unset, (0, 0, 0), chars)
        _reload()
        tables, symbols = rescale(tables, symbols, [t for v in train.values() for t in v], enc)
        write_rates(tables, symbols, unset, (0, 0, 0), chars)
        _reload()
        variances = band_variances(train, enc)
        spread = choose_spread(tables, symbols, variances, corpus("odd"), enc, chars)
        print(f"Band spread {spread}, chosen on the held-out odd prompts.")
        print("Fitted on the even prompts; held-out odd prompts:\n")
        print(table(corpus("odd"), enc)[0])
        everything = corpus()
        tables, symbols = fit([t for texts in everything.values() for t in texts], enc)
        write_rates(tables, symbols, unset, (0, 0, 0), chars)
        _reload()
        tables, symbols = rescale(tables, symbols, [t for v in everything.values() for t in v], enc)
        write_rates(tables, symbols, unset, (0, 0, 0), chars)
        _reload()
        write_rates(tables, symbols, band_variances(everything, enc), spread, chars)
        _reload()
        print(f"\nWrote {RATES.relative_to(ROOT)} (fitted on all prompts).\n")
    text, p95s, coverage = table(corpus(), enc)
    print(text)
    print(f"\nestimate_text_tokens('🦙') = {estimate_text_tokens('🦙')} (exact {enc.count('🦙')})")
    return 0 if max(p95s) <= 15 and coverage >= 0.95 else 1


def _reload() -> None:
    """Load the rates just written. A reload runs the module again in its own namespace, so
    the estimator's functions imported above see the new constants."""
    import importlib

    from llamaroute.money import _token_heuristic, _token_rates

    importlib.reload(_token_rates)
    importlib.reload(_token_heuristic)


if __name__ == "__main__":
    sys.exit(main())
