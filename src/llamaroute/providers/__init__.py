"""The providers, one package each, and what they share.

Each provider package (``openrouter/``, ``ollama/``, ``bedrock/``) is a thin I/O shell
(``_provider.py``) over pure wire functions (``_wire.py``). Shared by them: the interface
(``_base.py``), the one table from HTTP statuses and AWS error codes to the error tree
(``_errors.py``), the httpx helpers (``_http.py``) and the SSE decoder (``_sse.py``).

``OpenRouterProvider``, ``OllamaProvider`` and ``BedrockProvider`` are imported on first use,
so that ``import llamaroute`` stays cheap (it never imports httpx, ``ollama`` or boto3).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_getattr
from ._base import Provider, ProviderCall, ProviderResult, StreamItem

logger = logging.getLogger("llamaroute")

if TYPE_CHECKING:
    from .bedrock import BedrockProvider
    from .ollama import OllamaProvider
    from .openrouter import OpenRouterProvider

__all__ = [
    "AWS_CREDENTIAL_ENV",
    "BedrockProvider",
    "OllamaProvider",
    "OpenRouterProvider",
    "Provider",
    "ProviderCall",
    "ProviderResult",
    "StreamItem",
    "discover",
]


def discover(environ: Mapping[str, str] | None = None) -> list[Provider]:
    """The providers the environment configures, in the default order.

    1. Ollama when ``OLLAMA_HOST`` is set (local and free, so tried first). Without
       ``OLLAMA_HOST``, add it explicitly: ``Client(providers=[OllamaProvider(), ...])``;
       whether a server is really there is :meth:`OllamaProvider.available`'s question.
    2. OpenRouter when ``OPENROUTER_API_KEY`` is set.
    3. AWS Bedrock when boto3 is installed, the environment names AWS credentials or a profile
       (see :data:`AWS_CREDENTIAL_ENV`) and a region is known (``AWS_REGION``,
       ``AWS_DEFAULT_REGION`` or the profile's).

    Nothing here touches the network or resolves credentials: that waits for the first call.
    """
    env = os.environ if environ is None else environ
    found: list[Provider] = []
    if env.get("OLLAMA_HOST"):
        from .ollama import OllamaProvider

        found.append(OllamaProvider(env["OLLAMA_HOST"], api_key=env.get("OLLAMA_API_KEY")))
    if env.get("OPENROUTER_API_KEY"):
        from .openrouter import OpenRouterProvider

        found.append(
            OpenRouterProvider(env["OPENROUTER_API_KEY"], base_url=env.get("OPENROUTER_BASE_URL"))
        )
    bedrock = _bedrock_from(env)
    if bedrock is not None:
        found.append(bedrock)
    return found


#: What a provider's table in a configuration file (the gateway's ``[providers.NAME]``) may
#: set, by provider name. Every table may also name a deployment and its limits (README,
#: "Several deployments").
DEPLOYMENT_FIELDS = frozenset({"deployment", "rpm", "tpm", "weight"})
TABLE_FIELDS: Mapping[str, frozenset[str]] = {
    "ollama": frozenset({"host", "api_key_env"}) | DEPLOYMENT_FIELDS,
    "openrouter": frozenset(
        {"api_key", "api_key_env", "base_url", "max_connections", "max_keepalive_connections"}
    )
    | DEPLOYMENT_FIELDS,
    "bedrock": frozenset({"region", "profile"}) | DEPLOYMENT_FIELDS,
}


def from_table(
    name: str, table: Mapping[str, Any], environ: Mapping[str, str] | None = None,
    where: str | None = None,
) -> Provider:  # fmt: skip
    """The provider ``name`` that a configuration table (fields: :data:`TABLE_FIELDS`)
    describes; what the table leaves out comes from the environment as :func:`discover` reads
    it. ``where`` names the file in errors. Secrets are named by variable (``api_key_env``)."""
    env = os.environ if environ is None else environ
    limits = {key: table[key] for key in DEPLOYMENT_FIELDS if key in table}
    if name == "ollama":
        from .ollama import OllamaProvider

        key = env.get(table["api_key_env"]) if "api_key_env" in table else None
        return OllamaProvider(table.get("host") or env.get("OLLAMA_HOST"), api_key=key, **limits)
    if name == "openrouter":
        from .._exceptions import ConfigurationError
        from .openrouter import OpenRouterProvider

        key = table.get("api_key") or env.get(table.get("api_key_env", "OPENROUTER_API_KEY"))
        if not key:
            raise ConfigurationError(
                f"{where}: providers.openrouter has no key: set api_key_env "
                "to a variable that holds it (default OPENROUTER_API_KEY)"
            )
        pool = {k: table[k] for k in ("max_connections", "max_keepalive_connections")
                if k in table}  # fmt: skip
        return OpenRouterProvider(key, base_url=table.get("base_url"), **pool, **limits)
    from .bedrock import BedrockProvider

    return BedrockProvider(region=table.get("region"), profile=table.get("profile"), **limits)


#: Variables that say AWS credentials are configured, without reading them (boto3 does).
AWS_CREDENTIAL_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_BEARER_TOKEN_BEDROCK",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def _bedrock_from(env: Mapping[str, str]) -> Provider | None:
    # Only an environment that names credentials: the default chain would otherwise end at
    # the EC2 metadata endpoint, which can wait seconds where there is none.
    if not any(env.get(name) for name in AWS_CREDENTIAL_ENV):
        return None
    if importlib.util.find_spec("boto3") is None:
        logger.debug("AWS credentials are set but boto3 is not installed: Bedrock skipped")
        return None
    from .._exceptions import ConfigurationError
    from .bedrock import REGION_ENV, BedrockProvider, configured_region

    profile = env.get("AWS_PROFILE") or None
    try:
        region = next((env[name] for name in REGION_ENV if env.get(name)), None)
        region = region or configured_region(profile)
        if region is None:
            logger.debug("AWS credentials are set but no region: Bedrock skipped")
            return None
        # No profile= here: boto3 reads AWS_PROFILE itself, in its usual order (environment
        # keys before the profile), on the first call.
        return BedrockProvider(region=region)
    except ConfigurationError as error:
        # An AWS setting that is wrong must not stop the other providers from working.
        logger.warning("AWS Bedrock not configured from the environment: %s", error)
        return None


_LAZY = {
    "BedrockProvider": ".bedrock",
    "OllamaProvider": ".ollama",
    "OpenRouterProvider": ".openrouter",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
