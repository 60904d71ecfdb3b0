"""How fast ``curate explore`` answers over a 1,000,000-segment variant (issue 23's targets), over real HTTP.

Builds a run (:func:`curate.testing.explore.make_explore_run`: 1,000 recordings × 1,000 segments in variant
``big``, a 10-minute local FLAC behind them), starts the server on 127.0.0.1 and measures, side by side with the
targets: opening the page (``/``, its assets and ``/api/overview``), the first table page, a sorted and filtered
page, and the time to the first audio byte of a segment of the local recording. "Cold" = the first request of a
fresh server (it reads the variant / computes a sort order); "warm" = the median of later ones.

    python -m benchmarks.bench_explore [--quick] [--run DIR]
    (--quick: 100,000 segments; --run: build the run in DIR once and reuse it on later calls)
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

TARGETS = {"page": 1.0, "first_table_page": 1.0, "sorted_filtered_page": 1.0, "first_audio_byte": 0.5}


def _get(base: str, path: str, params: dict | None = None, first_byte: bool = False) -> float:
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        if first_byte:
            r.read(1)
            dt = time.perf_counter() - t
            r.read()
            return dt
        r.read()
    return time.perf_counter() - t


def _open_page(base: str, parts: dict | None = None) -> float:
    """The requests the overview makes: the HTML, its assets, then the overview (variants table, cuts per reason)
    and the first histogram, asked together as the page asks them (app.js); ``parts`` receives the times."""
    from concurrent.futures import ThreadPoolExecutor

    shell = sum(_get(base, p) for p in ("", "assets/app.js", "assets/charts.js", "assets/style.css"))
    t = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        histogram = pool.submit(_get, base, "api/histogram", {"column": "duration_s"})
        overview = _get(base, "api/overview")
        histogram = histogram.result()
    both = time.perf_counter() - t
    if parts is not None:
        parts.update(shell=shell, overview=overview, histogram=histogram, both=both)
    return shell + both


def _serve(run_dir: Path):
    from curate.explore.explorer import Explorer
    from curate.explore.server import Server

    t = time.perf_counter()
    server = Server(Explorer(run_dir))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="100,000 segments instead of 1,000,000")
    ap.add_argument("--run", type=Path, help="a folder to build the run in once, reused when it already holds one")
    args = ap.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    n_rec, per_rec = (100, 1000) if args.quick else (1000, 1000)
    from curate.testing.explore import make_explore_run

    with tempfile.TemporaryDirectory(prefix="bench-explore-") as tmp:
        t = time.perf_counter()
        root = args.run or Path(tmp)
        if args.run and (root / "run" / "run.json").is_file():
            run_dir = root / "run"
            print(f"reusing the run in {run_dir}", flush=True)
        else:
            run_dir = make_explore_run(
                root, n_recordings=n_rec, duration_s=600.0, segments_per_recording=per_rec, audio_files=1
            )
            print(f"built a run with {n_rec * per_rec:,} segments in 'big' in {time.perf_counter() - t:.1f} s")
        sort = {"sort": "snr_db", "desc": 1}
        filt = [["music_ratio", "<", 0.1], ["duration_s", ">=", 3]]
        other = [["music_ratio", "<", 0.2], ["speaker", "==", "SPEAKER_01"]]
        page = {"variant": "big", "limit": 50}
        # a segment of recording 0 well inside its 10-minute FLAC
        clip = {"rec": "prog/000", "start": 301.25, "end": 309.75}

        server, start_s = _serve(run_dir)
        parts: dict[str, float] = {}
        base = f"http://127.0.0.1:{server.port}/"
        cold, cpu = {"server_start": start_s}, {}  # cpu: the process's CPU seconds (server and client) per measure
        for name, ask in [
            ("page", lambda: _open_page(base, parts)),
            ("first_table_page", lambda: _get(base, "api/segments", page)),  # its rows' row groups only
            ("sorted_filtered_page", lambda: _get(base, "api/segments", {**page, **sort, "filters": json.dumps(filt)})),
            ("first_audio_byte", lambda: _get(base, "api/clip.wav", clip, first_byte=True)),
        ]:
            c = time.process_time()
            cold[name] = ask()
            cpu[name] = time.process_time() - c
        # a sort by a column not read before, filtered on columns not read before
        first_sort = _get(base, "api/segments", {**page, "sort": "avg_logprob", "filters": json.dumps(other)})
        recording = _get(base, "api/recording", {"rec": "prog/500"})  # lanes of both variants, cuts, tracks
        warm = {
            "page": statistics.median(_open_page(base) for _ in range(5)),
            "first_table_page": statistics.median(_get(base, "api/segments", page) for _ in range(5)),
            "sorted_filtered_page": statistics.median(
                _get(base, "api/segments", {**page, **sort, "filters": json.dumps(f), "offset": 50 * k})
                for k, f in enumerate([other, filt, other, filt, other])
            ),
            "first_audio_byte": statistics.median(
                _get(base, "api/clip.wav", {**clip, "start": clip["start"] + 10 * k, "end": clip["end"] + 10 * k}, True)
                for k in range(1, 6)  # new spans: decoded each time, not cached
            ),
        }
        server.shutdown()

    print(
        f"\nserver start (recordings.parquet, every variant's Parquet footers, the pandas import, bind): {cold['server_start']:.3f} s"
    )
    print("cold = first request of a fresh server: the page reads stats.json and one column per variant for its")
    print("histogram; the first table page reads the row groups of its rows; the first sorted, filtered page reads")
    print("its sort and filter columns (duration_s is already read for the histogram) and the row groups of its rows.")
    print(
        f"then a sorted, filtered page by avg_logprob, filtered on speaker (columns not read before): {first_sort:.3f} s"
    )
    print(f"then the first opening of a recording (every variant's lanes): {recording:.3f} s")
    import os
    import resource

    print(
        f"peak memory of the process (server and client): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("cold page = " + " + ".join(f"{k} {v:.3f} s" for k, v in parts.items()) + "\n")
    print("| measure | cold s | cold CPU s | warm s (median of 5) | target s | met (warm / cold) |")
    print("|---|---:|---:|---:|---:|---|")
    for k, target in TARGETS.items():
        met = f"{'yes' if warm[k] < target else 'NO'} / {'yes' if cold[k] < target else 'NO'}"
        print(f"| {k} | {cold[k]:.3f} | {cpu[k]:.3f} | {warm[k]:.3f} | < {target:g} | {met} |")


if __name__ == "__main__":
    main()
