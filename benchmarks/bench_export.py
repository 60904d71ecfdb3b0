"""Export/materialize benchmark (issue: export and selection).

Materialize (flac, pcm16) and export (hf, webdataset embed audio; fairseq materializes; lhotse, nemo, kaldi
write metadata only) throughput in audio hours per CPU-core-hour, on generated FLAC programmes, printed side by
side with a plain decode of the same audio (ffmpeg → 16 kHz float, and soundfile) as the reference: cutting
segments should cost about what decoding costs.

    python -m benchmarks.bench_export [--quick] [--files N --minutes M --window S] [--ray]

CPU time is this process plus its children (ffmpeg), from getrusage; the Ray figure (``--ray``) is wall time ×
the CPUs Ray was given, as Ray workers are not children of this process.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def measure(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall s, cpu s) of one call."""
    w0, c0 = time.perf_counter(), _cpu()
    fn()
    return time.perf_counter() - w0, _cpu() - c0


def build(root: Path, files: int, minutes: float, window_s: float) -> Path:
    """``files`` tone+noise FLAC programmes, cut into ``window_s`` segments by the seq pipeline."""
    from curate.config import load_pipeline
    from curate.runners import run_pipeline
    from curate.testing import make_archive

    catalog = make_archive(root / "archive", n=files, duration_s=minutes * 60)
    pipe = load_pipeline(
        Path(__file__).resolve().parent.parent / "pipelines" / "seq.yaml", [f"naive_segment.window_s={window_s}"]
    )
    run_pipeline(pipe, catalog, root / "run", runner="local", verify_audio=False)
    return root / "run"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 files x 2 min")
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=6.0, help="length of each generated programme")
    ap.add_argument("--window", type=float, default=10.0, help="segment length (s)")
    ap.add_argument("--ray", action="store_true", help="also materialize flac with the Ray runner")
    args = ap.parse_args()
    if args.quick:
        args.files, args.minutes = 2, 2.0
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from curate import audio, manifest
    from curate.export import export
    from curate.export.materialize import materialize

    root = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        t0 = time.perf_counter()
        run = build(root, args.files, args.minutes, args.window)
        segs = manifest.read_table(run / "variants" / "seq", "segments", columns=["duration_s"])
        seg_h = sum(segs.column("duration_s").to_pylist()) / 3600
        files = sorted((root / "archive" / "audio").glob("*.flac"))
        total_h = sum(audio.probe(f).duration_s for f in files) / 3600
        print(
            f"archive: {len(files)} FLAC files, {total_h * 60:.1f} min; {segs.num_rows} segments, "
            f"{seg_h * 60:.1f} min (built in {time.perf_counter() - t0:.1f} s)\n"
        )
        rows: list[tuple[str, float, float, float]] = []
        import datasets  # noqa: F401 - import cost is not export cost: pay it before measuring
        import lhotse  # noqa: F401

        def ffmpeg_decode() -> None:
            for f in files:
                subprocess.run(
                    [
                        "ffmpeg",
                        "-nostdin",
                        "-v",
                        "error",
                        "-i",
                        str(f),
                        "-ac",
                        "1",
                        "-ar",
                        "16000",
                        "-f",
                        "f32le",
                        "-y",
                        "/dev/null",
                    ],
                    check=True,
                )

        def sf_decode() -> None:
            for f in files:
                audio.load(f)

        rows.append(("reference: ffmpeg decode", total_h, *measure(ffmpeg_decode)))
        rows.append(("reference: soundfile decode", total_h, *measure(sf_decode)))
        for fmt in ("flac", "pcm16"):
            rows.append(
                (
                    f"materialize {fmt} (local)",
                    seg_h,
                    *measure(lambda fmt=fmt: materialize(run, "seq", root / f"mat-{fmt}", fmt=fmt, runner="local")),
                )
            )
        for fmt in ("hf", "webdataset", "fairseq", "lhotse", "nemo", "kaldi"):
            rows.append(
                (
                    f"export {fmt} (local)",
                    seg_h,
                    *measure(lambda fmt=fmt: export(run, "seq", fmt, root / f"exp-{fmt}", runner="local")),
                )
            )
        if args.ray:
            from curate.runners import ray as ray_runner

            ray_runner.init()
            import ray

            cpus = int(ray.cluster_resources().get("CPU", 1))
            materialize(run, "seq", root / "mat-ray-warmup", fmt="pcm16", runner="ray")  # start the workers
            wall, _ = measure(lambda: materialize(run, "seq", root / "mat-ray", fmt="flac", runner="ray"))
            rows.append((f"materialize flac (ray, {cpus} CPUs)", seg_h, wall, wall * cpus))
        print(f"{'step':<36} {'wall s':>8} {'cpu s':>8} {'audio h / CPU-core-h':>22} {'vs ffmpeg decode':>17}")
        ref = rows[0][1] / (rows[0][3] / 3600)
        for name, hours, wall, cpu in rows:
            rate = hours / (max(cpu, 1e-6) / 3600)
            print(f"{name:<36} {wall:>8.2f} {cpu:>8.2f} {rate:>22,.0f} {rate / ref:>16.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
