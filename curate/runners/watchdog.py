"""The stage watchdog: no stage runs forever on one recording, in any runner.

Soft limit: while a stage processes one recording, a watchdog thread waits for the limit; when it passes, an
exception is raised *in the thread running the stage* (``PyThreadState_SetAsyncExc``: unlike SIGALRM it works
in any thread, so also inside Ray actors). It surfaces as :class:`~curate.errors.StageTimeout`, a failure row
naming the recording, the stage and the limit; the run goes on.

Hard limit: an async exception is only delivered between Python bytecodes, so a stage blocked inside one long
C call (a hung native library) never sees it. ``grace_s`` later the watchdog writes a *poison note* for the
recording and kills its own process (SIGKILL). Ray retries the shard on a new worker; the local runner's run
ends and the same command resumes it. Either way the recording with a note becomes its failure row at once
instead of being tried again (:class:`curate.runners.guard.RecordingGuard`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from curate.errors import StageTimeout
from curate.schema import Recording

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


def secs(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


@dataclass(frozen=True)
class Watchdog:
    """The limits for the stages of one recording, and what a hard kill does first (its guard leaves a note)."""

    recording: Recording
    limit_s: float
    grace_s: float
    on_kill: Callable[[str], None] | None = None  # called with the stage's name just before the hard kill

    def call(self, stage: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` under the watchdog. Raises :class:`StageTimeout` when it runs past ``limit_s``; kills
        this process (after ``on_kill``) when it is still running ``grace_s`` later."""
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
            f"{rec.audio_path}: stage {stage} ran past its watchdog limit of {secs(self.limit_s)} s for a "
            f"{secs(rec.duration_s)} s recording and was stopped (settings.watchdog_floor_s + "
            "settings.stage_watchdog_factor × duration)",
            stage,
        )

    def _kill(self, stage: str) -> None:
        """The hard limit: ``on_kill`` (a note, so a retry records the failure instead of hanging again), then die."""
        try:
            log.error(
                "%s: stage %s still running %s s after its watchdog limit of %s s (blocked in native code?): "
                "killing this worker process (pid %d)",
                self.recording.audio_path,
                stage,
                secs(self.grace_s),
                secs(self.limit_s),
                os.getpid(),
            )
            if self.on_kill is not None:
                self.on_kill(stage)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["Watchdog", "secs"]
