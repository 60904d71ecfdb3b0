"""Writing the demo archive's files: audio at a programme's format and rate, RTTM references, atomic text."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from curate.quality import Region


def write_audio(path: Path, audio: np.ndarray, prog: Any, ffmpeg: str) -> None:
    """Write at the programme's rate and format, 10 s at a time so a long stereo file is never copied whole.

    Stereo gets a right channel that is the mono mix, 8 samples later and quieter: not identical channels.
    """
    lagged = np.concatenate([np.zeros(8, np.float32), audio[:-8] * np.float32(0.85)]) if prog.channels == 2 else None
    step = 10 * prog.sample_rate
    blocks = (
        np.stack([audio[a : a + step], lagged[a : a + step]], axis=1) if lagged is not None else audio[a : a + step]
        for a in range(0, audio.size, step)
    )
    if prog.fmt in ("wav", "flac"):
        with sf.SoundFile(path, "w", prog.sample_rate, prog.channels, "PCM_16", format=prog.fmt.upper()) as f:
            for block in blocks:
                f.write(block)
        return
    # fmt: off
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "f32le", "-ar", str(prog.sample_rate),
           "-ac", str(prog.channels), "-i", "-", "-c:a", "libmp3lame", "-b:a", "128k", "-compression_level", "7",
           "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact", str(path)]  # same bytes every build
    # fmt: on
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdin is not None and proc.stderr is not None  # for the type checker: both are pipes
        try:
            for block in blocks:
                proc.stdin.write(np.ascontiguousarray(block, np.float32).tobytes())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # ffmpeg stopped reading; its message below says why
        err = proc.stderr.read().decode(errors="replace")
    if proc.returncode:
        raise RuntimeError(f"ffmpeg could not write {path} (exit {proc.returncode}): {err.strip()}")


def write_rttm(path: Path, recording_id: str, regions: list[Region]) -> None:
    lines = [
        f"SPEAKER {recording_id} 1 {r.start_s:.3f} {r.end_s - r.start_s:.3f} <NA> <NA> {who} <NA> <NA>\n"
        for r in regions
        if r.kind == "speech"
        for who in (r.speaker, r.other_speaker)
        if who
    ]
    atomic_write(path, "".join(lines))


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
