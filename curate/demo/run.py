"""`curate demo` / `make demo`: build the synthetic archive, run the demo pipeline, show what came out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

log = logging.getLogger(__name__)


def _summary(result: dict) -> str:
    first, last = result.get("first") or {}, result.get("last") or {}
    return (
        f"{result['steps']} steps, {result['audio_h']:.3f} h audio seen ({result['epochs']:.2f} epochs), "
        f"loss {first.get('loss', float('nan')):.3f} → {last.get('loss', float('nan')):.3f}, "
        f"best validation loss {result['best_val']:.3f}"
    )


def _show_dedup(run_dir: Path, duplicates: Path, console: Console) -> None:
    """Reruns and repeated excerpts found by audio_dedup, against the archive's duplicates.json."""
    import dataclasses
    import json

    from curate import manifest
    from curate.quality import evaluate_run_dedup, format_dedup
    from curate.rundir import RunDir

    if not duplicates.exists() or not RunDir(run_dir).repeats.exists():
        return
    dq = evaluate_run_dedup(run_dir, json.loads(duplicates.read_text()))
    manifest.write_json(run_dir / "dedup_quality.json", dataclasses.asdict(dq))
    console.print("audio de-duplication (reruns and repeated jingles/adverts) against duplicates.json:")
    console.print(format_dedup(dq), soft_wrap=True)


def _operating_curves(
    run_dir: Path, truth: dict, quality: dict, best: str, sel_dir: Path, console: Console
) -> dict[str, list[Any]]:
    """Each clean variant's operating curve (segments kept by their clean score, measured against the ground
    truth), and the best one's selection at the clean target, written under ``sel_dir`` as `curate select` would."""
    import dataclasses

    from curate.errors import ConfigError
    from curate.export import operating
    from curate.export.select import Selection, select, write_selection
    from curate.quality import Targets

    curves: dict[str, list[Any]] = {}
    for v in sorted(v for v, q in quality.items() if v.endswith("-clean") and q.segments):
        try:
            curves[v] = operating.variant_curve(run_dir, v, truth)[1]
        except ConfigError as e:  # a run without frame scores
            console.print(f"no operating curve for {v}: {e}")
    goal, point, why = operating.Goal(clean_pct=Targets().clean_single_pct), None, ""
    if best in curves:
        try:
            point = operating.choose(curves[best], goal, best)
        except ConfigError as e:
            why = str(e)
    for v, points in curves.items():
        console.print(operating.format_curve(v, points, point if v == best else None, rows=5), soft_wrap=True)
    if point is None:
        console.print(f"operating point {goal} on {best}: {why or 'no operating curve'}", soft_wrap=True)
        return curves
    sel = dataclasses.replace(Selection(name=f"{best}-operating-point"), min_clean_score=point.threshold)
    _, stats = select(run_dir, best, sel)
    write_selection(sel_dir, sel, {**stats, "operating_point": {"goal": str(goal), **point.as_dict()}})
    console.print(
        f"operating point {goal} on {best}: clean_score >= {point.threshold:.4f} keeps {point.kept_pct:.1f} % of "
        f"its hours, {point.clean_single_pct:.1f} % clean single-speaker, {point.clean_recall_pct:.1f} % of the "
        f"clean speech; selection: {sel_dir}/selection.yaml (curate select {run_dir} --variant {best} "
        f"--operating-point {goal} --reference GROUND_TRUTH)",
        soft_wrap=True,
    )
    return curves


def run_demo(
    out_dir: Path,
    pipeline_path: Path,
    *,
    runner: str = "ray",
    ray_address: str | None = None,
    seed: int = 0,
    console: Console | None = None,
    run: Callable[..., Any] | None = None,
    plot: Callable[..., list[Path]] | None = None,
    real_audio: Path | None = None,
    pretrain_real_speech: bool = False,
) -> Path:
    """Build the archive, run ``pipeline_path`` on it (through ``run``, e.g. the CLI's progress-bar runner;
    default :func:`curate.runners.run_pipeline`), score (with the clean variants' operating curves), export the
    best clean variant and pre-train on it. Returns the run directory.
    ``real_audio``: build the programmes from the real recordings in that folder (``INVENTORY.csv``, ``flac/``,
    ``annotations/``) instead of synthesizing them (:mod:`curate.demo.real`). ``pretrain_real_speech``: pre-train on
    the real speech of the real-audio folder (when present) instead of the best clean variant."""
    from curate.config import load_pipeline
    from curate.demo.archive import build_demo_archive
    from curate.runners import run_pipeline
    from curate.stats import best_variant, format_table, load_stats

    console = console or Console()
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    console.rule("[bold]1. demo archive")
    if real_audio is not None:
        from curate.demo.real import build_real_archive

        catalog = build_real_archive(out_dir / "archive-real", Path(real_audio), seed=seed)
    else:
        catalog = build_demo_archive(out_dir / "archive", seed=seed)
    console.print(f"catalog: {catalog}  (built in {time.perf_counter() - t0:.0f} s)")
    console.rule("[bold]2. curation run")
    pipe = load_pipeline(pipeline_path)
    run_dir = out_dir / "runs" / (pipe.name + ("-real" if real_audio is not None else ""))
    (run or run_pipeline)(pipe, catalog, run_dir, runner=runner, ray_address=ray_address)
    stats = load_stats(run_dir)
    console.print(format_table(stats), soft_wrap=True)
    console.print(f"run directory: {run_dir}")

    console.rule("[bold]3. what the segments contain (against the archive's ground truth)")
    from curate import manifest
    from curate.quality import Targets, as_dict, evaluate_run, format_quality, load_ground_truth
    from curate.rundir import RunDir

    truth = load_ground_truth(catalog.parent / "ground_truth.json")
    quality = evaluate_run(run_dir, truth)
    manifest.write_json(RunDir(run_dir).quality_json, as_dict(quality))
    console.print(format_quality(quality, Targets()), soft_wrap=True)
    console.print(
        "clean 1-spk: clean speech of each segment's main speaker; music includes speech over music; "
        "targets (issue #12) for the *-clean variants: clean 1-spk ≥ 95 %, music ≤ 2 %, sung ≤ 0.5 %, "
        ">1 speaker ≤ 5 %, clean kept ≥ 75 %"
    )
    from curate.calibrate import best_clean

    best = best_clean(quality) or best_variant(stats)  # the clean variant nearest the targets, else the thesis'
    curves = _operating_curves(run_dir, truth, quality, best, out_dir / "selection", console)
    if plot is not None:  # e.g. the CLI's PNG charts: composition per variant, segment lengths, operating curves
        for p in plot(run_dir, quality, curves=curves):
            console.print(f"plot: {p}", soft_wrap=True)
    _show_dedup(run_dir, catalog.parent / "duplicates.json", console)

    console.rule("[bold]4. export")
    from curate.export import export_demo

    t = time.perf_counter()
    exported = export_demo(run_dir, best, out_dir / "exports")
    console.print(f"exported variant [bold]{best}[/] in {time.perf_counter() - t:.0f} s:")
    for fmt, info in exported.items():
        console.print(f"  {fmt:8s} {out_dir / 'exports' / fmt}  ({sum(info['segments'].values())} segments)")
    console.rule("[bold]5. wav2vec 2.0 pre-training (tiny CPU config)")
    from curate.demo.pretrain import pretrain_demo
    from curate.testing.speech import realaudio_dir
    from curate.w2v2.validate import held_out_line

    # the best clean variant (minutes of generated speech: too little to learn from in 1,500 steps), then, where
    # the real-audio folder is there, the same config on its real speech: the check that the pre-trainer learns
    runs = [("pretrain", pretrain_real_speech)]
    if not pretrain_real_speech and (realaudio_dir() / "INVENTORY.csv").is_file():
        runs.append(("pretrain-real", True))
    for name, real in runs:
        t = time.perf_counter()
        result = pretrain_demo(run_dir, out_dir / name, variant=best, real_speech=real)
        console.print(f"pre-trained on {result['data']} in {time.perf_counter() - t:.0f} s: {_summary(result)}")
        console.print(held_out_line(result))
        console.print(f"learning curve: {result['curve_png']}")
        console.print(f"checkpoints and metrics: {out_dir / name}  (tensorboard --logdir {out_dir / name})")
    console.rule(f"[bold]demo finished in {time.perf_counter() - t0:.0f} s")
    console.print(f"see, hear and filter its segments and cuts in a browser: curate explore {run_dir}", soft_wrap=True)
    return run_dir
