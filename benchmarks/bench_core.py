"""Curation-core benchmarks (issue: curation core).

(a) filter + dedup of a synthetic 1,000,000-row catalog (target < 10 s);
(b) naive `seq` pipeline throughput on generated FLAC, in audio hours per CPU-core-hour, side by side with
    plain `ffmpeg` decoding of the same files (target: within 2x of decode-only), for both runners.

    python -m benchmarks.bench_core [--quick] [--rows N] [--files N --minutes M]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd


def synthetic_recordings(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    genres = np.array(["news", "talkshow", "documentary", "music", "commercial", "sport", "kids"])
    titles = np.array([f"Programme {i}" for i in range(5000)])
    day = pd.Timestamp("2000-01-01") + pd.to_timedelta(rng.integers(0, 7000, n), unit="D")
    hour = pd.to_timedelta(rng.integers(0, 24, n), unit="h")
    published = (day + hour).strftime("%Y-%m-%dT%H:%M:%S")
    t_idx = rng.integers(0, len(titles), n)
    df = pd.DataFrame(
        {
            "recording_id": [f"r{i:07d}" for i in range(n)],
            "audio_path": [f"/archive/r{i:07d}.mp4" for i in range(n)],
            "duration_s": rng.uniform(600, 4 * 3600, n),
            "sample_rate": 48000,
            "num_channels": 2,
            "codec": "aac",
            "title": titles[t_idx],
            "summary": "Summary " + pd.Series(t_idx % 97).astype(str),
            "genre": genres[rng.integers(0, len(genres), n)],
            "published": published,
            "language": "nl",
            "metadata": None,
        }
    )
    # 5 % reruns: a copy of a row published 3 hours later the same day
    k = n // 20
    dup = df.sample(k, random_state=seed).copy()
    dup["recording_id"] = [f"d{i:07d}" for i in range(k)]
    dup["published"] = (pd.to_datetime(dup["published"]) + pd.Timedelta(minutes=1)).dt.strftime("%Y-%m-%dT%H:%M:%S")
    return pd.concat([df.iloc[: n - k], dup], ignore_index=True)


def bench_filters(rows: int) -> None:
    from curate.config import parse_pipeline
    from curate.testing.oracle import apply_filters

    df = synthetic_recordings(rows)
    pipe = parse_pipeline(
        {
            "name": "bench",
            "filters": [
                {"stage": "genre_filter", "deny": ["music", "commercial"]},
                {"stage": "duration_filter", "max_s": 10800},
                {"stage": "date_filter", "start": "2001-01-01"},
                {"stage": "column_filter", "column": "language", "equals": "nl"},
                {"stage": "metadata_dedup", "keep": "first"},
            ],
        }
    )
    t0 = time.perf_counter()
    decisions = apply_filters(df, pipe.filters)
    dt = time.perf_counter() - t0
    kept = sum(d.kept for d in decisions)
    dups = sum(d.stage == "metadata_dedup" for d in decisions)
    print(
        f"(a) filter + dedup of {rows:,} catalog rows: {dt:.2f} s  (target < 10 s)  "
        f"kept {kept:,}, duplicates {dups:,}, decisions {len(decisions):,}"
    )


def make_flacs(root: Path, files: int, minutes: float) -> Path:
    from curate.testing import make_catalog

    root.mkdir(parents=True, exist_ok=True)
    sr = 16000
    rows = []
    rng = np.random.default_rng(0)
    for i in range(files):
        p = root / f"prog{i:03d}.flac"
        if not p.exists():
            n = int(minutes * 60 * sr)
            t = np.arange(n) / sr
            x = (
                0.2 * np.sin(2 * np.pi * (200 + 10 * i) * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2
                + 0.05 * rng.standard_normal(n)
            ).astype(np.float32)
            import soundfile as sf

            sf.write(p, x, sr)
        rows.append(
            {
                "recording_id": f"prog{i:03d}",
                "audio_path": p.name,
                "title": f"P{i}",
                "genre": "news",
                "published": f"2020-01-{1 + i % 28:02d}T{i % 24:02d}:00:00",
            }
        )
    return make_catalog(root / "catalog.csv", rows)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (ffmpeg, Ray workers are not children: see below)."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def ffmpeg_decode(path: Path) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ac", "1", "-ar", "16000", "-f", "f32le", "-"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def bench_naive(files: int, minutes: float, workdir: Path) -> None:
    from curate.config import load_pipeline
    from curate.runners import run_pipeline

    catalog = make_flacs(workdir / "flac", files, minutes)
    audio_h = files * minutes / 60
    cores = os.cpu_count() or 1
    flacs = sorted((workdir / "flac").glob("*.flac"))

    t0, c0 = time.perf_counter(), cpu_seconds()
    with ThreadPoolExecutor(cores) as pool:
        list(pool.map(ffmpeg_decode, flacs))
    wall_ref, cpu_ref = time.perf_counter() - t0, cpu_seconds() - c0
    ref = audio_h / (cpu_ref / 3600)
    print(f"(b) {files} FLAC files, {audio_h:.2f} h of audio, {cores} cores")
    print(f"    ffmpeg decode only : {ref:10,.0f} audio-h per CPU-core-h   (wall {wall_ref:.1f} s)")
    pipe = load_pipeline(Path(__file__).resolve().parent.parent / "pipelines" / "seq.yaml")
    from curate.runners import ray as ray_runner

    t0 = time.perf_counter()
    ray_runner.init()  # once per process (or cluster): timed apart from the pipeline
    print(f"    (ray.init: {time.perf_counter() - t0:.1f} s, not counted below)")
    for runner in ("local", "ray"):
        out = workdir / f"run-{runner}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        t0, c0 = time.perf_counter(), cpu_seconds()
        run_pipeline(pipe, catalog, out, runner=runner)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        if runner == "ray":
            # Ray workers are not our children: count wall x cores (an upper bound on CPU used)
            cpu, how = wall * cores, f"wall x {cores} cores"
        else:
            how = "measured CPU time incl. ffmpeg"
        rate = audio_h / (cpu / 3600)
        print(
            f"    curate seq ({runner:5s}): {rate:10,.0f} audio-h per CPU-core-h   (wall {wall:.1f} s, {how})"
            f" → {ref / rate:.2f}x the decode-only cost (target ≤ 2x)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--files", type=int, default=None)
    ap.add_argument("--minutes", type=float, default=None)
    args = ap.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    files = args.files or (4 if args.quick else 16)
    minutes = args.minutes or (2.0 if args.quick else 15.0)
    bench_filters(rows)
    with tempfile.TemporaryDirectory() as d:
        bench_naive(files, minutes, Path(d))


if __name__ == "__main__":
    main()
