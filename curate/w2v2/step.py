"""One pre-training step: a collated batch → tensors and masks (``prepare``), forward + backward over a
step's micro-batches (``accumulate_gradients``), and the read-ahead loader that feeds them.

One optimizer step consumes ``world × accumulation`` batches of the thesis batcher. Every random choice of a
batch (crop offsets, masks, distractors, dropout, Gumbel noise) is seeded by (seed, global batch number), so
DDP on W GPUs equals one GPU accumulating W batches, and a resumed run equals an uninterrupted one.
Gradients of the *summed* loss are divided by the masked steps of the whole step (``per_token``) or not (``sum``).
The loop that drives these is :mod:`curate.w2v2.train`.
"""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def seed_of(*parts: int) -> int:
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def init_distributed(device_name: str):
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; NCCL on GPUs, gloo on CPU."""
    import torch
    import torch.distributed as dist

    from curate.models.device import cuda_available

    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    local = int(os.environ.get("LOCAL_RANK", rank))
    cuda = device_name in ("auto", "cuda") and cuda_available()  # this rank's GPU is its local rank
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
    """Collated numpy batch → tensors, frame lengths, the span mask and the distractor indices (seeded by g).
    The mask and the distractors are drawn on the host (a CPU generator) and copied asynchronously: no
    micro-batch waits on the device for them, and the draws are the same on every device."""
    import torch

    from curate.w2v2.loss import compute_mask, sample_negatives
    from curate.w2v2.model import frames_for

    wav = torch.as_tensor(batch["wav"]).to(device, non_blocking=True)  # async when the loader pinned it
    flens = frames_for(torch.from_numpy(batch["lengths"]), cfg.model)  # on the host: no device sync
    T = int(frames_for(wav.shape[1], cfg.model))
    valid = None if bool((flens == T).all()) else (torch.arange(T)[None] < flens[:, None]).to(device, non_blocking=True)
    gen = torch.Generator().manual_seed(seed_of(cfg.train.seed, 3, g))
    mask_host = compute_mask(flens, T, cfg.model.span_p, cfg.model.mask_length, gen, min_spans=2)
    neg = sample_negatives(mask_host, cfg.model.num_negatives, gen)  # [N, K]
    mask, neg = mask_host.to(device, non_blocking=True), neg.to(device, non_blocking=True)
    lengths = None if valid is None else torch.from_numpy(batch["lengths"]).to(device, non_blocking=True)
    return {
        "wav": wav,
        "valid": valid,
        "lengths": lengths,  # sample lengths of a padded batch (None: no padding)
        "mask": mask,
        "neg": neg,
        "gen": gen,
        "g": g,
        "frames": int(flens.sum()),
        "batch": batch,
    }


def accumulate_gradients(model, micro: list[dict], cfg, tau: float, world: int, autocast) -> dict[str, Any]:
    """Forward + backward over this rank's micro-batches (from ``prepare``); gradients end up divided by the
    step's total masked steps (all ranks) for per_token reduction. Returns summed statistics of this rank as
    device tensors: nothing here waits for the device, the caller reads them once per step."""
    import torch
    import torch.distributed as dist

    from curate.w2v2.loss import wav2vec2_loss

    n_total = torch.stack([m["mask"].sum() for m in micro]).sum().double()
    if world > 1:
        dist.all_reduce(n_total)
    # DDP averages gradients over ranks, hence × world; per_token then divides by the global masked count.
    scale = (world / n_total).float() if cfg.model.loss_reduction == "per_token" else float(world)
    st: dict[str, Any] = {"n": 0, "frames": 0, "n_total": n_total}
    averaged = ("diversity", "l2", "prob_ppl", "code_ppl", "code_dep")  # per micro-batch means; the rest are sums
    for i, m in enumerate(micro):
        torch.manual_seed(seed_of(cfg.train.seed, 5, m["g"]))  # dropout + Gumbel noise of this batch
        sync = model.no_sync() if (world > 1 and i < len(micro) - 1) else nullcontext()
        with sync:
            with autocast():
                out = model(m["wav"], m["mask"], m["valid"], tau, lengths=m["lengths"])
            neg = m["neg"]
            res = wav2vec2_loss(out, neg, cfg.model)
            (res["loss_sum"] * scale).backward()
        res["loss_sum"], res["correct"] = res["loss_sum"].detach(), res["correct"].double()
        res["prob_ppl"], res["code_ppl"] = out["prob_ppl"].detach(), out["code_ppl"].detach()
        res["code_dep"] = out["code_dep"].detach()
        for k in ("loss_sum", "contrastive_sum", "correct", "chance_sum", "chance_acc_sum", *averaged):
            v = res[k] / len(micro) if k in averaged else res[k]
            st[k] = st[k] + v if k in st else v
        st["n"] += res["n"]
        st["frames"] += m["frames"]
    return st


def read_ahead(dataset, stream, world: int, rank: int, accumulation: int, workers: int, pin: bool = False):
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


__all__ = ["accumulate_gradients", "init_distributed", "prepare", "read_ahead", "seed_of"]
