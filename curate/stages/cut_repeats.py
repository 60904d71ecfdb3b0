"""``stage: cut_repeats``: cut what ``audio_dedup`` found repeated (``repeats.parquet``: jingles, adverts,
recurring reports heard earlier in the catalog) out of the segments. The first occurrence is not in the
table, so it stays; every later one is cut, and every cut lands in ``rejected/cut_repeats/`` with the
recording and time where it was first heard. Model-free: use it in a pass or in a derivation.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from curate import manifest, timeline
from curate.errors import ConfigError
from curate.registry import register
from curate.schema import RejectedSegment, Segment
from curate.stages.base import RecordingContext, StageResult, Transform

if TYPE_CHECKING:
    from curate.rundir import RunDir

#: (start_s, end_s, where it was first heard) of one recording's repeated excerpts
Spans = list[tuple[float, float, str]]


def load_repeats(run: RunDir) -> dict[str, Spans]:
    """``repeats.parquet`` by recording (empty when the run found none or has no ``audio_dedup``)."""
    out: dict[str, Spans] = defaultdict(list)
    if run.repeats.exists():
        for r in manifest.read_table(run.repeats, "repeats").to_pylist():
            first = f"{r['first_recording_id']} at {r['first_start_s']:.1f} s"
            out[r["recording_id"]].append((r["start_s"], r["end_s"], first))
    return dict(out)


def cut_segments(
    segments: list[Segment], spans: Spans, min_keep_s: float = 1.0
) -> tuple[list[Segment], list[tuple[Segment, str]]]:
    """Segments with the repeated ``spans`` cut out (pure function). A cut segment keeps the words whose
    midpoint stays (its text is rebuilt from them, or dropped when it had no words); pieces shorter than
    ``min_keep_s`` go too. Returns (kept, [(cut piece, reason)])."""
    from curate.stages.postprocess import join_words

    merged = timeline.merge((s, e) for s, e, _ in spans)
    kept: list[Segment] = []
    cut: list[tuple[Segment, str]] = []
    for seg in segments:
        whole = [(seg.start_s, seg.end_s)]
        removed = timeline.intersect(whole, merged)
        if not removed:
            kept.append(seg)
            continue
        for a, b in removed:
            first = max(spans, key=lambda sp: timeline.overlap((a, b), (sp[0], sp[1])))[2]
            cut.append((seg.with_times(a, b, text=None, words=None), f"repeated excerpt, first heard in {first}"))
        for a, b in timeline.subtract(whole, merged):
            words = None
            if seg.words is not None:
                words = tuple(
                    w for w in seg.words if w.start_s is not None and a <= (w.start_s + (w.end_s or w.start_s)) / 2 < b
                )
            piece = seg.with_times(a, b, words=words, text=join_words(words) or None if words is not None else None)
            if b - a >= min_keep_s:
                kept.append(piece)
            else:
                cut.append((piece, f"shorter than {min_keep_s} s after cutting a repeated excerpt"))
    return kept, cut


@register("cut_repeats")
@dataclass
class CutRepeats(Transform):
    min_keep_s: float = 1.0  # pieces of a cut segment shorter than this go too

    def validate(self) -> None:
        if self.min_keep_s < 0:
            raise ConfigError(f"cut_repeats.min_keep_s must be >= 0, got {self.min_keep_s}")

    def _spans(self) -> dict[str, Spans]:
        if getattr(self, "_repeats", None) is None:
            self._repeats = load_repeats(self.run_dir)  # once per worker
        return self._repeats

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        spans = self._spans().get(ctx.recording.recording_id)
        if not spans:
            return StageResult(segments)
        kept, cut = cut_segments(segments, spans, self.min_keep_s)
        return StageResult(
            kept,
            [
                RejectedSegment(s, self.stage_name, "too_short" if why.startswith("shorter") else "repeat", detail=why)
                for s, why in cut
            ],
        )
