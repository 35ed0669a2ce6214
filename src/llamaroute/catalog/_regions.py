"""Region names: which are real, and why a route is not offered in one.

Regional routes (Bedrock's inference profiles) list the regions a client must be in. A region
that is not a real one (``us-est-1``) must not quietly filter every regional route away, so
names are checked against the AWS regions below, plus any region a catalog's routes name (a
user's catalog file can add one). A real region where a route is not offered is a reason to
skip the route, said in words.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .._exceptions import ConfigurationError

__all__ = ["AWS_REGIONS", "check_region"]

#: The AWS regions (commercial, GovCloud and China), from the AWS "Regions and Availability
#: Zones" list, read 2026-11-27. Bedrock runs in a subset; Llama 3.2 only through the
#: inference profiles in the catalog (``providers/bedrock.toml``).
AWS_REGIONS = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-east-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-6",
        "ap-southeast-7",
        "ca-central-1",
        "ca-west-1",
        "cn-north-1",
        "cn-northwest-1",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-gov-east-1",
        "us-gov-west-1",
        "us-west-1",
        "us-west-2",
    }
)


def check_region(region: object, also_known: Iterable[str] = ()) -> str:
    """``region`` if it names an AWS region (or one of ``also_known``), else
    :class:`~llamaroute.ConfigurationError` with the closest names ("did you mean us-east-1?")."""
    known = AWS_REGIONS.union(also_known)
    if isinstance(region, str) and region in known:
        return region
    if not isinstance(region, str) or not region.strip():
        raise ConfigurationError(f"a region is a name such as 'us-east-1', not {region!r}")
    hint = _suggest(region.strip().lower(), known, frozenset(also_known))
    hint = f"; did you mean {hint}?" if hint else ""
    raise ConfigurationError(
        f"unknown region {region!r}{hint} (regions are AWS region names such as us-east-1; "
        "a region your own catalog file names counts too)"
    )


def _suggest(region: str, known: frozenset[str], preferred: frozenset[str]) -> str:
    # The closest names; among equally close ones, the regions the catalog's routes name
    # first (a typo of us-east-1 is likelier than of us-west-1 from someone asking for Llama).
    scored = sorted(
        (-difflib.SequenceMatcher(None, region, name).ratio(), name not in preferred, name)
        for name in known
    )
    close = [name for score, _, name in scored[:2] if -score >= 0.75]
    return " or ".join(close)
