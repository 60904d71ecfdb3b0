"""The driver's bounded tables: ingest, filters and the plan stream through Parquet files in chunks, so the
driver's memory follows a chunk (and the few per-row columns planning needs), not the catalog.

- :func:`ingest_to_run` writes ``recordings.parquet`` and the ingest failure rows chunk by chunk.
- :func:`filter_run` runs the filters over ``recordings.parquet``: per-row filters a chunk at a time, aggregates
  and audio passes on the columns they need; decisions are written as Arrow tables, never one object per row.
- :func:`write_plan_recordings` stores the kept recordings in shard order (``_progress/plan_recordings.parquet``)
  so that a shard's recordings are one row range, read when the shard is dispatched (:func:`read_shard`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from curate import audio, manifest
from curate.catalog import ProbeFn, ingest_chunks
from curate.errors import RecordingError, RunDirError
from curate.rundir import RunDir
from curate.runners.guard import RecordingGuard
from curate.schema import Decision, Failure, Recording, recording_from_row
from curate.stages.base import Aggregate, AudioPass, Filter

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000  # catalog rows per ingest/filter chunk
GROUP_ROWS = 1024  # rows per Parquet row group of the plan's recordings: what one shard's read decodes at least


def ingest_to_run(
    catalog: str | Path,
    out_dir: RunDir | Path,
    *,
    min_duration_s: float,
    published_format: str | None,
    probe: ProbeFn | None,
    on_progress: Callable[[int], None] | None = None,
    chunk_rows: int | None = None,
) -> None:
    """Ingest ``catalog`` into ``out_dir``: recordings.parquet plus the failure rows (checks, then probe rows,
    the order :func:`ingest` gives). The files appear only when the whole catalog is done."""
    run = RunDir.of(out_dir)
    with (
        manifest.writer(run.recordings, "recordings") as recs,
        manifest.writer(run.ingest_checks, "failures") as checks,
        manifest.writer(run.ingest_probed, "failures") as probed,
    ):
        chunks = ingest_chunks(
            catalog,
            min_duration_s=min_duration_s,
            published_format=published_format,
            probe=probe,
            chunk_rows=chunk_rows or CHUNK_ROWS,
        )
        for chunk in chunks:
            recs.write(chunk.recordings)
            checks.write(chunk.checks)
            probed.write(chunk.probed)
            if on_progress and chunk.rows:
                on_progress(chunk.rows)


def _decisions(ids, stage: str, reasons, duplicate_of=None) -> pa.Table:
    """Decision rows of recordings ``ids`` that ``stage`` dropped (``duplicate_of``: missing values are null)."""
    n = len(ids)
    dup = [None] * n if duplicate_of is None else list(duplicate_of)
    return pa.table(
        {
            "recording_id": pa.array(list(ids), pa.string()),
            "kept": pa.array(np.zeros(n, bool)),
            "stage": pa.array([stage] * n, pa.string()),
            "reason": pa.array([str(r) for r in reasons], pa.string()),
            "duplicate_of": pa.array(dup, pa.string(), from_pandas=True),
        }
    )


def _alive_frame(path: Path, alive: np.ndarray, columns: list[str] | None) -> pd.DataFrame:
    """The alive rows of recordings.parquet (``columns`` of them, all when None), indexed by row position. The
    declared columns of an aggregate come as Arrow-backed text (a few bytes a value, not a Python object each)."""
    table = manifest.read_table(path, "recordings", columns)
    table = table if alive.all() else table.filter(pa.array(alive))  # (a filter copies even when keeping all)
    text = {pa.string(): pd.ArrowDtype(pa.string())}
    df = table.to_pandas(types_mapper=text.get) if columns else table.to_pandas()
    df.index = np.flatnonzero(alive)
    return df


def run_audio_pass(
    stage: AudioPass,
    df: pd.DataFrame,
    run: RunDir,
    threads: int | None = None,
    guard: RecordingGuard | None = None,
) -> tuple[list[Decision], list[Failure]]:
    """Run ``stage`` on every recording of ``df`` whose result is not stored yet, ``threads`` at a time, and
    store the results batch by batch (a killed pass resumes). Returns drops + failure rows for unreadable audio.
    ``guard``: each recording's call runs under it (the watchdog; a recording an earlier try was killed on is
    a failure row at once)."""
    done = stage.done(run)
    todo = [recording_from_row(r) for r in df.to_dict("records") if r["recording_id"] not in done]
    decisions: list[Decision] = []
    failures: list[Failure] = []

    def one(rec: Recording) -> tuple[Recording, object, Failure | None]:
        poisoned = guard.poisoned(rec) if guard is not None else None
        if poisoned is not None:
            return rec, None, poisoned
        try:
            if guard is None:
                return rec, stage.compute(rec), None
            return rec, guard.watchdog(rec).call(stage.stage_name, stage.compute, rec), None
        except (audio.AudioDecodeError, RecordingError) as e:
            return rec, None, Failure(rec.recording_id, stage.stage_name, type(e).__name__, str(e), rec.audio_path)

    n = stage.resources.batch_size
    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        for i in range(0, len(todo), n):
            ok = []
            for rec, result, failed in pool.map(one, todo[i : i + n]):
                if failed is None:
                    ok.append((rec.recording_id, result))
                    continue
                decisions.append(
                    Decision(rec.recording_id, False, stage.stage_name, f"audio unreadable: {failed.message}")
                )
                failures.append(failed)
            stage.store(run, ok)
            log.info("%s: %d/%d recordings", stage.stage_name, min(i + n, len(todo)), len(todo))
    return decisions, failures


def _filter(st: Filter, path: Path, alive: np.ndarray, decisions: manifest.PartWriter, chunk_rows: int) -> None:
    """A per-row filter, a chunk of recordings at a time."""
    offset = 0
    for batch in manifest.iter_batches(path, "recordings", chunk_rows):
        mask = alive[offset : offset + batch.num_rows]
        if mask.any():
            df = pa.Table.from_batches([batch]).filter(pa.array(mask)).to_pandas()
            df.index = np.flatnonzero(mask) + offset
            reasons = st.reasons(df)
            drop = reasons.notna().to_numpy()
            decisions.write(_decisions(df["recording_id"][drop], st.stage_name, reasons[drop]))
            alive[df.index[drop]] = False
        offset += batch.num_rows


def _aggregate(st: Aggregate, path: Path, alive: np.ndarray, decisions: manifest.PartWriter) -> None:
    """An aggregate, on the columns it declares of every alive recording."""
    df = _alive_frame(path, alive, list(st.columns) if st.columns else None)
    drop = st.drop(df)
    dup = drop["duplicate_of"] if "duplicate_of" in drop.columns else None
    decisions.write(_decisions(drop["recording_id"], st.stage_name, drop["reason"], dup))
    alive[df.index[df["recording_id"].isin(set(drop["recording_id"]))]] = False


def _audio_pass(
    st: AudioPass, run: RunDir, alive: np.ndarray, decisions: manifest.PartWriter, guard: RecordingGuard | None
) -> list[Failure]:
    """An audio pass over every alive recording (its results stored batch by batch in the run directory)."""
    df = _alive_frame(run.recordings, alive, None)
    dropped, failed = run_audio_pass(st, df, run, guard=guard)
    decisions.write(dropped)
    alive[df.index[df["recording_id"].isin({d.recording_id for d in dropped})]] = False
    return failed


def _kept(path: Path, alive: np.ndarray) -> pa.Table:
    kept = manifest.read_table(path, "recordings", ["recording_id"]).column(0).filter(pa.array(alive))
    n = len(kept)
    text = pa.nulls(n, pa.string())
    stage = pa.array(["kept"] * n, pa.string())
    names = ["recording_id", "kept", "stage", "reason", "duplicate_of"]
    return pa.table([kept, pa.array(np.ones(n, bool)), stage, text, text], names=names)


def filter_run(
    out_dir: RunDir | Path, stages: list, chunk_rows: int | None = None, guard: RecordingGuard | None = None
) -> np.ndarray:
    """Run Filter/AudioPass/Aggregate stages in order over ``out_dir``/recordings.parquet and write
    decisions.parquet (and the audio passes' failure rows) exactly as :func:`curate.testing.oracle.run_filters`
    would. Returns the alive mask over recordings.parquet's rows (the kept recordings). ``guard``: the audio
    passes' calls run under it."""
    run = RunDir.of(out_dir)
    path = run.recordings
    alive = np.ones(pq.ParquetFile(path).metadata.num_rows, bool)
    pass_failures: list[Failure] = []
    with manifest.writer(run.decisions, "decisions") as decisions:
        for st in stages:
            if not alive.any():
                break
            if isinstance(st, Filter):
                _filter(st, path, alive, decisions, chunk_rows or CHUNK_ROWS)
            elif isinstance(st, AudioPass):
                pass_failures += _audio_pass(st, run, alive, decisions, guard)
            elif isinstance(st, Aggregate):
                _aggregate(st, path, alive, decisions)
        manifest.write_records(run.audio_pass_failures, pass_failures, "failures")
        decisions.write(_kept(path, alive))
    return alive


def write_plan_recordings(out_dir: RunDir | Path, positions: np.ndarray) -> None:
    """Store rows ``positions`` of recordings.parquet, in that order (the plan's), as plan_recordings.parquet.
    Rows in file order (a catalog sorted by id) stream through a chunk at a time; any other order reads the
    recordings table whole (Arrow columns, ~150 bytes a recording) to take them in order."""
    run = RunDir.of(out_dir)
    source = run.recordings
    with manifest.writer(run.plan_recordings, "recordings", GROUP_ROWS) as w:
        if len(positions) == 0 or np.all(np.diff(positions) > 0):
            wanted = np.zeros(pq.ParquetFile(source).metadata.num_rows, bool)
            wanted[positions] = True
            offset = 0
            for batch in manifest.iter_batches(source, "recordings", CHUNK_ROWS):
                w.write(pa.Table.from_batches([batch]).filter(pa.array(wanted[offset : offset + batch.num_rows])))
                offset += batch.num_rows
            return
        table = manifest.read_table(source, "recordings")
        for i in range(0, len(positions), CHUNK_ROWS):
            w.write(table.take(pa.array(positions[i : i + CHUNK_ROWS])))


def positions_of(out_dir: RunDir | Path, ids: list[str]) -> np.ndarray:
    """Row positions in recordings.parquet of ``ids`` (a plan's flattened shards)."""
    run = RunDir.of(out_dir)
    have = manifest.read_table(run.recordings, "recordings", ["recording_id"]).column(0)
    pos = pd.Index(have.to_pandas()).get_indexer(ids)
    if (pos < 0).any():
        missing = [ids[i] for i in np.flatnonzero(pos < 0)[:3]]
        raise RunDirError(f"{run.recordings} lacks planned recordings {missing}; start over in a new --out")
    return pos


def read_shard(out_dir: RunDir | str | Path, start: int, stop: int) -> list[Recording]:
    """The recordings of one shard: rows ``[start, stop)`` of the plan's recordings (what a worker reads)."""
    table = manifest.read_rows(RunDir.of(out_dir).plan_recordings, "recordings", start, stop)
    return [recording_from_row(r) for r in table.to_pylist()]


__all__ = [
    "filter_run",
    "ingest_to_run",
    "positions_of",
    "read_shard",
    "run_audio_pass",
    "write_plan_recordings",
]
