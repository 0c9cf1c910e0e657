"""Exports written once: a package re-exports the ``__all__`` of its modules."""

from __future__ import annotations

import importlib

__all__ = ["reexport"]


def reexport(namespace: dict, modules) -> list[str]:
    """Import each of ``modules`` (names relative to the package whose ``namespace`` — its
    ``globals()`` — this is), put the names of its ``__all__`` into ``namespace`` and return them
    all, in order: the package's ``__all__``. A name two modules export is an error."""
    names: list[str] = []
    for name in modules:
        module = importlib.import_module(f"{namespace['__name__']}.{name}")
        twice = set(names) & set(module.__all__)
        if twice:
            raise ImportError(f"{module.__name__} exports {sorted(twice)}, which another module of the package exports too")
        namespace.update({n: getattr(module, n) for n in module.__all__})
        names += module.__all__
    return names
