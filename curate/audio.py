"""Audio I/O: probe cheaply, decode any format ffmpeg reads to 16 kHz mono float32, read time ranges.

WAV/FLAC/OGG files that libsndfile can open are read with :mod:`soundfile`, which seeks, so reading
``[start_s, end_s)`` of a 3-hour FLAC decodes only that range. Everything else (mp3, mp4/aac, opus,
video containers, mislabelled files) goes through an ``ffmpeg`` pipe with an input-side seek.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000


class AudioDecodeError(RuntimeError):
    """A recording's audio cannot be read. Becomes a failure row; the run goes on."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate: int
    num_channels: int
    codec: str


def _ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("ffmpeg is not installed: `apt-get install ffmpeg` (make demo/test do this for you)")
    return exe


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioDecodeError(path, "file not found")
    if not path.is_file():
        raise AudioDecodeError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(path, "empty file (0 bytes)")


def _sf_info(path: Path):
    import soundfile as sf

    try:
        return sf.info(str(path))
    except Exception:  # libsndfile cannot open it: not an error yet, ffmpeg may
        return None


def probe(path: str | Path) -> AudioInfo:
    """Duration, native rate, channels and codec, from the header only (no decoding)."""
    path = Path(path)
    _check_file(path)
    info = _sf_info(path)
    if info is not None and info.frames > 0:
        return AudioInfo(info.frames / info.samplerate, int(info.samplerate), int(info.channels), info.subtype.lower())
    exe = shutil.which("ffprobe")
    if exe is None:
        raise RuntimeError("ffprobe is not installed: `apt-get install ffmpeg`")
    cmd = [
        exe,
        "-v",
        "error",
        "-select_streams",
        "a:0",
        "-show_entries",
        "stream=codec_name,sample_rate,channels,duration:format=duration",
        "-of",
        "json",
        str(path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AudioDecodeError(
            path, f"not readable audio ({proc.stderr.strip().splitlines()[-1:] or ['ffprobe failed']}[0])"
        )
    data = json.loads(proc.stdout or "{}")
    streams = data.get("streams") or []
    if not streams:
        raise AudioDecodeError(path, "no audio stream")
    st = streams[0]
    dur = st.get("duration") or (data.get("format") or {}).get("duration")
    if dur in (None, "N/A"):
        raise AudioDecodeError(path, "duration unknown (damaged header?)")
    dur = float(dur)
    if dur <= 0:
        raise AudioDecodeError(path, "no audio samples")
    return AudioInfo(dur, int(st.get("sample_rate") or 0), int(st.get("channels") or 0), st.get("codec_name", "?"))


def _to_mono_16k(x: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    if x.ndim == 2:
        x = x.mean(axis=1)
    x = np.nan_to_num(np.ascontiguousarray(x, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if sr != target_sr:
        import soxr

        x = soxr.resample(x, sr, target_sr, quality="HQ").astype(np.float32, copy=False)
    return x


def _ffmpeg_pcm(path: Path, start_s: float, duration_s: float | None, sr: int) -> np.ndarray:
    cmd = [_ffmpeg(), "-nostdin", "-v", "error"]
    if start_s > 0:
        cmd += ["-ss", f"{start_s:.6f}"]
    cmd += ["-i", str(path)]
    if duration_s is not None:
        cmd += ["-t", f"{duration_s:.6f}"]
    cmd += ["-map", "0:a:0", "-ac", "1", "-ar", str(sr), "-f", "f32le", "-acodec", "pcm_f32le", "-"]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AudioDecodeError(
            path, f"ffmpeg could not decode it ({msg[-1] if msg else 'exit ' + str(proc.returncode)})"
        )
    x = np.frombuffer(proc.stdout, dtype=np.float32).copy()
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def load(path: str | Path, start_s: float = 0.0, end_s: float | None = None, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``[start_s, end_s)`` of ``path`` to mono float32 at ``sr`` (the whole file by default)."""
    path = Path(path)
    _check_file(path)
    if end_s is not None and end_s <= start_s:
        return np.zeros(0, dtype=np.float32)
    info = _sf_info(path)
    if info is not None:
        import soundfile as sf

        start = int(round(start_s * info.samplerate))
        stop = None if end_s is None else int(round(end_s * info.samplerate))
        try:
            x, native_sr = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
        except Exception as e:  # truncated or damaged file
            raise AudioDecodeError(path, f"decoding failed ({type(e).__name__}: {e})") from None
        return _to_mono_16k(x, native_sr, sr)
    dur = None if end_s is None else end_s - start_s
    return _ffmpeg_pcm(path, start_s, dur, sr)


def stream(path: str | Path, block_s: float = 60.0, sr: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Decode a whole file as consecutive mono float32 blocks of ``block_s`` seconds: bounded memory."""
    path = Path(path)
    _check_file(path)
    cmd = [
        _ffmpeg(),
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(path),
        "-map",
        "0:a:0",
        "-ac",
        "1",
        "-ar",
        str(sr),
        "-f",
        "f32le",
        "-acodec",
        "pcm_f32le",
        "-",
    ]
    block_bytes = int(block_s * sr) * 4
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        while True:
            buf = proc.stdout.read(block_bytes)
            if not buf:
                break
            usable = len(buf) - len(buf) % 4
            yield np.frombuffer(buf[:usable], dtype=np.float32)
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        rc = proc.wait()
    if rc != 0:
        raise AudioDecodeError(path, f"ffmpeg could not decode it ({err.splitlines()[-1] if err else rc})")


@dataclass(frozen=True)
class ScanResult:
    """What a full streaming decode found: the true length and signal problems."""

    decoded_duration_s: float
    nonfinite_samples: int
    peak: float
    rms_dbfs: float


def scan(path: str | Path, block_s: float = 300.0) -> ScanResult:
    """Decode the whole file once, in blocks, and measure it (bounded memory for 3 h programmes)."""
    n = bad = 0
    peak = 0.0
    energy = 0.0
    for block in stream(path, block_s=block_s):
        if not block.size:
            continue
        e = float(np.dot(block, block))  # BLAS; a NaN/inf anywhere in the block makes this non-finite
        if not np.isfinite(e):
            finite = np.isfinite(block)
            bad += int(block.size - finite.sum())
            block = np.where(finite, block, 0.0).astype(np.float32)
            e = float(np.dot(block, block))
        n += block.size
        peak = max(peak, float(block.max()), -float(block.min()))
        energy += e
    rms = np.sqrt(energy / n) if n else 0.0
    rms_db = 20 * np.log10(rms) if rms > 0 else float("-inf")
    return ScanResult(n / SAMPLE_RATE, bad, peak, float(rms_db))


__all__ = ["SAMPLE_RATE", "AudioDecodeError", "AudioInfo", "ScanResult", "probe", "load", "stream", "scan"]
