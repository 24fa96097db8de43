"""One generic registry for every kind of named item (datasets, models, metrics...)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Generic, TypeVar

from bench.errors import PluginError, UnknownNameError

T = TypeVar("T")


def suggest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


class Registry(Generic[T]):
    """Maps unique names to specs that carry ``name``, ``plugin`` and ``distribution``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, item: T, plugin: str, distribution: str) -> T:
        name = item.name  # type: ignore[attr-defined]
        if name in self._items:
            prev = self._items[name]
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by plugin "
                f"{prev.plugin!r} ({prev.distribution}) and by plugin "  # type: ignore[attr-defined]
                f"{plugin!r} ({distribution})"
            )
        item = replace(item, plugin=plugin, distribution=distribution)  # type: ignore[type-var]
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none registered"
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{suggest(name, self._items)}; known: {known}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(sorted(self._items.values(), key=lambda s: s.name))  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return sorted(self._items)
