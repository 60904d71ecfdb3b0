"""Demucs source separation of FMA clips into a vocal and an instrumental (accompaniment) stem.

``separate_stems`` runs an actor pool (:func:`curate.runners.ray.map_actors`; one Demucs load per worker, one
GPU per worker when present) or, with ``runner="local"``, a plain loop. Per clip it writes, under ``out_dir``::

    <3-digit>/<track>.vocals.flac          16 kHz mono FLAC (what the corruption transform consumes)
    <3-digit>/<track>.accompaniment.flac   drums + bass + other, 16 kHz mono FLAC
    <3-digit>/<track>.done.json            completion marker: the clip's manifest row

and at the end ``stems.parquet`` (one row per clip, built from the markers). A rerun skips clips whose
marker and stem files exist, so an interrupted job resumes. A speech-activity check on the vocal stem (pyannote
segmentation, the weights shipped in the whisperx wheel) records ``speech_ratio``; clips below
``min_speech_ratio`` get ``has_vocals = False``: the song was instrumental before separation, so its "vocal"
stem is residue and is left out of the vocals pool (its accompaniment is still used).
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curate import audio, manifest
from curate.corrupt.sources import AudioPool, Clip
from curate.errors import CurateError
from curate.models.device import cuda_available, pick_device

log = logging.getLogger(__name__)

STEMS_MANIFEST = "stems.parquet"
_FIELDS = [
    ("track_id", "string"),
    ("source_path", "string"),
    ("vocals_path", "string"),
    ("accompaniment_path", "string"),
    ("duration_s", "float64"),
    ("speech_ratio", "float64"),
    ("has_vocals", "bool_"),
    ("genre_top", "string"),
    ("model", "string"),
]


def stems_schema():
    import pyarrow as pa

    return pa.schema([pa.field(n, getattr(pa, t)(), nullable=n in ("speech_ratio", "genre_top")) for n, t in _FIELDS])


class StemsError(CurateError, RuntimeError):
    """The separation model or the VAD model cannot be loaded, or a stems folder is not one."""


@dataclass(frozen=True)
class StemsConfig:
    model: str = "htdemucs"  # a Demucs model/bag name; with `repo`, a <name>.th / <name>.yaml in that folder
    repo: str | None = None  # local folder of Demucs weights (offline); None: Demucs' own download cache
    device: str = "auto"  # auto | cpu | cuda
    shifts: int = 0  # Demucs test-time shifts (1+ is slower, slightly better)
    segment_s: float | None = None  # override the model's chunk length (None: the model's own)
    vad: str = "pyannote"  # pyannote | none
    vad_model: str | None = None  # pyannote segmentation checkpoint (default: the one in the whisperx wheel)
    vad_onset: float = 0.5  # frame is speech when max speaker activation > onset
    min_speech_ratio: float = 0.2  # vocal stems with less speech than this are dropped from the vocals pool
    threads: int | None = None  # torch CPU threads per worker (None: torch's default; Ray sets 1 per CPU asked)


def resolve_device(device: str = "auto") -> str:
    try:
        return pick_device(device, require_available=True)
    except RuntimeError as e:
        raise StemsError(str(e)) from None


def load_demucs(name: str, repo: str | Path | None = None):
    from demucs.pretrained import get_model

    try:
        model = get_model(name, repo=Path(repo) if repo else None)
    except Exception as e:  # demucs raises its own ModelLoadingError or exits through fatal()
        where = f"in {repo} (expected {name}.th or {name}.yaml there)" if repo else "(download cache / hub)"
        raise StemsError(f"cannot load Demucs model '{name}' {where}: {type(e).__name__}: {e}") from None
    if "vocals" not in model.sources:
        raise StemsError(f"Demucs model '{name}' has no 'vocals' source (sources: {model.sources})")
    return model.eval()


def default_vad_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("whisperx")
    if spec is None or spec.origin is None:
        raise StemsError(
            "whisperx is not installed: it ships the pyannote segmentation weights used as VAD; "
            "install it or pass vad_model=/path/to/pytorch_model.bin"
        )
    return Path(spec.origin).parent / "assets" / "pytorch_model.bin"


@functools.lru_cache(maxsize=2)
def _load_vad_cached(path: str):
    import warnings

    from pyannote.audio import Model

    quiet = [logging.getLogger(n) for n in ("lightning", "lightning.pytorch", "pytorch_lightning")]
    levels = [q.level for q in quiet]
    for q in quiet:  # "Lightning automatically upgraded your loaded checkpoint …" is noise here
        q.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Model.from_pretrained(path).eval()
    finally:
        for q, lvl in zip(quiet, levels, strict=True):
            q.setLevel(lvl)


def load_vad(path: str | Path | None = None):
    """The pyannote segmentation model used as VAD (loaded once per process)."""

    path = Path(path) if path else default_vad_path()
    if not path.is_file():
        raise StemsError(f"{path}: pyannote segmentation checkpoint not found")
    return _load_vad_cached(str(path.resolve()))


def speech_ratio(x: np.ndarray, vad_model, onset: float = 0.5, device: str = "cpu") -> float:
    """Share of 16 kHz ``x`` that pyannote segmentation marks as speech (any speaker active > ``onset``),
    over 5 s windows, counting only frames inside the signal."""
    import torch

    if x.size == 0:
        return 0.0
    win = int(audio.SAMPLE_RATE * 5.0)
    n = -(-x.size // win)
    padded = np.zeros(n * win, dtype=np.float32)
    padded[: x.size] = x
    with torch.inference_mode():
        act = vad_model.to(device)(torch.from_numpy(padded.reshape(n, 1, win)).to(device))  # (n, frames, speakers)
    speech = (act.max(dim=-1).values > onset).flatten().cpu().numpy()
    valid = round(speech.size * x.size / padded.size)
    return float(speech[:valid].mean()) if valid else 0.0


def decode_stereo(path: str | Path, sr: int, channels: int = 2) -> np.ndarray:
    """(channels, samples) float32 at ``sr``: Demucs wants the music as it was (44.1 kHz stereo)."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("ffmpeg is not installed: `apt-get install ffmpeg`")
    cmd = [
        exe,
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(path),
        "-map",
        "0:a:0",
        "-ac",
        str(channels),
        "-ar",
        str(sr),
        "-f",
        "f32le",
        "-acodec",
        "pcm_f32le",
        "-",
    ]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise audio.AudioDecodeError(path, f"ffmpeg could not decode it ({msg[-1] if msg else 'no samples'})")
    x = np.frombuffer(proc.stdout, dtype=np.float32)
    return x[: x.size - x.size % channels].reshape(-1, channels).T.copy()


def separate(
    model, wav: np.ndarray, device: str, shifts: int = 0, segment_s: float | None = None
) -> dict[str, np.ndarray]:
    """(channels, samples) at the model's rate → {source: (channels, samples)}, normalised as demucs' CLI does."""
    import torch
    from demucs.apply import apply_model

    x = torch.from_numpy(wav)
    ref = x.mean(0)
    mean, std = ref.mean(), ref.std() + 1e-8
    with torch.inference_mode():
        out = apply_model(
            model,
            ((x - mean) / std)[None],
            shifts=shifts,
            split=True,
            overlap=0.25,
            device=device,
            segment=segment_s,
            progress=False,
        )[0]
    out = out * std + mean
    return {name: out[k].cpu().numpy() for k, name in enumerate(model.sources)}


def _to_16k_mono(x: np.ndarray, sr: int) -> np.ndarray:
    import soxr

    mono = np.ascontiguousarray(x.mean(axis=0), dtype=np.float32)
    return (
        soxr.resample(mono, sr, audio.SAMPLE_RATE, quality="HQ").astype(np.float32) if sr != audio.SAMPLE_RATE else mono
    )


def stem_paths(out_dir: Path, track_id: str) -> tuple[Path, Path, Path]:
    d = out_dir / track_id[:3]
    return d / f"{track_id}.vocals.flac", d / f"{track_id}.accompaniment.flac", d / f"{track_id}.done.json"


class StemWorker:
    """One worker: loads Demucs (and the VAD) once, then separates clips one by one (``item`` → row)."""

    def __init__(self, config: StemsConfig, out_dir: str):
        self.config = config
        self.out_dir = Path(out_dir)
        self.device = resolve_device(config.device)
        if self.device == "cpu" and config.threads:
            import torch

            torch.set_num_threads(config.threads)
        self.model = load_demucs(config.model, config.repo).to(self.device)
        self.vad = load_vad(config.vad_model) if config.vad == "pyannote" else None

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        import soundfile as sf

        tid = item["track_id"]
        voc, acc, marker = stem_paths(self.out_dir, tid)
        if marker.exists() and voc.exists() and acc.exists():
            return {**json.loads(marker.read_text()), "skipped": True}
        try:
            wav = decode_stereo(item["path"], self.model.samplerate, self.model.audio_channels)
        except audio.AudioDecodeError as e:
            return {"track_id": tid, "error": str(e)}
        stems = separate(self.model, wav, self.device, self.config.shifts, self.config.segment_s)
        vocals = _to_16k_mono(stems["vocals"], self.model.samplerate)
        accomp = _to_16k_mono(sum(v for k, v in stems.items() if k != "vocals"), self.model.samplerate)
        ratio = speech_ratio(vocals, self.vad, self.config.vad_onset, self.device) if self.vad is not None else None
        voc.parent.mkdir(parents=True, exist_ok=True)
        for path, x in ((voc, vocals), (acc, accomp)):
            tmp = path.with_name(f".{path.name}.tmp.flac")
            sf.write(str(tmp), np.clip(x, -1.0, 1.0), audio.SAMPLE_RATE, subtype="PCM_16")
            tmp.replace(path)
        row = {
            "track_id": tid,
            "source_path": str(item["path"]),
            "vocals_path": str(voc),
            "accompaniment_path": str(acc),
            "duration_s": vocals.size / audio.SAMPLE_RATE,
            "speech_ratio": ratio,
            "has_vocals": ratio is None or ratio >= self.config.min_speech_ratio,
            "genre_top": item.get("genre_top"),
            "model": self.config.model,
        }
        manifest.write_json(marker, row)
        return row


def _make_worker(config: StemsConfig, out_dir: str) -> StemWorker:
    return StemWorker(config, out_dir)


def separate_stems(
    items: Sequence[dict[str, Any]],
    out_dir: str | Path,
    config: StemsConfig = StemsConfig(),
    runner: str = "ray",
    num_workers: int | None = None,
    num_cpus: float = 1.0,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    address: str | None = None,
) -> Path:
    """Separate every ``{"track_id", "path", "genre_top"?}`` item; returns the path of ``stems.parquet``.
    Clips already done are skipped without loading a model; errors are logged and listed in the manifest log."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = []
    for it in items:
        voc, acc, marker = stem_paths(out_dir, it["track_id"])
        if marker.exists() and voc.exists() and acc.exists():
            if on_progress:
                on_progress({**json.loads(marker.read_text()), "skipped": True})
        else:
            todo.append(dict(it))
    log.info("stems: %d clips to separate, %d already done", len(todo), len(items) - len(todo))
    errors = []
    if todo:
        factory = functools.partial(_make_worker, config, str(out_dir))
        if runner == "local":
            worker = factory()
            results = (worker(it) for it in todo)
        elif runner == "ray":
            from curate.runners.ray import map_actors

            gpus = 1.0 if config.device == "cuda" or (config.device == "auto" and _cuda_available()) else 0.0
            results = map_actors(
                todo, factory, num_workers=num_workers, num_cpus=num_cpus, num_gpus=gpus, address=address
            )
        else:
            raise StemsError(f"runner must be 'ray' or 'local', got {runner!r}")
        for res in results:
            if "error" in res:
                errors.append(res)
                log.warning("stems: %s", res["error"])
            if on_progress:
                on_progress(res)
    return write_stems_manifest(out_dir, errors)


def _cuda_available() -> bool:
    return cuda_available()


def write_stems_manifest(out_dir: Path, errors: Sequence[dict[str, Any]] = ()) -> Path:
    """``stems.parquet`` from every completion marker (sorted by track id); errors go to ``stems_errors.json``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*/*.done.json"))]
    rows = [{k: r.get(k) for k, _ in _FIELDS} for r in rows]
    table = pa.Table.from_pylist(rows, schema=stems_schema())
    path = out_dir / STEMS_MANIFEST
    tmp = out_dir / f".{STEMS_MANIFEST}.tmp"
    pq.write_table(table, tmp)
    tmp.replace(path)
    if errors:
        manifest.write_json(out_dir / "stems_errors.json", list(errors))
    return path


def read_stems_manifest(stems_dir: str | Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    path = Path(stems_dir) / STEMS_MANIFEST
    if not path.is_file():
        raise StemsError(f"{stems_dir}: no {STEMS_MANIFEST} (make one with `curate corrupt stems`)")
    table = pq.read_table(path)
    missing = set(stems_schema().names) - set(table.schema.names)
    if missing:
        raise StemsError(f"{path}: not a stems manifest (missing columns {sorted(missing)})")
    return table.to_pylist()


def stems_pools(stems_dir: str | Path, cache_s: float = 4 * 3600.0) -> tuple[AudioPool, AudioPool]:
    """(instrumental pool: every accompaniment stem, vocals pool: vocal stems of songs with vocals)."""
    rows = read_stems_manifest(stems_dir)
    instr = AudioPool("instrumental", [Clip(r["track_id"], r["accompaniment_path"]) for r in rows], cache_s=cache_s)
    vocals = AudioPool(
        "vocals", [Clip(r["track_id"], r["vocals_path"]) for r in rows if r["has_vocals"]], cache_s=cache_s
    )
    return instr, vocals


def fma_items(tracks) -> list[dict[str, Any]]:
    """FMA tracks (:func:`curate.corrupt.readers.read_fma`) → work items."""
    return [{"track_id": f"{t.track_id:06d}", "path": t.path, "genre_top": t.genre_top} for t in tracks]


def save_demucs_package(model, path: str | Path) -> Path:
    """Save a Demucs model as the ``.th`` package ``get_model(name, repo=dir)`` reads (klass, args, kwargs,
    state): how a random-weight test model, or a converted checkpoint, goes into a local repo."""
    import torch

    args, kwargs = model._init_args_kwargs
    pkg = {
        "klass": model.__class__,
        "args": args,
        "kwargs": kwargs,
        "state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(pkg, path)
    return path


__all__ = [
    "StemWorker",
    "StemsConfig",
    "StemsError",
    "decode_stereo",
    "fma_items",
    "load_demucs",
    "load_vad",
    "read_stems_manifest",
    "save_demucs_package",
    "separate",
    "separate_stems",
    "speech_ratio",
    "stems_pools",
    "write_stems_manifest",
]
