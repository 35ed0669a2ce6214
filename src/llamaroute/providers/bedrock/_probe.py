"""What ``llamaroute doctor`` asks AWS, spending nothing: with boto3 and credentials,
``ListFoundationModels(byProvider="meta")`` on the Bedrock control plane in the provider's
region. The answers come back as plain facts; the command words them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ._setup import import_boto3

__all__ = ["CREDENTIALS_REJECTED", "BedrockProbe", "probe_bedrock"]

#: AWS error codes that mean the credentials themselves are wrong.
CREDENTIALS_REJECTED = frozenset({
    "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
    "ExpiredToken", "InvalidClientTokenId", "IncompleteSignature", "MissingAuthenticationToken",
})  # fmt: skip

#: A Bedrock API key, which botocore reads from the environment on its own.
BEARER_TOKEN_ENV = "AWS_BEARER_TOKEN_BEDROCK"


@dataclass(frozen=True, slots=True)
class BedrockProbe:
    """What the probe found. ``setup_error``: boto3 missing, a bad profile or config (nothing
    was asked of AWS); ``credentials``: where they came from (botocore's method, or the
    Bedrock API key's variable), ``None`` when none were found; ``listing``:
    ``ListFoundationModels``' answer; ``error`` and ``error_code``: why that call failed (the
    AWS error code, or ``""`` when botocore raised before AWS answered)."""

    setup_error: Exception | None = None
    credentials: str | None = None
    listing: dict[str, Any] | None = None
    error: Exception | None = None
    error_code: str = ""


def probe_bedrock(region: str | None, profile: str | None, timeout: float) -> BedrockProbe:
    """List Meta's foundation models in ``region`` with the credentials ``profile`` (or the
    environment) gives; never raises for what boto3 or AWS does."""
    try:
        boto3 = import_boto3()
        from botocore.config import Config

        session = boto3.session.Session(profile_name=profile, region_name=region)
        credentials = session.get_credentials()
    except Exception as error:  # boto3's profile and config errors: reported, never raised
        return BedrockProbe(setup_error=error)
    if credentials is None and not os.environ.get(BEARER_TOKEN_ENV):
        return BedrockProbe()
    method = BEARER_TOKEN_ENV if credentials is None else credentials.method
    config = Config(connect_timeout=timeout, read_timeout=timeout,
                    retries={"total_max_attempts": 1, "mode": "standard"})  # fmt: skip
    try:
        control = session.client("bedrock", region_name=region, config=config)
        listing = control.list_foundation_models(byProvider="meta")
    except Exception as error:  # botocore's errors: the caller words them from the code
        response = getattr(error, "response", None)
        code = ""
        if isinstance(response, dict):
            code = str((response.get("Error") or {}).get("Code") or "")
        return BedrockProbe(credentials=method, error=error, error_code=code)
    return BedrockProbe(credentials=method, listing=listing)
