"""The run driver: ingest → filters (metadata, then audio passes and aggregates) → shard plan → (runner
executes shards) → finalize.

Both runners share everything here; they differ only in how shards are executed (and where ingest probes
audio files: driver threads or Ray tasks). A rerun of the same command on the same ``--out`` reuses the plan
and skips shards with a completion marker; a run killed before its plan was written (e.g. during the
fingerprint pass) redoes ingest and filters, but ingest probes only the files its checkpoint lacks and an audio
pass skips the recordings whose results it already stored. Ingest, filters and planning stream through files
(:mod:`curate.runners.streaming`), so the driver's memory follows a chunk of rows, not the catalog.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import audio, manifest
from curate.catalog import catalog_sha256
from curate.config import Pipeline
from curate.errors import RunDirError
from curate.rundir import RunDir
from curate.rundir.layout import PREPARE_FILES, PROBE_PARTS
from curate.runners.guard import RecordingGuard
from curate.runners.probes import Backend, ProbeCheckpoint
from curate.runners.resume import ingest_to_redo
from curate.runners.shard import load_marker
from curate.runners.streaming import (
    GROUP_ROWS,
    filter_run,
    ingest_to_run,
    positions_of,
    read_shard,
    write_plan_recordings,
)
from curate.schema import Failure, Recording

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """Which kept recordings go in which shard. The recordings themselves stay on disk (the plan's recordings
    file, in shard order): the driver holds their ids and durations, and a shard's recordings are read when the
    shard is dispatched (:meth:`shard_recordings`)."""

    run: RunDir  # the run directory (for a URL run, its staging copy, which publishes to the bucket)
    pipeline: Pipeline
    shards: list[list[str]]  # recording ids per shard, deterministic
    durations_s: np.ndarray  # of the kept recordings, in shard order
    num_recordings: int  # every ingested recording (kept or not)

    def __post_init__(self) -> None:
        self.run = RunDir.of(self.run)
        self.offsets = np.concatenate([[0], np.cumsum([len(s) for s in self.shards], dtype=np.int64)])

    @property
    def out_dir(self) -> Path:
        return self.run.path

    def pending(self) -> list[int]:
        return [i for i in range(len(self.shards)) if not self.run.marker(i).is_file()]

    def shard_rows(self, shard_id: int) -> tuple[int, int]:
        """The row range of a shard in the plan's recordings file."""
        return int(self.offsets[shard_id]), int(self.offsets[shard_id + 1])

    def shard_duration_s(self, shard_id: int) -> np.ndarray:
        """The durations of a shard's recordings, in its order."""
        return self.durations_s[slice(*self.shard_rows(shard_id))]

    def shard_recordings(self, shard_id: int) -> list[Recording]:
        """A shard's recordings, read from the plan's recordings file. Shards dispatched in order share row
        groups, so a block of at least ``GROUP_ROWS`` rows is read once and kept for the next shards."""
        start, stop = self.shard_rows(shard_id)
        block = getattr(self, "_block", None)
        if block is None or not (block[0] <= start and stop <= block[1]):
            end = max(stop, min(start + GROUP_ROWS, int(self.offsets[-1])))
            block = self._block = (start, end, read_shard(self.run, start, end))
        return block[2][start - block[0] : stop - block[0]]

    def processed_s(self, markers: list[dict[str, Any] | None]) -> float:
        """Audio seconds of the recordings that the shard ``markers`` list as processed."""
        total = 0.0
        for i, m in enumerate(markers):
            if m:
                done, decoded = set(m["processed"]), m.get("decoded_s") or {}
                durations = zip(self.shards[i], self.shard_duration_s(i), strict=True)
                total += sum(decoded.get(r, d) for r, d in durations if r in done)
        return total


def pipeline_fingerprint(pipeline: Pipeline) -> str:
    return hashlib.sha256(json.dumps(pipeline.source, sort_keys=True, default=str).encode()).hexdigest()[:16]


def bind_run(pipeline: Pipeline, run: RunDir | Path) -> None:
    """Give every stage its run directory (stages that read or write run files, e.g. fingerprints, repeats)."""
    run = RunDir.of(run)
    for st in [*pipeline.filters, *pipeline.transforms()]:
        st.bind_run(run)


def _interrupted_prepare(run: RunDir) -> bool:
    """Does ``run`` hold only what an interrupted :func:`prepare` leaves (its files and temp files)?"""
    for p in run.path.rglob("*"):
        if p.is_relative_to(run.damaged_dir):
            continue
        rel = run.relative(p)
        probes = rel.startswith(f"{PROBE_PARTS}/part-") and rel.endswith(".parquet")
        if rel not in PREPARE_FILES and not probes and not (p.name.startswith(".") and p.name.endswith(".tmp")):
            return False
    return True


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two resolved pipelines differ: ``passes.seq[0].window_s: 30 → 10`` (first few)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d
            for k in sorted(set(a) | set(b), key=str)
            for d in _differences(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where or 'pipeline'}: {a!r} → {b!r}"]


def _refusal(out_dir: Path, saved: dict[str, Any], fp: dict[str, Any], source: dict[str, Any]) -> str | None:
    """Why this command may not resume the run in ``out_dir`` (None: it may). The catalog is compared by content,
    so a moved or copied catalog resumes; the pipeline (with its --set overrides) by its resolved YAML."""
    old = saved["fingerprint"]
    problems = []
    if old.get("catalog_sha256") != fp["catalog_sha256"]:
        problems.append(f"the catalog's content differs ({old.get('catalog')} then, {fp['catalog']} now)")
    if old.get("pipeline") != fp["pipeline"]:
        diff = _differences(saved.get("pipeline_source"), source) if "pipeline_source" in saved else []
        shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
        problems.append(f"the pipeline or its --set overrides differ ({shown or 'resolved YAML changed'})")
    if not problems:
        return None
    return (
        f"{out_dir} holds a run of another catalog or pipeline: {' and '.join(problems)}; rerun the same "
        "command to resume, choose a new --out, or delete the directory to start over."
    )


def plan_shards(
    ids: list[str], durations_s: list[float], shard_size: int, shard_hours: float | None = None, workers: int = 1
) -> list[list[str]]:
    """Group ``ids`` (in order) into shards: ``shard_size`` recordings each, or, with ``shard_hours``, consecutive
    recordings until their summed duration reaches ``shard_hours`` (a recording longer than that is a shard on
    its own; the last shard may be shorter). ``shard_size`` does not cap an hours-sized shard.

    A catalog too small to give each of the ``workers`` a full shard is cut smaller, so every worker gets one
    (8 recordings, ``shard_size`` 8, 2 workers: 2 shards of 4); a big catalog keeps the sizes asked for."""
    workers = max(1, min(workers, len(ids)))
    if shard_hours is None:
        size = max(1, min(shard_size, -(-len(ids) // workers)))
        return [ids[i : i + size] for i in range(0, len(ids), size)]
    limit_s = min(shard_hours * 3600.0, sum(durations_s) / workers)
    shards: list[list[str]] = []
    current: list[str] = []
    total_s = 0.0
    for rid, d in zip(ids, durations_s, strict=True):
        current.append(rid)
        total_s += d
        if total_s >= limit_s:
            shards.append(current)
            current, total_s = [], 0.0
    if current:
        shards.append(current)
    return shards


def prepare(
    pipeline: Pipeline,
    catalog: str | Path,
    out_dir: RunDir | str | Path,
    on_ingest: Callable[[int], None] | None = None,
    probe_backend: Backend | None = None,
    retry_failed: bool = False,
    worker_count: Callable[[], int] | None = None,
) -> Plan:
    """Ingest, filter and plan shards, or reuse the plan of an interrupted run of the same command.
    ``probe_backend``: how distinct audio files are probed (driver threads by default; the Ray runner passes
    Ray tasks); every probed chunk is checkpointed, so a rerun after a kill probes only what is left. A plan
    whose ingest lost recordings to a transient error (every probe error with ``retry_failed``) is made again,
    probing only those files (:mod:`curate.runners.resume` then redoes the shards whose recordings changed).
    ``worker_count``: how many shards the runner will run at once, asked when the plan is made (a small catalog
    is cut so every worker gets a shard); the plan is then written once, so a rerun keeps it whatever it runs on."""
    if not isinstance(out_dir, RunDir) and audio.is_url(out_dir):
        raise RunDirError(f"{out_dir}: prepare needs a local directory (run_pipeline stages a URL run directory)")
    run = RunDir.of(out_dir)
    out_dir = run.path
    catalog = catalog if audio.is_url(catalog) else Path(catalog).resolve()
    plan_file = run.plan_json
    started_file = run.prepare_json
    bind_run(pipeline, run)
    fp = {
        "catalog": str(catalog),
        "catalog_sha256": catalog_sha256(catalog) if audio.is_url(catalog) or catalog.is_file() else None,
        "pipeline": pipeline_fingerprint(pipeline),
    }
    source = json.loads(json.dumps(pipeline.source, default=str))
    saved = run.read_state(plan_file)  # a damaged plan is set aside: the plan is made again
    if saved is not None:
        refusal = _refusal(out_dir, saved, fp, source)
        if refusal:
            raise RunDirError(refusal)
        lost = ingest_to_redo(run, retry_failed)
        if not lost:
            log.info("resuming %s: %d shards planned", out_dir, len(saved["shards"]))
            return _load_plan(run, pipeline, saved["shards"])
        log.warning(
            "%s: %d recordings failed ingest with an error that may have passed; ingesting again", out_dir, lost
        )
    elif run.has_work():
        # a run killed before its plan: the same command (prepare.json) or only prepare's own files left
        resumable = (run.read_state(started_file) or {}).get("fingerprint") == fp
        if not (resumable or _interrupted_prepare(run)):
            raise RunDirError(f"{out_dir} is not empty and holds no curate run plan; choose a new --out")
        log.info("%s: ingest or planning was interrupted before the plan was written; starting them again", out_dir)
        for tmp in out_dir.rglob(".*.tmp"):  # half-written files of the killed prepare
            tmp.unlink()
        if not resumable:  # another command's probes: its catalog may name other files
            shutil.rmtree(run.probes_dir, ignore_errors=True)
    manifest.write_json(started_file, {"fingerprint": fp})  # a run killed before its plan resumes from here
    ingest_to_run(
        catalog,
        run,
        min_duration_s=pipeline.settings.min_duration_s,
        published_format=pipeline.settings.published_format,
        probe=ProbeCheckpoint(run, probe_backend, retry_failed=retry_failed),
        on_progress=on_ingest,
    )
    alive = filter_run(run, pipeline.filters, guard=RecordingGuard(pipeline.settings, run))
    shards, positions = _plan(run, alive, pipeline, worker_count() if worker_count else 1)
    write_plan_recordings(run, positions)
    manifest.write_json(plan_file, {"fingerprint": fp, "pipeline_source": source, "shards": shards})
    return _load_plan(run, pipeline, shards)


def _plan(run: RunDir, alive: np.ndarray, pipeline: Pipeline, workers: int) -> tuple[list[list[str]], np.ndarray]:
    """Shards of the kept recordings (sorted by id) and their row positions in recordings.parquet, in plan order."""
    table = manifest.read_table(run.recordings, "recordings", ["recording_id", "duration_s"])
    positions = np.flatnonzero(alive)
    kept = table.take(pa.array(positions))
    order = np.asarray(pc.sort_indices(kept, [("recording_id", "ascending")]))
    ids = kept.column("recording_id").take(pa.array(order)).to_pylist()
    durations = kept.column("duration_s").to_numpy()[order]
    settings = pipeline.settings
    shards = plan_shards(ids, durations.tolist(), settings.shard_size, settings.shard_hours, workers)
    return shards, positions[order]


def _load_plan(run: RunDir, pipeline: Pipeline, shards: list[list[str]]) -> Plan:
    """The plan of ``shards``, with its recordings file (written now for a plan made before that file existed)."""
    if not run.plan_recordings.exists():
        write_plan_recordings(run, positions_of(run, [r for s in shards for r in s]))
    durations = manifest.read_table(run.plan_recordings, "recordings", ["duration_s"]).column(0).to_numpy()
    n = pq.ParquetFile(run.recordings).metadata.num_rows
    return Plan(run, pipeline, shards, durations, n)


def collect_failures(out_dir: RunDir | Path) -> list[Failure]:
    run = RunDir.of(out_dir)
    tables = [manifest.read_table(run.ingest_checks, "failures")]
    if run.ingest_probed.exists():  # runs prepared before the probe rows had their own file lack it
        tables.append(manifest.read_table(run.ingest_probed, "failures"))
    if run.audio_pass_failures.exists():
        tables.append(manifest.read_table(run.audio_pass_failures, "failures"))
    part_dir = run.unit_failures_dir
    if part_dir.exists():
        tables.append(manifest.read_table(part_dir, "failures"))
    rows = [r for t in tables for r in t.to_pylist()]
    return [Failure(**r) for r in rows]


def _mark_failed(run: RunDir, planned: set[str], failures: list[Failure], failed: set[str]) -> None:
    """A planned (kept) recording that then failed is not ``kept`` in decisions.parquet: its row names the failing
    stage and error instead; one a repairing rerun processed is ``kept`` again. Idempotent."""
    first = {}
    for f in failures:
        if f.severity == "error" and f.recording_id in failed:
            first.setdefault(f.recording_id, f)
    path = run.decisions
    rows = manifest.read_table(path, "decisions").to_pylist()
    changed = False
    for r in rows:
        rid = r["recording_id"]
        if rid not in planned:
            continue
        f = first.get(rid)
        want = (False, f.stage, f"{f.error_type}: {f.message}") if f else (True, "kept", None)
        if (r["kept"], r["stage"], r["reason"]) != want:
            r.update(kept=want[0], stage=want[1], reason=want[2])
            changed = True
    if changed:
        manifest.write_records(path, rows, "decisions")


def _correct_durations(run: RunDir, decoded_s: dict[str, float]) -> None:
    """recordings.parquet says what each file's audio holds: a recording whose audio decoded to another length
    than its header claimed (a warning row says both) gets the decoded duration. Idempotent; a no-op (no
    rewrite) when every header was right."""
    path = run.recordings
    if not decoded_s:
        return
    table = manifest.read_table(path, "recordings")
    old = table.column("duration_s").to_numpy()
    new = np.array([decoded_s.get(r, d) for r, d in zip(table.column("recording_id").to_pylist(), old, strict=True)])
    if np.array_equal(old, new):
        return
    i = table.schema.get_field_index("duration_s")
    manifest.write_table(path, table.set_column(i, table.schema.field(i), pa.array(new, pa.float64())), "recordings")


def finalize(plan: Plan, runner: str, timings: dict[str, float]) -> dict[str, Any]:
    """Merge failures, compute stats, write run.json. Idempotent."""
    from curate.stats import compute_stats, write_stats

    run = plan.run
    rows = collect_failures(run)  # errors lost a recording; warnings are notes on one that went on
    manifest.write_records(run.failures, [f for f in rows if f.severity != "warning"], "failures")
    manifest.write_records(run.warnings, [f for f in rows if f.severity == "warning"], "warnings")
    markers = [load_marker(run, i) for i in range(len(plan.shards))]
    processed = [rid for m in markers if m for rid in m["processed"]]
    info: dict[str, Any] = {}
    for m in markers:
        for k, v in ((m or {}).get("info") or {}).items():
            info.setdefault(k, v)
    failed = {f.recording_id for f in rows if f.severity == "error"} - set(processed)
    _mark_failed(run, {r for s in plan.shards for r in s}, rows, failed)
    _correct_durations(run, {r: d for m in markers if m for r, d in (m.get("decoded_s") or {}).items()})
    input_s = plan.processed_s(markers)
    stats = compute_stats(run.path, plan.pipeline.variants(), input_s)
    write_stats(run.path, stats)
    return run.write_run(
        plan.pipeline.name,
        plan.pipeline.variants(),
        pipeline=plan.pipeline.source,
        runner=runner,
        timings_s=timings,
        counts={
            "recordings": plan.num_recordings,
            "kept": sum(len(s) for s in plan.shards),
            "processed": len(processed),
            "failed": len(failed),  # recordings with an error row that produced nothing
            "shards": len(plan.shards),
        },
        stage_info=info,
    )
