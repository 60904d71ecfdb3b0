"""WhisperX diarization (variant ``wx-diar``): a recording-scoped speaker label on every segment.

Takes ``wx-align``'s sentence segments, diarizes the recording once (see :mod:`curate.models.diarization` for the
backends and the windowing of long programmes), gives every word the speaker that overlaps it most (the
nearest speaker when none does, as whisperx's ``fill_nearest``), and labels each segment with its words'
majority speaker. With ``split_on_change`` a sentence whose words change speaker is cut at the change, so
every segment is single-speaker (what pre-training wants).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace

from curate.errors import ConfigError
from curate.models import diarization
from curate.registry import register
from curate.schema import Segment, Word
from curate.stages.base import ModelStage, RecordingContext, Resources, StageResult

log = logging.getLogger(__name__)


def word_speakers(words: tuple[Word, ...], turns: list[diarization.Turn]) -> list[str | None]:
    return [diarization.speaker_of(w.start_s or 0.0, w.end_s or 0.0, turns) for w in words]


def assign_speakers(
    segments: list[Segment], turns: list[diarization.Turn], split_on_change: bool = True, min_split_words: int = 2
) -> list[Segment]:
    """Label segments with speakers. A segment is cut where its words' speaker changes (when
    ``split_on_change``), but only into runs of at least ``min_split_words`` words (a lone word attributed to
    another speaker is noise more often than a turn)."""
    out: list[Segment] = []
    for seg in segments:
        if not seg.words:
            out.append(replace(seg, speaker=diarization.speaker_of(seg.start_s, seg.end_s, turns)))
            continue
        spk = word_speakers(seg.words, turns)
        runs: list[list[int]] = []  # [first word, last word + 1]
        for i, s in enumerate(spk):
            if runs and spk[runs[-1][0]] == s:
                runs[-1][1] = i + 1
            else:
                runs.append([i, i + 1])
        if split_on_change:  # fold short runs into their predecessor (or successor at the start)
            merged: list[list[int]] = []
            for r in runs:
                if merged and (r[1] - r[0] < min_split_words or merged[-1][1] - merged[-1][0] < min_split_words):
                    merged[-1][1] = r[1]
                else:
                    merged.append(list(r))
            runs = merged
        else:
            runs = [[0, len(spk)]]
        labelled: list[tuple[int, int, str | None]] = []
        for a, b in runs:  # majority label per run; neighbours that end up with the same label join again
            top = Counter(s for s in spk[a:b] if s is not None).most_common(1)
            speaker = top[0][0] if top else None
            if labelled and labelled[-1][2] == speaker:
                labelled[-1] = (labelled[-1][0], b, speaker)
            else:
                labelled.append((a, b, speaker))
        runs = [[a, b] for a, b, _ in labelled]
        for a, b, speaker in labelled:
            ws = seg.words[a:b]
            if len(runs) == 1:
                out.append(replace(seg, speaker=speaker))
                continue
            s0 = seg.start_s if a == 0 else max(seg.start_s, ws[0].start_s)
            e0 = seg.end_s if b == len(spk) else min(seg.end_s, ws[-1].end_s)
            if e0 > s0:
                out.append(seg.with_times(s0, e0, text=" ".join(w.word for w in ws), words=tuple(ws), speaker=speaker))
    return out


@register("wx_diarize")
@dataclass
class WxDiarize(ModelStage):
    """Diarize once per recording and label every segment (``wx-diar``)."""

    backend: str = "segmentation+resemblyzer"  # or pyannote (a local pipeline directory in `pipeline`)
    pipeline: str | None = None  # pyannote backend: a directory with config.yaml, or pyannote:<name> in the store
    segmentation: str = "pyannote:segmentation"
    embedding: str = "resemblyzer:ge2e"
    window_s: float = 600.0  # diarize long programmes window by window (bounded memory)
    step_s: float = 1.0
    threshold: float = 0.25  # cosine distance for clustering within a window
    link_threshold: float = 0.75  # cosine similarity for linking speakers across windows
    num_speakers: int | None = None  # None: estimate
    split_on_change: bool = True
    device: str = "auto"
    model_store: str | None = None

    resources = Resources(cpus=1, gpus=1)

    def validate(self) -> None:
        if self.backend not in diarization.BACKENDS:
            raise ConfigError(f"wx_diarize.backend must be one of {diarization.BACKENDS}, got {self.backend!r}")
        if self.backend == "pyannote" and not self.pipeline:
            raise ConfigError("wx_diarize: backend 'pyannote' needs `pipeline:` (a local directory with config.yaml)")
        if self.window_s < 30 or self.step_s <= 0:
            raise ConfigError(f"wx_diarize: need window_s >= 30 and step_s > 0, got {self.window_s}, {self.step_s}")
        if not 0 < self.threshold < 2 or not -1 < self.link_threshold < 1:
            raise ConfigError("wx_diarize: threshold must be in (0, 2) and link_threshold in (-1, 1)")
        if self.num_speakers is not None and self.num_speakers < 1:
            raise ConfigError(f"wx_diarize.num_speakers must be >= 1, got {self.num_speakers}")

    def params_obj(self) -> diarization.DiarizationParams:
        return diarization.DiarizationParams(
            window_s=self.window_s,
            step_s=self.step_s,
            threshold=self.threshold,
            link_threshold=self.link_threshold,
            num_speakers=self.num_speakers,
        )

    def model_specs(self) -> list[tuple[str, str | None]]:
        if self.backend == "pyannote":
            return [(self.pipeline, None)] if self.pipeline else []
        return [(self.segmentation, None), (self.embedding, None)]

    def setup(self) -> None:
        paths = [str(self.resolve_model(spec, backend).path) for spec, backend in self.model_specs()]
        device = self._device = self.pick_device()
        if self.backend == "pyannote":
            self._impl = diarization.load_pyannote_pipeline(paths[0], device)
            return
        from resemblyzer import VoiceEncoder

        from curate.models.vad import load_segmentation

        seg = load_segmentation(paths[0], device)
        enc = VoiceEncoder(device, verbose=False, weights_fpath=paths[1])
        self._impl = diarization.SegmentationResemblyzer(seg, enc, self.params_obj())

    def unload(self) -> None:
        self._impl = None

    def turns(self, ctx: RecordingContext) -> list[diarization.Turn]:
        if self.backend == "pyannote":
            return diarization.pyannote_turns(self._impl, ctx.audio(), self.num_speakers)
        return self._impl(ctx.read, ctx.recording.duration_s)

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        turns = self.turns(ctx) if segments else []
        out = assign_speakers(segments, turns, self.split_on_change)
        if self.emit:
            out = [replace(s, variant=self.emit) for s in out]
        info = {"backend": self.backend, "window_s": self.window_s, "device": getattr(self, "_device", None)}
        ctx.info.setdefault("wx_diarize", info)
        return StageResult(out)


__all__ = ["WxDiarize", "assign_speakers", "word_speakers"]
