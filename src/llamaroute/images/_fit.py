"""Fitting an image to a route, before any call: what will be sent, and why it changed.

* :func:`fit_image` fits one image to a route's limits (formats, bytes, pixels, side) and
  returns a :class:`PreparedImage` that records what will be sent and what was done to it.
* :class:`RequestImages` does that once per call and per set of limits.

Whether a route takes images at all, and how many, is the catalog's question
(``llamaroute.catalog``): this layer sees a route only through :class:`ImageLimits`.

Behaviour differences between providers come from route data (``Route.image_formats``,
``max_image_*``, ``image_urls``), never from provider names.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from .._exceptions import ConfigurationError, InvalidImageError
from ._source import (
    _ALL_FORMATS,
    _ALPHA_MODES,
    _TO_RGB_MODES,
    Image,
    ImageFormat,
    _open,
    _Payload,
    load_image,
    redact_url,
)

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from ._fetch import ImageFetchPolicy

__all__ = [
    "AsyncFetcher",
    "Fetcher",
    "ImageLimits",
    "PreparedImage",
    "RequestImages",
    "fit_image",
]

_PIL_NAMES: dict[ImageFormat, str] = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "webp": "WEBP"}
_ORIENTATIONS = {
    2: "mirrored", 3: "rotated 180°", 4: "flipped vertically",
    5: "mirrored and rotated 90° anticlockwise", 6: "rotated 90° clockwise",
    7: "mirrored and rotated 90° clockwise", 8: "rotated 90° anticlockwise",
}  # fmt: skip
_QUALITIES = (90, 80, 70, 60)  # JPEG/WebP quality steps when an image is over a byte limit
_SHRINK = 0.8  # then each further downscale step
_SHRINK_STEPS = 10


@dataclass(frozen=True, slots=True, repr=False)
class PreparedImage(_Payload):
    """What llamaroute sends for one image on one route, and what it came from.

    ``data``/``format``/``width``/``height`` are what is sent (``url`` instead, with no data,
    when the route fetches URLs itself). ``original_*`` describe the image the caller gave.
    The flags say what was done (``resized``, ``reencoded``, ``rotated`` for an applied EXIF
    orientation, ``flattened`` for transparency put on white, ``first_frame`` for an animation
    cut to its first frame, ``converted`` for a colour mode changed to RGB, ``fetched`` when
    llamaroute downloaded the URL) and ``changes`` says each one in words, with the reason.
    """

    original_format: ImageFormat | None = None
    original_width: int = 0
    original_height: int = 0
    original_nbytes: int = 0
    fetched: bool = False
    resized: bool = False
    reencoded: bool = False
    rotated: bool = False
    flattened: bool = False
    first_frame: bool = False
    converted: bool = False
    changes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        if self.data is None:
            return f"<PreparedImage url={redact_url(self.url or '')} (passed as is)>"
        done = f": {'; '.join(self.changes)}" if self.changes else " (unchanged)"
        return (
            f"<PreparedImage {self.format} {self.width}x{self.height} {len(self.data):,} bytes "
            f"from {self.origin}{done}>"
        )

    @property
    def changed(self) -> bool:
        """Whether the bytes sent differ from the bytes given."""
        return self.reencoded


class ImageLimits(Protocol):
    """What fitting needs to know of a route (``llamaroute.Route`` has these fields).

    A protocol rather than the catalog's ``Route``, so that this layer imports nothing above it.
    """

    @property
    def pinned(self) -> str: ...  # the route's name in messages: ``provider:model_id``
    @property
    def image_urls(self) -> bool: ...
    @property
    def image_formats(self) -> tuple[ImageFormat, ...]: ...
    @property
    def max_image_bytes(self) -> int | None: ...
    @property
    def max_image_side(self) -> int | None: ...
    @property
    def max_image_pixels(self) -> int | None: ...


Fetcher: TypeAlias = Callable[[str], Image]
"""Fetches an ``http(s)://`` URL into an :class:`Image` (as ``_fetch.fetch_image`` does)."""
AsyncFetcher: TypeAlias = Callable[[str], Awaitable[Image]]
"""The async form of :data:`Fetcher`."""


def fit_image(
    image: object, route: ImageLimits, *, fetch: ImageFetchPolicy | Fetcher | None = None
) -> PreparedImage:
    """Fit an image (anything ``image=`` takes) to a route's limits and say what will be sent.

    An image that fits is sent byte for byte. Otherwise, deliberately: an EXIF orientation
    other than 1 is applied to the pixels; an animation keeps its first frame; CMYK and other
    non-RGB colour modes become RGB; an image larger than ``max_image_side`` or
    ``max_image_pixels`` is downscaled (Lanczos, aspect ratio kept); transparency is flattened
    onto white only when the format sent has no alpha. Re-encoding keeps the source format if
    the route takes it (GIF becomes PNG, to avoid re-quantising colours), else PNG for images
    with alpha or lossless sources and JPEG (quality 90) for photos; over ``max_image_bytes``
    the quality steps down, then the image shrinks further.

    A URL is passed as is to a route with ``image_urls``; for other routes it is fetched with
    ``fetch``: an :class:`~llamaroute.ImageFetchPolicy` (the default one if ``None``) or a
    callable. Raises :class:`~llamaroute.InvalidImageError` for an unusable image or one that
    cannot fit. Whether the route takes images at all is the caller's question
    (:func:`llamaroute.catalog.prepare_image` asks it first).
    """
    loaded = load_image(image)
    if not loaded.is_fetched:
        assert loaded.url is not None
        if route.image_urls:
            return PreparedImage(
                data=None, format=None, width=0, height=0, url=loaded.url, origin=loaded.origin,
                changes=("the URL is passed as is: this route fetches images itself",),
            )  # fmt: skip
        loaded = _fetcher(fetch)(loaded.url)
    return _fit(loaded, route)


class RequestImages:
    """One call's images: loaded and checked once, fetched at most once (only if a route
    cannot take URLs), and fitted once per set of route limits, so that routes with the same
    limits share the Pillow work. The client keeps one of these per call."""

    def __init__(self, sources: Iterable[object], policy: ImageFetchPolicy | None) -> None:
        self._images: list[Image] = [load_image(source) for source in sources]
        self._policy = policy
        self._fitted: dict[tuple[object, ...], tuple[PreparedImage, ...]] = {}

    def needs_fetch(self, route: ImageLimits) -> bool:
        """Whether ``route`` needs bytes for an image that is still only a URL."""
        return not route.image_urls and any(not image.is_fetched for image in self._images)

    def fetch(self, timeout: float | None = None) -> None:
        """Download the URL images, one after the other, under the fetch policy (sync).

        ``timeout``: the seconds the call has left; all the fetches together end by then, or
        raise :class:`~llamaroute.ProviderTimeoutError` with ``code="deadline"``. (Each fetch
        also ends within the policy's own ``timeout``, raising
        :class:`~llamaroute.InvalidImageError`.)
        """
        from ._fetch import fetch_image

        deadline = _deadline(timeout)
        for index, image in enumerate(self._images):
            if image.url is not None and not image.is_fetched:
                self._images[index] = fetch_image(image.url, self._policy, timeout=_left(deadline))

    async def afetch(self, timeout: float | None = None) -> None:
        """Download the URL images, under the fetch policy (async); ``timeout`` as in
        :meth:`fetch`."""
        from ._fetch import afetch_image

        deadline = _deadline(timeout)
        for index, image in enumerate(self._images):
            if image.url is not None and not image.is_fetched:
                self._images[index] = await afetch_image(
                    image.url, self._policy, timeout=_left(deadline)
                )

    @property
    def count(self) -> int:
        """How many images the request has."""
        return len(self._images)

    def tiles(self) -> tuple[int, ...]:
        """Each image's Llama 3.2 tiles (a URL not fetched yet counts as the maximum, 4)."""
        return tuple(image.tiles or 4 for image in self._images)

    def for_route(self, route: ImageLimits) -> tuple[PreparedImage, ...]:
        """The images as ``route`` will get them (fetch first if :meth:`needs_fetch`)."""
        if not self._images:
            return ()
        key = (route.image_urls, route.image_formats, route.max_image_bytes,
               route.max_image_side, route.max_image_pixels)  # fmt: skip
        fitted = self._fitted.get(key)
        if fitted is None:
            fitted = self._fitted[key] = tuple(fit_image(image, route) for image in self._images)
        return fitted


def _deadline(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ConfigurationError(f"timeout must be a number of seconds, not {timeout!r}")
    return time.monotonic() + timeout


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _fetcher(fetch: ImageFetchPolicy | Fetcher | None) -> Fetcher:
    from ._fetch import ImageFetchPolicy, fetch_image

    if fetch is None or isinstance(fetch, ImageFetchPolicy):
        policy = fetch
        return lambda url: fetch_image(url, policy)
    return fetch


def _fit(image: Image, route: ImageLimits) -> PreparedImage:
    data, found = image.data, image.format
    assert data is not None
    assert found is not None
    allowed = route.image_formats or _ALL_FORMATS
    turned = image.orientation in (5, 6, 7, 8)
    upright = (image.height, image.width) if turned else (image.width, image.height)
    size = _target_size(*upright, route)
    record: dict[str, Any] = {
        "origin": image.origin, "original_format": found, "original_width": image.width,
        "original_height": image.height, "original_nbytes": len(data),
        "fetched": image.url is not None,
    }  # fmt: skip
    limit = route.max_image_bytes
    over = limit is not None and len(data) > limit
    fits = (
        found in allowed
        and size == upright
        and image.orientation == 1
        and not image.animated
        and image.mode not in _TO_RGB_MODES
        and not over
    )
    if fits:
        return PreparedImage(
            data=data, format=found, width=image.width, height=image.height, **record
        )
    log = _Log()
    work, icc = _decode_upright(image, size, log)
    target = _choose_format(image, allowed)
    if work.mode == "RGBA" and target == "jpeg":
        work = _flatten(work, log)
    if size != upright:
        limits = [
            f"{route.max_image_side} px per side" if route.max_image_side else "",
            f"{route.max_image_pixels:,} pixels" if route.max_image_pixels else "",
        ]
        log.note(
            f"downscaled {upright[0]}x{upright[1]} to {size[0]}x{size[1]} "
            f"(this route takes at most {' and '.join(filter(None, limits))})"
        )
        work = work.resize(size, _lanczos(), reducing_gap=3.0)
    if target != found:
        log.note(
            f"re-encoded as {target.upper()}: "
            + ("GIF is not re-quantised" if found in allowed else f"{found.upper()} is not")
            + f" among the formats this route takes ({', '.join(allowed)})"
        )
    if over and size == upright:
        log.note(f"re-encoded: {len(data):,} bytes is over the {limit:,} bytes this route takes")
    sent, target, work = _encode_to_fit(work, target, image, route, icc, log)
    return PreparedImage(
        data=sent, format=target, width=work.width, height=work.height,
        resized=work.size != upright, reencoded=True, changes=tuple(log.changes),
        **log.flags, **record,
    )  # fmt: skip


class _Log:
    """What was done to an image, as flags and as sentences, in order."""

    def __init__(self) -> None:
        self.changes: list[str] = []
        self.flags: dict[str, Any] = dict.fromkeys(
            ("rotated", "flattened", "first_frame", "converted"), False
        )

    def note(self, text: str, flag: str | None = None) -> None:
        self.changes.append(text)
        if flag is not None:
            self.flags[flag] = True


def _lanczos() -> Any:
    from PIL import Image as PIL

    return PIL.Resampling.LANCZOS


def _target_size(width: int, height: int, route: ImageLimits) -> tuple[int, int]:
    side, pixels = route.max_image_side, route.max_image_pixels
    scale = 1.0
    if side is not None:
        scale = min(scale, side / max(width, height))
    if pixels is not None:
        scale = min(scale, math.sqrt(pixels / (width * height)))
    if scale >= 1.0:
        return width, height
    new_w = max(1, math.floor(width * scale + 1e-9))
    new_h = max(1, math.floor(height * scale + 1e-9))
    # Float rounding can land one pixel over a limit: trim the longer side until it fits.
    while (side is not None and max(new_w, new_h) > side) or (
        pixels is not None and new_w * new_h > pixels
    ):
        if new_w >= new_h:
            new_w -= 1
        else:
            new_h -= 1
    return new_w, new_h


def _choose_format(image: Image, allowed: tuple[ImageFormat, ...]) -> ImageFormat:
    # GIF is never re-encoded as GIF: that would re-quantise the colours; PNG keeps them.
    if image.format is not None and image.format in allowed and image.format != "gif":
        return image.format
    keep_all = image.has_alpha or image.lossless
    order: tuple[ImageFormat, ...] = (
        ("png", "webp", "jpeg", "gif") if keep_all else ("jpeg", "webp", "png", "gif")
    )
    return next(choice for choice in order if choice in allowed)


def _decode_upright(
    image: Image, size: tuple[int, int], log: _Log
) -> tuple[PILImage, bytes | None]:
    """The first frame, upright, in L, RGB or RGBA, and the ICC profile if it still describes
    the pixels."""
    from PIL import ImageOps

    assert image.data is not None
    assert image.format is not None
    with _open(image.data, image.format) as picture:
        if image.format == "jpeg":
            # libjpeg decodes at 1/2, 1/4 or 1/8 scale, never below the size asked for: most of
            # a phone photo's decoding cost is saved before the Lanczos downscale.
            turned = image.orientation in (5, 6, 7, 8)
            picture.draft(None, (size[1], size[0]) if turned else size)
        icc: bytes | None = picture.info.get("icc_profile")
        work = ImageOps.exif_transpose(picture)  # a copy of frame 0, orientation applied
    if image.orientation != 1:
        log.note(
            f"applied EXIF orientation {image.orientation} "
            f"({_ORIENTATIONS[image.orientation]}); the tag is dropped",
            "rotated",
        )
    if image.animated:
        log.note(f"kept the first frame of the animated {image.format.upper()}", "first_frame")
    source = work.mode
    if source in _TO_RGB_MODES:
        log.note(f"converted {source} colour to RGB", "converted")
        return _to_srgb(work, icc), None
    if source in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grey: scale to 8 bits (a plain convert would clip everything to white).
        return work.convert("I").point(lambda value: value * (1 / 256)).convert("L"), icc
    if source == "F":
        return work.convert("L"), icc
    if source in _ALPHA_MODES or "transparency" in work.info:
        return work.convert("RGBA"), icc if source in ("RGBA", "RGBa") else None
    if source in ("1", "P"):
        return work.convert("L" if source == "1" else "RGB"), None
    return work, icc


def _to_srgb(work: PILImage, icc: bytes | None) -> PILImage:
    if icc:
        from PIL import ImageCms

        try:
            # A CMYK profile says how its inks look; use it rather than a naive conversion.
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                work, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall back to Pillow's plain conversion
    return work.convert("RGB")


def _flatten(work: PILImage, log: _Log) -> PILImage:
    from PIL import Image as PIL

    alpha = work.getchannel("A")
    if alpha.getextrema() == (255, 255):
        return work.convert("RGB")  # fully opaque: nothing to flatten
    canvas = PIL.new("RGB", work.size, (255, 255, 255))
    canvas.paste(work, mask=alpha)
    log.note("flattened transparency onto white (JPEG has no alpha channel)", "flattened")
    return canvas


def _encode_to_fit(
    work: PILImage,
    target: ImageFormat,
    image: Image,
    route: ImageLimits,
    icc: bytes | None,
    log: _Log,
) -> tuple[bytes, ImageFormat, PILImage]:
    limit = route.max_image_bytes
    allowed = route.image_formats or _ALL_FORMATS
    for _ in range(_SHRINK_STEPS):
        lossy = target == "jpeg" or (target == "webp" and not image.lossless)
        for quality in _QUALITIES if lossy else (None,):
            data = _encode(work, target, quality, icc)
            if limit is None or len(data) <= limit:
                if quality is not None and quality != _QUALITIES[0]:
                    log.note(
                        f"lowered {target.upper()} quality to {quality} to fit {limit:,} bytes"
                    )
                return data, target, work
        over = f"{len(data):,} bytes was over the {limit:,} bytes this route takes"
        if not lossy and work.mode != "RGBA" and "jpeg" in allowed:
            log.note(f"switched to JPEG: as {target.upper()}, {over}")
            target = "jpeg"
            continue
        smaller = (max(1, int(work.width * _SHRINK)), max(1, int(work.height * _SHRINK)))
        log.note(f"shrank to {smaller[0]}x{smaller[1]}: {over}")
        work = work.resize(smaller, _lanczos())
    raise InvalidImageError(
        f"the image from {image.origin} ({image.width}x{image.height} {image.format}) cannot be "
        f"made to fit {route.pinned}: at most {limit:,} bytes, "
        f"{route.max_image_side or 'any'} px per side, formats {', '.join(allowed)}"
    )


def _encode(work: PILImage, target: ImageFormat, quality: int | None, icc: bytes | None) -> bytes:
    options: dict[str, Any] = {}
    if target == "jpeg":
        options = {"quality": quality, "optimize": True}
    elif target == "webp":
        options = {"lossless": True} if quality is None else {"quality": quality}
    if icc:
        options["icc_profile"] = icc
    buffer = io.BytesIO()
    work.save(buffer, format=_PIL_NAMES[target], **options)
    return buffer.getvalue()
