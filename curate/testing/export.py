"""A tiny, labelled run directory for export tests, the analysis notebook and the export benchmark.

``make_labelled_run`` builds a tone archive (:func:`curate.testing.make_archive`), runs ``pipelines/seq.yaml``
locally with short windows, and writes one more variant, ``seq-labelled``, whose segments carry text and
alternating speaker labels (written through :mod:`curate.manifest`, like any variant).

``make_messy_run`` is what a real archive hands the exports: a 44.1 kHz stereo WAV with a 110-character
recording id next to a 16 kHz mono FLAC, transcripts with punctuation, digits and U+FFFD, and segments
without text (variant ``seq-messy``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from curate import manifest, presets
from curate.rundir import RunDir

LABELLED = "seq-labelled"
MESSY = "seq-messy"
LONG_ID = "programme-" + "x" * 100  # segment ids of ≈ 125 characters
_MESSY_TEXTS = ('In 1999, 3.5% of viewers \ufffd said: "Don\'t!"', None, "Het is 21 graden…", "   ", "Goedenavond.")
_WORDS = ("goedenavond", "dames", "en", "heren", "het", "nieuws", "van", "vandaag", "weer", "sport")


def make_labelled_run(
    root: str | Path,
    n: int = 3,
    duration_s: float = 20.0,
    window_s: float = 5.0,
    genres: tuple[str, ...] = ("news", "sport", "drama"),
) -> Path:
    """``root/run`` (variants ``seq`` and ``seq-labelled``) from ``n`` recordings; returns the run dir."""
    from curate.config import load_pipeline
    from curate.runners import run_pipeline
    from curate.testing import make_archive, make_catalog

    root = Path(root)
    catalog = make_archive(root / "archive", n=n, duration_s=duration_s)
    # Vary genre and year so the notebook and the genre filters have something to show.
    import csv

    with open(catalog, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):
        r["genre"] = genres[i % len(genres)]
        r["published"] = f"{2018 + i % 3}-03-0{1 + i % 9}T20:00:00"
    make_catalog(catalog, rows)
    pipeline = presets.resolve("pipelines", "seq")
    pipe = load_pipeline(pipeline, [f"naive_segment.window_s={window_s}"])
    run_dir = root / "run"
    run_pipeline(pipe, catalog, run_dir, runner="local", verify_audio=False)
    segs = manifest.read_segments(RunDir(run_dir).variant_path("seq"))
    labelled = []
    for i, s in enumerate(segs):
        text = " ".join(_WORDS[(i + k) % len(_WORDS)] for k in range(3 + i % 3))
        labelled.append(dataclasses.replace(s, variant=LABELLED, text=text, speaker="AB"[i % 2]))
    manifest.write_records(RunDir(run_dir).variant_part(LABELLED, 0), labelled, "segments")
    return run_dir


def make_messy_run(root: str | Path, duration_s: float = 12.0, window_s: float = 3.0, dual_mono: bool = False) -> Path:
    """``root/run`` with variants ``seq`` and ``seq-messy`` (see the module docstring); returns the run dir.
    ``dual_mono``: the stereo WAV's channels are identical (one mono mix in both, as many broadcasts are)."""
    from curate.config import load_pipeline
    from curate.runners import run_pipeline
    from curate.testing import make_catalog, tone, write_audio

    root = Path(root)
    stereo = tone(duration_s, 44_100, 300, seed=1, channels=2)
    stereo[:, 1] = stereo[:, 0] if dual_mono else 0.5 * stereo[:, 1]  # channels differ: a downmix is visible
    write_audio(root / "archive" / "stereo.wav", stereo, 44_100)
    write_audio(root / "archive" / "mono.flac", tone(duration_s, 16_000, 200, seed=2), 16_000)
    rows = [
        {"recording_id": LONG_ID, "audio_path": "stereo.wav", "title": "Long", "language": "en"},
        {"recording_id": "mono", "audio_path": "mono.flac", "title": "Mono", "language": "nl"},
    ]
    catalog = make_catalog(root / "archive" / "catalog.csv", rows)
    pipe = load_pipeline(presets.resolve("pipelines", "seq"), [f"naive_segment.window_s={window_s}"])
    run_dir = root / "run"
    run_pipeline(pipe, catalog, run_dir, runner="local", verify_audio=False)
    segs = manifest.read_segments(RunDir(run_dir).variant_path("seq"))
    messy = [
        dataclasses.replace(
            s,
            variant=MESSY,
            text=_MESSY_TEXTS[i % len(_MESSY_TEXTS)],
            language="en" if s.recording_id == LONG_ID else "nl",
        )
        for i, s in enumerate(segs)
    ]
    manifest.write_records(RunDir(run_dir).variant_part(MESSY, 0), messy, "segments")
    return run_dir


__all__ = ["LABELLED", "LONG_ID", "MESSY", "make_labelled_run", "make_messy_run"]
