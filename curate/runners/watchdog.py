"""The stage watchdog: no stage runs forever on one recording, in any runner.

Soft limit: while a stage processes one recording, a watchdog thread waits for the limit; when it passes, an
exception is raised *in the thread running the stage* (``PyThreadState_SetAsyncExc``: unlike SIGALRM it works
in any thread, so also inside Ray actors). It surfaces as :class:`~curate.errors.StageTimeout`, a failure row
naming the recording, the stage and the limit; the run goes on.

Hard limit: an async exception is only delivered between Python bytecodes, so a stage blocked inside one long
C call (a hung native library) never sees it. ``grace_s`` later the watchdog writes a *poison note* for the
recording and kills its own process (SIGKILL). Ray retries the shard on a new worker; the local runner's run
ends and the same command resumes it. Either way the recording with a note becomes its failure row at once
instead of being tried again (:func:`poison_failure`).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from curate import manifest
from curate.errors import StageTimeout
from curate.rundir import safe_name
from curate.schema import Failure, Recording

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Expired(BaseException):
    """What the watchdog raises inside the stage's thread. A BaseException, so a stage's own ``except
    Exception`` (a fallback path, a retry loop) cannot swallow it; :meth:`Watchdog.call` turns it into a
    :class:`StageTimeout`."""


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> int:
    """Schedule ``exc`` in thread ``thread_id`` (``None``: cancel one scheduled and not yet delivered)."""
    obj = ctypes.py_object(exc) if exc is not None else None
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), obj)


class _Alarm:
    """One limit for one call in one thread. :meth:`start` starts the watcher before the clock runs (so the
    exception never lands in ``Thread.start``'s own waiting, which it would corrupt); :meth:`arm` starts the
    clock. The lock makes firing and disarming exclusive: once :meth:`disarm` has returned, no exception is
    pending for the thread and none will be raised later."""

    def __init__(self, limit_s: float, grace_s: float, on_hard: Callable[[], None]):
        self._thread_id = threading.get_ident()
        self._lock = threading.RLock()  # re-entrant: disarm may retry after an exception delivered inside it
        self._armed = True
        self._go = threading.Event()
        self._done = threading.Event()
        self.fired = False
        self._watcher = threading.Thread(
            target=self._watch, args=(limit_s, grace_s, on_hard), name="curate-stage-watchdog", daemon=True
        )

    def start(self) -> None:
        self._watcher.start()

    def arm(self) -> None:
        self._go.set()

    def _watch(self, limit_s: float, grace_s: float, on_hard: Callable[[], None]) -> None:
        """Fire once at the limit; at limit + grace, if the call is still running, the hard limit. (Firing
        again would not help: a thread blocked in C sees one pending exception when it returns; and when the
        stage is starting a thread at that moment, CPython 3.11 may hand the exception to the new thread, whose
        state still carries its starter's id: the new thread dies, the starter then waits for it in C forever,
        and only the hard limit ends that.)"""
        self._go.wait()
        if self._done.wait(limit_s):
            return
        with self._lock:
            if not self._armed:
                return
            self.fired = True
            _raise_in(self._thread_id, _Expired)
        if self._done.wait(grace_s):
            return
        with self._lock:  # still running: blocked where no exception reaches it
            if self._armed:
                on_hard()

    def disarm(self) -> None:
        """Stop the alarm and cancel an exception it scheduled but the thread has not seen yet. Safe to call
        twice. The exception may be delivered while this runs: then it is caught here and disarming goes on
        (it fires once only, so the retry cannot be interrupted again)."""
        while True:
            try:
                with self._lock:
                    self._armed = False
                    if self.fired:
                        _raise_in(self._thread_id, None)
                self._done.set()
                self._go.set()  # a watcher never armed ends too
                return
            except _Expired:
                continue


def _secs(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


@dataclass(frozen=True)
class Watchdog:
    """The limits for the stages of one recording, and where a hard kill leaves its note (``None``: nowhere)."""

    recording: Recording
    limit_s: float
    grace_s: float
    note_dir: Path | None = None
    on_note: Callable[[Path], None] | None = None  # called with the note's path once written (an upload)

    def call(self, stage: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` under the watchdog. Raises :class:`StageTimeout` when it runs past ``limit_s``; kills
        this process (after writing the note) when it is still running ``grace_s`` later."""
        alarm = _Alarm(self.limit_s, self.grace_s, lambda: self._kill(stage))
        alarm.start()
        try:
            try:
                alarm.arm()
                return fn(*args)
            finally:
                alarm.disarm()
        except _Expired:
            alarm.disarm()  # delivered before the finally could disarm: disarm now, or the hard limit follows
            raise self._timeout(stage) from None
        except Exception as e:
            alarm.disarm()
            if alarm.fired:  # the interruption surfaced as another error (threading's Condition.wait, cut
                raise self._timeout(stage) from e  # mid-way, says "release unlocked lock"; a stage re-raised it)
            raise

    def _timeout(self, stage: str) -> StageTimeout:
        rec = self.recording
        return StageTimeout(
            f"{rec.audio_path}: stage {stage} ran past its watchdog limit of {_secs(self.limit_s)} s for a "
            f"{_secs(rec.duration_s)} s recording and was stopped (settings.watchdog_floor_s + "
            "settings.stage_watchdog_factor × duration)",
            stage,
        )

    def _kill(self, stage: str) -> None:
        """The hard limit: leave the note (so a retry records the failure instead of hanging again), then die."""
        rec = self.recording
        try:
            log.error(
                "%s: stage %s still running %s s after its watchdog limit of %s s (blocked in native code?): "
                "killing this worker process (pid %d)",
                rec.audio_path,
                stage,
                _secs(self.grace_s),
                _secs(self.limit_s),
                os.getpid(),
            )
            if self.note_dir is not None:
                note = note_path(self.note_dir, rec.recording_id)
                manifest.write_json(
                    note,
                    {
                        "recording_id": rec.recording_id,
                        "audio_path": rec.audio_path,
                        "duration_s": rec.duration_s,
                        "stage": stage,
                        "limit_s": self.limit_s,
                        "grace_s": self.grace_s,
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "killed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    },
                )
                if self.on_note is not None:  # bounded by the store's own timeouts; the kill follows regardless
                    self.on_note(note)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)


def note_path(note_dir: Path, recording_id: str) -> Path:
    return Path(note_dir) / safe_name(recording_id, ".json")


def poison_failure(note_dir: Path | None, rec: Recording) -> Failure | None:
    """The failure row of a recording whose stage was killed by the hard limit in an earlier try, else ``None``."""
    if note_dir is None:
        return None
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
        f"{rec.audio_path}: stage {stage} ran past its watchdog limit of {_secs(float(note['limit_s']))} s for a "
        f"{_secs(float(note['duration_s']))} s recording, was still blocked {_secs(float(note['grace_s']))} s later, "
        f"and its worker process was killed by the watchdog (note: {p.parent.name}/{p.name}); it is not tried again"
    )
    return Failure(rec.recording_id, stage, StageTimeout.__name__, message, rec.audio_path)


def write_crash_note(note_dir: Path, recording_id: str, deaths: int) -> Path:
    """The note for a recording whose worker died ``deaths`` times while processing it (seen by the runner, not
    by the worker, which died): the next try records its failure row instead of crashing again."""
    path = note_path(note_dir, recording_id)
    manifest.write_json(path, {"kind": "crash", "recording_id": recording_id, "stage": "segment", "deaths": deaths})
    return path


__all__ = ["Watchdog", "note_path", "poison_failure", "write_crash_note"]
