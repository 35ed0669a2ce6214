"""The ``bedrock`` namespace of a call's ``extra=`` options, applied to the Converse request
(pure). The options were checked when the request was built (``llamaroute._extra``): only
``guardrailConfig``, ``additionalModelRequestFields``, ``additionalModelResponseFieldPaths``
and ``requestMetadata`` get here, none of which llamaroute sets itself, so they are added as
given. ``guardrailConfig.streamProcessingMode`` exists for ConverseStream only
(``GuardrailStreamConfiguration``): a plain Converse call leaves it out, where botocore's
client-side validation would refuse it.

A guardrail is billed by AWS on its own (per text unit it checks), beside the tokens:
llamaroute's costs and budgets count the tokens only.
"""

from __future__ import annotations

from typing import Any

from ..._exceptions import UnsupportedFeatureError
from ..._request import ChatRequest

__all__ = ["apply_options", "check_sampling"]


def apply_options(kwargs: dict[str, Any], options: dict[str, Any] | None, *, stream: bool) -> None:
    """Add the call's Bedrock options (``extra["bedrock"]``) to the Converse ``kwargs``."""
    if not options:
        return
    for key, value in options.items():
        if key == "guardrailConfig" and not stream:
            value = {name: item for name, item in value.items() if name != "streamProcessingMode"}
        kwargs[key] = value


def check_sampling(request: ChatRequest, model_id: str) -> None:
    """Refuse the sampling parameters Converse has no field for, for Llama (the plan already
    skips Bedrock's routes for them; this guards a direct provider call)."""
    for name in ("top_k", "frequency_penalty", "presence_penalty"):
        if getattr(request, name) is not None:
            raise UnsupportedFeatureError(
                f"{model_id} on Bedrock takes no {name}: Converse's inferenceConfig has "
                "maxTokens, temperature, topP and stopSequences only"
            )
