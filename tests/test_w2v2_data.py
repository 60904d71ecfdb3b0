"""Pre-training data: thesis batching, the validation split, variant and materialized-shard readers."""

from __future__ import annotations

import numpy as np
import pytest

from curate.testing.speech import make_speech_run
from curate.w2v2.batching import BatchStream, plan_epoch
from curate.w2v2.config import DataConfig
from curate.w2v2.data import BatchDataset, DataError, ShardSource, VariantSource, collate, open_source, split_train_val


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory):
    return make_speech_run(tmp_path_factory.mktemp("speech"), recordings=3, per_recording=4)


def test_batches_respect_budget_cover_everything_and_drop_wide_spreads():
    rng = np.random.default_rng(0)
    lengths = (rng.uniform(1, 30, 3000) * 16000).astype(np.int64)
    ids = np.arange(3000)
    plan = plan_epoch(lengths, ids, 2_400_000, seed=0, epoch=0, bin_size=500, queue_size=300, max_spread_s=10.0)
    seen = np.concatenate(plan.batches)
    assert len(np.unique(seen)) == len(seen)  # no utterance twice
    for b in plan.batches:
        assert len(b) * lengths[b].max() <= 2_400_000
        assert lengths[b].max() - lengths[b].min() <= 10 * 16000
    dropped_n = 3000 - len(seen)
    assert (plan.dropped == 0) == (dropped_n == 0)  # every missing utterance is in a counted batch
    same = plan_epoch(lengths, ids, 2_400_000, seed=0, epoch=0, bin_size=500, queue_size=300)
    other = plan_epoch(lengths, ids, 2_400_000, seed=0, epoch=1, bin_size=500, queue_size=300)
    assert all((a == b).all() for a, b in zip(plan.batches, same.batches, strict=True))
    assert len(other.batches) != len(plan.batches) or any(
        (a != b).any() for a, b in zip(plan.batches, other.batches, strict=False)
    )
    spread = [lengths[b].max() - lengths[b].min() for b in plan.batches]
    assert np.median(spread) < 2 * 16000  # the priority queue groups similar lengths


def test_spread_drops_are_counted():
    lengths = np.array([16000, 16000 * 20], dtype=np.int64)
    plan = plan_epoch(lengths, np.arange(2), 10**9, seed=0, epoch=0, queue_size=2, max_spread_s=10.0)
    assert plan.batches == [] and plan.dropped == 1 and plan.dropped_s == pytest.approx(21.0)


def test_stream_state_resumes_the_same_sequence():
    lengths = np.full(50, 32000, dtype=np.int64)
    a = BatchStream(lengths, np.arange(50), 32000 * 4, seed=3, queue_size=8)
    seq = [a.next()[0].tolist() for _ in range(30)]  # crosses epochs (13 batches per epoch)
    b = BatchStream(lengths, np.arange(50), 32000 * 4, seed=3, queue_size=8)
    for _ in range(11):
        b.next()
    c = BatchStream(lengths, np.arange(50), 32000 * 4, seed=3, queue_size=8)
    c.load_state(b.state())
    assert [c.next()[0].tolist() for _ in range(19)] == seq[11:]
    assert c.epoch == 2


def test_median_per_session_split_and_random_split():
    sessions = np.array(["a"] * 5 + ["b"] * 2 + ["c"], dtype=object)
    lengths = np.array([5, 1, 4, 2, 3, 7, 9, 4])
    train, val = split_train_val(sessions, lengths, "median_per_session", 0.0, 0)
    assert val.tolist() == [4, 5]  # a: median length 3 → index 4; b: lower median; c: single
    assert sorted(train.tolist() + val.tolist()) == list(range(8))
    train, val = split_train_val(sessions, lengths, "random", 0.25, 0)
    assert len(val) == 2 and not set(val) & set(train)


def test_collate_crop_and_pad():
    arrays = [np.ones(100, np.float32), np.ones(60, np.float32)]
    wav, lens, waste = collate(arrays, True, np.random.default_rng(0))
    assert wav.shape == (2, 60) and lens.tolist() == [60, 60] and waste == pytest.approx(40 / 160)
    wav, lens, waste = collate(arrays, False, np.random.default_rng(0))
    assert (
        wav.shape == (2, 100)
        and lens.tolist() == [100, 60]
        and wav[1, 60:].sum() == 0
        and waste == pytest.approx(40 / 200)
    )


def test_variant_and_materialized_shards_give_the_same_audio(speech_run, tmp_path):
    from curate.export.materialize import materialize

    var = VariantSource(speech_run, "speech")
    materialize(speech_run, "speech", tmp_path / "mat", fmt="pcm16", runner="local", shard_bytes=200_000)
    shards = open_source(tmp_path / "mat", None)
    assert isinstance(shards, ShardSource) and len(list((tmp_path / "mat" / "shards").glob("*.pcm16"))) > 1
    assert sorted(shards.lengths.tolist()) == sorted(var.lengths.tolist())
    for i in range(3):
        j = int(np.flatnonzero(var.lengths == shards.lengths[i])[0])
        np.testing.assert_allclose(shards.read(i), var.read(j), atol=1 / 32768 + 1e-6)


def test_corruption_hook_applies_to_training_batches_only(speech_run):
    calls = []

    def corrupt(arrays, epoch, batch_idx, is_validation):
        calls.append((epoch, batch_idx, is_validation))
        return [a * 0 for a in arrays], {"condition": "silence"}

    src = VariantSource(speech_run, "speech")
    cfg = DataConfig()
    train = BatchDataset(src, cfg, 0, corrupt).load(np.array([0, 1]), 2, 7)
    val = BatchDataset(src, cfg, 0, corrupt, validation=True).load(np.array([0, 1]), 0, 0)
    assert calls == [(2, 7, False)] and train["corruption"] == {"condition": "silence"}
    assert np.abs(train["wav"]).sum() == 0 and np.abs(val["wav"]).sum() > 0 and val["corruption"] is None


def test_bad_data_paths_are_named(tmp_path, speech_run):
    with pytest.raises(DataError, match="neither a materialized"):
        open_source(tmp_path, None)
    with pytest.raises(DataError, match=r"no such variant.*have: speech"):
        open_source(speech_run, "w-raw")
