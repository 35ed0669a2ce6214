"""Names a package imports only when first asked for (PEP 562), so that importing the package
stays cheap: ``import llamaroute`` loads neither the client, nor httpx, nor a server's
client library until something uses them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(
    package: str, table: Mapping[str, str], namespace: dict[str, Any] | None = None
) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package``: ``table`` maps each lazy name to the
    module (relative to ``package``) that defines it. With ``namespace`` (the package's
    ``globals()``), a name is imported once and is a plain attribute afterwards."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module, package), name)
        if namespace is not None:
            namespace[name] = value
        return value

    return __getattr__
