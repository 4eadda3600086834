"""One registry per plug-in kind: predictors, ingest readers, bench backends, campaign backends, acquisitions.

A plug-in is a class that registers itself (`@REGISTRY.register`) in a module of its kind's package. The registry
imports that package's modules the first time it is asked for a name it does not hold (or for the list of names),
so adding a plug-in is adding one module, and a name saved earlier (a model naming its predictor) is found without
anyone importing its module first. Plug-ins outside flexpredict are modules named by an installed distribution's
entry points in the group `flexpredict.<kind>` (`[project.entry-points."flexpredict.predictors"]`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from typing import Generic, TypeVar

Plugin = TypeVar("Plugin", bound=type)


class Registry(Mapping[str, Plugin], Generic[Plugin]):
    """Plug-in classes of one kind by name (the class attribute `attribute`), as a read-only mapping."""

    def __init__(self, kind: str, package: str, noun: str, attribute: str = "name"):
        self.kind, self.package, self.noun, self.attribute = kind, package, noun, attribute
        self._classes: dict[str, Plugin] = {}
        self._discovered = False

    def register(self, cls: Plugin) -> Plugin:
        """Class decorator: make `cls` available under its name."""
        self._classes[getattr(cls, self.attribute)] = cls
        return cls

    def unregister(self, name: str) -> None:
        """Forget a plug-in (a test's throwaway one)."""
        self._classes.pop(name, None)

    def discover(self) -> None:
        """Import every module of the package and every module the kind's entry points name (imports are cached:
        a second call only lists them)."""
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")
        for entry in entry_points(group=f"flexpredict.{self.kind}"):
            entry.load()
        self._discovered = True

    def __getitem__(self, name: str) -> Plugin:
        if name not in self._classes:
            self.discover()
        return self._classes[name]

    def __contains__(self, name: object) -> bool:
        if name not in self._classes:
            self.discover()
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        if not self._discovered:  # listing scans once; a name not found scans again (a plug-in installed since)
            self.discover()
        return iter(sorted(self._classes))  # by name: the same list whichever module was imported first

    def __len__(self) -> int:
        return len(list(iter(self)))

    def unknown(self, name: str) -> str:
        """The one-line message for a name no plug-in has."""
        return f"unknown {self.noun} '{name}' (known: {', '.join(sorted(self))})"
