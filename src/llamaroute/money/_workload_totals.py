"""The sums a workload estimate keeps, and the answer to "which provider is cheapest for all
of it".

Each line asks for a model (its own ``model``, or the default), and the model's routes under
the filters are its *demand*. A demand keeps, per route, running token sums (a
:class:`~llamaroute.money._estimate.TokenTotals`) and the lines the route could not serve. At the
end the sums are read two ways:

* per route (:class:`RouteTotals`): what each native model ID would cost for the lines that
  asked for its model;
* per provider option (:class:`WorkloadOption`): one provider (and, for regional providers, one
  geography; for variants such as OpenRouter's ``:free``, one variant) serving every line of
  every model. An option that has no route for a model, or whose route cannot take a line (a
  context window too small), does not serve every line, and says why.

Sums are integers until priced, once, at the end: costs are linear in tokens, so the totals are
exactly the sums of the per-line costs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from .._exceptions import InvalidRequestError
from ._estimate import RequestShape, SkippedRoute, TokenTotals, route_tokens

if TYPE_CHECKING:
    from ..catalog import Price, Route

__all__ = ["BadLine", "RouteTotals", "WorkloadOption", "WorkloadResult"]

Costs = tuple[Decimal, Decimal, Decimal]


@dataclass(frozen=True, slots=True)
class BadLine:
    """A workload line that could not be estimated: its 1-based number and the typed error
    (:class:`~llamaroute.InvalidRequestError`, or :class:`~llamaroute.InvalidImageError` for
    its image)."""

    line: int
    error: InvalidRequestError

    def __str__(self) -> str:
        return f"line {self.line}: {self.error}"


@dataclass(slots=True)
class RouteTotals:
    """One route's sums over a workload: token counts for the lines that asked for its model,
    and how many of those it could not serve (with the first reason)."""

    route: Route
    price: Price | None
    tokens: TokenTotals = field(default_factory=TokenTotals)
    skipped: int = 0
    skip_reason: str = ""

    def costs(self) -> Costs | None:
        """(low, expected, high) USD over the lines this route served; ``None`` if the route's
        price is unknown."""
        return None if self.price is None else self.tokens.costs(self.price)

    def add(self, other: RouteTotals) -> None:
        """Add ``other``'s counts (the same route, other lines) to these."""
        self.tokens.add(other.tokens)
        self.skipped += other.skipped
        self.skip_reason = self.skip_reason or other.skip_reason


@dataclass(frozen=True, slots=True)
class WorkloadOption:
    """One provider serving the whole workload: for each model asked for, that provider's
    route (in one geography and variant), the summed tokens and costs, and what it cannot
    serve.

    ``costs`` is ``(low, expected, high)`` USD over the requests it serves, ``None`` when a
    route's price is unknown. ``unserved`` counts the requests it cannot serve, ``reasons``
    says why (one line per cause). ``free`` is true when every price is known and zero (a local
    server such as Ollama, or an opt-in free variant): such an option is not a bargain to crown
    unless it serves every line.
    """

    provider: str
    label: str
    routes: tuple[RouteTotals, ...]
    tokens: TokenTotals
    costs: Costs | None
    unserved: int
    reasons: tuple[str, ...]

    @property
    def serves_all(self) -> bool:
        """Whether this option can serve every request of the workload."""
        return self.unserved == 0

    @property
    def free(self) -> bool:
        """Whether every route's price is known and zero."""
        return self.costs is not None and not any(self.costs) and all(
            totals.price is not None
            and not (totals.price.input_per_mtok or totals.price.output_per_mtok)
            and not totals.price.image
            for totals in self.routes
        )  # fmt: skip

    @property
    def model_ids(self) -> tuple[str, ...]:
        """The native model IDs this option calls."""
        return tuple(totals.route.model_id for totals in self.routes)


@dataclass(slots=True)
class WorkloadResult:
    """The outcome of :func:`~llamaroute.money.estimate_workload`.

    ``model`` is the default model's key (``""`` when every line names its own), ``models`` the
    requests per model key, ``routes`` the per-route totals, ``options`` one per provider (see
    :class:`WorkloadOption`), ``skipped`` the routes a ``region`` leaves out and why.
    """

    model: str
    routes: list[RouteTotals] = field(default_factory=list)
    options: list[WorkloadOption] = field(default_factory=list)
    models: dict[str, int] = field(default_factory=dict)
    skipped: list[SkippedRoute] = field(default_factory=list)
    lines: int = 0
    requests: int = 0
    bad_lines: int = 0
    first_bad: list[BadLine] = field(default_factory=list)

    def ranked(self) -> list[RouteTotals]:
        """The routes cheapest first by expected total (unknown prices last)."""

        def order(item: RouteTotals) -> tuple[bool, Decimal, str]:
            costs = item.costs()
            return (costs is None, costs[1] if costs else Decimal(0), item.route.pinned)

        return sorted(self.routes, key=order)

    def ranked_options(self) -> list[WorkloadOption]:
        """The options that serve every line first, each group cheapest first by expected
        total (unknown prices last)."""

        def order(item: WorkloadOption) -> tuple[bool, bool, Decimal, Decimal, str]:
            costs = item.costs
            return (not item.serves_all, costs is None, costs[1] if costs else Decimal(0),
                    costs[2] if costs else Decimal(0), item.label)  # fmt: skip

        return sorted(self.options, key=order)

    def cheapest(self) -> WorkloadOption | None:
        """The cheapest option (by expected total) that serves every line and has a known
        price, preferring one that is not :attr:`~WorkloadOption.free`: a free local server
        is crowned only when no priced option serves every line. ``None`` if none serves
        every line."""
        able = [item for item in self.ranked_options() if item.serves_all and item.costs]
        priced = [item for item in able if not item.free]
        best = priced or able
        return best[0] if best else None


# --- the running sums -----------------------------------------------------------------------


@dataclass(slots=True)
class _Group:
    """Routes of one demand with the same limits: every line gets the same token counts on
    each, so they are computed once (a model's routes are usually two or three groups)."""

    leader: RouteTotals
    members: list[Route]
    sums: RouteTotals


#: A request's shape as a workload tallies it: ``RequestShape``'s fields in order, without
#: the tokenizer's name (the same for every line of a run).
ShapeKey = tuple[int, tuple[int, ...], int | None, int | None, int | None, int | None]
#: How many distinct shapes a demand tallies before it adds them to its sums (bounded: flat
#: memory whatever the file's size).
_PENDING_SHAPES = 20_000


@dataclass(slots=True)
class Demand:
    """The lines that ask for one model (with the same routes): their routes under the
    filters, the routes the region left out, and the running sums.

    Lines are tallied by shape first: a workload repeats its shapes (the same prompt
    template, the same ``max_tokens``), and costs are linear, so each distinct shape is
    worked out on the routes once and counted as many times as it was seen."""

    key: str
    vision: bool
    routes: tuple[Route, ...]
    elsewhere: tuple[SkippedRoute, ...]
    prices: dict[str, Price | None]
    requests: int = 0
    groups: dict[tuple[object, ...], _Group] = field(default_factory=dict)
    pending: dict[ShapeKey, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for route in self.routes:
            price = self.prices[route.pinned]
            limits = _limits(route, price)
            group = self.groups.get(limits)
            if group is None:
                self.groups[limits] = _Group(
                    RouteTotals(route, price), [route], RouteTotals(route, price)
                )
            else:
                group.members.append(route)

    def add(self, shape: RequestShape) -> None:
        """Count one request of this shape on every route."""
        self.tally((shape.input_tokens, shape.image_tiles, shape.max_tokens,
                    shape.expected_output_tokens, shape.input_tokens_low,
                    shape.input_tokens_high))  # fmt: skip

    def tally(self, shape: ShapeKey) -> None:
        """Count one request of this shape (:data:`ShapeKey`) on every route."""
        self.requests += 1
        pending = self.pending
        pending[shape] = pending.get(shape, 0) + 1
        if len(pending) >= _PENDING_SHAPES:
            self.flush()

    def flush(self) -> None:
        """Add the tallied shapes to each route's sums."""
        for key, times in self.pending.items():
            shape = RequestShape(*key)
            for group in self.groups.values():
                tokens = route_tokens(group.leader.route, group.leader.price, shape)
                if isinstance(tokens, str):
                    group.sums.skipped += times
                    group.sums.skip_reason = group.sums.skip_reason or tokens
                else:
                    group.sums.tokens.add(tokens, times)
        self.pending.clear()

    def totals(self) -> dict[str, RouteTotals]:
        """Each route's sums over this demand's lines, by ``provider:model_id``."""
        self.flush()
        found: dict[str, RouteTotals] = {}
        for group in self.groups.values():
            for route in group.members:
                mine = found[route.pinned] = RouteTotals(route, self.prices[route.pinned])
                mine.add(group.sums)
        return found


def _limits(route: Route, price: Price | None) -> tuple[object, ...]:
    return (
        route.context_window,
        route.max_output_tokens,
        route.max_images,
        route.template_tokens,
        route.image_tokens,
        price.image_tokens_low if price else None,
        price.image_tokens_high if price else None,
    )


def finish(result: WorkloadResult, demands: Iterable[Demand]) -> None:
    """Fill ``result``'s routes, options and skipped routes from the demands' sums."""
    demands = [demand for demand in demands if demand.requests]
    per_demand = [demand.totals() for demand in demands]
    routes: dict[str, RouteTotals] = {}
    for totals in per_demand:
        for pinned, mine in totals.items():
            routes.setdefault(pinned, RouteTotals(mine.route, mine.price)).add(mine)
    result.routes = list(routes.values())
    skipped: dict[str, SkippedRoute] = {}
    for demand in demands:
        result.models[demand.key] = result.models.get(demand.key, 0) + demand.requests
        for item in demand.elsewhere:
            skipped.setdefault(f"{item.provider}:{item.model_id}", item)
    result.skipped = list(skipped.values())
    keys = dict.fromkeys(_option_key(route) for demand in demands for route in demand.routes)
    result.options = [_option(key, demands, per_demand) for key in keys]


OptionKey = tuple[str, str | None, tuple[str, ...], str | None]


def _option_key(route: Route) -> OptionKey:
    return (route.provider, route.geography, route.regions, route.variant)


def _label(key: OptionKey) -> str:
    provider, geography, regions, variant = key
    label = provider
    if regions:
        label += f" {geography}." if geography else f" ({', '.join(regions)})"
    if variant:
        label += f" :{variant}"
    return label


def _option(key: OptionKey, demands: list[Demand], per_demand: list[dict[str, RouteTotals]]) -> (
    WorkloadOption
):  # fmt: skip
    provider, _, regions, variant = key
    label = _label(key)
    chosen: dict[str, RouteTotals] = {}
    tokens = TokenTotals()
    unserved = 0
    reasons: dict[str, int] = {}
    for demand, totals in zip(demands, per_demand, strict=True):
        route = next(
            (route for route in demand.routes if route.provider == provider
             and route.variant == variant and (route.regions == regions or not route.regions)),
            None,
        )  # fmt: skip
        if route is None:
            unserved += demand.requests
            why = next(
                (item.reason for item in demand.elsewhere if item.provider == provider),
                f"{label} has no route for {demand.key}",
            )
            why = f"for {demand.key}: {why}"
            reasons[why] = reasons.get(why, 0) + demand.requests
            continue
        mine = totals[route.pinned]
        tokens.add(mine.tokens)
        if mine.skipped:
            unserved += mine.skipped
            why = f"on {route.model_id}: {mine.skip_reason}"
            reasons[why] = reasons.get(why, 0) + mine.skipped
        # Another demand (the same model asked for by another name) may use the same route.
        chosen.setdefault(route.pinned, RouteTotals(route, mine.price)).add(mine)
    costs: Costs | None = (Decimal(0), Decimal(0), Decimal(0))
    for mine in chosen.values():
        each = mine.costs()
        costs = None if costs is None or each is None else _plus(costs, each)
    return WorkloadOption(
        provider=provider,
        label=label,
        routes=tuple(chosen.values()),
        tokens=tokens,
        costs=costs if chosen else None,
        unserved=unserved,
        reasons=tuple(f"{count:,} request(s) {why}" for why, count in reasons.items()),
    )


def _plus(left: Costs, right: Costs) -> Costs:
    return (left[0] + right[0], left[1] + right[1], left[2] + right[2])
