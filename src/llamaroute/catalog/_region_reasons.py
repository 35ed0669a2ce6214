"""Why a route is not offered in a region, in words (for ``skipped`` lists and messages)."""

from __future__ import annotations

from collections.abc import Sequence

from ._catalog import Route

__all__ = ["region_skip_reason"]


def region_skip_reason(route: Route, region: str, siblings: Sequence[Route]) -> str:
    """Why ``route`` is not offered to a client in ``region``. ``siblings`` are the other
    routes of the same provider and model, to say which one serves the region, or that none
    does (``llama-3.2-90b-vision on bedrock is offered only through us. profiles: us-east-1,
    us-east-2, us-west-2``)."""
    here = [other for other in siblings if other.serves_region(region)]
    if here:
        return (
            f"offered in {', '.join(route.regions)}, not {region}; "
            f"{', '.join(other.pinned for other in here)} serves {region}"
        )
    offered = [route, *(other for other in siblings if other is not route)]
    where = "; ".join(
        dict.fromkeys(
            f"{other.geography}. profiles: {', '.join(other.regions)}"
            if other.geography
            else ", ".join(other.regions)
            for other in offered
            if other.regions
        )
    )
    how = "through " if all(other.geography for other in offered if other.regions) else "in "
    return f"{route.model} on {route.provider} is offered only {how}{where}; not in {region}"
