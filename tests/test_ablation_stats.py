"""The statistics of the ablation table on known cases, and the held-out split that never comes out empty."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curate.ablation.stats import fmt_ci, mean_ci, paired_bootstrap
from curate.w2v2.heldout import HeldOutError, split, split_source


def test_mean_ci_is_the_student_t_interval():
    m, h = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and h == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) · s / √n
    m, h = mean_ci([10.0, 12.0])
    assert m == 11.0 and h == pytest.approx(12.706205 * math.sqrt(2) / math.sqrt(2), rel=1e-5)
    assert mean_ci([5.0]) == (5.0, None) and math.isnan(mean_ci([])[0])
    assert fmt_ci(2.0, 0.5) == "2.000 ± 0.500" and fmt_ci(2.0, None) == "2.000" and fmt_ci(None, None) == ""


def test_paired_bootstrap_sees_a_consistent_small_difference_and_not_noise():
    rng = np.random.default_rng(0)
    den = rng.integers(5, 20, 200).astype(float)
    a = den * rng.uniform(0.2, 0.6, 200)  # per-utterance error sums, very different between utterances
    r = paired_bootstrap(a, a - 0.02 * den, den)  # B makes 2 points fewer errors on every utterance
    assert r["diff"] == pytest.approx(-0.02) and r["hi"] < 0 and r["verdict"] == "B better"
    r = paired_bootstrap(a - 0.02 * den, a, den)
    assert r["lo"] > 0 and r["verdict"] == "B worse"
    noise = a + rng.normal(0, 0.3, 200) * den  # no systematic difference, large per-utterance noise
    r = paired_bootstrap(a, noise, den)
    assert r["lo"] < 0 < r["hi"] and r["verdict"] == "no difference"
    same = paired_bootstrap(a, a, den)
    assert same["diff"] == 0 and same["lo"] == same["hi"] == 0 and same["verdict"] == "no difference"
    with pytest.raises(ValueError, match="equal"):
        paired_bootstrap([1.0], [1.0, 2.0], [1.0])


@pytest.mark.parametrize("rule", ["speaker", "group", "share"])
def test_split_holds_out_whole_groups_never_all_of_them(rule):
    keys = np.array(["s1"] * 5 + ["s2"] * 4 + ["s3"] * 3, dtype=object)
    if rule == "share":
        keys = np.array([str(i) for i in range(12)], dtype=object)
    train, val = split(keys, np.ones(12), rule, 0.2, 0)
    assert len(val) >= 1 and len(train) >= 1 and not set(train) & set(val)
    assert not set(keys[train]) & set(keys[val])  # no group on both sides
    assert split(keys, np.ones(12), rule, 0.99, 0)[0].size > 0  # something is left to train on


class _Src:
    def __init__(self, sessions):
        self.sessions = np.asarray(sessions, dtype=object)
        self.lengths = np.full(len(sessions), 32000)
        self.name = "test-source"

    def utterances(self):
        raise OSError("no recordings.parquet")


def test_a_librispeech_like_source_falls_back_and_a_single_utterance_is_refused():
    src = _Src([f"utt{i}" for i in range(10)])  # every utterance its own recording: median_per_session is empty
    usable = np.arange(10)
    train, val, rule = split_source(src, usable, src.lengths, "median_per_session", 0.1, 0)
    assert rule == "share" and len(val) == 1 and len(train) == 9
    one = _Src(["only"])
    with pytest.raises(HeldOutError, match="holds out 0"):
        split_source(one, np.arange(1), one.lengths, "speaker", 0.1, 0)
