"""The money layer: prices applied (cost after a call), token estimates, ``estimate()`` before
a call, whole-workload estimates, the spend ledger, and a client's accounting (budgets and
reservations).

Internal: this package's ``__init__`` is the interface for the layers above and the tests; the
public names are re-exported from :mod:`llamaroute`. It imports only from the catalog and the
layers below it. Workload estimation is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from ._caps import prompt_token_ceiling, request_token_ceiling, worst_case_cost
from ._cost import cost_from_usage, price_for, tokens_cost
from ._estimate import (
    DEFAULT_EXPECTED_OUTPUT_TOKENS,
    Estimate,
    Estimates,
    RequestShape,
    SkippedRoute,
    TokenTotals,
    estimate,
    estimate_shape,
    image_token_range,
    request_shape,
    route_tokens,
    select_routes,
)
from ._token_heuristic import PIECES, text_token_band
from ._token_heuristic import class_costs as token_class_costs
from ._token_heuristic import letter_script as token_script
from ._token_heuristic import pieces as token_pieces
from ._tokens import (
    EXACT_COUNTER,
    HEURISTIC,
    MAX_TEMPLATE_EXTRA,
    PADDED_IMAGE_TOKENS,
    TOKENIZER_ENV,
    CounterChoice,
    TextCounter,
    TokenCounter,
    chat_template_tokens,
    conservative_prompt_tokens,
    detect_language,
    estimate_text_tokens,
    image_positions,
    image_tiles_for,
    text_counter,
)
from ._window import MIN_ANSWER_TOKENS, output_reserve, window_fit, window_refusal

if TYPE_CHECKING:
    from ._accounting import Accounting
    from ._ledger import Ledger, MemoryLedger, SpendEntry, SpendSummary
    from ._pg_ledger import PostgresLedger
    from ._reconcile import Corrections, RouteDrift
    from ._sqlite_ledger import SqliteLedger, open_ledger
    from ._workload import (
        BadLine,
        RouteTotals,
        WorkloadOption,
        WorkloadResult,
        estimate_workload,
        parse_line,
    )

__all__ = [
    "DEFAULT_EXPECTED_OUTPUT_TOKENS",
    "EXACT_COUNTER",
    "HEURISTIC",
    "MAX_TEMPLATE_EXTRA",
    "MIN_ANSWER_TOKENS",
    "PADDED_IMAGE_TOKENS",
    "PIECES",
    "TOKENIZER_ENV",
    "Accounting",
    "BadLine",
    "Corrections",
    "CounterChoice",
    "Estimate",
    "Estimates",
    "Ledger",
    "MemoryLedger",
    "PostgresLedger",
    "RequestShape",
    "RouteDrift",
    "RouteTotals",
    "SkippedRoute",
    "SpendEntry",
    "SpendSummary",
    "SqliteLedger",
    "TextCounter",
    "TokenCounter",
    "TokenTotals",
    "WorkloadOption",
    "WorkloadResult",
    "chat_template_tokens",
    "conservative_prompt_tokens",
    "cost_from_usage",
    "detect_language",
    "estimate",
    "estimate_shape",
    "estimate_text_tokens",
    "estimate_workload",
    "image_positions",
    "image_tiles_for",
    "image_token_range",
    "open_ledger",
    "output_reserve",
    "parse_line",
    "price_for",
    "prompt_token_ceiling",
    "request_shape",
    "request_token_ceiling",
    "route_tokens",
    "select_routes",
    "text_counter",
    "text_token_band",
    "token_class_costs",
    "token_pieces",
    "token_script",
    "tokens_cost",
    "window_fit",
    "window_refusal",
    "worst_case_cost",
]

_WORKLOAD = {
    "BadLine",
    "CounterChoice",
    "RouteTotals",
    "WorkloadOption",
    "WorkloadResult",
    "estimate_workload",
    "parse_line",
}
#: Loaded on first use: they import their server's client library.
_SERVERS = {"PostgresLedger": "._pg_ledger"}
#: Loaded on first use: the spend side (ledgers, accounting, reconciliation), which a client
#: or the gateway needs and `llamaroute estimate` does not (a CLI call pays its start-up).
_SPEND = {
    "Accounting": "._accounting",
    "Corrections": "._reconcile",
    "Ledger": "._ledger",
    "MemoryLedger": "._ledger",
    "RouteDrift": "._reconcile",
    "SpendEntry": "._ledger",
    "SpendSummary": "._ledger",
    "SqliteLedger": "._sqlite_ledger",
    "open_ledger": "._sqlite_ledger",
}


__getattr__ = lazy_getattr(
    __name__, {**_SERVERS, **_SPEND, **dict.fromkeys(_WORKLOAD, "._workload")}, globals()
)
