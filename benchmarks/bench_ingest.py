"""Driver-scale benchmark (issue 15, "a bounded driver"): a large catalog over few audio files through ingest,
the metadata filters and dedup of `pipelines/seq.yaml`, and shard planning (`curate.runners.driver.prepare`,
the local path), with wall time and peak driver RSS side by side with the target (< 2 minutes, < 2 GB), at two
catalog sizes, so that "memory flat in the number of rows" can be judged (the growth per row is printed).

    python -m benchmarks.bench_ingest [--quick] [--rows 100000,1000000] [--files F] [--profile]

The catalog and audio are generated first (F small 2 s WAV files, N rows spread over them); each measured run
is a fresh child process, so its peak RSS is the driver's alone and not the generator's. The child also prints
the peak RSS reached by the end of each phase (ingest, filters, plan, plan recordings).

What the bounded driver bought, step by step (1,000,000 rows over 1,000 files unless said; peak driver RSS; this
machine has 2 cores shared with other work, load average 5-7 during these runs, so times are rough):

    before: Recording objects + row dicts for every row       48 s    1.80 GB   (~1.6 KB per row; as last
                                                                measured on main, not rerun here)
    ingest in chunks of 100k rows written with a ParquetWriter,
      filters over recordings.parquet, plan recordings on disk  ~59 s   0.64 GB
    per-row work: tidy per column, cached date parsing, cached
      field names, ASCII titles skip NFKD (200k rows)           ingest 7.7 → 4.7 s, 0.51 → 0.45 GB
    chunks of 50k rows, rows as lists, a suspended chunk
      generator holds nothing                                   ingest 30 s, 0.41 GB (filters then 0.57 GB)
    dedup compares keys as it makes them; aggregates get their
      declared columns as Arrow-backed text                     dedup of 1M rows 0.52 → 0.43 GB
    plan recordings stream when the kept rows are in file order  0.53 → 0.49 GB
    the CSV is read a 1 MB block at a time                      ingest peak 0.41 → 0.35 GB
    empty cells cleaned per column; dedup text straight from
      Arrow; no copying filter when every recording is alive    dedup of 1M rows 0.41 → 0.36 GB
    full benchmark, first run  (--rows 100000,1000000)          100k: 6.7 s 0.24 GB; 1M: 57.8 s 0.48 GB
    full benchmark, final run  (--rows 100000,1000000)          100k: 5.4 s 0.25 GB; 1M: 33.0 s 0.46 GB
                                                                (0.24 KB and 31 µs per row from 100k to 1M;
                                                                main at 100k, same hour: 10.0 s 0.30 GB)

What still grows with the rows: the set of recording ids seen (duplicate-id check, ~90 bytes a row), the plan's
ids (``Plan.shards``, plan.json), the columns an aggregate reads (dedup: id, title, summary, date, duration),
for a catalog not sorted by id, the recordings table while the plan's recordings are written in id order, and,
per distinct audio file, its probe and resolved path (not measured: this benchmark has 1,000 files; a catalog of
one file per row keeps these for every row).
"""

from __future__ import annotations

import argparse
import cProfile
import json
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
    catalog = root / f"catalog-{rows}.csv"
    with catalog.open("w") as f:
        f.write("recording_id,audio_path,title,genre,published,language\n")
        for i in range(rows):
            day = 1 + i % 28
            f.write(
                f"r{i:08d},audio/f{i % files:05d}.wav,Programme {i},{genres[i % 5]},"
                f"2020-{1 + i % 12:02d}-{day:02d}T{i % 24:02d}:00:00,nl\n"
            )
    return catalog


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is KiB on Linux


def _phase_peaks() -> dict[str, float]:
    """Record the peak RSS at the end of each phase of prepare() (wraps the driver's phase functions)."""
    from curate.runners import driver

    peaks: dict[str, float] = {}
    for name, label in [
        ("ingest_to_run", "ingest"),
        ("filter_run", "filters"),
        ("_plan", "plan"),
        ("write_plan_recordings", "plan recordings"),
    ]:
        real = getattr(driver, name)

        def timed(*a, _real=real, _label=label, **kw):
            out = _real(*a, **kw)
            peaks[_label] = _peak_gb()
            return out

        setattr(driver, name, timed)
    return peaks


def measure(catalog: Path, out: Path, profile: bool, result: Path | None) -> None:
    """The measured part (child process): prepare() of seq.yaml on ``catalog``."""
    from curate.config import load_pipeline
    from curate.runners.driver import prepare

    pipe = load_pipeline(Path(__file__).resolve().parent.parent / "pipelines" / "seq.yaml")
    peaks = _phase_peaks()
    start_gb = _peak_gb()
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    plan = prepare(pipe, catalog, out)
    if prof:
        prof.disable()
    dt = time.perf_counter() - t0
    rss_gb = _peak_gb()
    rows = sum(1 for _ in catalog.open()) - 1
    print(
        f"prepare() of {rows:,} catalog rows: {dt:.1f} s (target < {TARGET_S:.0f} s)  "
        f"peak driver RSS {rss_gb:.2f} GB (target < {TARGET_RSS_GB:.0f} GB)  "
        f"{plan.num_recordings:,} recordings, {sum(map(len, plan.shards)):,} kept in {len(plan.shards):,} shards  "
        f"[{'MET' if dt < TARGET_S and rss_gb < TARGET_RSS_GB else 'NOT MET'}]",
        flush=True,
    )
    print(
        f"  peak RSS by phase: after imports {start_gb:.2f} GB, "
        + ", ".join(f"{k} {v:.2f} GB" for k, v in peaks.items()),
        flush=True,
    )
    if result:
        result.write_text(json.dumps({"rows": rows, "seconds": dt, "rss_gb": rss_gb}))
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


def _summary(results: list[dict]) -> None:
    """The sizes side by side, with the growth of time and peak RSS per row between the first and the last."""
    print(f"\n{'rows':>12} {'seconds':>9} {'peak RSS GB':>12}   target: < {TARGET_S:.0f} s, < {TARGET_RSS_GB:.0f} GB")
    for r in results:
        print(f"{r['rows']:>12,} {r['seconds']:>9.1f} {r['rss_gb']:>12.2f}")
    if len(results) > 1:
        a, b = results[0], results[-1]
        per_row_kb = (b["rss_gb"] - a["rss_gb"]) * 1024**2 / (b["rows"] - a["rows"])
        per_row_us = (b["seconds"] - a["seconds"]) * 1e6 / (b["rows"] - a["rows"])
        print(f"growth from {a['rows']:,} to {b['rows']:,} rows: {per_row_kb:.2f} KB and {per_row_us:.0f} µs per row")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10,000 and 50,000 rows over 100 files")
    ap.add_argument("--rows", default=None, help="catalog sizes, comma-separated (default 100000,1000000)")
    ap.add_argument("--files", type=int, default=None, help="distinct audio files (default 1,000)")
    ap.add_argument("--profile", action="store_true", help="print the 30 heaviest calls (cProfile, cumulative)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep data here (default: a temp dir)")
    ap.add_argument("--measure", nargs=2, type=Path, metavar=("CATALOG", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        measure(*args.measure, args.profile, args.result)
        return
    sizes = [int(n) for n in (args.rows or ("10000,50000" if args.quick else "100000,1000000")).split(",")]
    files = args.files or (100 if args.quick else 1_000)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        for rows in sizes:
            t0 = time.perf_counter()
            catalog = make_data(root, rows, files)
            print(f"generated {rows:,} rows over {files:,} files in {time.perf_counter() - t0:.1f} s", flush=True)
            out, result = Path(tmp) / f"run-{rows}", Path(tmp) / f"result-{rows}.json"
            cmd = [sys.executable, "-m", "benchmarks.bench_ingest", "--measure", str(catalog), str(out)]
            cmd += ["--result", str(result)] + (["--profile"] if args.profile else [])
            rc = subprocess.run(cmd, cwd=Path(__file__).resolve().parent.parent).returncode
            if rc:
                sys.exit(rc)
            results.append(json.loads(result.read_text()))
    _summary(results)


if __name__ == "__main__":
    main()
