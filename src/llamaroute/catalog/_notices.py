"""What a catalog warns about, once each: an unconfirmed end of life, a stale price; and the
lifecycle refusal the plan applies before anything is sent.

Warnings go to the ``llamaroute`` logger (as the rest of the package's warnings do), at most
once per catalog and subject: the "already said" set lives on the catalog instance, not in a
module, so two clients with their own catalogs each warn once, and a test's catalog starts
fresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._prices import Price

__all__ = ["CatalogNotices", "LocalDate", "lifecycle_text"]

logger = logging.getLogger("llamaroute")


class LifecycleRoute(Protocol):
    """What the notices read of a catalog route (the catalog's ``Route`` has it all); a
    protocol, so that this module need not import the catalog that uses it."""

    @property
    def provider(self) -> str: ...
    @property
    def pinned(self) -> str: ...
    @property
    def lifecycle(self) -> str: ...
    @property
    def legacy_date(self) -> date | None: ...
    @property
    def end_of_life(self) -> date | None: ...
    @property
    def lifecycle_source(self) -> str: ...
    @property
    def unconfirmed(self) -> tuple[str, ...]: ...
    def past_end_of_life(self, today: date) -> bool: ...


class CatalogNotices:
    """The lifecycle and staleness side of :class:`~llamaroute.Catalog` (a mixin: it uses the
    catalog's clock ``today`` and its ``_warned`` set)."""

    today: Callable[[], date]
    _warned: set[tuple[str, ...]]
    _warn_lock: threading.Lock

    def lifecycle_refusal(self, route: LifecycleRoute) -> str | None:
        """Why ``route`` must not be called any more (its confirmed end of life, with the
        date), or ``None``. An unconfirmed end of life is not a refusal: see
        :meth:`warn_lifecycle`."""
        if route.lifecycle != "eol" and route.end_of_life is None:
            return None  # most routes: no clock read on the hot path
        if not route.past_end_of_life(self.today()):
            return None
        when = f" on {route.end_of_life.isoformat()}" if route.end_of_life else ""
        source = f" ({route.lifecycle_source})" if route.lifecycle_source else ""
        return f"reached its end of life{when}{source}; requests to it fail"

    def warn_lifecycle(self, route: LifecycleRoute) -> None:
        """Log, once per catalog and route, that a route may be past an unconfirmed end of life
        (or is legacy). Called when a route is planned; it is still tried."""
        eol = route.end_of_life
        if eol is not None and "end_of_life" in route.unconfirmed and eol <= self.today():
            self.warn_once(
                ("eol", route.pinned),
                "%s may have reached its end of life on %s (unconfirmed); run `llamaroute "
                "prices refresh` with AWS credentials to read the lifecycle",
                route.pinned, eol.isoformat(),
            )  # fmt: skip

    def warn_stale_price(self, route: LifecycleRoute, price: Price | None) -> None:
        """Log, once per catalog and price entry, that a used price is older than its
        provider's threshold (``stale_after_days``)."""
        if price is None or price.stale_after_days is None:
            return
        if not price.is_stale(self.today()):
            return
        self.warn_once(
            ("stale", route.provider, price.describe(), price.checked.isoformat()),
            "the %s price for %s was read %d days ago (%s, from %s), more than the %d days "
            "%s prices are trusted for; costs and estimates may be off (`llamaroute prices` "
            "lists the dates)",
            route.provider, price.describe(), price.age_days(self.today()),
            price.checked.isoformat(), price.source, price.stale_after_days, route.provider,
        )  # fmt: skip

    def warn_once(self, key: tuple[str, ...], message: str, *args: object) -> bool:
        """Log ``message`` as a warning on the ``llamaroute`` logger the first time ``key`` is
        seen by this catalog; ``True`` if it was logged now."""
        with self._warn_lock:
            first = key not in self._warned
            self._warned.add(key)
        if first:
            logger.warning(message, *args)
        return first


def lifecycle_text(route: LifecycleRoute, today: date) -> str:
    """``route``'s lifecycle as a short phrase (see :meth:`Route.lifecycle_text`)."""
    eol = route.end_of_life
    mark = "?" if "end_of_life" in route.unconfirmed else ""
    if route.past_end_of_life(today):
        return f"eol {eol.isoformat()}" if eol else "eol"
    if eol is not None and eol <= today:
        return f"eol {eol.isoformat()}{mark}"
    text: str = route.lifecycle
    if route.lifecycle == "legacy" and route.legacy_date is not None:
        text += f" since {route.legacy_date.isoformat()}"
    if eol is not None:
        text += f", eol {eol.isoformat()}{mark}"
    return text


class LocalDate:
    """Today's local date, as :meth:`datetime.date.today` gives it, read again at most once a
    minute: a call asks for it several times (price age, lifecycle, staleness), and
    ``date.today()`` costs more than the rest of those checks. One per catalog, not global."""

    __slots__ = ("_date", "_minute")

    def __init__(self) -> None:
        self._minute = -1
        self._date = date.today()

    def __call__(self) -> date:
        minute = int(time.time() // 60)
        if minute != self._minute:
            self._minute, self._date = minute, date.today()
        return self._date
