"""Health checks on real (tiny) training runs: a collapsing quantizer is stopped soon after the collapse shows in
the training statistics, and a healthy run with a BASE-shaped schedule is never stopped during its warm-up."""

from __future__ import annotations

import json

import pytest

from curate.testing.speech import make_speech_run
from curate.w2v2.health import TrainingHealthError
from curate.w2v2.train import pretrain

QUIET = ["train.log_every=10", "train.tensorboard=false", "train.ckpt_every=100000"]


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory):
    return make_speech_run(tmp_path_factory.mktemp("speech"), recordings=4, per_recording=8)


def test_a_collapsing_tiny_run_is_stopped_within_twice_the_step_the_collapse_became_visible(
    speech_run, tmp_path, one_thread
):
    # LR 2e-2 with λ_d = 0.1: the diversity term flattens the code logits, the codes stop depending on the input
    ov = [*QUIET, "train.max_steps=600", "optim.lr=2e-2", "optim.warmup_steps=20", "model.diversity_weight=0.1"]
    with pytest.raises(TrainingHealthError) as e:
        pretrain("tiny-cpu", speech_run, tmp_path, variant="speech", overrides=ov)
    assert e.value.name == "quantizer_collapse"
    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # visible: the first logged step whose training input-dependence is below 5 % of its maximum in a codebook
    visible = next(r["step"] for r in recs if min(r["code_dependence_0"], r["code_dependence_1"]) < 0.05)
    stopped = int(str(e.value).split(" at step ")[1].split(":")[0])
    assert visible <= stopped <= 2 * visible, (visible, stopped)


def test_a_healthy_run_with_a_base_shaped_schedule_is_never_stopped_during_its_warm_up(
    speech_run, tmp_path, one_thread
):
    # base.yaml's schedule scaled by 1/100: tri-cyclic with a 250-step ramp from max/100, validation every 50
    # steps, the validation checks from step 50 (base: 25 k, 5 k, 5 k); the run is the warm-up.
    ov = [
        *QUIET,
        "optim.schedule=tri_cyclic",
        "optim.cycle_up=250",
        "optim.cycle_down=250",
        "train.max_steps=250",
        "train.val_every=50",
        "train.collapse_after=50",
    ]
    summary = pretrain("tiny-cpu", speech_run, tmp_path, variant="speech", overrides=ov)
    assert summary["steps"] == 250
    assert all(f["action"] == "warn" for f in summary["health"])
    # the slow start the old checks stopped at step 150 (3 validations at chance after step 50) was seen …
    assert any(f["name"] == "contrastive_at_chance" for f in summary["health"]), summary["health"]
