"""A recording's guard: what keeps one recording from hurting a run, whatever runs its shard.

Every runner (the local one, Ray's shard workers, Ray's stage pools) processes a recording through one
:class:`RecordingGuard`, so the protection reads the same everywhere:

- **poison and crash notes**: a recording an earlier try was killed on (the watchdog's hard limit) or whose
  worker died repeatedly while processing it has a note in the run directory; it becomes its failure row at
  once instead of being tried again (:meth:`RecordingGuard.poisoned`).
- **the running note**: the recording a worker is processing in a shard and how many of the shard's
  recordings are done; the driver's progress sums them, and a dead worker's note says which recording it died
  on (:meth:`RecordingGuard.running`, :meth:`RecordingGuard.finished`).
- **the watchdog**: every stage call is bounded (:mod:`curate.runners.watchdog`); a stage it stopped has its
  model loaded afresh; its hard kill leaves a poison note, published for a run on object storage
  (:meth:`RecordingGuard.call`).
- **worker death**, seen by the driver: a death is counted for the recording the worker's running note
  names; at the second, a crash note makes the retried shard record that recording as a failure row
  (:meth:`RecordingGuard.worker_died`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from curate import manifest
from curate.errors import StageTimeout
from curate.rundir import safe_name
from curate.runners.watchdog import Watchdog, secs
from curate.schema import Failure, Recording

if TYPE_CHECKING:
    from curate.config import Settings
    from curate.rundir import RunDir
    from curate.stages.base import RecordingContext, StageResult, Transform

log = logging.getLogger(__name__)

CRASHES_BEFORE_POISON = 2  # a worker died twice on the same recording: it is that recording (not a lost node)


class RecordingGuard:
    """The protection of the recordings of one run: the settings' watchdog limits and the notes kept in the run
    directory ``run`` (``None``: no notes are read or written, e.g. a test calling one stage)."""

    def __init__(self, settings: Settings, run: RunDir | None = None):
        self.settings = settings
        self.run = run
        self.deaths: dict[str, int] = {}  # driver side: recording_id → workers that died processing it

    # --- in the worker --------------------------------------------------------------------------------

    def poisoned(self, rec: Recording) -> Failure | None:
        """The failure row of a recording an earlier try was killed on or crashed on, else ``None``."""
        return None if self.run is None else poison_failure(self.run.poison_dir, rec)

    def running(self, shard_id: int, rec: Recording, done: int) -> None:
        """Note that this worker now processes ``rec`` in ``shard_id``, after ``done`` of its recordings."""
        if self.run is not None:
            manifest.write_json(self.run.running(shard_id), {"recording_id": rec.recording_id, "done": done})

    def finished(self, shard_id: int) -> None:
        """The shard is written (or this worker gave it up cleanly): its running note goes."""
        if self.run is not None:
            self.run.running(shard_id).unlink(missing_ok=True)

    def watchdog(self, rec: Recording) -> Watchdog:
        """The limits of ``rec``'s stage calls; a hard kill leaves its poison note (and publishes it)."""
        limit_s = self.settings.stage_timeout_s(rec.duration_s)
        on_kill = None if self.run is None else lambda stage: self._poison(rec, stage, limit_s)
        return Watchdog(rec, limit_s, self.settings.watchdog_grace_s, on_kill)

    def call(self, stage: Transform, ctx: RecordingContext, segments: list) -> StageResult:
        """``stage.process(ctx, segments)`` under the watchdog. A stage it stopped was interrupted at an
        arbitrary line of its library: its model is loaded afresh (rare, and cheaper than trusting a
        half-updated model state for the next recording), then the :class:`StageTimeout` goes on."""
        try:
            return self.watchdog(ctx.recording).call(stage.stage_name, stage.process, ctx, segments)
        except StageTimeout:
            if stage.uses_model:
                log.warning("reloading stage %s after the watchdog stopped it", stage.stage_name)
                stage.teardown()
                stage.setup()
            raise

    def _poison(self, rec: Recording, stage: str, limit_s: float) -> None:
        """The hard limit's note (written just before the watchdog kills this process), published at once: a
        retry records the failure instead of hanging again. The upload is bounded by the store's timeouts."""
        note = {
            "recording_id": rec.recording_id,
            "audio_path": rec.audio_path,
            "duration_s": rec.duration_s,
            "stage": stage,
            "limit_s": limit_s,
            "grace_s": self.settings.watchdog_grace_s,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "killed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        path = note_path(self.run.poison_dir, rec.recording_id)
        manifest.write_json(path, note)
        self.run.publish([path])

    # --- in the driver --------------------------------------------------------------------------------

    def worker_died(self, shard_id: int) -> Path | None:
        """A worker died in the middle of ``shard_id``: count a death for the recording it was processing (its
        running note); at the :data:`CRASHES_BEFORE_POISON`-th, leave the crash note that makes the retried
        shard record that recording as a failure row. Returns the note written, if any. A run directory on
        object storage keeps running notes on the worker's node, out of the driver's sight: its shard is
        retried until the runner gives up on it."""
        if self.run is None or self.run.url is not None:
            return None
        running = self.run.running(shard_id)
        try:
            rid = json.loads(running.read_text())["recording_id"]
        except (OSError, ValueError, KeyError):  # it died before its first recording, or mid-write
            return None
        self.deaths[rid] = self.deaths.get(rid, 0) + 1
        if self.deaths[rid] < CRASHES_BEFORE_POISON:
            return None
        path = note_path(self.run.poison_dir, rid)
        manifest.write_json(
            path, {"kind": "crash", "recording_id": rid, "stage": "segment", "deaths": self.deaths[rid]}
        )
        log.warning(
            "recording %s: its worker died %d times on it; it becomes a failure row (%s)", rid, self.deaths[rid], path
        )
        return path


def note_path(note_dir: Path, recording_id: str) -> Path:
    return Path(note_dir) / safe_name(recording_id, ".json")


def poison_failure(note_dir: Path, rec: Recording) -> Failure | None:
    """The failure row of a recording with a note in ``note_dir`` (killed by the hard limit, or crashed on)."""
    p = note_path(note_dir, rec.recording_id)
    if not p.exists():
        return None
    note = json.loads(p.read_text())
    stage = str(note.get("stage", "segment"))
    if note.get("kind") == "crash":
        message = (
            f"{rec.audio_path}: its worker process died {note['deaths']} times while processing this recording (a "
            f"crash in a decoder or model library, or out of memory; note: {p.parent.name}/{p.name}); it is not "
            "tried again"
        )
        return Failure(rec.recording_id, stage, "WorkerCrash", message, rec.audio_path)
    message = (
        f"{rec.audio_path}: stage {stage} ran past its watchdog limit of {secs(float(note['limit_s']))} s for a "
        f"{secs(float(note['duration_s']))} s recording, was still blocked {secs(float(note['grace_s']))} s later, "
        f"and its worker process was killed by the watchdog (note: {p.parent.name}/{p.name}); it is not tried again"
    )
    return Failure(rec.recording_id, stage, StageTimeout.__name__, message, rec.audio_path)


__all__ = ["CRASHES_BEFORE_POISON", "RecordingGuard", "note_path", "poison_failure"]
