"""What the clean variants keep, on REAL audio, dev and test halves (issue 21).

python -m benchmarks.bench_quality [--out manifests/bench_quality] [--programmes 6] [--minutes 3] [--cost] [--synthetic RUN]
python -m benchmarks.bench_quality --halves none --synthetic demo_out/runs/demo     # the synthetic demo's line only

1. Programmes (6 × 3 min per half by default: the bigger benchmark the shipped params were fitted on; docs/clean.md
   "Bigger benchmark") with a ground-truth timeline from the real clips of each half (:mod:`benchmarks.realaudio`: shared
   + benchmarks/data/realaudio, split by source).
2. ``pipelines/clean.yaml`` on each half (``curate run``; the CPU speed settings of the demo pipeline as
   ``--set``: greedy decoding, one thread per worker, coarser VAD/diarization steps). The model passes are
   run once and cached in the run directories: rerunning resumes, so re-tuning never re-runs Whisper.
3. The clean variants re-derived from the saved passes (``curate derive``, model-free), each half scored against
   its truth (:func:`curate.quality.evaluate_run`): the quality table per variant, dev and test.
4. With --cost, the tags pass's share of the wx pass's CPU time (both timed in-process on one dev programme).
5. With ``--synthetic RUN`` (a ``make demo`` run; its ground truth is ``RUN/../../archive/ground_truth.json``
   unless ``--synthetic-truth`` says where), the same table for the synthetic demo archive, as the demo run
   made its variants: reported beside the real halves, never a target (the synthetic archive cannot tune a tagger).

Tune on dev only (``curate calibrate RUN_DEV --reference DEV/ground_truth.json``); the test half is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import realaudio
from curate.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pipelines" / "clean.yaml"
# the demo pipeline's CPU settings (pipelines/demo.yaml), so two shared cores finish a half in minutes
CPU_SET = [
    "wx_transcribe.device=cpu", "wx_transcribe.cpu_threads=1", "wx_transcribe.beam_size=1",
    "wx_transcribe.batch_size=8", "wx_transcribe.vad_step_s=2.5",
    "wx_diarize.device=cpu", "wx_diarize.step_s=2.5",
    "whisper_transcribe.device=cpu", "whisper_transcribe.cpu_threads=1", "whisper_transcribe.beam_size=1",
    "whisper_transcribe.temperature_fallback=false", "whisper_transcribe.batch_size=8",
    "tag_speakers.device=cpu",
]  # fmt: skip
CLEAN_POST = ("wx-diar-3s-clean", "w-pp-3s-clean", "wx-asr-1s-clean")


def tagging_cost(programme: Path, sets: list[str] | None = None) -> str:
    """CPU seconds of the tags pass and of the wx pass on one programme, in-process, with clean.yaml's stage
    params (+ ``sets``, default CPU_SET); models loaded before timing."""

    import torch

    from curate import audio
    from curate.config import load_pipeline
    from curate.schema import Recording
    from curate.stages.base import RecordingContext

    torch.set_num_threads(1)  # as one runner worker per core does; process_time counts every thread's spinning
    sets = CPU_SET if sets is None else sets
    pipe = load_pipeline(PIPELINE, sets)
    passes = {p.name: p.stages for p in pipe.passes}
    info = audio.probe(str(programme))
    ctx = RecordingContext(Recording("bench", str(programme), info.duration_s, 16000, 1, language="en"))
    ctx.audio()
    cpu: dict[str, float] = {}
    for name in ("tags", "whisperx"):
        segs: list = []
        for st in passes[name]:
            st.setup()
            t = time.process_time()
            res = st.process(ctx, segs)
            cpu[st.stage_name] = time.process_time() - t
            segs = res.segments if name == "whisperx" else segs
            st.teardown()
    tags = sum(v for k, v in cpu.items() if k.startswith("tag_"))
    wx = sum(v for k, v in cpu.items() if k.startswith("wx_"))
    cells = ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
    how = "the bench's CPU settings" if sets == CPU_SET else f"clean.yaml + {' '.join(sets) or 'nothing'}"
    return (
        f"tagging cost on {programme.name} ({info.duration_s:.0f} s; {how}; CPU s: {cells}): tags pass {tags:.1f} s = "
        f"{100 * tags / wx:.1f} % of the wx pass's {wx:.1f} s (target <= 15 %)"
    )


def curate(*args: str) -> None:
    cmd = ["nice", "-n", "10", sys.executable, "-m", "curate.cli", *args]
    print("$", " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def run_half(out: Path, half: str, programmes: int, minutes: float) -> Path:
    archive = realaudio.build(out / half / "archive", half, n_programmes=programmes, duration_s=minutes * 60)
    run = out / half / "run"
    if RunDir(run).is_run():  # the model passes are done: only the (model-free) derivations are redone below
        print(f"{run}: passes cached (delete it to run the models again)")
        return run
    sets = [a for s in CPU_SET for a in ("--set", s)]
    curate("run", str(PIPELINE), "--catalog", str(archive), "--out", str(run), "--runner", "local", *sets)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "manifests" / "bench_quality")
    ap.add_argument("--programmes", type=int, default=6, help="programmes per half")
    ap.add_argument("--minutes", type=float, default=3.0, help="minutes per programme")
    ap.add_argument("--halves", default="dev,test", help="real-audio halves to run, comma-separated, or none")
    ap.add_argument("--synthetic", type=Path, default=None, help="a demo run directory (ground truth beside it)")
    ap.add_argument("--synthetic-truth", type=Path, default=None, help="its ground_truth.json, if not the demo's")
    ap.add_argument("--no-derive", action="store_true", help="score the variants as the run left them")
    ap.add_argument("--cost", action="store_true", help="also time the tags pass against the wx pass (~2 min)")
    ap.add_argument("--cost-shipped", action="store_true", help="… and with clean.yaml's own decoding settings")
    args = ap.parse_args()
    halves = [h for h in args.halves.split(",") if h.strip() and h.strip() != "none"]
    if halves and not realaudio.roots():
        print("no real-audio folders found; real halves skipped")
        halves = []
    if halves:
        print(realaudio.describe())
    from curate import quality

    for half in halves:
        t0 = time.perf_counter()
        run = run_half(args.out, half, args.programmes, args.minutes)
        if not args.no_derive:
            for v in CLEAN_POST:
                post = REPO / "pipelines" / "post" / f"{v}.yaml"
                curate(
                    "derive",
                    str(run),
                    "--pipeline",
                    str(post),
                    *(["--force"] if RunDir(run).variant_path(v).is_dir() else []),
                )
        truth = quality.load_ground_truth(args.out / half / "archive" / "ground_truth.json")
        audio_min = sum(r.end_s for regions in truth.values() for r in regions[-1:]) / 60
        results = quality.evaluate_run(run, truth)
        print(f"\n## {half} half: {len(truth)} programmes, {audio_min:.1f} min ({time.perf_counter() - t0:.0f} s)\n")
        print(quality.format_quality(results, quality.Targets()))
        (args.out / half / "quality.json").write_text(json.dumps(quality.as_dict(results), indent=1))
    if args.cost:
        programme = args.out / "dev" / "archive" / "audio" / "dev-000.flac"
        print("\n" + tagging_cost(programme))  # the demo's CPU speed settings (greedy, coarse VAD steps)
        if args.cost_shipped:  # clean.yaml's own decoding settings (beam 5, 0.5 s VAD steps): slow on 2 cores
            print(tagging_cost(programme, [s for s in CPU_SET if s.endswith("device=cpu")]))
    if args.synthetic is not None:
        print(synthetic_table(args.synthetic, args.synthetic_truth))


def synthetic_table(run: Path, truth_path: Path | None = None) -> str:
    """The demo run's quality table, in the real halves' format (reported, not targeted)."""
    from curate import quality

    truth_path = truth_path or run.parent.parent / "archive" / "ground_truth.json"
    if not truth_path.is_file():
        raise SystemExit(f"{truth_path}: no ground truth for {run} (give --synthetic-truth)")
    truth = quality.load_ground_truth(truth_path)
    kept = quality.kept_reference(run, truth)
    audio_min = sum(r.end_s for regions in kept.values() for r in regions[-1:]) / 60
    res = quality.evaluate_run(run, truth)
    head = (
        f"\n## synthetic demo archive ({run}): {len(kept)} of {len(truth)} programmes kept by the run, "
        f"{audio_min:.1f} min; reported, not targeted\n"
    )
    return head + "\n" + quality.format_quality(res, quality.Targets())


if __name__ == "__main__":
    main()
