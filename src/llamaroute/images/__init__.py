"""The images layer: image sources, format sniffing, fitting to a route's limits, and the
SSRF-safe fetch of image URLs.

Internal: this package's ``__init__`` is the interface that the layers above (and the tests)
use; the public names are re-exported from :mod:`llamaroute`. It imports nothing from the
layers above it (request types, catalog, money, routing, providers, client, cli). Pillow and
httpx are loaded only when an image is handled or fetched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from ._fit import AsyncFetcher, Fetcher, ImageLimits, PreparedImage, RequestImages, fit_image
from ._source import (
    MAX_TILES,
    MIME_TYPES,
    POSITIONS_PER_TILE,
    TILE_SIZE,
    Image,
    ImageFetchPolicy,
    ImageFormat,
    ImageSource,
    best_fit_canvas,
    image_tiles,
    image_token_range,
    is_image_source,
    load_image,
    redact_url,
    sniff_format,
)

if TYPE_CHECKING:
    from ._addresses import address_problem
    from ._fetch import afetch_image, fetch_image

__all__ = [
    "MAX_TILES",
    "MIME_TYPES",
    "POSITIONS_PER_TILE",
    "TILE_SIZE",
    "AsyncFetcher",
    "Fetcher",
    "Image",
    "ImageFetchPolicy",
    "ImageFormat",
    "ImageLimits",
    "ImageSource",
    "PreparedImage",
    "RequestImages",
    "address_problem",
    "afetch_image",
    "best_fit_canvas",
    "fetch_image",
    "fit_image",
    "image_tiles",
    "image_token_range",
    "is_image_source",
    "load_image",
    "redact_url",
    "sniff_format",
]

# The fetch functions load httpx: imported on first use, not with the package.
_LAZY = {"address_problem": "._addresses", "afetch_image": "._fetch", "fetch_image": "._fetch"}


__getattr__ = lazy_getattr(__name__, _LAZY)
