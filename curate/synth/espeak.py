"""The one espeak-ng wrapper: text → speech at espeak's native 22.05 kHz, or at 16 kHz for the pipeline."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ESPEAK_RATE = 22_050  # espeak-ng always writes 22.05 kHz WAV


def require_tool(name: str, apt_package: str) -> str:
    """Return the executable's path, or fail with the package to install."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"`{name}` is needed to build the demo archive but is not on PATH; "
            f"install it with `apt-get install {apt_package}`."
        )
    return path


def available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak_native(
    text: str, voice: str = "en", pitch: int = 50, speed: int = 160, workdir: str | Path | None = None
) -> np.ndarray:
    """``text`` spoken by espeak-ng ``voice`` as float32 at :data:`ESPEAK_RATE`. ``workdir``: where the
    temporary WAV goes (default: a fresh temporary directory)."""
    import soundfile as sf

    exe = require_tool("espeak-ng", "espeak-ng")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        wav = Path(tmp) / "s.wav"
        cmd = [exe, "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(wav), text]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        audio, rate = sf.read(wav, dtype="float32")
    if rate != ESPEAK_RATE or audio.size == 0:
        raise RuntimeError(f"espeak-ng produced unexpected output for voice {voice}: {audio.size} samples at {rate} Hz")
    return audio


def speak(text: str, voice: str = "en", pitch: int = 50, speed: int = 160) -> np.ndarray:
    """``text`` spoken by espeak-ng as 16 kHz mono float32 (the pipeline's rate)."""
    import soxr

    from curate.audio import SAMPLE_RATE

    return soxr.resample(speak_native(text, voice, pitch, speed), ESPEAK_RATE, SAMPLE_RATE).astype(np.float32)


__all__ = ["ESPEAK_RATE", "available", "require_tool", "speak", "speak_native"]
