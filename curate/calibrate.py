"""Fit ``clean_trim``'s thresholds on a labelled run, and trace its operating curve (clean % against kept %).

A run's model passes are saved (source variants + frame scores under ``scores/``), so a clean variant can be
re-derived in memory for any parameters in milliseconds per recording: :func:`replay` does that, and
:func:`curate.quality.evaluate_segments` scores the result against a reference timeline. :func:`fit` searches
the parameters (coordinate descent over :data:`GRID`, a few passes) for the most clean speech kept under the
targets (:class:`curate.quality.Targets`); where no setting meets them all, for the smallest total miss.

Fit on a development half only, and report a held-out half (``benchmarks/bench_quality.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate import manifest
from curate.errors import RunDirError, UnknownVariantError
from curate.quality import Region, Targets, VariantQuality, evaluate_segments
from curate.rundir import RunDir
from curate.schema import Recording, RejectedSegment, Segment, recording_from_row, segment_from_row
from curate.stages.base import RecordingContext

#: what ``fit`` searches: clean_trim's parameters and candidate values (the first pass starts at the defaults)
GRID: dict[str, tuple[Any, ...]] = {
    "music": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
    "vocal_music": (0.05, 0.1, 0.2, 0.3, 0.5),
    "noise": (0.1, 0.2, 0.3, 0.5, 0.7, None),
    "overlap": (0.3, 0.4, 0.5, 0.6, 0.7, None),
    "change": (0.1, 0.15, 0.2, 0.3, 0.4, 0.5, None),
    "speech": (None, 0.1, 0.2, 0.3, 0.5),
    "min_nonspeech_s": (0.3, 0.5, 1.0, 2.0),
    "pauses_from": ("tags", "speakers"),
    "smooth_s": (0.0, 0.96, 1.44, 2.4),
    "hysteresis": (0.5, 0.7, 1.0),
    "min_bad_s": (0.0, 0.5, 1.0, 1.5),
    "pad_s": (0.0, 0.1, 0.2, 0.3),
    "touch_s": (0.0, 0.5, 1.0),
    "min_split_s": (0.0, 0.5, 1.0, 2.0),
    "join_gap_s": (0.0, 0.5, 1.0, 2.0),
    "bed_margin_db": (None, 6.0, 10.0, 15.0, 20.0),
    "bed_window_s": (0.96, 1.44, 2.4),
    "bed_min_db": (20.0, 30.0),  # not 10: chirping birds in a quiet room would grow over everything (docs/clean.md)
    "bed_bridge_s": (0.0, 2.0, 4.0, 6.0, 8.0),
    "change_cut": (None, 0.4, 0.5, 0.6, 0.7, 0.8),
    "pause_s": (0.0, 0.3, 0.5, 0.8),
    "pause_db": (20.0, 25.0, 30.0, 35.0),
    "change_cut_pauses": (False, True),
}
MAIN = "music"  # the operating curve's threshold


@dataclass
class Labelled:
    """A run's saved passes for one clean variant, ready to replay: the recordings with a reference, the
    source variant's segments and the frame scores of each, and the variant's stage chain."""

    variant: str
    source: str
    chain: list[dict[str, Any]]
    recordings: dict[str, Recording]
    segments: dict[str, list[Segment]]
    reference: dict[str, list[Region]]
    run: RunDir
    _frames: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def frames(self, rid: str) -> dict[str, Any]:
        """The saved frame scores of ``rid``; its tags get the noise floor (from the audio, once) for the bed rule."""
        if rid not in self._frames:
            from curate.stages.clean import with_floor

            out = {k: f for k in ("tags", "speakers", "voices") if (f := self.run.read_scores(k, rid)) is not None}
            if "tags" in out and len(out["tags"]) and Path(self.recordings[rid].audio_path).is_file():
                out["tags"] = with_floor(out["tags"], RecordingContext(self.recordings[rid]).audio())
            self._frames[rid] = out
        return self._frames[rid]


def clean_variants(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The run's derivations with a clean_trim stage (``{variant: {"from": …, "stages": […]}}``), from run.json."""
    run = RunDir(run_dir).read_run()
    derived = {**((run.get("pipeline") or {}).get("derive") or {})}
    for entry in run.get("derived") or []:  # `curate derive` entries
        derived.update((entry.get("pipeline") or {}).get("derive") or {})
    return {v: d for v, d in derived.items() if any(st.get("stage") == "clean_trim" for st in d.get("stages") or [])}


def trim_params(chain: list[dict[str, Any]]) -> dict[str, Any]:
    """The clean_trim params a chain sets (empty: the stage's defaults)."""
    return next(({k: v for k, v in st.items() if k != "stage"} for st in chain if st.get("stage") == "clean_trim"), {})


def load(run_dir: str | Path, reference: dict[str, list[Region]], variant: str) -> Labelled:
    """The saved source variant, scores and stage chain of ``variant`` (from run.json) for the recordings that
    both the run kept and the reference has."""
    run = RunDir(run_dir)
    derived = clean_variants(run_dir)
    if variant not in derived:
        raise UnknownVariantError(
            f"{run_dir}: no clean variant '{variant}' in run.json (clean variants: {', '.join(derived) or 'none'})"
        )
    chain, source = derived[variant]["stages"], derived[variant]["from"]
    recs = {
        r["recording_id"]: recording_from_row(r)
        for r in manifest.read_table(run.recordings, "recordings").to_pylist()
        if r["recording_id"] in reference
    }
    segs: dict[str, list[Segment]] = {rid: [] for rid in recs}
    for row in manifest.read_table(run.variant_dir(source), "segments").to_pylist():
        if row["recording_id"] in segs:
            segs[row["recording_id"]].append(segment_from_row(row))
    if not recs:
        raise RunDirError(f"{run_dir}: none of its recordings is in the reference timeline")
    ref = {rid: list(reference[rid]) for rid in recs}
    return Labelled(variant, source, chain, recs, segs, ref, run)


def with_params(chain: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
    """``chain`` with ``params`` set on its clean_trim stage."""
    out = copy.deepcopy(chain)
    for st in out:
        if st.get("stage") == "clean_trim":
            st.update(params)
    return out


def _stages(chain: list[dict[str, Any]]) -> list[Any]:
    from curate import registry

    out = []
    for spec in chain:
        params = {k: v for k, v in spec.items() if k not in ("stage", "emit")}
        st = registry.get(spec["stage"])(**params)
        st.validate()
        out.append(st)
    return out


def replay(
    data: Labelled,
    params: dict[str, Any],
    frames: dict[str, dict[str, Any]] | None = None,
    rejected: list[RejectedSegment] | None = None,
) -> list[Segment]:
    """The variant's segments with ``params`` on clean_trim, re-derived in memory from the saved passes (the
    rows the stages reject are appended to ``rejected`` when given)."""
    stages = _stages([st for st in with_params(data.chain, params) if st.get("stage") != "clean_score"])
    out: list[Segment] = []
    for rid, rec in data.recordings.items():
        ctx = RecordingContext(rec)
        ctx.frames.update(frames[rid] if frames is not None else data.frames(rid))
        segs = sorted(data.segments[rid], key=lambda s: (s.start_s, s.end_s))
        for st in stages:
            res = st.process(ctx, segs)
            segs = res.segments
            if rejected is not None:
                rejected += res.rejected
        out += segs
    return out


def where_it_went(data: Labelled, params: dict[str, Any]) -> list[tuple[str, str, float, float]]:
    """Per (stage, reason) of the replayed variant: seconds cut and the share of them that is clean speech of the
    reference (what each rule costs in recall)."""
    from curate import timeline

    rejected: list[RejectedSegment] = []
    replay(data, params, rejected=rejected)
    clean = {
        rid: [(r.start_s, r.end_s) for r in regions if r.kind == "speech" and not r.background]
        for rid, regions in data.reference.items()
    }
    acc: dict[tuple[str, str], list[float]] = {}
    for r in rejected:
        s = r.segment
        cell = acc.setdefault((r.stage, r.reason), [0.0, 0.0])
        cell[0] += s.end_s - s.start_s
        cell[1] += timeline.total(timeline.intersect([(s.start_s, s.end_s)], clean.get(s.recording_id, [])))
    return [(st, why, cut, 100.0 * c / cut if cut else 0.0) for (st, why), (cut, c) in sorted(acc.items())]


def score(data: Labelled, params: dict[str, Any], frames: dict[str, dict[str, Any]] | None = None) -> VariantQuality:
    segs = replay(data, params, frames)
    return evaluate_segments([(s.recording_id, s.start_s, s.end_s) for s in segs], data.reference)


def miss(q: VariantQuality, t: Targets) -> float:
    """Total distance to the purity targets, in percentage points (0: all met; the kept share is not counted)."""
    return (
        max(0.0, t.clean_single_pct - q.clean_single_pct)
        + max(0.0, q.music_pct - t.music_pct)
        + max(0.0, q.sung_pct - t.sung_pct)
        + max(0.0, q.multi_speaker_pct - t.multi_speaker_pct)
    )


def objective(q: VariantQuality, t: Targets) -> tuple[float, float]:
    """Larger is better: first meet the purity targets (smallest miss), then keep the most clean speech."""
    return (-round(miss(q, t), 6), q.clean_recall_pct)


def best_clean(results: dict[str, VariantQuality], targets: Targets | None = None) -> str | None:
    """The ``*-clean`` variant with segments that best meets the targets (:func:`objective`); ``None`` if none."""
    t = targets or Targets()
    clean = {v: q for v, q in results.items() if v.endswith("-clean") and q.segments > 0}
    return max(sorted(clean), key=lambda v: objective(clean[v], t)) if clean else None


def fit(
    data: Labelled,
    start: dict[str, Any] | None = None,
    grid: dict[str, Sequence[Any]] | None = None,
    targets: Targets | None = None,
    passes: int = 2,
    log: Any = None,
) -> tuple[dict[str, Any], VariantQuality]:
    """Coordinate descent over ``grid`` from ``start``: each parameter in turn takes its best value."""
    grid, t = grid or GRID, targets or Targets()
    frames = {rid: data.frames(rid) for rid in data.recordings}
    best = dict(start or {})
    best_q = score(data, best, frames)
    for _ in range(passes):
        changed = False
        for name, values in grid.items():
            for v in values:
                if best.get(name, object()) == v:
                    continue
                trial = {**best, name: v}
                try:
                    q = score(data, trial, frames)
                except Exception as e:  # an invalid combination (ConfigError) is skipped, not fatal; so is a rule
                    if type(e).__name__ == "AudioDecodeError":  # that reads the audio where it cannot be read
                        if log:
                            log(f"{name} = {v}: skipped, it reads the audio ({e})")
                        continue
                    if type(e).__name__ != "ConfigError":
                        raise
                    continue
                if objective(q, t) > objective(best_q, t):
                    best, best_q, changed = trial, q, True
            if log:
                log(
                    f"{name} = {best.get(name, 'default')}: clean 1-spk {best_q.clean_single_pct:.1f} %, kept {best_q.clean_recall_pct:.1f} %"
                )
        if not changed:
            break
    return best, best_q


def curve(
    data: Labelled, params: dict[str, Any], name: str = MAIN, values: Iterable[float] | None = None
) -> list[tuple[float, VariantQuality]]:
    """The operating curve: the variant's quality as one threshold moves, the other params fixed."""
    frames = {rid: data.frames(rid) for rid in data.recordings}
    vals = list(values or (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9))
    return [(v, score(data, {**params, name: v}, frames)) for v in vals]


def format_curve(variant: str, points: list[tuple[float, VariantQuality]], name: str = MAIN) -> str:
    lines = [
        f"operating curve of {variant} over clean_trim.{name}:",
        f"| {name} | clean 1-spk % | music % | sung % | >1 speaker % | clean kept % |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for v, q in points:
        lines.append(
            f"| {v:g} | {q.clean_single_pct:.1f} | {q.music_pct:.1f} | {q.sung_pct:.1f} | {q.multi_speaker_pct:.1f} "
            f"| {q.clean_recall_pct:.1f} |"
        )
    return "\n".join(lines) + "\n"


__all__ = [
    "best_clean",
    "miss",
    "objective",
    "GRID",
    "MAIN",
    "Labelled",
    "clean_variants",
    "curve",
    "trim_params",
    "fit",
    "format_curve",
    "load",
    "replay",
    "score",
    "where_it_went",
]
