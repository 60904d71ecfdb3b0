"""Materialize: cut a variant's segments out of the archive into audio files or raw PCM shards.

Layout of ``OUT`` (read by the pre-trainer; do not change it)::

    OUT/index.parquet            kind "materialized" (curate.schema.MaterializedSegment), in plan order
    OUT/shards/shard-00000.pcm16 --format pcm16: raw little-endian int16, mono, 16 kHz, segments concatenated
    OUT/audio/<recording_id>/<segment_id>.flac   --format flac (the default): one 16-bit FLAC per segment
    OUT/materialize.json         what was materialized, from where, totals
    OUT/failures.parquet         recordings that could not be decoded (their segments are missing)
    OUT/_progress/               plan, per-unit index parts and completion markers (resume state)

Work units are deterministic: one per source recording (flac), or one per shard (pcm16, a run of segments
in recording order up to ``shard_bytes``). A unit decodes each segment's range with
:func:`curate.audio.load` (seeking), or, when segments cover most of a file that libsndfile cannot seek,
streams the file once in blocks; a whole programme is never in memory. A unit writes its files, then its
index part, then a completion marker; a rerun skips units with a marker and redoes the others, so a run
killed at any point finishes with the same index and audio as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate import audio, manifest
from curate.catalog.content import check_content
from curate.errors import CurateError
from curate.rundir import RunDir
from curate.rundir import safe_name as rundir_safe_name
from curate.schema import Failure, MaterializedSegment

log = logging.getLogger(__name__)

FORMATS = ("flac", "pcm16")
SR = audio.SAMPLE_RATE
DEFAULT_SHARD_BYTES = 1 << 30  # a new shard once this many bytes are written (materialize, webdataset)
ROW_COLUMNS = (  # the segment fields an index row / export manifest row carries
    "segment_id",
    "recording_id",
    "audio_path",
    "start_s",
    "end_s",
    "duration_s",
    "text",
    "speaker",
    "language",
    "variant",
)


class MaterializeError(CurateError, RuntimeError):
    """The output directory holds another materialization, or the request is invalid."""


def safe_name(name: str) -> str:
    """A file-name-safe form of an id: :func:`curate.rundir.safe_name` (the one rule)."""
    return rundir_safe_name(name)


def to_int16(x: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1) → int16; exact for audio decoded from 16-bit sources (k / 32768)."""
    return np.clip(np.round(x.astype(np.float64) * 32768.0), -32768, 32767).astype("<i2")


def flac_bytes(x: np.ndarray, sr: int = SR) -> bytes:
    """16-bit FLAC of a float32 or int16 mono signal, in memory."""
    import soundfile as sf

    pcm = x if x.dtype == np.int16 else to_int16(x)
    buf = io.BytesIO()
    sf.write(buf, pcm, sr, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------
# Decoding the segments of one recording


def _dense(audio_path: str, spans: list[tuple[float, float]]) -> bool:
    """Stream the file once instead of seeking? Only for files libsndfile cannot seek in (mp3/mp4/…: every
    range read would start an ffmpeg) whose segments cover most of the decoded span."""
    if len(spans) < 8 or audio._sf_info(audio_path) is not None:
        return False
    covered = sum(e - s for s, e in spans)
    return covered >= 0.5 * max(e for _, e in spans)


def _stream_spans(audio_path: str, spans: list[tuple[float, float]], block_s: float = 30.0) -> Iterator[np.ndarray]:
    """Segments (sorted by start) from one streaming decode; memory is one block + one segment."""
    blocks = audio.stream(audio_path, block_s=block_s)
    buf = np.zeros(0, dtype=np.float32)
    buf_start = 0  # sample index of buf[0]
    exhausted = False
    try:
        for s, e in spans:
            a, b = round(s * SR), round(e * SR)
            while buf_start + buf.size < b and not exhausted:
                try:
                    block = next(blocks)
                except StopIteration:
                    exhausted = True
                    break
                if buf_start + buf.size + block.size <= a:  # wholly before this segment: skip it
                    buf_start += buf.size + block.size
                    buf = np.zeros(0, dtype=np.float32)
                    continue
                buf = np.concatenate([buf, block])
            if a > buf_start:  # later segments start no earlier than this one (spans are sorted)
                cut = min(a - buf_start, buf.size)
                buf, buf_start = buf[cut:], buf_start + cut
            yield buf[: max(0, b - buf_start)].copy()
    finally:
        blocks.close()


def segment_audio(audio_path: str, spans: list[tuple[float, float]]) -> Iterator[np.ndarray]:
    """16 kHz mono float32 of each ``(start_s, end_s)`` of one recording, in the given order."""
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    if _dense(audio_path, spans) and order == list(range(len(spans))):
        yield from _stream_spans(audio_path, spans)
        return
    for s, e in spans:
        yield audio.load(audio_path, s, e)


# ---------------------------------------------------------------------------------------------------
# Plan and work units


# A materialized directory keeps its resume state the way a run directory does (RunDir owns those paths).
def _marker(out_dir: Path, unit: int) -> Path:
    return RunDir(out_dir).marker(f"unit-{unit:05d}")


def _index_part(out_dir: Path, unit: int) -> Path:
    return RunDir(out_dir).progress_part("index", unit)


def _add_content(units: list[dict[str, Any]], run: RunDir) -> None:
    """Give every row its recording's content fingerprint (``None`` for a run ingested before fingerprints)."""
    import pyarrow.parquet as pq

    if not run.recordings.is_file() or "content" not in pq.read_schema(run.recordings).names:
        return
    table = manifest.read_table(run.recordings, "recordings", ["recording_id", "content"])
    content = dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))
    for u in units:
        for r in u["rows"]:
            r["content"] = content.get(r["recording_id"])


def plan_units(rows: pd.DataFrame, fmt: str, shard_bytes: int) -> list[dict[str, Any]]:
    """Deterministic work units: one per recording (flac) or one per bounded shard (pcm16)."""
    rows = rows.sort_values(["recording_id", "start_s", "end_s", "segment_id"], kind="stable")
    records = rows[[c for c in ROW_COLUMNS if c in rows.columns]].to_dict("records")
    for r in records:
        for k in ("text", "speaker", "language"):
            v = r.get(k)
            r[k] = None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
    units: list[list[dict[str, Any]]] = []
    if fmt == "flac":
        current: list[dict[str, Any]] = []
        for r in records:
            if current and r["recording_id"] != current[-1]["recording_id"]:
                units.append(current)
                current = []
            current.append(r)
        if current:
            units.append(current)
    else:
        size = 0
        for r in records:
            nbytes = 2 * round(r["duration_s"] * SR)
            if not units or (size and size + nbytes > shard_bytes):
                units.append([])
                size = 0
            units[-1].append(r)
            size += nbytes
    return [{"unit": i, "fmt": fmt, "rows": u} for i, u in enumerate(units)]


def materialize_unit(item: dict[str, Any]) -> dict[str, Any]:
    """Do one work unit (module-level and JSON-in/JSON-out, so Ray can run it anywhere)."""
    out_dir = Path(item["out_dir"])
    unit, fmt, rows = item["unit"], item["fmt"], item["rows"]
    t0 = time.perf_counter()
    index: list[MaterializedSegment] = []
    failures: list[Failure] = []
    shard_name = f"shard-{unit:05d}.pcm16"
    sink = None
    if fmt == "pcm16":
        (out_dir / "shards").mkdir(parents=True, exist_ok=True)
        tmp = out_dir / "shards" / f".{shard_name}.tmp"
        sink = open(tmp, "wb")  # noqa: SIM115 - closed below, renamed into place only when complete
    offset = 0
    samples = 0
    try:
        by_rec: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_rec.setdefault(r["recording_id"], []).append(r)
        for rec_id, segs in by_rec.items():
            spans = [(r["start_s"], r["end_s"]) for r in segs]
            try:
                check_content(segs[0]["audio_path"], segs[0].get("content"))
                decoded = list(
                    _write_recording(
                        segs, segment_audio(segs[0]["audio_path"], spans), fmt, out_dir, sink, offset, shard_name
                    )
                )
            except audio.AudioDecodeError as e:
                if sink is not None:  # drop what this recording wrote before failing
                    sink.seek(2 * offset)
                    sink.truncate()
                failures.append(Failure(rec_id, "materialize", "AudioDecodeError", e.problem, e.path))
                log.warning("materialize: %s", e)
                continue
            for m in decoded:
                index.append(m)
                offset = m.offset + m.num_samples if fmt == "pcm16" else 0
                samples += m.num_samples
        if sink is not None:
            sink.close()
            os.replace(tmp, out_dir / "shards" / shard_name)
    except BaseException:
        if sink is not None:
            sink.close()
        raise
    manifest.write_records(_index_part(out_dir, unit), index, "materialized")
    if failures:
        manifest.write_records(RunDir(out_dir).unit_failures(unit), failures, "failures")
    summary = {
        "unit": unit,
        "segments": len(index),
        "audio_s": samples / SR,
        "failed_recordings": len(failures),
        "seconds": time.perf_counter() - t0,
    }
    manifest.write_json(_marker(out_dir, unit), summary)
    return summary


def _write_recording(
    segs: list[dict[str, Any]],
    signals: Iterator[np.ndarray],
    fmt: str,
    out_dir: Path,
    sink: Any,
    offset: int,
    shard_name: str,
) -> Iterator[MaterializedSegment]:
    for r, x in zip(segs, signals, strict=True):
        pcm = to_int16(x)
        if fmt == "pcm16":
            sink.write(pcm.tobytes())
            shard, off = shard_name, offset
            offset += pcm.size
        else:
            rel = f"audio/{safe_name(r['recording_id'])}/{safe_name(r['segment_id'])}.flac"
            manifest.atomic_write_bytes(out_dir / rel, flac_bytes(pcm))
            shard, off = rel, 0
        if pcm.size == 0:
            log.warning("materialize: %s has no samples (past the end of %s?)", r["segment_id"], r["audio_path"])
        yield MaterializedSegment(
            segment_id=r["segment_id"],
            recording_id=r["recording_id"],
            shard=shard,
            offset=off,
            num_samples=int(pcm.size),
            sample_rate=SR,
            start_s=float(r["start_s"]),
            end_s=float(r["end_s"]),
            duration_s=float(r["duration_s"]),
            text=r.get("text"),
            speaker=r.get("speaker"),
            language=r.get("language"),
            variant=r["variant"],
        )


def _fingerprint(units: list[dict[str, Any]], fmt: str, shard_bytes: int) -> str:
    h = hashlib.sha256(f"{fmt}:{shard_bytes}".encode())
    for u in units:
        for r in u["rows"]:
            h.update(f"{u['unit']}|{r['segment_id']}|{r['audio_path']}|{r['start_s']!r}|{r['end_s']!r}\n".encode())
    return h.hexdigest()[:16]


def materialize(
    run_dir: str | Path | None,
    variant: str | None,
    out_dir: str | Path,
    *,
    fmt: str = "flac",
    segments: pd.DataFrame | None = None,
    runner: str = "ray",
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    ray_address: str | None = None,
    on_plan: Callable[[int, int], None] | None = None,
    on_unit: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Materialize a variant (or an explicit ``segments`` frame, e.g. a selection) into ``out_dir``.

    Rerun the same call to resume. Returns the content of ``materialize.json``.
    """
    if fmt not in FORMATS:
        raise MaterializeError(f"unknown materialize format {fmt!r}; choose one of {FORMATS}")
    if runner not in ("ray", "local"):
        raise MaterializeError(f"unknown runner {runner!r}; choose ray or local")
    if shard_bytes < 2 * SR:
        raise MaterializeError(f"shard_bytes={shard_bytes} is too small (at least one second of audio)")
    out_dir = Path(out_dir)
    if segments is None:
        if run_dir is None or variant is None:
            raise MaterializeError("materialize needs a run directory and a variant, or a segments frame")
        from curate.export.select import load_segments

        segments = load_segments(run_dir, variant)
    units = plan_units(segments, fmt, shard_bytes)
    fp = _fingerprint(units, fmt, shard_bytes)
    if run_dir is not None:  # each recording's content fingerprint from ingest: replaced audio is noticed
        _add_content(units, RunDir(run_dir))
    plan_file = RunDir(out_dir).plan_json
    if plan_file.exists():
        old = json.loads(plan_file.read_text())
        if old.get("fingerprint") != fp:
            raise MaterializeError(
                f"{out_dir} holds another materialization ({old.get('format')}, {old.get('segments')} segments "
                f"of variant {old.get('variant')!r}); use a new --out directory or delete it"
            )
    else:
        manifest.write_json(
            plan_file,
            {
                "fingerprint": fp,
                "format": fmt,
                "variant": variant,
                "segments": len(segments),
                "units": len(units),
                "shard_bytes": shard_bytes,
            },
        )
    pending = [u for u in units if not _marker(out_dir, u["unit"]).exists()]
    if on_plan:
        on_plan(len(units), len(units) - len(pending))
    items = [{**u, "out_dir": str(out_dir)} for u in pending]
    t0 = time.perf_counter()
    if runner == "local" or len(items) <= 1:
        results = (materialize_unit(it) for it in items)
    else:
        from curate.runners.ray import map_tasks

        results = map_tasks(items, materialize_unit, num_cpus=1, address=ray_address)
    for summary in results:
        if on_unit:
            on_unit(summary)
    return _finalize(out_dir, units, run_dir, variant, fmt, shard_bytes, time.perf_counter() - t0)


def _finalize(
    out_dir: Path, units: list[dict[str, Any]], run_dir: Any, variant: Any, fmt: str, shard_bytes: int, seconds: float
) -> dict[str, Any]:
    import pyarrow as pa

    for sub in ("audio", "shards"):  # temp files of units killed mid-write (their units were redone)
        for tmp in (out_dir / sub).rglob(".*.tmp") if (out_dir / sub).is_dir() else []:
            tmp.unlink(missing_ok=True)
    parts = [manifest.read_table(_index_part(out_dir, u["unit"]), "materialized") for u in units]
    table = pa.concat_tables(parts) if parts else manifest.to_table([], "materialized")
    manifest.write_table(out_dir / "index.parquet", table, "materialized")
    fdir = RunDir(out_dir).unit_failures_dir
    failures = manifest.read_table(fdir, "failures") if fdir.is_dir() else manifest.to_table([], "failures")
    manifest.write_table(RunDir(out_dir).failures, failures, "failures")
    ns = table.column("num_samples").to_numpy() if table.num_rows else np.zeros(0)
    info = {
        "format": fmt,
        "run_dir": None if run_dir is None else str(Path(run_dir).resolve()),
        "variant": variant,
        "segments": table.num_rows,
        "hours": float(ns.sum()) / SR / 3600,
        "units": len(units),
        "shard_bytes": shard_bytes if fmt == "pcm16" else None,
        "failed_recordings": failures.num_rows,
        "sample_rate": SR,
        "seconds_this_call": seconds,
    }
    manifest.write_json(out_dir / "materialize.json", info)
    return info


def read_segment(out_dir: str | Path, row: dict[str, Any]) -> np.ndarray:
    """The int16 samples of one index row (a reader for tests, notebooks and the pre-trainer)."""
    out_dir = Path(out_dir)
    if row["shard"].endswith(".pcm16"):
        mm = np.memmap(out_dir / "shards" / row["shard"], dtype="<i2", mode="r")
        return np.array(mm[row["offset"] : row["offset"] + row["num_samples"]])
    import soundfile as sf

    x, _ = sf.read(str(out_dir / row["shard"]), dtype="int16")
    return x


__all__ = [
    "DEFAULT_SHARD_BYTES",
    "ROW_COLUMNS",
    "FORMATS",
    "MaterializeError",
    "flac_bytes",
    "materialize",
    "materialize_unit",
    "plan_units",
    "read_segment",
    "safe_name",
    "segment_audio",
    "to_int16",
]
