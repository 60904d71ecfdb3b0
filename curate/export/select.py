"""Selection: which segments of a variant go to an export or a pre-training run, and how they split.

A selection is a small YAML spec (see ``configs/selection/``)::

    name: nl-news-10h
    seed: 0
    min_duration_s: 1.0          # duration bounds (inclusive)
    max_duration_s: 30.0
    where:                       # predicates on any segment or recording column, all must hold
      - "no_speech_prob < 0.6"
      - {column: avg_logprob, op: ">=", value: -1.0}
    genres: [news]               # recordings.parquet filters (null: no filter)
    exclude_genres: [commercial]
    languages: [nl]
    max_hours_per_speaker: 0.5   # caps, applied in a seeded, order-independent pseudo-random order
    max_hours_per_programme: 2   # programme = recordings' ``title`` (``programme_column``)
    cut_repeats: true            # drop segments overlapping repeated excerpts (``audio_dedup``'s repeats.parquet)
    max_hours: 10
    min_clean_score: 0.62        # an operating point of a clean variant (curate select --operating-point clean=95)
    split: {method: random, valid_pct: 5}     # or {method: median_per_recording}, or {method: none}

Everything is deterministic: the sampling order is a hash of (seed, segment_id), so the same spec on the
same variant selects the same segments whatever order the part files are read in. :func:`write_selection`
stores the spec and the resolved statistics (with a digest of the selected ids) next to an export.
"""

from __future__ import annotations

import hashlib
import logging
import operator
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from curate import manifest
from curate.errors import ConfigError
from curate.rundir import RunDir
from curate.yamlconf import load_yaml

log = logging.getLogger(__name__)

SPLIT_METHODS = ("none", "random", "median_per_recording")
_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_SET_OPS = ("in", "not in")
_NULL_OPS = ("is null", "not null")
_PRED_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s+(==|!=|<=|>=|<|>|not in|in|is null|not null)\s*(.*)$")
# Recording columns joined onto segments (prefixed ``recording_`` when a segment column has the same name).
RECORDING_COLUMNS = ("title", "genre", "published", "language", "duration_s", "summary")


@dataclass
class Split:
    method: str = "none"  # none | random | median_per_recording
    valid_pct: float = 0.0  # random: percentage of segments that go to validation


@dataclass
class Predicate:
    column: str
    op: str
    value: Any = None

    def mask(self, df: pd.DataFrame) -> pd.Series:
        if self.column not in df.columns:
            raise ConfigError(
                f"selection: predicate on unknown column '{self.column}'; columns: {', '.join(sorted(df.columns))}"
            )
        col = df[self.column]
        if self.op == "is null":
            return col.isna()
        if self.op == "not null":
            return col.notna()
        if self.op in _SET_OPS:
            hit = col.isin(list(self.value))
            return hit if self.op == "in" else ~hit & col.notna()
        return _OPS[self.op](col, self.value).fillna(False).astype(bool) & col.notna()


@dataclass
class Selection:
    name: str = "all"
    seed: int = 0
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    where: list[Any] = field(default_factory=list)
    genres: list[str] | None = None
    exclude_genres: list[str] | None = None
    languages: list[str] | None = None
    max_hours: float | None = None
    max_hours_per_speaker: float | None = None
    max_hours_per_programme: float | None = None
    programme_column: str = "title"
    cut_repeats: bool = False  # drop segments that overlap an excerpt audio_dedup found repeated (repeats.parquet)
    # keep segments whose clean score (curate.export.operating, from the run's frame scores) is at least this
    min_clean_score: float | None = None
    split: Split = field(default_factory=Split)

    def predicates(self) -> list[Predicate]:
        return [parse_predicate(p, f"selection '{self.name}': where[{i}]") for i, p in enumerate(self.where)]

    def validate(self) -> None:
        where = f"selection '{self.name}'"
        if self.split.method not in SPLIT_METHODS:
            raise ConfigError(f"{where}: split.method must be one of {SPLIT_METHODS}, got {self.split.method!r}")
        if not 0 <= self.split.valid_pct < 100:
            raise ConfigError(f"{where}: split.valid_pct must be in [0, 100), got {self.split.valid_pct}")
        for k in ("max_hours", "max_hours_per_speaker", "max_hours_per_programme", "min_duration_s"):
            v = getattr(self, k)
            if v is not None and v < 0:
                raise ConfigError(f"{where}: {k} must be >= 0, got {v}")
        if self.min_clean_score is not None and not 0 <= self.min_clean_score <= 1:
            raise ConfigError(f"{where}: min_clean_score must be in [0, 1], got {self.min_clean_score}")
        if (
            self.min_duration_s is not None
            and self.max_duration_s is not None
            and self.max_duration_s < self.min_duration_s
        ):
            raise ConfigError(f"{where}: max_duration_s < min_duration_s")
        self.predicates()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_predicate(spec: Any, where: str) -> Predicate:
    """``"col op value"`` (value parsed as YAML) or ``{column, op, value}``; no code is evaluated."""
    if isinstance(spec, str):
        m = _PRED_RE.match(spec)
        if not m:
            raise ConfigError(
                f"{where}: cannot parse {spec!r}; expected 'COLUMN OP VALUE' with OP one of "
                f"{', '.join([*_OPS, *_SET_OPS, *_NULL_OPS])}"
            )
        column, op, rest = m.groups()
        value = load_yaml(rest) if rest.strip() else None
    elif isinstance(spec, dict) and "column" in spec and "op" in spec:
        column, op, value = spec["column"], spec["op"], spec.get("value")
    else:
        raise ConfigError(f"{where}: expected 'COLUMN OP VALUE' or a mapping with column/op/value, got {spec!r}")
    if op not in _OPS and op not in _SET_OPS and op not in _NULL_OPS:
        raise ConfigError(f"{where}: unknown operator {op!r}")
    if op in _SET_OPS and not isinstance(value, list):
        raise ConfigError(f"{where}: '{op}' needs a list value, got {value!r}")
    if op in _OPS and value is None:
        raise ConfigError(f"{where}: '{op}' needs a value")
    return Predicate(str(column), op, value)


def parse_selection(raw: dict[str, Any] | None, origin: str = "<selection>") -> Selection:
    from curate.yamlconf import build_dataclass

    raw = dict(raw or {})
    split = build_dataclass(Split, dict(raw.pop("split", None) or {}), f"{origin}: split")
    sel = build_dataclass(Selection, raw, origin)
    sel.split = split
    sel.validate()
    return sel


def load_selection(path: str | Path | None = None, overrides: list[str] | None = None) -> Selection:
    """A selection YAML (or the empty selection) with ``key=value`` / ``split.key=value`` overrides."""
    raw: dict[str, Any] = {}
    origin = "<selection>"
    if path is not None:
        from curate import presets
        from curate.yamlconf import read_yaml_mapping

        raw = read_yaml_mapping(presets.locate("selection", path), "selection")
        origin = str(path)
    from curate.yamlconf import parse_set

    for key, parsed in parse_set(overrides, "KEY=VALUE or split.KEY=VALUE"):
        if key.startswith("split."):
            raw.setdefault("split", {})[key[6:]] = parsed
        else:
            raw[key] = parsed
    return parse_selection(raw, origin)


# ---------------------------------------------------------------------------------------------------
# Applying a selection


def load_segments(run_dir: str | Path, variant: str) -> pd.DataFrame:
    """A variant's segments joined with recording metadata (genre, title, published, …)."""
    run = RunDir(run_dir)
    seg = manifest.read_table(run.variant_dir(variant), "segments").to_pandas()
    recs = manifest.read_table(run.recordings, "recordings").to_pandas()
    cols = ["recording_id", *[c for c in RECORDING_COLUMNS if c in recs.columns]]
    recs = recs[cols].rename(columns={c: f"recording_{c}" if c in seg.columns else c for c in cols[1:]})
    df = seg.merge(recs, on="recording_id", how="left")
    # A segment without a language label takes its recording's.
    if "recording_language" in df.columns:
        df["language"] = df["language"].fillna(df["recording_language"])
    return df.sort_values(["recording_id", "start_s", "end_s"], kind="stable").reset_index(drop=True)


def seeded_order(ids: pd.Series, seed: int) -> np.ndarray:
    """A permutation that depends only on the ids' values and the seed (not on input order)."""
    keys = np.array(
        [int.from_bytes(hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest(), "big") for i in ids],
        dtype=np.uint64,
    )
    return np.lexsort((ids.to_numpy().astype(str), keys))


def _cap(df: pd.DataFrame, keys: pd.Series | None, cap_h: float, order: np.ndarray) -> np.ndarray:
    """Keep mask: walk segments in ``order``, keep each while its group's total stays within ``cap_h``."""
    cap = cap_h * 3600.0
    keep = np.zeros(len(df), dtype=bool)
    used: dict[Any, float] = {}
    dur = df["duration_s"].to_numpy()
    key_arr = keys.to_numpy() if keys is not None else None
    for i in order:
        k = key_arr[i] if key_arr is not None else None
        if used.get(k, 0.0) + dur[i] <= cap + 1e-9:
            used[k] = used.get(k, 0.0) + dur[i]
            keep[i] = True
    return keep


def _step(stats: list[dict[str, Any]], name: str, df: pd.DataFrame) -> None:
    stats.append({"step": name, "segments": len(df), "hours": float(df["duration_s"].sum()) / 3600.0})


def overlaps_repeats(df: pd.DataFrame, repeats: dict[str, list[tuple[float, float, str]]]) -> np.ndarray:
    """Mask of segments that overlap a repeated excerpt of their recording (``cut_repeats.load_repeats``)."""
    hit = np.zeros(len(df), dtype=bool)
    rows = zip(df["recording_id"], df["start_s"], df["end_s"], strict=True)
    for i, (rid, s, e) in enumerate(rows):
        hit[i] = any(a < e and s < b for a, b, _ in repeats.get(rid, ()))
    return hit


def apply_selection(
    df: pd.DataFrame, sel: Selection, repeats: dict[str, list[tuple[float, float, str]]] | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Filter, cap and split; returns (selected rows with a ``split`` column train/valid, resolved stats).
    ``repeats``: the run's repeated excerpts, dropped when ``sel.cut_repeats``."""
    steps: list[dict[str, Any]] = []
    _step(steps, "input", df)
    if sel.cut_repeats:
        df = df[~overlaps_repeats(df, repeats or {})]
        _step(steps, "cut_repeats", df)
    if sel.min_duration_s is not None:
        df = df[df["duration_s"] >= sel.min_duration_s]
    if sel.max_duration_s is not None:
        df = df[df["duration_s"] <= sel.max_duration_s]
    _step(steps, "duration", df)
    if sel.min_clean_score is not None:
        if "clean_score" not in df.columns:
            raise ConfigError(f"selection '{sel.name}': min_clean_score needs the segments' clean_score column")
        df = df[(df["clean_score"] >= sel.min_clean_score).to_numpy()]
        _step(steps, "min_clean_score", df)
    for p in sel.predicates():
        df = df[p.mask(df).to_numpy()]
        _step(steps, f"where {p.column} {p.op} {'' if p.value is None else p.value}".strip(), df)
    if sel.genres is not None or sel.exclude_genres is not None:
        genre = df["genre"] if "genre" in df.columns else pd.Series([None] * len(df), index=df.index)
        keep = np.ones(len(df), dtype=bool)
        if sel.genres is not None:
            keep &= genre.isin(sel.genres).to_numpy()
        if sel.exclude_genres:
            keep &= ~genre.isin(sel.exclude_genres).to_numpy()
        df = df[keep]
        _step(steps, "genre", df)
    if sel.languages is not None:
        df = df[df["language"].isin(sel.languages).to_numpy()]
        _step(steps, "language", df)
    df = df.reset_index(drop=True)
    order = seeded_order(df["segment_id"], sel.seed)
    if sel.max_hours_per_speaker is not None:
        # Speaker labels are recording-scoped; unlabelled segments count as one speaker per recording.
        spk = df["recording_id"] + "/" + df["speaker"].fillna("<unlabelled>")
        df = df[_cap(df, spk, sel.max_hours_per_speaker, order)].reset_index(drop=True)
        order = seeded_order(df["segment_id"], sel.seed)
        _step(steps, "max_hours_per_speaker", df)
    if sel.max_hours_per_programme is not None:
        col = sel.programme_column
        if col not in df.columns:
            raise ConfigError(f"selection '{sel.name}': programme_column '{col}' is not a column")
        prog = df[col].fillna(df["recording_id"]).astype(str)
        df = df[_cap(df, prog, sel.max_hours_per_programme, order)].reset_index(drop=True)
        order = seeded_order(df["segment_id"], sel.seed)
        _step(steps, "max_hours_per_programme", df)
    if sel.max_hours is not None:
        df = df[_cap(df, None, sel.max_hours, order)].reset_index(drop=True)
        _step(steps, "max_hours", df)
    df = df.assign(split=split_labels(df, sel))
    df = df.sort_values(["recording_id", "start_s", "end_s"], kind="stable").reset_index(drop=True)
    stats: dict[str, Any] = {"steps": steps}
    for name in ("train", "valid"):
        part = df[df["split"] == name]
        stats[name] = {
            "segments": len(part),
            "hours": float(part["duration_s"].sum()) / 3600.0,
            "recordings": int(part["recording_id"].nunique()),
            "ids_sha256": hashlib.sha256("\n".join(sorted(part["segment_id"])).encode()).hexdigest(),
        }
    return df, stats


def split_labels(df: pd.DataFrame, sel: Selection) -> np.ndarray:
    labels = np.full(len(df), "train", dtype=object)
    if sel.split.method == "random" and sel.split.valid_pct > 0 and len(df):
        # Split by a second hash so the split does not correlate with the cap order.
        u = np.array(
            [
                int.from_bytes(hashlib.blake2b(f"split:{sel.seed}:{i}".encode(), digest_size=8).digest(), "big") / 2**64
                for i in df["segment_id"]
            ]
        )
        labels[u < sel.split.valid_pct / 100.0] = "valid"
    elif sel.split.method == "median_per_recording":
        for _, g in df.groupby("recording_id", sort=True):
            if len(g) < 2:  # a recording's only segment stays in training
                continue
            g = g.sort_values(["duration_s", "segment_id"], kind="stable")
            labels[df.index.get_loc(g.index[(len(g) - 1) // 2])] = "valid"
    return labels


def select(
    run_dir: str | Path, variant: str, sel: Selection | None = None, segments: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Load a variant of a run and apply a selection (the whole variant, all train, by default). ``segments``: the
    variant as :func:`load_segments` returns it (with ``clean_score`` when known), not to read it again."""
    sel = sel or Selection()
    repeats = None
    if sel.cut_repeats:
        from curate.stages.cut_repeats import load_repeats

        repeats = load_repeats(RunDir(run_dir))
    df = load_segments(run_dir, variant) if segments is None else segments
    needs_score = sel.min_clean_score is not None or any(p.column == "clean_score" for p in sel.predicates())
    if needs_score and "clean_score" not in df.columns:
        from curate.export.operating import add_clean_scores

        df = add_clean_scores(df, RunDir(run_dir))
    df, stats = apply_selection(df, sel, repeats)
    stats.update(run_dir=str(Path(run_dir).resolve()), variant=variant, selection=sel.name, seed=sel.seed)
    return df, stats


def write_selection(out_dir: str | Path, sel: Selection, stats: dict[str, Any]) -> None:
    """``selection.yaml`` (the spec, reloadable with :func:`load_selection`) + ``selection.json`` (stats)."""
    out_dir = Path(out_dir)
    manifest.atomic_write_text(out_dir / "selection.yaml", yaml.safe_dump(sel.to_dict(), sort_keys=False))
    manifest.write_json(out_dir / "selection.json", stats)


__all__ = [
    "SPLIT_METHODS",
    "Predicate",
    "Selection",
    "Split",
    "apply_selection",
    "load_segments",
    "load_selection",
    "parse_predicate",
    "parse_selection",
    "seeded_order",
    "select",
    "write_selection",
]
