"""Spend reports over the gateway's ledger: totals grouped by key, user, tag, provider, model
or day, and per-day series for the dashboard's chart. Amounts are summed as exact decimals."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from decimal import Decimal

from .._exceptions import ConfigurationError
from .._records import plain_decimal

__all__ = ["GROUPINGS", "spend_report", "spend_series"]

#: What ``spend`` can be grouped by.
GROUPINGS = ("key", "user", "tag", "provider", "model", "day")


def spend_report(
    db: sqlite3.Connection, by: str, since: str | None, names: Mapping[str, str]
) -> dict[str, object]:
    """Spend grouped ``by`` key, user, tag, provider, model or day (on or after the day
    ``since``): per group the cost (exact string), requests and tokens, largest first."""
    if by not in GROUPINGS:
        raise ConfigurationError(f"spend by {by!r}: choose one of {', '.join(GROUPINGS)}")
    column = {
        "key": "s.key_id",
        "user": "s.user",
        "tag": "t.tag",
        "provider": "s.provider",
        "model": "s.model",
        "day": "s.day",
    }[by]
    join = "JOIN spend_tags t ON t.spend_id = s.id" if by == "tag" else ""
    where, params = ("WHERE s.day >= ?", (since,)) if since else ("", ())
    rows = db.execute(
        f"SELECT {column}, s.cost, s.input_tokens, s.output_tokens FROM spend s {join} {where}",
        params,
    )
    costs: dict[str, Decimal] = {}
    counts: dict[str, tuple[int, int, int]] = {}
    total = Decimal(0)
    for name, cost, input_tokens, output_tokens in rows:
        group = str(name) if name is not None else ""
        amount = Decimal(cost)
        costs[group] = costs.get(group, Decimal(0)) + amount
        requests, inputs, outputs = counts.get(group, (0, 0, 0))
        counts[group] = (requests + 1, inputs + input_tokens, outputs + output_tokens)
        total += amount
    out = []
    for name in sorted(costs, key=lambda group: (-costs[group], group)):
        cost = costs[name]
        requests, input_tokens, output_tokens = counts[name]
        entry: dict[str, object] = {
            by: name,
            "cost": plain_decimal(cost),
            "requests": requests,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
        if by == "key":
            entry["name"] = names.get(name, "(master)" if name == "master" else "")
        out.append(entry)
    return {"by": by, "since": since, "total": plain_decimal(total), "groups": out}


def spend_series(db: sqlite3.Connection, by: str, since: str | None) -> dict[str, dict[str, str]]:
    """Spend per day and per ``by`` (key, model or provider): ``{day: {name: cost}}``."""
    column = {"key": "key_id", "model": "model", "provider": "provider"}[by]
    where, params = ("WHERE day >= ?", (since,)) if since else ("", ())
    out: dict[str, dict[str, Decimal]] = {}
    for day, name, cost in db.execute(
        f"SELECT day, {column}, cost FROM spend {where} ORDER BY day", params
    ):
        per_day = out.setdefault(str(day), {})
        per_day[str(name)] = per_day.get(str(name), Decimal(0)) + Decimal(cost)
    return {
        day: {name: plain_decimal(cost) for name, cost in names.items()}
        for day, names in out.items()
    }
