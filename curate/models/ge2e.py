"""resemblyzer's GE2E speaker encoder (3-layer LSTM over 40 mel bands → 256-d unit embedding) without
resemblyzer, librosa or scipy, for machines that have only torch and numpy (``benchmarks/gpu_curate.py``).

:func:`export` (where resemblyzer exists) writes the encoder's weights and librosa's mel filter matrix into
one plain tensor file (``torch.load(..., weights_only=True)``); :class:`GE2E` has the methods that
:meth:`curate.models.diarization.SegmentationResemblyzer.embed_many` calls on resemblyzer (``normalize_volume``,
``wav_to_mel_spectrogram``, ``compute_partial_slices``, ``forward``), re-done in numpy/torch:
the mel spectrogram is librosa's (centred 400-point Hann STFT every 160 samples, zero padding, power 2, Slaney
mel filters). ``tests/test_pyannet.py`` checks embeddings against resemblyzer's on a real clip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from curate.audio import SAMPLE_RATE

N_FFT, HOP, N_MELS, PARTIAL_FRAMES = 400, 160, 40, 160


class GE2E(nn.Module):
    def __init__(self, hidden: int = 256, layers: int = 3, device: str = "cpu"):
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, hidden)
        self.register_buffer("mel_basis", torch.zeros(N_MELS, N_FFT // 2 + 1))
        self.device = torch.device(device)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, 40)`` mel spectrograms → ``(batch, 256)`` unit embeddings (resemblyzer's)."""
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / torch.norm(raw, dim=1, keepdim=True)

    @staticmethod
    def normalize_volume(wav: np.ndarray, target_dbfs: float, increase_only: bool = False) -> np.ndarray:
        rms = np.sqrt(np.mean((wav * 32767) ** 2))
        change = target_dbfs - 20 * np.log10(rms / 32767)
        return wav if change < 0 and increase_only else wav * (10 ** (change / 20))

    def wav_to_mel_spectrogram(self, wav: np.ndarray) -> np.ndarray:
        """``(frames, 40)`` power mel spectrogram (librosa's ``melspectrogram`` with resemblyzer's settings)."""
        x = np.pad(np.asarray(wav, np.float32), N_FFT // 2)
        n = 1 + (x.size - N_FFT) // HOP
        frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:n]
        win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
        power = np.abs(np.fft.rfft(frames * win, axis=1)) ** 2
        if getattr(self, "_mel", None) is None:
            self._mel = self.mel_basis.cpu().numpy().T
        return (power @ self._mel).astype(np.float32)

    @staticmethod
    def compute_partial_slices(n_samples: int, rate: float, min_coverage: float) -> tuple[list[slice], list[slice]]:
        """resemblyzer's partials: 1.6 s (160 mel frames) every ``1 / rate`` s covering the clip; the last one
        is dropped when less than ``min_coverage`` of it holds audio (unless it is the only one)."""
        n_frames = int(np.ceil((n_samples + 1) / HOP))
        step = int(np.round((SAMPLE_RATE / rate) / HOP))
        wav_slices, mel_slices = [], []
        for i in range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step):
            mel_slices.append(slice(i, i + PARTIAL_FRAMES))
            wav_slices.append(slice(i * HOP, (i + PARTIAL_FRAMES) * HOP))
        last = wav_slices[-1]
        if (n_samples - last.start) / (last.stop - last.start) < min_coverage and len(mel_slices) > 1:
            mel_slices, wav_slices = mel_slices[:-1], wav_slices[:-1]
        return wav_slices, mel_slices


def export(weights: Path | str, path: Path | str, dtype: torch.dtype = torch.float32) -> Path:
    """resemblyzer's ``pretrained.pt`` (or any VoiceEncoder checkpoint) + librosa's mel filters → ``path``."""
    import librosa

    ckpt = torch.load(str(weights), map_location="cpu", weights_only=True)["model_state"]
    sd = {k: v.to(dtype) for k, v in ckpt.items() if k.startswith(("lstm.", "linear."))}
    sd["mel_basis"] = torch.from_numpy(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)).float()
    path = Path(path)
    torch.save({"format": "curate-ge2e-1", "state_dict": sd}, path)
    return path


def load(path: Path | str, device: str = "cpu") -> GE2E:
    blob = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != "curate-ge2e-1":
        raise ValueError(f"{path}: not a curate GE2E file (write one with curate.models.ge2e.export)")
    model = GE2E(device=device)
    model.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    return model.eval().to(device)


__all__ = ["GE2E", "export", "load"]
