"""Pre-training throughput of wav2vec 2.0 BASE: curate.w2v2 vs transformers' Wav2Vec2ForPreTraining (random
init, same config) on the same batches in the same run, plus the data loader's sustained audio-s/s from
materialized pcm16 shards.

    python -m benchmarks.bench_pretrain --quick      # a few small steps (CPU: about 2 minutes)
    python -m benchmarks.bench_pretrain              # larger batches, more steps
    python -m benchmarks.bench_pretrain --device cuda --precision bf16 --batch-s 150 --steps 20   # on a GPU

MFU = audio-s/s × FLOPs per audio second (≈ 46 GFLOP for BASE, fwd + bwd) / peak FLOP/s. On CPU the peak is
*measured* here (best of a few fp32 GEMMs), so CPU MFU is relative to what this machine's BLAS achieves.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch


def measured_peak_flops(device: torch.device, n: int = 2048, reps: int = 5) -> float:
    a = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ a
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def make_batches(n: int, B: int, seconds: float, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    S = int(seconds * 16000)
    return [{"wav": (0.1 * rng.standard_normal((B, S))).astype(np.float32), "lengths": np.full(B, S)} for _ in range(n)]


def ours_step(cfg, device, bf16: bool, compile_: bool):
    from curate.w2v2.model import Wav2Vec2
    from curate.w2v2.step import accumulate_gradients, prepare

    torch.manual_seed(0)
    model = Wav2Vec2(cfg.model).to(device).train()
    if compile_:
        model.feature_extractor.compile(dynamic=False)
        for layer in model.layers:
            layer.compile(dynamic=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98))
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext
    return lambda g, b: (
        opt.zero_grad(),
        accumulate_gradients(model, [prepare(b, cfg, device, g)], cfg, 2.0, 1, autocast),
        opt.step(),
    )


def hf_step(cfg, device, bf16: bool):
    from transformers import Wav2Vec2ForPreTraining
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

    from curate.w2v2.export_hf import hf_config

    hc = hf_config(cfg.model)
    hc.mask_time_prob, hc.mask_time_length = cfg.model.span_p, cfg.model.mask_length
    torch.manual_seed(0)
    model = Wav2Vec2ForPreTraining(hc).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98))
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext

    def step(g, b):
        wav = torch.from_numpy(b["wav"]).to(device)
        T = int(model._get_feat_extract_output_lengths(wav.shape[1]))
        mask = _compute_mask_indices((wav.shape[0], T), hc.mask_time_prob, hc.mask_time_length, min_masks=2)
        neg = _sample_negative_indices((wav.shape[0], T), hc.num_negatives, mask_time_indices=mask)
        opt.zero_grad()
        with autocast():
            out = model(
                wav,
                mask_time_indices=torch.from_numpy(mask).to(device),
                sampled_negative_indices=torch.from_numpy(neg).to(device),
            )
        out.loss.backward()
        opt.step()

    return step


def interleaved(steps: dict, batches, device) -> dict[str, float]:
    """audio-s/s per trainer; steps alternate between trainers so a shared machine's load hits both alike."""
    spent = dict.fromkeys(steps, 0.0)
    for g, b in enumerate(batches):
        for name, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            step(g, b)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if g > 0:  # batch 0 is the warm-up (allocations, compile)
                spent[name] += time.perf_counter() - t
    audio = sum(b["wav"].size for b in batches[1:]) / 16000
    return {name: audio / t for name, t in spent.items()}


def bench_loader(n_segments: int, seconds: float, workers: int) -> tuple[float, float]:
    """(audio-s/s reading + collating batches from pcm16 shards, hours read)."""
    from curate import manifest
    from curate.w2v2.batching import BatchStream
    from curate.w2v2.config import DataConfig
    from curate.w2v2.data import BatchDataset, ShardSource
    from curate.w2v2.step import read_ahead as _loader

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "shards").mkdir()
        rows, per_shard = [], max(1, n_segments // 4)
        for s in range(0, n_segments, per_shard):
            name, offset = f"shard-{s // per_shard:05d}.pcm16", 0
            with open(out / "shards" / name, "wb") as f:
                for i in range(s, min(n_segments, s + per_shard)):
                    n = int(rng.uniform(2, seconds) * 16000)
                    f.write((rng.standard_normal(n) * 3000).astype("<i2").tobytes())
                    rows.append(
                        {
                            "segment_id": f"s{i}",
                            "recording_id": f"r{i // 10}",
                            "shard": name,
                            "offset": offset,
                            "num_samples": n,
                            "sample_rate": 16000,
                            "start_s": 0.0,
                            "end_s": n / 16000,
                            "duration_s": n / 16000,
                            "text": None,
                            "speaker": None,
                            "language": None,
                            "variant": "v",
                        }
                    )
                    offset += n
        manifest.write_table(out / "index.parquet", manifest.to_table(rows, "materialized"), "materialized")
        src = ShardSource(out)
        cfg = DataConfig(batch_samples=1_600_000)
        stream = BatchStream(src.lengths, np.arange(len(src.lengths)), cfg.batch_samples, 0)
        loader = _loader(BatchDataset(src, cfg, 0), stream, 1, 0, 1, workers)
        n_batches = len(stream.plan().batches)
        next(loader)
        t, audio = time.perf_counter(), 0.0
        for _ in range(n_batches - 1):
            micro, _, _ = next(loader)
            audio += sum(float(b["lengths"].sum()) for b in micro) / 16000
        return audio / (time.perf_counter() - t), audio / 3600


def main() -> None:
    from curate.w2v2.config import load_config
    from curate.w2v2.model import flops_per_audio_second

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small batches, few steps")
    ap.add_argument("--config", default="base")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--batch-s", type=float, default=None, help="audio seconds per batch")
    ap.add_argument("--utt-s", type=float, default=None, help="utterance length")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="device peak (default: measured fp32 GEMM)")
    a = ap.parse_args()
    device = torch.device(a.device)
    bf16 = a.precision == "bf16" or (a.precision == "auto" and device.type == "cuda")
    utt = a.utt_s or (2.0 if a.quick else 4.0)
    batch_s = a.batch_s or (4.0 if a.quick else 8.0)
    steps = a.steps or (2 if a.quick else 3)
    cfg = load_config(a.config)
    B = max(1, int(batch_s / utt))
    batches = make_batches(steps + 1, B, utt)
    peak = a.peak_tflops * 1e12 or measured_peak_flops(device)
    fps = flops_per_audio_second(cfg.model, utterance_s=utt)
    print(
        f"device {device} ({'bf16' if bf16 else 'fp32'}), threads {torch.get_num_threads()}, config {a.config}, "
        f"batch {B} × {utt:.0f} s, {steps} timed steps (+1 warm-up)"
    )
    print(
        f"peak {'given' if a.peak_tflops else 'measured fp32 GEMM'}: {peak / 1e12:.3f} TFLOP/s; "
        f"model cost {fps / 1e9:.1f} GFLOP per audio second (fwd + bwd)"
    )
    rates = interleaved(
        {"ours": ours_step(cfg, device, bf16, a.compile), "hf": hf_step(cfg, device, bf16)}, batches, device
    )
    ours, hf = rates["ours"], rates["hf"]
    print(f"{'trainer':<34}{'audio-s/s':>12}{'MFU':>9}")
    for name, v in (("curate.w2v2", ours), ("transformers Wav2Vec2ForPreTraining", hf)):
        print(f"{name:<34}{v:>12.2f}{100 * v * fps / peak:>8.1f}%")
    print(f"speed-up: {ours / hf:.2f}× (target ≥ 3× on the same device; H100 target ≥ 3,000 audio-s/s in bf16)")
    rate, hours = bench_loader(200 if a.quick else 1000, 15.0, 2)
    print(
        f"data loader from materialized pcm16 shards: {rate:,.0f} audio-s/s sustained ({hours:.2f} h read, 2 threads)"
    )


if __name__ == "__main__":
    main()
