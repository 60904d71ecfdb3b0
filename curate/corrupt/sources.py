"""Pools of added audio (MUSAN noise, FMA music, Demucs stems, extra speech) for the corruption transform.

A pool is an ordered list of clips (sorted by id, so the same files always give the same draws, whatever
order a directory listing returned) that decodes a clip on first use and keeps it in a bounded LRU cache
(``cache_s`` seconds of audio). With the cache large enough for the whole pool (call :meth:`AudioPool.preload`),
a training loop never decodes during corruption; the content of a draw never depends on the cache.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate import audio
from curate.errors import CurateError

log = logging.getLogger(__name__)


class MissingSourceError(CurateError, ValueError):
    """A condition needs a source (noise, music, stems …) that was not given, or is empty."""


@dataclass(frozen=True)
class Clip:
    """One clip of a pool: ``[start_s, end_s)`` of ``path`` (the whole file when ``end_s`` is None)."""

    clip_id: str
    path: str | None = None
    start_s: float = 0.0
    end_s: float | None = None
    speaker: str | None = None
    session: str | None = None


class AudioPool:
    """Clips drawn by index; decoded lazily to mono float32 16 kHz and cached (LRU, ``cache_s`` seconds)."""

    def __init__(
        self, name: str, clips: Sequence[Clip], arrays: dict[str, np.ndarray] | None = None, cache_s: float = 4 * 3600.0
    ):
        self.name = name
        self.clips = sorted(clips, key=lambda c: c.clip_id)
        self.cache_s = cache_s
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cached_samples = 0
        self._fixed = dict(arrays or {})  # in-memory clips, never evicted
        self._bad: set[str] = set()

    @classmethod
    def from_arrays(cls, name: str, arrays: dict[str, np.ndarray], speakers: dict[str, str] | None = None) -> AudioPool:
        """A pool of in-memory signals (tests, benchmarks, a pre-decoded subset)."""
        clips = [Clip(k, speaker=(speakers or {}).get(k)) for k in arrays]
        return cls(name, clips, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()})

    def __len__(self) -> int:
        return len(self.clips)

    def get(self, i: int) -> np.ndarray:
        clip = self.clips[i]
        if clip.clip_id in self._fixed:
            return self._fixed[clip.clip_id]
        x = self._cache.get(clip.clip_id)
        if x is not None:
            self._cache.move_to_end(clip.clip_id)
            return x
        if clip.path is None:
            raise MissingSourceError(f"pool '{self.name}': clip {clip.clip_id} has neither audio nor a path")
        x = audio.load(clip.path, clip.start_s, clip.end_s)
        if x.size == 0:
            raise audio.AudioDecodeError(clip.path, f"no audio samples (pool '{self.name}', clip {clip.clip_id})")
        self._cache[clip.clip_id] = x
        self._cached_samples += x.size
        limit = int(self.cache_s * audio.SAMPLE_RATE)
        while self._cached_samples > limit and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_samples -= old.size
        return x

    def draw(self, i: int) -> tuple[str, np.ndarray]:
        """Clip ``i`` as (clip id, audio). A clip that cannot be decoded is logged once and replaced by the next
        decodable one (deterministic: the same files give the same substitutes), so a damaged file among
        thousands cannot stop a training run hours in."""
        for k in range(len(self)):
            j = (i + k) % len(self)
            if self.clips[j].clip_id in self._bad:
                continue
            try:
                return self.clips[j].clip_id, self.get(j)
            except audio.AudioDecodeError as e:
                self._bad.add(self.clips[j].clip_id)
                log.warning("pool '%s': skipping undecodable clip (%s)", self.name, e)
        raise MissingSourceError(f"pool '{self.name}': none of its {len(self)} clips can be decoded")

    def preload(self, on_progress: Callable[[int], None] | None = None) -> None:
        """Decode every clip now (raises the cache limit to fit the pool)."""
        self.cache_s = float("inf")
        for i in range(len(self)):
            self.draw(i)
            if on_progress:
                on_progress(1)

    def __repr__(self) -> str:
        return f"AudioPool({self.name!r}, {len(self)} clips)"


@dataclass
class Sources:
    """The pools a condition may draw from. ``speech``: optional second-speaker utterances for ``2spk-mix``
    (by default the partner comes from the same batch)."""

    noise: AudioPool | None = None
    music: AudioPool | None = None
    instrumental: AudioPool | None = None
    vocals: AudioPool | None = None
    speech: AudioPool | None = None

    _HINT = {
        "noise": "pass MUSAN with --noise DIR (Sources.noise = musan_pool(root))",
        "music": "pass FMA with --music DIR (Sources.music = fma_pool(root))",
        "instrumental": "pass the stems made by `curate corrupt stems` with --stems DIR",
        "vocals": "pass the stems made by `curate corrupt stems` with --stems DIR (songs with vocals only)",
        "speech": "give Sources.speech, or batches with at least two speakers",
    }

    def require(self, source: str, condition: str) -> AudioPool:
        pool = getattr(self, source)
        if pool is None or len(pool) == 0:
            state = "was not given"
            if pool is not None:
                state = "is empty" + (" (no vocal stem passed the speech-activity check)" if source == "vocals" else "")
            raise MissingSourceError(
                f"condition '{condition}' needs {source} audio, which {state}: {self._HINT[source]}"
            )
        return pool


def pool_from_paths(
    name: str, paths: Sequence[str | Path], root: str | Path | None = None, cache_s: float = 4 * 3600.0
) -> AudioPool:
    """A pool of whole files; clip ids are paths relative to ``root`` (else file stems)."""
    clips = []
    for p in paths:
        p = Path(p)
        cid = str(p.relative_to(root)) if root is not None else p.stem
        clips.append(Clip(cid, str(p)))
    return AudioPool(name, clips, cache_s=cache_s)


@dataclass(frozen=True)
class Utterance:
    """What pairing needs to know about one utterance. ``session``: LibriSpeech chapter, programme …
    An unknown speaker (None) counts as different from every other utterance."""

    key: str
    speaker: str | None = None
    session: str | None = None


__all__ = ["AudioPool", "Clip", "MissingSourceError", "Sources", "Utterance", "pool_from_paths"]
