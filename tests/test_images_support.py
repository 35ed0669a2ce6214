"""Image factories shared by the image and fetch tests (no tests here).

Every image is made with Pillow inside the test run: nothing is checked in, nothing is
downloaded.
"""

from __future__ import annotations

import io
import random
from typing import Any

from PIL import Image as PIL

from llamaroute import Route, get_model

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)

# EXIF orientation N says how to turn the stored pixels to display them (EXIF 2.32, tag 0x0112).
# To make a file that *displays* as `upright`, store the inverse of that turn.
STORE_FOR_ORIENTATION: dict[int, PIL.Transpose | None] = {
    1: None,
    2: PIL.Transpose.FLIP_LEFT_RIGHT,  # displayed mirrored: mirroring is its own inverse
    3: PIL.Transpose.ROTATE_180,
    4: PIL.Transpose.FLIP_TOP_BOTTOM,
    5: PIL.Transpose.TRANSPOSE,  # mirror + rotate: its own inverse
    6: PIL.Transpose.ROTATE_90,  # displayed by turning 90° clockwise: store 90° anticlockwise
    7: PIL.Transpose.TRANSVERSE,
    8: PIL.Transpose.ROTATE_270,  # displayed by turning 90° anticlockwise
}


def encode(picture: PIL.Image, fmt: str, **options: Any) -> bytes:
    """The image saved as ``fmt`` (a Pillow format name)."""
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decode(data: bytes) -> PIL.Image:
    """Open and fully decode bytes (fails on anything invalid)."""
    picture = PIL.open(io.BytesIO(data))
    picture.load()
    return picture


def solid(
    size: tuple[int, int], colour: tuple[int, ...] = (90, 140, 200), mode: str = "RGB"
) -> PIL.Image:
    """A plain image."""
    return PIL.new(mode, size, colour)


def noise(size: tuple[int, int], mode: str = "RGB", seed: int = 7) -> PIL.Image:
    """Deterministic random pixels: incompressible, for byte-limit tests."""
    channels = len(mode)
    data = random.Random(seed).randbytes(size[0] * size[1] * channels)
    return PIL.frombytes(mode, size, data)


def marked(size: tuple[int, int]) -> PIL.Image:
    """White, with a red block top-left, green top-right and blue bottom-left (as displayed),
    so that orientation mistakes show."""
    picture = solid(size, WHITE)
    block = (size[0] // 8, size[1] // 8)
    picture.paste(RED, (0, 0, *block))
    picture.paste(GREEN, (size[0] - block[0], 0, size[0], block[1]))
    picture.paste(BLUE, (0, size[1] - block[1], block[0], size[1]))
    return picture


def corner_colours(picture: PIL.Image) -> tuple[tuple[int, ...], ...]:
    """The colours near the top-left, top-right and bottom-left corners."""
    rgb = picture.convert("RGB")
    w, h = rgb.size
    dx, dy = max(1, w // 32), max(1, h // 32)
    return tuple(rgb.getpixel(xy) for xy in ((dx, dy), (w - 1 - dx, dy), (dx, h - 1 - dy)))  # type: ignore[misc]


def near(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 40) -> bool:
    """Colours equal within a JPEG-sized tolerance."""
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def phone_photo(orientation: int, size: tuple[int, int] = (4000, 3000)) -> bytes:
    """A JPEG that displays as ``marked(size)`` through EXIF ``orientation``."""
    upright = marked(size)
    turn = STORE_FOR_ORIENTATION[orientation]
    stored = upright if turn is None else upright.transpose(turn)
    exif = PIL.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "llamaroute test camera"
    return encode(stored, "JPEG", quality=90, exif=exif)


def animated_gif(colours: tuple[tuple[int, int, int], ...] = (RED, GREEN, BLUE)) -> bytes:
    """A small GIF animation, one solid colour per frame."""
    frames = [solid((40, 30), colour).convert("P") for colour in colours]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def animated_webp(colours: tuple[tuple[int, int, int], ...] = (RED, GREEN, BLUE)) -> bytes:
    """A small animated WebP, one solid colour per frame."""
    frames = [solid((40, 30), colour) for colour in colours]
    return encode(
        frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True
    )


def route(provider: str, model: str = "llama-3.2-90b-vision", **changes: Any) -> Route:
    """A catalog route, optionally with some fields changed."""
    spec = get_model(model)
    found = next(r for r in spec.routes if r.provider == provider and not r.opt_in)
    return found.model_copy(update=changes) if changes else found
