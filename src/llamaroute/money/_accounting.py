"""The money side of a client: what each attempt costs, the ledger, budgets, stale prices.

* An answer costs what the provider reports (OpenRouter's ``usage.cost``), else usage x the
  dated price table, else ``None`` (unknown, never 0).
* When the provider's figure and the table disagree by more than a small tolerance, the
  response says so and a warning is logged once per route: the table needs a refresh.
* A price is the one for the region each provider is configured in (Bedrock bills a
  cross-region profile at the source region's price); a price older than its provider's
  ``stale_after_days`` is warned about once per catalog (``Catalog.warn_stale_price``).
* An attempt that failed after tokens were generated (a stream cut short) was billed: its cost
  is estimated from the prompt and the text received (source ``"estimate"``).
* With a budget or a per-call ``max_cost``, an attempt may start only if its worst case (the
  estimate's ``high``) fits; the worst case is reserved in the ledger until the attempt ends.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .._exceptions import BudgetExceededError
from .._records import Cost, Usage
from ..catalog._catalog import Catalog, Route
from ..catalog._prices import Price
from ._cost import cost_from_usage, tokens_cost
from ._estimate import RequestShape, estimate_shape
from ._ledger import Ledger, SpendEntry
from ._tokens import estimate_text_tokens

__all__ = ["Accounting"]

logger = logging.getLogger("llamaroute")

#: The provider's figure and the table may differ by rounding; beyond this share, or this
#: absolute amount for tiny calls, the table is taken to be stale.
STALE_SHARE = Decimal("0.05")
STALE_FLOOR = Decimal("0.0000001")

#: The worst case bounds the prompt with a margin over our estimate: the fast estimate's
#: worst per-prompt error on the 8-language sample was +17.5 % (README, bench/token_accuracy.py).
PROMPT_MARGIN = 1.25
PROMPT_SLACK = 8


def usd(amount: Decimal) -> str:
    """``amount`` in plain notation (``0.0000001``, not ``1E-7``)."""
    return f"{amount:f}"


class Accounting:
    """Prices attempts, keeps the ledger and the budget, flags stale prices (thread-safe).

    ``regions`` maps each provider name to the region its client runs in (``None``: not
    regional), so that a route priced per region is priced for the caller's region.
    """

    def __init__(
        self, catalog: Catalog, ledger: Ledger, regions: Mapping[str, str | None] | None = None
    ) -> None:
        self.catalog = catalog
        self.ledger = ledger
        self.regions: Mapping[str, str | None] = dict(regions or {})
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def price(self, route: Route) -> Price | None:
        """The price of ``route`` for the region its provider is configured in."""
        return self.catalog.price(route, self.regions.get(route.provider))

    def limited(self, max_cost: Decimal | None) -> bool:
        """Whether calls must be bounded in advance (a budget, or this call's ``max_cost``)."""
        return self.ledger.budget is not None or max_cost is not None

    def worst_case(self, shape: RequestShape, route: Route) -> Decimal | None:
        """The most the request can cost on ``route`` (``None``: unknown price or no fit):
        every allowed output token, every image token, and the prompt with a margin over our
        estimate of it."""
        bounded = dataclasses.replace(
            shape, input_tokens=math.ceil(shape.input_tokens * PROMPT_MARGIN) + PROMPT_SLACK
        )
        estimates = estimate_shape(bounded, [route], catalog=self.catalog, regions=self.regions)
        return estimates[0].high if estimates else None

    def budget_refusal(
        self, route: Route, worst: Decimal | None, max_cost: Decimal | None, spent: Decimal
    ) -> str | None:
        """Why ``route`` cannot be tried within the budget and ``max_cost`` now, or ``None``
        if it can (the route's fit to the request is the plan's question, not this one)."""
        if worst is None:
            return f"{route.pinned}: its price is unknown, so its cost cannot be bounded"
        if max_cost is not None and spent + worst > max_cost:
            already = f" ({usd(spent)} USD already spent on this call)" if spent else ""
            return (
                f"{route.pinned}: up to {usd(worst)} USD would pass max_cost {usd(max_cost)} USD"
                + already
            )
        remaining = self.ledger.remaining()
        if remaining is not None and worst > remaining:
            left = usd(max(remaining, Decimal(0)))
            return f"{route.pinned}: up to {usd(worst)} USD, but {left} USD of the budget is left"
        return None

    def reserve(self, route: Route, worst: Decimal | None, max_cost: Decimal | None,
                spent: Decimal) -> str:  # fmt: skip
        """Hold the worst case of one attempt; :class:`BudgetExceededError` if it cannot."""
        reason = self.budget_refusal(route, worst, max_cost, spent)
        if reason is not None or worst is None:
            raise BudgetExceededError(reason or f"{route.pinned}: cost cannot be bounded")
        return self.ledger.reserve(worst, f"the attempt on {route.pinned}")

    def settle(self, reservation: str | None, entry: SpendEntry | None) -> None:
        """End an attempt: release its reservation (if any) and record what it cost."""
        if reservation is not None:
            self.ledger.settle(reservation, entry)
        elif entry is not None:
            self.ledger.record(entry)

    def answer_cost(
        self, route: Route, usage: Usage, reported_cost: Decimal | None, images: int
    ) -> tuple[Cost | None, dict[str, Any] | None]:
        """The answer's cost (the provider's own figure where it reports one, else usage x the
        price table), and the two figures when provider and table disagree."""
        price = self.price(route)
        self.catalog.warn_stale_price(route, price)
        if reported_cost is None:
            return cost_from_usage(usage, price, images=images), None
        reported = Cost(total=reported_cost, source="provider")
        if price is None:
            return reported, None
        # Only the table's total is needed to check the provider's figure.
        input_cost, output_cost = tokens_cost(
            price, usage.input_tokens, usage.output_tokens, images=images
        )
        table = input_cost + output_cost
        difference = abs(reported.total - table)
        if difference <= max(STALE_FLOOR, STALE_SHARE * max(reported.total, table)):
            return reported, None
        check = {"provider": str(reported.total), "price_table": str(table),
                 "price_source": price.source, "price_checked": price.checked.isoformat(),
                 "price_origin": price.origin}  # fmt: skip
        with self._lock:
            first = route.pinned not in self._warned
            self._warned.add(route.pinned)
        if first:
            logger.warning(
                "%s reported %s USD where the price table gives %s USD: the table looks stale "
                "(llamaroute prices shows its date)", route.pinned, usd(reported.total),
                usd(table),
            )  # fmt: skip
        return reported, check

    def partial_cost(self, route: Route, shape: RequestShape, text: str) -> Cost | None:
        """An estimate of what a cut-short attempt was billed: the prompt and the text sent."""
        usage = Usage(input_tokens=shape.input_tokens, output_tokens=estimate_text_tokens(text))
        cost = cost_from_usage(usage, self.price(route), images=len(shape.image_tiles))
        return None if cost is None else cost.model_copy(update={"source": "estimate"})
