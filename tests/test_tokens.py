"""Token estimates: per-language text rates, the chat template, exact counting, image tiles."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import ClassVar

import pytest

from llamaroute import ConfigurationError, InvalidImageError
from llamaroute.money import (
    CHARS_PER_TOKEN,
    TOKENIZER_ENV,
    chat_template_tokens,
    detect_language,
    estimate_text_tokens,
    image_positions,
    image_tiles_for,
    text_counter,
)

from .conftest import make_png

# Exact Llama 3 counts of these sentences, measured once with quicktok-v1's "llama3" encoding
# (the tests must not need it): (text, exact tokens).
SAMPLES = {
    "en": ("Please summarise the attached report in three short bullet points for the board.", 15),
    "de": ("Bitte fasse den beigefügten Bericht in drei kurzen Stichpunkten für den Vorstand "
           "zusammen.", 26),
    "fr": ("Merci de résumer le rapport ci-joint en trois points courts pour le conseil.", 19),
    "it": ("Per favore riassumi il rapporto allegato in tre brevi punti per il consiglio.", 23),
    "pt": ("Por favor, resuma o relatório em anexo em três tópicos curtos para o conselho.", 24),
    "es": ("Por favor, resume el informe adjunto en tres puntos breves para la junta.", 19),
    "hi": ("कृपया संलग्न रिपोर्ट को बोर्ड के लिए तीन छोटे बिंदुओं में सारांशित करें।", 41),
    "th": ("กรุณาสรุปรายงานที่แนบมาเป็นสามข้อสั้น ๆ สำหรับคณะกรรมการ", 26),
}  # fmt: skip


@pytest.mark.parametrize("lang", SAMPLES)
def test_estimate_is_within_fifteen_percent_of_the_exact_count(lang: str) -> None:
    text, exact = SAMPLES[lang]
    assert abs(estimate_text_tokens(text) - exact) <= 0.15 * exact


@pytest.mark.parametrize("lang", ["en", "de", "pt", "es", "hi", "th"])
def test_language_is_detected(lang: str) -> None:
    assert detect_language(SAMPLES[lang][0]) == lang


def test_languages_get_their_own_rates() -> None:
    # The same length of text costs more tokens in Hindi than in German than in English.
    english = "word " * 200
    assert estimate_text_tokens("अ" * 1000) > estimate_text_tokens("wörter " * 143)
    assert estimate_text_tokens("Über die Brücke " * 60) > estimate_text_tokens(english[:960])
    assert CHARS_PER_TOKEN["en"] > CHARS_PER_TOKEN["de"] > CHARS_PER_TOKEN["hi"]


def test_digits_and_punctuation_cost_more_than_prose() -> None:
    prose = "the cat sat on the mat and looked at the dog for a while"
    code = '{"a": [1, 2, 3], "b": {"c": 4.5}, "d": null, "e": "x-y"}'
    assert len(code) == len(prose)
    assert estimate_text_tokens(code) > estimate_text_tokens(prose) * 1.5


def test_empty_and_other_scripts() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("a") == 1
    assert detect_language("这是一个用于测试的中文句子") == "cjk"
    assert detect_language("Привет, как дела? Это тест.") == "other"
    assert detect_language("Hello 🙂, this is the English text with an emoji") == "en"


def test_chat_template_overhead_is_the_llama3_template() -> None:
    # <|begin_of_text|> + per message 5 (header, role, header end, "\n\n", <|eot_id|>)
    # + the reply header 4, + one <|image|> per image.
    assert chat_template_tokens(1) == 10
    assert chat_template_tokens(2) == 15
    assert chat_template_tokens(1, images=1) == 11


def test_template_matches_the_exact_tokenizer_when_available() -> None:
    quicktok = pytest.importorskip("quicktok")
    encoder = quicktok.get_encoding("llama3")
    rendered = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    content = len(encoder.encode("Be brief.")) + len(encoder.encode("How are you?"))
    assert len(encoder.encode(rendered, allowed_special="all")) == chat_template_tokens(2) + content
    for text, exact in SAMPLES.values():
        assert len(encoder.encode(text)) == exact


@pytest.mark.parametrize(
    ("size", "tiles"),
    [((100, 100), 1), ((560, 560), 1), ((561, 560), 2), ((800, 500), 2), ((1120, 1120), 4),
     ((3000, 200), 4), ((200, 1700), 4)],
)  # fmt: skip
def test_image_tiles(tmp_path: Path, size: tuple[int, int], tiles: int) -> None:
    path = make_png(tmp_path / "i.png", *size)
    assert image_tiles_for(path) == tiles
    assert image_tiles_for(str(path)) == tiles
    assert image_positions(tiles) == tiles * 1601


def test_an_unfetched_url_counts_as_four_tiles() -> None:
    assert image_tiles_for("https://example.com/chart.png") == 4


def test_bad_images_are_typed_errors(tmp_path: Path, not_an_image: Path) -> None:
    with pytest.raises(InvalidImageError, match="not found"):
        image_tiles_for(tmp_path / "missing.png")
    with pytest.raises(InvalidImageError, match="not a PNG, JPEG, GIF or WebP"):
        image_tiles_for(not_an_image)


def test_without_a_tokenizer_the_estimate_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKENIZER_ENV, raising=False)
    assert text_counter() is estimate_text_tokens


class _FakeEncoding:
    def __init__(self, text: str) -> None:
        self.ids = text.split()


class _FakeTokenizer:
    loaded: ClassVar[list[str]] = []

    @classmethod
    def from_file(cls, path: str) -> _FakeTokenizer:
        cls.loaded.append(path)
        if Path(path).read_text() != "{}":
            raise Exception("not a tokenizer")  # what tokenizers raises
        return cls()

    def encode(self, text: str, add_special_tokens: bool = True) -> _FakeEncoding:
        assert add_special_tokens is False
        return _FakeEncoding(text)


@pytest.fixture
def fake_tokenizers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in `tokenizers` package (the real one is optional and not a test dependency)."""
    monkeypatch.setitem(sys.modules, "tokenizers", types.SimpleNamespace(Tokenizer=_FakeTokenizer))


@pytest.mark.usefixtures("fake_tokenizers")
def test_exact_counting_with_a_tokenizer_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text("{}")
    count = text_counter(path)
    assert count("one two three") == 3
    monkeypatch.setenv(TOKENIZER_ENV, str(path))
    assert text_counter()("a b") == 2
    assert _FakeTokenizer.loaded.count(str(path.resolve())) == 1  # loaded once, then cached


@pytest.mark.usefixtures("fake_tokenizers")
def test_a_broken_tokenizer_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("nope")
    with pytest.raises(ConfigurationError, match="cannot load the tokenizer"):
        text_counter(path)
    with pytest.raises(ConfigurationError, match="tokenizer file not found"):
        text_counter(tmp_path / "absent.json")


def test_exact_counting_without_the_package_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # makes the import fail
    path = tmp_path / "other.json"
    path.write_text("{}")
    with pytest.raises(ConfigurationError, match="pip install tokenizers"):
        text_counter(path)
