"""How the catalog matches a model name: normalised spellings, and the index of every key and
alias to its model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .._exceptions import ConfigurationError

__all__ = ["name_index", "normalise_name"]


class Named(Protocol):
    """What the index reads of a model (the catalog's ``ModelSpec`` has it)."""

    @property
    def key(self) -> str: ...
    @property
    def aliases(self) -> tuple[str, ...]: ...


def normalise_name(name: str) -> str:
    """``name`` as the catalog compares it: trimmed, lower case, ``_`` and spaces as ``-``,
    without a leading ``meta-llama/`` or a trailing ``-instruct``."""
    text = name.strip().lower().replace("_", "-").replace(" ", "-")
    text = text.removeprefix("meta-llama/")
    return text.removesuffix("-instruct")


def name_index(specs: Iterable[Named]) -> dict[str, str]:
    """Every normalised key and alias, to its model's key; a name two models claim is a
    :class:`~llamaroute.ConfigurationError`."""
    index: dict[str, str] = {}
    for spec in specs:
        for name in (spec.key, *spec.aliases):
            owner = index.setdefault(normalise_name(name), spec.key)
            if owner != spec.key:
                raise ConfigurationError(
                    f"catalog name {name!r} is claimed by both {owner} and {spec.key}"
                )
    return index
