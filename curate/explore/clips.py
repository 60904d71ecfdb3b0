"""Audio for the page: a span of a recording decoded on demand (:func:`curate.audio.load` reads only that
range) and sent as 16-bit WAV, and min/max waveform peaks of a span. Both are bounded: a clip at most
:data:`MAX_CLIP_S` seconds, a waveform over at most :data:`MAX_WAVE_S`; a request never decodes a whole
three-hour programme."""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from curate import audio

MAX_CLIP_S = 60.0  # longest span one request decodes (a segment is ≤ 30 s; the cursor plays a minute)
MAX_WAVE_S = 900.0  # longest span a waveform is drawn for (zoom in on a longer programme)
MAX_PEAKS = 4000


def wav_bytes(x: np.ndarray, sr: int = audio.SAMPLE_RATE) -> bytes:
    """Mono float samples → a 16-bit PCM WAV file's bytes."""
    pcm = (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    head = struct.pack(
        "<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16, 1, 1, sr, sr * 2, 2, 16, b"data", len(pcm)
    )
    return head + pcm


def opus_bytes(x: np.ndarray, sr: int = audio.SAMPLE_RATE) -> bytes:
    """Mono float samples → an Ogg/Opus file's bytes (about a tenth of the WAV: for the static report)."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0), sr, format="OGG", subtype="OPUS")
    return buf.getvalue()


def bounded(start_s: float, end_s: float, duration_s: float, limit_s: float) -> tuple[float, float]:
    """``[start_s, end_s)`` inside ``[0, duration_s]`` and at most ``limit_s`` long; ValueError when empty."""
    if not (np.isfinite(start_s) and np.isfinite(end_s)):
        raise ValueError("start and end must be numbers")
    start_s = max(0.0, start_s)
    end_s = min(end_s, duration_s, start_s + limit_s)
    if end_s <= start_s:
        raise ValueError(f"empty span [{start_s:.3f}, {end_s:.3f}) of a {duration_s:.3f} s recording")
    return start_s, end_s


def peaks(x: np.ndarray, n: int) -> tuple[list[float], list[float]]:
    """Min and max of ``x`` over ``n`` equal bins (fewer when ``x`` is shorter)."""
    n = max(1, min(n, MAX_PEAKS, x.size))
    if not x.size:
        return [], []
    edges = np.linspace(0, x.size, n + 1).astype(np.int64)
    lo = np.minimum.reduceat(x, edges[:-1])
    hi = np.maximum.reduceat(x, edges[:-1])
    return np.round(lo, 4).tolist(), np.round(hi, 4).tolist()


class ClipCache:
    """Recently decoded clips (a browser asks for the same clip in several ranged requests)."""

    def __init__(self, decode: Callable[..., np.ndarray] = audio.load, size: int = 64) -> None:
        self._decode, self._size = decode, size
        self._items: OrderedDict[tuple[str, float, float], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def wav(self, path: str, start_s: float, end_s: float) -> bytes:
        key = (path, round(start_s, 3), round(end_s, 3))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        data = wav_bytes(self._decode(path, start_s, end_s))
        with self._lock:
            self._items[key] = data
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return data


__all__ = ["MAX_CLIP_S", "MAX_WAVE_S", "ClipCache", "bounded", "opus_bytes", "peaks", "wav_bytes"]
