"""Factories for fake recordings, audio files and catalogs, used by tests, benchmarks and notebooks."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from curate.schema import Recording, Segment


def tone(
    duration_s: float, sr: int = 16_000, freq: float = 220.0, amp: float = 0.3, seed: int = 0, channels: int = 1
) -> np.ndarray:
    """A tone with a little noise: cheap, non-silent, deterministic audio."""
    t = np.arange(int(round(duration_s * sr))) / sr
    rng = np.random.default_rng(seed)
    x = amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    x = x.astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write_audio(path: str | Path, x: np.ndarray, sr: int = 16_000, subtype: str | None = None) -> Path:
    """Write with soundfile (wav/flac/ogg) or, for other suffixes (.mp3, .m4a, .opus), through ffmpeg."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".wav", ".flac", ".ogg"):
        sf.write(str(path), x, sr, subtype=subtype)
        return path
    tmp = path.with_suffix(".tmp.wav")
    sf.write(str(tmp), x, sr)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(tmp), str(path)], check=True)
    tmp.unlink()
    return path


def make_catalog(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    path = Path(path)
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path


def make_archive(
    root: str | Path, n: int = 4, duration_s: float = 65.0, sr: int = 16_000, fmt: str = "flac", **meta: Any
) -> Path:
    """``n`` tone recordings and a catalog.csv; returns the catalog path."""
    root = Path(root)
    rows = []
    for i in range(n):
        p = write_audio(root / "audio" / f"rec{i:03d}.{fmt}", tone(duration_s + i, sr, 200 + 20 * i, seed=i), sr)
        rows.append(
            {
                "recording_id": f"rec{i:03d}",
                "audio_path": str(p.relative_to(root)),
                "title": f"Programme {i}",
                "summary": f"Episode {i}",
                "genre": "news",
                "published": f"2020-01-{i + 1:02d}T20:00:00",
                "language": "nl",
                **meta,
            }
        )
    return make_catalog(root / "catalog.csv", rows)


def fake_recording(recording_id: str = "rec", duration_s: float = 120.0, **kw: Any) -> Recording:
    return Recording(
        recording_id=recording_id,
        audio_path=f"/archive/{recording_id}.flac",
        duration_s=duration_s,
        sample_rate=16_000,
        num_channels=1,
        **kw,
    )


def fake_segments(
    spans: list[tuple[float, float]],
    texts: list[str | None] | None = None,
    speakers: list[str | None] | None = None,
    recording_id: str = "rec",
    variant: str = "test",
) -> list[Segment]:
    texts = texts or [None] * len(spans)
    speakers = speakers or [None] * len(spans)
    return [
        Segment.new(recording_id, f"/archive/{recording_id}.flac", s, e, variant, text=t, speaker=spk)
        for (s, e), t, spk in zip(spans, texts, speakers, strict=True)
    ]
