"""Images against routes: whether a route takes images at all, and how many, then fitting.

The image layer below fits bytes to limits; this module adds what only the catalog knows: which
routes are vision routes, how many images they take, and which models to suggest instead.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from .._exceptions import InvalidRequestError, UnsupportedFeatureError
from .._request import ChatRequest, ImagePart, Message, TextPart
from ..images import AsyncFetcher, Fetcher, ImageFetchPolicy, PreparedImage, fit_image, load_image
from ._catalog import Catalog, Route

__all__ = [
    "IMAGE_PLACEHOLDER",
    "ImagePolicy",
    "acheck_request_images",
    "apply_image_policy",
    "check_image_count",
    "check_image_policy",
    "check_request_images",
    "prepare_image",
]

ImagePolicy = Literal["refuse", "keep_newest", "placeholder"]
"""What to do with the older images of a conversation that has more than the model takes
(Llama 3.2 Vision reads one image per request): ``"refuse"`` (the default) raises
:class:`~llamaroute.UnsupportedFeatureError` before sending; ``"keep_newest"`` drops the older
image parts and keeps their text; ``"placeholder"`` replaces each older image with the text
:data:`IMAGE_PLACEHOLDER`."""

#: The text that stands in for an image the ``image_policy`` left out of a request.
IMAGE_PLACEHOLDER = "[image omitted]"


def check_image_policy(policy: object) -> ImagePolicy:
    """``policy`` if it is an :data:`ImagePolicy`, else :class:`~llamaroute.InvalidRequestError`."""
    if policy not in get_args(ImagePolicy):
        choices = ", ".join(map(repr, get_args(ImagePolicy)))
        raise InvalidRequestError(f"image_policy must be one of {choices}, not {policy!r}")
    return policy  # type: ignore[return-value]


def apply_image_policy(
    request: ChatRequest, max_images: int, policy: ImagePolicy
) -> tuple[ChatRequest, dict[str, Any] | None]:
    """``request`` with at most ``max_images`` images, the older ones handled by ``policy``,
    and what was done (``None`` when nothing was; no I/O).

    The newest images are kept. With ``"keep_newest"`` an older image part is dropped (a
    message left with no part at all gets :data:`IMAGE_PLACEHOLDER`, so no turn is empty);
    with ``"placeholder"`` it becomes a text part :data:`IMAGE_PLACEHOLDER`. The report is
    ``{"policy": ..., "images": <in the conversation>, "kept": ..., "dropped" | "replaced": n}``.
    ``"refuse"``, a text-only model (``max_images`` 0) and a conversation within the limit
    leave the request as it is (:func:`check_image_count` then says what is wrong, if
    anything).
    """
    count = len(request.images)
    if policy == "refuse" or max_images <= 0 or count <= max_images:
        return request, None
    older = count - max_images  # images seen so far below this are left out
    seen = 0
    messages: list[Message] = []
    for message in request.messages:
        if isinstance(message.content, str) or not message.images:
            messages.append(message)
            continue
        parts: list[TextPart | ImagePart] = []
        for part in message.content:
            if isinstance(part, ImagePart):
                seen += 1
                if seen <= older:
                    if policy == "placeholder":
                        parts.append(TextPart(text=IMAGE_PLACEHOLDER))
                    continue
            parts.append(part)
        if not parts:
            parts.append(TextPart(text=IMAGE_PLACEHOLDER))
        # Built from validated parts, so a copy (not a new validation) is enough.
        messages.append(message.model_copy(update={"content": tuple(parts)}))
    outcome = "replaced" if policy == "placeholder" else "dropped"
    report = {"policy": policy, "images": count, "kept": max_images, outcome: older}
    return request.model_copy(update={"messages": tuple(messages)}), report


def prepare_image(
    image: object, route: Route, *, fetch: ImageFetchPolicy | Fetcher | None = None
) -> PreparedImage:
    """Fit an image (anything ``image=`` takes) to ``route`` and say what will be sent
    (:func:`llamaroute.images.fit_image`). Raises :class:`~llamaroute.UnsupportedFeatureError`
    for a text-only route and :class:`~llamaroute.InvalidImageError` for an unusable image or
    one that cannot fit."""
    if not route.vision:
        raise _text_only(route, None)
    return fit_image(image, route, fetch=fetch)


def check_request_images(
    request: ChatRequest,
    route: Route,
    *,
    fetch: ImageFetchPolicy | Fetcher | None = None,
    catalog: Catalog | None = None,
) -> tuple[PreparedImage, ...]:
    """Check every image in ``request`` against ``route`` and prepare them, before any call.

    Raises :class:`~llamaroute.UnsupportedFeatureError` if the route takes no images (naming
    the models that do, from ``catalog``) or fewer than the request carries, wherever they sit
    in the conversation; then :func:`prepare_image` each one, in order.
    """
    check_image_count(request, route, catalog)
    return tuple(prepare_image(part.image, route, fetch=fetch) for part in request.images)


async def acheck_request_images(
    request: ChatRequest,
    route: Route,
    *,
    fetch: ImageFetchPolicy | AsyncFetcher | None = None,
    catalog: Catalog | None = None,
) -> tuple[PreparedImage, ...]:
    """:func:`check_request_images` for async code: URLs are fetched with
    :func:`~llamaroute.images._fetch.afetch_image` (or the async ``fetch`` given). The Pillow work
    itself runs inline; wrap the call in ``asyncio.to_thread`` for very large images."""
    from ..images import afetch_image

    check_image_count(request, route, catalog)
    images = [load_image(part.image) for part in request.images]
    for index, image in enumerate(images):
        if image.url is not None and not image.is_fetched and not route.image_urls:
            if fetch is None or isinstance(fetch, ImageFetchPolicy):
                images[index] = await afetch_image(image.url, fetch)
            else:
                images[index] = await fetch(image.url)
    return tuple(fit_image(image, route) for image in images)


def check_image_count(request: ChatRequest, route: Route, catalog: Catalog | None) -> None:
    places = [
        f"message {number} part {part}"
        for number, message in enumerate(request.messages, start=1)
        if not isinstance(message.content, str)
        for part, item in enumerate(message.content, start=1)
        if item.type == "image"
    ]
    if places and not route.vision:
        raise _text_only(route, catalog)
    if len(places) > route.max_images:
        raise UnsupportedFeatureError(
            f"{route.model} takes at most {route.max_images} image(s) per request, and this "
            f"conversation has {len(places)} ({', '.join(places)})."
            + (
                " Llama 3.2 Vision reads one image per request: send each image in its own request."
                if route.max_images == 1
                else ""
            )
        )


def _text_only(route: Route, catalog: Catalog | None) -> UnsupportedFeatureError:
    vision = [spec.key for spec in (catalog or Catalog.builtin()).models() if spec.vision]
    return UnsupportedFeatureError(
        f"{route.model} ({route.pinned}) is a text-only model and cannot take images; "
        f"use a vision model: {' or '.join(vision) or '(none in the catalog)'}"
    )
