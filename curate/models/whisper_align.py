"""Word times from Whisper's cross-attention, pure numpy (openai-whisper's recipe): the alignment heads'
attention is z-scored over tokens, median-filtered over 7 frames, averaged over heads, and a DTW path through
it gives each token's start; tokens are grouped into words. Used by :mod:`curate.models.hf_whisper`."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

FRAMES_PER_S = 50  # Whisper encoder output frames per second (30 s → 1500)
PUNCTUATION = set("\"'“”¿([{-.,!?:;)]}、。，！？：")


# --- pure helpers --------------------------------------------------------------------------------------------


def median_filter(x: np.ndarray, width: int) -> np.ndarray:
    """Median over the last axis in a window of ``width`` (odd), reflect-padded (openai-whisper's filter)."""
    if width <= 1 or x.shape[-1] <= width // 2:
        return x
    pad = width // 2
    xp = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    return np.median(np.lib.stride_tricks.sliding_window_view(xp, width, axis=-1), axis=-1)


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Monotonic alignment through ``cost`` [tokens, frames] (steps: diagonal, down, right) → (token index,
    frame index) along the cheapest path. Filled one anti-diagonal at a time, so numpy does the inner loop."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    move = np.zeros((n + 1, m + 1), dtype=np.int8)  # 0 diagonal, 1 from above (i-1), 2 from the left (j-1)
    for d in range(2, n + m + 1):
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        cands = np.stack([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]])
        k = np.argmin(cands, axis=0)
        acc[i, j] = cost[i - 1, j - 1] + cands[k, np.arange(len(i))]
        move[i, j] = k
    i, j, path = n, m, []
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        k = move[i, j]
        i, j = (i - 1, j - 1) if k == 0 else ((i - 1, j) if k == 1 else (i, j - 1))
    path.reverse()
    arr = np.array(path, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def token_start_times(weights: np.ndarray, n_frames: int, filter_width: int = 7) -> np.ndarray:
    """Cross-attention of the alignment heads [heads, n_tokens + 1, frames] (rows: the positions predicting
    each text token and then end-of-text) → the start time in seconds of each text token plus the end time of
    the last one (length n_tokens + 1)."""
    w = np.asarray(weights, dtype=np.float64)[:, :, : max(1, n_frames)]
    mean, std = w.mean(axis=-2, keepdims=True), w.std(axis=-2, keepdims=True)
    w = median_filter((w - mean) / np.maximum(std, 1e-8), filter_width)
    rows, frames = dtw(-w.mean(axis=0))
    jumps = np.concatenate([[True], np.diff(rows) > 0])
    return frames[jumps] / FRAMES_PER_S


def group_words(pieces: list[str], times: np.ndarray, probs: np.ndarray) -> list[tuple[str, float, float, float]]:
    """Token texts (``pieces``, decoded so each is whole characters) with start times (one more than pieces: the
    last is the end) and probabilities → words (text, start_s, end_s, probability). A piece starting with a space
    begins a word; punctuation-only pieces stay with the word before them."""
    words: list[list] = []  # [text, first piece index, last piece index]
    for k, p in enumerate(pieces):
        if words and (not p.startswith(" ") or p.strip() in PUNCTUATION):
            words[-1][0] += p
            words[-1][2] = k
        else:
            words.append([p, k, k])
    out = []
    for text, a, b in words:
        if text.strip():
            out.append((text.strip(), float(times[a]), float(times[b + 1]), float(np.mean(probs[a : b + 1]))))
    return out


def compression_ratio(text: str) -> float | None:
    b = text.encode("utf-8")
    return len(b) / len(zlib.compress(b)) if b else None


def whole_pieces(tokenizer: Any, ids: list[int]) -> tuple[list[str], list[list[int]]]:
    """Token ids → text pieces that are whole characters (a multi-byte character may span tokens: those tokens
    become one piece), with the ids of each piece."""
    pieces, groups, cur = [], [], []
    for t in ids:
        cur.append(t)
        s = tokenizer.decode(cur)
        if "\ufffd" not in s:
            pieces.append(s)
            groups.append(cur)
            cur = []
    if cur:
        pieces.append(tokenizer.decode(cur))
        groups.append(cur)
    return pieces, groups


__all__ = [
    "FRAMES_PER_S",
    "compression_ratio",
    "dtw",
    "group_words",
    "median_filter",
    "token_start_times",
    "whole_pieces",
]
