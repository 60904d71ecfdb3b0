"""The ablation runner: per cell, pre-train (one run per LR choice, or the two-phase scan), keep the checkpoint
with the lowest validation loss, fine-tune and/or probe it, evaluate, and record one result row.

Layout of ``OUT`` (rerun the same command to resume)::

    OUT/ablation.yaml                    the spec as given
    OUT/cells/<cell>/pretrain/<run>/     one pre-training run (best.pt, last.pt, metrics.jsonl, tb/) + done.json
    OUT/cells/<cell>/finetune/           finetuned.pt, eval-*.json, summary.json (marker)
    OUT/cells/<cell>/probe/              probe.json (marker), layers.png
    OUT/cells/<cell>/result.json         the cell's row (marker of a finished cell; crashed cells are retried)
    OUT/results.parquet, OUT/results.md  the table (rewritten after every cell)

Resumption is per step: a finished pre-training run (``done.json``) is never repeated, an interrupted one
continues from its ``last.pt`` (the pre-trainer's exact resume); finished fine-tuning/probing is reused.
A diverged run (the pre-trainer's TrainingHealthError) is recorded as DIV; any other exception in a cell is
recorded as ``crash`` with its message. Neither stops the other cells.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curate.ablation.config import (
    AblationSpec,
    Cell,
    corruption_spec,
    load_finetune_config,
    load_probe_config,
    pretrain_overrides,
)
from curate.audio import SAMPLE_RATE

log = logging.getLogger(__name__)


def _write_json(path: Path, obj: Any) -> None:
    from curate.manifest import write_json

    write_json(path, obj)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def budget_steps(cfg, hours: float) -> int:
    """Audio hours → optimizer steps, assuming full batches (``batch_samples`` × accumulation per step on one
    GPU). Batches are rarely full, so the hours actually seen (reported) are somewhat below the budget."""
    per_step_s = cfg.data.batch_samples * cfg.train.accumulation / SAMPLE_RATE
    return max(1, math.ceil(hours * 3600 / per_step_s))


def _lr_name(lr: float) -> str:
    return "lr-config" if math.isnan(lr) else f"lr-{lr:.0e}".replace("+", "")


def pretrain_run(spec: AblationSpec, cell: Cell, run_dir: Path, lr: float, steps: int | None) -> dict[str, Any]:
    """One pre-training run (resumable); returns and stores its ``done.json``: status ok|DIV|crash, the best
    validation loss and its step, the checkpoint to use, the hours seen."""
    done = _read_json(run_dir / "done.json")
    if done:
        return done
    from curate.w2v2.config import load_config
    from curate.w2v2.health import TrainingHealthError
    from curate.w2v2.train import pretrain

    overrides = pretrain_overrides(spec, cell)
    if not math.isnan(lr):
        overrides.append(f"optim.lr={lr}")
    cfg = load_config(spec.pretrain.get("config", "base"), overrides)
    if steps is not None:
        cfg.train.max_steps = steps
    corruption = corruption_spec(cell.corruption, f"cell {cell.name}")
    if corruption is not None:
        cfg.data.corruption = corruption
    data = Path(cell.run_dir or spec.data["run_dir"])
    variant = cell.variant or spec.data.get("variant")
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"lr": None if math.isnan(lr) else lr, "max_steps": cfg.train.max_steps}
    try:
        summary = pretrain(cfg, data, run_dir, variant=variant, resume=True)
        rec.update(status="ok", audio_h=summary["audio_h"], steps=summary["steps"], peak_lr=summary["peak_lr"])
    except TrainingHealthError as e:
        log.warning("cell %s: pre-training diverged at lr %s: %s", cell.name, lr, e)
        rec.update(status="DIV", error=str(e))
    rec["seconds"] = time.perf_counter() - t0
    best = run_dir / "best.pt" if (run_dir / "best.pt").exists() else run_dir / "last.pt"
    if rec["status"] == "ok" and best.exists():
        from curate.w2v2 import checkpoint as checkpoints

        ck = checkpoints.load(best)
        rec.update(
            checkpoint=str(best),
            val_loss=ck.get("val_loss"),
            val_step=ck.get("step"),
            audio_h_at_best=ck.get("audio_s", 0.0) / 3600,
        )
    rec["val_curve"] = val_curve(run_dir)
    _write_json(run_dir / "done.json", rec)
    return rec


def val_curve(run_dir: Path) -> list[list[float]]:
    """[(step, validation loss)]: the ``val_loss`` records of the run's metrics.jsonl, else (runs written before
    the trainer logged them there) its TensorBoard events (``val/loss``)."""
    metrics = Path(run_dir) / "metrics.jsonl"
    if metrics.exists():
        curve = {}
        for line in metrics.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a crash
                continue
            if rec.get("val_loss") is not None:
                curve[int(rec["step"])] = float(rec["val_loss"])
        if curve:
            return [[s, v] for s, v in sorted(curve.items())]
    tb = Path(run_dir) / "tb"
    if not tb.is_dir():
        return []
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    if "val/loss" not in acc.Tags().get("scalars", []):
        return []
    return [[int(e.step), float(e.value)] for e in acc.Scalars("val/loss")]


def _rank(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ok = [r for r in runs if r["status"] == "ok" and r.get("val_loss") is not None]
    return sorted(ok, key=lambda r: r["val_loss"])


def pretrain_cell(spec: AblationSpec, cell: Cell, cell_dir: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """All pre-training runs of a cell → (the run with the lowest validation loss or None, all runs)."""
    from curate.w2v2.config import load_config

    cfg = load_config(spec.pretrain.get("config", "base"), pretrain_overrides(spec, cell))
    hours = spec.hours(cell)
    steps = budget_steps(cfg, hours) if hours else None
    lrs = spec.lr_choices(cell)
    runs: list[dict[str, Any]] = []
    if lrs == "scan":
        # Phase 1: every LR of the grid for a fraction of the budget; phase 2: the best `top` for the full budget.
        full = steps or cfg.train.max_steps
        short = max(1, int(full * spec.lr_scan.fraction))
        phase1 = [
            pretrain_run(spec, cell, cell_dir / "pretrain" / f"scan-{_lr_name(lr)}", lr, short)
            for lr in spec.lr_scan.lrs
        ]
        for r in phase1:
            r["phase"] = 1
        best = _rank(phase1)[: spec.lr_scan.top]
        runs = phase1 + [
            dict(pretrain_run(spec, cell, cell_dir / "pretrain" / _lr_name(r["lr"]), r["lr"], full), phase=2)
            for r in best
        ]
        final = [r for r in runs if r["phase"] == 2]
    else:
        runs = final = [pretrain_run(spec, cell, cell_dir / "pretrain" / _lr_name(lr), lr, steps) for lr in lrs]
    ranked = _rank(final)
    return (ranked[0] if ranked else None), runs


def _datasets(which: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from curate.w2v2.asr_data import read_dataset

    return {name: read_dataset(ds) for name, ds in which.items()}


def run_cell(spec: AblationSpec, name: str, out_dir: Path) -> dict[str, Any]:
    """Run (or resume) one cell; never raises for a diverged or crashed cell — the row says what happened."""
    cell = spec.cell(name)
    cell_dir = Path(out_dir) / "cells" / name
    done = _read_json(cell_dir / "result.json")
    if done and done["status"] != "crash":
        return done
    cell_dir.mkdir(parents=True, exist_ok=True)
    row: dict[str, Any] = {
        "cell": name,
        "condition": cell.label,
        "variant": cell.variant or spec.data.get("variant"),
        "corruption": (corruption_spec(cell.corruption, name) or {}).get("condition"),
        "hours_budget": spec.hours(cell),
        "status": "ok",
        "error": None,
        "wer": {},
        "cer": {},
        "probe_wer": {},
        "probe_cer": {},
    }
    t0 = time.perf_counter()
    try:
        best, runs = pretrain_cell(spec, cell, cell_dir)
        row["runs"] = [{k: r.get(k) for k in ("lr", "status", "val_loss", "val_step", "phase", "error")} for r in runs]
        row["val_curves"] = {str(r.get("lr")): r.get("val_curve", []) for r in runs}
        if best is None:
            row["status"] = "DIV" if any(r["status"] == "DIV" for r in runs) else "crash"
            row["error"] = next((r.get("error") for r in runs if r.get("error")), "no run produced a checkpoint")
        else:
            row.update(
                lr=best["lr"],
                ssl_val_loss=best["val_loss"],
                ssl_val_step=best["val_step"],
                audio_h=best.get("audio_h"),
                checkpoint=best["checkpoint"],
            )
            evals = _datasets(spec.eval)
            if "finetune" in spec.measure:
                row.update(_finetune(spec, best["checkpoint"], cell_dir / "finetune", evals))
            if "probe" in spec.measure:
                row.update(_probe(spec, best["checkpoint"], cell_dir / "probe", evals))
    except Exception as e:  # a crashed cell is recorded, the others go on
        log.error("cell %s crashed: %s", name, e)
        row.update(status="crash", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
    row["seconds"] = time.perf_counter() - t0
    _write_json(cell_dir / "result.json", row)
    return row


def _finetune(spec: AblationSpec, checkpoint: str, out: Path, evals: dict) -> dict[str, Any]:
    from curate.w2v2.asr_data import read_dataset
    from curate.w2v2.finetune import finetune

    summary = _read_json(out / "summary.json")
    if summary is None:
        cfg = load_finetune_config(spec.finetune.get("config") or {})
        summary = finetune(checkpoint, read_dataset(spec.finetune["train"]), cfg, out, evals=evals)
    return {"wer": summary["wer"], "cer": summary["cer"]}


def _probe(spec: AblationSpec, checkpoint: str, out: Path, evals: dict) -> dict[str, Any]:
    from curate.w2v2.asr_data import read_dataset
    from curate.w2v2.probe import probe

    report = _read_json(out / "probe.json")
    if report is None:
        cfg = load_probe_config(spec.probe.get("config"))
        report = probe(checkpoint, read_dataset(spec.probe["train"]), evals, cfg, out)
    return {"probe_wer": report["wer"], "probe_cer": report["cer"]}


def set_threads(threads: int | None) -> None:
    """CPU threads of torch in this process (tiny CPU models run fastest on one thread per cell)."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def _make_worker(
    spec_path: str, out_dir: str, threads: int | None = None, cwd: str | None = None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    import os

    from curate.ablation.config import load_ablation

    if cwd:  # relative paths of the spec mean the driver's cwd
        os.chdir(cwd)
    set_threads(threads)
    spec = load_ablation(spec_path)
    return lambda item: run_cell(spec, item["cell"], Path(out_dir))


def run_ablation(
    spec_path: str | Path,
    out_dir: str | Path,
    *,
    runner: str = "ray",
    num_workers: int | None = None,
    cells: list[str] | None = None,
    address: str | None = None,
    threads: int | None = None,
    on_cell: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every (or the named) cell of the ablation at ``spec_path`` into ``out_dir``; write the results table.
    ``runner="local"`` runs cells one after another in this process; ``"ray"`` runs one cell per GPU worker.
    ``threads`` sets torch's CPU threads per cell process (default: torch's own choice)."""
    from curate.ablation.config import check_inputs, load_ablation
    from curate.ablation.table import write_results
    from curate.manifest import atomic_write_text

    spec = load_ablation(spec_path)
    check_inputs(spec)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "ablation.yaml", Path(spec_path).read_text())
    names = cells or [c.name for c in spec.cells]
    unknown = set(names) - {c.name for c in spec.cells}
    if unknown:
        raise ValueError(f"--cell: unknown cell(s) {', '.join(sorted(unknown))} in {spec_path}")
    rows: dict[str, dict[str, Any]] = {}

    def collect(row: dict[str, Any]) -> None:
        rows[row["cell"]] = row
        write_results(spec, out_dir)
        if on_cell:
            on_cell(row)

    if runner == "local":
        set_threads(threads)
        for n in names:
            collect(run_cell(spec, n, out_dir))
    elif runner == "ray":
        from curate.runners.ray import map_actors

        factory = functools.partial(
            _make_worker, str(Path(spec_path).resolve()), str(out_dir.resolve()), threads, str(Path.cwd())
        )
        for row in map_actors(
            [{"cell": n} for n in names],
            factory,
            num_workers=num_workers,
            num_gpus=1,
            num_cpus=threads or 1,
            address=address,
        ):
            collect(row)
    else:
        raise ValueError(f"runner: expected ray or local, got {runner!r}")
    write_results(spec, out_dir)
    return [rows[n] for n in names]
