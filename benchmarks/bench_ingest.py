"""Driver-scale benchmark (issue 15, "a bounded driver"): a large catalog over few audio files through ingest,
the metadata filters and dedup of `pipelines/seq.yaml`, and shard planning (`curate.runners.driver.prepare`,
the local path), with wall time and peak driver RSS side by side with the target (< 2 minutes, < 2 GB).

    python -m benchmarks.bench_ingest [--quick] [--rows N] [--files F] [--profile]

The catalog and audio are generated first (F small 2 s WAV files, N rows spread over them); the measured part
runs in a fresh child process, so its peak RSS is the driver's alone and not the generator's.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_S = 120.0
TARGET_RSS_GB = 2.0


def make_data(root: Path, rows: int, files: int) -> Path:
    """``files`` 2 s WAV files under root/audio and a catalog.csv of ``rows`` rows over them."""
    import soundfile as sf

    (root / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(files):
        p = root / "audio" / f"f{i:05d}.wav"
        if not p.exists():
            sf.write(p, (0.1 * rng.standard_normal(32000)).astype(np.float32), 16000)
    genres = ["news", "talkshow", "documentary", "sport", "kids"]
    catalog = root / "catalog.csv"
    with catalog.open("w") as f:
        f.write("recording_id,audio_path,title,genre,published,language\n")
        for i in range(rows):
            day = 1 + i % 28
            f.write(
                f"r{i:08d},audio/f{i % files:05d}.wav,Programme {i},{genres[i % 5]},"
                f"2020-{1 + i % 12:02d}-{day:02d}T{i % 24:02d}:00:00,nl\n"
            )
    return catalog


def measure(catalog: Path, out: Path, profile: bool) -> None:
    """The measured part (child process): prepare() of seq.yaml on ``catalog``."""
    from curate.config import load_pipeline
    from curate.runners.driver import prepare

    pipe = load_pipeline(Path(__file__).resolve().parent.parent / "pipelines" / "seq.yaml")
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    plan = prepare(pipe, catalog, out)
    if prof:
        prof.disable()
    dt = time.perf_counter() - t0
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is KiB on Linux
    rows = sum(1 for _ in catalog.open()) - 1
    print(
        f"prepare() of {rows:,} catalog rows: {dt:.1f} s (target < {TARGET_S:.0f} s)  "
        f"peak driver RSS {rss_gb:.2f} GB (target < {TARGET_RSS_GB:.0f} GB)  "
        f"{plan.num_recordings:,} recordings, {sum(map(len, plan.shards)):,} kept in {len(plan.shards):,} shards  "
        f"[{'MET' if dt < TARGET_S and rss_gb < TARGET_RSS_GB else 'NOT MET'}]",
        flush=True,
    )
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="50,000 rows over 100 files")
    ap.add_argument("--rows", type=int, default=None, help="catalog rows (default 1,000,000)")
    ap.add_argument("--files", type=int, default=None, help="distinct audio files (default 1,000)")
    ap.add_argument("--profile", action="store_true", help="print the 30 heaviest calls (cProfile, cumulative)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep data here (default: a temp dir)")
    ap.add_argument("--measure", nargs=2, type=Path, metavar=("CATALOG", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        measure(*args.measure, args.profile)
        return
    rows = args.rows or (50_000 if args.quick else 1_000_000)
    files = args.files or (100 if args.quick else 1_000)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        t0 = time.perf_counter()
        catalog = make_data(root, rows, files)
        print(f"generated {rows:,} rows over {files:,} files in {time.perf_counter() - t0:.1f} s", flush=True)
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "benchmarks.bench_ingest", "--measure", str(catalog), str(out)]
        rc = subprocess.run(cmd + (["--profile"] if args.profile else []), cwd=Path(__file__).resolve().parent.parent)
        sys.exit(rc.returncode)


if __name__ == "__main__":
    main()
