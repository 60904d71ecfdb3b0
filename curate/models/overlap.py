"""Overlapped speech and speaker turns, frame by frame, from the pyannote segmentation model (no stage logic).

The segmentation model (PyanNet, bundled in the whisperx wheel; see :mod:`curate.models.vad`) gives, for
every 5 s chunk, the activity of up to three *local* speakers per ~17 ms frame. Inside one chunk a local
speaker is one voice, so two questions have local answers:

- **overlap**: the second most active local speaker's activity (two or more people at once);
- **change**: a turn from local speaker ``j`` to ``k`` at time ``t`` — ``j`` active in the ``window_s`` before
  ``t`` and silent after, ``k`` the other way round, with mean activities over the windows:
  ``min(left(j), right(k), 1 - right(j), 1 - left(k))``, best pair. Its plateau lies over the
  pause between the turns, which is where a segment is best cut.

Chunk frames are averaged onto a regular grid (``hop_s``) over the chunks that cover them (change only where
both windows hold at least ``min_side_s`` of the chunk). :func:`speaker_frames` is the pure part.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from curate.audio import SAMPLE_RATE
from curate.schema import Frames


def _side_mean(a: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """For ``a`` of shape ``(chunks, frames, speakers)``: the mean over the ``w`` frames before each frame and
    over the ``w`` frames from it on (only frames inside the chunk count)."""
    c, f, k = a.shape
    cs = np.concatenate([np.zeros((c, 1, k), np.float64), np.cumsum(a, axis=1, dtype=np.float64)], axis=1)
    i = np.arange(f)
    lo, hi = np.maximum(i - w, 0), np.minimum(i + w, f)
    left = (cs[:, i] - cs[:, lo]) / np.maximum(i - lo, 1)[None, :, None]
    right = (cs[:, hi] - cs[:, i]) / np.maximum(hi - i, 1)[None, :, None]
    return left.astype(np.float32), right.astype(np.float32)


def change_scores(a: np.ndarray, w: int) -> np.ndarray:
    """``(chunks, frames, speakers)`` local activities → ``(chunks, frames)`` turn evidence (best pair j→k):
    ``min(mean_left(j), mean_right(k), 1 - mean_right(j), 1 - mean_left(k))``."""
    left, right = _side_mean(a, w)
    n = a.shape[2]
    best = np.zeros(a.shape[:2], np.float32)
    for j in range(n):
        for k in range(n):
            if j != k:
                s = np.minimum.reduce([left[..., j], right[..., k], 1 - right[..., j], 1 - left[..., k]])
                best = np.maximum(best, s)
    return best


def speaker_frames(
    activity: np.ndarray,
    chunk_start_s: float,
    chunk_step_s: float,
    chunk_s: float,
    total_s: float,
    hop_s: float = 0.1,
    window_s: float = 1.5,
    min_side_s: float = 0.75,
) -> Frames:
    """Aggregate per-chunk local activities ``(chunks, frames, speakers)`` into ``speakers`` frames on a grid
    of ``hop_s`` over ``[0, total_s)``: mean speech (top speaker), overlap (second speaker) and change."""
    activity = np.nan_to_num(np.asarray(activity, np.float32))
    c, f, _ = activity.shape
    frame_s = chunk_s / f
    n = max(1, int(np.ceil(total_s / hop_s)))
    srt = np.sort(activity, axis=2)
    speech, overlap = srt[..., -1], srt[..., -2] if activity.shape[2] > 1 else np.zeros_like(srt[..., -1])
    change = change_scores(activity, max(1, round(window_s / frame_s)))
    local = np.arange(f) * frame_s + frame_s / 2
    t = chunk_start_s + np.arange(c)[:, None] * chunk_step_s + local[None, :]  # (c, f) frame centres
    idx = np.clip((t / hop_s).astype(int), 0, n - 1)
    inside = t < total_s
    sides = (local >= min_side_s) & (chunk_s - local >= min_side_s)
    out = {}
    for name, v, mask in (
        ("speech", speech, inside),
        ("overlap", overlap, inside),
        ("change", change, inside & sides[None, :]),
    ):
        acc, cnt = np.zeros(n), np.zeros(n)
        np.add.at(acc, idx[mask], v[mask])
        np.add.at(cnt, idx[mask], 1)
        out[name] = np.where(cnt > 0, acc / np.maximum(cnt, 1), 0.0)
    start = np.arange(n) * hop_s
    return Frames("speakers", start, np.minimum(start + hop_s, total_s), out)


class SpeakerActivity:
    """The segmentation model, loaded once: ``frames(audio)`` → ``speakers`` frames."""

    def __init__(self, model: Any, step_s: float = 1.0, hop_s: float = 0.1, window_s: float = 1.5):
        self.model, self.step_s, self.hop_s, self.window_s = model, step_s, hop_s, window_s

    def frames(self, audio: np.ndarray) -> Frames:
        from curate.models.vad import segmentation_scores

        swf, data = segmentation_scores(self.model, audio, self.step_s, aggregate_speech=False)
        sw = swf.sliding_window
        total = audio.size / SAMPLE_RATE
        return speaker_frames(
            data, float(sw.start), float(sw.step), float(sw.duration), total, self.hop_s, self.window_s
        )


__all__ = ["SpeakerActivity", "change_scores", "speaker_frames"]
