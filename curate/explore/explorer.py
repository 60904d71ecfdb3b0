"""What the page asks a run: its overview, a variant's page of segments, one recording's timeline, a clip.

:class:`Explorer` is the one object the server holds. Every name a request carries is checked against the run
before anything is read: a variant must be one of :meth:`RunDir.variants`, a recording one of
``recordings.parquet``'s ids, and audio is decoded only from the path that ``recordings.parquet`` gives for
that id (never from a path in a request). A variant's columns are read as requests need them and kept in one
cache bounded in bytes (see :mod:`.columns`).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import manifest
from curate.explore import clips
from curate.explore.columns import ByteLRU, VariantColumns
from curate.explore.table import CONTAINS, Filter, VariantTable, columns_of
from curate.rundir import RunDir
from curate.schema import QUALITY_COLUMNS, SCHEMAS

RECORDING_FIELDS = ("recording_id", "audio_path", "duration_s", "title", "genre", "language", "published")
SCORE_KINDS = ("tags", "speakers")  # the saved frame scores a recording view draws as tracks
MAX_TRACK_POINTS = 2000
# the first is drawn when the page opens, asked together with the overview (app.js FIRST_HISTOGRAM)
HISTOGRAMS: dict[str, np.ndarray] = {
    "duration_s": np.array([*range(0, 31), np.inf], dtype=float),
    **{c: np.linspace(0, 1, 21) for c in QUALITY_COLUMNS if c.endswith("_ratio")},
    "snr_db": np.array([-np.inf, *range(-10, 61, 5), np.inf], dtype=float),
    "avg_logprob": np.array([-np.inf, *np.linspace(-2, 0, 11)], dtype=float),
}


class NotFound(LookupError):
    """A variant or recording the run does not have (the server answers 404)."""


def reason_class(reason: str | None) -> str:
    """A rejection reason without its particulars (``"music (mean score 0.81)"`` → ``"music"``); a closed-set
    reason (a short word) is returned as it is."""
    if not reason:
        return "unknown"
    head = re.split(r"\s*[(,:'\"\d]", reason, maxsplit=1)[0].strip()
    return head or reason


def histogram(values: np.ndarray, edges: np.ndarray) -> dict[str, Any]:
    v = values[np.isfinite(values)]
    counts, _ = np.histogram(v, bins=edges)
    shown = [None if not np.isfinite(e) else float(e) for e in edges]
    return {"edges": shown, "counts": counts.tolist(), "measured": int(v.size)}


def _track(t: np.ndarray, v: np.ndarray) -> list[list[float]]:
    """A score track as [time, value] points, max-pooled to at most :data:`MAX_TRACK_POINTS`."""
    if t.size > MAX_TRACK_POINTS:
        k = int(np.ceil(t.size / MAX_TRACK_POINTS))
        n = t.size // k * k
        t, v = t[:n:k], v[:n].reshape(-1, k).max(axis=1)
    return np.round(np.stack([t, v], axis=1), 3).tolist()


class Explorer:
    """A run directory as the page sees it (``shown``: the run as the user named it, e.g. its URL)."""

    def __init__(self, run_dir: str | Path, shown: str | None = None) -> None:
        self.run = RunDir(run_dir)
        self.shown = shown or str(run_dir)
        if not self.run.recordings.is_file():
            raise NotFound(f"{self.shown}: not a curate run directory (no recordings.parquet)")
        self.recordings = manifest.read_table(self.run.recordings, "recordings", columns=list(RECORDING_FIELDS))
        self._rec_row = {r: i for i, r in enumerate(self.recordings.column("recording_id").to_pylist())}
        self._variants = self.run.variants()
        self._tables: dict[str, VariantTable] = {}
        self._locks = {v: threading.Lock() for v in self._variants}
        self._lock = threading.RLock()  # the overview reads the rejected rows under it too
        self.cache = ByteLRU()  # every variant's columns, sort orders and masks read so far, bounded in bytes
        self._overview: dict[str, Any] | None = None
        self._stats: dict[str, Any] | None = None
        self._histograms: dict[str, dict[str, Any]] = {}
        self._rejected: pa.Table | None = None
        self.clips = clips.ClipCache()
        # at start, not in the first request: every variant's Parquet footers (no rows), and pandas, which
        # pyarrow imports on the first array it builds from Python or numpy objects (~0.5 s of CPU)
        import pandas  # noqa: F401

        for v in self._variants:
            self.variant(v)

    # -- names from requests, checked -----------------------------------------------------------------
    def variants(self) -> list[str]:
        from curate.stats import ordered

        return ordered(self._variants)

    def variant(self, name: str) -> VariantTable:
        """The variant's table (its files' footers read on first use, no rows); :class:`NotFound` for a name the
        run does not have."""
        if name not in self._locks:
            raise NotFound(f"no variant {name!r}; variants: {', '.join(self.variants())}")
        with self._locks[name]:
            if name not in self._tables:
                cols = VariantColumns(name, self.run.variant_dir(name), self.recordings, self.cache)
                self._tables[name] = VariantTable(cols, self.stats()["variants"].get(name, {}).get("hours"))
            return self._tables[name]

    def recording_row(self, recording_id: str) -> int:
        row = self._rec_row.get(recording_id)
        if row is None:
            raise NotFound(f"no recording {recording_id!r} in the run's {self.run.recordings.name}")
        return row

    def recording(self, recording_id: str) -> dict[str, Any]:
        return self.recordings.slice(self.recording_row(recording_id), 1).to_pylist()[0]

    # -- overview --------------------------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        with self._lock:
            if self._overview is None:
                self._overview = self._make_overview()
            return self._overview

    def stats(self) -> dict[str, Any]:
        """The run's stats.json as written (empty where the run has none); read once."""
        from curate.stats import load_stats

        with self._lock:
            if self._stats is None:
                try:
                    self._stats = load_stats(self.run.path)
                except FileNotFoundError:
                    self._stats = {"input_hours": 0.0, "variants": {}}
            return self._stats

    def _make_overview(self) -> dict[str, Any]:
        """The run's numbers without reading a variant's rows (stats.json; a variant it lacks is streamed)."""
        from curate.stats import compute_stats

        stats = self.stats()
        stats = {**stats, "variants": dict(stats["variants"])}
        missing = [v for v in self._variants if v not in stats["variants"]]
        if missing:
            stats["variants"].update(compute_stats(self.run.path, missing, stats["input_hours"] * 3600)["variants"])
        return {
            "run": self.shown,
            "input_hours": stats["input_hours"],
            "recordings": self.recordings.num_rows,
            "variants": [{"name": v, **stats["variants"].get(v, {})} for v in self.variants()],
            "rejections": self.rejections(),
            "histograms": list(HISTOGRAMS),
        }

    def histograms(self, column: str) -> dict[str, Any]:
        """``column``'s histogram per variant, reading only that column (kept for the table's filters)."""
        if column not in HISTOGRAMS:
            raise NotFound(f"no histogram of {column!r}; histograms: {', '.join(HISTOGRAMS)}")
        with self._lock:
            got = self._histograms.get(column)
        if got is None:
            got = {}
            for v in self.variants():
                got[v] = histogram(self.variant(v).columns.numpy(column), HISTOGRAMS[column])
            with self._lock:
                self._histograms[column] = got
        return got

    # -- a page of segments ----------------------------------------------------------------------------
    def page(self, variant: str, filters: tuple[Filter, ...] = (), sort: str | None = None, **kw: Any) -> dict:
        """One page of a variant's table (only the columns its filters and sort need are read)."""
        vt = self.variant(variant)
        return {"columns": columns_of(vt.schema), **vt.page(filters, sort, **kw)}

    # -- rejected cuts ---------------------------------------------------------------------------------
    def rejected(self) -> pa.Table:
        """Every stage's rejected rows (times, variant, stage, reason, ``score`` when the schema has it), with
        ``reason_class`` and ``_rec`` (the recording's row)."""
        with self._lock:
            if self._rejected is None:
                self._rejected = self._read_rejected()
            return self._rejected

    def _read_rejected(self) -> pa.Table:
        cols = ["recording_id", "start_s", "end_s", "duration_s", "variant", "stage", "reason"]
        cols += [c for c in ("score",) if c in SCHEMAS["rejected"].names]
        parts = [
            manifest.read_table(self.run.rejected_dir(s), "rejected", columns=cols) for s in self.run.rejected_stages()
        ]
        t = pa.concat_tables(parts) if parts else pa.schema([SCHEMAS["rejected"].field(c) for c in cols]).empty_table()
        coded = pc.dictionary_encode(t.column("reason")).combine_chunks()  # classify each distinct reason once
        classes = pa.array([reason_class(r) for r in coded.dictionary.to_pylist()], pa.string())
        t = t.append_column("reason_class", classes.take(coded.indices))
        rec = pc.index_in(t.column("recording_id"), value_set=self.recordings.column("recording_id"))
        return t.append_column("_rec", pc.fill_null(rec, -1).cast(pa.int32()))

    def rejections(self) -> list[dict[str, Any]]:
        """Hours and cuts per (stage, reason), most hours first."""
        t = self.rejected()
        if not t.num_rows:
            return []
        g = t.group_by(["stage", "reason_class"]).aggregate([("duration_s", "sum"), ("duration_s", "count")])
        rows = [
            {
                "stage": r["stage"],
                "reason": r["reason_class"],
                "hours": r["duration_s_sum"] / 3600,
                "cuts": r["duration_s_count"],
            }
            for r in g.to_pylist()
        ]
        return sorted(rows, key=lambda r: -r["hours"])

    # -- one recording ---------------------------------------------------------------------------------
    def recording_view(self, recording_id: str, variants: list[str] | None = None) -> dict[str, Any]:
        """Lanes (each variant's segments), cuts (rejected rows with reasons) and score tracks of a recording."""
        row = self.recording_row(recording_id)
        info = self.recording(recording_id)
        info.pop("audio_path")
        lanes = {}
        for v in variants or self.variants():
            t = self.variant(v).of_recording(recording_id).select(["segment_id", "start_s", "end_s", "speaker", "text"])
            lanes[v] = [
                [r["start_s"], r["end_s"], r["speaker"], (r["text"] or "")[:120], r["segment_id"]]
                for r in t.to_pylist()
            ]
        rej = self.rejected()
        mine = rej.filter(pc.equal(rej.column("_rec"), row)).drop_columns(["_rec"])
        cuts = sorted(mine.to_pylist(), key=lambda c: (c["start_s"], c["stage"]))
        tracks = {}
        for kind in SCORE_KINDS:
            frames = self.run.read_scores(kind, recording_id)
            if frames is None:
                continue
            mid = (frames.start_s + frames.end_s) / 2
            for name, v in frames.values.items():
                if name != "energy_db":
                    tracks[f"{kind}.{name}"] = _track(mid, v)
        return {"recording": info, "lanes": lanes, "cuts": cuts, "tracks": tracks}

    def recordings_of(self, limit: int = 5000) -> list[dict[str, Any]]:
        """The run's first ``limit`` recordings (id, title, duration), for the recording picker (a segment's
        "rec" link opens any recording)."""
        t = self.recordings.select(["recording_id", "title", "duration_s"]).slice(0, limit)
        return t.to_pylist()

    # -- audio -----------------------------------------------------------------------------------------
    def clip(self, recording_id: str, start_s: float, end_s: float) -> bytes:
        """WAV bytes of ``[start_s, end_s)`` of a recording of the run (at most :data:`clips.MAX_CLIP_S`)."""
        rec = self.recording(recording_id)
        start_s, end_s = clips.bounded(start_s, end_s, rec["duration_s"], clips.MAX_CLIP_S)
        return self.clips.wav(rec["audio_path"], start_s, end_s)

    def waveform(self, recording_id: str, start_s: float, end_s: float, n: int = 1000) -> dict[str, Any]:
        from curate import audio

        rec = self.recording(recording_id)
        start_s, end_s = clips.bounded(start_s, end_s, rec["duration_s"], clips.MAX_WAVE_S)
        lo, hi = clips.peaks(audio.load(rec["audio_path"], start_s, end_s), n)
        return {"start_s": start_s, "end_s": end_s, "min": lo, "max": hi}

    # -- selection -------------------------------------------------------------------------------------
    def selection_yaml(self, variant: str, filters: tuple[Filter, ...]) -> tuple[str, list[Filter]]:
        """A selection YAML that ``curate select`` reads and that keeps the rows the table's ``filters`` keep;
        also the filters it cannot say (``contains``: a page-only text search)."""
        import yaml

        from curate.export.select import parse_selection

        self.variant(variant)
        said = [f for f in filters if f.op != CONTAINS]
        left = [f for f in filters if f.op == CONTAINS]
        value = lambda f: list(f.value) if isinstance(f.value, tuple) else f.value  # noqa: E731
        where = [{"column": f.column, "op": f.op, **({} if f.value is None else {"value": value(f)})} for f in said]
        raw = {"name": f"explore-{variant}", "where": where}
        parse_selection(dict(raw), "explore")  # what curate select will do with it: refuse here, not there
        head = f"# curate select {self.shown} --variant {variant} --select THIS_FILE\n"
        if left:
            head += "# not expressible in a selection (page-only text search): "
            head += "; ".join(f"{f.column} contains {f.value!r}" for f in left) + "\n"
        return head + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), left


__all__ = ["Explorer", "NotFound", "histogram", "reason_class"]
