"""A fresh virtualenv that holds exactly the distributions some requirements need, taken from this environment
without a download: every file a distribution's ``RECORD`` lists under site-packages is linked into the new
venv's site-packages (its ``.dist-info`` too, so pip and ``importlib.metadata`` see it installed). Files a wheel
puts elsewhere (console scripts, data) are left out. What is not in the closure is not importable there, e.g.
PyTorch for curate's core install."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def closure(requirements: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``requirements`` need, transitively (markers and extras evaluated);
    :class:`metadata.PackageNotFoundError` for one that this environment lacks."""
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = found.get(key[0]) or metadata.distribution(req.name)
        found[key[0]] = dist
        for extra in ("", *sorted(req.extras)):
            for r in map(Requirement, dist.requires or []):
                if r.marker is None or r.marker.evaluate(default_environment() | {"extra": extra}):
                    todo.append(r)
    return found


def link_distributions(dists: dict[str, metadata.Distribution], site_packages: Path) -> int:
    """Link each distribution's site-packages files into ``site_packages``; returns how many files."""
    n = 0
    for dist in dists.values():
        root = Path(dist.locate_file(""))
        for f in dist.files or []:
            rel = Path(f)
            if rel.parts[0] == ".." or "__pycache__" in rel.parts or not (root / rel).is_file():
                continue
            dest = site_packages / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                os.symlink(root / rel, dest)
                n += 1
    return n


__all__ = ["closure", "link_distributions"]
