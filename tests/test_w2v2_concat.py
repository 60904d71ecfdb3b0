"""The concatenation conditions (1spk-concat, 2spk-concat) in the pre-trainer's training data path, and the
validation-loss curve in metrics.jsonl."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curate.w2v2.batching import BatchStream
from curate.w2v2.config import DataConfig
from curate.w2v2.data import BatchDataset, EpochPairs, VariantSource, build_transforms

SPEAKERS = {"100": ["1", "2"], "200": ["3", "4"]}  # 2 speakers × 2 sessions (LibriSpeech chapters)


@pytest.fixture(scope="module")
def libri_run(tmp_path_factory):
    """A LibriSpeech-layout corpus (3 tone utterances per chapter) imported as a run directory."""
    from curate.corrupt import librispeech_run_dir
    from curate.testing import tone, write_audio

    root = tmp_path_factory.mktemp("libri")
    k = 0
    for spk, chapters in SPEAKERS.items():
        for chap in chapters:
            d = root / "train-clean" / spk / chap
            lines = []
            for u in range(3):
                uid = f"{spk}-{chap}-{u:04d}"
                write_audio(d / f"{uid}.flac", tone(1.1 + 0.1 * u, freq=150 + 37 * k, seed=k), subtype="PCM_16")
                lines.append(f"{uid} HELLO WORLD")
                k += 1
            (d / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    return librispeech_run_dir(root, tmp_path_factory.mktemp("run"), variant="libri", threads=1)


def _pairs(src: VariantSource, condition: str, seed: int = 3) -> EpochPairs:
    concat, batch_transform = build_transforms(DataConfig(corruption={"condition": condition}), seed)
    assert batch_transform is None and concat is not None
    return EpochPairs(concat, src.utterances(), np.arange(len(src.lengths)), src.lengths)


@pytest.mark.parametrize("condition", ["1spk-concat", "2spk-concat"])
def test_training_examples_are_two_utterances_back_to_back(libri_run, condition):
    src = VariantSource(libri_run, "libri")
    utts = src.utterances()
    assert len({u.session for u in utts}) == 4 and len({u.speaker for u in utts}) == 2  # chapters, speakers
    pairs = _pairs(src, condition)
    ids = np.arange(len(utts))
    cfg = DataConfig(crop=False)  # zero-padding: every example kept whole
    batch = BatchDataset(src, cfg, 3, pairs=pairs).load(ids, 0, 0)
    for k, (i, j) in enumerate(zip(ids.tolist(), batch["partners"], strict=True)):
        assert j is not None and j != i
        if condition == "1spk-concat":
            assert utts[i].session == utts[j].session
        else:
            assert utts[i].speaker != utts[j].speaker
        want = np.concatenate([src.read(i), src.read(j)])
        n = int(batch["lengths"][k])
        assert n == want.size
        np.testing.assert_array_equal(batch["wav"][k, :n], want)
    assert batch["lengths"].tolist() == pairs.example_lengths(0).tolist()

    # Validation batches are never concatenated, even when handed the pairing.
    val = BatchDataset(src, cfg, 3, pairs=pairs, validation=True).load(ids[:3], 0, 0)
    assert val["partners"] is None
    for k, i in enumerate(ids[:3].tolist()):
        np.testing.assert_array_equal(val["wav"][k, : val["lengths"][k]], src.read(i))

    # The batcher plans with the concatenated lengths: the sample budget holds for the examples.
    budget = 16000 * 6
    stream = BatchStream(pairs.example_lengths, ids, budget, 3, queue_size=4, max_spread_s=100.0)
    ds = BatchDataset(src, cfg, 3, pairs=pairs)
    for _ in range(3):
        idx, epoch, g = stream.next()
        b = ds.load(idx, epoch, g)
        assert len(idx) * b["lengths"].max() <= budget or len(idx) == 1


def test_pairs_are_a_function_of_seed_and_epoch(libri_run):
    src = VariantSource(libri_run, "libri")
    for condition in ("1spk-concat", "2spk-concat"):
        a, b = _pairs(src, condition), _pairs(src, condition)
        assert (a.partners(0) == b.partners(0)).all() and (a.partners(1) == b.partners(1)).all()
        assert (a.partners(0) != a.partners(1)).any()
        assert (a.partners(0) != _pairs(src, condition, seed=4).partners(0)).any()


def _curve(out_dir):
    return [json.loads(ln) for ln in (out_dir / "metrics.jsonl").read_text().splitlines()]


def test_pretraining_runs_under_2spk_concat_resumes_exactly_and_logs_val_loss(libri_run, tmp_path):
    from curate.ablation.runner import val_curve
    from curate.w2v2.config import load_config
    from curate.w2v2.train import pretrain

    cfg = load_config(
        "tiny-cpu",
        [
            "train.tensorboard=false",
            "train.log_every=1",
            "train.max_steps=4",
            "train.val_every=2",
            "train.ckpt_every=100",
            "data.val_split=random",
            "data.val_fraction=0.25",
        ],
    )
    cfg.data.corruption = {"condition": "2spk-concat"}
    s = pretrain(cfg, libri_run, tmp_path / "straight", variant="libri")
    assert s["steps"] == 4 and s["train_segments"] == 9 and s["val_segments"] == 3
    straight = _curve(tmp_path / "straight")
    assert all(np.isfinite(r["loss"]) for r in straight)
    # An epoch = one example per training utterance, each two ≥ 1.1 s utterances: the 3 s budget holds one.
    assert straight[-1]["epochs"] == pytest.approx(4 / 9)
    assert 2.2 <= straight[0]["audio_h"] * 3600 <= 2.6
    assert [r["step"] for r in straight if "val_loss" in r] == [2, 4]
    assert val_curve(tmp_path / "straight") == [[r["step"], r["val_loss"]] for r in straight if "val_loss" in r]

    pretrain(cfg, libri_run, tmp_path / "resumed", variant="libri", stop_at=2)
    pretrain(cfg, libri_run, tmp_path / "resumed", variant="libri", resume=True)
    resumed = _curve(tmp_path / "resumed")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for ra, rb in zip(straight, resumed, strict=True):
        assert ("val_loss" in ra) == ("val_loss" in rb)
        for k in ("loss", "audio_h", "epochs", *(["val_loss"] if "val_loss" in ra else [])):
            assert ra[k] == pytest.approx(rb[k], rel=1e-6), (ra["step"], k)


def test_val_curve_falls_back_to_tensorboard_events(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from curate.ablation.runner import val_curve

    w = SummaryWriter(str(tmp_path / "tb"))
    for step, v in ((5, 3.0), (10, 2.5)):
        w.add_scalar("val/loss", v, step)
    w.close()
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 5, "loss": 3.1}) + "\n")  # no val_loss records
    assert val_curve(tmp_path) == [[5, 3.0], [10, 2.5]]
