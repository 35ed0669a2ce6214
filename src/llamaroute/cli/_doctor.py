"""``llamaroute doctor``: which providers the environment configures, whether each can really
be used, and which models each really serves. Exits 1 when a configured provider is unusable.

Each check is as cheap as it can be and spends nothing:

* Ollama: one ``GET /api/tags`` (through :meth:`OllamaProvider.available`): a model is served
  only when its tag is pulled.
* OpenRouter: ``GET /models`` (no key needed) must answer 200 with a model list, and only the
  slugs it lists are served; then ``GET /key`` checks the API key (free, authenticated).
  A gateway without ``/key`` leaves the key unchecked, and says so.
* Bedrock: with boto3 and credentials, ``ListFoundationModels(byProvider="meta")`` on the
  Bedrock control plane in the provider's region: rejected credentials make it unusable. When
  that call cannot be made, the report says plainly that the credentials were not checked.

The checks live here, reading the providers' public attributes, because the providers offer
only :meth:`~llamaroute.providers.Provider.diagnose` (a line of text) and ``available``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..catalog import Catalog, Route

__all__ = ["Finding", "check_provider", "environment_notes"]

#: Seconds for each doctor request: it asks small questions of servers that answer fast.
TIMEOUT = 5.0


@dataclass
class Finding:
    """What doctor found about one provider."""

    provider: str
    status: str
    usable: bool
    models: list[str]
    credentials: str = "not checked"
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "usable": self.usable, "status": self.status,
                "credentials": self.credentials, "models": self.models,
                "notes": self.notes}  # fmt: skip


def check_provider(provider: Any, catalog: Catalog) -> Finding:
    """Check one configured provider (never raises for what the provider answers)."""
    routes = [route for spec in catalog.models() for route in spec.routes
              if provider.serves(route) and not route.opt_in]  # fmt: skip
    check = {"ollama": _ollama, "openrouter": _openrouter, "bedrock": _bedrock}.get(provider.name)
    if check is None:  # a provider doctor has no check for: its own line, unverified
        return Finding(provider.name, provider.diagnose(), True, _keys(routes, catalog))
    return check(provider, routes, catalog)


def environment_notes(configured: Sequence[str]) -> list[str]:
    """Settings that look meant for a provider that was not configured from them."""
    from ..providers import AWS_CREDENTIAL_ENV

    notes = []
    if "bedrock" not in configured and any(os.environ.get(name) for name in AWS_CREDENTIAL_ENV):
        if importlib.util.find_spec("boto3") is None:
            notes.append("AWS credentials are set, but boto3 is not installed, so Bedrock is "
                         "not used: pip install 'llamaroute[bedrock]'")  # fmt: skip
        else:
            notes.append("AWS credentials are set, but no region is (AWS_REGION or the "
                         "profile's region), so Bedrock is not used")  # fmt: skip
    return notes


def _keys(routes: Sequence[Route], catalog: Catalog) -> list[str]:
    wanted = {route.model for route in routes}
    return [spec.key for spec in catalog.models() if spec.key in wanted]


# --- Ollama ---------------------------------------------------------------------------------


def _ollama(provider: Any, routes: list[Route], catalog: Catalog) -> Finding:
    status = provider.diagnose()  # one GET /api/tags, cached by the provider for the rest
    pulled = [route for route in routes if provider.available(route)]
    finding = Finding(provider.name, status, bool(pulled), _keys(pulled, catalog), "none needed")
    if pulled:
        missing = [route for route in routes if route not in pulled]
        finding.notes += [f"{route.model} is not pulled: ollama pull {route.model_id}"
                          for route in missing]  # fmt: skip
    return finding


# --- OpenRouter -----------------------------------------------------------------------------


def _openrouter(provider: Any, routes: list[Route], catalog: Catalog) -> Finding:
    import httpx

    base = provider.base_url
    try:
        with httpx.Client(timeout=TIMEOUT) as http:
            listing = http.get(f"{base}/models")
            if listing.status_code != 200:
                return _unusable(provider, f"{base}/models answered HTTP {listing.status_code}")
            slugs = _slugs(listing)
            if slugs is None:
                return _unusable(
                    provider, f"{base}/models answered 200 but not with a model list: is "
                    f"{base} an OpenRouter (OpenAI-compatible) API URL?",
                )  # fmt: skip
            key = os.environ.get("OPENROUTER_API_KEY", "")
            checked = http.get(f"{base}/key", headers={"Authorization": f"Bearer {key}"})
    except httpx.HTTPError as error:
        return _unusable(provider, f"unreachable at {base}: {type(error).__name__}")
    listed = [route for route in routes if route.model_id in slugs]
    finding = Finding(provider.name, f"reachable at {base}", bool(listed), _keys(listed, catalog))
    finding.notes += [f"{route.model}: {route.model_id} is not in {base}/models"
                      for route in routes if route not in listed]  # fmt: skip
    if checked.status_code == 200:
        finding.credentials = "accepted"
        finding.status += "; the API key is accepted"
    elif checked.status_code in (401, 403):
        finding.credentials, finding.usable = "rejected", False
        finding.status += f"; the API key was rejected ({base}/key answered HTTP "
        finding.status += f"{checked.status_code})"
    else:
        finding.status += (
            f"; the API key was not checked ({base}/key answered HTTP {checked.status_code}): "
            "the first call checks it"
        )
    return finding


def _slugs(response: Any) -> set[str] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    return {
        item["id"] for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)
    }


def _unusable(provider: Any, why: str) -> Finding:
    return Finding(provider.name, f"not usable: {why}", False, [])


# --- Bedrock --------------------------------------------------------------------------------


def _bedrock(provider: Any, routes: list[Route], catalog: Catalog) -> Finding:
    from ..providers.bedrock import import_boto3

    region = provider.region
    keys = _keys(routes, catalog)
    try:
        boto3 = import_boto3()
        from botocore.config import Config

        session = boto3.session.Session(profile_name=provider.profile, region_name=region)
        credentials = session.get_credentials()
    except Exception as error:  # boto3's profile and config errors: doctor reports, never raises
        return Finding(provider.name, f"region {region}; not usable: {error}", False, [])
    bearer = bool(os.environ.get("AWS_BEARER_TOKEN_BEDROCK"))  # a Bedrock API key
    if credentials is None and not bearer:
        return Finding(provider.name, f"region {region}; not usable: no AWS credentials found",
                       False, [], "none found")  # fmt: skip
    method = "AWS_BEARER_TOKEN_BEDROCK" if credentials is None else credentials.method
    config = Config(connect_timeout=TIMEOUT, read_timeout=TIMEOUT,
                    retries={"total_max_attempts": 1, "mode": "standard"})  # fmt: skip
    try:
        control = session.client("bedrock", region_name=region, config=config)
        listing = control.list_foundation_models(byProvider="meta")
    except Exception as error:  # botocore's errors, mapped to words below
        return _bedrock_failure(provider, region, method, keys, error)
    listed = {item.get("modelId"): item for item in listing.get("modelSummaries", [])}
    finding = Finding(provider.name, f"region {region}; AWS credentials from {method} accepted "
                      "(ListFoundationModels answered)", bool(routes), keys,
                      "accepted")  # fmt: skip
    for route in routes:
        found = listed.get(route.foundation_model_id)
        status = ((found or {}).get("modelLifecycle") or {}).get("status")
        if found is None:
            finding.notes.append(f"{route.model}: {route.foundation_model_id} is not listed in "
                                 f"{region}")  # fmt: skip
        elif status and status != "ACTIVE":
            finding.notes.append(f"{route.model}: {route.foundation_model_id} is {status}")
    finding.notes.append("model access is checked by the first call")
    return finding


# AWS error codes that mean the credentials themselves are wrong.
_REJECTED = frozenset({"UnrecognizedClientException", "InvalidSignatureException",
                       "ExpiredTokenException", "ExpiredToken", "InvalidClientTokenId",
                       "IncompleteSignature", "MissingAuthenticationToken"})  # fmt: skip


def _bedrock_failure(
    provider: Any, region: str, method: str, keys: list[str], error: Exception
) -> Finding:
    code = ""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = str((response.get("Error") or {}).get("Code") or "")
    where = f"region {region}; AWS credentials from {method}"
    if code in _REJECTED:
        return Finding(provider.name, f"{where} rejected ({code}): not usable", False, [],
                       "rejected")  # fmt: skip
    if code == "AccessDeniedException":
        # Signed and recognised, but not allowed to list models: usable, model access unknown.
        return Finding(provider.name, f"{where} accepted; listing models was denied "
                       "(AccessDeniedException), so model access was not checked", True, keys,
                       "accepted")  # fmt: skip
    name = code or type(error).__name__
    if "NoCredentials" in name or "PartialCredentials" in name:
        return Finding(provider.name, f"region {region}; not usable: {name}", False, [],
                       "none found")  # fmt: skip
    if "Endpoint" in name or "Connect" in name or "Timeout" in name:
        return Finding(provider.name, f"{where}; not usable: Bedrock did not answer ({name})",
                       False, [])  # fmt: skip
    return Finding(provider.name, f"{where}; the credentials were not checked: "
                   f"ListFoundationModels failed ({name})", True, keys)  # fmt: skip
