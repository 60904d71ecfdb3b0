"""The configs and pipelines that ship with curate, found by name wherever curate is installed.

Layout (inside the package, so a wheel carries them; the checkout's top-level ``pipelines/`` and
``configs/`` are links to these folders)::

    presets/pipelines/*.yaml, presets/pipelines/post/*.yaml     WHAT to run (``curate run``, ``curate derive``)
    presets/configs/{pretrain,finetune,corruption,ablations,selection}/*.yaml   HOW to train, corrupt, select

:func:`resolve` turns what a user typed into a file: an existing path as given; else the same path inside
the presets (``pipelines/seq.yaml``, ``configs/finetune/10min.yaml``); else a bare name of that kind
(``seq``, ``post/w-pp-3s``, ``tiny-cpu``).
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from curate.errors import ConfigError

#: kind → folder under the presets root
KINDS = {
    "pipelines": "pipelines",
    "pretrain": "configs/pretrain",
    "finetune": "configs/finetune",
    "corruption": "configs/corruption",
    "ablations": "configs/ablations",
    "selection": "configs/selection",
}


def root() -> Path:
    """The presets folder of the installed package."""
    return Path(str(resources.files(__name__)))


def preset_dir(kind: str) -> Path:
    if kind not in KINDS:
        raise ValueError(f"unknown preset kind {kind!r}; known: {', '.join(KINDS)}")
    return root() / KINDS[kind]


def names(kind: str) -> list[str]:
    """Preset names of a kind (``post/w-pp-3s`` for files in sub-folders)."""
    d = preset_dir(kind)
    return sorted(str(p.relative_to(d).with_suffix("")) for p in d.rglob("*.yaml"))


def find(kind: str, spec: str | Path) -> Path | None:
    """The preset file ``spec`` names (a bare name, or a path as written in a checkout), or ``None``."""
    spec = Path(spec)
    if spec.is_absolute():
        return None
    candidates = [root() / spec, preset_dir(kind) / spec]
    if spec.suffix not in (".yaml", ".yml"):
        candidates.append(preset_dir(kind) / f"{spec}.yaml")
    return next((p for p in candidates if p.is_file()), None)


def locate(kind: str, spec: str | Path) -> Path:
    """``spec`` as a path when it exists, else the preset it names, else ``spec`` unchanged (so the caller's
    own "not found" error names what the user typed)."""
    path = Path(spec)
    if path.exists():
        return path
    return find(kind, spec) or path


def resolve(kind: str, spec: str | Path) -> Path:
    """An existing file as given, else the preset it names; :class:`ConfigError` lists the presets there are."""
    path = Path(spec)
    if path.is_file():
        return path
    found = find(kind, spec)
    if found is not None:
        return found
    have = names(kind)
    close = difflib.get_close_matches(str(spec), have, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"{spec}: no such file, and no {kind} preset of that name.{hint} Presets: {', '.join(have)}")


__all__ = ["KINDS", "find", "locate", "names", "preset_dir", "resolve", "root"]
