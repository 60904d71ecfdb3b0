"""Who is speaking, compared left and right of every moment: a speaker encoder along the recording (no stage logic).

The bundled GE2E encoder (resemblyzer's ``VoiceEncoder``, 256-d, real weights from PyPI) embeds short *blocks*
of the recording (``block_s`` every ``hop_s``; blocks with little speech are skipped). At a time ``t`` the
voice *left* of it is the speech-weighted mean of the block embeddings lying in ``[t - context_s, t]``, the
voice *right* of it the mean of those in ``[t, t + context_s]``; ``distance`` is their cosine distance (GE2E
embeddings are non-negative, so it lies in [0, 1]) and ``support_s`` the seconds of speech behind the weaker
side. A speaker turn at ``t`` is a peak of ``distance``; one voice on both sides of a pause keeps it low.

:func:`voice_frames` is the pure part (block embeddings → frames on a grid); :class:`VoiceTrack` runs the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from curate import timeline
from curate.audio import SAMPLE_RATE
from curate.schema import Frames

MEL_HOP_S = 0.01  # resemblyzer's mel frames (10 ms)


def block_starts(total_s: float, block_s: float, hop_s: float) -> np.ndarray:
    """Start times of the blocks that fit in ``[0, total_s)`` (at least one when the recording is shorter)."""
    n = int(np.floor((total_s - block_s) / hop_s + 1e-9)) + 1 if total_s >= block_s else 1
    return np.arange(max(n, 1)) * hop_s


def speech_share(starts: np.ndarray, block_s: float, speakers: Frames | None) -> np.ndarray:
    """Per block, the share of it whose ``speakers`` speech score is above 0.5 (1 everywhere without frames)."""
    if speakers is None or not len(speakers):
        return np.ones(len(starts))
    a, b = np.asarray(speakers.start_s, float), np.asarray(speakers.end_s, float)
    on = np.asarray(speakers.values["speech"], float) > 0.5
    edges = np.concatenate([[0.0], np.cumsum((b - a) * on)])
    ends = np.asarray(starts) + block_s

    def speech_before(t: np.ndarray) -> np.ndarray:  # seconds of speech in [0, t)
        i = np.clip(np.searchsorted(a, t, side="right") - 1, 0, len(a) - 1)
        part = np.clip(t - a[i], 0, b[i] - a[i]) * on[i]
        return edges[i] + part

    return np.clip((speech_before(ends) - speech_before(np.asarray(starts))) / block_s, 0.0, 1.0)


def _compare(
    t: np.ndarray, starts: np.ndarray, block_s: float, emb: np.ndarray, w: np.ndarray, context_s: float, slack_s: float,
    lo: np.ndarray, hi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Cosine distance and support (s) between the blocks left and right of each ``t`` (block indices within
    ``[lo, hi)`` only)."""
    ends = starts + block_s
    cw = np.concatenate([[0.0], np.cumsum(w)])  # prefix sums over blocks (blocks are in start order)
    ce = np.concatenate([np.zeros((1, emb.shape[1])), np.cumsum(emb * w[:, None], axis=0)])
    e = slack_s + 1e-9  # left: start >= t - context, end <= t; right: start >= t, end <= t + context
    l0, l1 = np.searchsorted(starts, t - context_s - e), np.searchsorted(ends, t + e, side="right")
    r0, r1 = np.searchsorted(starts, t - e), np.searchsorted(ends, t + context_s + e, side="right")
    l0, r0 = np.maximum(l0, lo), np.maximum(r0, lo)
    l1, r1 = np.maximum(np.minimum(l1, hi), l0), np.maximum(np.minimum(r1, hi), r0)
    left, right = ce[l1] - ce[l0], ce[r1] - ce[r0]
    norm = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    cos = np.sum(left * right, axis=1) / np.maximum(norm, 1e-12)
    step = min(block_s, float(np.median(np.diff(starts)))) if len(starts) > 1 else block_s  # blocks overlap
    support = np.where(norm > 0, np.minimum(cw[l1] - cw[l0], cw[r1] - cw[r0]) * step, 0.0)
    return np.where(support > 0, np.clip(1.0 - cos, 0.0, 1.0), 0.0), support


def voice_frames(
    starts: np.ndarray,
    block_s: float,
    emb: np.ndarray,
    weights: np.ndarray,
    total_s: float,
    hop_s: float = 0.1,
    context_s: float = 2.0,
    slack_s: float = 0.0,
    pauses: list[tuple[float, float]] | None = None,
) -> Frames:
    """Frames of kind ``voices`` on a ``hop_s`` grid over ``[0, total_s)``: at each frame's middle ``t``, the
    cosine distance between the weighted mean embedding of the blocks inside ``[t - context_s, t]`` and of those
    inside ``[t, t + context_s]``, two ways:

    - ``distance`` / ``support_s``: only blocks of the stretch of speech ``t`` lies in (no block crosses one of the
      ``pauses``, sorted and disjoint): a turn *inside* speech; 0 in a pause;
    - ``across``: any blocks, across pauses: is the voice after a pause the one before it?

    ``support_s`` is the speech (s) behind the weaker side (0: no distance). ``slack_s`` (at most half the block
    step) lets a block end or start that much past ``t`` and still count: the grid is finer than the blocks."""
    starts = np.asarray(starts, float)
    emb = np.asarray(emb, float).reshape(len(starts), -1) if len(starts) else np.zeros((0, 1))
    w = np.asarray(weights, float)
    n = max(1, int(np.ceil(total_s / hop_s)))
    grid = np.arange(n) * hop_s
    t = np.minimum(grid + hop_s / 2, total_s)
    nb = np.full(n, len(starts))
    across, _ = _compare(t, starts, block_s, emb, w, context_s, slack_s, np.zeros(n, int), nb)
    ps = np.array([p[0] for p in pauses or []] + [np.inf], float)  # a sentinel pause at infinity
    pe = np.array([p[1] for p in pauses or []] + [np.inf], float)
    run_of_block = np.searchsorted(pe, starts, side="right")  # how many pauses ended before the block starts
    crosses = ps[run_of_block] < starts + block_s  # the next pause begins inside the block
    run_of_t = np.searchsorted(pe, t, side="right")
    in_pause = ps[run_of_t] <= t
    lo, hi = np.searchsorted(run_of_block, run_of_t, side="left"), np.searchsorted(run_of_block, run_of_t, side="right")
    distance, support = _compare(t, starts, block_s, emb, np.where(crosses, 0.0, w), context_s, slack_s, lo, hi)
    distance, support = np.where(in_pause, 0.0, distance), np.where(in_pause, 0.0, support)
    values = {"distance": distance, "across": across, "support_s": support}
    return Frames("voices", grid, np.minimum(grid + hop_s, total_s), values)


def pauses_of(speakers: Frames | None, min_s: float) -> list[tuple[float, float]]:
    """Runs of ``speakers`` frames whose speech score is below 0.5 lasting at least ``min_s``."""
    if speakers is None or not len(speakers) or min_s <= 0:
        return []
    low = np.asarray(speakers.values["speech"], float) < 0.5
    return timeline.drop_short(timeline.from_mask(speakers.start_s, speakers.end_s, low), min_s)


class VoiceTrack:
    """The GE2E encoder, loaded once: ``frames(audio, speakers)`` → ``voices`` frames."""

    def __init__(
        self,
        encoder: Any,
        block_s: float = 1.0,
        hop_s: float = 0.5,
        context_s: float = 2.0,
        grid_s: float = 0.1,
        min_speech: float = 0.5,
        pause_s: float = 0.3,
        batch: int = 64,
    ):
        self.encoder, self.block_s, self.hop_s, self.context_s = encoder, block_s, hop_s, context_s
        self.grid_s, self.min_speech, self.pause_s, self.batch = grid_s, min_speech, pause_s, batch

    def embed(self, audio: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """GE2E embeddings (L2-normalised, 256-d) of the blocks starting at ``starts`` (one LSTM pass each)."""
        import torch
        from resemblyzer import audio as ra

        if not len(starts):
            return np.zeros((0, 256), np.float32)
        wav = np.asarray(audio, np.float32)
        if np.any(wav):  # resemblyzer's level (digital silence would divide by zero)
            wav = ra.normalize_volume(wav, -30, increase_only=True)
        mel = ra.wav_to_mel_spectrogram(wav)  # (frames, 40), 10 ms hop
        fb = max(1, round(self.block_s / MEL_HOP_S))
        if mel.shape[0] < fb:
            mel = np.pad(mel, ((0, fb - mel.shape[0]), (0, 0)))
        idx = np.clip(np.round(np.asarray(starts) / MEL_HOP_S).astype(int), 0, mel.shape[0] - fb)
        x = np.stack([mel[i : i + fb] for i in idx]).astype(np.float32)
        out = []
        with torch.inference_mode():
            for b in range(0, len(x), self.batch):
                out.append(self.encoder(torch.from_numpy(x[b : b + self.batch]).to(self.encoder.device)).cpu().numpy())
        return np.concatenate(out)

    def frames(self, audio: np.ndarray, speakers: Frames | None = None) -> Frames:
        total = audio.size / SAMPLE_RATE
        starts = block_starts(total, self.block_s, self.hop_s)
        share = speech_share(starts, self.block_s, speakers)
        keep = share >= self.min_speech
        emb = self.embed(audio, starts[keep])
        return voice_frames(
            starts[keep], self.block_s, emb, share[keep], total, self.grid_s, self.context_s, self.hop_s / 2,
            pauses_of(speakers, self.pause_s),
        )  # fmt: skip


def load_encoder(path: str | None = None, device: str = "cpu") -> Any:
    """resemblyzer's GE2E ``VoiceEncoder`` (its bundled ``pretrained.pt``, or the weights at ``path``)."""
    from pathlib import Path

    from resemblyzer import VoiceEncoder

    weights = Path(path) if path else None
    if weights is not None and weights.is_dir():
        weights = weights / "pretrained.pt"
    return VoiceEncoder(device, verbose=False, weights_fpath=weights)


__all__ = ["VoiceTrack", "block_starts", "load_encoder", "pauses_of", "speech_share", "voice_frames"]
