"""``curate explore RUN --static DIR --sample N``: the page as files, opened from disk or shared.

The report holds the run's overview, ``N`` segments of every variant (a seeded sample, sortable and filterable
on the page) and ``N`` cuts of every rejection reason, each with its audio clip (Ogg/Opus under ``clips/``,
named by a counter, never by a recording id). Nothing in it asks a server: ``data.js`` sets
``window.CURATE_STATIC`` and the page answers from it. The recording timeline needs the live server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import audio, manifest
from curate.explore import clips
from curate.explore.explorer import Explorer
from curate.explore.server import ASSETS, asset, json_safe
from curate.explore.table import columns_of


def _sample(n_rows: int, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n_rows, size=min(n, n_rows), replace=False)) if n_rows else np.zeros(0, np.int64)


class _Clips:
    """Writes ``clips/NNNNN.ogg`` for spans of the run's recordings (paths from recordings.parquet)."""

    def __init__(self, explorer: Explorer, out_dir: Path) -> None:
        self.explorer, self.dir, self.count = explorer, out_dir / "clips", 0

    def __call__(self, recording_id: str, start_s: float, end_s: float) -> str | None:
        rec = self.explorer.recording(recording_id)
        try:
            a, b = clips.bounded(start_s, end_s, rec["duration_s"], clips.MAX_CLIP_S)
            data = clips.opus_bytes(audio.load(rec["audio_path"], a, b))
        except (ValueError, audio.AudioDecodeError):
            return None  # the row is shown without audio
        name = f"clips/{self.count:05d}.ogg"
        self.count += 1
        manifest.atomic_write_bytes(self.dir.parent / name, data)
        return name


def write_report(
    explorer: Explorer,
    out_dir: str | Path,
    sample: int = 20,
    seed: int = 0,
    progress: Callable[[str], Any] | None = None,
) -> Path:
    """Write the report to ``out_dir`` (created); returns its ``index.html``."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    clip = _Clips(explorer, out_dir)
    say = progress or (lambda _m: None)
    overview = json.loads(json.dumps(json_safe(explorer.overview())))  # a copy the samples are added to
    samples: dict[str, list[dict[str, Any]]] = {}
    columns: list[dict[str, str]] = []
    for v in explorer.variants():
        vt = explorer.variant(v)
        columns = columns or columns_of(vt.schema)
        rows = vt.take(_sample(len(vt), sample, rng)).drop_columns(["_rec"]).to_pylist()
        for r in rows:
            r["_clip"] = clip(r["recording_id"], r["start_s"], r["end_s"])
        samples[v] = rows
        say(f"report: {v}: {len(rows)} segments with clips")
    rej = explorer.rejected()
    for r in overview["rejections"]:
        mine = rej.filter(
            pc.and_(pc.equal(rej.column("stage"), r["stage"]), pc.equal(rej.column("reason_class"), r["reason"]))
        )
        cuts = mine.take(pa.array(_sample(mine.num_rows, sample, rng), pa.int64())).to_pylist()
        r["samples"] = [
            {
                "recording_id": c["recording_id"],
                "start_s": c["start_s"],
                "_clip": clip(c["recording_id"], c["start_s"], c["end_s"]),
            }
            for c in cuts
        ]
    say(f"report: {sum(len(r['samples']) for r in overview['rejections'])} cuts with clips")
    histograms = {c: explorer.histograms(c) for c in overview["histograms"]}
    data = {"overview": overview, "histograms": histograms, "samples": samples, "columns": columns}
    manifest.atomic_write_text(out_dir / "data.js", "window.CURATE_STATIC = " + json.dumps(json_safe(data)) + ";\n")
    for name in ASSETS:
        if name != "index.html":
            manifest.atomic_write_bytes(out_dir / "assets" / name, asset(name))
    html = asset("index.html").decode().replace("<!--STATIC:", '<script src="data.js"></script><!--')
    manifest.atomic_write_text(out_dir / "index.html", html)
    return out_dir / "index.html"


__all__ = ["write_report"]
