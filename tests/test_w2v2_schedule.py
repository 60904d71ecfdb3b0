"""LR schedules and the batch-size heuristics of thesis Table 11.

Table 11's numbers are not reproduced in the issue; the expected values below are derived by hand from its
formulas with m_lr = 5e-4 and s_orig = 6000 s (s = batch size in seconds of audio):
h_const = m_lr, h_sqrt = m_lr·sqrt(s/s_orig), h_lin = m_lr·s/s_orig.
"""

from __future__ import annotations

import pytest

from curate.errors import ConfigError
from curate.w2v2.config import OptimConfig
from curate.w2v2.schedule import batch_seconds, heuristic_lr, lr_at, tri_cyclic, tri_stage, warmup_cosine

TABLE = [  # batch seconds, h_const, h_sqrt, h_lin
    (150.0, 5e-4, 7.905694e-5, 1.25e-5),  # one GPU, 2.4 M samples
    (600.0, 5e-4, 1.581139e-4, 5e-5),  # 4 × 2.4 M samples (accumulation 4)
    (1500.0, 5e-4, 2.5e-4, 1.25e-4),
    (6000.0, 5e-4, 5e-4, 5e-4),  # the original batch size: all three agree
]


@pytest.mark.parametrize(("s", "const", "sqrt", "lin"), TABLE)
def test_lr_heuristics(s, const, sqrt, lin):
    assert heuristic_lr("h_const", s) == pytest.approx(const)
    assert heuristic_lr("h_sqrt", s) == pytest.approx(sqrt, rel=1e-6)
    assert heuristic_lr("h_lin", s) == pytest.approx(lin, rel=1e-9)


def test_batch_seconds_is_gpus_times_accumulation_times_budget():
    assert batch_seconds(2_400_000, 1, 1) == 150.0
    assert batch_seconds(2_400_000, 2, 2) == 600.0
    with pytest.raises(ConfigError, match="h_const"):
        heuristic_lr("h_cubic", 150.0)


def test_tri_cyclic_25k_up_25k_down_min_is_max_over_100():
    f = lambda t: tri_cyclic(t, 5e-4, 25_000, 25_000, 0.01)  # noqa: E731
    assert f(0) == pytest.approx(5e-6)
    assert f(12_500) == pytest.approx(5e-6 + (5e-4 - 5e-6) / 2)
    assert f(25_000) == pytest.approx(5e-4)
    assert f(37_500) == pytest.approx(5e-6 + (5e-4 - 5e-6) / 2)
    assert f(50_000) == pytest.approx(5e-6)  # next cycle
    assert f(75_000) == pytest.approx(5e-4)


def test_tri_stage_and_cosine():
    ts = lambda t: tri_stage(t, 1.0, 1000, [0.1, 0.4, 0.5], 0.01, 0.05)  # noqa: E731
    assert ts(0) == pytest.approx(0.01)
    assert ts(50) == pytest.approx(0.01 + 0.99 * 0.5)
    assert ts(100) == ts(499) == 1.0
    assert ts(750) == pytest.approx(0.05**0.5)
    assert ts(1000) == pytest.approx(0.05)
    wc = lambda t: warmup_cosine(t, 1.0, 1100, 100)  # noqa: E731
    assert wc(0) == 0.0 and wc(50) == pytest.approx(0.5) and wc(100) == pytest.approx(1.0)
    assert wc(600) == pytest.approx(0.5) and wc(1100) == pytest.approx(0.0, abs=1e-12)


def test_lr_at_dispatches_and_rejects_unknown():
    cfg = OptimConfig(schedule="constant")
    assert lr_at(123, cfg, 3e-4, 1000) == 3e-4
    with pytest.raises(ConfigError, match=r"optim\.schedule"):
        lr_at(0, OptimConfig(schedule="linear"), 1.0, 10)


def test_base_and_large_use_h_sqrt_at_their_batch_seconds():
    """Thesis Table 11: h_const diverges for batches ≤ 600 s; the best BASE LR at 150 s is h_sqrt's 7.91e-5."""
    from curate.w2v2.config import load_config
    from curate.w2v2.schedule import peak_lr

    base, large = load_config("base"), load_config("large")
    assert base.optim.heuristic == large.optim.heuristic == "h_sqrt"
    assert peak_lr(base) == pytest.approx(7.91e-5, rel=1e-3)
    assert peak_lr(base, world=4) == pytest.approx(1.58e-4, rel=1e-3)  # 600 s on 4 GPUs
    assert batch_seconds(large.data.batch_samples, 1, large.train.accumulation) == 150.0
    assert peak_lr(large) == pytest.approx(3e-4 * (150 / 9720) ** 0.5, rel=1e-6)
    assert peak_lr(load_config("base", ["optim.lr=1e-4"]), world=8) == 1e-4
