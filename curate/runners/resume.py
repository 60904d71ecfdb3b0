"""Reruns that repair: what a rerun of the same command checks before it skips finished work.

- A shard's completion marker is trusted only when every part it lists is there and readable (not missing,
  not empty, a Parquet footer that parses), when it covers the recordings the plan now gives the shard, and
  when none of its recordings failed with an error that may have passed (:func:`curate.errors.is_transient`:
  a file or a mount away for a while, an I/O or network error). Otherwise the shard's files are removed and
  the shard is redone, with a warning naming the file or the reason.
- Ingest is redone (probing only what is needed) when its probes lost recordings to a transient error.
- ``retry_failed``: every failed recording is tried again, deterministic failures and watchdog notes too.

A damaged state file (an empty or half-written marker, plan or checkpoint) is set aside by
:meth:`curate.rundir.RunDir.read_state` and its work redone; nothing here stops the run.
"""

from __future__ import annotations

import logging
import shutil
from typing import Any

from curate import manifest
from curate.errors import is_transient
from curate.rundir import RunDir

log = logging.getLogger(__name__)


def transient_ids(failures: list[Any]) -> list[str]:
    """The recordings whose error rows a rerun should try again (:func:`curate.errors.is_transient`)."""
    return sorted({f.recording_id for f in failures if f.severity == "error" and is_transient(f.error_type, f.message)})


def ingest_to_redo(run: RunDir, retry_failed: bool = False) -> int:
    """How many recordings ingest's probes lost to an error a rerun should try again (every probe error with
    ``retry_failed``); 0 when ingest stands as it is."""
    if run.parquet_problem(run.recordings) or run.parquet_problem(run.ingest_probed):
        return 0  # nothing to judge by (a run prepared before these files existed, or damaged: prepare redoes it)
    rows = manifest.read_table(run.ingest_probed, "failures", ["recording_id", "error_type", "message", "severity"])
    n = 0
    for r in rows.to_pylist():
        if r["severity"] == "error" and (retry_failed or is_transient(r["error_type"], r["message"])):
            n += 1
    return n


def marker_problem(run: RunDir, shard_id: int, recordings: list[str], retry_failed: bool) -> str | None:
    """Why the marker of ``shard_id`` cannot be trusted (it is then redone), or ``None``: it stands."""
    marker = run.read_state(run.marker(shard_id))
    if marker is None:
        return None  # no marker (or a damaged one, set aside): the shard is pending anyway
    if marker.get("recordings") != recordings:
        return "the plan gives the shard other recordings now"
    for rel in marker.get("files", []):
        problem = run.parquet_problem(run.path / rel)
        if problem:
            return f"{rel} is {problem}"
    retry = marker.get("failed", []) if retry_failed else marker.get("retry", [])
    if retry:
        shown = ", ".join(retry[:3]) + (f" and {len(retry) - 3} more" if len(retry) > 3 else "")
        why = "failed" if retry_failed else "failed with an error that may have passed"
        return f"{len(retry)} recording(s) {why} ({shown}); trying them again"
    return None


def redo_shard(run: RunDir, shard_id: int) -> None:
    """Forget a shard's work: its marker first (so an interruption here leaves it pending), then its parts."""
    run.marker(shard_id).unlink(missing_ok=True)
    for p in run.shard_files(shard_id):
        p.unlink(missing_ok=True)


def repair(plan: Any, retry_failed: bool = False) -> list[int]:
    """Check every finished shard of ``plan`` (a :class:`~curate.runners.driver.Plan`) (see the module doc) and redo those that cannot stand; markers of
    shards the plan no longer has go too. Returns the shards sent back to pending."""
    run = plan.run
    for note in run.running_dir.glob("*.json"):  # an earlier run's: this run's workers write their own
        note.unlink(missing_ok=True)
    if retry_failed and run.poison_dir.is_dir():
        shutil.rmtree(run.poison_dir)
    redone = []
    for i, shard in enumerate(plan.shards):
        problem = marker_problem(run, i, shard, retry_failed)
        if problem:
            log.warning("shard %d of %s: %s; the shard is redone", i, run.name, problem)
            redo_shard(run, i)
            redone.append(i)
    for shard_id in run.marker_ids():
        if shard_id >= len(plan.shards):
            redo_shard(run, shard_id)
    return redone


__all__ = ["ingest_to_redo", "marker_problem", "redo_shard", "repair", "transient_ids"]
