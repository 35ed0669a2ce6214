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

The requests are the providers' own (``probe_openrouter``, ``probe_bedrock``, Ollama's
``available``), returning plain facts; what they mean for the user, in words, is decided here.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..catalog import Catalog, Route

if TYPE_CHECKING:
    from ..providers.bedrock import BedrockProbe

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
    from ..providers.openrouter import probe_openrouter

    base = provider.base_url
    probe = probe_openrouter(base, os.environ.get("OPENROUTER_API_KEY", ""), TIMEOUT)
    if probe.unreachable is not None:
        return _unusable(provider, f"unreachable at {base}: {_reason(probe.unreachable)}")
    if probe.models_status != 200:
        return _unusable(provider, f"{base}/models answered HTTP {probe.models_status}")
    if probe.slugs is None:
        return _unusable(
            provider, f"{base}/models answered 200 but not with a model list: is "
            f"{base} an OpenRouter (OpenAI-compatible) API URL?",
        )  # fmt: skip
    listed = [route for route in routes if route.model_id in probe.slugs]
    finding = Finding(provider.name, f"reachable at {base}", bool(listed), _keys(listed, catalog))
    finding.notes += [f"{route.model}: {route.model_id} is not in {base}/models"
                      for route in routes if route not in listed]  # fmt: skip
    if probe.key_status == 200:
        finding.credentials = "accepted"
        finding.status += "; the API key is accepted"
    elif probe.key_status in (401, 403):
        finding.credentials, finding.usable = "rejected", False
        finding.status += f"; the API key was rejected ({base}/key answered HTTP "
        finding.status += f"{probe.key_status})"
    else:
        finding.status += (
            f"; the API key was not checked ({base}/key answered HTTP {probe.key_status}): "
            "the first call checks it"
        )
    return finding


def _reason(error: BaseException | None) -> str:
    """The failure in the library's own words ("[Errno -2] Name or service not known",
    "Unable to locate credentials"), after its class name; the key never appears in them."""
    words = " ".join(str(error).split())[:200]
    return f"{type(error).__name__}: {words}" if words else type(error).__name__


def _unusable(provider: Any, why: str) -> Finding:
    return Finding(provider.name, f"not usable: {why}", False, [])


# --- Bedrock --------------------------------------------------------------------------------


def _bedrock(provider: Any, routes: list[Route], catalog: Catalog) -> Finding:
    from ..providers.bedrock import probe_bedrock

    region = provider.region
    keys = _keys(routes, catalog)
    probe = probe_bedrock(region, provider.profile, TIMEOUT)
    if probe.setup_error is not None:
        return Finding(provider.name, f"region {region}; not usable: {probe.setup_error}", False,
                       [])  # fmt: skip
    if probe.credentials is None:
        return Finding(provider.name, f"region {region}; not usable: no AWS credentials found",
                       False, [], "none found")  # fmt: skip
    method = probe.credentials
    if probe.listing is None:
        return _bedrock_failure(provider, region, method, keys, probe)
    listed = {item.get("modelId"): item for item in probe.listing.get("modelSummaries", [])}
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


def _bedrock_failure(
    provider: Any, region: str, method: str, keys: list[str], probe: BedrockProbe
) -> Finding:
    from ..providers.bedrock import CREDENTIALS_REJECTED

    code = probe.error_code
    where = f"region {region}; AWS credentials from {method}"
    if code in CREDENTIALS_REJECTED:
        return Finding(provider.name, f"{where} rejected ({code}): not usable", False, [],
                       "rejected")  # fmt: skip
    if code == "AccessDeniedException":
        # Signed and recognised, but not allowed to list models: usable, model access unknown.
        return Finding(provider.name, f"{where} accepted; listing models was denied "
                       "(AccessDeniedException), so model access was not checked", True, keys,
                       "accepted")  # fmt: skip
    name = code or type(probe.error).__name__
    if "NoCredentials" in name or "PartialCredentials" in name:
        return Finding(provider.name, f"region {region}; not usable: "
                       f"{_reason(probe.error)}", False, [], "none found")  # fmt: skip
    if "Endpoint" in name or "Connect" in name or "Timeout" in name:
        return Finding(provider.name, f"{where}; not usable: Bedrock did not answer "
                       f"({_reason(probe.error)})", False, [])  # fmt: skip
    return Finding(provider.name, f"{where}; the credentials were not checked: "
                   f"ListFoundationModels failed ({name})", True, keys)  # fmt: skip
