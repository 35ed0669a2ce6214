"""Token counts for Llama 3 prompts, before the call: text, chat template and images.

* :func:`text_counter` picks how text is counted: exactly with quicktok-v1's ``llama3``
  encoding when it is installed (``pip install 'llamaroute[tokens]'``; imported on the first
  count, never with the package), else the fast estimate of :mod:`._token_heuristic`
  (:func:`estimate_text_tokens`), whose ``[low, high]`` band brackets the exact count. Either
  way the :class:`TokenCounter` says which it is (``name``), and so does each estimate.
* :func:`chat_template_tokens` is what Meta's Llama 3 chat format adds around the messages;
  a route's ``template_tokens`` (catalog data) is what its upstream's template adds on top.
* :func:`conservative_prompt_tokens` is a bound that never undercounts: UTF-8 bytes.
* :func:`image_tiles_for` is how many 560 px tiles an image takes (Meta's best-fit rule).

No function here does I/O except reading an image file or a tokenizer file it is given.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._exceptions import ConfigurationError
from ..catalog import Price, Route
from ..images import MAX_TILES, POSITIONS_PER_TILE, load_image
from ._token_heuristic import detect_language, estimate_text_tokens, text_token_band

__all__ = [
    "EXACT_COUNTER",
    "HEURISTIC",
    "MAX_TEMPLATE_EXTRA",
    "PADDED_IMAGE_TOKENS",
    "TOKENIZER_ENV",
    "CounterChoice",
    "TextCounter",
    "TokenCounter",
    "chat_template_tokens",
    "conservative_prompt_tokens",
    "detect_language",
    "estimate_text_tokens",
    "image_positions",
    "image_tiles_for",
    "image_token_range",
    "prompt_token_ceiling",
    "text_counter",
]

TOKENIZER_ENV = "LLAMAROUTE_TOKENIZER"

TextCounter = Callable[[str], int]
"""Counts the tokens of a piece of text (no special tokens)."""

CounterChoice = Literal["auto", "exact", "heuristic"]
"""How to count text: ``auto`` (exact when the ``tokens`` extra is installed), ``exact``
(require it), ``heuristic`` (the fast estimate even when an exact tokenizer is installed)."""

HEURISTIC = "heuristic"
EXACT_COUNTER = "llama3-exact (quicktok-v1)"


@dataclass(frozen=True, slots=True)
class TokenCounter:
    """Counts text tokens one way, and says which (``name``; ``exact`` when it is the real
    Llama 3 tokenizer). Calling it gives the expected count; :meth:`band` the
    ``(low, expected, high)`` range, all three equal for an exact counter."""

    name: str
    exact: bool
    count: TextCounter = field(repr=False)

    def __call__(self, text: str) -> int:
        return self.count(text)

    def band(self, text: str) -> tuple[int, int, int]:
        """``(low, expected, high)`` tokens of ``text``."""
        if self.exact:
            tokens = self.count(text)
            return tokens, tokens, tokens
        return text_token_band(text)


_HEURISTIC_COUNTER = TokenCounter(HEURISTIC, False, estimate_text_tokens)


def prompt_token_ceiling(text: str) -> int:
    """At most how many Llama 3 tokens ``text`` can be: its UTF-8 length in bytes (every
    token covers at least one byte). ``"🦙"`` is 4 bytes and 3 tokens; a family emoji is 25
    bytes and 15 tokens; ``"hello world"`` is 11 bytes and 2 tokens."""
    return len(text.encode("utf-8", "surrogatepass"))


def conservative_prompt_tokens(text: str, messages: int = 1) -> int:
    """A count that never falls below the exact Llama 3 count of ``text`` sent as
    ``messages`` messages by any upstream in the catalog: its UTF-8 bytes
    (:func:`prompt_token_ceiling`) plus the largest chat-template overhead (Meta's format
    and the Hugging Face template's date header, :data:`MAX_TEMPLATE_EXTRA`). For budget
    reservations, where an undercount would let spend through; about 4x the real count for
    English."""
    return prompt_token_ceiling(text) + chat_template_tokens(messages) + MAX_TEMPLATE_EXTRA


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

#: The most any catalogued upstream's template adds beyond Meta's format: the Hugging Face
#: template's system block with its date header (``bench/token_accuracy.py --template``).
MAX_TEMPLATE_EXTRA = 25

#: Input tokens of an image billed as its padded canvas, 4 tiles x 1601 positions: what some
#: upstreams charge whatever the size (BerriAI/litellm#5906), the high end of an image's range.
PADDED_IMAGE_TOKENS = MAX_TILES * POSITIONS_PER_TILE


def chat_template_tokens(messages: int, images: int = 0) -> int:
    """Tokens the Llama 3 chat template adds to ``messages`` messages carrying ``images``
    images: ``<|begin_of_text|>``, each message's header and ``<|eot_id|>``, each image's
    ``<|image|>`` tag, and the header of the reply."""
    return (
        BEGIN_TOKENS + MESSAGE_TOKENS * messages + IMAGE_TAG_TOKENS * images + REPLY_HEADER_TOKENS
    )


def text_counter(
    tokenizer: str | os.PathLike[str] | None = None, counter: CounterChoice = "auto"
) -> TokenCounter:
    """How to count text tokens.

    ``counter="auto"`` (the default) counts exactly with quicktok-v1's ``llama3`` encoding
    when it is installed (``pip install 'llamaroute[tokens]'``), else estimates;
    ``"exact"`` requires the exact tokenizer (a :class:`~llamaroute.ConfigurationError`
    without it); ``"heuristic"`` always estimates. A Llama 3 ``tokenizer.json`` at
    ``tokenizer`` (or ``$LLAMAROUTE_TOKENIZER``) is counted with the ``tokenizers`` package
    instead, unless ``counter`` is ``"heuristic"``.
    """
    if counter not in ("auto", "exact", "heuristic"):
        raise ConfigurationError(f"counter must be 'auto', 'exact' or 'heuristic', not {counter!r}")
    if counter == "heuristic":
        return _HEURISTIC_COUNTER
    path = tokenizer if tokenizer is not None else os.environ.get(TOKENIZER_ENV) or None
    if path is not None:
        return _file_counter(str(Path(path).expanduser().resolve()))
    exact = _quicktok_counter()
    if exact is not None:
        return exact
    if counter == "exact":
        raise ConfigurationError(
            "exact token counts need the Llama 3 tokenizer: pip install 'llamaroute[tokens]'"
        )
    return _HEURISTIC_COUNTER


@functools.lru_cache(maxsize=1)
def _quicktok_counter() -> TokenCounter | None:
    # Imported on the first count, never with the package (a 1.6 MB vocabulary, ~0.2 s), and
    # through importlib so that type checking does not need the package installed.
    try:
        quicktok: Any = importlib.import_module("quicktok")
        encoding: Any = quicktok.get_encoding("llama3")
    except (ImportError, AttributeError, RuntimeError, ValueError, KeyError):
        return None
    # count() is encode_ordinary's length: special-token text in a prompt counts as text.
    return TokenCounter(EXACT_COUNTER, True, encoding.count)


@functools.lru_cache(maxsize=4)
def _file_counter(path: str) -> TokenCounter:
    # Cached: loading a 9 MB tokenizer.json takes a moment, and a workload asks once per line.
    if not Path(path).is_file():
        raise ConfigurationError(f"tokenizer file not found: {path} (from ${TOKENIZER_ENV}?)")
    try:
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

    return TokenCounter(f"llama3 {Path(path).name} (tokenizers)", True, count)


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


def image_token_range(
    route: Route, price: Price | None, tiles: Sequence[int]
) -> tuple[int, int, int]:
    """(low, expected, high) input tokens billed for images of these ``tiles`` on ``route``.

    Per image, from the route's ``image_tokens`` (catalog data: Bedrock counts about 0,
    OpenRouter bills a per-image price instead, Ollama nothing), else 0, 1601 per tile and
    the padded 4 tiles (6,404). A price entry's ``image_tokens_low``/``image_tokens_high``
    override the ends.
    """
    low = expected = high = 0
    for count in tiles:
        if route.image_tokens is not None:
            each_low, each_expected, each_high = route.image_tokens
        else:
            each_low, each_expected, each_high = 0, image_positions(count), PADDED_IMAGE_TOKENS
        if price is not None and price.image_tokens_low is not None:
            each_low = price.image_tokens_low
        if price is not None and price.image_tokens_high is not None:
            each_high = price.image_tokens_high
        low += each_low
        expected += max(min(each_expected, each_high), each_low)
        high += max(each_high, each_low)
    return low, expected, high
