"""The ablation runner: once, the validation set every cell shares; then per cell and seed, pre-train (one run
per LR choice, or the two-phase scan) for a budget of audio hours seen, keep the checkpoint with the lowest
validation loss, score it on every shared held-out utterance, fine-tune and/or probe it, evaluate, and record
one result row per cell (every seed inside it).

Layout of ``OUT`` (rerun the same command to resume)::

    OUT/ablation.yaml                         the spec as given
    OUT/validation.json                       the shared validation set (curate.w2v2.heldout.ValSet)
    OUT/cells/<cell>/seed-<s>/pretrain/<run>/ one pre-training run (best.pt, last.pt, metrics.jsonl) + done.json
    OUT/cells/<cell>/seed-<s>/heldout.json    per held-out utterance: [contrastive sum, masked steps, correct]
    OUT/cells/<cell>/seed-<s>/finetune/       finetuned.pt, eval-*.json, summary.json (marker)
    OUT/cells/<cell>/seed-<s>/probe/          probe.json (marker), layers.png
    OUT/cells/<cell>/result.json              the cell's row (marker of a finished cell; crashed cells are retried)
    OUT/results.parquet, OUT/results.md       the table with intervals and the paired differences

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

log = logging.getLogger(__name__)


def _write_json(path: Path, obj: Any) -> None:
    from curate.manifest import write_json

    write_json(path, obj)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _lr_name(lr: float) -> str:
    return "lr-config" if math.isnan(lr) else f"lr-{lr:.0e}".replace("+", "")


def pretrain_run(
    spec: AblationSpec, cell: Cell, run_dir: Path, lr: float, hours: float | None, seed: int, val_set: Path | None
) -> dict[str, Any]:
    """One pre-training run (resumable) for ``hours`` of audio seen (None: the config's max_steps); returns and
    stores its ``done.json``: status ok|DIV|crash, the best validation loss and its step, the checkpoint to use,
    hours read and seen, crop waste, the validation rule."""
    done = _read_json(run_dir / "done.json")
    if done:
        return done
    from curate.w2v2.config import load_config
    from curate.w2v2.health import TrainingHealthError
    from curate.w2v2.train import pretrain

    overrides = [*pretrain_overrides(spec, cell), f"train.seed={seed}"]
    if not math.isnan(lr):
        overrides.append(f"optim.lr={lr}")
    if hours:
        overrides.append(f"train.max_audio_h={hours}")
    if val_set is not None:
        overrides.append(f"data.val_set={val_set}")
    cfg = load_config(spec.pretrain.get("config", "base"), overrides)
    corruption = corruption_spec(cell.corruption, f"cell {cell.name}")
    if corruption is not None:
        cfg.data.corruption = corruption
    data = Path(cell.run_dir or spec.data["run_dir"])
    variant = cell.variant or spec.data.get("variant")
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"lr": None if math.isnan(lr) else lr, "seed": seed, "budget_h": hours}
    try:
        summary = pretrain(cfg, data, run_dir, variant=variant, resume=True)
        rec.update(status="ok", peak_lr=summary["peak_lr"], steps=summary["steps"])
        rec.update({k: summary.get(k) for k in ("audio_h", "read_h", "crop_waste", "val_split", "val_segments")})
    except TrainingHealthError as e:
        log.warning("cell %s seed %d: pre-training stopped at lr %s: %s", cell.name, seed, lr, e)
        rec.update(status="DIV", error=str(e), health=e.name)
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


def pretrain_seed(
    spec: AblationSpec, cell: Cell, seed_dir: Path, seed: int, val_set: Path | None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """All pre-training runs of one seed of a cell → (the run with the lowest validation loss or None, all runs)."""
    hours = spec.hours(cell)
    lrs = spec.lr_choices(cell)
    runs: list[dict[str, Any]] = []
    if lrs == "scan":
        # Phase 1: every LR of the grid for a fraction of the budget; phase 2: the best `top` for the full budget.
        if not hours:
            raise ValueError(f"cell {cell.name}: lr: scan needs a budget (pretrain.hours or the cell's hours)")
        short = hours * spec.lr_scan.fraction
        phase1 = [
            pretrain_run(spec, cell, seed_dir / "pretrain" / f"scan-{_lr_name(lr)}", lr, short, seed, val_set)
            for lr in spec.lr_scan.lrs
        ]
        for r in phase1:
            r["phase"] = 1
        best = _rank(phase1)[: spec.lr_scan.top]
        runs = phase1 + [
            dict(
                pretrain_run(spec, cell, seed_dir / "pretrain" / _lr_name(r["lr"]), r["lr"], hours, seed, val_set),
                phase=2,
            )
            for r in best
        ]
        final = [r for r in runs if r["phase"] == 2]
    else:
        runs = final = [
            pretrain_run(spec, cell, seed_dir / "pretrain" / _lr_name(lr), lr, hours, seed, val_set) for lr in lrs
        ]
    ranked = _rank(final)
    return (ranked[0] if ranked else None), runs


def _datasets(which: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from curate.w2v2.asr_data import read_dataset

    return {name: read_dataset(ds) for name, ds in which.items()}


def run_cell(spec: AblationSpec, name: str, out_dir: Path) -> dict[str, Any]:
    """Run (or resume) one cell, every seed; never raises for a diverged or crashed cell — the row says what
    happened. The cell is ``ok`` when every seed produced a checkpoint."""
    from curate.ablation.stats import mean_ci

    cell = spec.cell(name)
    cell_dir = Path(out_dir) / "cells" / name
    done = _read_json(cell_dir / "result.json")
    if done and done["status"] != "crash":
        return done
    cell_dir.mkdir(parents=True, exist_ok=True)
    val_path = Path(out_dir) / VALSET
    vs = _read_json(val_path)
    row: dict[str, Any] = {
        "cell": name,
        "condition": cell.label,
        "variant": cell.variant or spec.data.get("variant"),
        "corruption": (corruption_spec(cell.corruption, name) or {}).get("condition"),
        "hours_budget": spec.hours(cell),
        "validation": _val_record(vs),
        "status": "ok",
        "error": None,
        "seeds": [],
    }
    t0 = time.perf_counter()
    for seed in spec.seeds(cell):
        row["seeds"].append(_run_seed(spec, cell, cell_dir / f"seed-{seed}", seed, val_path if vs else None))
    status = [s["status"] for s in row["seeds"]]
    if any(s != "ok" for s in status):
        row["status"] = "crash" if "crash" in status else "DIV"
        row["error"] = next(s.get("error") for s in row["seeds"] if s["status"] != "ok")
    ok = [s for s in row["seeds"] if s["status"] == "ok"]
    for key in ("ssl_val_loss", "audio_h", "read_h", "crop_waste", "lr"):
        row[key], row[f"{key}_ci"] = mean_ci([s.get(key) for s in ok if s.get(key) is not None])
    row["ssl_val_step"] = ok[0].get("ssl_val_step") if ok else None
    for m in METRICS:
        tests = sorted({t for s in ok for t in (s.get(m) or {})})
        row[m] = {t: mean_ci([(s.get(m) or {}).get(t) for s in ok])[0] for t in tests}
        row[f"{m}_ci"] = {t: mean_ci([(s.get(m) or {}).get(t) for s in ok])[1] for t in tests}
    row["val_curves"] = {
        f"seed {s['seed']} lr {r.get('lr')}": r.get("val_curve", [])
        for s in row["seeds"]
        for r in s.get("runs_full", [])
    }
    for s in row["seeds"]:
        s.pop("runs_full", None)
    row["seconds"] = time.perf_counter() - t0
    _write_json(cell_dir / "result.json", row)
    return row


METRICS = ("wer", "cer", "probe_wer", "probe_cer")
VALSET = "validation.json"


def _val_record(vs: dict | None) -> dict[str, Any] | None:
    from curate.w2v2.heldout import ValSet

    return ValSet(**vs).record() if vs else None


def _run_seed(spec: AblationSpec, cell: Cell, seed_dir: Path, seed: int, val_set: Path | None) -> dict[str, Any]:
    rec: dict[str, Any] = {"seed": seed, "status": "ok", "error": None}
    try:
        best, runs = pretrain_seed(spec, cell, seed_dir, seed, val_set)
        rec["runs"] = [{k: r.get(k) for k in ("lr", "status", "val_loss", "val_step", "phase", "error")} for r in runs]
        rec["runs_full"] = runs
        if best is None:
            rec["status"] = "DIV" if any(r["status"] == "DIV" for r in runs) else "crash"
            rec["error"] = next((r.get("error") for r in runs if r.get("error")), "no run produced a checkpoint")
            return rec
        rec.update({k: best.get(k) for k in ("lr", "audio_h", "read_h", "crop_waste", "val_split", "checkpoint")})
        rec.update(ssl_val_step=best["val_step"], ssl_val_loss_run=best["val_loss"])
        if val_set is not None:  # the shared held-out utterances, scored alike for every cell: the paired metric
            scores = _heldout(best["checkpoint"], val_set, seed_dir / "heldout.json")
            rec["ssl_val_loss"] = sum(r[0] for r in scores) / max(1.0, sum(r[1] for r in scores))
        else:
            rec["ssl_val_loss"] = best["val_loss"]
        evals = _datasets(spec.eval)
        if "finetune" in spec.measure:
            rec.update(_finetune(spec, best["checkpoint"], seed_dir / "finetune", evals))
        if "probe" in spec.measure:
            rec.update(_probe(spec, best["checkpoint"], seed_dir / "probe", evals))
    except Exception as e:  # a crashed seed is recorded, the others go on
        log.error("cell %s seed %d crashed: %s", cell.name, seed, e)
        rec.update(status="crash", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
    return rec


def _heldout(checkpoint: str, val_set: Path, out: Path) -> list[list[float]]:
    done = _read_json(out)
    if done:
        return done["utterances"]
    from curate.w2v2.heldout import ValSetSource, read_val_set
    from curate.w2v2.validate import score_utterances

    scores = score_utterances(checkpoint, ValSetSource(read_val_set(val_set)))
    _write_json(out, {"checkpoint": checkpoint, "utterances": scores})
    return scores


def prepare_validation(spec: AblationSpec, out_dir: Path) -> Path:
    """Choose the shared validation set once (``OUT/validation.json``) from the base dataset ``data``; raises
    ConfigError before any training when it would be empty. ``auto`` tries speaker, group, then share."""
    from curate.errors import ConfigError
    from curate.w2v2.config import load_config
    from curate.w2v2.data import open_source
    from curate.w2v2.heldout import HeldOutError, choose_val_set, write_val_set

    path = Path(out_dir) / VALSET
    if path.exists():
        return path
    v = spec.validation
    cfg = load_config(spec.pretrain.get("config", "base"), pretrain_overrides(spec, spec.cells[0]))
    source = open_source(spec.data["run_dir"], spec.data.get("variant") or spec.cells[0].variant)
    rules = ["speaker", "group", "share"] if v["rule"] == "auto" else [v["rule"]]
    errors = []
    for rule in rules:
        try:
            vs = choose_val_set(
                source, rule, float(v["fraction"]), int(v["seed"]), cfg.data.min_s, int(v["max_utterances"])
            )
        except HeldOutError as e:
            errors.append(str(e))
            continue
        log.info("validation set: %d utterances (%.2f h) by %s from %s", len(vs.segments), vs.hours, vs.rule, vs.source)
        return write_val_set(vs, path)
    raise ConfigError(f"{spec.name}: the shared validation set would be empty:\n  " + "\n  ".join(errors))


def _finetune(spec: AblationSpec, checkpoint: str, out: Path, evals: dict) -> dict[str, Any]:
    from curate.w2v2.asr_data import read_dataset
    from curate.w2v2.finetune import finetune

    summary = _read_json(out / "summary.json")
    if summary is None:
        cfg = load_finetune_config(spec.finetune.get("config") or {})
        summary = finetune(checkpoint, read_dataset(spec.finetune["train"]), cfg, out, evals=evals)
    return {"wer": summary["wer"], "cer": summary["cer"], "word_errors": summary.get("word_errors", {})}


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
    from curate.errors import ConfigError
    from curate.manifest import atomic_write_text

    spec = load_ablation(spec_path)
    check_inputs(spec)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "ablation.yaml", Path(spec_path).read_text())
    prepare_validation(spec, out_dir)  # before any training: refused here when it would be empty
    names = cells or [c.name for c in spec.cells]
    unknown = set(names) - {c.name for c in spec.cells}
    if unknown:
        raise ConfigError(f"--cell: unknown cell(s) {', '.join(sorted(unknown))} in {spec_path}")
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
        raise ConfigError(f"runner: expected ray or local, got {runner!r}")
    write_results(spec, out_dir)
    return [rows[n] for n in names]
