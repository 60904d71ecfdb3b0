"""Speaker diarization with bounded memory: who speaks when, as recording-scoped labels ``S0``, ``S1`` …

Backends:

- ``segmentation+resemblyzer`` (offline default; weights ship on PyPI): the pyannote segmentation model from
  the whisperx wheel finds, in sliding 5 s chunks, up to three *local* speakers per chunk; each local
  speaker's clean frames are embedded with resemblyzer's GE2E ``VoiceEncoder``; the embeddings are clustered
  (agglomerative, cosine, average linkage: a distance threshold, or a fixed number of speakers); frame
  activations are aggregated per cluster and every speech frame gets its most active cluster. This is
  pyannote's own diarization recipe with a speaker encoder that works offline.
- ``pyannote``: a full pyannote diarization ``Pipeline`` loaded from a local directory (``config.yaml``
  referencing local weights, as on GPU nodes with pre-fetched models). It sees the whole recording.

Long programmes: the audio is read and diarized in windows (``window_s``, e.g. 10 min). Speakers are
clustered inside a window, then linked to the recording's speakers so far by centroid cosine similarity
(a new speaker when nothing is close enough). Memory depends on the window, not on the programme: only one
window's audio and scores are alive at a time, and what is kept is the turn list and one centroid per
speaker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curate import timeline
from curate.audio import SAMPLE_RATE
from curate.models.vad import segmentation_scores

log = logging.getLogger(__name__)

BACKENDS = ("segmentation+resemblyzer", "pyannote")


@dataclass(frozen=True)
class Turn:
    start_s: float
    end_s: float
    speaker: str


@dataclass
class DiarizationParams:
    window_s: float = 600.0  # audio diarized at a time (memory bound)
    step_s: float = 1.0  # sliding step of the 5 s segmentation chunks (pyannote uses 0.5)
    onset: float = 0.5  # local speaker activity threshold
    min_embed_s: float = 0.6  # local speakers with less clean speech in a chunk are not embedded
    threshold: float = 0.25  # cosine distance below which clusters merge (within a window; tuned on real clips)
    link_threshold: float = 0.75  # cosine similarity above which a window's speaker is a known speaker
    num_speakers: int | None = None  # fixed count; None: estimated from the threshold
    min_turn_s: float = 0.2  # shorter turns are absorbed by their neighbours
    min_cluster_s: float = 3.0  # clusters with less embedded speech join the nearest larger cluster
    batch_size: int = 32


def cluster(emb: np.ndarray, threshold: float, num_speakers: int | None = None) -> np.ndarray:
    """Agglomerative clustering of L2-normalised embeddings (cosine, average linkage) → labels 0..k-1."""
    n = len(emb)
    if n == 0:
        return np.zeros(0, dtype=int)
    if n == 1:
        return np.zeros(1, dtype=int)
    try:
        from scipy.cluster.hierarchy import fcluster, linkage
    except ImportError:  # a machine with numpy only (benchmarks/gpu_curate.py)
        return average_linkage(emb, threshold, num_speakers)
    z = linkage(emb, method="average", metric="cosine")
    if num_speakers:
        labels = fcluster(z, t=min(num_speakers, n), criterion="maxclust")
    else:
        labels = fcluster(z, t=threshold, criterion="distance")
    _, labels = np.unique(labels, return_inverse=True)
    return labels


def average_linkage(emb: np.ndarray, threshold: float, num_speakers: int | None = None) -> np.ndarray:
    """:func:`cluster` in numpy (no scipy): merge the two closest clusters (mean cosine distance between their
    members) while that distance is ≤ ``threshold`` (or until ``num_speakers`` remain); labels 0..k-1 in
    order of first member. Average linkage is monotone, so this is scipy's ``fcluster`` cut."""
    x = np.asarray(emb, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    d = 1.0 - x @ x.T
    np.fill_diagonal(d, np.inf)
    size = np.ones(len(x))
    owner = np.arange(len(x))
    alive = np.ones(len(x), bool)
    while alive.sum() > 1:
        flat = int(np.argmin(d))
        i, j = divmod(flat, len(d))
        if (num_speakers and alive.sum() <= num_speakers) or (not num_speakers and d[i, j] > threshold):
            break
        merged = (size[i] * d[i] + size[j] * d[j]) / (size[i] + size[j])  # Lance-Williams, average linkage
        d[i], d[:, i] = merged, merged
        d[i, i] = np.inf
        d[j], d[:, j] = np.inf, np.inf
        size[i] += size[j]
        alive[j] = False
        owner[owner == j] = i
    _, first = np.unique(owner, return_index=True)
    order = {int(owner[f]): k for k, f in enumerate(sorted(first))}
    return np.array([order[int(o)] for o in owner])


def absorb_small(emb: np.ndarray, labels: np.ndarray, weights: np.ndarray, min_s: float) -> np.ndarray:
    """Clusters holding less than ``min_s`` seconds of speech join the most similar cluster that holds more
    (over-segmentation of one voice is the usual failure); labels are renumbered 0..k-1."""
    if len(labels) == 0:
        return labels
    k = int(labels.max()) + 1
    mass = np.array([weights[labels == j].sum() for j in range(k)])
    big = np.flatnonzero(mass >= min_s)
    if len(big) == 0 or len(big) == k:
        return labels
    cents = _unit(np.stack([emb[labels == j].mean(axis=0) for j in range(k)]))
    target = {j: (j if j in big else int(big[np.argmax(cents[big] @ cents[j])])) for j in range(k)}
    _, out = np.unique([target[int(j)] for j in labels], return_inverse=True)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


@dataclass
class SpeakerLinker:
    """Recording-wide speakers across windows: a running centroid per speaker."""

    link_threshold: float = 0.75
    centroids: list[np.ndarray] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)

    def link(self, centroids: np.ndarray, weights: np.ndarray) -> list[int]:
        """Map each of a window's cluster centroids to a global speaker index (greedy, one-to-one)."""
        out = [-1] * len(centroids)
        if self.centroids:
            sim = _unit(centroids) @ _unit(np.stack(self.centroids)).T
            taken: set[int] = set()
            for flat in np.argsort(-sim, axis=None):
                i, j = divmod(int(flat), sim.shape[1])
                if sim[i, j] < self.link_threshold:
                    break
                if out[i] < 0 and j not in taken:
                    out[i] = j
                    taken.add(j)
        for i, j in enumerate(out):
            if j < 0:
                self.centroids.append(centroids[i].copy())
                self.weights.append(float(weights[i]))
                out[i] = len(self.centroids) - 1
            else:
                w = self.weights[j] + float(weights[i])
                self.centroids[j] = (self.centroids[j] * self.weights[j] + centroids[i] * weights[i]) / w
                self.weights[j] = w
        return out

    def reduce_to(self, n: int) -> dict[int, int]:
        """Merge the most similar speakers until at most ``n`` remain; returns old → new index."""
        groups = {i: i for i in range(len(self.centroids))}
        if n <= 0 or len(self.centroids) <= n:
            return groups
        labels = cluster(_unit(np.stack(self.centroids)), 1.0, n)
        return {i: int(labels[i]) for i in range(len(self.centroids))}


def _frames_to_turns(
    labels: np.ndarray, t0: float, frame_s: float, min_turn_s: float
) -> list[tuple[float, float, int]]:
    """Runs of equal non-negative labels → (start, end, label); short runs take their neighbour's label."""
    runs: list[list[float]] = []
    for i, lab in enumerate(labels):
        if runs and runs[-1][2] == lab and runs[-1][1] == i:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1, int(lab)])
    speech = [r for r in runs if r[2] >= 0]
    for k, r in enumerate(speech):  # absorb very short turns into the previous one when adjacent
        if (r[1] - r[0]) * frame_s < min_turn_s and k > 0 and speech[k - 1][1] == r[0]:
            r[2] = speech[k - 1][2]
    merged: list[list[float]] = []
    for r in speech:
        if merged and merged[-1][2] == r[2] and merged[-1][1] == r[0]:
            merged[-1][1] = r[1]
        else:
            merged.append(list(r))
    return [(t0 + a * frame_s, t0 + b * frame_s, int(lab)) for a, b, lab in merged]


class SegmentationResemblyzer:
    """The offline backend. ``model``: a loaded pyannote segmentation model; ``encoder``: a VoiceEncoder."""

    def __init__(self, model: Any, encoder: Any, params: DiarizationParams | None = None):
        self.model, self.encoder = model, encoder
        self.p = params or DiarizationParams()

    def embed_many(self, wavs: list[np.ndarray], batch: int = 64) -> np.ndarray:
        """GE2E embeddings of many clips in few LSTM calls: every clip is cut into resemblyzer's 1.6 s
        partials, all partials go through the encoder in batches, each clip gets its partials' mean."""
        import torch

        if hasattr(self.encoder, "wav_to_mel_spectrogram"):  # curate.models.ge2e: the same front end, no librosa
            ra = self.encoder
        else:
            from resemblyzer import audio as ra

        mels, owner = [], []
        for i, wav in enumerate(wavs):
            wav = ra.normalize_volume(wav, -30, increase_only=True)  # resemblyzer's level, no VAD trimming
            wav_slices, mel_slices = self.encoder.compute_partial_slices(len(wav), 1.3, 0.75)
            if wav_slices[-1].stop >= len(wav):
                wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)))
            mel = ra.wav_to_mel_spectrogram(wav)
            mels += [mel[s] for s in mel_slices]
            owner += [i] * len(mel_slices)
        if not mels:
            return np.zeros((0, 256), dtype=np.float32)
        x = np.stack(mels).astype(np.float32)
        parts = []
        with torch.inference_mode():
            for b in range(0, len(x), batch):
                parts.append(self.encoder(torch.from_numpy(x[b : b + batch]).to(self.encoder.device)).cpu().numpy())
        partial = np.concatenate(parts)
        owner_a = np.asarray(owner)
        out = np.stack([partial[owner_a == i].mean(axis=0) for i in range(len(wavs))])
        return _unit(out)

    def window(self, audio: np.ndarray, t0: float) -> tuple[list[tuple[float, float, int]], np.ndarray, np.ndarray]:
        """Diarize one window: (turns with window-local cluster ids, cluster centroids, cluster weights)."""
        p = self.p
        swf, data = segmentation_scores(self.model, audio, p.step_s, p.batch_size, aggregate_speech=False)
        n_chunks, n_frames, n_spk = data.shape
        chunk_s = float(swf.sliding_window.duration)
        frame_s = chunk_s / n_frames
        active = data > p.onset
        clips, keys, weights = [], [], []
        for c in range(n_chunks):
            c0 = int(round(c * p.step_s * SAMPLE_RATE))
            alone = active[c] & (active[c].sum(axis=1, keepdims=True) == 1)
            for k in range(n_spk):
                if alone[:, k].sum() * frame_s < p.min_embed_s:
                    continue
                idx = np.flatnonzero(alone[:, k])
                mask = np.zeros(int(chunk_s * SAMPLE_RATE), dtype=bool)
                for f in idx:
                    mask[int(f * frame_s * SAMPLE_RATE) : int((f + 1) * frame_s * SAMPLE_RATE)] = True
                seg = audio[c0 : c0 + mask.size]
                clips.append(seg[mask[: seg.size]])
                keys.append((c, k))
                weights.append(idx.size * frame_s)
        total = int(np.ceil(audio.size / SAMPLE_RATE / frame_s))
        if not clips:
            return [], np.zeros((0, 256)), np.zeros(0)
        emb = self.embed_many(clips)
        labels = absorb_small(emb, cluster(emb, p.threshold, p.num_speakers), np.asarray(weights), p.min_cluster_s)
        n_cl = int(labels.max()) + 1
        act = np.zeros((total + n_frames, n_cl), dtype=np.float32)
        cnt = np.zeros(total + n_frames, dtype=np.float32)
        for c in range(n_chunks):  # how many chunks saw each frame (for the average)
            f0 = int(round(c * p.step_s / frame_s))
            cnt[f0 : f0 + n_frames] += 1
        for (c, k), lab in zip(keys, labels, strict=True):
            f0 = int(round(c * p.step_s / frame_s))
            act[f0 : f0 + n_frames, lab] += data[c, :, k]
        act = act[:total] / np.maximum(cnt[:total, None], 1)
        speech = np.zeros(total, dtype=bool)
        for c in range(n_chunks):
            f0 = int(round(c * p.step_s / frame_s))
            seg_speech = data[c].max(axis=1) > p.onset
            speech[f0 : f0 + n_frames] |= seg_speech[: max(0, total - f0)]
        frame_labels = np.where(speech & (act.max(axis=1) > 0), act.argmax(axis=1), -1)
        turns = _frames_to_turns(frame_labels, t0, frame_s, p.min_turn_s)
        cents = np.stack([emb[labels == j].mean(axis=0) for j in range(n_cl)])
        w = np.array([np.sum(np.array(weights)[labels == j]) for j in range(n_cl)])
        return turns, cents, w

    def __call__(self, read: Callable[[float, float], np.ndarray], duration_s: float) -> list[Turn]:
        linker = SpeakerLinker(self.p.link_threshold)
        raw: list[tuple[float, float, int]] = []
        for w0, w1 in timeline.windows(duration_s, self.p.window_s, keep_partial=True):
            if w1 - w0 < 0.5:
                continue
            turns, cents, weights = self.window(read(w0, w1), w0)
            if not len(cents):
                continue
            ids = linker.link(cents, weights)
            raw += [(s, min(e, w1), ids[lab]) for s, e, lab in turns]
        remap = linker.reduce_to(self.p.num_speakers or 0)
        return relabel([(s, e, remap[g]) for s, e, g in raw])


def relabel(turns: list[tuple[float, float, Any]]) -> list[Turn]:
    """Speaker keys → ``S0``, ``S1`` … in order of first appearance; adjacent same-speaker turns joined."""
    names: dict[Any, str] = {}
    out: list[Turn] = []
    for s, e, key in sorted(turns, key=lambda t: (t[0], t[1])):
        if e <= s:
            continue
        name = names.setdefault(key, f"S{len(names)}")
        if out and out[-1].speaker == name and s - out[-1].end_s <= 1e-6:
            out[-1] = Turn(out[-1].start_s, max(e, out[-1].end_s), name)
        else:
            out.append(Turn(float(s), float(e), name))
    return out


def load_pyannote_pipeline(path: str, device: str = "cpu") -> Any:
    """A pyannote diarization pipeline from a local directory holding ``config.yaml`` (local weight paths)."""
    from pathlib import Path

    cfg = Path(path) / "config.yaml" if Path(path).is_dir() else Path(path)
    if not cfg.is_file():
        raise FileNotFoundError(
            f"{path}: expected a pyannote pipeline directory with a config.yaml (its weights given as local paths)"
        )
    import torch
    from pyannote.audio import Pipeline

    try:
        pipe = Pipeline.from_pretrained(str(cfg.parent if cfg.name == "config.yaml" else cfg))
    except Exception as e:  # pyannote raises many types for bad configs
        raise RuntimeError(f"{cfg}: cannot load the pyannote pipeline ({type(e).__name__}: {e})") from e
    if pipe is None:
        raise RuntimeError(f"{cfg}: pyannote returned no pipeline (a hub name without a token?)")
    return pipe.to(torch.device(device))


def pyannote_turns(pipeline: Any, audio: np.ndarray, num_speakers: int | None = None) -> list[Turn]:
    import torch

    kw = {"num_speakers": num_speakers} if num_speakers else {}
    out = pipeline({"waveform": torch.from_numpy(audio)[None], "sample_rate": SAMPLE_RATE}, **kw)
    ann = getattr(out, "speaker_diarization", out)
    return relabel([(t.start, t.end, spk) for t, _, spk in ann.itertracks(yield_label=True)])


def speaker_of(start_s: float, end_s: float, turns: list[Turn]) -> str | None:
    """The speaker overlapping ``[start_s, end_s)`` most; else the nearest turn's speaker (None: no turns)."""
    if not turns:
        return None
    best, best_ov = None, 0.0
    for t in turns:
        ov = timeline.overlap((start_s, end_s), (t.start_s, t.end_s))
        if ov > best_ov:
            best, best_ov = t.speaker, ov
    if best is not None:
        return best
    mid = (start_s + end_s) / 2
    return min(
        turns, key=lambda t: 0.0 if t.start_s <= mid <= t.end_s else min(abs(t.start_s - mid), abs(t.end_s - mid))
    ).speaker


__all__ = [
    "BACKENDS",
    "Turn",
    "DiarizationParams",
    "SegmentationResemblyzer",
    "SpeakerLinker",
    "average_linkage",
    "cluster",
    "relabel",
    "load_pyannote_pipeline",
    "pyannote_turns",
    "speaker_of",
]
