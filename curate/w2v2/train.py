"""The pre-training loop, top to bottom: ``pretrain(config, data, out_dir)``.

``pretrain`` reads the config, opens and splits the data (:class:`TrainingData`; a bad data set fails here,
before anything is written), then hands both to a :class:`Trainer`, which owns the model, the optimizer, the
health checks, the metrics log and the checkpoints, and runs the steps of :mod:`curate.w2v2.step`.
Validation (``validate.py``) scores whole held-out utterances against chance levels; ``health.py`` names failures.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curate.audio import SAMPLE_RATE
from curate.errors import ConfigError
from curate.w2v2 import checkpoint as checkpoints
from curate.w2v2.config import PretrainConfig, load_config
from curate.w2v2.step import accumulate_gradients, init_distributed, prepare, read_ahead

log = logging.getLogger(__name__)
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40": 181.0, "A6000": 155.0, "4090": 165.0}


@dataclass
class TrainingData:
    """The held-out split, the thesis batcher over the training side, and the whole held-out utterances."""

    source: Any
    train_ids: np.ndarray
    val_ids: np.ndarray
    stream: Any  # BatchStream over the training ids
    train_ds: Any  # BatchDataset: loads a planned batch
    val_items: list[dict]
    val_rule: str = ""  # the held-out rule used (curate.w2v2.heldout), or "val_set" for a shared set

    @classmethod
    def build(cls, cfg: PretrainConfig, data: str | Path, transform: Callable | None = None) -> TrainingData:
        from curate.w2v2.batching import BatchStream
        from curate.w2v2.data import BatchDataset, DataError, EpochPairs, build_transforms, open_source
        from curate.w2v2.heldout import ValSetSource, exclude_held_out, read_val_set, split_source
        from curate.w2v2.validate import build_validation_set

        dc, seed = cfg.data, cfg.train.seed
        source = open_source(data, dc.variant)
        lengths = np.minimum(source.lengths, int(dc.max_s * SAMPLE_RATE))
        usable = np.flatnonzero(lengths >= int(dc.min_s * SAMPLE_RATE))
        if len(usable) == 0:
            raise DataError(f"{source.name}: no segments of at least data.min_s={dc.min_s} s to train on")
        if dc.val_set:  # a validation set shared with other runs (an ablation's cells): never trained on
            vs = read_val_set(dc.val_set)
            train_ids, val_source, val_rule = exclude_held_out(source, usable, vs), ValSetSource(vs), vs.rule
            val_ids = np.arange(len(val_source.lengths))
            if len(train_ids) == 0:
                raise DataError(f"{source.name}: every segment overlaps the validation set {dc.val_set}")
        else:  # refused here (HeldOutError) when it would hold out nothing
            train_ids, val_ids, val_rule = split_source(source, usable, lengths, dc.val_split, dc.val_fraction, seed)
            val_source = source
        concat, batch_transform = build_transforms(dc, seed)
        # 1spk/2spk-concat: each epoch pairs the training utterances; the batcher plans with the concatenated lengths
        pairs = EpochPairs(concat, source.utterances(), train_ids, lengths) if concat is not None else None
        stream = BatchStream(
            pairs.example_lengths if pairs else lengths[train_ids],
            train_ids,
            dc.batch_samples,
            seed,
            bin_size=dc.bin_size,
            queue_size=dc.queue_size,
            max_spread_s=dc.max_spread_s,
        )
        bucket = int(dc.compile_bucket_s * SAMPLE_RATE) if cfg.train.compile else 0
        train_ds = BatchDataset(source, dc, seed, transform or batch_transform, bucket=bucket, pairs=pairs)
        val_items = build_validation_set(val_source, val_ids, dc)  # whole utterances, padding masked, never cropped
        return cls(source, train_ids, val_ids, stream, train_ds, val_items, val_rule)

    def seen_s_per_batch(self) -> float:
        """Audio seconds one planned batch shows the model after cropping to its shortest member (this epoch's
        plan; concatenated examples count whole): what converts a budget in hours seen into steps."""
        st = self.stream
        lens = st.lengths(st.epoch) if callable(st.lengths) else st.lengths  # aligned with st.ids
        pos = np.empty(int(st.ids.max()) + 1, dtype=np.int64)
        pos[st.ids] = np.arange(len(st.ids))
        sizes = [len(b) * int(lens[pos[b]].min()) for b in st.plan().batches]
        return float(np.mean(sizes)) / SAMPLE_RATE if sizes else 0.0


def check_budget(cfg: PretrainConfig) -> None:
    dc = cfg.data
    if dc.batch_samples < dc.max_s * SAMPLE_RATE:
        raise ConfigError(
            f"data.batch_samples={dc.batch_samples} cannot hold one data.max_s={dc.max_s} s utterance "
            f"({int(dc.max_s * SAMPLE_RATE)} samples): raise the budget or lower max_s"
        )


class Trainer:
    """One pre-training run in ``out_dir``: model, optimizer, LR schedule, health checks, metrics.jsonl,
    TensorBoard and checkpoints. ``resume`` continues from ``out_dir/last.pt``."""

    def __init__(self, cfg: PretrainConfig, data: TrainingData, out_dir: Path, dist: tuple, resume: bool = False):
        import torch

        from curate.w2v2.health import Health, Remedy
        from curate.w2v2.model import Wav2Vec2, flops_per_audio_second
        from curate.w2v2.schedule import batch_seconds, heuristic_lr, warmup_steps
        from curate.w2v2.schedule import peak_lr as schedule_peak_lr

        self.cfg, self.data, self.out_dir = cfg, data, out_dir
        self.rank, self.world, self.device = dist
        tc, oc = cfg.train, cfg.optim
        # ---- model, optimizer, LR from the batch size in seconds ----
        torch.manual_seed(tc.seed)
        self.model = Wav2Vec2(cfg.model).to(self.device)
        self.batch_s = batch_seconds(cfg.data.batch_samples, self.world, tc.accumulation)
        self.peak_lr = schedule_peak_lr(cfg, self.world)
        self.opt = torch.optim.AdamW(  # fused: one kernel for all parameters on CUDA
            self.model.parameters(),
            lr=self.peak_lr,
            betas=tuple(oc.betas),
            eps=oc.eps,
            weight_decay=oc.weight_decay,
            fused=self.device.type == "cuda",
        )
        remedy = Remedy(
            self.peak_lr,
            self.batch_s,
            heuristic_lr("h_sqrt", self.batch_s, oc.m_lr, oc.s_orig),
            cfg.model.loss_reduction,
            cfg.model.diversity_weight,
            cfg.model.codebooks * cfg.model.codebook_entries,
        )
        # The budget: max_steps, or audio hours seen (the schedule then spans the steps it is estimated to take)
        self.budget_s, self.total_steps = tc.max_audio_h * 3600, tc.max_steps
        if self.budget_s > 0:
            per_step = data.seen_s_per_batch() * self.world * tc.accumulation
            self.total_steps = max(1, math.ceil(self.budget_s / max(per_step, 1e-9)))
        self.read_s = 0.0  # audio read for training (before cropping): read − seen = crop waste
        self.health = Health.from_config(cfg, remedy, warmup_steps(oc, self.total_steps))
        self.step, self.audio_s, self.best_val, self.last_val, self.last_rec = 0, 0.0, float("inf"), None, {}
        if resume and (out_dir / "last.pt").exists():
            self._resume(out_dir / "last.pt")
        self.metrics_path = out_dir / "metrics.jsonl"
        if self.rank == 0:  # a resumed curve continues where the checkpoint was
            old = self.metrics_path.read_text().splitlines() if (resume and self.metrics_path.exists()) else []
            self.metrics_path.write_text("".join(ln + "\n" for ln in old if json.loads(ln)["step"] <= self.step))
        self.tau = max(cfg.model.tau_end, cfg.model.tau_start * cfg.model.tau_decay**self.step)
        self.ddp = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if tc.compile:  # static shapes per (B, S) bucket; loss stays eager
            self.model.feature_extractor.compile(dynamic=False)
            self.model.pos_conv.compile(dynamic=False)
            for layer in self.model.layers:
                layer.compile(dynamic=False)
        bf16 = tc.precision == "bf16" or (tc.precision == "auto" and self.device.type == "cuda")
        self.autocast = (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)) if bf16 else nullcontext
        on_cuda = self.device.type == "cuda"
        self.peak = tc.peak_tflops * 1e12 or next(
            (v * 1e12 for k, v in PEAK_TFLOPS.items() if on_cuda and k in torch.cuda.get_device_name(self.device)),
            0.0,
        )
        self.flops_s = flops_per_audio_second(cfg.model)
        self.writer = None
        if self.rank == 0 and tc.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tb"))
        self.trained_state = data.stream.state()

    def _resume(self, path: Path) -> None:
        ck = checkpoints.load(path, map_location=self.device)
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.data.stream.load_state(ck["sampler"])
        self.health.load_state(ck["health"])
        self.step, self.audio_s, self.best_val, self.last_val = (
            ck["step"],
            ck["audio_s"],
            ck["best_val"],
            ck["val_loss"],
        )
        self.last_rec = ck.get("val", {})
        self.read_s = ck.get("read_s", self.audio_s)
        log.info("resumed from %s at step %d", path, self.step)

    # -- outputs ---------------------------------------------------------------------------------------
    def checkpoint(self, name: str) -> None:
        if self.rank == 0:
            checkpoints.save(
                self.out_dir / name,
                {
                    "config": self.cfg.to_dict(),
                    "model": self.model.state_dict(),
                    "optimizer": self.opt.state_dict(),
                    "sampler": self.trained_state,
                    "health": self.health.state(),
                    "step": self.step,
                    "audio_s": self.audio_s,
                    "read_s": self.read_s,
                    "best_val": self.best_val,
                    "val_loss": self.last_val,
                    "val": self.last_rec,
                },
            )

    def write_record(self, rec: dict) -> None:
        if self.rank == 0:
            with self.metrics_path.open("a") as f:
                f.write(json.dumps(rec) + "\n")

    def run_validation(self, rec: dict) -> None:
        """Score the held-out set into ``rec`` (val_* keys), run the collapse/stall checks (a stop is raised
        after the record is written), TensorBoard val/*."""
        from curate.w2v2.health import TrainingHealthError
        from curate.w2v2.validate import validate

        val = validate(self.model, self.data.val_items, self.cfg, self.device, self.tau, self.autocast)
        rec.update(val)
        self.last_val, self.last_rec = val["val_loss"], val
        err = None
        try:
            warned = self.health.check_validation(self.step, val)
        except TrainingHealthError as e:
            err, warned = e, [e.name]
        if warned:
            rec["health"] = warned
        if self.writer:
            for k, v in val.items():
                self.writer.add_scalar(f"val/{k.removeprefix('val_')}", v, self.step)
        if err is not None:
            self.write_record(rec)
            self.checkpoint("last.pt")
            raise err

    # -- one optimizer step ----------------------------------------------------------------------------
    def train_step(self, micro_np: list[dict], epochs: float) -> dict[str, Any]:
        """Forward/backward over this step's micro-batches, clip, health-check, optimizer step; the record."""
        import torch

        from curate.w2v2.schedule import lr_at

        cfg, world, tc, oc = self.cfg, self.world, self.cfg.train, self.cfg.optim
        lr = lr_at(self.step, oc, self.peak_lr, self.total_steps)
        for group in self.opt.param_groups:
            group["lr"] = lr
        micro = [prepare(b, cfg, self.device, b["index"]) for b in micro_np]
        self.opt.zero_grad(set_to_none=True)
        st = accumulate_gradients(self.ddp, micro, cfg, self.tau, world, self.autocast)
        # sums: loss, contrastive, correct, frames, audio s, waste, chance, accuracy chance (device tensors)
        host = [st["frames"], sum(b["audio_s"] for b in micro_np), sum(b["waste"] for b in micro_np)]
        on_device = [st[k].double() for k in ("loss_sum", "contrastive_sum", "correct")]
        chances = [st[k].double() for k in ("chance_sum", "chance_acc_sum")]
        host_t = torch.tensor(host, dtype=torch.float64).to(self.device, non_blocking=True)
        sums = torch.cat([torch.stack(on_device), host_t, torch.stack(chances)])
        if world > 1:
            torch.distributed.all_reduce(sums)
        clip = oc.clip_norm if oc.clip_norm > 0 else float("inf")
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        G = len(st["prob_ppl"])  # the step's one host sync: every statistic in one copy
        v = [sums, torch.stack([gnorm, st["n_total"], st["diversity"], st["l2"]])]
        v = torch.cat([t.double().reshape(-1) for t in [*v, st["prob_ppl"], st["code_ppl"], st["code_dep"]]]).cpu()
        sums, (gnorm, n, st["diversity"], st["l2"]) = v[:8], v[8:12].tolist()
        st["prob_ppl"], st["code_ppl"], st["code_dep"] = (v[12 + k * G : 12 + (k + 1) * G].numpy() for k in range(3))
        self.health.check(
            self.step,
            sums[0].item() / n,
            sums[1].item() / n,
            gnorm,
            list(st["prob_ppl"]),
            n / (world * tc.accumulation),
            chance=sums[6].item() / n,
            code_ppl=list(st["code_ppl"]),
            dependence=list(st["code_dep"]),
        )
        self.opt.step()
        self.step += 1
        self.tau = max(cfg.model.tau_end, self.tau * cfg.model.tau_decay)
        self.audio_s += sums[4].item()
        self.read_s += sum(b.get("read_s", b["audio_s"]) for b in micro_np) * world
        return {
            "step": self.step,
            "loss": sums[0].item() / n,
            "contrastive": sums[1].item() / n,
            "contrastive_chance": sums[6].item() / n,
            "diversity": st["diversity"],
            "l2": st["l2"],
            "accuracy": sums[2].item() / n,
            "accuracy_chance": sums[7].item() / n,
            "lr": lr,
            "tau": self.tau,
            "grad_norm": gnorm,
            **{f"perplexity_{g}": float(p) for g, p in enumerate(st["prob_ppl"])},
            **{f"code_perplexity_{g}": float(p) for g, p in enumerate(st["code_ppl"])},
            **{f"code_dependence_{g}": float(p) for g, p in enumerate(st["code_dep"])},
            "masked_frac": n / max(1.0, sums[3].item()),
            "padding_waste": sums[5].item() / (world * len(micro_np)),
            "audio_h": self.audio_s / 3600,
            "read_h": self.read_s / 3600,
            "epochs": epochs,
            "_audio_s": sums[4].item(),
        }

    # -- the loop ---------------------------------------------------------------------------------------
    def fit(self, stop_at: int | None = None, on_log: Callable[[dict], None] | None = None) -> dict[str, Any]:
        tc, data = self.cfg.train, self.data
        end = tc.max_steps if not self.budget_s else 2 * self.total_steps + 10  # budget in hours: a guard only
        end = min(end, stop_at) if stop_at is not None else end
        self.model.train()
        pin = self.device.type == "cuda"  # page-locked audio: asynchronous copies to the GPU
        loader = read_ahead(
            data.train_ds, data.stream, self.world, self.rank, tc.accumulation, self.cfg.data.num_workers, pin
        )
        first = last = None
        t_last, audio_window = time.perf_counter(), 0.0
        t_start = time.perf_counter()
        while self.step < end:
            if tc.max_time_s and time.perf_counter() - t_start > tc.max_time_s:
                log.info("train.max_time_s=%s reached at step %d", tc.max_time_s, self.step)
                end = self.step
                if data.val_items and (
                    last is None or "val_loss" not in last
                ):  # the last logged step was not validated
                    rec = {"step": self.step}
                    self.run_validation(rec)
                    self.write_record(rec)
                self.checkpoint("last.pt")
                break
            micro_np, sampler_state, epochs = next(loader)
            rec = self.train_step(micro_np, epochs)
            audio_window += rec.pop("_audio_s")
            self.trained_state = sampler_state  # the loader reads ahead; record what was trained
            first = first or rec
            last = rec
            step = self.step
            if self.budget_s and self.audio_s >= self.budget_s and (stop_at is None or step < stop_at):
                end = step  # the budget of audio hours seen is spent
            validated = bool(data.val_items) and (step % tc.val_every == 0 or step == end)
            if step % tc.log_every == 0 or step == end or validated:  # a validation step is always logged
                dt = time.perf_counter() - t_last
                rec["audio_s_per_s"] = audio_window / dt
                rec["mfu"] = audio_window * self.flops_s / dt / self.peak if self.peak else None
                t_last, audio_window = time.perf_counter(), 0.0
                if self.writer:
                    for k, v in rec.items():
                        if k != "step" and v is not None:
                            self.writer.add_scalar(f"train/{k}", v, step)
                if validated:  # the val_* curves, in the same record
                    self.run_validation(rec)
                self.write_record(rec)
                if on_log:
                    on_log(rec)
            if validated and self.last_val < self.best_val:
                self.best_val = self.last_val
                self.checkpoint("best.pt")
            if step % tc.ckpt_every == 0 or step == end:
                self.checkpoint("last.pt")
        loader.close()
        if self.writer:
            self.writer.close()
        return self.summary(first, last)

    def summary(self, first: dict | None, last: dict | None) -> dict[str, Any]:
        stream = self.data.stream
        summary = {
            "steps": self.step,
            "first": first,
            "last": last,
            "val_loss": self.last_val,
            "best_val": self.best_val,
            "val": self.last_rec,
            "health": self.health.findings,
            "audio_h": self.audio_s / 3600,
            "read_h": self.read_s / 3600,
            "crop_waste": 1 - self.audio_s / self.read_s if self.read_s else 0.0,
            "budget_h": self.budget_s / 3600 or None,
            "schedule_steps": self.total_steps,
            "epochs": stream.epochs_done,
            "dropped_batches": stream.dropped_total + stream.plan().dropped,
            "peak_lr": self.peak_lr,
            "batch_s": self.batch_s,
            "train_segments": len(self.data.train_ids),
            "val_segments": len(self.data.val_ids),
            "val_split": self.data.val_rule,
            "out_dir": str(self.out_dir),
        }
        if self.rank == 0:
            (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        return summary


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
    ``stop_at`` stops (with a checkpoint) after that many steps, as an interrupted run would.
    The config and the data are checked before ``out_dir`` is created."""
    cfg = load_config(config, overrides)
    if variant:
        cfg.data.variant = variant
    check_budget(cfg)
    dist = init_distributed(cfg.train.device)
    training_data = TrainingData.build(cfg, data, transform)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(cfg, training_data, out_dir, dist, resume).fit(stop_at, on_log)


__all__ = ["PEAK_TFLOPS", "Trainer", "TrainingData", "accumulate_gradients", "prepare", "pretrain"]
