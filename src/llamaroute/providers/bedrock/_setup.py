"""Setting up Bedrock without touching AWS: boto3 imported only when needed, and the region
found without resolving any credentials (which could wait on the EC2 metadata endpoint)."""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING

from ..._exceptions import ConfigurationError

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

__all__ = [
    "INSTALL_HINT",
    "REGION_ENV",
    "check_settings",
    "configured_region",
    "import_boto3",
    "resolve_region",
]

INSTALL_HINT = "pip install 'llamaroute[bedrock]'"
REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")


def import_boto3() -> ModuleType:
    """The ``boto3`` module, or :class:`ConfigurationError` saying how to install it."""
    try:
        import boto3
    except ImportError as error:
        raise ConfigurationError(f"AWS Bedrock needs boto3: {INSTALL_HINT}") from error
    return boto3


def resolve_region(
    region: str | None = None,
    *,
    profile: str | None = None,
    session: boto3.session.Session | None = None,
    client: BedrockRuntimeClient | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The region a Bedrock client will run in, found without resolving any credentials.

    In order: ``region``; the injected client's or session's region; ``$AWS_REGION`` /
    ``$AWS_DEFAULT_REGION``; the ``region`` of the AWS profile in the config file (read by
    botocore's config loader, when boto3 is installed). Raises :class:`ConfigurationError`
    when none is set: routes are regional, so the region must be known before planning.
    """
    env = os.environ if environ is None else environ
    found = region
    if not found and client is not None:
        found = client.meta.region_name
    if not found and session is not None:
        found = session.region_name
    if not found and client is None and session is None:
        found = next((env[name] for name in REGION_ENV if env.get(name)), None)
        found = found or configured_region(profile)
    if not found:
        raise ConfigurationError(
            "AWS Bedrock needs a region: pass region= (for example 'us-east-1'; Llama 3.2 "
            "has inference profiles in us-east-1, us-east-2, us-west-2 and, for 1B/3B, "
            "eu-central-1, eu-west-1, eu-west-3), set AWS_REGION, or set region in the profile"
        )
    return found


def configured_region(profile: str | None = None) -> str | None:
    """The ``region`` botocore's config loading gives ``profile`` (no credentials, no network);
    ``None`` when boto3 is not installed or no region is configured."""
    if importlib.util.find_spec("botocore") is None:
        return None
    import botocore.exceptions
    import botocore.session

    try:
        value = botocore.session.Session(profile=profile).get_config_variable("region")
    except botocore.exceptions.ProfileNotFound as error:
        raise ConfigurationError(f"AWS profile {profile!r} not found in the AWS config") from error
    return str(value) if value else None


def check_settings(
    *,
    keys: tuple[str | None, str | None, str | None],
    ways: tuple[bool, bool, bool],
    seconds: tuple[float, float, float],
    sizes: tuple[int, int, int],
    max_connections: int,
) -> None:
    """Check a :class:`~._provider.BedrockProvider`'s settings before anything is built:
    ``keys`` (access key id, secret, session token), ``ways`` (whether a profile, a session or
    a client was given), the connect/read/stream-idle ``seconds``, and the response, event and
    stream size caps; a :class:`ConfigurationError` saying what to pass otherwise."""
    key_id, secret, token = keys
    has_keys = key_id is not None or secret is not None
    if sum((has_keys, *ways)) > 1:
        raise ConfigurationError("pass at most one of: access keys, profile=, session=, client=")
    if has_keys and not (key_id and secret):
        raise ConfigurationError(
            "pass both aws_access_key_id and aws_secret_access_key (or neither)"
        )
    if token is not None and not has_keys:
        raise ConfigurationError("aws_session_token goes with aws_access_key_id/secret")
    for label, value in zip(("connect_timeout", "read_timeout", "stream_idle_timeout"), seconds,
                            strict=True):  # fmt: skip
        if isinstance(value, bool) or not (isinstance(value, int | float) and 0 < value < math.inf):
            raise ConfigurationError(f"{label} must be a finite number of seconds above 0")
    for label, size in zip(("max_response_bytes", "max_event_bytes", "max_stream_bytes"), sizes,
                           strict=True):  # fmt: skip
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigurationError(f"{label} must be a whole number of bytes above 0")
    if max_connections < 1:
        raise ConfigurationError("max_connections must be at least 1")
