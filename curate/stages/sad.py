"""The ``sad`` baseline variant: speech regions from a VAD (see :mod:`curate.models.vad`), merged across
short gaps and split into 1–30 s segments.

It is the thesis' first attempt. It keeps overlapping speech, music with vocals and noise, which is why the
thesis moved on to WhisperX; it is kept as a baseline so users can see why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from curate import timeline
from curate.errors import ConfigError
from curate.models.vad import BACKENDS, VadModel
from curate.registry import register
from curate.schema import RejectedSegment, Segment
from curate.stages.base import ModelStage, RecordingContext, Resources, StageResult

log = logging.getLogger(__name__)


def sad_segments(
    regions: list[timeline.Interval], merge_gap_s: float = 0.5, min_s: float = 1.0, max_s: float = 30.0
) -> tuple[list[timeline.Interval], list[timeline.Interval]]:
    """The ``sad`` rule: join regions separated by ≤ ``merge_gap_s``, halve recursively above ``max_s``,
    drop what stays below ``min_s``. Returns (kept, dropped)."""
    parts = timeline.split_to_max(timeline.merge(regions, max_gap_s=merge_gap_s), max_s)
    kept = [p for p in parts if p[1] - p[0] >= min_s]
    return kept, [p for p in parts if p[1] - p[0] < min_s]


@register("sad_segment")
@dataclass
class SadSegment(ModelStage):
    """The ``sad`` baseline: VAD speech regions → merged across short gaps → 1–30 s segments."""

    backend: str = "pyannote"  # pyannote | silero
    model: str = "pyannote:segmentation"  # pyannote backend only; a spec or local path
    onset: float = 0.5
    offset: float = 0.363  # WhisperX's default hysteresis
    min_on_s: float = 0.1
    min_off_s: float = 0.1
    merge_gap_s: float = 0.5
    min_s: float = 1.0
    max_s: float = 30.0
    step_s: float = 0.5  # sliding-window step of the segmentation model (smaller = smoother, slower)
    device: str = "auto"
    model_store: str | None = None

    resources = Resources(cpus=1, gpus=0)

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"sad_segment.backend must be one of {BACKENDS}, got {self.backend!r}")
        if not 0 < self.onset < 1 or not 0 < self.offset <= self.onset:
            raise ConfigError(f"sad_segment: need 0 < offset <= onset < 1, got onset={self.onset} offset={self.offset}")
        if not 0 < self.min_s < self.max_s:
            raise ConfigError(f"sad_segment: need 0 < min_s < max_s, got {self.min_s}, {self.max_s}")
        if self.step_s <= 0:
            raise ConfigError(f"sad_segment.step_s must be > 0, got {self.step_s}")

    def model_specs(self) -> list[tuple[str, str | None]]:
        return [(self.model, None)] if self.backend == "pyannote" else [("silero:vad", None)]

    def setup(self) -> None:
        ((spec, backend),) = self.model_specs()
        self._vad = VadModel(self.backend, self.resolve_model(spec, backend).path, self.pick_device(), self.step_s)

    def unload(self) -> None:
        self._vad = None

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        r = ctx.recording
        regions = self._vad.regions(ctx.audio(), self.onset, self.offset, self.min_on_s, self.min_off_s)
        kept, short = sad_segments(regions, self.merge_gap_s, self.min_s, self.max_s)
        v = self.emit or ""
        out = [Segment.new(r.recording_id, r.audio_path, s, e, v) for s, e in kept]
        rej = [
            RejectedSegment(
                Segment.new(r.recording_id, r.audio_path, s, e, v),
                self.stage_name,
                "too_short",
                score=e - s,
                detail=f"shorter than {self.min_s:g} s",
            )
            for s, e in short
        ]
        return StageResult(out, rej)


__all__ = ["SadSegment", "sad_segments"]
