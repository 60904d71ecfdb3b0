"""A tiny, labelled run directory for export tests, the analysis notebook and the export benchmark.

``make_labelled_run`` builds a tone archive (:func:`curate.testing.make_archive`), runs ``pipelines/seq.yaml``
locally with short windows, and writes one more variant, ``seq-labelled``, whose segments carry text and
alternating speaker labels (written through :mod:`curate.manifest`, like any variant).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from curate import manifest, presets

LABELLED = "seq-labelled"
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
    segs = manifest.read_segments(run_dir / "variants" / "seq")
    labelled = []
    for i, s in enumerate(segs):
        text = " ".join(_WORDS[(i + k) % len(_WORDS)] for k in range(3 + i % 3))
        labelled.append(dataclasses.replace(s, variant=LABELLED, text=text, speaker="AB"[i % 2]))
    manifest.write_records(run_dir / "variants" / LABELLED / "part-00000.parquet", labelled, "segments")
    return run_dir


__all__ = ["LABELLED", "make_labelled_run"]
