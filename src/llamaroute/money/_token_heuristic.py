"""The fast Llama 3 token estimate: the tokenizer's own pre-split, then calibrated rates.

Llama 3 (and so Llama 3.2) is a byte-level BPE whose merges never cross the pieces its
pre-tokenizer regex cuts the text into. :data:`PIECES` is that regex written for Python's ``re``
(``\\p{L}`` as ``[^\\W\\d_]``); on the corpus in ``tests/data/tokens/`` it cuts every prompt
exactly where the tokenizer does. Each piece is then costed by its class:

* a run of one to three digits is one token, and so is a run of whitespace (exact);
* a word is costed by its length on its script's table (:data:`WORD_TOKENS_X100`); ASCII
  words use the table of the text's language (English words are nearly always one token,
  Italian ones grow with length), other Latin words (with accents), Cyrillic, Greek, Arabic,
  Hebrew, Devanagari, Thai, Hangul, kana and Han each have their own;
* punctuation, emoji and other symbols are costed per character by UTF-8 length and kind
  (:data:`SYMBOL_TOKENS_X100`): an emoji is 2 to 3 tokens, a family emoji 15.

:func:`text_token_band` also gives a ``[low, high]`` range meant to contain the exact count:
the estimate less and plus a per-class share of the estimated (not exact) part, plus an
absolute margin for short texts (:data:`BAND`). Pure integer arithmetic, no I/O.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections import Counter
from importlib import resources
from typing import Any

from ._token_rates import (
    BAND,
    BAND_SPREAD,
    SYMBOL_TOKENS_X100,
    WORD_ADJUST_X100,
    WORD_TOKENS_X100,
)

__all__ = [
    "PIECES",
    "class_costs",
    "detect_language",
    "estimate_text_tokens",
    "letter_script",
    "pieces",
    "text_token_band",
]

#: Llama 3's pre-tokenizer pattern (``tiktoken``'s cl100k pattern), in Python ``re`` syntax.
PIECES = re.compile(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    r"|(?:[^\r\n\w]|_)?[^\W\d_]+"
    r"|\d{1,3}"
    r"| ?(?:[^\s\w]|_)+[\r\n]*"
    r"|\s*[\r\n]+"
    r"|\s+(?!\S)"
    r"|\s+"
)
_LETTER = re.compile(r"[^\W\d_]")
# Scripts without spaces between words (or with syllable blocks) costed per character.
_PER_CHARACTER = frozenset({"han", "kanji", "kana", "hangul"})
_KANA = re.compile(r"[\u3040-\u30ff]")
_CJK_LONGEST = 7  # characters in the longest Han, kana or Hangul token
# Alphabetic scripts whose words are matched against the vocabulary
# (data in _data/token_vocab.json).
_MATCHED = frozenset({"cyrillic", "greek", "arabic"})

# (first code point past the block, class) in code point order; see letter_script().
_BLOCKS = (
    (0x0250, "accented"),
    (0x0370, "other"),
    (0x0400, "greek"),
    (0x0530, "cyrillic"),
    (0x0590, "other"),
    (0x0600, "hebrew"),
    (0x0780, "arabic"),
    (0x0900, "other"),
    (0x0980, "devanagari"),
    (0x0E00, "other"),
    (0x0E80, "thai"),
    (0x1100, "other"),
    (0x1200, "hangul"),
    (0x1E00, "other"),
    (0x1F00, "accented"),
    (0x2000, "greek"),
    (0x3040, "other"),
    (0x3100, "kana"),
    (0x3130, "other"),
    (0x3190, "hangul"),
    (0x3400, "other"),
    (0xA000, "han"),
    (0xAC00, "other"),
    (0xD7B0, "hangul"),
    (0xF900, "other"),
    (0xFB00, "han"),
    (0xFB50, "other"),
    (0xFF00, "arabic"),
)

# Latin-script text: which language's table its ASCII words use. Function words give it away.
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
# Ties go to the first language listed (English, the cheaper guess); a fixed order, never a
# set's, so that an estimate is a pure function of its text whatever PYTHONHASHSEED is.
_LATIN_LANGUAGES = tuple(_MARKER_TEXT)
_ACCENTED = re.compile(r"[\u00c0-\u024f\u1e00-\u1eff]")
_PROSE_WORD = re.compile(r"(?<!\S)[a-z\u00c0-\u024f\u1e00-\u1eff]+[,.!?;:]?(?!\S)")
_SAMPLE_CHARS = 400
#: A language needs one function word in this many words of prose (English prose has one in
#: three or four); fewer, and the text is taken for another Latin-script language.
_MARKER_SHARE = 12
_SAMPLE_WORDS = 60
#: Below this many alphabetic words (code, JSON, numbers, a short phrase) English is assumed.
_PROSE_WORDS = 8


def detect_language(text: str) -> str:
    """The table :func:`estimate_text_tokens` uses for the ASCII words of ``text``: ``en``,
    ``de``, ``fr``, ``it``, ``pt`` or ``es`` by the function words found in its first 400
    characters, when there are enough of them for the prose's length; else ``latin`` (another
    Latin-script language) for prose or text with accented letters, and ``en`` for the rest
    (code, JSON, numbers, short phrases)."""
    head = text[:_SAMPLE_CHARS]
    sample = head.lower()
    words = sample.split()
    # Counted in C (a Counter, one regex pass): this runs once per prompt.
    counts = Counter(words)
    scores: dict[str, int] = {}
    for word in _MARKER_WORDS.intersection(counts):
        for lang in _MARKERS[word]:
            scores[lang] = scores.get(lang, 0) + counts[word]
    # Words that are letters with at most one trailing punctuation mark (str.split's and
    # re's whitespace are the same set: a word here is one of `words`).
    prose = len(_PROSE_WORD.findall(sample))
    best = max(scores.values(), default=0)
    if prose * 4 < len(words) * 3:
        prose = 0  # not prose: code, tables, numbers, emoji posts
    # Prose in a language we have no table for (Dutch, Polish, Indonesian...) shares a few
    # short words with ours ("de", "en", "di"): a language is taken only with enough of its
    # function words for the prose's length; otherwise the generic Latin table, which is
    # fitted on such languages and costs a word more than English does.
    if best and best * _MARKER_SHARE >= min(prose, _SAMPLE_WORDS):
        for lang in _LATIN_LANGUAGES:
            if scores.get(lang) == best:
                return lang
    if prose >= _PROSE_WORDS or _ACCENTED.search(head):
        return "latin"
    return "en"


def letter_script(char: str) -> str:
    """The script class of a letter, as the estimate's tables name them."""
    point = ord(char)
    for end, name in _BLOCKS:
        if point < end:
            return name
    return "other"


@functools.cache
def _vocabulary() -> dict[str, Any]:
    # 170 KB of data (_data/token_vocab.json), read on first use only: most prompts never
    # need it, and importing llamaroute reads no file.
    raw = resources.files("llamaroute").joinpath("_data/token_vocab.json").read_bytes()
    data: dict[str, Any] = json.loads(raw)
    return data


@functools.cache
def _single_tokens() -> frozenset[str]:
    return frozenset(_vocabulary()["single_token_chars"])


@functools.cache
def _cjk_words() -> frozenset[str]:
    return frozenset(_vocabulary()["cjk_tokens"].split())


@functools.cache
def _script_words(script: str) -> tuple[frozenset[str], int]:
    """The vocabulary's multi-letter tokens of one alphabetic script, and the longest's
    length."""
    words = frozenset(_vocabulary()["word_vocab"][script].split())
    return words, max(map(len, words), default=1)


def _match_words(run: str, script: str) -> tuple[int, int]:
    """(vocabulary tokens, letters left) in a word of an alphabetic script (with its leading
    space, if any), matching the vocabulary's tokens longest first."""
    words, longest = _script_words(script)
    found = left = 0
    start, end = 0, len(run)
    while start < end:
        for stop in range(min(end, start + longest), start + 1, -1):
            if run[start:stop].replace(" ", "\u2581") in words:
                found += 1
                start = stop
                break
        else:
            left += run[start] != " "
            start += 1
    return found, left


def _match_cjk(run: str) -> tuple[int, int, int]:
    """(vocabulary words, whole characters, other characters) in a run of Han, kana or
    Hangul (with its leading space, if any), matching the vocabulary's multi-character
    tokens longest first: close to what the BPE merges make of it."""
    words, whole = _cjk_words(), _single_tokens()
    found = common = rare = 0
    start, end = 0, len(run)
    while start < end:
        for stop in range(min(end, start + _CJK_LONGEST), start + 1, -1):
            if run[start:stop].replace(" ", "\u2581") in words:
                found += 1
                start = stop
                break
        else:
            if run[start] != " ":
                common += run[start] in whole
                rare += run[start] not in whole
            start += 1
    return found, common, rare


@functools.cache
def _two_token_emoji() -> frozenset[str]:
    return frozenset(_vocabulary()["two_token_emoji"])


def _is_mark(char: str) -> bool:
    return unicodedata.category(char).startswith("M")


def _symbol_kind(char: str) -> str:
    point = ord(char)
    if point < 0x80:
        return "ascii"
    if point >= 0x10000:
        # Emoji: 3 tokens (🦙), 2 for the common faces and hearts that share a byte pair.
        return "emoji-2" if char in _two_token_emoji() else "astral"
    if point < 0x800:
        # Latin-1 signs (« °, the multiplication sign) and the marks of the 2-byte scripts
        return "two-byte"
    if char in _single_tokens():
        return "bmp-1"  # a symbol the vocabulary holds whole: — “ ” … € → ✓ 。
    if _is_mark(char):
        return "mark"  # vowel signs of Indic scripts and Thai
    return "symbol"  # other 3-byte symbols (2 or 3 byte tokens): dingbats, ZWJ, VS16


def pieces(
    text: str, language: str | None = None, japanese: bool | None = None
) -> list[tuple[str, str, int]]:
    """``text`` cut as the tokenizer cuts it, each piece described as ``(class, key, size)``:
    ``("exact", "", tokens)`` for digits and whitespace, ``("word", table, letters)`` and
    ``("adjust", "table:variant", 1)`` for a word not preceded by a space or capitalised,
    ``("symbol", kind, 1)`` per symbol character (the first one's kind prefixed with ``^``).
    ``language`` is :func:`detect_language`'s answer, and ``japanese`` whether the text has
    kana, when the caller already has them (for a piece of a longer text)."""
    lang, han = _context(text, language, japanese)
    found: list[tuple[str, str, int]] = []
    for piece in PIECES.findall(text):
        found.extend(_describe(piece, lang, han))
    return found


def _context(text: str, language: str | None, japanese: bool | None) -> tuple[str, str]:
    """The table for ASCII words, and the Han class (Han characters in Japanese text, with
    kana, merge less than in Chinese: their own rates)."""
    lang = detect_language(text) if language is None else language
    if japanese is None:
        japanese = bool(_KANA.search(text))
    return lang, "kanji" if japanese else "han"


def _describe(piece: str, lang: str, han: str) -> list[tuple[str, str, int]]:
    """One piece of the pre-split as :func:`pieces` describes it."""
    last = piece[-1]
    if piece.isspace() or piece.isdecimal():
        return [("exact", "", 1)]
    if not _LETTER.match(last):
        start = 1 if piece[0] == " " else 0
        return [("symbol", "^" + _symbol_kind(piece[start]), 1)] + [
            ("symbol", _symbol_kind(char), 1) for char in piece[start + 1 :]
        ]
    prefix = "" if _LETTER.match(piece[0]) else piece[0]
    letters = piece[1:] if prefix else piece
    # A mark before a word (a vowel sign in Hindi) is costed as part of the word; any other
    # character but a space as a symbol of its own.
    mark = bool(prefix) and not prefix.isascii() and _is_mark(prefix)
    script = lang if letters.isascii() else letter_script(letters[len(letters) // 2])
    if script == "han":
        script = han
    found: list[tuple[str, str, int]] = []
    if script in _PER_CHARACTER:
        # Han, kana and Hangul: the vocabulary's words matched longest first, then each
        # character left, whole in the vocabulary or not.
        spaced = prefix == " "
        words, common, rare = _match_cjk(" " + letters if spaced else letters)
        found.append(("word", script + "-words", words))
        found.append(("word", script + "-1", common))
        found.append(("word", script, rare + mark))
        if prefix and not spaced and not mark:
            found.append(("symbol", "^" + _symbol_kind(prefix), 1))
        return found
    if script in _MATCHED:
        # Cyrillic, Greek, Arabic: the vocabulary's tokens, longest first.
        spaced = prefix == " "
        words, left = _match_words(" " + letters if spaced else letters, script)
        found.append(("word", script + "-words", words))
        found.append(("word", script, left + mark))
        if prefix and not spaced and not mark:
            found.append(("symbol", "^" + _symbol_kind(prefix), 1))
        return found
    if script == "accented":
        # Words with accented letters split differently in each language (ü in German, é in
        # French): their own table per language.
        script = lang + "+accented"
    found.append(("word", script, len(letters) + mark))
    # The vocabulary holds mostly " word": a word at the start of a line or after a mark
    # costs more, and so does a capital. Costed as the calibrated extra of the word's table
    # for that position (the ASCII mark before a word included).
    position = "spaced" if prefix == " " or mark else "start" if not prefix else "after"
    variant = position + ("-capital" if letters[0].isupper() else "")
    if variant != "spaced":
        found.append(("adjust", f"{script}:{variant}", 1))
    return found


def _word_x100(table: str, letters: int) -> int:
    if not letters:
        return 0
    found = WORD_TOKENS_X100.get(table)
    if found is None:  # a language's accented words without a table of their own
        found = WORD_TOKENS_X100["accented" if table.endswith("+accented") else "other"]
    values, slope = found
    if letters <= len(values):
        return values[letters - 1]
    return values[-1] + (letters - len(values)) * slope


def class_costs(
    text: str, language: str | None = None, japanese: bool | None = None
) -> tuple[int, dict[str, int]]:
    """(exact tokens, estimated hundredths of a token per band class) of ``text``: what
    :func:`text_token_band` adds up, and what ``bench/token_accuracy.py`` calibrates."""
    lang, han = _context(text, language, japanese)
    exact = 0
    classes: dict[str, int] = {}
    costed = _costed
    for piece in PIECES.findall(text):
        tokens, costs = costed(piece, lang, han)
        exact += tokens
        for band, cost in costs:
            classes[band] = classes.get(band, 0) + cost
    return exact, classes


# Text repeats its words: a piece is costed once per table and remembered (a pure function of
# its arguments, bounded, so the cache only saves time). Most pieces are " word".
@functools.lru_cache(maxsize=1 << 16)
def _costed(piece: str, lang: str, han: str) -> tuple[int, tuple[tuple[str, int], ...]]:
    """(exact tokens, (band class, hundredths of a token) ...) of one piece."""
    exact = 0
    costs: list[tuple[str, int]] = []
    for kind, key, size in _describe(piece, lang, han):
        if kind == "exact":
            exact += size
        elif kind == "word":
            costs.append((key, _word_x100(key, size)))
        elif kind == "adjust":
            variant = key.partition(":")
            cost = WORD_ADJUST_X100.get(key, WORD_ADJUST_X100.get("*:" + variant[2], 0))
            costs.append((variant[0], cost))
        else:
            costs.append(("symbol", SYMBOL_TOKENS_X100[key]))
    return exact, tuple(costs)


def estimate_text_tokens(text: str) -> int:
    """A fast estimate of the Llama 3 tokens in ``text`` (no special tokens), rounded."""
    exact, classes = class_costs(text)
    estimated = sum(classes.values())
    return exact + max((estimated + 50) // 100, 1 if estimated else 0)


def text_token_band(text: str) -> tuple[int, int, int]:
    """``(low, expected, high)`` Llama 3 tokens in ``text``: ``expected`` is
    :func:`estimate_text_tokens`; the band around it is ``z`` standard deviations of the
    estimate (each class's measured variance per estimated token, :data:`BAND`), plus a share
    of the estimate for a bias the corpus did not show, plus one token. Digits and whitespace
    are exact and widen nothing. On prompts the rates were not fitted on, about 99% of exact
    counts fall inside (``bench/token_accuracy.py``)."""
    exact, classes = class_costs(text)
    estimated = sum(classes.values())
    expected = exact + max((estimated + 50) // 100, 1 if estimated else 0)
    if not estimated:
        return expected, expected, expected
    share, z_x100, slack = BAND_SPREAD
    variance = sum(cost * (BAND.get(band) or BAND["other"]) for band, cost in classes.items())
    # sd in tokens = sqrt(sum(tokens_c * var_c)); costs are x100 and variances x1000, so
    # sd x100 = sqrt(sum(cost * variance) / 10).
    sd_x100 = math.isqrt(variance // 10)
    margin = -(-(estimated * share // 1000 + sd_x100 * z_x100 // 100) // 100) + slack
    return max(expected - margin, 1), expected, expected + margin
