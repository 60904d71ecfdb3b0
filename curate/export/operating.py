"""Operating points of a clean variant: how clean what you keep is, against how much of it you keep.

Every segment of a run with saved frame scores (``scores/tags``, ``scores/speakers``) gets a **clean score** in
[0, 1] (:func:`clean_scores`): the time-weighted mean, over the segment, of the tagger's speech score times one
minus its strongest music / sung music / noise score, times one minus the mean overlap score, times one minus the
strongest speaker-turn evidence inside it. Keeping the segments whose score passes a threshold traces an
operating curve (:func:`curve`), one point per distinct score, from the cleanest segment alone to the whole
variant:

- without a reference, each point says what share of the variant's hours it keeps (``kept_pct``) and the mean
  clean score of that time: choose the fraction to keep (``kept=80``) or the threshold itself (``score=0.7``);
- with a reference timeline of (a labelled sample of) the run, each point also carries the measured clean
  single-speaker share of the kept time, music, sung music, segments with two speakers and the share of all the
  reference's clean speech kept: choose the clean share (``clean=95``), optionally with a floor on the kept
  share (``clean=95,kept=60``).

:func:`choose` picks the point that meets the request and keeps the most; an unreachable request is a
:class:`~curate.errors.ConfigError` that says what the curve can reach. The point becomes a selection's
``min_clean_score`` (:mod:`curate.export.select`). This curve filters a variant's segments as they are; ``curate
quality`` traces another, re-deriving the variant over ``clean_trim.music`` (:mod:`curate.calibrate`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from curate.errors import ConfigError
from curate.rundir import RunDir

EDGE_S = 0.3  # turn evidence this close to a segment's edge does not count (the stages' ``edge_s``)
_GOAL_RE = re.compile(r"^\s*(clean|kept|score)\s*=\s*([0-9.]+)\s*%?\s*$")


@dataclass(frozen=True)
class Goal:
    """What an operating point must meet: measured clean single-speaker % (needs a reference), % of the
    variant's hours kept, or the clean-score threshold itself."""

    clean_pct: float | None = None
    kept_pct: float | None = None
    score: float | None = None

    def __str__(self) -> str:
        pairs = (("clean", self.clean_pct), ("kept", self.kept_pct), ("score", self.score))
        return ",".join(f"{k}={v:g}" for k, v in pairs if v is not None)


@dataclass(frozen=True)
class Point:
    """Keep the segments with ``clean_score >= threshold``. The measured columns are ``None`` without a reference."""

    threshold: float
    segments: int
    hours: float
    kept_pct: float  # share of the variant's hours kept
    mean_score: float  # hours-weighted mean clean score of the kept segments
    clean_single_pct: float | None = None  # measured: clean speech of each segment's main speaker, % of kept time
    clean_recall_pct: float | None = None  # measured: share of the reference's clean speech kept
    music_pct: float | None = None
    sung_pct: float | None = None
    multi_speaker_pct: float | None = None  # segments with a second speaker

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_goal(text: str) -> Goal:
    """``clean=95``, ``kept=80``, ``score=0.7`` or ``clean=95,kept=60`` (percentages; a trailing % is allowed)."""
    found: dict[str, float] = {}
    for part in [p for p in text.split(",") if p.strip()]:
        m = _GOAL_RE.match(part)
        if not m:
            raise ConfigError(
                f"operating point {text!r}: expected clean=PCT, kept=PCT or score=X (e.g. clean=95, kept=80, "
                "clean=95,kept=60, score=0.7)"
            )
        found[m.group(1)] = float(m.group(2))
    if not found:
        raise ConfigError("operating point: empty; give clean=PCT, kept=PCT or score=X")
    for k in ("clean", "kept"):
        if k in found and not 0 < found[k] <= 100:
            raise ConfigError(f"operating point: {k}={found[k]:g} must be a percentage in (0, 100]")
    if "score" in found and not 0 <= found["score"] <= 1:
        raise ConfigError(f"operating point: score={found['score']:g} must be in [0, 1]")
    if "score" in found and len(found) > 1:
        raise ConfigError("operating point: score=X fixes the threshold; it combines with neither clean= nor kept=")
    return Goal(found.get("clean"), found.get("kept"), found.get("score"))


# ---------------------------------------------------------------------------------------------------
# The clean score of segments, from a recording's saved frame scores


def _integral(a: np.ndarray, b: np.ndarray, v: np.ndarray, t: np.ndarray) -> np.ndarray:
    """∫ from a[0] to t of the step function that is v[i] on the cell [a[i], b[i]) (cells tile [a[0], b[-1]))."""
    cum = np.concatenate([[0.0], np.cumsum(v * (b - a))])
    t = np.clip(t, a[0], b[-1])
    i = np.clip(np.searchsorted(a, t, side="right") - 1, 0, len(a) - 1)
    return cum[i] + v[i] * (t - a[i])


def _mean_over(frames: Any, values: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    from curate.stages.clean import cells

    a, b = cells(frames)
    width = np.maximum(e - s, 1e-9)
    return (_integral(a, b, values, e) - _integral(a, b, values, s)) / width


def clean_scores(spans: Sequence[tuple[float, float]], tags: Any, speakers: Any, edge_s: float = EDGE_S) -> np.ndarray:
    """The clean score of each ``(start_s, end_s)`` span of one recording from its ``tags`` and ``speakers``
    :class:`~curate.schema.Frames` (either may be ``None``: its factors are then 1; both ``None``: NaN)."""
    s = np.asarray([x[0] for x in spans], float)
    e = np.asarray([x[1] for x in spans], float)
    if tags is None and speakers is None:
        return np.full(len(s), np.nan)
    score = np.ones(len(s))
    if len(s) == 0:
        return score
    if tags is not None and len(tags):
        from curate.stages.clean import score_of

        dirt = np.maximum(score_of(tags, "music"), np.asarray(tags.values["noise"], float))
        score *= np.clip(_mean_over(tags, np.asarray(tags.values["speech"], float) * (1 - dirt), s, e), 0, 1)
    if speakers is not None and len(speakers):
        from curate.stages.clean import cells

        score *= np.clip(1 - _mean_over(speakers, np.asarray(speakers.values["overlap"], float), s, e), 0, 1)
        a, b = cells(speakers)
        mid, change = (a + b) / 2, np.asarray(speakers.values["change"], float)
        for k in range(len(s)):
            inside = (mid > s[k] + edge_s) & (mid < e[k] - edge_s)
            if inside.any():
                score[k] *= 1 - float(np.clip(change[inside].max(), 0, 1))
    return score


def add_clean_scores(df: pd.DataFrame, run: RunDir) -> pd.DataFrame:
    """``df`` (segments: recording_id, start_s, end_s) with a ``clean_score`` column from the run's saved frame
    scores; a run without them is a :class:`ConfigError` that says how to make them."""
    out = np.full(len(df), np.nan)
    for rid, idx in df.groupby("recording_id", sort=False).indices.items():
        tags, speakers = run.read_scores("tags", rid), run.read_scores("speakers", rid)
        spans = list(zip(df["start_s"].to_numpy()[idx], df["end_s"].to_numpy()[idx], strict=True))
        out[idx] = clean_scores(spans, tags, speakers)
    if len(df) and np.isnan(out).all():
        raise ConfigError(
            f"{run.path}: no frame scores under scores/ for this variant's recordings, so its segments have no clean "
            "score; run a pipeline with the tags pass (tag_events / tag_speakers, pipelines/clean.yaml) first"
        )
    return df.assign(clean_score=out)


# ---------------------------------------------------------------------------------------------------
# The curve and the choice


def _contributions(df: pd.DataFrame, reference: dict[str, Sequence[Any]]) -> tuple[pd.DataFrame, float]:
    """Per segment, the seconds it adds to each measured column (segments of a clean variant do not overlap, so
    they add up), and the reference's clean speech in all (the recall denominator)."""
    from curate.quality import evaluate_segments

    rows = []
    for rid, s, e in zip(df["recording_id"], df["start_s"], df["end_s"], strict=True):
        regions = reference.get(rid)
        if regions is None:  # outside the labelled sample: unmeasured
            rows.append((np.nan, np.nan, np.nan, np.nan, np.nan))
            continue
        q = evaluate_segments([(rid, s, e)], {rid: regions})
        d = e - s
        ref_clean = sum(r.end_s - r.start_s for r in regions if r.kind == "speech" and not r.background)
        rows.append(
            (
                q.clean_single_pct * d / 100,
                q.music_pct * d / 100,
                q.sung_pct * d / 100,
                float(q.multi_speaker_pct > 0),
                q.clean_recall_pct * ref_clean / 100,
            )
        )
    cols = ["single_s", "music_s", "sung_s", "mixed", "clean_kept_s"]
    total_clean = sum(
        r.end_s - r.start_s
        for regions in reference.values()
        for r in regions
        if r.kind == "speech" and not r.background
    )
    return pd.DataFrame(rows, columns=cols, index=df.index), total_clean


def curve(df: pd.DataFrame, reference: dict[str, Sequence[Any]] | None = None, max_points: int = 2000) -> list[Point]:
    """One point per distinct clean score, highest threshold first (``df`` needs ``clean_score``, ``duration_s``;
    with a ``reference``, also ``recording_id``, ``start_s``, ``end_s``). Segments without a score never pass.
    More than ``max_points`` distinct scores (a large archive): the last point in each ``1/max_points`` of the
    hours, and the first."""
    df = df[df["clean_score"].notna()]
    total_h = float(df["duration_s"].sum()) / 3600 if len(df) else 0.0
    if not len(df) or total_h <= 0:
        return []
    df = df.sort_values(["clean_score", *(["segment_id"] if "segment_id" in df else [])], ascending=False)
    dur = df["duration_s"].to_numpy(float)
    score = df["clean_score"].to_numpy(float)
    cum_s, cum_w = np.cumsum(dur), np.cumsum(dur * score)
    measured = None
    if reference is not None:
        parts, total_clean = _contributions(df, reference)
        n_ref = np.cumsum(parts["single_s"].notna().to_numpy())
        cum_ref = np.cumsum(np.where(parts["single_s"].notna(), dur, 0.0))
        measured = {c: np.cumsum(parts[c].fillna(0).to_numpy()) for c in parts.columns}
    ends = np.flatnonzero(np.r_[score[1:] != score[:-1], True])  # the last segment of each run of equal scores
    if len(ends) > max_points:  # a large archive: the last point of each 1/max_points of the hours, and the first
        share = np.floor(cum_s[ends] / cum_s[-1] * max_points)
        ends = ends[np.r_[True, share[1:-1] != share[2:], True]]
    out = []
    for i in ends:
        kw: dict[str, Any] = {}
        if measured is not None and n_ref[i] > 0:
            pct = 100 / cum_ref[i]
            kw = {
                "clean_single_pct": measured["single_s"][i] * pct,
                "music_pct": measured["music_s"][i] * pct,
                "sung_pct": measured["sung_s"][i] * pct,
                "multi_speaker_pct": 100 * measured["mixed"][i] / n_ref[i],
                "clean_recall_pct": 100 * measured["clean_kept_s"][i] / total_clean if total_clean else 0.0,
            }
        out.append(
            Point(
                float(score[i]), int(i + 1), cum_s[i] / 3600, 100 * cum_s[i] / 3600 / total_h, cum_w[i] / cum_s[i], **kw
            )
        )
    return out


def choose(points: Sequence[Point], goal: Goal, variant: str = "the variant") -> Point:
    """The point that meets ``goal`` and keeps the most (``kept=`` alone: the least that keeps that share)."""
    if not points:
        raise ConfigError(f"{variant}: no segment with a clean score, so no operating curve")
    if goal.score is not None:
        ok = [p for p in points if p.threshold >= goal.score]
        if not ok:
            raise ConfigError(
                f"{variant}: score={goal.score:g} is unreachable: no segment scores that high (highest "
                f"{points[0].threshold:.3f})"
            )
        return ok[-1]
    if goal.clean_pct is None:  # kept= alone: the highest threshold that keeps at least that share
        return next(p for p in points if p.kept_pct >= goal.kept_pct - 1e-9)
    if points[0].clean_single_pct is None:
        raise ConfigError(
            f"{variant}: clean={goal.clean_pct:g} is measured against a reference timeline: give --reference "
            "ground_truth.json (a labelled sample of the run), or choose without one by the share to keep (kept=80) "
            "or the clean-score threshold (score=0.7)"
        )
    meets = [p for p in points if p.clean_single_pct is not None and p.clean_single_pct >= goal.clean_pct]
    if goal.kept_pct is not None:
        meets = [p for p in meets if p.kept_pct >= goal.kept_pct - 1e-9]
    if not meets:
        best = max(  # the cleanest point, and of those the one that keeps the most
            (p for p in points if p.clean_single_pct is not None), key=lambda p: (p.clean_single_pct, p.kept_pct)
        )
        at = [p for p in points if p.kept_pct >= (goal.kept_pct or 0) - 1e-9]
        floor = max(at, key=lambda p: p.clean_single_pct or 0.0) if at else best
        raise ConfigError(
            f"{variant}: operating point {goal} is unreachable: the cleanest point is {best.clean_single_pct:.1f} % "
            f"clean single-speaker speech (keeping {best.kept_pct:.1f} % of the hours, {best.segments} segments, "
            f"clean_score >= {best.threshold:.4f})"
            + (
                f"; keeping at least {goal.kept_pct:g} % reaches {floor.clean_single_pct:.1f} % at best"
                if goal.kept_pct is not None
                else ""
            )
            + "; ask for less, or clean the variant harder (curate calibrate, curate derive --set clean_trim.…)"
        )
    return meets[-1]


def format_curve(variant: str, points: Sequence[Point], chosen: Point | None = None, rows: int = 11) -> str:
    """A Markdown table of the curve at about ``rows`` evenly spaced kept shares (and the chosen point, marked)."""
    if not points:
        return f"operating curve of {variant}: no segment has a clean score\n"
    marks = np.linspace(100 / rows, 100, rows)
    idx = sorted({next(i for i, p in enumerate(points) if p.kept_pct >= m - 1e-9) for m in marks})
    if chosen is not None and chosen in points:
        idx = sorted({*idx, points.index(chosen)})
    measured = points[0].clean_single_pct is not None
    head = "| clean_score ≥ | segments | hours | kept % of hours | mean clean score |"
    if measured:
        head += " clean 1-spk % | music % | sung % | >1 speaker % | clean kept % |"
    lines = [
        f"operating curve of {variant} (segments kept by their clean score; "
        + ("measured against the reference):" if measured else "no reference: scores only):"),
        head,
        "|" + "---:|" * (5 + 5 * measured),
    ]
    for i in idx:
        p = points[i]
        row = f"| {p.threshold:.4f} | {p.segments} | {p.hours:.3f} | {p.kept_pct:.1f} | {p.mean_score:.3f} |"
        if measured:
            row += " " + " | ".join("–" if v is None else f"{v:.1f}" for v in _measured(p)) + " |"
        lines.append(row + (" ← chosen" if p is chosen else ""))
    return "\n".join(lines) + "\n"


def _measured(p: Point) -> tuple[float | None, ...]:
    return p.clean_single_pct, p.music_pct, p.sung_pct, p.multi_speaker_pct, p.clean_recall_pct


def variant_curve(
    run_dir: Any,
    variant: str,
    reference: dict[str, Sequence[Any]] | None = None,
    segments: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, list[Point]]:
    """A variant's segments with their clean scores, and its operating curve (measured on the recordings the run
    kept that the reference has, when one is given). ``segments``: the variant's segments already loaded (e.g. by
    :func:`curate.export.select.load_segments`, to hand them on to ``select``)."""
    from curate import manifest

    run = RunDir(run_dir)
    if segments is None:
        cols = ["segment_id", "recording_id", "start_s", "end_s", "duration_s"]
        segments = manifest.read_table(run.variant_dir(variant), "segments", columns=cols).to_pandas()
    df = segments if "clean_score" in segments.columns else add_clean_scores(segments, run)
    if reference is not None:
        from curate.quality import kept_reference

        reference = kept_reference(run_dir, reference)
        if not reference:
            raise ConfigError(f"{run_dir}: none of the run's kept recordings is in the reference timeline")
    return df, curve(df, reference)


__all__ = [
    "Goal",
    "Point",
    "add_clean_scores",
    "choose",
    "clean_scores",
    "curve",
    "format_curve",
    "parse_goal",
    "variant_curve",
]
