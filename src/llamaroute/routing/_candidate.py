"""The records a plan is made of: a candidate route and the plan itself."""

from __future__ import annotations

from typing import NamedTuple

from ..catalog import Resolution, Route
from ..providers import Provider

__all__ = ["Candidate", "Plan"]


class Candidate(NamedTuple):  # a tuple: one is built per route on every call
    """One route the call may take, and the configured provider instance that takes it."""

    route: Route
    provider: Provider


class Plan(NamedTuple):
    """A planned call: the candidates in the order to try them, and the routes left out, each
    with the reason (a provider configured elsewhere, a request the route cannot take)."""

    resolution: Resolution
    candidates: tuple[Candidate, ...]
    skipped: tuple[tuple[Route, str], ...] = ()
    too_long: int = 0  # how many of ``skipped`` the prompt does not fit (context window)
