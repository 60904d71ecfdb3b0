"""``curate derive``: new model-free variants from a finished run's saved segments, without running a model.

The source variant is streamed part by part (each part holds whole recordings of one shard), segments
are grouped by recording, and the derivation stages run through the same code as in a run
(:func:`curate.runners.shard.derive_recording`). Output: ``variants/<new>/part-*.parquet`` (written to a
temp directory and renamed into place when complete), rejected segments under
``rejected/<stage>/part-XXXXX.<new>.parquet`` (so they never overwrite the run's own), updated
``stats.json``/``stats.md``, and an entry in ``run.json``'s ``derived`` list.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curate import manifest
from curate.config import Pipeline, Settings, apply_overrides, parse_pipeline
from curate.errors import ConfigError, CurateError
from curate.rundir import RunDir
from curate.runners.shard import RecordingOutput, derive_recording, recording_context
from curate.schema import RejectedSegment, Segment, recording_from_row, segment_from_row
from curate.yamlconf import build_dataclass

log = logging.getLogger(__name__)


class DeriveError(CurateError, RuntimeError):
    """The run directory or the requested derivation does not fit."""


def load_derivation(
    run_dir: str | Path,
    pipeline_path: str | Path,
    source: str | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
) -> Pipeline:
    """Validate a post-processing pipeline against the run's variants. ``source`` replaces the ``from:`` of
    every derivation that does not start from a variant made in the same file."""
    from curate import presets
    from curate.yamlconf import read_yaml_mapping

    run_dir, pipeline_path = Path(run_dir), presets.locate("pipelines", pipeline_path)
    if not RunDir(run_dir).is_run():
        raise DeriveError(f"{run_dir}: no run.json; expected a finished `curate run` directory")
    raw = apply_overrides(read_yaml_mapping(pipeline_path, "pipeline"), overrides or [])
    if raw.get("passes") or raw.get("filters"):
        raise ConfigError(f"{pipeline_path}: a derivation pipeline has only 'derive:' entries (no passes or filters)")
    made_here = {str(v) for v in (raw.get("derive") or {})}
    for d in (raw.get("derive") or {}).values():
        if source and isinstance(d, dict) and d.get("from") not in made_here:
            d["from"] = source
    targets = made_here
    existing = RunDir(run_dir).variants()
    clash = sorted(targets & set(existing))
    if clash and not force:
        raise DeriveError(f"{run_dir}: variant(s) {clash} already exist; pass --force to replace them")
    available = [v for v in existing if v not in targets]
    if source and source not in available:
        raise DeriveError(f"{run_dir}: no variant '{source}' (available: {', '.join(available) or 'none'})")
    return parse_pipeline(raw, str(pipeline_path), available_variants=available)


def derive(
    run_dir: str | Path, pipeline: Pipeline, on_part: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Run ``pipeline.derive`` over the run's saved variants. Never loads a model. Returns a summary."""
    from curate.stats import compute_stats, load_stats, write_stats

    run_dir = Path(run_dir)
    rd = RunDir(run_dir)
    for st in pipeline.transforms():  # stages that read run files (e.g. cut_repeats: repeats.parquet)
        st.bind_run(rd)
    t0 = time.perf_counter()
    run = rd.read_run()
    settings = build_dataclass(Settings, (run.get("pipeline") or {}).get("settings") or {}, f"{rd.run_json}: settings")
    recordings = {
        r["recording_id"]: recording_from_row(r) for r in manifest.read_table(rd.recordings, "recordings").to_pylist()
    }
    roots = sorted(
        {d.source for d in pipeline.derive}
        - {d.variant for d in pipeline.derive}
        - {t.emit for d in pipeline.derive for t in d.stages if t.emit}
    )
    parts = sorted({p.name for r in roots for p in rd.variant_path(r).glob("part-*.parquet")})
    new = pipeline.variants()
    tmp = {v: rd.variant_path(f".{v}.partial") for v in new}
    for d in tmp.values():
        shutil.rmtree(d, ignore_errors=True)
    counts: dict[str, int] = defaultdict(int)
    for i, part in enumerate(parts):
        by_rec: dict[str, dict[str, list[Segment]]] = defaultdict(lambda: defaultdict(list))
        for r in roots:
            f = rd.variant_path(r) / part
            if f.exists():
                for row in manifest.read_table(f, "segments").to_pylist():
                    by_rec[row["recording_id"]][r].append(segment_from_row(row))
        variants: dict[str, list[Segment]] = defaultdict(list)
        rejected: dict[str, list[RejectedSegment]] = defaultdict(list)
        for rid, sources in by_rec.items():
            if rid not in recordings:
                raise DeriveError(f"{run_dir}: part {part} has segments of '{rid}', which recordings.parquet lacks")
            out = RecordingOutput()
            for r, segs in sources.items():
                out.variants[r] = sorted(segs, key=lambda s: (s.start_s, s.end_s))
            ctx = recording_context(settings, recordings[rid])
            ctx.frames_loader = lambda kind, rid=rid: rd.read_scores(kind, rid)
            derive_recording(pipeline.derive, ctx, out)
            for v in new:
                variants[v] += out.variants.get(v, [])
            for st, rej in out.rejected.items():
                rejected[st] += rej
        stem = part.removesuffix(".parquet")
        for v, segs in variants.items():
            if segs:
                manifest.write_records(tmp[v] / part, segs, "segments")
                counts[v] += len(segs)
        for st, rej in rejected.items():
            label = "+".join(new)
            rows = [dataclasses.replace(r, segment=dataclasses.replace(r.segment, variant=label)) for r in rej]
            manifest.write_records(rd.rejected_dir(st) / f"{stem}.{label}.parquet", rows, "rejected")
        if on_part:
            on_part(i + 1, len(parts))
    for v, d in tmp.items():
        final = rd.variant_path(v)
        d.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(final, ignore_errors=True)
        d.rename(final)
    old = load_stats(run_dir) if rd.stats_json.exists() else {"input_hours": 0.0, "variants": {}}
    input_s = old["input_hours"] * 3600.0
    stats = compute_stats(run_dir, list(dict.fromkeys([*old["variants"], *new])), input_s)
    write_stats(run_dir, stats)
    entry = {
        "variants": new,
        "from": roots,
        "pipeline": pipeline.source,
        "segments": {v: counts.get(v, 0) for v in new},
        "seconds": time.perf_counter() - t0,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    rd.add_derived(entry)
    log.info("derived %s from %s in %.1f s", new, roots, entry["seconds"])
    return entry


__all__ = ["DeriveError", "derive", "load_derivation"]
