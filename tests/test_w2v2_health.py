"""Chance-aware validation and named health checks: chance levels on the actual distractor sets, whole held-out
utterances scored, a deliberately collapsed model flagged by name, stalls and diversity collapse named, mask
semantics explicit."""

from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np
import pytest
import torch

from curate.errors import ConfigError
from curate.w2v2.config import DataConfig, load_config
from curate.w2v2.health import Health, Remedy, TrainingHealthError
from curate.w2v2.loss import chance_levels
from curate.w2v2.model import Wav2Vec2
from curate.w2v2.validate import build_validation_set, held_out_line, validate

OFF = ["train.tensorboard=false"]


def test_chance_level_counts_the_usable_distractors():
    inf = float("-inf")
    logits = torch.tensor(
        [
            [1.0, 0.5, inf, 0.2],  # K_eff = 2 (one distractor equals the target's code)
            [0.0, 0.0, 0.0, 0.0],  # all equal (e.g. a zero context): not a hit
            [2.0, inf, inf, inf],
        ]
    )  # K_eff = 0: chance loss 0, chance accuracy 1
    c = chance_levels(logits)
    assert c["k_eff"].tolist() == [2, 3, 0]
    assert float(c["chance_sum"]) == pytest.approx(math.log(3) + math.log(4) + 0.0)
    assert float(c["chance_acc_sum"]) == pytest.approx(1 / 3 + 1 / 4 + 1)
    assert c["correct_steps"].tolist() == [True, False, True]


class _Source:
    """Held-out utterances of given lengths (samples), distinguishable by their content."""

    def __init__(self, lengths):
        rng = np.random.default_rng(0)
        self.arrays = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]

    def read(self, i):
        return self.arrays[i]


def test_validation_scores_every_held_out_second_uncropped():
    lengths = [16000, 17000, 40000, 24000, 100000]  # 100000 > max_s: three chunks of ≈ 33333, none dropped
    cfg = DataConfig(max_s=3.0, batch_samples=48000)
    batches = build_validation_set(_Source(lengths), np.arange(5), cfg)
    assert len(batches) == 7  # val_bucket_s = 0: one utterance (chunk) per batch
    assert sum(int(b["lengths"].sum()) for b in batches) == sum(lengths)
    assert all(b["wav"].shape[1] <= 48000 and b["waste"] == 0 for b in batches)
    bucketed = build_validation_set(
        _Source(lengths), np.arange(5), DataConfig(max_s=3.0, batch_samples=80000, val_bucket_s=0.1)
    )
    assert sum(int(b["lengths"].sum()) for b in bucketed) == sum(lengths) and len(bucketed) < len(batches)
    assert max(b["wav"].shape[0] for b in bucketed) > 1  # 16000 + 17000 share a padded batch


def _collapsed_model(cfg, scale: float):
    """A tiny model whose quantizer logits are (almost) constant: its codes ignore the input."""
    torch.manual_seed(0)
    model = Wav2Vec2(cfg.model)
    with torch.no_grad():
        model.quantizer.weight_proj.weight.mul_(scale)
    return model


@pytest.mark.parametrize("scale", [1e-6, 0.0])
def test_a_deliberately_collapsed_model_is_flagged_by_name(scale):
    cfg = load_config("tiny-cpu", OFF)
    batches = build_validation_set(_Source([32000, 40000, 48000]), np.arange(3), cfg.data)
    val = validate(_collapsed_model(cfg, scale), batches, cfg, torch.device("cpu"), 2.0, nullcontext)
    assert val["val_code_dependence_0"] < 1e-3 and val["val_code_mi_0"] < 1e-3  # entropy = ln V
    assert val["val_contrastive"] >= val["val_contrastive_chance"] - 1e-6  # targets are noise: never below chance
    if scale == 0:  # every code identical: every distractor excluded, a "perfect" loss of 0 …
        assert val["val_contrastive"] == 0 and val["val_contrastive_chance"] == 0 and val["val_code_perplexity_0"] == 1
    health = Health(collapse_after=0, chance_patience=1, remedy=Remedy(peak_lr=2e-3, batch_s=3.0, h_sqrt_lr=1.1e-5))
    with pytest.raises(TrainingHealthError, match="quantizer_collapse at step 10: codebook 0 ignores its input") as e:
        health.check_validation(10, val)  # … is caught as what it is
    assert e.value.name == "quantizer_collapse" and "h_sqrt ladder" in str(e.value)
    warn = Health(collapse_after=0, chance_patience=1, actions={"quantizer_collapse": "warn"})
    assert warn.check_validation(10, val) == ["quantizer_collapse"]
    torch.manual_seed(0)
    healthy = validate(Wav2Vec2(cfg.model), batches, cfg, torch.device("cpu"), 2.0, nullcontext)
    assert healthy["val_code_dependence_0"] > 0.2  # a fresh quantizer's codes depend on the input
    assert Health(collapse_after=0, chance_patience=1).check_validation(10, {**healthy, "val_contrastive": 1.0}) == []


def _val(loss: float, chance: float = 3.0, dependence: float = 0.5) -> dict:
    return {
        "val_contrastive": loss,
        "val_contrastive_chance": chance,
        "val_code_dependence_0": dependence,
        "val_code_dependence_1": dependence,
        "val_code_perplexity_0": 20.0,
        "val_code_perplexity_1": 20.0,
    }


def test_contrastive_at_chance_fires_after_n_validations_only_after_collapse_after():
    h = Health(collapse_after=300, chance_patience=3, actions={"contrastive_at_chance": "stop"})
    for step in (100, 200, 300, 400):  # the first two do not count (before collapse_after)
        h.check_validation(step, _val(2.99))
    with pytest.raises(TrainingHealthError, match=r"within 2% of its chance level 3\.000") as e:
        h.check_validation(500, _val(2.98))
    assert e.value.name == "contrastive_at_chance"
    h = Health(collapse_after=0, chance_patience=2)
    assert [h.check_validation(s, _val(v)) for s, v in ((1, 2.99), (2, 2.5), (3, 2.99))] == [[], [], []]


def test_diversity_collapse_needs_maxed_codebooks_and_a_stalled_contrastive_loss():
    remedy = Remedy(loss_reduction="sum", diversity_weight=0.1, codes=640)
    h = Health(collapse_after=0, chance_patience=2, codebook_entries=32, remedy=remedy)
    for step, loss in enumerate((2.8, 2.7, 2.69, 2.69)):  # 10 % below chance, then no progress
        for _ in range(5):
            h.check(step, loss, loss, 1.0, [31.5, 31.8], masked=3000.0)
        fired = h.check_validation(step, _val(loss))
    assert fired == ["diversity_collapse"] and h.findings[-1]["action"] == "warn"
    assert "λ_d" in h.findings[-1]["message"] and "N/(G·V) ≈ 4.7×" in h.findings[-1]["message"]
    h = Health(collapse_after=0, chance_patience=2, codebook_entries=32)
    for step, loss in enumerate((2.8, 2.6, 2.4, 2.2)):  # improving: no finding
        h.check(step, loss, loss, 1.0, [31.5, 31.8])
        assert h.check_validation(step, _val(loss)) == []


def test_mask_semantics_are_explicit_and_nonsense_is_rejected():
    m = load_config("base").model
    assert (m.mask_semantics, m.span_p) == ("spans", 0.5) and m.masked_fraction == pytest.approx(0.40, abs=0.01)
    with pytest.raises(ConfigError, match=r"mask_prob=0.065 makes no sense with mask_semantics=spans.*start_prob"):
        load_config("base", ["model.mask_prob=0.065"])
    paper = load_config("base", ["model.mask_prob=0.065", "model.mask_semantics=start_prob"]).model
    assert paper.span_p == pytest.approx(0.65) and paper.masked_fraction == pytest.approx(0.49, abs=0.01)
    with pytest.raises(ConfigError, match="start_prob"):
        load_config("base", ["model.mask_prob=0.5", "model.mask_semantics=start_prob"])
    with pytest.raises(ConfigError, match="on_health"):
        load_config("base", ["train.on_health={quantizer_collapse: ignore}"])


def test_held_out_line_puts_the_loss_beside_its_chance_level(tmp_path):
    rec = {**_val(2.5, 3.0), "val_accuracy": 0.2, "val_accuracy_chance": 0.05}
    line = held_out_line({"val": rec})
    assert line.endswith("held-out contrastive 2.500 (chance 3.000)") and "16.7% below chance" in line
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 1, "loss": 3}\n' + __import__("json").dumps({"step": 2, **rec}) + "\n"
    )
    assert held_out_line(tmp_path) == line
    assert "no validation ran" in held_out_line({"val": {}})
    assert "at chance (within 2 %)" in held_out_line({"val": {**rec, "val_contrastive": 2.99}})


# ------------------------------------------------------------------ training-statistics checks that know the warm-up


def _feed(h: Health, steps, gap: float, dep: float = 0.5, chance: float = 3.0, start: int = 0) -> None:
    """``steps`` training steps whose contrastive loss is ``gap`` below ``chance``, code input-dependence ``dep``."""
    for s in range(start, start + steps):
        c = chance * (1 - gap)
        h.check(s, c, c, 1.0, [20.0, 20.0], chance=chance, code_ppl=[20.0, 20.0], dependence=[dep, dep])


def test_a_collapsing_quantizer_is_stopped_from_the_training_statistics_within_two_windows():
    h = Health(window=50, health_from=100, warmup=10_000)  # long warm-up: collapse stops regardless
    _feed(h, 300, gap=0.0, dep=0.4)  # a slow start at chance with input-dependent codes: fine
    assert h.findings == [] or all(f["action"] == "warn" for f in h.findings)
    with pytest.raises(TrainingHealthError, match="quantizer_collapse at step 399: codebook 0 ignores its input") as e:
        _feed(h, 200, gap=0.0, dep=0.001, start=300)  # the codes stop depending on the input at step 300
    assert e.value.name == "quantizer_collapse"


def test_at_chance_and_regression_only_warn_during_the_warm_up_and_stop_after_it():
    h = Health(window=50, health_from=100, warmup=1000, chance_patience=3, collapse_after=0)
    _feed(h, 1000, gap=0.0)  # at chance through the whole warm-up: one warning, no stop
    assert [(f["name"], f["action"]) for f in h.findings] == [("contrastive_at_chance", "warn")]
    with pytest.raises(TrainingHealthError, match="contrastive_at_chance") as e:
        _feed(h, 200, gap=0.0, start=1000)
    assert e.value.name == "contrastive_at_chance"

    h = Health(window=50, health_from=0, warmup=300, chance_patience=2, collapse_after=0)
    _feed(h, 200, gap=0.2)  # learned: 20 % below chance …
    _feed(h, 100, gap=0.05, start=200)  # … climbs back towards chance inside the warm-up: a warning
    assert [(f["name"], f["action"]) for f in h.findings] == [("divergence", "warn")]
    with pytest.raises(TrainingHealthError, match="climbed back towards chance") as e:
        _feed(h, 100, gap=0.05, start=300)
    assert e.value.name == "divergence"


def test_validation_stall_checks_wait_for_the_warm_up():
    h = Health(collapse_after=0, chance_patience=2, warmup=500)
    assert [h.check_validation(s, _val(2.99)) for s in (100, 200, 300, 400, 500, 600)] == [[]] * 6
    with pytest.raises(TrainingHealthError, match="contrastive_at_chance at step 700"):
        h.check_validation(700, _val(2.99))  # the second validation at chance after the warm-up


def test_health_state_round_trips_for_exact_resume():
    h = Health(window=50, health_from=0)
    _feed(h, 170, gap=0.1)
    h2 = Health(window=50, health_from=0)
    h2.load_state(h.state())
    assert h2.state() == h.state() and h2.win["n"] == 20 and h2.best_gap == pytest.approx(0.1)
