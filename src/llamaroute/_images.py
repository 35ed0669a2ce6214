"""Image input: load what the caller has, sniff the format from the bytes, read the size.

This module is the core that providers and estimates share:

* :class:`Image` holds an image's bytes with the format sniffed from those bytes (never from a
  file name or a declared MIME type) and its pixel size, or, for an ``http(s)://`` URL that has
  not been fetched, just the URL.
* :func:`load_image` turns anything a caller may pass as ``image=`` into an :class:`Image`.
* :func:`image_tiles` is Llama 3.2 Vision's tile count for a given size (560 px tiles, at most 4).

Pillow is imported only when an image's size is needed, never at ``import llamaroute``.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

from ._exceptions import InvalidImageError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "MAX_TILES",
    "MIME_TYPES",
    "POSITIONS_PER_TILE",
    "TILE_SIZE",
    "Image",
    "ImageFormat",
    "ImageSource",
    "image_tiles",
    "load_image",
    "sniff_format",
]

ImageFormat = Literal["png", "jpeg", "gif", "webp"]

MIME_TYPES: dict[ImageFormat, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
}

#: Llama 3.2 Vision cuts an image into square tiles of this many pixels (vision config
#: ``image_size: 560``), at most :data:`MAX_TILES` of them, each giving 1600 patches of 14 px
#: plus a class token (meta-llama/llama-models ``models/llama3/args.py`` and
#: ``multimodal/model.py``).
TILE_SIZE = 560
MAX_TILES = 4
POSITIONS_PER_TILE = 1601


def sniff_format(data: bytes) -> ImageFormat | None:
    """The image format the bytes really are (from their magic numbers), or ``None``."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    return None


def image_tiles(width: int, height: int) -> int:
    """How many 560 px tiles Llama 3.2 Vision uses for an image of this size (1 to 4).

    The model resizes the image onto the best canvas of at most four tiles (1x1 up to 2x2,
    1x4 or 4x1), so this is ``min(ceil(w / 560) * ceil(h / 560), 4)``.
    """
    if width <= 0 or height <= 0:
        raise ValueError("image width and height must be positive")
    return min(math.ceil(width / TILE_SIZE) * math.ceil(height / TILE_SIZE), MAX_TILES)


@dataclass(frozen=True, slots=True, repr=False)
class Image:
    """An image ready to be checked and sent.

    Either ``data`` is set (the bytes, with ``format`` sniffed from them and the pixel
    ``width`` and ``height``), or only ``url`` is (an ``http(s)://`` image not fetched yet:
    a provider that takes URLs gets it as is; the others fetch it first).

    Build one with :func:`load_image` or the ``from_*`` constructors; they raise
    :class:`~llamaroute.InvalidImageError` for anything that is not a usable image.
    """

    data: bytes | None
    format: ImageFormat | None
    width: int
    height: int
    url: str | None = None
    origin: str = "bytes"

    def __repr__(self) -> str:
        if self.data is None:
            return f"<Image url={_short(self.url or '')}>"
        return (
            f"<Image {self.format} {self.width}x{self.height} {len(self.data):,} bytes "
            f"from {self.origin}>"
        )

    @property
    def is_fetched(self) -> bool:
        """Whether the bytes are here (``False`` for a URL not fetched yet)."""
        return self.data is not None

    @property
    def mime_type(self) -> str:
        """The MIME type of the bytes (``image/png``, ...)."""
        return MIME_TYPES[self._require_format()]

    @property
    def tiles(self) -> int | None:
        """Llama 3.2 Vision tiles for this image, or ``None`` while its size is unknown."""
        return image_tiles(self.width, self.height) if self.data is not None else None

    def base64(self) -> str:
        """The bytes as base64 text, without a ``data:`` prefix (what Ollama wants)."""
        return base64.b64encode(self._require_data()).decode("ascii")

    def data_url(self) -> str:
        """The image as a ``data:<mime>;base64,...`` URL (what OpenAI-style APIs take)."""
        return f"data:{self.mime_type};base64,{self.base64()}"

    def _require_data(self) -> bytes:
        if self.data is None:
            raise InvalidImageError(f"the image at {self.url} has not been fetched")
        return self.data

    def _require_format(self) -> ImageFormat:
        self._require_data()
        assert self.format is not None  # set whenever data is
        return self.format

    @classmethod
    def from_bytes(cls, data: bytes, *, origin: str = "bytes") -> Image:
        """An image from raw bytes; the format is sniffed and the size read from them."""
        if not data:
            raise InvalidImageError(f"the image from {origin} is empty (0 bytes)")
        found = sniff_format(data)
        if found is None:
            raise InvalidImageError(
                f"the data from {origin} is not a PNG, JPEG, GIF or WebP image "
                f"(it starts with {data[:8]!r})"
            )
        width, height = _read_size(data, found, origin)
        return cls(data=data, format=found, width=width, height=height, origin=origin)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> Image:
        """An image read from a file; the file name's extension is ignored."""
        location = Path(path)
        try:
            data = location.read_bytes()
        except FileNotFoundError:
            raise InvalidImageError(f"image file not found: {location}") from None
        except IsADirectoryError:
            raise InvalidImageError(f"image path is a directory, not a file: {location}") from None
        except OSError as error:
            raise InvalidImageError(f"cannot read image file {location}: {error}") from None
        return cls.from_bytes(data, origin=f"file {location}")

    @classmethod
    def from_data_url(cls, url: str) -> Image:
        """An image from a ``data:`` URL. The declared MIME type is not trusted: the bytes are
        sniffed like any others."""
        header, comma, payload = url.partition(",")
        if not comma or not header.lower().startswith("data:"):
            raise InvalidImageError("malformed data: URL (expected 'data:<type>;base64,<data>')")
        if not header.lower().endswith(";base64"):
            raise InvalidImageError("only base64 data: URLs are supported for images")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidImageError("the data: URL's base64 payload is not valid base64") from None
        return cls.from_bytes(data, origin="data: URL")

    @classmethod
    def from_url(cls, url: str) -> Image:
        """An ``http(s)://`` image, not fetched yet."""
        scheme = url.split(":", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise InvalidImageError(f"image URLs must be http or https, not {scheme}:")
        return cls(data=None, format=None, width=0, height=0, url=url, origin="url")

    @classmethod
    def from_pil(cls, picture: PILImage) -> Image:
        """An image from a Pillow image, saved as PNG (lossless) unless it came from a JPEG."""
        target = "JPEG" if picture.format == "JPEG" and picture.mode in ("RGB", "L") else "PNG"
        buffer = io.BytesIO()
        try:
            picture.save(buffer, format=target)
        except (OSError, ValueError) as error:
            raise InvalidImageError(f"cannot encode the PIL image: {error}") from None
        return cls.from_bytes(buffer.getvalue(), origin="PIL image")


ImageSource: TypeAlias = "Image | bytes | str | os.PathLike[str] | PILImage"
"""What ``image=`` accepts: a path, bytes, a ``data:`` or ``http(s)://`` URL, a PIL image, or
an :class:`Image`."""


def load_image(source: object) -> Image:
    """Turn anything ``image=`` accepts into an :class:`Image`, or raise
    :class:`~llamaroute.InvalidImageError` saying why it cannot be one."""
    if isinstance(source, Image):
        return source
    if isinstance(source, bytes | bytearray | memoryview):
        return Image.from_bytes(bytes(source))
    if isinstance(source, str):
        text = source.strip()
        lowered = text[:8].lower()
        if lowered.startswith("data:"):
            return Image.from_data_url(text)
        if lowered.startswith(("http://", "https://")):
            return Image.from_url(text)
        if not text:
            raise InvalidImageError("the image path is empty")
        return Image.from_path(text)
    if isinstance(source, os.PathLike):
        return Image.from_path(source)
    if _is_pil_image(source):
        return Image.from_pil(source)  # type: ignore[arg-type]
    raise InvalidImageError(
        "image= takes a file path, bytes, a data: or http(s):// URL, a PIL image or a "
        f"llamaroute.Image, not {type(source).__name__}"
    )


def _is_pil_image(value: object) -> bool:
    # Check by module name so that a caller without Pillow never makes us import it.
    return any(cls.__module__.startswith("PIL.") for cls in type(value).__mro__)


def _read_size(data: bytes, found: ImageFormat, origin: str) -> tuple[int, int]:
    # Deferred: Pillow takes tens of milliseconds to import and most calls carry no image.
    from PIL import Image as PIL
    from PIL import UnidentifiedImageError

    try:
        with PIL.open(io.BytesIO(data)) as picture:
            width, height = picture.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InvalidImageError(
            f"the {found.upper()} data from {origin} is corrupt or truncated: {error}"
        ) from None
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"the image from {origin} has no pixels ({width}x{height})")
    return width, height


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
