"""The pre-training loop, top to bottom: ``pretrain(config, data, out_dir)``.

One optimizer step consumes ``world × accumulation`` batches of the thesis batcher. Every random choice of a
batch (crop offsets, masks, distractors, dropout, Gumbel noise) is seeded by (seed, global batch number), so
DDP on W GPUs equals one GPU accumulating W batches, and a resumed run equals an uninterrupted one.
Gradients of the *summed* loss are divided by the masked steps of the whole step (``per_token``) or not (``sum``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from curate.audio import SAMPLE_RATE
from curate.w2v2.config import PretrainConfig, load_config

log = logging.getLogger(__name__)
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40": 181.0, "A6000": 155.0, "4090": 165.0}


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def _init_distributed(device_name: str):
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; NCCL on GPUs, gloo on CPU."""
    import torch
    import torch.distributed as dist

    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    local = int(os.environ.get("LOCAL_RANK", rank))
    cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    device = (
        torch.device(f"cuda:{local}" if cuda else "cpu")
        if device_name in ("auto", "cuda")
        else torch.device(device_name)
    )
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    return rank, world, device


def prepare(batch: dict, cfg, device, g: int):
    """Collated numpy batch → tensors, frame lengths, the span mask and its generator (seeded by g)."""
    import torch

    from curate.w2v2.loss import compute_mask
    from curate.w2v2.model import frames_for

    wav = torch.as_tensor(batch["wav"]).to(device, non_blocking=True)  # async when the loader pinned it
    flens = frames_for(torch.from_numpy(batch["lengths"]), cfg.model)  # on the host: no device sync
    T = int(frames_for(wav.shape[1], cfg.model))
    valid = None if bool((flens == T).all()) else (torch.arange(T)[None] < flens[:, None]).to(device, non_blocking=True)
    gen = torch.Generator(device=device).manual_seed(_seed(cfg.train.seed, 3, g))
    mask = compute_mask(
        flens.to(device, non_blocking=True), T, cfg.model.mask_prob, cfg.model.mask_length, gen, min_spans=2
    )
    return {"wav": wav, "valid": valid, "mask": mask, "gen": gen, "g": g, "frames": int(flens.sum()), "batch": batch}


def accumulate_gradients(model, micro: list[dict], cfg, tau: float, world: int, autocast) -> dict[str, Any]:
    """Forward + backward over this rank's micro-batches (from ``prepare``); gradients end up divided by the
    step's total masked steps (all ranks) for per_token reduction. Returns summed statistics of this rank as
    device tensors: nothing here waits for the device, the caller reads them once per step."""
    import torch
    import torch.distributed as dist

    from curate.w2v2.loss import sample_negatives, wav2vec2_loss

    n_total = torch.stack([m["mask"].sum() for m in micro]).sum().double()
    if world > 1:
        dist.all_reduce(n_total)
    # DDP averages gradients over ranks, hence × world; per_token then divides by the global masked count.
    scale = (world / n_total).float() if cfg.model.loss_reduction == "per_token" else float(world)
    st: dict[str, Any] = {"n": 0, "frames": 0, "n_total": n_total}
    for i, m in enumerate(micro):
        torch.manual_seed(_seed(cfg.train.seed, 5, m["g"]))  # dropout + Gumbel noise of this batch
        sync = model.no_sync() if (world > 1 and i < len(micro) - 1) else nullcontext()
        with sync:
            with autocast():
                out = model(m["wav"], m["mask"], m["valid"], tau)
            neg = sample_negatives(m["mask"], cfg.model.num_negatives, m["gen"])
            res = wav2vec2_loss(out, neg, cfg.model)
            (res["loss_sum"] * scale).backward()
        res["loss_sum"], res["correct"] = res["loss_sum"].detach(), res["correct"].double()
        res["prob_ppl"], res["code_ppl"] = out["prob_ppl"].detach(), out["code_ppl"].detach()
        for k in ("loss_sum", "contrastive_sum", "correct", "diversity", "l2", "prob_ppl", "code_ppl"):
            v = res[k] / len(micro) if k in ("diversity", "l2", "prob_ppl", "code_ppl") else res[k]
            st[k] = st[k] + v if k in st else v
        st["n"] += res["n"]
        st["frames"] += m["frames"]
    return st


def validate(model, loader_items: list[dict], cfg, device, tau: float, autocast) -> float:
    """Per-masked-step loss on the held-out split (eval mode: no dropout, no Gumbel noise; fixed masks)."""
    import torch

    from curate.w2v2.loss import sample_negatives, wav2vec2_loss

    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for j, b in enumerate(loader_items):
            m = prepare(b, cfg, device, 10**9 + j)
            with autocast():
                out = model(m["wav"], m["mask"], m["valid"], tau)
            res = wav2vec2_loss(out, sample_negatives(m["mask"], cfg.model.num_negatives, m["gen"]), cfg.model)
            total, n = total + float(res["loss_sum"]), n + res["n"]
    model.train()
    return total / max(1, n)


def _save(path: Path, obj: dict) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _loader(dataset, stream, world: int, rank: int, accumulation: int, workers: int, pin: bool = False):
    """Yields (this rank's micro-batches, sampler state after the step). Workers read ahead in threads;
    ``pin``: the audio comes as page-locked tensors, so the copy to the GPU is asynchronous."""
    from concurrent.futures import ThreadPoolExecutor

    def plan_step():
        picks = []
        for a in range(world * accumulation):
            idx, epoch, g = stream.next()
            if a % world == rank:
                picks.append((idx, epoch, g))
        return picks, stream.state(), stream.epochs_done

    def load(picks):
        batches = [dataset.load(idx, epoch, g) for idx, epoch, g in picks]
        if pin:
            import torch

            for b in batches:
                b["wav"] = torch.from_numpy(b["wav"]).pin_memory()
        return batches

    if workers <= 0:
        while True:
            picks, state, ep = plan_step()
            yield load(picks), state, ep
    with ThreadPoolExecutor(workers) as pool:
        queue = []
        while True:
            while len(queue) < 2 * workers:
                picks, state, ep = plan_step()
                queue.append((pool.submit(load, picks), state, ep))
            fut, state, ep = queue.pop(0)
            yield fut.result(), state, ep


def pretrain(
    config: str | Path | dict | PretrainConfig,
    data: str | Path,
    out_dir: str | Path,
    *,
    variant: str | None = None,
    overrides: list[str] | None = None,
    resume: bool = False,
    stop_at: int | None = None,
    transform: Callable | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Pre-train on a run-directory variant (``variant``) or a materialized directory; write checkpoints,
    metrics.jsonl (one record per logged step; ``val_loss`` in those of validation steps) and TensorBoard logs
    under ``out_dir``. ``resume`` continues from ``out_dir/last.pt``;
    ``stop_at`` stops (with a checkpoint) after that many steps, as an interrupted run would."""
    import torch

    from curate.w2v2.batching import BatchStream, plan_epoch
    from curate.w2v2.data import BatchDataset, EpochPairs, build_transforms, open_source, split_train_val
    from curate.w2v2.health import Health
    from curate.w2v2.model import Wav2Vec2, flops_per_audio_second
    from curate.w2v2.schedule import batch_seconds, heuristic_lr, lr_at

    cfg = load_config(config, overrides)
    if variant:
        cfg.data.variant = variant
    tc, dc, oc = cfg.train, cfg.data, cfg.optim
    if dc.batch_samples < dc.max_s * SAMPLE_RATE:
        from curate.errors import ConfigError

        raise ConfigError(
            f"data.batch_samples={dc.batch_samples} cannot hold one data.max_s={dc.max_s} s utterance "
            f"({int(dc.max_s * SAMPLE_RATE)} samples): raise the budget or lower max_s"
        )
    out_dir = Path(out_dir)
    rank, world, device = _init_distributed(tc.device)
    out_dir.mkdir(parents=True, exist_ok=True)

    # ---- data: held-out split, thesis batcher, read-ahead loader ----
    source = open_source(data, dc.variant)
    lengths = np.minimum(source.lengths, int(dc.max_s * SAMPLE_RATE))
    usable = np.flatnonzero(lengths >= int(dc.min_s * SAMPLE_RATE))
    tr, va = split_train_val(source.sessions[usable], lengths[usable], dc.val_split, dc.val_fraction, tc.seed)
    train_ids, val_ids = usable[tr], usable[va]
    if len(train_ids) == 0:
        raise ValueError(f"{source.name}: no segments of at least data.min_s={dc.min_s} s to train on")
    concat, batch_transform = build_transforms(dc, tc.seed)
    transform = transform or batch_transform
    # 1spk/2spk-concat: each epoch pairs the training utterances; the batcher plans with the concatenated lengths
    pairs = EpochPairs(concat, source.utterances(), train_ids, lengths) if concat is not None else None
    stream = BatchStream(
        pairs.example_lengths if pairs else lengths[train_ids],
        train_ids,
        dc.batch_samples,
        tc.seed,
        bin_size=dc.bin_size,
        queue_size=dc.queue_size,
        max_spread_s=dc.max_spread_s,
    )
    bucket = int(dc.compile_bucket_s * SAMPLE_RATE) if tc.compile else 0
    train_ds = BatchDataset(source, dc, tc.seed, transform, bucket=bucket, pairs=pairs)
    val_ds = BatchDataset(source, dc, tc.seed, None, validation=True)
    val_plan = (
        plan_epoch(lengths[val_ids], val_ids, dc.batch_samples, tc.seed, 0, max_spread_s=1e9) if len(val_ids) else None
    )
    val_items = [val_ds.load(b, 0, j) for j, b in enumerate(val_plan.batches)] if val_plan else []

    # ---- model, optimizer, LR from the batch size in seconds ----
    torch.manual_seed(tc.seed)
    model = Wav2Vec2(cfg.model).to(device)
    batch_s = batch_seconds(dc.batch_samples, world, tc.accumulation)
    peak_lr = oc.lr if oc.lr is not None else heuristic_lr(oc.heuristic, batch_s, oc.m_lr, oc.s_orig)
    opt = torch.optim.AdamW(  # fused: one kernel for all parameters on CUDA
        model.parameters(),
        lr=peak_lr,
        betas=tuple(oc.betas),
        eps=oc.eps,
        weight_decay=oc.weight_decay,
        fused=device.type == "cuda",
    )
    health = Health(
        tc.spike_factor,
        tc.spike_patience,
        tc.collapse_after,
        tc.collapse_window,
        tc.min_perplexity,
        lr_hint=f"peak lr {peak_lr:.2e} for {batch_s:.0f} s batches",
    )
    step, audio_s, best_val, last_val = 0, 0.0, float("inf"), None
    if resume and (out_dir / "last.pt").exists():
        ck = torch.load(out_dir / "last.pt", map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        stream.load_state(ck["sampler"])
        health.load_state(ck["health"])
        step, audio_s, best_val, last_val = ck["step"], ck["audio_s"], ck["best_val"], ck["val_loss"]
        log.info("resumed from %s at step %d", out_dir / "last.pt", step)
    metrics_path = out_dir / "metrics.jsonl"
    if rank == 0:  # a resumed curve continues where the checkpoint was
        old = metrics_path.read_text().splitlines() if (resume and metrics_path.exists()) else []
        metrics_path.write_text("".join(ln + "\n" for ln in old if json.loads(ln)["step"] <= step))
    tau = max(cfg.model.tau_end, cfg.model.tau_start * cfg.model.tau_decay**step)

    ddp = model
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if tc.compile:  # static shapes per (B, S) bucket; loss stays eager
        model.feature_extractor.compile(dynamic=False)
        model.pos_conv.compile(dynamic=False)
        for layer in model.layers:
            layer.compile(dynamic=False)
    bf16 = tc.precision == "bf16" or (tc.precision == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext
    peak = tc.peak_tflops * 1e12 or next(
        (v * 1e12 for k, v in PEAK_TFLOPS.items() if device.type == "cuda" and k in torch.cuda.get_device_name(device)),
        0.0,
    )
    flops_s = flops_per_audio_second(cfg.model)
    writer = None
    if rank == 0 and tc.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tb"))

    def checkpoint(name: str) -> None:
        if rank == 0:
            _save(
                out_dir / name,
                {
                    "config": cfg.to_dict(),
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "sampler": trained_state,
                    "health": health.state(),
                    "step": step,
                    "audio_s": audio_s,
                    "best_val": best_val,
                    "val_loss": last_val,
                },
            )

    trained_state = stream.state()
    end = min(tc.max_steps, stop_at) if stop_at is not None else tc.max_steps
    model.train()
    loader = _loader(train_ds, stream, world, rank, tc.accumulation, dc.num_workers, pin=device.type == "cuda")
    first = last = None
    t_last, audio_window = time.perf_counter(), 0.0
    t_start = time.perf_counter()
    while step < end:
        if tc.max_time_s and time.perf_counter() - t_start > tc.max_time_s:
            log.info("train.max_time_s=%s reached at step %d", tc.max_time_s, step)
            end = step
            if val_items:
                last_val = validate(model, val_items, cfg, device, tau, autocast)
            checkpoint("last.pt")
            break
        micro_np, sampler_state, epochs = next(loader)
        lr = lr_at(step, oc, peak_lr, tc.max_steps)
        for group in opt.param_groups:
            group["lr"] = lr
        micro = [prepare(b, cfg, device, b["index"]) for b in micro_np]
        opt.zero_grad(set_to_none=True)
        st = accumulate_gradients(ddp, micro, cfg, tau, world, autocast)
        host = [st["frames"], sum(b["audio_s"] for b in micro_np), sum(b["waste"] for b in micro_np)]
        sums = torch.stack([st["loss_sum"].double(), st["contrastive_sum"].double(), st["correct"]])
        sums = torch.cat([sums, torch.tensor(host, dtype=torch.float64).to(device, non_blocking=True)])
        if world > 1:
            torch.distributed.all_reduce(sums)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), oc.clip_norm if oc.clip_norm > 0 else float("inf"))
        G = len(st["prob_ppl"])  # the step's one host sync: every statistic in one copy
        v = [sums, torch.stack([gnorm, st["n_total"], st["diversity"], st["l2"]]), st["prob_ppl"], st["code_ppl"]]
        v = torch.cat([t.double() for t in v]).cpu()
        sums, (gnorm, n, st["diversity"], st["l2"]) = v[:6], v[6:10].tolist()
        st["prob_ppl"], st["code_ppl"] = v[10 : 10 + G].numpy(), v[10 + G :].numpy()
        health.check(step, sums[0].item() / n, sums[1].item() / n, gnorm, list(st["prob_ppl"]))
        opt.step()
        step += 1
        tau = max(cfg.model.tau_end, tau * cfg.model.tau_decay)
        audio_s += sums[4].item()
        audio_window += sums[4].item()
        trained_state = sampler_state  # the loader reads ahead; record what was trained
        rec = {
            "step": step,
            "loss": sums[0].item() / n,
            "contrastive": sums[1].item() / n,
            "diversity": st["diversity"],
            "l2": st["l2"],
            "accuracy": sums[2].item() / n,
            "lr": lr,
            "tau": tau,
            "grad_norm": gnorm,
            **{f"perplexity_{g}": float(p) for g, p in enumerate(st["prob_ppl"])},
            **{f"code_perplexity_{g}": float(p) for g, p in enumerate(st["code_ppl"])},
            "masked_frac": n / max(1.0, sums[3].item()),
            "padding_waste": sums[5].item() / (world * len(micro_np)),
            "audio_h": audio_s / 3600,
            "epochs": epochs,
        }
        first = first or rec
        last = rec
        validated = bool(val_items) and (step % tc.val_every == 0 or step == end)
        if step % tc.log_every == 0 or step == end or validated:  # a validation step is always logged
            dt = time.perf_counter() - t_last
            rec["audio_s_per_s"] = audio_window / dt
            rec["mfu"] = audio_window * flops_s / dt / peak if peak else None
            t_last, audio_window = time.perf_counter(), 0.0
            if validated:  # the val/loss curve, in the same record
                last_val = rec["val_loss"] = validate(model, val_items, cfg, device, tau, autocast)
            if rank == 0:
                with metrics_path.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
                if writer:
                    for k, v in rec.items():
                        if k not in ("step", "val_loss") and v is not None:
                            writer.add_scalar(f"train/{k}", v, step)
            if on_log:
                on_log(rec)
        if validated:
            if writer:
                writer.add_scalar("val/loss", last_val, step)
            if last_val < best_val:
                best_val = last_val
                checkpoint("best.pt")
        if step % tc.ckpt_every == 0 or step == end:
            checkpoint("last.pt")
    loader.close()
    if writer:
        writer.close()
    dropped = stream.dropped_total + stream.plan().dropped
    summary = {
        "steps": step,
        "first": first,
        "last": last,
        "val_loss": last_val,
        "best_val": best_val,
        "audio_h": audio_s / 3600,
        "epochs": stream.epochs_done,
        "dropped_batches": dropped,
        "peak_lr": peak_lr,
        "batch_s": batch_s,
        "train_segments": len(train_ids),
        "val_segments": len(val_ids),
        "out_dir": str(out_dir),
    }
    if rank == 0:
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
