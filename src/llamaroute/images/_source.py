"""Image input: load what the caller has, sniff the format from the bytes, decode to check it.

* :class:`Image` holds an image's bytes with the format sniffed from those bytes (never from a
  file name or a declared MIME type), its pixel size and what the decoder found (mode, EXIF
  orientation, animation, transparency), or, for an ``http(s)://`` URL not fetched yet, just
  the URL. Building one decodes the image, so corrupt, truncated and oversized ("decompression
  bomb") images fail here with :class:`~llamaroute.InvalidImageError`.
* :func:`load_image` turns anything a caller may pass as ``image=`` into an :class:`Image`.
* :func:`image_tiles` / :func:`image_token_range` are Llama 3.2 Vision's figures for estimates.

Fitting an image to a route (:func:`~llamaroute.images.fit_image`) is in
``_fit``; fetching URLs (:func:`~llamaroute.images._fetch.fetch_image`) in ``_fetch``. Pillow is
imported only when an image is actually handled, never at ``import llamaroute``.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias
from urllib.parse import urlsplit

from .._exceptions import ConfigurationError, InvalidImageError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
    from PIL.ImageFile import ImageFile

__all__ = [
    "MAX_TILES",
    "MIME_TYPES",
    "POSITIONS_PER_TILE",
    "TILE_SIZE",
    "Image",
    "ImageFetchPolicy",
    "ImageFormat",
    "ImageSource",
    "best_fit_canvas",
    "image_tiles",
    "image_token_range",
    "is_image_source",
    "load_image",
    "redact_url",
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

_ALL_FORMATS: tuple[ImageFormat, ...] = ("png", "jpeg", "gif", "webp")
# Pillow's default MAX_IMAGE_PIXELS, used if a program has set it to None: an SDK that reads
# untrusted images never decodes without a bound.
_DEFAULT_MAX_PIXELS = 89_478_485
# Reading a file is refused above this size (a FIFO or /dev/zero is refused as not a file).
_MAX_FILE_BYTES = 64 * 2**20
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# Modes some decoders mishandle (CMYK JPEGs come out inverted or refused): always sent as RGB.
_TO_RGB_MODES = frozenset({"CMYK", "YCbCr", "LAB", "HSV"})


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


def _canvases(max_tiles: int = MAX_TILES) -> tuple[tuple[int, int], ...]:
    """Canvases of 1 to ``max_tiles`` tiles as (tiles across, tiles down), in the order of
    ``find_supported_resolutions`` in meta-llama/llama-models
    ``models/llama3/multimodal/image_transform.py`` (the order breaks ties there)."""
    by_ratio: dict[float, list[tuple[int, int]]] = {}
    for tiles in range(max_tiles, 0, -1):
        for factor in sorted(f for f in range(1, tiles + 1) if tiles % f == 0):
            by_ratio.setdefault(factor / (tiles // factor), []).append((factor, tiles // factor))
    return tuple(canvas for group in by_ratio.values() for canvas in group)


_CANVASES = _canvases()


def best_fit_canvas(width: int, height: int) -> tuple[int, int]:
    """The canvas (tiles across, tiles down) Llama 3.2 Vision resizes an image onto.

    Meta's ``get_best_fit`` (llama-models ``image_transform.py``): each canvas of 1 to 4 tiles
    of 560 px allows a scale without distortion, ``min(canvas_w / w, canvas_h / h)``. If some
    canvas needs no downscaling, the smallest such scale wins (the least upscaling); otherwise
    the largest (the least downscaling). Among canvases with the chosen scale, the smallest
    area wins (the least padding).
    """
    if width <= 0 or height <= 0:
        raise ValueError("image width and height must be positive")
    scales = [
        min(across * TILE_SIZE / width, down * TILE_SIZE / height) for across, down in _CANVASES
    ]
    upscaling = [scale for scale in scales if scale >= 1]
    chosen = min(upscaling) if upscaling else max(scales)
    fits = [canvas for canvas, scale in zip(_CANVASES, scales, strict=True) if scale == chosen]
    return min(fits, key=lambda canvas: canvas[0] * canvas[1])


def image_tiles(width: int, height: int) -> int:
    """How many 560 px tiles Llama 3.2 Vision uses for an image of this size (1 to 4): the
    tiles of :func:`best_fit_canvas`. (``ceil(w / 560) * ceil(h / 560)`` capped at 4
    over-counts images that the model downscales onto fewer tiles: 1200 x 600 and
    2000 x 1000 take 2, not 4.)"""
    across, down = best_fit_canvas(width, height)
    return across * down


def image_token_range(image: _Payload) -> tuple[int, int]:
    """The fewest and most input tokens an image (an :class:`Image` or a
    :class:`~llamaroute.PreparedImage`) may add, for cost estimates.

    Llama 3.2 Vision feeds the image through cross-attention, so a provider may count nothing
    for it (low: 0) or up to 1601 positions per 560 px tile (high). An image whose size is not
    known yet (a URL not fetched) is assumed to take the full 4 tiles.
    """
    return 0, (image.tiles or MAX_TILES) * POSITIONS_PER_TILE


@dataclass(frozen=True, slots=True, repr=False)
class _Payload:
    """Image bytes and the ways to hand them to a provider: what :class:`Image` and
    :class:`~llamaroute.PreparedImage` share."""

    data: bytes | None
    format: ImageFormat | None
    width: int
    height: int
    url: str | None = None
    origin: str = "bytes"

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
            raise InvalidImageError(f"the image at {redact_url(self.url or '')} is not fetched")
        return self.data

    def _require_format(self) -> ImageFormat:
        self._require_data()
        assert self.format is not None  # set whenever data is
        return self.format


@dataclass(frozen=True, slots=True, repr=False)
class Image(_Payload):
    """An image ready to be checked and sent.

    Either ``data`` is set (the bytes, with ``format`` sniffed from them and the pixel
    ``width`` and ``height`` as stored), or only ``url`` is (an ``http(s)://`` image not
    fetched yet: a route that takes URLs gets it as is; for the others llamaroute fetches it).
    A fetched image has both. ``mode`` is Pillow's pixel mode, ``orientation`` the EXIF
    orientation (1 = upright), ``animated`` and ``has_alpha`` what they say, ``lossless``
    whether the encoding loses nothing (PNG, GIF, lossless WebP).

    Build one with :func:`load_image` or the ``from_*`` constructors; they decode the image and
    raise :class:`~llamaroute.InvalidImageError` for anything that is not a usable image.
    """

    mode: str = ""
    orientation: int = 1
    animated: bool = False
    has_alpha: bool = False
    lossless: bool = False

    def __repr__(self) -> str:
        if self.data is None:
            return f"<Image url={redact_url(self.url or '')}>"
        return (
            f"<Image {self.format} {self.width}x{self.height} {len(self.data):,} bytes "
            f"from {self.origin}>"
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, origin: str = "bytes") -> Image:
        """An image from raw bytes; the format is sniffed and the image decoded to check it."""
        if not data:
            raise InvalidImageError(f"the image from {origin} is empty (0 bytes)")
        found = sniff_format(data)
        if found is None:
            raise InvalidImageError(
                f"the data from {origin} is not a PNG, JPEG, GIF or WebP image "
                f"(it starts with {data[:8]!r})"
            )
        return _inspect(data, found, origin)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> Image:
        """An image read from a file; the file name's extension is ignored."""
        location = Path(path)
        try:
            info = location.stat()
            if stat.S_ISDIR(info.st_mode):
                raise InvalidImageError(f"image path is a directory, not a file: {location}")
            if not stat.S_ISREG(info.st_mode):
                raise InvalidImageError(f"image path is not a regular file: {location}")
            if info.st_size > _MAX_FILE_BYTES:
                raise InvalidImageError(
                    f"image file {location} is {info.st_size:,} bytes, over the "
                    f"{_MAX_FILE_BYTES:,} bytes llamaroute reads"
                )
            data = location.read_bytes()
        except FileNotFoundError:
            raise InvalidImageError(f"image file not found: {location}") from None
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
        """An image from a Pillow image: upright (its EXIF orientation applied, since the bytes
        made here carry no EXIF), as JPEG (quality 90) if it came from a JPEG, else PNG."""
        from PIL import ImageOps

        source_format = picture.format
        try:
            picture = ImageOps.exif_transpose(picture)
            if picture.mode in _TO_RGB_MODES:
                picture = picture.convert("RGB")
            elif picture.mode == "F":
                picture = picture.convert("L")
            buffer = io.BytesIO()
            if source_format == "JPEG" and picture.mode in ("RGB", "L"):
                picture.save(buffer, format="JPEG", quality=90)
            else:
                picture.save(buffer, format="PNG")
        except Exception as error:  # Pillow raises many types for unusable images
            raise InvalidImageError(f"cannot encode the PIL image: {error}") from None
        return cls.from_bytes(buffer.getvalue(), origin="PIL image")


ImageSource: TypeAlias = "Image | bytes | str | os.PathLike[str] | PILImage"
"""What ``image=`` accepts: a path, bytes, a ``data:`` or ``http(s)://`` URL, a PIL image, or
an :class:`Image`."""


def is_image_source(value: object) -> bool:
    """Whether ``value`` is a kind of thing ``image=`` accepts (without loading it)."""
    return isinstance(
        value, Image | bytes | bytearray | memoryview | str | os.PathLike
    ) or _is_pil_image(value)


# The fetching itself (and httpx) lives in _fetch.py, imported only when a URL is fetched;
# the policy is here so that `import llamaroute` does not pay for httpx.
@dataclass(frozen=True, slots=True)
class ImageFetchPolicy:
    """How llamaroute fetches an image URL for a provider that cannot take URLs itself.

    Args:
        allow_private: also fetch from loopback, private (10/8, 172.16/12, 192.168/16, IPv6
            ULA), shared (100.64/10) and reserved addresses. Off by default, so that URLs from
            your users cannot reach your own network. Link-local and cloud metadata addresses
            (and unspecified, multicast, broadcast and NAT64 local-use ones) are refused
            whatever this says.
        timeout: seconds for the whole fetch: DNS, redirects and every read included, however
            slowly the server sends.
        max_bytes: the largest body accepted; reading stops as soon as it is exceeded.
        max_redirects: how many redirects to follow (each one is checked like the first URL).
    """

    allow_private: bool = False
    timeout: float = 10.0
    max_bytes: int = 20_000_000
    max_redirects: int = 3

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ConfigurationError(f"ImageFetchPolicy.timeout must be > 0, not {self.timeout}")
        if self.max_bytes <= 0:
            raise ConfigurationError(
                f"ImageFetchPolicy.max_bytes must be > 0, not {self.max_bytes}"
            )
        if self.max_redirects < 0:
            raise ConfigurationError(
                f"ImageFetchPolicy.max_redirects must be >= 0, not {self.max_redirects}"
            )


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


def redact_url(url: str, limit: int = 80) -> str:
    """A URL as safe to show in messages and logs: no user name, password, query or fragment
    (signed URLs carry their credentials in the query)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    host = parts.netloc.rpartition("@")[2]
    shown = f"{parts.scheme}://{host}{parts.path}" + ("?..." if parts.query else "")
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _is_pil_image(value: object) -> bool:
    # Check by module name so that a caller without Pillow never makes us import it.
    return any(cls.__module__.startswith("PIL.") for cls in type(value).__mro__)


# --- decoding ---------------------------------------------------------------------------------


def _open(data: bytes, found: ImageFormat) -> ImageFile:
    # Only the decoder the magic number names sees the bytes (no other Pillow plugin is tried),
    # and Image.open's decompression-bomb *warning* never fires: _check_pixels raises instead.
    from PIL import GifImagePlugin, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

    opener = {
        "png": PngImagePlugin.PngImageFile,
        "jpeg": JpegImagePlugin.JpegImageFile,
        "gif": GifImagePlugin.GifImageFile,
        "webp": WebPImagePlugin.WebPImageFile,
    }[found]
    return opener(io.BytesIO(data))  # type: ignore[abstract]


def _inspect(data: bytes, found: ImageFormat, origin: str) -> Image:
    try:
        with _open(data, found) as picture:
            width, height = picture.size
            _check_pixels(width, height, origin)
            mode = picture.mode
            if found == "jpeg":
                # Decoding at 1/8 scale still reads every entropy-coded byte, so a truncated or
                # corrupt JPEG fails, at a fraction of the cost of a full decode.
                picture.draft(None, (max(1, width // 8), max(1, height // 8)))
            picture.load()
            has_alpha = mode in _ALPHA_MODES or "transparency" in picture.info
            animated = bool(getattr(picture, "is_animated", False))
            orientation = _orientation(picture)
        if found == "png":
            with _open(data, found) as again:
                again.verify()  # every chunk's CRC, which load() skips for image data
            # Pillow accepts a file cut inside its last chunk; stricter decoders (Go's, in
            # Ollama) do not. The IEND chunk is always these 12 bytes.
            if _PNG_END not in data:
                raise InvalidImageError(
                    f"the PNG data from {origin} is truncated: it ends before its IEND chunk"
                )
    except InvalidImageError:
        raise
    except Exception as error:  # any decoder failure on untrusted bytes means "not usable"
        reason = str(error) or type(error).__name__
        raise InvalidImageError(
            f"the {found.upper()} data from {origin} is corrupt or truncated: {reason}"
        ) from None
    return Image(
        data=data, format=found, width=width, height=height, origin=origin, mode=mode,
        orientation=orientation, animated=animated, has_alpha=has_alpha,
        lossless=found in ("png", "gif") or (found == "webp" and _webp_lossless(data)),
    )  # fmt: skip


def _check_pixels(width: int, height: int, origin: str) -> None:
    from PIL import Image as PIL

    limit = PIL.MAX_IMAGE_PIXELS or _DEFAULT_MAX_PIXELS
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"the image from {origin} has no pixels ({width}x{height})")
    if width * height > limit:
        raise InvalidImageError(
            f"the image from {origin} claims {width}x{height} = {width * height:,} pixels, over "
            f"the decompression-bomb limit of {limit:,} (PIL.Image.MAX_IMAGE_PIXELS); it was "
            "not decoded"
        )


def _orientation(picture: ImageFile) -> int:
    try:
        value = picture.getexif().get(0x0112, 1)
    except Exception:  # broken EXIF is ignored, as viewers do: the pixels are still fine
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _webp_lossless(data: bytes) -> bool:
    # RIFF chunks after the 12-byte header: a VP8L chunk is lossless, VP8 is lossy.
    offset = 12
    while offset + 8 <= len(data):
        kind, size = (
            data[offset : offset + 4],
            int.from_bytes(data[offset + 4 : offset + 8], "little"),
        )
        if kind in (b"VP8L", b"VP8 "):
            return kind == b"VP8L"
        offset += 8 + size + (size & 1)
    return False
