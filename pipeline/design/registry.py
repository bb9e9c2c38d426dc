"""A registry of methods by name whose modules are imported on first use.

The config schema takes its choices from the registries' names (pipeline.config.validate), and
Snakemake reads them each time it parses the workflow; the methods' own modules import numba,
scipy, ortools or scikit-learn, about a second of start-up that only the job running a method
needs. A LazyRegistry knows its names without importing anything and imports a method's module
when the method is looked up.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping


class LazyRegistry(MutableMapping):
    """``{name: method}``, each method given as ``"module.ATTRIBUTE"`` of ``package``; a method
    set by name (``registry[name] = method``) is registered as it is."""

    def __init__(self, package: str, locations: dict[str, str]):
        self._package = package
        self._entries: dict[str, str | object] = dict(locations)
        self._set: set[str] = set()

    def __getitem__(self, name: str):
        entry = self._entries[name]
        if name in self._set:
            return entry
        module, attribute = entry.rsplit(".", 1)
        return getattr(importlib.import_module(f"{self._package}.{module}"), attribute)

    def __setitem__(self, name: str, method) -> None:
        self._entries[name] = method
        self._set.add(name)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]
        self._set.discard(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
