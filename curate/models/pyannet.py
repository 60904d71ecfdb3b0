"""The pyannote segmentation model (PyanNet: SincNet → LSTM → linear → classifier) in plain PyTorch, for machines
without pyannote.audio (a GPU node with only torch; see ``benchmarks/gpu_curate.py``).

:func:`export` (where pyannote exists) turns a loaded pyannote model into a plain dict of tensors and numbers
— the SincNet band-pass filters are computed once and kept as an ordinary convolution weight — that
``torch.load(..., weights_only=True)`` reads; :func:`load` builds :class:`PyanNet` from it. :func:`chunk_scores`
slides the model over a recording as pyannote's ``Inference`` does (5 s chunks every ``step_s``, the last
partial chunk zero-padded) and returns the raw per-chunk local speaker activities, the input of
:mod:`curate.models.diarization` and :mod:`curate.models.overlap`; :func:`speech_scores` aggregates them into
per-frame speech probability (Hamming-weighted average of the max over local speakers, as pyannote's VAD).
``tests/test_pyannet.py`` checks both against pyannote's own on a real clip.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from curate.audio import SAMPLE_RATE


@dataclass(frozen=True)
class Window:
    """pyannote's ``SlidingWindow`` fields that curate reads."""

    start: float
    duration: float
    step: float


@dataclass(frozen=True)
class ChunkScores:
    """pyannote's ``SlidingWindowFeature`` shape: ``data`` (chunks, frames, speakers) over ``sliding_window``."""

    data: np.ndarray
    sliding_window: Window


class PyanNet(nn.Module):
    """SincNet (fixed filters) + bidirectional LSTM + linear layers + classifier with sigmoid (multi-label)."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.cfg = dict(cfg)
        n_filt, k = cfg["sinc_filters"], cfg["sinc_kernel"]
        self.register_buffer("sinc", torch.zeros(n_filt, 1, k))
        self.wav_norm = nn.InstanceNorm1d(1, affine=True)
        self.convs = nn.ModuleList([nn.Conv1d(n_filt, 60, 5), nn.Conv1d(60, 60, 5)])
        self.norms = nn.ModuleList([nn.InstanceNorm1d(c, affine=True) for c in (n_filt, 60, 60)])
        h, layers = cfg["lstm_hidden"], cfg["lstm_layers"]
        self.lstm = nn.LSTM(60, h, layers, batch_first=True, bidirectional=True)
        sizes = [2 * h] + [cfg["linear_hidden"]] * cfg["linear_layers"]
        self.linear = nn.ModuleList([nn.Linear(a, b) for a, b in itertools.pairwise(sizes)])
        self.classifier = nn.Linear(sizes[-1], cfg["classes"])

    @property
    def device(self) -> torch.device:
        return self.sinc.device

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, samples)`` → ``(batch, frames, classes)`` activities in [0, 1]."""
        x = self.wav_norm(wav)
        x = torch.abs(F.conv1d(x, self.sinc, stride=self.cfg["sinc_stride"]))
        x = F.leaky_relu(self.norms[0](F.max_pool1d(x, 3, 3)))
        for conv, norm in zip(self.convs, self.norms[1:], strict=True):
            x = F.leaky_relu(norm(F.max_pool1d(conv(x), 3, 3)))
        x, _ = self.lstm(x.transpose(1, 2))
        for lin in self.linear:
            x = F.leaky_relu(lin(x))
        return torch.sigmoid(self.classifier(x))


def export(model: Any, path: Path | str, dtype: torch.dtype = torch.float32) -> Path:
    """A loaded pyannote ``PyanNet`` (multi-label, as the whisperx wheel's) → a plain tensor file at ``path``."""
    hp, spec = model.hparams, model.specifications
    if getattr(spec, "powerset", False) or not hp["lstm"]["bidirectional"] or not hp["lstm"]["monolithic"]:
        raise ValueError("only the multi-label PyanNet with a monolithic bidirectional LSTM is supported")
    enc = model.sincnet.conv1d[0]
    with torch.no_grad():
        sinc = enc.get_filters().detach().float().cpu()
    rf = model.receptive_field
    cfg = {
        "sinc_filters": int(sinc.shape[0]),
        "sinc_kernel": int(sinc.shape[-1]),
        "sinc_stride": int(enc.stride),
        "lstm_hidden": int(hp["lstm"]["hidden_size"]),
        "lstm_layers": int(hp["lstm"]["num_layers"]),
        "linear_hidden": int(hp["linear"]["hidden_size"]),
        "linear_layers": int(hp["linear"]["num_layers"]),
        "classes": len(spec.classes),
        "duration": float(spec.duration),
        "frame_start": float(rf.start),
        "frame_duration": float(rf.duration),
        "frame_step": float(rf.step),
    }
    src = model.state_dict()
    sd = {
        "sinc": sinc,
        "wav_norm.weight": src["sincnet.wav_norm1d.weight"],
        "wav_norm.bias": src["sincnet.wav_norm1d.bias"],
    }
    for i in range(3):
        for p in ("weight", "bias"):
            sd[f"norms.{i}.{p}"] = src[f"sincnet.norm1d.{i}.{p}"]
            if i:
                sd[f"convs.{i - 1}.{p}"] = src[f"sincnet.conv1d.{i}.{p}"]
    sd |= {k: v for k, v in src.items() if k.startswith(("lstm.", "linear.", "classifier."))}
    sd = {k: v.detach().cpu().to(dtype).contiguous() for k, v in sd.items()}
    path = Path(path)
    torch.save({"format": "curate-pyannet-1", "config": cfg, "state_dict": sd}, path)
    return path


def load(path: Path | str, device: str = "cpu") -> PyanNet:
    """:func:`export`'s file → a :class:`PyanNet` in eval mode (float32) on ``device``."""
    blob = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != "curate-pyannet-1":
        raise ValueError(f"{path}: not a curate PyanNet file (write one with curate.models.pyannet.export)")
    model = PyanNet(blob["config"])
    model.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    return model.eval().to(device)


def _chunks(model: PyanNet, audio: np.ndarray, step: int) -> torch.Tensor:
    win = int(round(model.cfg["duration"] * SAMPLE_RATE))
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    n_full = 1 + (x.numel() - win) // step if x.numel() >= win else 0
    chunks = x.unfold(0, win, step)[:n_full] if n_full else x.new_zeros((0, win))
    if x.numel() < win or (x.numel() - win) % step:
        last = x[n_full * step :]
        chunks = torch.cat([chunks, F.pad(last, (0, win - last.numel()))[None]])
    return chunks


def chunk_scores_many(
    model: PyanNet, audios: list[np.ndarray], step_s: float = 1.0, batch_size: int = 32
) -> list[ChunkScores]:
    """:func:`chunk_scores` of several recordings, their chunks batched together (fewer, fuller GPU calls)."""
    parts = [_chunks(model, a, int(round(step_s * SAMPLE_RATE))) for a in audios]
    allc = torch.cat(parts)
    outs = []
    with torch.inference_mode():
        for b in range(0, len(allc), batch_size):
            outs.append(model(allc[b : b + batch_size, None].to(model.device)).float().cpu().numpy())
    data = np.concatenate(outs)
    bounds = np.cumsum([0] + [len(p) for p in parts])
    window = Window(0.0, model.cfg["duration"], step_s)
    return [ChunkScores(data[bounds[i] : bounds[i + 1]], window) for i in range(len(parts))]


def chunk_scores(model: PyanNet, audio: np.ndarray, step_s: float = 1.0, batch_size: int = 32) -> ChunkScores:
    """Raw local speaker activities ``(chunks, frames, speakers)`` of 5 s chunks every ``step_s``; audio shorter
    than a chunk and the tail after the last full chunk are zero-padded to a chunk (pyannote's ``Inference``)."""
    return chunk_scores_many(model, [audio], step_s, batch_size)[0]


def speech_scores(model: PyanNet, audio: np.ndarray, step_s: float = 0.5, batch_size: int = 32) -> ChunkScores:
    """Per-frame speech probability ``(frames, 1)``: the max over local speakers, averaged over the chunks that
    see each frame with a Hamming window (pyannote's VAD aggregation), cut to the audio's length."""
    return aggregate_speech(model, chunk_scores(model, audio, step_s, batch_size), audio.size)


def aggregate_speech(model: PyanNet, chunks: ChunkScores, n_samples: int) -> ChunkScores:
    """:func:`speech_scores` from chunk scores already computed (e.g. by :func:`chunk_scores_many`)."""
    step_s = chunks.sliding_window.step
    data = chunks.data.max(axis=2, keepdims=True)
    c, f, _ = data.shape
    cfg = model.cfg
    fd, fstep = cfg["frame_duration"], cfg["frame_step"]

    def closest(t: float) -> int:  # frames on the chunks' time base (start 0), as pyannote's aggregate
        return int(np.rint((t - 0.5 * fd) / fstep))

    n = closest(cfg["duration"] + (c - 1) * step_s + 0.5 * fd) + 1
    acc, cnt = np.zeros((n, 1), np.float32), np.zeros((n, 1), np.float32)
    ham = np.hamming(f).reshape(-1, 1)
    for i in range(c):
        s = closest(i * step_s + 0.5 * fd)
        acc[s : s + f] += data[i] * ham
        cnt[s : s + f] += ham
    avg = acc / np.maximum(cnt, 1e-12)
    n_keep = min(n, int(np.ceil(n_samples / SAMPLE_RATE / fstep)))  # what curate keeps of pyannote's output
    return ChunkScores(avg[: max(n_keep, 1)], Window(0.0, fd, fstep))


__all__ = [
    "ChunkScores",
    "PyanNet",
    "Window",
    "aggregate_speech",
    "chunk_scores",
    "chunk_scores_many",
    "export",
    "load",
    "speech_scores",
]
