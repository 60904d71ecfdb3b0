"""Audio de-duplication benchmarks (issue #17).

(a) fingerprint throughput: Chromaprint (one ffmpeg decode to 11025 Hz + the library, ``stage: fingerprint``)
    in audio hours per CPU-core hour, side by side with plain ffmpeg decoding of the same files to 16 kHz
    (what every pipeline pays anyway). Target: fingerprinting at >= 50 % of decode-only speed.
(b) index query cost as the catalog grows: generated fingerprints (30 s each, 5 % noisy reruns, a shared
    jingle in half of them), 1 k → 100 k; ``find_matches`` time per fingerprint must stay ~flat (total cost
    ~linear), and every planted rerun must be found.

    python -m benchmarks.bench_audio_dedup [--quick] [--files N --minutes M] [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ITEMS_PER_S = 11025 / (4096 / 3)


def cpu_seconds() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def make_programmes(root: Path, files: int, minutes: float) -> list[Path]:
    """Broadcast-like files: synthetic music at 44.1 kHz, half FLAC, half mp3."""
    import soundfile as sf

    from curate.synth import sounds as snd

    paths = []
    for i in range(files):
        rng = np.random.default_rng(i)
        x = np.concatenate([snd.instrumental(rng, 44100, 30.0) for _ in range(int(minutes * 2))])
        flac = root / f"prog{i:03d}.flac"
        sf.write(flac, x, 44100)
        if i % 2:
            mp3 = flac.with_suffix(".mp3")
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(flac), "-b:a", "128k", str(mp3)], check=True)
            flac.unlink()
            flac = mp3
        paths.append(flac)
    return paths


def ffmpeg_decode(path: Path) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ac", "1", "-ar", "16000", "-f", "f32le", "-"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def bench_throughput(files: int, minutes: float, workdir: Path) -> None:
    from curate.models.fingerprint import fingerprint_file, library_version

    paths = make_programmes(workdir, files, minutes)
    audio_h = files * minutes / 60
    rates = {}
    for name, fn in (("ffmpeg decode only", ffmpeg_decode), ("fingerprint", fingerprint_file)):
        c0, t0 = cpu_seconds(), time.perf_counter()
        for p in paths:  # one core: CPU time is the cost
            fn(p)
        cpu, wall = cpu_seconds() - c0, time.perf_counter() - t0
        rates[name] = audio_h / (cpu / 3600)
        print(f"    {name:20s}: {rates[name]:8,.0f} audio-h per CPU-core-h  (CPU {cpu:.1f} s, wall {wall:.1f} s)")
    share = 100 * rates["fingerprint"] / rates["ffmpeg decode only"]
    print(
        f"(a) Chromaprint {library_version()} on {files} files ({audio_h:.2f} h, 44.1 kHz FLAC + mp3): "
        f"fingerprinting runs at {share:.0f} % of decode-only speed (target >= 50 %)"
    )


def generated_catalog(n: int, seconds: float, seed: int = 0) -> tuple[list[np.ndarray], dict[int, int]]:
    """``n`` fingerprints: random ones, 5 % noisy trimmed copies of an earlier one, a jingle in half."""
    rng = np.random.default_rng(seed)
    items = int(seconds * ITEMS_PER_S)
    jingle = rng.integers(0, 2**32, int(8 * ITEMS_PER_S), dtype=np.uint32)
    fps: list[np.ndarray] = []
    reruns: dict[int, int] = {}
    for i in range(n):
        if i > 10 and rng.random() < 0.05:
            j = int(rng.integers(0, i))
            while j in reruns:
                j = reruns[j]
            src = fps[j][int(rng.integers(0, 10)) :]
            flips = (rng.random((src.size, 32)) < 0.03) @ (1 << np.arange(32, dtype=np.uint64))
            fps.append(src ^ flips.astype(np.uint32))
            reruns[i] = j
            continue
        fp = rng.integers(0, 2**32, items, dtype=np.uint32)
        if rng.random() < 0.5:
            fp[: jingle.size] = jingle
        fps.append(fp)
    return fps, reruns


def bench_index(sizes: list[int], seconds: float) -> None:
    from curate.stages.audio_dedup import FingerprintIndex, MatchParams, find_matches, find_reruns

    print(f"(b) index + query over generated {seconds:.0f} s fingerprints (5 % reruns, a jingle in half of them)")
    print(
        "| fingerprints | items | index build s | find_matches s | µs per fingerprint | growth vs linear | reruns found |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    base = None
    for n in sizes:
        fps, planted = generated_catalog(n, seconds)
        t0 = time.perf_counter()
        FingerprintIndex(fps, 32)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        matches = find_matches(fps, MatchParams())
        total = time.perf_counter() - t0
        found = find_reruns(matches, [f.size for f in fps])
        hits = sum(1 for d, k in planted.items() if found.get(d, (None,))[0] == k)
        per = total / n
        base = base or per
        items = sum(f.size for f in fps)
        print(
            f"| {n:,} | {items:,} | {build:.2f} | {total:.2f} | {per * 1e6:,.0f} | {per / base:.2f}x "
            f"| {hits}/{len(planted)} (+{len(found) - hits} other) |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    ap.add_argument("--files", type=int, default=None)
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--sizes", default=None, help="comma-separated catalog sizes for (b)")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each generated fingerprint in (b)")
    args = ap.parse_args()
    files = args.files or (2 if args.quick else 6)
    minutes = args.minutes or (2.0 if args.quick else 10.0)
    sizes = [int(s) for s in (args.sizes or ("1000,3000,10000" if args.quick else "1000,10000,100000")).split(",")]
    with tempfile.TemporaryDirectory() as d:
        bench_throughput(files, minutes, Path(d))
    bench_index(sizes, args.seconds)


if __name__ == "__main__":
    main()
