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
* With a budget or a per-call ``max_cost``, an attempt may start only if its worst case fits:
  the prompt at a ceiling that no tokenizer can pass (its UTF-8 bytes, :mod:`._caps`), every
  image token and every allowed output token. The worst case is reserved in the ledger until
  the attempt ends, and on OpenRouter the table's price is sent as ``provider.max_price``, so
  a price that moved cannot bill more than was reserved.
* A provider's reported cost is used only if it is a finite amount >= 0; otherwise the table's
  figure is, and the cost's ``note`` says why. The cost keeps both figures (``reported``,
  ``table``), as the ledger does, for ``llamaroute spend --reconcile``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .._exceptions import BudgetExceededError
from .._records import Cost, Usage, plain_decimal
from ..catalog import Catalog, Price, Route
from ._caps import prompt_token_ceiling, worst_case_cost
from ._cost import cost_from_usage, trusted_cost
from ._estimate import RequestShape
from ._ledger import Ledger, SpendEntry
from ._tokens import estimate_text_tokens

__all__ = ["Accounting"]

logger = logging.getLogger("llamaroute")

#: The provider's figure and the table may differ by rounding; beyond this share, or this
#: absolute amount for tiny calls, the table is taken to be stale.
STALE_SHARE = Decimal("0.05")
STALE_FLOOR = Decimal("0.0000001")


def usd(amount: Decimal) -> str:
    """``amount`` in plain notation (``0.0000001``, not ``1E-7``)."""
    return f"{amount:f}"


class Accounting:
    """Prices attempts, keeps the ledger and the budget, flags stale prices (thread-safe).

    ``regions`` maps each provider name to the region its client runs in (``None``: not
    regional), so that a route priced per region is priced for the caller's region. With
    several deployments of one provider (Bedrock in two regions), it also maps each
    deployment's name to its region, and the pricing methods take ``deployment=``: an attempt
    is priced for the region of the deployment that made it.
    """

    def __init__(
        self, catalog: Catalog, ledger: Ledger, regions: Mapping[str, str | None] | None = None
    ) -> None:
        self.catalog = catalog
        self.ledger = ledger
        self.regions: Mapping[str, str | None] = dict(regions or {})
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        # Per route: how far above the table the provider's own figures have been seen (never
        # below 1). Reservations, ceilings and estimates are scaled by it, so a price that
        # moved up is reserved for from the next call on (a reported cost beyond the table
        # is real money, whatever our data says).
        self._factor: dict[str, Decimal] = {}

    def table_price(self, route: Route, *, deployment: str | None = None) -> Price | None:
        """The price table's price of ``route``, for the region its provider (or
        ``deployment``) is configured in."""
        return self.catalog.price(route, self.regions.get(deployment or route.provider))

    def limited(self, max_cost: Decimal | None) -> bool:
        """Whether calls must be bounded in advance (a budget, or this call's ``max_cost``)."""
        return self.ledger.budget is not None or max_cost is not None

    def worst_case(
        self,
        shape: RequestShape,
        route: Route,
        prompt_ceiling: int,
        *,
        deployment: str | None = None,
    ) -> Decimal | None:
        """The most the request can cost on ``route`` (``None``: unknown price): the prompt
        at ``prompt_ceiling`` tokens (:func:`~._caps.request_token_ceiling`: UTF-8 bytes, so
        emoji and unusual scripts cannot overspend), every image token, every allowed output
        token."""
        price = self.price(route, deployment=deployment)
        if price is None:
            return None
        return worst_case_cost(route, price, prompt_ceiling, shape.image_tiles, shape.max_tokens)

    def price(self, route: Route, *, deployment: str | None = None) -> Price | None:
        """The price reservations use on ``route``: the table's, raised by how far above it
        the provider's own figures have been seen. It is also the ceiling sent to a provider
        that takes one (OpenRouter's ``provider.max_price``)."""
        price = self.table_price(route, deployment=deployment)
        factor = self._factor.get(route.pinned)
        if price is None or factor is None:
            return price
        image = None if price.image is None else price.image * factor
        return price.model_copy(update={"input_per_mtok": price.input_per_mtok * factor,
                                        "output_per_mtok": price.output_per_mtok * factor,
                                        "image": image})  # fmt: skip

    def _learn(self, route: Route, reported: Decimal, table: Decimal) -> None:
        if table <= 0 or reported <= table:
            return
        factor = reported / table
        with self._lock:
            if factor > self._factor.get(route.pinned, Decimal(1)):
                self._factor[route.pinned] = factor

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
        self,
        route: Route,
        usage: Usage,
        reported_cost: Decimal | None,
        images: int,
        *,
        problem: str | None = None,
        price: Price | None,
    ) -> tuple[Cost | None, dict[str, Any] | None]:
        """The answer's cost (the provider's own figure where it reports a usable one, else
        usage x the price table), and the two figures when provider and table disagree.

        ``problem`` says why a figure the provider sent was rejected (negative, not finite):
        the table's figure is used, the cost's ``note`` says so and a warning is logged.
        The cost carries both figures where known (``reported``, ``table``). ``price``: the
        route's :meth:`table_price` (the caller reports it with the answer too)."""
        self.catalog.warn_stale_price(route, price)
        note = None
        if reported_cost is None and problem is not None:
            note = f"the provider's reported cost was rejected ({problem}); priced from the table"
            logger.warning("%s: %s", route.pinned, note)
        table_cost = cost_from_usage(usage, price, images=images, note=note)
        table = None if table_cost is None else table_cost.total
        if reported_cost is None:
            return table_cost, None
        if type(reported_cost) is Decimal and (table is None or type(table) is Decimal):
            # Both figures are Decimals already (a provider's checked amount, Decimal
            # arithmetic): not validated again. Anything else a custom provider sends is.
            reported = trusted_cost(total=reported_cost, source="provider",
                                    reported=reported_cost, table=table)  # fmt: skip
        else:
            reported = Cost(total=reported_cost, source="provider", reported=reported_cost,
                            table=table)  # fmt: skip
        if price is None or table is None:
            return reported, None
        self._learn(route, reported_cost, table)
        difference = abs(reported_cost - table)
        if difference <= max(STALE_FLOOR, STALE_SHARE * max(reported_cost, table)):
            return reported, None
        check = {"provider": plain_decimal(reported_cost), "price_table": plain_decimal(table),
                 "price_source": price.source, "price_checked": price.checked.isoformat(),
                 "price_origin": price.origin}  # fmt: skip
        with self._lock:
            first = route.pinned not in self._warned
            self._warned.add(route.pinned)
        if first:
            logger.warning(
                "%s reported %s USD where the price table gives %s USD: the table looks stale "
                "(llamaroute prices shows its date)", route.pinned, usd(reported_cost),
                usd(table),
            )  # fmt: skip
        return reported, check

    def partial_cost(
        self,
        route: Route,
        shape: RequestShape,
        text: str,
        note: str | None = None,
        *,
        prompt_ceiling: int | None = None,
        deployment: str | None = None,
    ) -> Cost | None:
        """An estimate of what an attempt without usage was billed: the prompt and the text
        received (a stream cut short or abandoned, or one that ended without its usage).

        With ``prompt_ceiling`` the estimate leans high, as a cap needs: the prompt at its
        ceiling and the text at one token per UTF-8 byte (:mod:`._caps`), at the price
        reservations use."""
        if prompt_ceiling is None:
            usage = Usage(input_tokens=shape.input_tokens,
                          output_tokens=estimate_text_tokens(text))  # fmt: skip
        else:
            usage = Usage(input_tokens=max(shape.input_tokens, prompt_ceiling),
                          output_tokens=prompt_token_ceiling(text))  # fmt: skip
        price = self.price(route, deployment=deployment)
        cost = cost_from_usage(usage, price, images=len(shape.image_tiles))
        if cost is None:
            return None
        return cost.model_copy(update={"source": "estimate", "note": note})
