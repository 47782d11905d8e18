"""Registries: named entries of one kind (strategies, engines, executors, metrics, job kinds,
file readers), added by a decorator and looked up by name with an error that lists the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError):
    """No entry under that name; the message lists those there are."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(MutableMapping[str, T], Generic[T]):
    """Entries by name, in registration order, read like a dict. `add` (or the `register`
    decorator) puts one in; item assignment and deletion exist for tests that register a
    throwaway entry and take it out again. With `unique`, a second, different entry under a
    taken name is refused (a strategy or engine must not silently replace another)."""

    def __init__(self, kind: str, error: type[KeyError] = UnknownName, unique: bool = True):
        self.kind, self.error, self.unique = kind, error, unique
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register `entry` under `name`; returns it."""
        if self.unique and name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def register(self, *names: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under each of `names`."""

        def deco(entry: T) -> T:
            for name in names:
                self.add(name, entry)
            return entry

        return deco

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self._entries) or "none"
            raise self.error(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __setitem__(self, name: str, entry: T) -> None:
        self.add(name, entry)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
