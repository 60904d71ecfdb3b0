"""Generated speech for tests, benchmarks and the demo: espeak-ng sentences (varied voice, pitch, speed)
joined into "recordings", with a run-directory variant whose segments are views into them.
Falls back to pitch-varied tones when espeak-ng is not installed. ``real_speech_run`` builds the same kind of
run directory from the real recordings of ../shared/data/realaudio."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np

from curate.rundir import RunDir
from curate.synth import espeak

WORDS = [
    "the",
    "archive",
    "holds",
    "many",
    "hours",
    "of",
    "broadcast",
    "speech",
    "from",
    "radio",
    "and",
    "television",
    "programmes",
    "recorded",
    "over",
    "decades",
    "news",
    "reports",
    "interviews",
    "debates",
    "weather",
    "forecasts",
    "and",
    "sports",
    "commentary",
    "in",
    "many",
    "voices",
]
VOICES = ("en", "nl", "de", "en-us", "fr")


def utterance(rng: np.random.Generator) -> np.ndarray:
    words = " ".join(rng.choice(WORDS, size=int(rng.integers(4, 14))))
    if espeak.available():
        return espeak.speak(words, str(rng.choice(VOICES)), int(rng.integers(20, 80)), int(rng.integers(120, 200)))
    from curate.testing import tone

    return tone(float(rng.uniform(1.0, 4.0)), freq=float(rng.uniform(100, 300)), seed=int(rng.integers(1 << 30)))


def make_speech_run(
    root: str | Path, recordings: int = 4, per_recording: int = 8, variant: str = "speech", seed: int = 0
) -> Path:
    """A run directory ``root`` with ``variant`` = one segment per generated utterance; returns ``root``."""
    from curate import manifest
    from curate.schema import Recording, Segment
    from curate.testing import write_audio

    root = Path(root)
    rng = np.random.default_rng(seed)
    segments, recs = [], []
    gap = np.zeros(4800, dtype=np.float32)  # 0.3 s between utterances
    for r in range(recordings):
        parts, spans, t = [], [], 0
        for _ in range(per_recording):
            u = utterance(rng)
            spans.append((t / 16000, (t + u.size) / 16000))
            parts += [u, gap]
            t += u.size + gap.size
        path = write_audio(root / "audio" / f"rec{r:03d}.flac", np.concatenate(parts), subtype="PCM_16")
        segments += [Segment.new(f"rec{r:03d}", str(path.resolve()), s, e, variant) for s, e in spans]
        recs.append(Recording(f"rec{r:03d}", str(path.resolve()), t / 16000, 16000, 1, language="en"))
    manifest.write_records(RunDir(root).recordings, recs, "recordings")
    manifest.write_records(RunDir(root).variant_part(variant, 0), segments, "segments")
    return root


def real_speech_run(
    realaudio: str | Path, root: str | Path, variant: str = "speech", chunk_s: float = 10.0
) -> Path | None:
    """A run directory ``root`` whose ``variant`` holds every speech and conversation clip of ``realaudio``
    (../shared/data/realaudio: INVENTORY.csv + flac/) as segments, views into the FLAC files: a speaker's clips
    form one "recording", a conversation is cut into ≤ ``chunk_s`` views, so the thesis's split (one
    median-length segment per recording with ≥ 2) holds out whole unseen utterances. None when absent."""
    realaudio, root = Path(realaudio), Path(root)
    inventory = realaudio / "INVENTORY.csv"
    if not inventory.exists():
        return None
    from curate import manifest
    from curate.schema import Segment

    with inventory.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["content_type"] in ("speech", "conversation")]
    segments = []
    for r in rows:
        path = realaudio / "flac" / f"{r['id']}.flac"
        if not path.exists():
            continue
        dur = float(r["flac_duration_s"])
        if r["content_type"] == "speech":  # a speaker's clips form one "recording"
            spk = r["speaker_id"].strip()
            rec = f"spk:{spk}" if spk and spk not in ("unknown", "?") else f"clip:{r['id']}"
            segments.append(Segment.new(rec, str(path.resolve()), 0.0, dur, variant))
        else:  # a conversation: ≤ chunk_s views of one recording
            k = max(1, round(dur / chunk_s))
            edges = [dur * i / k for i in range(k + 1)]
            segments += [
                Segment.new(f"clip:{r['id']}", str(path.resolve()), a, b, variant) for a, b in itertools.pairwise(edges)
            ]
    if not segments:
        return None
    manifest.write_records(RunDir(root).variant_part(variant, 0), segments, "segments")
    return root
