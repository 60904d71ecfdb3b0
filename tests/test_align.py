"""wx_align: word times from a wav2vec2 CTC model (a tiny random one, saved and loaded by local path),
sentence splitting, interpolation of un-timeable words, and the Whisper-words fallback."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from curate.errors import ConfigError
from curate.schema import Recording, Segment, Word
from curate.stages.base import RecordingContext
from curate.stages.wx_align import WxAlign, interpolate_times, sentence_segments, split_sentences, whisper_words
from curate.testing import fake_segments, tone, write_audio

CHARS = list("abcdefghijklmnopqrstuvwxyz'")


@pytest.fixture(scope="module")
def tiny_w2v2(tmp_path_factory) -> str:
    """A random tiny Wav2Vec2ForCTC with a character vocab, saved with its processor (save_pretrained)."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    d = tmp_path_factory.mktemp("w2v2")
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4} | {c: i + 5 for i, c in enumerate(CHARS)}
    (d / "vocab.json").write_text(json.dumps(vocab))
    tok = Wav2Vec2CTCTokenizer(str(d / "vocab.json"), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|")
    fe = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
    )
    cfg = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    Wav2Vec2ForCTC(cfg).eval().save_pretrained(str(d))
    Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok).save_pretrained(str(d))
    return str(d)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Recording:
    p = write_audio(tmp_path_factory.mktemp("a") / "rec.wav", tone(20.0, seed=3))
    return Recording("rec", str(p), 20.0, 16000, 1, language="nl")


@pytest.mark.slow
def test_aligns_words_inside_chunks_with_a_tiny_wav2vec2(tiny_w2v2, recording):
    chunks = [
        Segment.new(
            "rec",
            recording.audio_path,
            1.0,
            9.0,
            "wx-asr",
            language="nl",
            text="Dit is zin een. En 1990 was het 50% minder! Daarna volgt de rest",
        ),
        Segment.new("rec", recording.audio_path, 10.0, 19.5, "wx-asr", language="nl", text="€ 100 zei hij. Klaar?"),
    ]
    st = WxAlign(model=tiny_w2v2, fallback="error", emit="wx-align")
    st.validate()
    st.setup()
    ctx = RecordingContext(recording)
    out = st.process(ctx, chunks).segments
    st.teardown()
    assert ctx.info["wx_align"]["method"] == "wav2vec2"
    assert [s.text for s in out] == [
        "Dit is zin een.",
        "En 1990 was het 50% minder!",
        "Daarna volgt de rest",
        "€ 100 zei hij.",
        "Klaar?",
    ]
    for s in out:
        chunk = chunks[0] if s.start_s < 9.5 else chunks[1]
        assert chunk.start_s <= s.start_s < s.end_s <= chunk.end_s
        assert s.duration_s == pytest.approx(s.end_s - s.start_s)
        assert s.words and all(w.start_s is not None and w.end_s is not None for w in s.words)
        assert all(math.isfinite(w.start_s) and math.isfinite(w.end_s) for w in s.words)
        assert all(chunk.start_s <= w.start_s <= w.end_s <= chunk.end_s for w in s.words)
        assert s.start_s == pytest.approx(max(s.words[0].start_s, chunk.start_s))
    starts = [w.start_s for s in out for w in s.words]
    assert starts == sorted(starts)
    # "€" and "100" have no character in the vocab: their times come from the neighbours, not from NaN
    euro = [w for s in out for w in s.words if w.word in ("€", "100")]
    assert len(euro) == 2 and all(w.score is None for w in euro)


def test_missing_model_falls_back_to_whisper_words_and_records_it(recording):
    words = (
        Word("Hallo", 1.0, 1.4, 0.9),
        Word("daar.", 1.5, 2.0, 0.9),
        Word("Tot", 3.0, 3.2, 0.8),
        Word("ziens.", 3.3, 3.9, 0.8),
    )
    chunk = Segment.new("rec", recording.audio_path, 0.8, 4.2, "wx-asr", text="Hallo daar. Tot ziens.", words=words)
    st = WxAlign(model="wav2vec2:nobody/not-in-any-store", fallback="whisper_words", emit="wx-align")
    st.setup()
    ctx = RecordingContext(recording)
    out = st.process(ctx, [chunk]).segments
    assert ctx.info["wx_align"]["method"] == "whisper_words"
    assert "not available" in ctx.info["wx_align"]["fallback_reason"]
    assert [(s.start_s, s.end_s, s.text) for s in out] == [(1.0, 2.0, "Hallo daar."), (3.0, 3.9, "Tot ziens.")]


def test_fallback_error_fails_loudly():
    with pytest.raises(ConfigError, match="wx_align: model 'wav2vec2:nobody/not-in-any-store' not found"):
        WxAlign(model="wav2vec2:nobody/not-in-any-store", fallback="error").setup()
    with pytest.raises(ConfigError, match="fallback"):
        WxAlign(fallback="guess").validate()


@pytest.mark.parametrize(
    "times, expected",
    [
        ([(1.0, 2.0), (None, None), (3.0, 4.0)], [(1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]),
        ([(None, None), (2.0, 3.0)], [(0.0, 2.0), (2.0, 3.0)]),  # leading: from the chunk start
        ([(1.0, 2.0), (None, None)], [(1.0, 2.0), (2.0, 10.0)]),  # trailing: to the chunk end
        ([(None, None), (None, None)], [(0.0, 10.0), (0.0, 10.0)]),  # nothing timed: the chunk
        ([(float("nan"), 2.0), (1.5, float("nan"))], [(0.0, 2.0), (1.5, 10.0)]),  # NaN counts as untimed
        ([(5.0, 6.0), (4.0, 4.5)], [(5.0, 6.0), (5.0, 5.0)]),  # never goes back in time
    ],
)
def test_interpolate_times(times, expected):
    assert interpolate_times(times, 0.0, 10.0) == expected


@pytest.mark.parametrize(
    "words, lang, spans",
    [
        ("Goedenavond. Dit is het nieuws.", "nl", [(0, 1), (1, 5)]),
        ("Dhr. Jansen sprak o.a. over bijv. de begroting. Daarna niets", "nl", [(0, 8), (8, 10)]),
        ("Mr. Smith went to Washington. Really?", "en", [(0, 5), (5, 6)]),
        ("J. Smith zei: 'ja.' En toen…", "nl", [(0, 4), (4, 6)]),
        ("geen punt", "nl", [(0, 2)]),
        ("", "nl", []),
    ],
)
def test_split_sentences(words, lang, spans):
    assert split_sentences(words.split(), lang) == spans


def test_sentence_boundaries_stay_inside_the_chunk():
    (seg,) = fake_segments([(2.0, 6.0)], ["Een. Twee."])
    words = [Word("Een.", 1.5, 2.5), Word("Twee.", 5.0, 6.5)]  # aligner overshoot on both sides
    out = sentence_segments(seg, words, "nl")
    assert [(s.start_s, s.end_s) for s in out] == [(2.0, 2.5), (5.0, 6.0)]


def test_whisper_words_none_without_words():
    (seg,) = fake_segments([(0.0, 5.0)], ["x"])
    assert whisper_words(seg) is None
    assert np.isfinite(
        [
            t
            for w in whisper_words(seg.with_times(0.0, 5.0, words=(Word("x", None, None),)))
            for t in (w.start_s, w.end_s)
        ]
    ).all()
