"""Secrets that never print themselves.

API keys live in :class:`Secret` objects: ``repr()``, ``str()``, pickling and logging show a
masked form (``sk-or-v1-…a1b2``), and :meth:`Secret.redact` scrubs the value from any text we
build from a provider's response (an upstream that echoes the key in an error body).
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["Secret"]


class Secret:
    """A credential. Use :meth:`reveal` only where the value is sent; nowhere else."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value, for the one header or signature that needs it."""
        return self._value

    @property
    def masked(self) -> str:
        """A form safe to show: a short non-secret prefix and the last four characters."""
        value = self._value
        if len(value) < 12:
            return "…"
        # Keep a recognisable kind prefix such as "sk-or-v1-", never more than 9 characters.
        cut = value.rfind("-", 0, 10) + 1
        return f"{value[:cut]}…{value[-4:]}"

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the value replaced by :attr:`masked`."""
        if self._value and self._value in text:
            return text.replace(self._value, self.masked)
        return text

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"Secret({self.masked!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __getstate__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")
