"""Token counts for Llama 3 prompts, before the call: text, chat template and images.

* :func:`estimate_text_tokens` is a fast estimate: the text's language is guessed from its
  script (Devanagari, Thai, ...) and, for Latin script, from common function words; the length
  is divided by that language's characters per token, measured against the exact Llama 3
  tokenizer (see :data:`CHARS_PER_TOKEN`).
* :func:`text_counter` counts exactly instead when the ``tokenizers`` package and a Llama 3
  ``tokenizer.json`` are available (a path argument, or ``$LLAMAROUTE_TOKENIZER``).
* :func:`chat_template_tokens` is what the Llama 3 chat template adds around the messages.
* :func:`image_tiles_for` is how many 560 px tiles an image takes (1 to 4), the input to the
  image token range: providers do not document how they bill images, so estimates take 0 image
  tokens as the low end and ``tiles x 1601`` as the high end.

No function here does I/O except reading an image file or a tokenizer file it is given.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._exceptions import ConfigurationError
from ..images._source import MAX_TILES, POSITIONS_PER_TILE, load_image

__all__ = [
    "CHARS_PER_TOKEN",
    "SYMBOL_TOKENS_X100",
    "TOKENIZER_ENV",
    "TextCounter",
    "chat_template_tokens",
    "detect_language",
    "estimate_text_tokens",
    "image_positions",
    "image_tiles_for",
    "text_counter",
]

TOKENIZER_ENV = "LLAMAROUTE_TOKENIZER"

TextCounter = Callable[[str], int]
"""Counts the tokens of a piece of text (no special tokens)."""

#: Characters per token, times 100 (integers, so the estimate is pure integer arithmetic), for
#: the characters that are not digits or punctuation (see :data:`SYMBOL_TOKENS_X100`).
#: Measured with the exact Llama 3 tokenizer (quicktok-v1's ``llama3`` encoding, the same
#: vocabulary as Meta's ``tokenizer.model``) over the paragraphs in
#: ``bench/data/calibration/``: ``python bench/token_accuracy.py --calibrate`` prints them.
#: ``latin`` (the mean of the five European languages) is for Latin-script text whose language
#: the function words do not give away; ``cjk`` and ``other`` (Cyrillic, Greek, Arabic, emoji)
#: are cautious guesses for scripts Llama 3.2 does not officially support, not measurements.
CHARS_PER_TOKEN: dict[str, int] = {
    "en": 553,
    "de": 369,
    "fr": 397,
    "it": 361,
    "pt": 369,
    "es": 392,
    "hi": 194,
    "th": 209,
    "latin": 378,
    "cjk": 140,
    "other": 250,
}

#: Tokens per digit or punctuation mark, times 100. The tokenizer splits numbers into groups of
#: up to three digits and keeps most punctuation apart from words, so code, JSON and figures
#: cost more tokens per character than prose; counting them separately at a rate shared by all
#: languages (chosen on the calibration set) halves the error on such prompts.
SYMBOL_TOKENS_X100 = 90

# Llama 3 chat template (meta-llama/llama-models, models/llama3_2/text_prompt_format.md):
#   <|begin_of_text|>
#   per message: <|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>
#   then the reply's header: <|start_header_id|>assistant<|end_header_id|>\n\n
# "system", "user", "assistant" and "\n\n" are one token each, so a message costs 5 tokens
# besides its content, the conversation 1 + 4, and each image its one <|image|> token.
BEGIN_TOKENS = 1
MESSAGE_TOKENS = 5
REPLY_HEADER_TOKENS = 4
IMAGE_TAG_TOKENS = 1

_NON_LATIN = re.compile(r"[^\x00-\u024f\u1e00-\u1eff\u2000-\u20cf]")
# UTF-8 prefixes of each script's characters: Devanagari U+0900-097F, Thai U+0E00-0E7F, and
# U+3000-DFFF (CJK symbols, kana, ideographs, Hangul) as "cjk". Latin-1, Latin Extended,
# Latin Extended Additional and general punctuation are Latin; any other non-ASCII character
# (Greek, Cyrillic, Arabic, other Indic scripts, emoji) is "other".
_SCRIPTS = (
    ("hi", (b"\xe0\xa4", b"\xe0\xa5")),
    ("th", (b"\xe0\xb8", b"\xe0\xb9")),
    ("cjk", tuple(bytes([lead]) for lead in range(0xE3, 0xEE))),
)
_LATIN_UTF8 = (
    *(bytes([lead]) for lead in range(0xC2, 0xCA)),
    *(bytes([0xE1, second]) for second in range(0xB8, 0xBC)),
    *(bytes([0xE2, second]) for second in range(0x80, 0x84)),
)
_ACCENTED = re.compile(r"[\u00c0-\u024f\u1e00-\u1eff]")
# ASCII digits and punctuation, Latin-1 signs (« » ¿ ° ...) and general punctuation (curly
# quotes, dashes, ellipsis), but not a script's own marks, which its rate already covers.
_SYMBOLS = re.compile(r"[!-@\[-`{-~\u00a1-\u00bf\u00d7\u00f7\u2010-\u205e]")

# Frequent function words that tell the Latin-script languages apart. Words that are also
# common in English ("a", "in", "no", "was", "will", "per") are left out; words shared by
# several of the others count for each of them.
_MARKER_TEXT = {
    "en": "the and of to is are with that for this you it be on have what which your from"
    " not or can we they there their been has would should could about",
    "de": "der die das und ist nicht mit sich auf den dem ein eine einen zu von für ich sie"
    " wir bitte auch bei oder wie werden wird sind noch nach über",
    "fr": "le les et est des une du pour dans sur qui au aux pas vous nous ce cette avec je"
    " ou mais sont été leur elle il",
    "it": "il di che una gli della del sono nel con non alla anche è ho più e le lo dei"
    " delle questo come",
    "pt": "o os um uma não com para do da dos das em que no na é você seu sua e ao pelo"
    " pela como mais",
    "es": "el los las que por para una del con es en se y lo su al más como pero este esta",
}
_MARKERS: dict[str, tuple[str, ...]] = {}
for _lang, _words in _MARKER_TEXT.items():
    for _word in _words.split():
        _MARKERS[_word] = (*_MARKERS.get(_word, ()), _lang)
_MARKER_WORDS = frozenset(_MARKERS)
# The Latin-script languages in the order listed above (a dict literal keeps its order): ties
# go to the first, English. Never the order of a set: that depends on PYTHONHASHSEED, and an
# estimate must be a pure function of its text.
_LATIN_LANGUAGES = tuple(_MARKER_TEXT)
# Enough words to tell the language; bounds the work on long texts.
_SAMPLE_CHARS = 400


def detect_language(text: str) -> str:
    """The key of :data:`CHARS_PER_TOKEN` that best describes ``text``: a script for
    Devanagari (``hi``), Thai (``th``), CJK and others; for Latin script, the language whose
    function words occur most (``en`` when none occur and the text has no accents, ``latin``
    when it has accents but no telling words)."""
    return _main_language(text, _script_counts(text))


def _main_language(text: str, counts: dict[str, int]) -> str:
    if counts:
        main = max(counts, key=counts.__getitem__)
        # In Hindi or Thai prose the ASCII spaces and punctuation are not Latin text; a few
        # non-Latin characters in Latin prose (an emoji, a name) do not make it that script.
        if len(text) - sum(counts.values()) <= counts[main]:
            return main
    return _latin_language(text)


def _script_counts(text: str) -> dict[str, int]:
    """Characters per non-Latin script in ``text`` (empty for Latin-script text)."""
    if text.isascii() or not _NON_LATIN.search(text):
        return {}
    # Counted on the UTF-8 bytes: in UTF-8 a script block is a set of lead-byte prefixes, and
    # bytes.count runs in C, several times faster than a regex over the text.
    # Most texts are in one script: stop once the counts account for every non-ASCII character.
    data = text.encode("utf-8")
    left = len(text) - len(text.encode("ascii", "ignore"))
    counts: dict[str, int] = {}
    for key, prefixes in _SCRIPTS:
        found = sum(map(data.count, prefixes))
        if found:
            counts[key] = found
            left -= found
            if left <= 0:
                return counts
    other = left - sum(map(data.count, _LATIN_UTF8))
    if other > 0:
        counts["other"] = other
    return counts


def _latin_language(text: str) -> str:
    sample = text[:_SAMPLE_CHARS]
    # Distinct marker words, split on whitespace: a set intersection runs in C, and a
    # function word rarely carries punctuation. (A regex over the markers took 10x longer.)
    scores: dict[str, int] = {}
    for word in _MARKER_WORDS.intersection(sample.lower().split()):
        for lang in _MARKERS[word]:
            scores[lang] = scores.get(lang, 0) + 1
    if scores:
        # Ties go to the first language listed (English first): the cheaper guess. The scores
        # are read in that fixed order, not in the dict's: the set above is iterated in hash
        # order, which varies between runs.
        best = max(scores.values())
        for lang in _LATIN_LANGUAGES:
            if scores.get(lang) == best:
                return lang
    return "en" if sample.isascii() or not _ACCENTED.search(sample) else "latin"


def estimate_text_tokens(text: str) -> int:
    """A fast estimate of the Llama 3 tokens in ``text`` (no special tokens).

    Characters in Devanagari, Thai, CJK and other scripts are counted at their script's rate;
    the rest (Latin letters, digits, spaces, punctuation) at the rate of the Latin-script
    language found, or, in a text that is mostly another script, at that script's rate
    (spaces and punctuation there merge into the neighbouring words). Rounded up.
    """
    length = len(text)
    if not length:
        return 0
    counts = _script_counts(text)
    main = _main_language(text, counts)
    symbols = len(_SYMBOLS.findall(text))
    # Each script's characters at its own rate; the rest (ASCII, Latin) less the symbols at the
    # main language's; the symbols at theirs. In thousandths of a token, rounded up once.
    rest = max(length - sum(counts.values()) - symbols, 0)
    parts = [(count, CHARS_PER_TOKEN[key]) for key, count in counts.items()]
    parts.append((rest, CHARS_PER_TOKEN[main]))
    thousandths = sum(_ceil_div(count * 100_000, rate) for count, rate in parts)
    return _ceil_div(thousandths + symbols * SYMBOL_TOKENS_X100 * 10, 1000)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def chat_template_tokens(messages: int, images: int = 0) -> int:
    """Tokens the Llama 3 chat template adds to ``messages`` messages carrying ``images``
    images: ``<|begin_of_text|>``, each message's header and ``<|eot_id|>``, each image's
    ``<|image|>`` tag, and the header of the reply."""
    return (
        BEGIN_TOKENS + MESSAGE_TOKENS * messages + IMAGE_TAG_TOKENS * images + REPLY_HEADER_TOKENS
    )


def text_counter(tokenizer: str | os.PathLike[str] | None = None) -> TextCounter:
    """How to count text tokens: exactly with the Llama 3 ``tokenizer.json`` at ``tokenizer``
    (or ``$LLAMAROUTE_TOKENIZER``) when one is given, else :func:`estimate_text_tokens`.

    Exact counting needs the ``tokenizers`` package (``pip install tokenizers``); asking for it
    without the package, or with a path that is not a tokenizer file, is a
    :class:`~llamaroute.ConfigurationError`.
    """
    path = tokenizer if tokenizer is not None else os.environ.get(TOKENIZER_ENV) or None
    if path is None:
        return estimate_text_tokens
    return _exact_counter(str(Path(path).expanduser().resolve()))


@functools.lru_cache(maxsize=4)
def _exact_counter(path: str) -> TextCounter:
    # Cached: loading a 9 MB tokenizer.json takes a moment, and a workload asks once per line.
    if not Path(path).is_file():
        raise ConfigurationError(f"tokenizer file not found: {path} (from ${TOKENIZER_ENV}?)")
    try:
        # Optional, and imported only here so that `import llamaroute` stays light; through
        # importlib so that type checking does not need the package installed.
        tokenizers: Any = importlib.import_module("tokenizers")
    except ImportError:
        raise ConfigurationError(
            f"counting tokens exactly with {path} needs the tokenizers package: "
            "pip install tokenizers"
        ) from None
    try:
        loaded: Any = tokenizers.Tokenizer.from_file(path)
    except Exception as error:  # tokenizers raises a bare Exception for a malformed file
        raise ConfigurationError(f"cannot load the tokenizer {path}: {error}") from None

    def count(text: str) -> int:
        return len(loaded.encode(text, add_special_tokens=False).ids)

    return count


def image_tiles_for(source: object) -> int:
    """How many 560 px tiles Llama 3.2 Vision cuts this image into (1 to 4).

    ``source`` is anything ``image=`` takes; it is read and checked (a missing file, or one
    that is not an image, raises :class:`~llamaroute.InvalidImageError`). An ``http(s)://``
    URL is not fetched: it counts as the maximum, 4 tiles.
    """
    tiles = load_image(source).tiles
    return MAX_TILES if tiles is None else tiles


def image_positions(tiles: int) -> int:
    """Vision-encoder positions for an image of ``tiles`` tiles (1601 per tile): the most
    input tokens a provider could bill the image as."""
    return tiles * POSITIONS_PER_TILE
