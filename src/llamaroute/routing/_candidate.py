"""The records a plan is made of: a candidate route and the plan itself."""

from __future__ import annotations

from typing import NamedTuple

from ..catalog import Resolution, Route
from ..providers import Provider

__all__ = ["Candidate", "Plan", "candidate"]


class Candidate(NamedTuple):  # a tuple: one is built per route on every call
    """One route the call may take, and the configured provider instance (the deployment)
    that takes it.

    ``key`` names the pair wherever state is kept per route (breakers, latency, attempt
    numbers, calls in flight, rate limits): the route's ``provider:model_id`` for a
    deployment named like its provider (so one deployment per provider reads as before),
    else ``provider:model_id@deployment``.
    """

    route: Route
    provider: Provider
    key: str

    @property
    def deployment(self) -> str:
        """The deployment's name (``"openrouter"``, or its ``deployment=``)."""
        return self.provider.deployment


def candidate(route: Route, provider: Provider) -> Candidate:
    """``route`` on ``provider``, keyed as :class:`Candidate` says."""
    deployment = provider.deployment
    key = route.pinned if deployment == route.provider else f"{route.pinned}@{deployment}"
    return Candidate(route, provider, key)


class Plan(NamedTuple):
    """A planned call: the candidates in the order to try them, and the routes left out, each
    with the reason (a provider configured elsewhere, a request the route cannot take)."""

    resolution: Resolution
    candidates: tuple[Candidate, ...]
    skipped: tuple[tuple[Route, str], ...] = ()
    too_long: int = 0  # how many of ``skipped`` the prompt does not fit (context window)
