"""Test-only stages that hang on chosen recordings, for the stage watchdog's tests. Importing this module
registers them (``test_stall``, and ``test_stall_model``, which counts as a model stage, so the Ray runner
runs it in an actor pool as it runs real model stages; ``test_stall_pass``, an audio pass, which the driver runs
before planning); no shipped pipeline names them."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from curate import manifest
from curate.errors import ConfigError
from curate.registry import register
from curate.schema import Recording, Segment
from curate.stages.base import AudioPass, RecordingContext, StageResult, Transform

HOW = ("python", "native", "crash")


def stall(how: str) -> None:
    """Never return. ``python``: a loop of short sleeps (Python bytecode runs between them, so the watchdog's
    exception is delivered); ``native``: one C call that blocks for an hour (no bytecode runs: only the hard
    limit ends it); ``crash``: the process dies at once (SIGKILL), as on a segfault in a decoder or model library."""
    if how == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "native":
        time.sleep(3600)
    while True:
        time.sleep(0.01)


@register("test_stall")
@dataclass
class Stall(Transform):
    """Hangs on the recordings in ``stall_on``; on any other, sleeps ``busy_s`` and returns the whole
    recording as one segment."""

    stall_on: list[str] = field(default_factory=list)
    how: str = "python"
    busy_s: float = 0.0

    def validate(self) -> None:
        if self.how not in HOW:
            raise ConfigError(f"test_stall.how must be one of {HOW}, got {self.how!r}")

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        r = ctx.recording
        if r.recording_id in self.stall_on:
            stall(self.how)
        if self.busy_s:
            time.sleep(self.busy_s)
        return StageResult([Segment.new(r.recording_id, r.audio_path, 0.0, r.duration_s, self.emit or "")])


@register("test_stall_model")
@dataclass
class StallModel(Stall):
    """:class:`Stall` as a model stage (it has a ``setup``), so runners treat it as they treat Whisper."""

    loads: int = 0  # how many times setup() loaded the "model" (the watchdog reloads one it stopped)

    def setup(self) -> None:
        self.loads += 1
        self._loaded = True

    def teardown(self) -> None:
        self._loaded = False


@register("test_stall_pass")
@dataclass
class StallPass(AudioPass):
    """An audio pass that hangs on the recordings in ``stall_on`` (and keeps each other's duration)."""

    stall_on: list[str] = field(default_factory=list)
    how: str = "python"

    def done(self, run: Any) -> set[str]:
        return set(json.loads(run.progress_file("test_stall_pass.json").read_text())) if self._stored(run) else set()

    def compute(self, rec: Recording) -> float:
        if rec.recording_id in self.stall_on:
            stall(self.how)
        return rec.duration_s

    def store(self, run: Any, results: list[tuple[str, Any]]) -> None:
        old = json.loads(run.progress_file("test_stall_pass.json").read_text()) if self._stored(run) else {}
        manifest.write_json(run.progress_file("test_stall_pass.json"), {**old, **dict(results)})

    @staticmethod
    def _stored(run: Any) -> bool:
        return run.progress_file("test_stall_pass.json").is_file()


__all__ = ["Stall", "StallModel", "StallPass", "stall"]
