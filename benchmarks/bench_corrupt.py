"""Corruption simulator benchmarks (issue: corruption simulator).

(a) collate-time corruption throughput per condition family, in audio seconds per CPU-second (= per core;
    the transform is single-threaded numpy), on realistic batches of ~2.4 M samples (150 s of audio, utterances
    of 10–16 s), side by side with the target of 2,000 (so it never limits a GPU trainer);
(b) dataset-level concatenation: pairing throughput (utterances/s) and concatenation audio throughput;
(c) Demucs stems: CODE-PATH FIGURE ONLY — the random-weight tiny Demucs on CPU. Real Demucs (htdemucs) throughput
    needs a GPU machine, which this benchmark cannot reach here; run it there with --demucs-model/--demucs-repo.

    python -m benchmarks.bench_corrupt [--quick] [--batches N] [--demucs-clips N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: the figure is per core

import numpy as np

TARGET = 2000.0
SR = 16_000
REALAUDIO = Path(
    os.environ.get("CURATE_REALAUDIO", Path(__file__).resolve().parents[2] / "shared" / "data" / "realaudio")
)
FAMILIES = ["2spk-mix", "sub-noise", "sub-music", "mix-noise", "mix-music", "mix-instr", "mix-vocal"]


def _clips(prefix: str, fallback_s: float, k: int, seed: int) -> dict[str, np.ndarray]:
    """Real clips from ../shared/data/realaudio when present (preloaded, as a training job would), else noise."""
    from curate import audio

    inv = REALAUDIO / "flac"
    files = sorted(inv.glob(f"{prefix}*.flac"))[:k] if inv.is_dir() else []
    if files:
        return {f.stem: audio.load(f) for f in files}
    rng = np.random.default_rng(seed)
    return {f"{prefix}{i}": (0.1 * rng.standard_normal(int(fallback_s * SR))).astype(np.float32) for i in range(k)}


def make_batches(n: int, samples_per_batch: int, seed: int = 0) -> list[list[np.ndarray]]:
    speech = list(_clips("sp_", 3.0, 60, seed).values())
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n):
        batch, total = [], 0
        while total < samples_per_batch:
            m = min(int(rng.uniform(10, 16) * SR), samples_per_batch - total)
            src = speech[int(rng.integers(len(speech)))]
            batch.append(np.resize(src, m).astype(np.float32))  # utterance-length speech from real clips
            total += m
        batches.append(batch)
    return batches


def bench_collate(batches: list[list[np.ndarray]], fractions: list[int]) -> None:
    from curate.corrupt import AudioPool, CorruptionTransform, Sources, load_condition

    noise = AudioPool.from_arrays("noise", _clips("nz_", 8.0, 15, 1))
    music = {**_clips("mi_", 30.0, 4, 2), **_clips("mv_", 30.0, 1, 3)}
    music = {k: np.resize(v, 30 * SR).astype(np.float32) for k, v in music.items()}  # FMA clips are 30 s
    sources = Sources(
        noise=noise,
        music=AudioPool.from_arrays("music", music),
        instrumental=AudioPool.from_arrays("instrumental", music),
        vocals=AudioPool.from_arrays("vocals", music),
    )
    audio_s = sum(x.size for b in batches for x in b) / SR
    per_batch = sum(x.size for x in batches[0])
    print(
        f"\n(a) collate-time corruption: {len(batches)} batches × ~{per_batch / 1e6:.2f} M samples "
        f"({per_batch / SR:.0f} s of audio, {len(batches[0])} utterances), 1 core"
    )
    print(f"{'condition':<16}{'audio s / CPU-s':>18}{'wall audio s/s':>18}{'target':>10}  verdict")
    for fam in FAMILIES:
        for x in fractions:
            name = f"{fam}-{x}"
            t = CorruptionTransform(load_condition(name), sources, seed=0)
            t(batches[0], 0, 0)  # warm-up
            c0, w0 = time.process_time(), time.perf_counter()
            for i, b in enumerate(batches):
                t(b, 0, i)
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            rate = audio_s / max(cpu, 1e-9)
            print(
                f"{name:<16}{rate:>18,.0f}{audio_s / wall:>18,.0f}{TARGET:>10,.0f}  "
                f"{'ok' if rate >= TARGET else 'BELOW TARGET'}"
            )


def bench_concat(n_utts: int) -> None:
    from curate.corrupt import ConcatTransform, Utterance, load_condition

    rng = np.random.default_rng(0)
    utts = [Utterance(f"u{i}", f"s{int(rng.integers(n_utts // 120 + 2))}", None) for i in range(n_utts)]
    utts = [Utterance(u.key, u.speaker, f"{u.speaker}-{i % 3}") for i, u in enumerate(utts)]
    print(f"\n(b) dataset-level concatenation ({n_utts:,} utterances, ~120 per speaker, 3 sessions each)")
    for name in ("1spk-concat", "2spk-concat"):
        c0 = time.process_time()
        pairs = ConcatTransform(load_condition(name), seed=0).pairs(utts)
        cpu = time.process_time() - c0
        print(f"{name:<16} pairing {n_utts / cpu:>12,.0f} utterances / CPU-s  ({len(pairs):,} examples)")
    a, b = np.zeros(14 * SR, np.float32), np.zeros(12 * SR, np.float32)
    c0, k = time.process_time(), 2000
    for _ in range(k):
        ConcatTransform.apply(a, b)
    rate = k * 26 / (time.process_time() - c0)
    print(
        f"{'concat audio':<16} {rate:>20,.0f} audio s / CPU-s   target {TARGET:,.0f}  {'ok' if rate >= TARGET else 'BELOW'}"
    )


def bench_demucs(n_clips: int, clip_s: float) -> None:
    import torch
    from demucs.demucs import Demucs

    from curate.corrupt.stems import StemsConfig, save_demucs_package, separate_stems
    from curate.testing import write_audio

    print(
        f"\n(c) Demucs stems — CODE-PATH FIGURE ONLY: random-weight tiny Demucs (channels=4, depth=2) on CPU, "
        f"{n_clips} clips × {clip_s:.0f} s, local runner, 1 thread, pyannote VAD included.\n"
        "    Real htdemucs throughput needs a GPU machine (none reachable here): not measured."
    )
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_demucs_package(
            Demucs(sources=["drums", "bass", "other", "vocals"], channels=4, depth=2, segment=4),
            tmp / "repo" / "tiny.th",
        )
        rng = np.random.default_rng(0)
        items = []
        for i in range(n_clips):
            p = write_audio(
                tmp / "fma" / f"{i:06d}.mp3",
                (0.1 * rng.standard_normal((int(clip_s * 44100), 2))).astype(np.float32),
                44100,
            )
            items.append({"track_id": f"{i:06d}", "path": str(p)})
        cfg = StemsConfig(model="tiny", repo=str(tmp / "repo"), device="cpu", threads=1)
        separate_stems(items[:1], tmp / "warm", cfg, runner="local")  # model + VAD load outside the timing
        w0 = time.perf_counter()
        separate_stems(items, tmp / "stems", cfg, runner="local")
        wall = time.perf_counter() - w0
    print(f"{'tiny demucs cpu':<16} {n_clips * clip_s / wall:>12,.1f} audio s / s (1 core; not a real-model figure)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small run (about a minute)")
    ap.add_argument("--batches", type=int, default=None, help="batches per condition")
    ap.add_argument("--demucs-clips", type=int, default=None)
    args = ap.parse_args()
    n = args.batches or (3 if args.quick else 20)
    fractions = [33] if args.quick else [10, 33, 50]
    print(
        f"corruption benchmark: {'quick' if args.quick else 'default'} run, target ≥ {TARGET:,.0f} audio s per "
        f"second per CPU core; machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(CPU-time figures are robust to load, wall figures are not)"
    )
    bench_collate(make_batches(n, 2_400_000), fractions)
    bench_concat(20_000 if args.quick else 281_241)  # LibriSpeech 960 h has 281,241 utterances
    bench_demucs(args.demucs_clips or (2 if args.quick else 4), 10.0 if args.quick else 30.0)


if __name__ == "__main__":
    main()
