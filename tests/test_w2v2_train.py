"""Pre-training end to end on generated speech (espeak-ng): the loss goes down, a stopped-and-resumed run
reproduces the uninterrupted loss curve, DDP (2 CPU processes, gloo) equals one process accumulating."""

from __future__ import annotations

import json
import math
import os
import socket

import numpy as np
import pytest
import torch

from curate.testing.speech import make_speech_run

TINY = ["train.tensorboard=false", "train.log_every=1"]


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory):
    return make_speech_run(tmp_path_factory.mktemp("speech"), recordings=4, per_recording=8)


def _curve(out_dir):
    return [json.loads(ln) for ln in (out_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_tiny_pretraining_lowers_the_contrastive_loss(speech_run, tmp_path):
    from curate.w2v2.train import pretrain

    s = pretrain(
        "tiny-cpu",
        speech_run,
        tmp_path / "run",
        variant="speech",
        overrides=[*TINY, "train.max_steps=100", "train.val_every=50", "train.ckpt_every=50"],
    )
    curve = _curve(tmp_path / "run")
    assert len(curve) == 100 and s["steps"] == 100
    first = np.mean([r["contrastive"] for r in curve[:10]])
    last = np.mean([r["contrastive"] for r in curve[-10:]])
    assert last < first - 0.05  # 100 steps: a drop of 0.165 measured (0.168 after 200)
    assert all(np.isfinite(r["loss"]) for r in curve)
    for key in (
        "diversity",
        "l2",
        "accuracy",
        "perplexity_0",
        "perplexity_1",
        "grad_norm",
        "tau",
        "masked_frac",
        "padding_waste",
        "audio_s_per_s",
        "audio_h",
        "epochs",
    ):
        assert key in curve[-1]
    assert curve[-1]["tau"] < curve[0]["tau"]
    assert 0.3 < np.mean([r["masked_frac"] for r in curve]) < 0.5
    assert s["val_segments"] == 4 and s["epochs"] > 1 and s["audio_h"] > 0
    assert (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "last.pt").exists()
    val = s["val"]  # chance-aware validation in the summary and the curve
    assert {k for k in val} <= set(curve[-1]) and val["val_scored_s"] > 0 and val["val_padding_s"] == 0
    assert 0 < val["val_contrastive_chance"] <= math.log(21) and 0 < val["val_accuracy_chance"] < 1
    assert min(val["val_code_dependence_0"], val["val_code_dependence_1"]) > 0.1  # the quantizer did not collapse
    assert s["health"] == []
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ck["config"]["model"]["hidden"] == 64 and ck["step"] == 100  # checkpoints carry their full config


def test_resume_reproduces_the_uninterrupted_loss_curve(speech_run, tmp_path):
    from curate.w2v2.train import pretrain

    ov = [*TINY, "train.max_steps=4", "train.ckpt_every=100", "train.val_every=100", "data.num_workers=1"]
    pretrain("tiny-cpu", speech_run, tmp_path / "straight", variant="speech", overrides=ov)
    pretrain("tiny-cpu", speech_run, tmp_path / "resumed", variant="speech", overrides=ov, stop_at=2)
    assert len(_curve(tmp_path / "resumed")) == 2
    pretrain("tiny-cpu", speech_run, tmp_path / "resumed", variant="speech", overrides=ov, resume=True)
    a, b = _curve(tmp_path / "straight"), _curve(tmp_path / "resumed")
    keys = ["loss", "contrastive", "diversity", "accuracy", "grad_norm", "lr", "tau", "audio_h", "epochs"]
    assert [r["step"] for r in b] == list(range(1, 5))
    for ra, rb in zip(a, b, strict=True):
        for k in keys:
            assert ra[k] == pytest.approx(rb[k], rel=1e-6, abs=1e-7), (ra["step"], k)
    wa = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["model"]
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def _batches():
    rng = np.random.default_rng(0)
    return [
        {"wav": rng.standard_normal((2, 16000)).astype(np.float32), "lengths": np.array([16000, 16000])},
        {"wav": rng.standard_normal((2, 16000)).astype(np.float32), "lengths": np.array([16000, 16000])},
    ]


def _grads(rank: int, world: int, port: int, out: str) -> None:
    from contextlib import nullcontext

    import torch.distributed as dist

    from curate.w2v2.config import load_config
    from curate.w2v2.model import Wav2Vec2
    from curate.w2v2.step import accumulate_gradients, prepare

    torch.set_num_threads(1)
    cfg = load_config("tiny-cpu", TINY)
    torch.manual_seed(0)
    model = Wav2Vec2(cfg.model)
    batches = _batches()
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        micro = [prepare(batches[rank], cfg, torch.device("cpu"), rank)]
    else:
        ddp, micro = model, [prepare(b, cfg, torch.device("cpu"), g) for g, b in enumerate(batches)]
    accumulate_gradients(ddp, micro, cfg, 2.0, world, nullcontext)
    if rank == 0:
        torch.save({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}, out)
    if world > 1:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_on_two_processes_equals_one_process_accumulating(tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_grads, args=(2, port, str(tmp_path / "ddp.pt")), nprocs=2, join=True)
    _grads(0, 1, port, str(tmp_path / "acc.pt"))
    ddp, acc = torch.load(tmp_path / "ddp.pt"), torch.load(tmp_path / "acc.pt")
    assert ddp.keys() == acc.keys() and len(acc) > 20
    for k in acc:
        torch.testing.assert_close(ddp[k], acc[k], rtol=1e-5, atol=1e-7, msg=k)
    assert sum(float(g.abs().sum()) for g in acc.values()) > 0


def test_divergence_is_named_and_always_stops_on_nan():
    from curate.w2v2.health import Health, Remedy, TrainingHealthError

    remedy = Remedy(peak_lr=5e-4, batch_s=150.0, h_sqrt_lr=7.9e-5)
    with pytest.raises(TrainingHealthError, match=r"h_sqrt ladder: optim\.lr=7\.90e-05") as e:
        Health(remedy=remedy, actions={"divergence": "warn"}).check(3, float("nan"), 1.0, 1.0, [10.0, 10.0])
    assert e.value.name == "divergence"
    h = Health(spike_patience=5, collapse_after=0)  # a blow-up stops after the warm-up (here: none) …
    for s in range(30):
        h.check(s, 3.0, 3.0, 1.0, [10.0, 10.0])
    warm = Health(spike_patience=5, warmup=1000, collapse_after=0)  # … and only warns inside it
    for s in range(40):
        warm.check(s, 3.0 if s < 30 else 50.0, 3.0, 1.0, [10.0, 10.0])
    assert [(f["name"], f["action"]) for f in warm.findings] == [("divergence", "warn")]
    with pytest.raises(TrainingHealthError, match="running median") as e:
        for s in range(30, 40):
            h.check(s, 50.0, 3.0, 1.0, [10.0, 10.0])
    assert e.value.name == "divergence"


def test_cli_errors_name_the_problem(tmp_path):
    from typer.testing import CliRunner

    from curate.cli.app import app

    def run(*args):
        r = CliRunner().invoke(app, ["pretrain", *args])
        return r.exit_code, " ".join(r.output.split())

    assert run("tiny-cpu") == (
        2,
        "error: no data: pass --data RUN_DIR --variant NAME (or a materialized directory), or set data.path",
    )
    code, out = run("tiny-cpu", "--data", str(tmp_path))
    assert code == 2 and "neither a materialized directory" in out
    code, out = run("export-hf", str(tmp_path / "nope.pt"), str(tmp_path / "hf"))
    assert code == 2 and "no such checkpoint" in out
    code, out = run("tiny-cpu", "--set", "model.heads=5")
    assert code == 2 and "not divisible" in out


def test_objective_can_be_driven_far_below_chance_on_one_batch(speech_run):
    """Sanity of the whole gradient path (context → logits ← targets): one fixed batch, mask, distractor set and
    Gumbel noise are *memorised* within a few steps. This says nothing about learning; for that see
    ``test_fresh_masks_each_step_lower_the_held_out_loss_on_real_speech`` and benchmarks/bench_learn.py."""
    from contextlib import nullcontext

    from curate.w2v2.config import load_config
    from curate.w2v2.data import VariantSource
    from curate.w2v2.loss import COLLAPSE_LOSS
    from curate.w2v2.model import Wav2Vec2
    from curate.w2v2.step import accumulate_gradients, prepare

    cfg = load_config("tiny-cpu", TINY)
    src = VariantSource(speech_run, "speech")
    batch = {"wav": np.stack([src.read(i)[:24000] for i in range(2)]), "lengths": np.array([24000, 24000])}
    torch.manual_seed(0)
    model = Wav2Vec2(cfg.model).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(25):
        opt.zero_grad()
        st = accumulate_gradients(model, [prepare(batch, cfg, torch.device("cpu"), 0)], cfg, 1.0, 1, nullcontext)
        opt.step()
    chance = math.log(cfg.model.num_negatives + 1)
    assert st["contrastive_sum"] / st["n"] < 0.5 * chance and st["correct"] / st["n"] > 0.5
    assert chance < COLLAPSE_LOSS


@pytest.mark.realaudio
@pytest.mark.slow
def test_fresh_masks_each_step_lower_the_held_out_loss_on_real_speech(realaudio, tmp_path):
    """Learning, not memorising: fresh masks, distractors and Gumbel noise every step, scored on held-out real
    utterances against the chance level of their own distractor sets. (~800 steps ≈ 35 s on one core.)"""
    from curate.testing.speech import real_speech_run
    from curate.w2v2.train import pretrain

    run = real_speech_run(realaudio, tmp_path / "data")
    s = pretrain(
        "tiny-cpu",
        run,
        tmp_path / "run",
        variant="speech",
        stop_at=800,
        overrides=["train.tensorboard=false", "train.max_steps=3000", "train.val_every=400", "train.log_every=100"],
    )
    v = s["val"]
    assert s["val_segments"] >= 8 and v["val_scored_s"] > 30
    assert v["val_contrastive"] < 0.96 * v["val_contrastive_chance"], v
    assert v["val_accuracy"] > 2 * v["val_accuracy_chance"]
    assert min(v["val_code_dependence_0"], v["val_code_dependence_1"]) > 0.3
