"""Whisper transcription throughput: the pipeline (`curate run`, local and Ray runners) vs faster-whisper
called directly on the same files, in the same process run. Target: pipeline overhead <= 10 %.

    python -m benchmarks.bench_whisper            # 3 files x 100 s of real speech, best of 2
    python -m benchmarks.bench_whisper --quick    # 2 files x 45 s, once

Audio: real speech clips from ../shared/data/realaudio concatenated with short pauses (espeak-ng speech
when that folder is absent). Both sides load the model once and decode the audio themselves; the
pipeline also probes, verifies (a full decode scan) and writes Parquet, which is the overhead measured.
Direct and pipeline runs are interleaved and the best of N is reported (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
REALAUDIO = Path(os.environ.get("CURATE_REALAUDIO", REPO.parent / "shared" / "data" / "realaudio"))
SENTENCES = {
    "nl": [
        "De eerste keer hardlopen kan ik mij nog goed herinneren.",
        "Het weer wordt morgen zonnig en droog.",
        "In de haven van Rotterdam liggen vandaag veel schepen.",
        "De gemeente bouwt nieuwe woningen bij het station.",
    ],
    "en": [
        "The committee will meet again next week to discuss the plan.",
        "It was a cold morning in the harbour.",
        "Six spoons of fresh snow peas and a snack for her brother.",
        "The new line opens to passengers in spring.",
    ],
}


def speech_clips() -> list[np.ndarray]:
    from curate import audio

    if (REALAUDIO / "flac").is_dir():
        files = sorted(p for p in (REALAUDIO / "flac").glob("sp_*.flac") if p.stem.startswith(("sp_en_", "sp_nl_")))
        return [audio.load(p) for p in files]
    clips = []
    with tempfile.TemporaryDirectory() as d:
        for lang, lines in SENTENCES.items():
            for i, line in enumerate(lines):
                wav = Path(d) / f"{lang}{i}.wav"
                subprocess.run(["espeak-ng", "-v", lang, "-w", str(wav), line], check=True)
                clips.append(audio.load(wav))
    return clips


def make_files(root: Path, n_files: int, seconds: float) -> tuple[Path, float]:
    from curate.testing import make_catalog, write_audio

    clips = speech_clips()
    rng = np.random.default_rng(0)
    rows, total = [], 0.0
    for i in range(n_files):
        parts, dur = [], 0.0
        while dur < seconds:
            c = clips[int(rng.integers(len(clips)))]
            parts += [c, np.zeros(int(16000 * rng.uniform(0.3, 1.5)), dtype=np.float32)]
            dur += (len(c) + len(parts[-1])) / 16000
        x = np.concatenate(parts)[: int(seconds * 16000)]
        write_audio(root / f"prog{i}.flac", x)
        rows.append({"recording_id": f"prog{i}", "audio_path": f"prog{i}.flac", "title": f"P{i}", "language": "en"})
        total += len(x) / 16000
    return make_catalog(root / "catalog.csv", rows), total


def direct(files: list[Path], model_path: str, args) -> float:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from curate import audio

    t0 = time.perf_counter()
    model = WhisperModel(model_path, device="cpu", compute_type="int8", cpu_threads=args.cpu_threads)
    pipe = BatchedInferencePipeline(model) if args.batch_size > 1 else model
    for f in files:
        x = audio.load(f)
        kw = {"language": "en", "beam_size": args.beam_size, "vad_filter": False, "temperature": [0.0]}
        if args.batch_size > 1:
            dur = len(x) / 16000
            kw.update(
                batch_size=args.batch_size,
                without_timestamps=False,
                clip_timestamps=[{"start": s, "end": min(s + 30.0, dur)} for s in range(0, int(dur), 30)],
            )
        segs, _ = pipe.transcribe(x, **kw)
        list(segs)
    return time.perf_counter() - t0


def pipeline(catalog: Path, out: Path, runner: str, args) -> tuple[float, float]:
    """(wall seconds of the whole run, seconds of its segment phase: ingest and planning excluded)."""
    from curate.config import parse_pipeline
    from curate.runners import run_pipeline

    stage = {
        "stage": "whisper_transcribe",
        "model": args.model,
        "device": "cpu",
        "beam_size": args.beam_size,
        "batch_size": args.batch_size,
        "cpu_threads": args.cpu_threads,
        "temperature_fallback": False,
        "cpus": args.cpu_threads,
        "emit": "w-raw",
    }
    pipe = parse_pipeline({"name": "bench", "settings": {"shard_size": 1}, "passes": {"whisper": [stage]}})
    t0 = time.perf_counter()
    run = run_pipeline(pipe, catalog, out, runner=runner, num_workers=1)
    return time.perf_counter() - t0, run["timings_s"]["segment"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 files x 45 s, once")
    ap.add_argument("--files", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=100.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--model", default="faster-whisper:base")
    ap.add_argument("--beam-size", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--cpu-threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--runners", default="local,ray")
    args = ap.parse_args()
    if args.quick:
        args.files, args.seconds, args.repeats = 2, 45.0, 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from curate.models import resolve

    model_path = str(resolve(args.model).path)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        catalog, audio_s = make_files(root / "archive", args.files, args.seconds)
        files = sorted((root / "archive").glob("prog*.flac"))
        print(
            f"{args.files} files, {audio_s:.0f} s of speech; {args.model}, beam {args.beam_size}, batch "
            f"{args.batch_size}, {args.cpu_threads} threads, int8 CPU; {os.cpu_count()} cores",
            flush=True,
        )
        times: dict[str, list[tuple[float, float]]] = {"direct": []}
        for rep in range(args.repeats):  # interleaved, best of N: the machine may be shared
            t = direct(files, model_path, args)
            times["direct"].append((t, t))
            print(f"  repeat {rep + 1}: direct {t:.1f} s", end="", flush=True)
            for runner in args.runners.split(","):
                times.setdefault(runner, []).append(pipeline(catalog, root / f"run-{runner}-{rep}", runner, args))
                print(f", {runner} {times[runner][-1][0]:.1f} s", end="", flush=True)
            print()
        ref_s = min(t for t, _ in times.pop("direct"))
        print(
            f"\n| mode (best of {args.repeats}) | wall s | audio s per s | overhead vs direct | segment phase s "
            "| its overhead |\n|---|---:|---:|---:|---:|---:|"
        )
        print(f"| faster-whisper direct | {ref_s:.1f} | {audio_s / ref_s:.2f} | — | — | — |")
        for runner, ts in times.items():
            t, seg = min(ts)
            print(
                f"| curate run --runner {runner} | {t:.1f} | {audio_s / t:.2f} | {100 * (t - ref_s) / ref_s:+.1f} % "
                f"| {seg:.1f} | {100 * (seg - ref_s) / ref_s:+.1f} % |"
            )
        print("\n(target: overhead <= 10 %; the Ray figure includes ray.init and actor start-up)")


if __name__ == "__main__":
    sys.exit(main())
