"""Can the ablation runner tell two variants apart? A two-variant ablation on real speech, not a test.

    python -m benchmarks.bench_ablation --quick     # ≤ 20 min on 2 CPU cores: 2 cells × 2 seeds, tiny model
    python -m benchmarks.bench_ablation --hours 3   # a longer budget per run

Data: the speech and conversation recordings of the real-audio folder (``$CURATE_REALAUDIO``, else
../shared/data/realaudio; ``curate.testing.speech``) as a run directory. Two cells pre-train on the same
recordings: ``clean``, and ``music`` = the corruption simulator's ``mix-music-33`` with the folder's music clips
(as an FMA-shaped pool). Without the folder: generated speech and a generated music pool (tones), said so.

Each cell: 2 seeds of ``tiny-cpu`` for a budget of audio hours seen (h_sqrt LR), the shared validation set held
out by speaker, the best checkpoint scored on every shared held-out utterance, a probe (CTC head on frozen
features) on espeak-ng speech. Prints the results table (mean ± 95 % interval per cell), ``cells finished K/K``
and the paired differences with their bootstrap intervals.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def data(tmp: Path) -> tuple[Path, dict, str]:
    """(run directory, corruption sources, description)."""
    from curate.testing.speech import make_speech_run, real_music_fma, real_speech_run, realaudio_dir

    real = realaudio_dir()
    run = real_speech_run(real, tmp / "real-run", "speech")
    music = real_music_fma(real, tmp / "fma") if run is not None else None
    if run is not None and music is not None:
        return run, {"music": str(music)}, f"real speech and music from {real}"
    from curate.testing.ablation import make_corruption_sources

    run = make_speech_run(tmp / "synth-run", recordings=8, per_recording=10, variant="speech")
    return run, {"music": make_corruption_sources(tmp / "sources")["music"]}, f"generated speech (no {real})"


def spec(run: Path, sources: dict, tmp: Path, hours: float, seeds: list[int], probe_steps: int) -> Path:
    synth = {"kind": "synthetic", "root": str(tmp / "asr"), "words": ["yes", "no", "stop", "go"], "n": 40, "seed": 1}
    test = {
        "kind": "synthetic",
        "root": str(tmp / "asr-test"),
        "words": ["yes", "no", "stop", "go"],
        "n": 24,
        "seed": 2,
    }
    s = {
        "name": "bench-ablation",
        "description": "clean vs music-corrupted (mix-music-33) pre-training on the same recordings",
        "pretrain": {
            "config": "tiny-cpu",
            "hours": hours,
            "seeds": seeds,
            "set": ["train.val_every=200", "train.ckpt_every=200", "train.log_every=50", "train.tensorboard=false"],
        },
        "data": {"run_dir": str(run), "variant": "speech"},
        "validation": {"rule": "speaker", "fraction": 0.15, "max_utterances": 60},
        "measure": ["probe"],
        "probe": {"config": {"steps": probe_steps, "lr": 0.01, "batch_s": 6, "device": "cpu"}, "train": synth},
        "eval": {"synth": test},
        "cells": [
            {"name": "clean"},
            {"name": "music", "corruption": {"condition": "mix-music-33", "sources": sources}},
        ],
    }
    path = tmp / "bench-ablation.yaml"
    path.write_text(yaml.safe_dump(s, sort_keys=False))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the ≤ 20 min CPU target (make bench --quick)")
    ap.add_argument("--hours", type=float, default=None, help="audio hours seen per run (quick: 0.6, else 2)")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="keep the results here (default: a temp folder)")
    args = ap.parse_args()
    hours = args.hours or (0.6 if args.quick else 2.0)
    from curate.ablation.runner import run_ablation

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-ablation-") as t:
        tmp = Path(t)
        run, sources, what = data(tmp)
        out = args.out or tmp / "out"
        path = spec(run, sources, tmp, hours, list(range(args.seeds)), 150 if args.quick else 400)
        print(f"data: {what}; budget {hours} h seen per run, {args.seeds} seeds per cell", flush=True)

        def on_cell(row: dict) -> None:
            print(f"  cell {row['cell']}: {row['status']} ({time.perf_counter() - t0:.0f} s)", flush=True)

        rows = run_ablation(path, out, runner="local", threads=1, on_cell=on_cell)
        print((out / "results.md").read_text())
        ok = sum(r["status"] == "ok" for r in rows)
        print(f"cells finished {ok}/{len(rows)}")
        print(f"wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
