"""Lhotse exports that the rest of lhotse takes: a dual-mono source gives MonoCuts (channel selection, no MixedCut
downmix), so ``CutSet.to_shar(fields={"recording": "flac"})`` works on the default export, and segments without
text are named in a warning and left out of ``cuts_<split>_labelled.jsonl.gz``, which K2SpeechRecognitionDataset
reads."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from curate import audio
from curate.export import export
from curate.export.select import Selection, Split, load_segments
from curate.testing.export import LONG_ID, MESSY, make_messy_run

pytest.importorskip("lhotse")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_messy_run(tmp_path_factory.mktemp("dualmono"), dual_mono=True)


def test_dual_mono_is_detected_and_differing_channels_are_not(run_dir, tmp_path):
    stereo = run_dir.parent / "archive" / "stereo.wav"
    assert audio.channels_identical(str(stereo), 2, 12.0)
    x = np.stack([audio.load(stereo), 0.5 * audio.load(stereo)], axis=1)
    import soundfile as sf

    sf.write(tmp_path / "differ.wav", x, 16000)
    assert not audio.channels_identical(str(tmp_path / "differ.wav"), 2, 12.0)


def test_default_export_of_dual_mono_survives_to_shar_and_k2(run_dir, tmp_path, caplog):
    from lhotse import CutSet
    from lhotse.cut import MonoCut
    from lhotse.dataset import K2SpeechRecognitionDataset
    from lhotse.dataset.input_strategies import AudioSamples

    with caplog.at_level(logging.WARNING, logger="curate"):
        export(run_dir, MESSY, "lhotse", tmp_path / "exp", Selection(split=Split(method="none")))
    segs = {r["segment_id"]: r for r in load_segments(run_dir, MESSY).to_dict("records")}
    cuts = CutSet.from_file(tmp_path / "exp" / "cuts_train.jsonl.gz")
    assert len(cuts) == len(segs) and all(isinstance(c, MonoCut) and c.channel == 0 for c in cuts)
    stereo = next(c for c in cuts if c.recording_id == LONG_ID)
    seg = segs[stereo.id]
    ref = audio.load(seg["audio_path"], seg["start_s"], seg["end_s"])  # curate's channel mean
    x = stereo.load_audio()[0]
    n = min(len(x), len(ref))
    assert np.corrcoef(x[:n], ref[:n])[0, 1] > 0.99 and np.std(x) == pytest.approx(np.std(ref), rel=0.02)

    (tmp_path / "shar").mkdir()
    shar = cuts.to_shar(tmp_path / "shar", fields={"recording": "flac"}, shard_size=100)
    back = CutSet.from_shar(fields=shar)
    assert sorted(c.id for c in back) == sorted(segs)
    assert all(c.load_audio().shape[0] == 1 for c in back)

    labelled = CutSet.from_file(tmp_path / "exp" / "cuts_train_labelled.jsonl.gz")
    texts = [s["text"] for s in segs.values() if isinstance(s["text"], str) and s["text"].strip()]
    assert 0 < len(labelled) == len(texts) < len(cuts)
    assert all(s.text and s.text.strip() for c in labelled for s in c.supervisions)
    warned = [r.getMessage() for r in caplog.records if "have no text" in r.getMessage()]
    assert warned == [f"lhotse: {len(cuts) - len(texts)} of {len(cuts)} train segments have no text; ASR datasets "
                      "(K2SpeechRecognitionDataset): cuts_train_labelled.jsonl.gz"]  # fmt: skip
    batch = K2SpeechRecognitionDataset(input_strategy=AudioSamples(), return_cuts=True)[labelled]
    assert batch["inputs"].shape[0] == len(labelled)
    assert sorted(batch["supervisions"]["text"]) == sorted(texts)


def test_differing_channels_keep_the_downmix_and_say_what_shar_cannot_store(tmp_path, caplog):
    run_dir = make_messy_run(tmp_path / "differ")
    with caplog.at_level(logging.WARNING, logger="curate"):
        export(run_dir, MESSY, "lhotse", tmp_path / "exp", Selection(split=Split(method="none")))
    assert any("channels that differ" in r.getMessage() and "to_shar" in r.getMessage() for r in caplog.records)
