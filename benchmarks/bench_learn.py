"""Does the tiny CPU pre-trainer *learn* on real speech? A learning benchmark, not a test.

    python -m benchmarks.bench_learn --seeds 3 --minutes 15      # the target: every seed ≥ 10 % below chance
    python -m benchmarks.bench_learn --seeds 1 --minutes 3 --set optim.lr=1e-3   # try a setting
    python -m benchmarks.bench_learn --quick                    # one seed, 2 CPU-minutes (make bench --quick)

Data: the speech and conversation recordings of ../shared/data/realaudio (6.2 min, 20+ speakers; override with
``--realaudio DIR``), as a run directory whose segments are views into the FLAC files: a recording per speaker
(its clips), the 30 s conversations cut into ≤ 10 s views, so the thesis's split (one median-length segment per
recording with ≥ 2 segments) holds out whole unseen utterances. Without that folder: the demo's run
(``demo_out/runs/demo``, best variant) when present, else generated speech (``curate.testing.speech``).

Per seed: ``pretrain("tiny-cpu")`` on one thread for the steps that ``minutes`` of process CPU time buy (timed on
a short run; the LR schedule ends there; wall time only guards), validating on the held-out utterances, then one
line per seed ending ``held-out contrastive L (chance C)``. Chance is ln(K_eff + 1) on the actual distractor
sets (``curate.w2v2.validate``); the target is L ≤ 0.9 C for every seed.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REALAUDIO = REPO.parent / "shared" / "data" / "realaudio"
VARIANT = "speech"


def data_source(args, tmp: Path) -> tuple[Path, str, str]:
    """(run directory, variant, description)."""
    from curate.testing.speech import real_speech_run

    run = real_speech_run(Path(args.realaudio), tmp / "realaudio", VARIANT)
    if run is not None:
        return run, VARIANT, f"real speech from {args.realaudio}"
    demo = REPO / "demo_out" / "runs" / "demo"
    if (demo / "variants").is_dir():
        from curate.demo.pretrain import best_variant

        v = best_variant(demo)
        return demo, v, f"the demo's run {demo}:{v} (no {args.realaudio})"
    from curate.testing.speech import make_speech_run

    return make_speech_run(tmp / "synth", recordings=8, per_recording=10), "speech", "generated speech (no real audio)"


def steps_for(minutes: float, data: Path, variant: str, overrides: list[str], tmp: Path) -> int:
    """The number of steps ``minutes`` of CPU time buy, timed in process CPU time (not wall time: the machine is
    shared) on steps 10–60 of a short run (start-up excluded), so the LR schedule ends with the budget."""
    from curate.w2v2.train import pretrain

    stamps: list[float] = []
    extra = ["train.max_steps=60", "train.log_every=1", "train.val_every=1000000", "train.ckpt_every=1000000"]
    pretrain(
        "tiny-cpu",
        data,
        tmp / "timing",
        variant=variant,
        overrides=[*overrides, *extra],
        on_log=lambda rec: stamps.append(time.process_time()),
    )
    per_step = (stamps[59] - stamps[9]) / 50
    return max(60, int(minutes * 60 / per_step))


def run_seed(seed: int, minutes: float, steps: int, data: Path, variant: str, overrides: list[str], out: Path) -> dict:
    from curate.w2v2.health import TrainingHealthError
    from curate.w2v2.train import pretrain

    # the step count is the CPU budget; the wall-time limit only guards against a very busy machine
    ov = [
        *overrides,
        f"train.seed={seed}",
        f"train.max_steps={steps}",
        f"train.max_time_s={minutes * 60 * 3}",
        f"train.val_every={max(50, steps // 10)}",
        f"train.ckpt_every={steps}",
        "train.log_every=50",
    ]
    t, cpu = time.perf_counter(), time.process_time()
    try:
        s = pretrain("tiny-cpu", data, out, variant=variant, overrides=ov)
        stop = None
    except TrainingHealthError as e:
        s, stop = {"steps": None}, f"{e.name}: {e}"
    recs = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in recs if "val_contrastive" in r]
    return {
        "seed": seed,
        "steps": s.get("steps") or (recs[-1]["step"] if recs else 0),
        "minutes": (time.perf_counter() - t) / 60,
        "cpu_minutes": (time.process_time() - cpu) / 60,
        "vals": vals,
        "stop": stop,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=None, help="default 3 (--quick: 1)")
    ap.add_argument(
        "--minutes", type=float, default=None, help="CPU-minutes of training per seed (default 15, --quick: 2)"
    )
    ap.add_argument("--quick", action="store_true", help="one seed, 2 CPU-minutes (make bench --quick)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: leave the other core alone)")
    ap.add_argument("--realaudio", default=os.environ.get("CURATE_REALAUDIO", str(REALAUDIO)))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="SECTION.KEY=VALUE (tiny-cpu)")
    ap.add_argument("--out", help="keep the runs here (default: a temporary directory)")
    ap.add_argument("--json", help="write the per-seed results here")
    args = ap.parse_args()
    args.seeds = args.seeds or (1 if args.quick else 3)
    args.minutes = args.minutes or (2.0 if args.quick else 15.0)

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(args.out) if args.out else Path(t)
        tmp.mkdir(parents=True, exist_ok=True)
        data, variant, what = data_source(args, tmp)
        ov = ["train.tensorboard=false", *args.overrides]
        steps = steps_for(args.minutes, data, variant, ov, tmp)
        print(
            f"tiny-cpu on {what}; {args.minutes:g} min per seed ≈ {steps} steps; overrides: {args.overrides or 'none'}",
            flush=True,
        )
        results = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            r = run_seed(seed, args.minutes, steps, data, variant, ov, tmp / f"seed{seed}")
            results.append(r)
            curve = " ".join(f"{v['step']}:{v['val_contrastive']:.2f}" for v in r["vals"])
            last = r["vals"][-1] if r["vals"] else None
            tail = (
                f"held-out contrastive {last['val_contrastive']:.3f} (chance {last['val_contrastive_chance']:.3f})"
                if last
                else "held-out contrastive n/a (chance n/a)"
            )
            below = 1 - last["val_contrastive"] / last["val_contrastive_chance"] if last else 0.0
            stop = f" stopped by {r['stop'].split(':')[0]};" if r["stop"] else ""
            print(
                f"seed {seed}: {r['steps']} steps in {r['cpu_minutes']:.1f} CPU-min ({r['minutes']:.1f} min wall);{stop} held-out curve {curve}; "
                f"{below:+.1%} vs chance; {tail}",
                flush=True,
            )
        ok = sum(
            1
            for r in results
            if r["vals"] and r["vals"][-1]["val_contrastive"] <= 0.9 * r["vals"][-1]["val_contrastive_chance"]
        )
        print(f"{ok}/{len(results)} seeds ≥ 10 % below chance", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
