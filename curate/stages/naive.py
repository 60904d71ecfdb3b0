"""Naive segmentation (variant ``seq``): consecutive fixed windows; the last partial window is dropped."""

from __future__ import annotations

from dataclasses import dataclass

from curate import timeline
from curate.errors import ConfigError
from curate.registry import register
from curate.schema import RejectedSegment, Segment
from curate.stages.base import RecordingContext, StageResult, Transform


def naive_segments(
    recording_id: str, audio_path: str, duration_s: float, window_s: float = 30.0, variant: str = ""
) -> tuple[list[Segment], list[Segment]]:
    """(kept windows, the dropped last partial window if any)."""
    kept = [Segment.new(recording_id, audio_path, s, e, variant) for s, e in timeline.windows(duration_s, window_s)]
    last = kept[-1].end_s if kept else 0.0
    rest = [Segment.new(recording_id, audio_path, last, duration_s, variant)] if duration_s - last > 1e-6 else []
    return kept, rest


@register("naive_segment")
@dataclass
class NaiveSegment(Transform):
    window_s: float = 30.0

    def validate(self) -> None:
        if self.window_s <= 0:
            raise ConfigError(f"naive_segment.window_s must be > 0, got {self.window_s}")

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        r = ctx.recording
        kept, rest = naive_segments(r.recording_id, r.audio_path, r.duration_s, self.window_s, self.emit or "")
        rejected = [
            RejectedSegment(
                s,
                self.stage_name,
                "partial_window",
                score=s.duration_s,
                detail=f"last partial window ({s.duration_s:.2f} s)",
            )
            for s in rest
        ]
        return StageResult(kept, rejected)
