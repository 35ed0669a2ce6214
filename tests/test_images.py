"""Loading images: every source kind, the format sniffed from the bytes, every kind of bad input
refused with InvalidImageError, and the token figures for estimates."""

from __future__ import annotations

import base64
import io
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PIL

from llamaroute import (
    ChatRequest,
    Image,
    ImagePart,
    InvalidImageError,
    InvalidRequestError,
    Message,
)
from llamaroute.images import (
    MAX_TILES,
    POSITIONS_PER_TILE,
    image_tiles,
    image_token_range,
    load_image,
    redact_url,
    sniff_format,
)

from .test_images_support import (
    RED,
    animated_gif,
    animated_webp,
    encode,
    noise,
    phone_photo,
    solid,
)

PNG = encode(solid((64, 48)), "PNG")
JPEG = encode(solid((64, 48)), "JPEG")
GIF = encode(solid((64, 48)).convert("P"), "GIF")
WEBP = encode(solid((64, 48)), "WEBP")
SAMPLES = {"png": PNG, "jpeg": JPEG, "gif": GIF, "webp": WEBP}


# --- sniffing and loading -------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "data"), list(SAMPLES.items()))
def test_each_format_is_sniffed_and_sized(fmt: str, data: bytes) -> None:
    assert sniff_format(data) == fmt
    image = Image.from_bytes(data)
    assert (image.format, image.width, image.height) == (fmt, 64, 48)
    assert image.mime_type == f"image/{fmt}"


def test_unknown_bytes_sniff_as_nothing() -> None:
    assert sniff_format(b"BM" + b"\0" * 50) is None
    assert sniff_format(b"RIFF\0\0\0\0WAVE") is None
    assert sniff_format(b"") is None


def test_every_source_kind_loads(tmp_path: Path) -> None:
    path = tmp_path / "chart.png"
    path.write_bytes(PNG)
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    loaded = {
        "str path": load_image(str(path)),
        "Path": load_image(path),
        "bytes": load_image(PNG),
        "bytearray": load_image(bytearray(PNG)),
        "memoryview": load_image(memoryview(PNG)),
        "data URL": load_image(data_url),
        "PIL image": load_image(solid((64, 48))),
    }
    for kind, image in loaded.items():
        assert (image.format, image.width, image.height) == ("png", 64, 48), kind
    image = loaded["Path"]
    assert load_image(image) is image
    assert "file" in image.origin


def test_an_http_url_is_kept_unfetched() -> None:
    image = load_image("https://example.com/chart.png")
    assert not image.is_fetched
    assert image.url == "https://example.com/chart.png"
    assert image.tiles is None
    with pytest.raises(InvalidImageError, match="not fetched"):
        image.data_url()


def test_the_file_name_and_declared_type_are_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "really-a-png.jpg"
    path.write_bytes(PNG)
    assert load_image(path).format == "png"
    lying = "data:image/jpeg;base64," + base64.b64encode(PNG).decode()
    image = load_image(lying)
    assert image.format == "png"
    assert image.data_url().startswith("data:image/png;base64,")


def test_base64_and_data_url_round_trip() -> None:
    image = Image.from_bytes(JPEG)
    assert base64.b64decode(image.base64()) == JPEG
    assert load_image(image.data_url()).data == JPEG


def test_what_the_decoder_found_is_recorded() -> None:
    assert Image.from_bytes(phone_photo(6, (80, 60))).orientation == 6
    assert Image.from_bytes(JPEG).orientation == 1
    assert Image.from_bytes(animated_gif()).animated
    assert Image.from_bytes(animated_webp()).animated
    assert not Image.from_bytes(GIF).animated
    assert Image.from_bytes(encode(solid((8, 8), (1, 2, 3, 0), "RGBA"), "PNG")).has_alpha
    assert Image.from_bytes(encode(solid((8, 8), (1, 0), "LA"), "PNG")).has_alpha
    palette = solid((8, 8)).convert("P")
    assert Image.from_bytes(encode(palette, "PNG", transparency=0)).has_alpha
    assert not Image.from_bytes(PNG).has_alpha
    cmyk = Image.from_bytes(encode(solid((8, 8), (0, 255, 255, 0), "CMYK"), "JPEG"))
    assert cmyk.mode == "CMYK"
    assert Image.from_bytes(encode(solid((8, 8)), "WEBP", lossless=True)).lossless
    assert not Image.from_bytes(encode(solid((8, 8)), "WEBP", quality=80)).lossless
    assert Image.from_bytes(PNG).lossless
    assert not Image.from_bytes(JPEG).lossless


def test_progressive_jpeg_loads() -> None:
    data = encode(noise((300, 200)), "JPEG", progressive=True, quality=85)
    assert Image.from_bytes(data).width == 300


def test_pil_images_are_made_upright_and_keep_alpha() -> None:
    rotated = PIL.open(io.BytesIO(phone_photo(6, (80, 60))))
    assert rotated.size == (60, 80)  # stored on its side, displayed 80x60
    image = Image.from_pil(rotated)
    assert (image.format, image.width, image.height, image.orientation) == ("jpeg", 80, 60, 1)
    transparent = Image.from_pil(solid((10, 10), (255, 0, 0, 0), "RGBA"))
    assert (transparent.format, transparent.has_alpha) == ("png", True)
    assert Image.from_pil(solid((10, 10), (0, 255, 255, 0), "CMYK")).mode == "RGB"
    assert Image.from_pil(PIL.new("F", (10, 10), 3.5)).mode == "L"


def test_repr_hides_credentials_and_query_strings() -> None:
    image = load_image("https://user:hunter2@example.com/a.png?X-Amz-Signature=CANARY")
    assert "hunter2" not in repr(image)
    assert "CANARY" not in repr(image)
    assert "example.com/a.png" in repr(image)
    assert "bytes from bytes" in repr(Image.from_bytes(PNG))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@host.example:8443/x.png?sig=1#frag", "https://host.example:8443/x.png?..."),
        ("http://[::1]:80/a", "http://[::1]:80/a"),
        ("https://example.com/" + "a" * 200, "https://example.com/" + "a" * 57 + "..."),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# --- bad input: always InvalidImageError, with the reason -----------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming a size, then a tiny IDAT: what a bomb looks like."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("image.png", b"\0" * 10_000_000)  # 10 MB of zeros in ~10 KB
    return buffer.getvalue()


def _corrupt_crc(data: bytes) -> bytes:
    broken = bytearray(data)
    broken[-20] ^= 0xFF  # inside the last IDAT chunk: its CRC no longer matches
    return bytes(broken)


BAD_BYTES = {
    "junk": (b"\x00\x01garbage\xff" * 10, "not a PNG, JPEG, GIF or WebP"),
    "text renamed .png": (b"hello, I am a text file\n", "not a PNG, JPEG, GIF or WebP"),
    "html": (b"<!doctype html><title>404</title>", "not a PNG, JPEG, GIF or WebP"),
    "truncated PNG": (encode(noise((200, 200)), "PNG")[:3000], "corrupt or truncated"),
    "truncated JPEG": (encode(noise((200, 200)), "JPEG")[:3000], "corrupt or truncated"),
    "truncated GIF": (encode(noise((200, 200)).convert("P"), "GIF")[:3000], "corrupt or truncated"),
    "truncated WebP": (encode(noise((200, 200)), "WEBP")[:3000], "corrupt or truncated"),
    "PNG with a bad CRC": (_corrupt_crc(encode(noise((50, 50)), "PNG")), "corrupt or truncated"),
    "PNG magic only": (b"\x89PNG\r\n\x1a\n", "corrupt or truncated"),
    "zip bomb": (_zip_bomb(), "not a PNG, JPEG, GIF or WebP"),
    "PNG bomb header": (_png_header(30_000, 30_000), "decompression-bomb limit"),
    "zero-size PNG": (_png_header(0, 10), "corrupt or truncated|no pixels"),
    "BMP": (encode(solid((8, 8)), "BMP"), "not a PNG, JPEG, GIF or WebP"),
    "TIFF": (encode(solid((8, 8)), "TIFF"), "not a PNG, JPEG, GIF or WebP"),
    "empty": (b"", "empty"),
}


@pytest.mark.parametrize("name", list(BAD_BYTES))
def test_bad_bytes_are_refused_with_the_reason(name: str) -> None:
    data, reason = BAD_BYTES[name]
    with pytest.raises(InvalidImageError, match=reason):
        load_image(data)


def test_a_real_bomb_over_pillows_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # A genuine, valid PNG that decompresses to more pixels than Pillow's limit allows (the
    # limit is lowered so that the test stays small; the check reads PIL.Image.MAX_IMAGE_PIXELS).
    data = encode(solid((2000, 2000)), "PNG")
    assert len(data) < 50_000  # tiny on disk, 12 MB decoded
    monkeypatch.setattr(PIL, "MAX_IMAGE_PIXELS", 1_000_000)
    with pytest.raises(InvalidImageError, match="decompression-bomb limit of 1,000,000"):
        Image.from_bytes(data)


def test_pillows_limit_cannot_be_switched_off_by_accident(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PIL, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(InvalidImageError, match="decompression-bomb limit of 89,478,485"):
        Image.from_bytes(_png_header(10_000, 10_000))


def _file(directory: Path, name: str, content: bytes) -> Path:
    (directory / name).write_bytes(content)
    return directory / name


def _fifo(directory: Path) -> Path:
    os.mkfifo(directory / "pipe.png")  # reading it would block forever
    return directory / "pipe.png"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "missing.png", "not found"),
        (lambda d: d, "is a directory"),
        (lambda d: _file(d, "empty.png", b""), "empty"),
        (lambda d: _file(d, "notes.png", b"a text file"), "not a PNG"),
        (lambda d: _file(d, "cut.png", encode(noise((99, 99)), "PNG")[:-6]), "truncated"),
        (_fifo, "not a regular file"),
    ],
    ids=["missing", "directory", "empty", "text-as-png", "truncated-png", "fifo"],
)
def test_bad_paths_are_refused_with_the_reason(tmp_path: Path, make: Any, reason: str) -> None:
    path = make(tmp_path)
    for source in (path, str(path)):
        with pytest.raises(InvalidImageError, match=reason):
            load_image(source)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (42, "not int"),
        (None, "not NoneType"),
        ({"url": "x"}, "not dict"),
        ("   ", "path is empty"),
        ("data:image/png,xyz", "only base64"),
        ("data:image/png;base64,@@@", "not valid base64"),
        ("data:nothing", "malformed data: URL"),
        ("ftp://example.com/a.png", "no such|not found"),  # not a URL we take: a path, missing
    ],
)
def test_bad_sources_are_refused(source: object, reason: str) -> None:
    with pytest.raises(InvalidImageError, match=reason):
        load_image(source)


def test_non_http_schemes_are_refused_as_urls() -> None:
    with pytest.raises(InvalidImageError, match="http or https"):
        Image.from_url("file:///etc/passwd")


def test_a_pil_image_that_cannot_be_encoded_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(PNG)
    picture = PIL.open(path)
    picture.close()  # lazy and closed: there is nothing left to read
    with pytest.raises(InvalidImageError, match="cannot encode the PIL image"):
        load_image(picture)


# --- junk from hypothesis: InvalidImageError, never anything else ----------------------------

MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"GIF87a", b"RIFF\x10\0\0\0WEBP"]
JUNK = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _loads_or_refuses(data: bytes) -> None:
    try:
        image = Image.from_bytes(data)
    except InvalidImageError:
        return
    assert image.width > 0
    assert image.height > 0


@JUNK
@given(st.binary(max_size=4096))
def test_junk_bytes_are_refused(data: bytes) -> None:
    _loads_or_refuses(data)
    if sniff_format(data) is None:
        with pytest.raises(InvalidImageError):
            Image.from_bytes(data)


@JUNK
@given(st.sampled_from(MAGICS), st.binary(max_size=4096))
def test_junk_behind_a_real_magic_number_is_refused(magic: bytes, tail: bytes) -> None:
    _loads_or_refuses(magic + tail)


@JUNK
@given(
    st.sampled_from(sorted(SAMPLES)),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_mutated_images_load_or_are_refused(fmt: str, flips: list[tuple[int, int]]) -> None:
    data = bytearray(SAMPLES[fmt])
    for position, value in flips:
        data[position % len(data)] = value
    _loads_or_refuses(bytes(data))


@JUNK
@given(st.sampled_from(sorted(SAMPLES)), st.integers(min_value=1, max_value=10_000))
def test_truncated_images_load_or_are_refused(fmt: str, keep: int) -> None:
    data = SAMPLES[fmt]
    cut = data[: keep % len(data)]
    if fmt == "gif" and len(data) - len(cut) <= 2:
        # Only the trailer byte (and the empty block before it) is missing: every pixel is
        # there, and GIF decoders, Pillow's included, accept that.
        _loads_or_refuses(cut)
        return
    with pytest.raises(InvalidImageError, match=r"truncated|corrupt|empty|not a PNG"):
        Image.from_bytes(cut)


# --- token figures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "tiles"),
    [((560, 560), 1), ((561, 560), 2), ((1120, 560), 2), ((1120, 1120), 4), ((560, 2240), 4),
     ((1121, 1121), 4), ((4000, 3000), 4), ((1, 1), 1)],
)  # fmt: skip
def test_tiles(size: tuple[int, int], tiles: int) -> None:
    assert image_tiles(*size) == tiles


def test_tiles_need_a_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        image_tiles(0, 10)


def test_token_range() -> None:
    assert POSITIONS_PER_TILE == 1601
    assert image_token_range(Image.from_bytes(encode(solid((560, 560)), "PNG"))) == (0, 1601)
    assert image_token_range(Image.from_bytes(encode(solid((600, 560)), "PNG"))) == (0, 3202)
    unknown = load_image("https://example.com/a.png")
    assert image_token_range(unknown) == (0, MAX_TILES * 1601)


# --- ImagePart and Message take every kind, without loading it -------------------------------


def test_image_parts_take_every_source_kind_without_loading(tmp_path: Path) -> None:
    sources: list[object] = [
        b"not even checked yet",
        "missing.png",
        tmp_path / "missing.png",
        "https://example.com/a.png",
        "http://169.254.169.254/latest/meta-data/",  # not fetched at construction
        "data:image/png;base64,AAAA",
        solid((4, 4)),
        Image.from_bytes(PNG),
    ]
    for source in sources:
        assert ImagePart(image=source).image is source
        message = Message.user("look", image=source)  # type: ignore[arg-type]
        assert message.images[0].image is source


def test_mutable_buffers_are_copied() -> None:
    buffer = bytearray(PNG)
    part = ImagePart(image=buffer)
    buffer[:4] = b"XXXX"
    assert part.image == PNG
    assert isinstance(ImagePart(image=memoryview(PNG)).image, bytes)


@pytest.mark.parametrize("source", [42, 3.5, ["a.png"], {"url": "a"}, object()])
def test_image_parts_refuse_other_types(source: object) -> None:
    with pytest.raises(ValueError, match="image takes a file path, bytes"):
        ImagePart(image=source)
    with pytest.raises(InvalidRequestError, match="image takes a file path"):
        ChatRequest.create("llama-3.2-90b-vision", "hi", image=source)  # type: ignore[arg-type]


def test_requests_carry_any_source_kind() -> None:
    request = ChatRequest.create("llama-3.2-90b-vision", "what is it?", image=solid((4, 4)))  # type: ignore[arg-type]
    assert isinstance(request.images[0].image, PIL.Image)
    with_red = Message.user("and this?", image=solid((4, 4), RED))
    assert len(ChatRequest.create("llama-3.2-90b-vision", messages=[with_red]).images) == 1
