"""Parts of benchmarks/bench_pretrain.py: synthetic pcm16 shards, the full-trainer line, the per-optimisation
ablation, the profiler table and the data loader alone."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_shards(out: Path, total_s: float, lo_s: float = 2.0, hi_s: float = 20.0, per_session: int = 40) -> Path:
    """A materialized directory (index.parquet + 4 pcm16 shards) of noise segments with lengths uniform in
    [lo_s, hi_s], ``per_session`` per recording (the validation split takes one per recording)."""
    from curate import manifest

    rng = np.random.default_rng(0)
    lengths, total = [], 0.0
    while total < total_s:
        lengths.append(int(rng.uniform(lo_s, hi_s) * 16000))
        total += lengths[-1] / 16000
    (out / "shards").mkdir(parents=True)
    rows, per_shard = [], -(-len(lengths) // 4)
    for s in range(0, len(lengths), per_shard):
        name, offset = f"shard-{s // per_shard:05d}.pcm16", 0
        with open(out / "shards" / name, "wb") as f:
            for i in range(s, min(len(lengths), s + per_shard)):
                n = lengths[i]
                f.write(rng.integers(-3000, 3000, n, dtype=np.int16).astype("<i2").tobytes())
                rows.append(
                    {
                        "segment_id": f"s{i}",
                        "recording_id": f"r{i // per_session}",
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
    return out


def trainer_line(name: str, sets: list[str], data: Path, run: Path, batch_s: float, steps: int, device, bf16) -> dict:
    """``pretrain()`` for 1 + ``steps`` steps (eager) with validation + checkpoint at the middle step and the
    usual validation + checkpoint at the end. Step times come from the on_log callback (one record per step):
    the median is the loop's step; the windows holding validation / checkpoints give their one-off cost."""
    from curate.w2v2.train import pretrain

    max_s = min(20.0, batch_s)
    mid, end = 1 + steps // 2, 1 + steps
    ov = [
        *sets,
        f"data.batch_samples={int(batch_s * 16000)}",
        f"data.max_s={max_s}",
        f"data.min_s={min(2.0, max_s / 2)}",
        "data.num_workers=4",
        f"train.max_steps={end}",
        f"train.val_every={mid}",
        f"train.ckpt_every={mid}",
        "train.log_every=1",
        "train.tensorboard=false",
        f"train.device={device.type}",
        f"train.precision={'bf16' if bf16 else 'fp32'}",
        "optim.lr=1e-5",
    ]
    recs: list[tuple[float, dict]] = []

    def on_log(rec):
        if device.type == "cuda":
            torch.cuda.synchronize()
        recs.append((time.perf_counter(), rec))

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    summary = pretrain(name, data, run, overrides=ov, on_log=on_log)
    t = np.array([x[0] for x in recs])
    d = np.diff(t)  # d[k-2] = window of step k (k = 2 … end): step k, + validation at mid/end, + ckpt of mid
    k = np.arange(2, end + 1)
    plain = d[(k != mid) & (k != mid + 1) & (k != end)]
    med = float(np.median(plain)) if plain.size else float(np.median(d))
    val_s = max(0.0, float(d[k == mid][0]) - med) if mid >= 2 else 0.0
    ckpt_s = max(0.0, float(d[k == mid + 1][0]) - med) if mid + 1 < end else 0.0
    audio = (recs[-1][1]["audio_h"] - recs[0][1]["audio_h"]) * 3600
    spent = float(t[-1] - t[0])
    events = val_s * 2 + ckpt_s
    return {
        "audio_s_per_s": audio / spent,
        "amortised_audio_s_per_s": audio / (spent - events + (val_s + ckpt_s) * steps / 5000),
        "median_step_s": med,
        "val_s": val_s,
        "ckpt_s": ckpt_s,
        "waste": float(np.mean([r["padding_waste"] for _, r in recs])),
        "dropped_batches": summary["dropped_batches"],
        "steps": steps,
        "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }


def batching_waste(batch_s: float, lo_s: float, hi_s: float, n: int = 20_000, seed: int = 0) -> tuple[float, float]:
    """(crop waste, dropped fraction) of one epoch of the thesis batcher (bins, queue of 300, budget, spread ≤ 10 s)
    over ``n`` lengths uniform in [lo_s, hi_s]: audio cut away by cropping each batch to its shortest member, and
    audio in batches dropped for their spread, as fractions of all audio."""
    from curate.w2v2.batching import plan_epoch

    lengths = (np.random.default_rng(seed).uniform(lo_s, hi_s, n) * 16000).astype(np.int64)
    plan = plan_epoch(lengths, np.arange(n), int(batch_s * 16000), seed, 0)
    kept = [lengths[b] for b in plan.batches]
    total = lengths.sum()
    cropped = sum(int(b.sum() - b.min() * b.size) for b in kept)
    return cropped / total, plan.dropped_s * 16000 / total


def _unfused_logits(c, q, neg_idx, temp):
    """The contrastive logits before the fused formulation (gather [N, K, F], cosine_similarity, compare)."""
    negs = q[neg_idx]
    logits = torch.nn.functional.cosine_similarity(c[:, None], torch.cat([q[:, None], negs], 1), dim=-1) / temp
    return torch.cat([logits[:, :1], logits[:, 1:].masked_fill((negs == q[:, None]).all(-1), float("-inf"))], 1)


def _ms(fn, device, reps: int = 5) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps * 1e3


def ablations(name, sets, batches, device, bf16, timed, ours_step, fps, peak) -> list[str]:
    """Whole-step throughput with each switchable fast path reverted alone, and the loss fwd + bwd fused vs not."""
    from curate.w2v2.config import load_config
    from curate.w2v2.loss import compute_mask, contrastive_logits, sample_negatives

    lines = [f"ablation ({name}, {batches[0]['wav'].shape[0]} × {batches[0]['wav'].shape[1] / 16000:g} s, eager):"]
    variants = {  # explicit settings, so the lines mean the same on every device
        "fast paths (fft pos conv, NLC CNN)": ["model.pos_conv_impl=fft", "model.cnn_layout=nlc"],
        "pos conv reverted to the grouped conv": ["model.pos_conv_impl=grouped", "model.cnn_layout=nlc"],
        "CNN reverted to Conv1d NCL + GroupNorm": ["model.pos_conv_impl=fft", "model.cnn_layout=ncl"],
        "both reverted (reference)": ["model.pos_conv_impl=grouped", "model.cnn_layout=ncl"],
    }
    for label, ov in variants.items():
        cfg = load_config(name, [*sets, *ov])
        r = timed(lambda cfg=cfg: ours_step(cfg, device, bf16, False), batches, device)
        if "error" in r:
            lines.append(f"  {label:<40}{r['error']}")
            continue
        gib = f"{r['peak_gib']:.1f} GiB" if r["peak_gib"] is not None else ""
        mfu = 100 * r["audio_s_per_s"] * fps / peak
        lines.append(f"  {label:<40}{r['audio_s_per_s']:>10,.1f} audio-s/s {mfu:>6.1f}% MFU  {gib}")
    cfg = load_config(name, sets).model
    B, S = batches[0]["wav"].shape
    T = S // 320
    g = torch.Generator(device=device).manual_seed(0)
    mask = compute_mask(torch.full((B,), T, device=device), T, cfg.mask_prob, cfg.mask_length, g, min_spans=2)
    N = int(mask.sum())
    neg = sample_negatives(mask, cfg.num_negatives, g)
    codes = torch.randint(0, cfg.codebook_entries**2, (N,), device=device)
    c = torch.randn(N, cfg.final_dim, device=device, requires_grad=True)
    q = torch.randn(cfg.codebook_entries**2, cfg.final_dim, device=device)[codes].requires_grad_()

    def run(fused):
        logits = contrastive_logits(c, q, neg, 0.1, mask, codes) if fused else _unfused_logits(c, q, neg, 0.1)
        torch.nn.functional.cross_entropy(logits, torch.zeros(N, dtype=torch.long, device=device)).backward()

    lines.append(
        f"  contrastive loss fwd + bwd (N = {N}, K = {cfg.num_negatives}): unfused {_ms(lambda: run(False), device):.1f} "
        f"ms, fused {_ms(lambda: run(True), device):.1f} ms"
    )
    return lines


def components(name, sets, B: int, utt: float, device, bf16: bool) -> list[str]:
    """Each fast path against its reference alone, fwd + bwd at the batch's shapes, and the bytes the CNN keeps
    for backward (saved_tensors_hooks)."""
    from contextlib import nullcontext

    from curate.w2v2.config import load_config
    from curate.w2v2.model import FeatureEncoder, PositionalConv

    cfg = load_config(name, sets).model
    ac = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext
    lines = [f"components ({name}, {B} × {utt:g} s, fwd + bwd, {'bf16' if bf16 else 'fp32'}):"]
    torch.manual_seed(0)
    pc = PositionalConv(cfg).to(device)
    x = torch.randn(B, int(50 * utt), cfg.hidden, device=device, requires_grad=True)

    def pos(impl):
        pc.impl = impl
        with ac():
            y = pc(x)
        y.float().sum().backward()

    lines.append(
        f"  pos conv: grouped {_ms(lambda: pos('grouped'), device):.1f} ms, fft {_ms(lambda: pos('fft'), device):.1f} ms"
    )
    enc = FeatureEncoder(cfg).to(device)
    wav = torch.randn(B, int(16000 * utt), device=device)
    saved: dict[str, float] = {}

    def cnn(layout, count=False):
        enc.layout, seen = layout, {}

        def pack(t):
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if count else nullcontext()
        with hooks, ac():
            y = enc(wav)
        if count:
            saved[layout] = sum(seen.values()) / 2**30
        y.float().sum().backward()

    for layout in ("ncl", "nlc"):
        cnn(layout, count=True)
    lines.append(
        f"  CNN: Conv1d + GroupNorm {_ms(lambda: cnn('ncl'), device, 3):.1f} ms ({saved['ncl']:.2f} GiB kept for "
        f"backward), channels-last {_ms(lambda: cnn('nlc'), device, 3):.1f} ms ({saved['nlc']:.2f} GiB)"
    )
    return lines


def profile_step(step, batches, device, out: Path | None) -> str:
    """torch.profiler table of two steps after a warm-up step (and a Chrome trace in ``out``)."""
    from torch.profiler import ProfilerActivity, profile

    step(0, batches[0])
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for g, b in enumerate(batches[1:3], 1):
            step(g, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
    if out:
        prof.export_chrome_trace(str(out / "trace.json"))
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=30)


def bench_loader(n_segments: int, seconds: float, workers: int) -> tuple[float, float]:
    """(audio-s/s reading + collating batches from pcm16 shards, hours read)."""
    from curate.w2v2.batching import BatchStream
    from curate.w2v2.config import DataConfig
    from curate.w2v2.data import BatchDataset, ShardSource
    from curate.w2v2.step import read_ahead as _loader

    with tempfile.TemporaryDirectory() as tmp:
        src = ShardSource(write_shards(Path(tmp), n_segments * (2 + seconds) / 2, hi_s=seconds, per_session=10))
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
