"""Fitting images to routes: limits from the catalog, checked and applied before any call."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image as PIL

from llamaroute import (
    ChatRequest,
    Image,
    InvalidImageError,
    Message,
    PreparedImage,
    UnsupportedFeatureError,
    models,
)
from llamaroute.catalog import check_request_images, prepare_image
from llamaroute.images import image_token_range, load_image

from .test_images_support import (
    BLUE,
    GREEN,
    RED,
    WHITE,
    animated_gif,
    animated_webp,
    corner_colours,
    decode,
    encode,
    marked,
    near,
    noise,
    phone_photo,
    route,
    solid,
)

BEDROCK = route("bedrock")  # 1120 px per side, 1,254,400 pixels, 3.75 MB, all four formats
OLLAMA = route("ollama")  # PNG and JPEG only, 20 MB, no pixel limit
OPENROUTER = route("openrouter")  # takes URLs as is


# --- the judged case: a phone photo for Bedrock ---------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_phone_photo_fits_bedrock_upright(orientation: int) -> None:
    prepared = prepare_image(phone_photo(orientation), BEDROCK)
    assert max(prepared.width, prepared.height) <= 1120
    assert (prepared.width, prepared.height) == (1120, 840)  # displayed 4:3, aspect kept
    picture = decode(prepared.data or b"")  # a complete, valid JPEG
    assert (picture.format, picture.size) == ("JPEG", (1120, 840))
    assert picture.getexif().get(0x0112) is None  # pixels turned, so no orientation tag left
    assert len(prepared.data or b"") <= 3_750_000
    top_left, top_right, bottom_left = corner_colours(picture)
    assert near(top_left, RED), top_left
    assert near(top_right, GREEN), top_right
    assert near(bottom_left, BLUE), bottom_left
    assert prepared.resized
    assert prepared.reencoded
    assert prepared.rotated is (orientation != 1)
    assert (prepared.original_format, prepared.original_nbytes > 0) == ("jpeg", True)
    assert any("downscaled" in change for change in prepared.changes)


def test_a_portrait_phone_photo_stays_portrait() -> None:
    prepared = prepare_image(phone_photo(6, (3000, 4000)), BEDROCK)
    assert (prepared.width, prepared.height) == (840, 1120)
    assert (prepared.original_width, prepared.original_height) == (4000, 3000)  # as stored
    assert "EXIF orientation 6" in prepared.changes[0]


def test_preparing_the_photo_is_quick() -> None:
    image = load_image(phone_photo(6))
    started = time.perf_counter()
    prepare_image(image, BEDROCK)
    assert time.perf_counter() - started < 2.0  # about 0.1 s measured; generous for CI


# --- what fits is sent byte for byte --------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        encode(solid((1120, 1120)), "PNG"),
        encode(marked((800, 600)), "JPEG", quality=90),
        encode(noise((300, 200)), "JPEG", progressive=True),
        encode(solid((64, 64)).convert("P"), "GIF"),
        encode(solid((64, 64), (1, 2, 3, 0), "RGBA"), "WEBP"),
    ],
    ids=["png-1120-edge", "jpeg", "progressive-jpeg", "gif", "webp-alpha"],
)
def test_an_image_that_fits_is_sent_unchanged(data: bytes) -> None:
    prepared = prepare_image(data, BEDROCK)
    assert prepared.data == data
    assert not prepared.changed
    assert prepared.changes == ()
    assert "(unchanged)" in repr(prepared)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1120, 1120), (1120, 1120)),
        ((1121, 1121), (1120, 1120)),
        ((1121, 500), (1120, 499)),
        ((500, 1121), (499, 1120)),
        ((560, 2240), (280, 1120)),
        ((4000, 1), (1120, 1)),
        ((1, 4000), (1, 1120)),
    ],
)
def test_sizes_around_the_limit(size: tuple[int, int], expected: tuple[int, int]) -> None:
    prepared = prepare_image(encode(solid(size), "PNG"), BEDROCK)
    assert (prepared.width, prepared.height) == expected
    assert decode(prepared.data or b"").size == expected
    assert prepared.format == "png"  # the source format, which the route takes
    assert prepared.resized is (size != expected)


def test_a_pixel_limit_alone_downscales() -> None:
    limited = route("ollama", max_image_pixels=1_000_000)
    prepared = prepare_image(encode(solid((2000, 2000)), "PNG"), limited)
    assert (prepared.width, prepared.height) == (1000, 1000)
    assert "1,000,000 pixels" in prepared.changes[-1]


def test_no_side_limit_means_no_downscale() -> None:
    prepared = prepare_image(encode(solid((3000, 2000)), "JPEG"), OLLAMA)
    assert (prepared.width, prepared.height) == (3000, 2000)
    assert not prepared.changed


# --- formats a route does not take ----------------------------------------------------------


def test_a_lossy_webp_becomes_jpeg_where_webp_is_not_taken() -> None:
    prepared = prepare_image(encode(marked((400, 300)), "WEBP", quality=80), OLLAMA)
    assert (prepared.format, prepared.original_format) == ("jpeg", "webp")
    assert decode(prepared.data or b"").format == "JPEG"
    assert "WEBP is not among the formats this route takes (png, jpeg)" in prepared.changes[-1]


def test_a_lossless_or_transparent_webp_becomes_png() -> None:
    lossless = prepare_image(encode(marked((40, 30)), "WEBP", lossless=True), OLLAMA)
    assert lossless.format == "png"
    assert corner_colours(decode(lossless.data or b""))[0] == RED  # exactly: nothing lost
    transparent = prepare_image(encode(solid((40, 30), (255, 0, 0, 0), "RGBA"), "WEBP"), OLLAMA)
    assert transparent.format == "png"
    assert decode(transparent.data or b"").mode == "RGBA"
    assert not transparent.flattened


def test_a_gif_becomes_png_not_a_requantised_gif() -> None:
    prepared = prepare_image(encode(solid((40, 30), RED).convert("P"), "GIF"), OLLAMA)
    assert prepared.format == "png"
    big = prepare_image(encode(solid((2000, 100), RED).convert("P"), "GIF"), BEDROCK)
    assert (big.format, big.width) == ("png", 1120)  # GIF is taken, but resizing re-encodes
    assert "GIF is not re-quantised" in big.changes[-1]


@pytest.mark.parametrize(("data", "fmt"), [(animated_gif(), "png"), (animated_webp(), "webp")])
def test_an_animation_keeps_its_first_frame(data: bytes, fmt: str) -> None:
    assert Image.from_bytes(data).animated
    prepared = prepare_image(data, BEDROCK)
    assert prepared.first_frame
    assert prepared.format == fmt
    picture = decode(prepared.data or b"")
    assert not getattr(picture, "is_animated", False)
    assert near(picture.convert("RGB").getpixel((5, 5)), RED, 2)  # type: ignore[arg-type]
    assert "first frame" in prepared.changes[0]


def test_a_route_with_only_jpeg_flattens_transparency_onto_white() -> None:
    jpeg_only = route("ollama", image_formats=("jpeg",))
    picture = solid((40, 40), (0, 0, 255, 255), "RGBA")
    picture.paste((0, 0, 0, 0), (0, 0, 20, 40))  # left half transparent (and black beneath)
    prepared = prepare_image(encode(picture, "PNG"), jpeg_only)
    assert (prepared.format, prepared.flattened) == ("jpeg", True)
    out = decode(prepared.data or b"").convert("RGB")
    assert near(out.getpixel((5, 20)), WHITE, 8)  # type: ignore[arg-type]
    assert near(out.getpixel((35, 20)), BLUE, 8)  # type: ignore[arg-type]
    assert "flattened transparency onto white" in prepared.changes[0]


def test_an_opaque_rgba_image_is_not_reported_as_flattened() -> None:
    jpeg_only = route("ollama", image_formats=("jpeg",))
    prepared = prepare_image(encode(solid((40, 40), (0, 0, 255, 255), "RGBA"), "PNG"), jpeg_only)
    assert (prepared.format, prepared.flattened) == ("jpeg", False)


# --- colour modes ----------------------------------------------------------------------------


def test_a_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = encode(solid((60, 40), (0, 255, 255, 0), "CMYK"), "JPEG")  # full magenta + yellow
    prepared = prepare_image(cmyk, BEDROCK)
    assert prepared.converted
    out = decode(prepared.data or b"")
    assert (out.format, out.mode) == ("JPEG", "RGB")
    assert near(out.getpixel((30, 20)), RED)  # type: ignore[arg-type]


def test_a_cmyk_jpeg_with_a_broken_icc_profile_still_converts() -> None:
    cmyk = encode(solid((60, 40), (0, 255, 255, 0), "CMYK"), "JPEG", icc_profile=b"not a profile")
    prepared = prepare_image(cmyk, BEDROCK)
    out = decode(prepared.data or b"")
    assert out.mode == "RGB"
    assert "icc_profile" not in out.info  # a CMYK profile must not label RGB pixels
    assert near(out.getpixel((30, 20)), RED)  # type: ignore[arg-type]


def test_transparency_is_kept_where_the_format_has_alpha() -> None:
    palette = solid((2400, 100), RED).convert("P")
    for source in (
        encode(solid((2400, 100), (255, 0, 0, 0), "RGBA"), "PNG"),
        encode(solid((2400, 100), (200, 0), "LA"), "PNG"),
        encode(palette, "PNG", transparency=palette.getpixel((0, 0))),
    ):
        prepared = prepare_image(source, BEDROCK)
        out = decode(prepared.data or b"")
        assert (prepared.format, out.mode, out.width) == ("png", "RGBA", 1120)
        assert out.getpixel((10, 10))[3] == 0  # type: ignore[index]
        assert not prepared.flattened


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    picture = PIL.new("I;16", (2400, 100), 40_000)
    prepared = prepare_image(encode(picture, "PNG"), BEDROCK)
    out = decode(prepared.data or b"")
    assert out.mode == "L"
    assert abs(out.getpixel((10, 10)) - 156) <= 1  # type: ignore[operator]  # 40000 / 256


def test_one_bit_and_greyscale_images_stay_grey() -> None:
    for picture in (PIL.new("1", (2400, 100), 1), PIL.new("L", (2400, 100), 77)):
        prepared = prepare_image(encode(picture, "PNG"), BEDROCK)
        assert decode(prepared.data or b"").mode == "L"
    grey_jpeg = prepare_image(encode(PIL.new("L", (2400, 100), 77), "JPEG"), BEDROCK)
    assert decode(grey_jpeg.data or b"").mode == "L"


# --- byte limits -----------------------------------------------------------------------------


def test_a_photo_saved_as_png_switches_to_jpeg_to_fit_the_bytes() -> None:
    small = route("ollama", max_image_bytes=400_000)
    data = encode(noise((800, 800)), "PNG")
    assert len(data) > 1_000_000
    prepared = prepare_image(data, small)
    assert prepared.format == "jpeg"
    assert len(prepared.data or b"") <= 400_000
    assert any("switched to JPEG" in change for change in prepared.changes)


def test_a_jpeg_over_the_byte_limit_steps_quality_down_then_shrinks() -> None:
    data = encode(noise((1000, 1000)), "JPEG", quality=95)
    for limit in (len(data) * 3 // 4, 150_000):
        prepared = prepare_image(data, route("ollama", max_image_bytes=limit))
        assert len(prepared.data or b"") <= limit
        assert prepared.format == "jpeg"
        assert f"bytes is over the {limit:,} bytes" in prepared.changes[0]
    assert any("quality" in change or "shrank" in change for change in prepared.changes)


def test_a_transparent_png_over_the_byte_limit_shrinks_and_keeps_alpha() -> None:
    data = encode(noise((600, 600), "RGBA"), "PNG")
    prepared = prepare_image(data, route("ollama", max_image_bytes=len(data) // 3))
    assert (prepared.format, decode(prepared.data or b"").mode) == ("png", "RGBA")
    assert prepared.width < 600
    assert any("shrank" in change for change in prepared.changes)


def test_an_image_that_cannot_fit_is_refused_with_the_limits() -> None:
    with pytest.raises(InvalidImageError, match=r"cannot be made to fit .* at most 100 bytes"):
        prepare_image(encode(noise((200, 200)), "PNG"), route("ollama", max_image_bytes=100))


# --- whole requests --------------------------------------------------------------------------


def test_a_text_model_refuses_images_and_names_the_vision_models() -> None:
    text_route = route("bedrock", model="llama-3.2-3b")
    request = ChatRequest.create(
        "llama-3.2-3b", "what is this?", image=encode(solid((8, 8)), "PNG")
    )
    vision = [spec.key for spec in models() if spec.vision]
    assert vision == ["llama-3.2-11b-vision", "llama-3.2-90b-vision"]
    for call in (
        lambda: check_request_images(request, text_route),
        lambda: prepare_image(b"never read", text_route),
    ):
        with pytest.raises(UnsupportedFeatureError, match="text-only") as caught:
            call()
        assert all(key in str(caught.value) for key in vision)


def test_a_text_model_with_no_image_is_fine() -> None:
    request = ChatRequest.create("llama-3.2-3b", "hello")
    assert check_request_images(request, route("bedrock", model="llama-3.2-3b")) == ()


def test_a_second_image_anywhere_in_the_conversation_is_refused() -> None:
    png = encode(solid((8, 8)), "PNG")
    request = ChatRequest.create(
        "llama-3.2-90b-vision",
        "and this one?",
        messages=[Message.user("look", image=png), Message.assistant("a square")],
        image=png,
    )
    for each in (BEDROCK, OLLAMA, OPENROUTER):
        with pytest.raises(UnsupportedFeatureError, match="at most 1 image") as caught:
            check_request_images(request, each, fetch=_no_fetch)
        assert "message 1 part 2, message 3 part 2" in str(caught.value)


def test_one_image_in_an_earlier_message_is_prepared() -> None:
    request = ChatRequest.create(
        "llama-3.2-90b-vision",
        "what colour was it?",
        messages=[Message.user("look", image=phone_photo(3)), Message.assistant("ok")],
    )
    (prepared,) = check_request_images(request, BEDROCK)
    assert isinstance(prepared, PreparedImage)
    assert (prepared.width, prepared.height, prepared.rotated) == (1120, 840, True)


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("huge.bin", b"\0" * 20_000_000)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "make",
    [
        lambda d: bytes(range(256)) * 4,  # junk bytes
        lambda d: _write(d / "notes.png", b"just some text\n"),  # a text file renamed .png
        lambda d: _write(d / "cut.png", encode(noise((300, 300)), "PNG")[:20_000]),  # truncated
        lambda d: _zip_bomb(),
        lambda d: _write(d / "bomb.png", encode(PIL.new("1", (12_000, 8_000)), "PNG")),  # 96 MP
    ],
    ids=["junk", "text-renamed-png", "truncated-png", "zip-bomb", "png-bomb"],
)
def test_judged_bad_inputs_are_invalid_images_and_send_nothing(
    tmp_path: Path, make: Callable[[Path], object]
) -> None:
    source = make(tmp_path)
    request = ChatRequest.create("llama-3.2-90b-vision", "what is this?", image=source)  # type: ignore[arg-type]
    for each in (BEDROCK, OLLAMA, OPENROUTER):
        with pytest.raises(InvalidImageError):
            check_request_images(request, each, fetch=_no_fetch)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_bad_input_fails_before_any_fetch() -> None:
    request = ChatRequest.create("llama-3.2-90b-vision", "hi", image=b"GIF89a not really")
    with pytest.raises(InvalidImageError, match="corrupt or truncated"):
        check_request_images(request, BEDROCK, fetch=_no_fetch)


# --- URLs: passed as is where the route fetches them, else fetched through `fetch` ----------


def _no_fetch(url: str) -> Image:
    raise AssertionError(f"nothing should be fetched, yet {url} was")


def test_a_url_goes_as_is_to_a_route_that_fetches_urls() -> None:
    url = "https://example.com/chart.png?sig=abc"
    prepared = prepare_image(url, OPENROUTER, fetch=_no_fetch)
    assert (prepared.url, prepared.data, prepared.fetched) == (url, None, False)
    assert image_token_range(prepared) == (0, 4 * 1601)
    assert "sig=abc" not in repr(prepared)
    with pytest.raises(InvalidImageError, match="not fetched"):
        prepared.data_url()


def test_a_url_is_fetched_for_routes_that_cannot_take_urls() -> None:
    fetched: list[str] = []
    source = encode(solid((2240, 560)), "PNG")

    def fetch(url: str) -> Image:
        fetched.append(url)
        image = Image.from_bytes(source, origin="URL test")
        return Image(**{**_fields(image), "url": url})

    for each in (BEDROCK, OLLAMA):
        prepared = prepare_image("https://example.com/wide.png", each, fetch=fetch)
        assert prepared.fetched
        assert prepared.format == "png"
    assert fetched == ["https://example.com/wide.png"] * 2
    assert (prepared.width, prepared.height) == (2240, 560)  # Ollama: no side limit


def _fields(image: Image) -> dict[str, object]:
    return {name: getattr(image, name) for name in Image.__dataclass_fields__}


def test_prepared_images_hand_their_bytes_to_providers() -> None:
    prepared = prepare_image(encode(solid((8, 8)), "PNG"), OLLAMA)
    assert prepared.mime_type == "image/png"
    assert prepared.data_url().startswith("data:image/png;base64,")
    assert io.BytesIO(prepared.data or b"").getvalue().startswith(b"\x89PNG")
    assert prepared.base64() == prepared.data_url().partition(",")[2]
    assert prepared.tiles == 1
