"""The corruption simulator's pure, seeded core: conditions, SNR, fractions, lengths, determinism, pairing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from curate.corrupt import (
    AudioPool,
    ConcatTransform,
    ConditionError,
    CorruptionTransform,
    MissingSourceError,
    Sources,
    Utterance,
    condition_from_name,
    load_condition,
    load_condition_config,
    parse_condition,
    realized_snr_db,
)
from curate.corrupt.conditions import choose, fit_length

REPO = Path(__file__).resolve().parent.parent
PRESETS = sorted((REPO / "configs" / "corruption").glob("*.yaml"))
THESIS = ["1spk-concat", "2spk-concat"] + [
    f"{f}-{x}"
    for x in (10, 33, 50)
    for f in ("2spk-mix", "sub-noise", "sub-music", "mix-noise", "mix-music", "mix-instr", "mix-vocal")
]
COLLATE = [n for n in THESIS if "concat" not in n]


def _noise(n: int, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def clips(realaudio, inventory):
    """Real speech as the batch, real noise / music as the added sources."""
    from curate import audio

    def load(prefix: str, k: int) -> dict[str, np.ndarray]:
        ids = sorted(i for i in inventory["id"] if i.startswith(prefix))[:k]
        return {i: audio.load(realaudio / "flac" / f"{i}.flac") for i in ids}

    return {
        "speech": load("sp_en_sbasr", 8),
        "noise": load("nz_", 6),
        "music": load("mi_a", 1) | load("mi_librosa_t", 1),
    }


@pytest.fixture(scope="module")
def sources(clips):
    music = clips["music"]
    return Sources(
        noise=AudioPool.from_arrays("noise", clips["noise"]),
        music=AudioPool.from_arrays("music", music),
        instrumental=AudioPool.from_arrays("instrumental", music),
        vocals=AudioPool.from_arrays("vocals", {k: v[::-1].copy() for k, v in music.items()}),
    )


@pytest.fixture(scope="module")
def batch(clips):
    return list(clips["speech"].values())


def test_every_thesis_condition_has_a_preset_that_validates():
    assert sorted(p.stem for p in PRESETS) == sorted(THESIS)
    for p in PRESETS:
        cond = load_condition_config(p)
        assert dataclasses.replace(cond, description="") == condition_from_name(p.stem)  # it is what its name says
        assert cond.snr_db == (0.0, 15.0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "x", "kind": "mixx", "source": "noise"}, "kind 'mixx'"),
        ({"name": "x", "kind": "mix", "source": "radio"}, "source must be one of"),
        ({"name": "x", "kind": "sub", "source": "vocals"}, "source must be one of"),
        ({"name": "x", "kind": "mix", "source": "noise", "fraction": 0}, "fraction must be in"),
        ({"name": "x", "kind": "mix", "source": "noise", "fraction": 1.5}, "fraction must be in"),
        ({"name": "x", "kind": "mix", "source": "noise", "snr_db": [15, 0]}, "low <= high"),
        ({"name": "x", "kind": "mix", "source": "noise", "snr_db": 5}, "snr_db must be a list"),
        ({"name": "x", "kind": "concat"}, "needs pairing"),
        ({"name": "x", "kind": "mix", "source": "noise", "fracton": 0.1}, "unknown key"),
        ({"kind": "mix"}, "missing 'name'"),
    ],
)
def test_bad_presets_fail_before_any_audio(raw, message):
    with pytest.raises(ConditionError, match=message):
        parse_condition(raw, "preset.yaml")


def test_bad_condition_names_and_files_are_explained(tmp_path):
    with pytest.raises(ConditionError, match="unknown source 'nois'"):
        load_condition("mix-nois-33")
    with pytest.raises(ConditionError, match="not a condition name"):
        load_condition("noise-33")
    bad = tmp_path / "corruption" / "mix-noise-10.yaml"
    bad.parent.mkdir()
    bad.write_text("name: mix-noise-33\nkind: mix\nsource: noise\nfraction: 0.33\n")
    with pytest.raises(ConditionError, match="differs from its file name"):
        load_condition(bad)
    with pytest.raises(ConditionError, match="not found"):
        load_condition(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", ["mix-noise-33", "mix-music-10", "mix-instr-50", "mix-vocal-33", "2spk-mix-50"])
def test_realized_snr_equals_the_drawn_snr(name, batch, sources):
    cond = load_condition(name)
    t = CorruptionTransform(cond, sources, seed=7)
    seen = 0
    for b in range(3):
        out, events = t(batch, epoch=0, batch_idx=b)
        for ev in events:
            assert 0.0 <= ev.snr_db <= 15.0
            assert realized_snr_db(batch[ev.index], out[ev.index]) == pytest.approx(ev.snr_db, abs=0.5)
            seen += 1
    assert seen >= 3


@pytest.mark.parametrize(
    ("name", "n", "expected"),
    [
        ("mix-noise-10", 12, 1),
        ("mix-noise-10", 3, 1),
        ("mix-noise-10", 40, 4),
        ("mix-noise-33", 12, 4),
        ("mix-noise-50", 12, 6),
        ("sub-music-33", 1, 1),
        ("2spk-mix-50", 12, 6),
        ("mix-noise-50", 0, 0),
    ],
)
def test_fraction_of_each_batch_and_at_least_one(name, n, expected, sources):
    waves = [_noise(1600 + 10 * k, k) for k in range(n)]
    out, events = CorruptionTransform(load_condition(name), sources, seed=1)(waves, 0, 0)
    assert len(events) == expected
    changed = [k for k in range(n) if out[k] is not waves[k]]
    assert changed == sorted(ev.index for ev in events)
    assert all(out[k] is waves[k] for k in range(n) if k not in changed)  # untouched ones are not even copied


@pytest.mark.parametrize("name", COLLATE)
def test_lengths_preserved_determinism_and_validation(name, batch, sources):
    t = CorruptionTransform(load_condition(name), sources, seed=3)
    out1, ev1 = t(batch, epoch=2, batch_idx=5)
    out2, ev2 = CorruptionTransform(load_condition(name), sources, seed=3)(batch, epoch=2, batch_idx=5)
    assert [x.size for x in out1] == [x.size for x in batch]
    assert all(x.dtype == np.float32 for x in out1)
    assert ev1 == ev2 and all(np.array_equal(a, b) for a, b in zip(out1, out2, strict=True))
    _out3, ev3 = t(batch, epoch=3, batch_idx=5)
    assert ev3 != ev1  # another epoch draws differently
    val, vev = t(batch, epoch=2, batch_idx=5, is_validation=True)
    assert vev == [] and all(a is b for a, b in zip(val, batch, strict=True))


@pytest.mark.parametrize("name", ["sub-noise-50", "sub-music-50"])
def test_sub_replaces_with_exactly_the_replaced_length(name, sources, clips):
    long_x, short_x = _noise(16_000 * 70, 0), _noise(300, 1)  # longer and shorter than every source clip
    waves = [long_x, short_x, _noise(16_000, 2)]
    cond = load_condition(name)
    out, events = CorruptionTransform(dataclasses.replace(cond, fraction=1.0), sources, seed=0)(waves, 0, 0)
    assert len(events) == 3
    pool = getattr(sources, events[0].source)
    for ev in events:
        y = out[ev.index]
        assert y.size == waves[ev.index].size
        assert not np.allclose(y, waves[ev.index])  # replaced, not mixed into
        src = pool.get([c.clip_id for c in pool.clips].index(ev.source_id))
        idx = (ev.source_offset + np.arange(y.size)) % src.size  # crop or tile, from the recorded offset
        np.testing.assert_allclose(y, src[idx] * ev.gain, rtol=1e-5, atol=1e-6)


def test_fit_length_crops_and_tiles_exactly():
    rng = np.random.default_rng(0)
    x = np.arange(10, dtype=np.float32)
    for n in (1, 7, 10, 25, 103):
        y, off = fit_length(x, n, rng)
        assert y.size == n and np.array_equal(y, x[(off + np.arange(n)) % 10])


def test_choose_is_a_subset_of_the_batch():
    rng = np.random.default_rng(0)
    for n in range(1, 30):
        idx = choose(n, 0.33, rng)
        assert len(set(idx)) == len(idx) == max(1, round(0.33 * n)) and idx.max() < n


def test_second_speaker_is_another_speaker(sources):
    waves = [_noise(8000, k) for k in range(6)]
    speakers = ["a", "a", "a", "a", "b", "b"]
    t = CorruptionTransform(load_condition("2spk-mix-50"), sources, seed=0)
    for b in range(10):
        _, events = t(waves, 0, b, speakers=speakers)
        for ev in events:
            assert speakers[int(ev.source_id.split(":")[1])] != speakers[ev.index]
    # no other speaker in the batch and no speech pool: the utterances stay clean and the skip is counted
    out, events = t(waves[:2], 0, 0, speakers=["a", "a"])
    assert events == [] and all(np.array_equal(a, b) for a, b in zip(out, waves[:2], strict=True))
    assert t.skipped_no_partner >= 1


def test_missing_sources_fail_at_construction():
    with pytest.raises(MissingSourceError, match="--stems"):
        CorruptionTransform(load_condition("mix-vocal-10"), Sources(), seed=0)
    with pytest.raises(ConditionError, match="ConcatTransform"):
        CorruptionTransform(load_condition("1spk-concat"), Sources(), seed=0)


def _utts() -> list[Utterance]:
    out = []
    for spk in range(5):
        for chap in range(2):
            out += [Utterance(f"{spk}-{chap}-{u}", str(spk), f"{spk}-{chap}") for u in range(3 + spk % 3)]
    out.append(Utterance("lonely", "9", "9-0"))  # the only utterance of its chapter
    return out


def test_1spk_concat_pairs_within_a_session():
    utts = _utts()
    pairs = ConcatTransform(load_condition("1spk-concat"), seed=0).pairs(utts, epoch=0)
    assert sorted(i for i, _ in pairs) == list(range(len(utts)))  # every utterance leads one example
    for i, j in pairs:
        if utts[i].key == "lonely":
            assert j is None
        else:
            assert j != i and utts[j].session == utts[i].session
    again = ConcatTransform(load_condition("1spk-concat"), seed=0).pairs(utts, epoch=0)
    assert again == pairs and ConcatTransform(load_condition("1spk-concat"), seed=0).pairs(utts, epoch=1) != pairs


def test_2spk_concat_pairs_across_speakers():
    utts = _utts()
    pairs = ConcatTransform(load_condition("2spk-concat"), seed=0).pairs(utts)
    assert sorted(i for i, _ in pairs) == list(range(len(utts)))
    assert all(j is not None and utts[i].speaker != utts[j].speaker for i, j in pairs)
    used = [j for _, j in pairs]
    assert len(set(used)) >= len(utts) - 1  # no speaker holds more than half: only an odd one out is reused
    skewed = [Utterance(f"a{k}", "a") for k in range(8)] + [Utterance("b0", "b")]
    pairs = ConcatTransform(load_condition("2spk-concat"), seed=0).pairs(skewed)
    assert all(skewed[i].speaker != skewed[j].speaker for i, j in pairs)
    assert ConcatTransform.apply(np.ones(3, np.float32), np.zeros(2, np.float32)).tolist() == [1, 1, 1, 0, 0]


def test_a_damaged_source_clip_is_skipped_not_fatal(tmp_path):
    from curate.corrupt import Clip

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....not audio")
    pool = AudioPool("noise", [Clip("a-broken", str(bad)), Clip("b-good")], {"b-good": _noise(500, 0)})
    t = CorruptionTransform(load_condition("mix-noise-50"), Sources(noise=pool), seed=0)
    for b in range(3):
        out, events = t([_noise(1000, 1), _noise(1000, 2)], 0, b)
        assert [ev.source_id for ev in events] == ["b-good"] and out[events[0].index].size == 1000
    with pytest.raises(MissingSourceError, match="none of its 1 clips"):
        AudioPool("noise", [Clip("a-broken", str(bad))]).draw(0)
