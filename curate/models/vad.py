"""Frame-level speech scores and speech regions from the bundled VAD models (no stage logic here).

Two backends, both with real weights that ship on PyPI and work offline:

- ``pyannote``: the pyannote segmentation model (PyanNet, multi-label over 3 local speakers) that the
  whisperx wheel carries in ``whisperx/assets/pytorch_model.bin`` — WhisperX's own VAD. Speech probability
  per frame = max over the local speakers, averaged over overlapping 5 s windows (what pyannote's
  ``VoiceActivityDetection`` does).
- ``silero``: Silero VAD v6 from the ``silero-vad`` wheel.

Stages (``sad_segment``, ``wx_transcribe``, ``wx_diarize``) and :mod:`curate.models.diarization` use these.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from curate import timeline
from curate.audio import SAMPLE_RATE
from curate.errors import ConfigError
from curate.models.device import pick_device

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

BACKENDS = ("pyannote", "silero")


@dataclass(frozen=True)
class FrameScores:
    """Frame-level scores: ``values[i]`` (shape ``(frames,)`` or ``(frames, k)``) covers the frame centred at
    ``start_s + i * step_s`` (pyannote's sliding-window convention: frame middles)."""

    values: np.ndarray
    start_s: float
    step_s: float
    duration_s: float  # receptive field of one frame

    def times(self) -> np.ndarray:
        return self.start_s + self.step_s * np.arange(len(self.values)) + self.duration_s / 2


def load_segmentation(path: str, device: str = "cpu") -> Any:
    """The pyannote segmentation model from a local checkpoint (``pytorch_model.bin``)."""
    import torch
    from pyannote.audio import Model

    try:
        model = Model.from_pretrained(path)
    except Exception as e:  # pyannote raises several types for a bad checkpoint
        raise RuntimeError(f"{path}: cannot load a pyannote segmentation model ({type(e).__name__}: {e})") from e
    if model is None:
        raise RuntimeError(f"{path}: not a pyannote segmentation checkpoint")
    model.eval()
    return model.to(torch.device(device))


def _waveform(audio: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0)


def segmentation_scores(
    model: Any, audio: np.ndarray, step_s: float = 0.5, batch_size: int = 32, aggregate_speech: bool = True
) -> tuple[Any, np.ndarray | None]:
    """Run the segmentation model over ``audio`` (16 kHz mono) in sliding windows of its native duration.

    ``aggregate_speech``: return the aggregated per-frame speech probability (max over local speakers) as a
    pyannote ``SlidingWindowFeature`` of shape ``(frames, 1)``. Otherwise return the raw per-window local
    speaker activations, ``(chunks, frames_per_chunk, speakers)``, with the chunk sliding window.
    """
    from curate.models import pyannet

    if isinstance(model, pyannet.PyanNet):  # the plain-torch copy (no pyannote.audio on this machine)
        if aggregate_speech:
            return pyannet.speech_scores(model, audio, step_s, batch_size), None
        out = pyannet.chunk_scores(model, audio, step_s, batch_size)
        return out, out.data
    from pyannote.audio import Inference

    duration = float(model.specifications.duration)
    if audio.size < int(duration * SAMPLE_RATE):  # pad short inputs to one full window
        audio = np.pad(audio, (0, int(duration * SAMPLE_RATE) - audio.size))
    hook = (lambda s: np.max(s, axis=-1, keepdims=True)) if aggregate_speech else None
    inf = Inference(
        model,
        duration=duration,
        step=step_s,
        batch_size=batch_size,
        pre_aggregation_hook=hook,
        skip_aggregation=not aggregate_speech,
        device=model.device,
    )
    out = inf({"waveform": _waveform(audio), "sample_rate": SAMPLE_RATE})
    return out, (None if aggregate_speech else out.data)


def pyannote_speech(model: Any, audio: np.ndarray, step_s: float = 0.5, batch_size: int = 32) -> FrameScores:
    """Per-frame speech probability from the pyannote segmentation model."""
    swf, _ = segmentation_scores(model, audio, step_s, batch_size)
    sw = swf.sliding_window
    n = int(np.ceil(audio.size / SAMPLE_RATE / sw.step))
    vals = np.nan_to_num(np.asarray(swf.data[:, 0], dtype=np.float32))[: max(n, 1)]
    return FrameScores(vals, float(sw.start), float(sw.step), float(sw.duration))


def binarize(
    scores: FrameScores,
    onset: float = 0.5,
    offset: float | None = None,
    min_on_s: float = 0.0,
    min_off_s: float = 0.0,
    total_s: float | None = None,
) -> list[timeline.Interval]:
    """Hysteresis thresholding: a region starts when the score rises above ``onset`` and ends when it falls
    below ``offset``. Gaps ≤ ``min_off_s`` are filled, then regions < ``min_on_s`` removed. Pure numpy."""
    offset = onset if offset is None else offset
    if not len(scores.values):
        return []
    v = np.asarray(scores.values, dtype=np.float64).reshape(len(scores.values), -1).max(axis=1)
    t = scores.times()
    out: list[timeline.Interval] = []
    active, start = False, 0.0
    for i in range(len(v)):
        if not active and v[i] > onset:
            active, start = True, float(t[i])
        elif active and v[i] < offset:
            out.append((start, float(t[i])))
            active = False
    if active and len(t):
        out.append((start, float(t[-1]) + scores.step_s / 2))
    out = timeline.merge(out, max_gap_s=min_off_s)
    out = [(max(0.0, s), e if total_s is None else min(e, total_s)) for s, e in out if e - s >= min_on_s]
    return [(s, e) for s, e in out if e > s]


def silero_speech(
    audio: np.ndarray, threshold: float = 0.5, max_speech_s: float = float("inf"), model: Any = None
) -> list[timeline.Interval]:
    """Speech regions from Silero VAD (bundled in the silero-vad wheel)."""
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    model = model or load_silero_vad()
    with torch.inference_mode():
        ts = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
            model,
            threshold=threshold,
            sampling_rate=SAMPLE_RATE,
            max_speech_duration_s=max_speech_s,
            return_seconds=False,
        )
    return [(t["start"] / SAMPLE_RATE, t["end"] / SAMPLE_RATE) for t in ts]


class VadModel:
    """A loaded VAD backend: ``regions(audio)`` → speech intervals; ``scores(audio)`` (pyannote only)."""

    def __init__(
        self,
        backend: str = "pyannote",
        model_path: str | Path | None = None,
        device: str = "auto",
        step_s: float = 0.5,
        batch_size: int = 32,
    ):
        """``model_path``: the pyannote segmentation checkpoint a stage resolved (None: the bundled one)."""
        if backend not in BACKENDS:
            raise ConfigError(f"VAD backend must be one of {BACKENDS}, got {backend!r}")
        self.backend, self.step_s, self.batch_size = backend, step_s, batch_size
        self.device = pick_device(device)
        if backend == "pyannote":
            if model_path is None:
                from curate import models

                model_path = models.resolve("pyannote:segmentation").path
            self.model = load_segmentation(str(model_path), self.device)
        else:
            from silero_vad import load_silero_vad

            self.model = load_silero_vad()

    def scores(self, audio: np.ndarray) -> FrameScores:
        if self.backend != "pyannote":
            raise ValueError("frame scores need the pyannote VAD backend")
        return pyannote_speech(self.model, audio, self.step_s, self.batch_size)

    def regions(
        self,
        audio: np.ndarray,
        onset: float = 0.5,
        offset: float | None = None,
        min_on_s: float = 0.1,
        min_off_s: float = 0.1,
    ) -> list[timeline.Interval]:
        if self.backend == "silero":
            return silero_speech(audio, onset, model=self.model)
        return binarize(self.scores(audio), onset, offset, min_on_s, min_off_s, audio.size / SAMPLE_RATE)


__all__ = [
    "BACKENDS",
    "FrameScores",
    "VadModel",
    "binarize",
    "pyannote_speech",
    "silero_speech",
    "load_segmentation",
    "segmentation_scores",
]
