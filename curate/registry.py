"""One flat registry of stage names: ``@register("name")`` on a stage dataclass."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import TypeVar

T = TypeVar("T", bound=type)

REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator: make a stage available to pipelines under ``name``."""

    def deco(cls: T) -> T:
        if name in REGISTRY and REGISTRY[name] is not cls:
            raise RuntimeError(
                f"stage name '{name}' registered twice ({REGISTRY[name].__module__} and {cls.__module__})"
            )
        cls.stage_name = name
        REGISTRY[name] = cls
        return cls

    return deco


def load_all() -> dict[str, type]:
    """Import every module of :mod:`curate.stages` so their ``@register`` calls run (they import no models)."""
    import curate.stages as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{mod.name}")
    return REGISTRY


def get(name: str) -> type:
    if name in REGISTRY:  # its module is imported already (a machine may lack what other stages import)
        return REGISTRY[name]
    load_all()
    try:
        return REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, REGISTRY, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"unknown stage '{name}'.{hint} Known stages: {', '.join(sorted(REGISTRY))}") from None
