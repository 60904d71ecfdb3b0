"""Post-processing rules (thesis §6) and their edges, as tables over fake segments."""

from __future__ import annotations

import itertools

import pytest

from curate.config import parse_pipeline
from curate.schema import Segment, Word
from curate.stages import postprocess as pp
from curate.stages.base import RecordingContext
from curate.testing import fake_recording, fake_segments


def spans(segs: list[Segment]) -> list[tuple[float, float]]:
    return [(s.start_s, s.end_s) for s in segs]


# --- a. drop_phrases -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dropped"),
    [
        ("muziek", True),
        ("  Muziek  ", True),
        ("MUZIEK", True),
        ("[Muziek]", True),
        ("(applaus)", True),
        ("*muziek*", True),
        ("Muziek.", True),
        ("TV Gelderland", True),
        ("tv   gelderland", True),  # inner whitespace collapsed
        ("***", True),
        (".", True),
        ("♪ ♪", True),
        ("", True),
        ("   ", True),
        (None, True),
        ("muziek en applaus voor de winnaar", False),  # only the WHOLE transcript matches
        ("De muziek was mooi.", False),
        ("Goedenavond.", False),
    ],
)
def test_drop_phrases_dutch_list(text, dropped):
    stage = pp.DropPhrases()
    seg = fake_segments([(0, 2)], [text])[0]
    result = stage.process(RecordingContext(fake_recording(language="nl")), [seg])
    assert (len(result.rejected) == 1) is dropped
    assert (len(result.segments) == 0) is dropped
    if dropped:
        assert result.rejected[0].stage == "drop_phrases" and result.rejected[0].reason


def test_drop_phrases_language_lists_and_extra_phrases():
    segs = fake_segments([(0, 1), (1, 2), (2, 3)], ["Applause", "Muziek", "Weerbericht"])
    ctx_en = RecordingContext(fake_recording(language="en"))
    kept = pp.DropPhrases().process(ctx_en, segs).segments
    assert [s.text for s in kept] == ["Muziek", "Weerbericht"]  # en list knows applause, not muziek
    kept = pp.DropPhrases(phrases=["weerbericht"]).process(ctx_en, segs).segments
    assert [s.text for s in kept] == ["Muziek"]
    kept = pp.DropPhrases(language_lists=False, phrases=["WEERBERICHT"]).process(ctx_en, segs).segments
    assert [s.text for s in kept] == ["Applause", "Muziek"]
    # a segment's own language wins over the recording's; unknown language → every shipped list
    seg_nl = Segment.new("rec", "/a.flac", 0, 1, text="gelach", language="nl")
    assert pp.DropPhrases().process(ctx_en, [seg_nl]).segments == []
    ctx_xx = RecordingContext(fake_recording(language=None))
    assert pp.DropPhrases().process(ctx_xx, segs).segments == [segs[2]]


def test_shipped_lists_hold_the_thesis_phrases():
    nl = pp.language_phrases("nl")
    assert {"muziek", "gelach", "tv gelderland", "applaus", "gezang"} <= nl
    assert {"music", "applause", "laughter"} <= pp.language_phrases("en")


# --- b. merge_punctuation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ends"),
    [
        ("Goedenavond.", True),
        ("Echt?", True),
        ("Nee!", True),
        ('Hij zei "ja."', True),
        ("(Klaar.)", True),
        ("en toen", False),
        ("en toen...", False),
        ("en toen…", False),
        ("komma,", False),
        ("", False),
        ("Klaar. ", True),
    ],
)
def test_ends_sentence(text, ends):
    assert pp.ends_sentence(text) is ends


@pytest.mark.parametrize(
    ("spans_in", "texts", "expected"),
    [
        # merged until a sentence end
        ([(0, 2), (2.5, 4), (4.2, 6)], ["Dit is", "een zin die", "hier eindigt."], [(0, 6)]),
        # a gap of exactly 3 s merges; 3.01 s does not
        ([(0, 2), (5, 6)], ["zonder punt", "einde."], [(0, 6)]),
        ([(0, 2), (5.01, 6)], ["zonder punt", "einde."], [(0, 2), (5.01, 6)]),
        # the ellipsis marks a cut sentence: merge
        ([(0, 29.5), (30, 34)], ["en dan gaan we naar...", "de haven."], [(0, 34)]),
        ([(0, 3), (3, 5)], ["en dan gaan we naar…", "de haven."], [(0, 5)]),
        # a last segment without punctuation stays as it is
        ([(0, 2), (2, 4)], ["Klaar.", "en toen"], [(0, 2), (2, 4)]),
        ([(0, 2), (2, 4)], ["nog niet", "en toen"], [(0, 4)]),
        # sentence ends do not merge
        ([(0, 2), (2, 4), (4, 6)], ["Een.", "Twee?", "Drie!"], [(0, 2), (2, 4), (4, 6)]),
        # a run is broken by a long gap, then a new run starts
        ([(0, 1), (10, 11), (11, 12)], ["a", "b", "c."], [(0, 1), (10, 12)]),
    ],
)
def test_merge_punctuation(spans_in, texts, expected):
    out = pp.merge_punctuation(fake_segments(spans_in, texts), max_gap_s=3.0)
    assert spans(out) == expected


def test_merged_segment_fields():
    a = Segment.new(
        "rec",
        "/a.flac",
        0,
        1,
        "w-raw",
        text=" Dit is ",
        language="nl",
        avg_logprob=-1.0,
        no_speech_prob=0.1,
        compression_ratio=1.0,
        words=(Word(" Dit", 0, 0.5, 0.9), Word(" is", 0.5, 1, 0.9)),
    )
    b = Segment.new(
        "rec",
        "/a.flac",
        1.5,
        4.5,
        "w-raw",
        text="een zin.",
        language="nl",
        avg_logprob=-0.2,
        no_speech_prob=0.5,
        compression_ratio=2.0,
        words=(Word(" een", 1.5, 2, 0.8), Word(" zin.", 2, 4.5, 0.8)),
    )
    (m,) = pp.merge_punctuation([a, b])
    assert (m.start_s, m.end_s, m.duration_s) == (0.0, 4.5, 4.5)
    assert m.segment_id == Segment.make_id("rec", 0, 4.5)
    assert m.text == "Dit is een zin."
    assert [w.word for w in m.words] == [" Dit", " is", " een", " zin."]
    assert m.avg_logprob == pytest.approx((-1.0 * 1 + -0.2 * 3) / 4)  # duration-weighted
    assert m.compression_ratio == pytest.approx((1.0 + 2.0 * 3) / 4)
    assert m.language == "nl"
    c = Segment.new("rec", "/a.flac", 5, 6, "w-raw", text="zonder woorden", avg_logprob=None)
    d = Segment.new("rec", "/a.flac", 6, 7, "w-raw", text="klaar.", avg_logprob=-0.5, words=(Word(" klaar."),))
    (m2,) = pp.merge_punctuation([c, d])
    assert m2.words is None and m2.avg_logprob is None  # unknown in a part → unknown in the whole


# --- c. merge_speaker ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spans_in", "speakers", "expected", "out_speakers"),
    [
        ([(0, 2), (2.5, 4), (4, 6)], ["A", "A", "B"], [(0, 4), (4, 6)], ["A", "B"]),
        ([(0, 2), (5, 6)], ["A", "A"], [(0, 6)], ["A"]),  # gap of exactly 3 s merges
        ([(0, 2), (5.5, 6)], ["A", "A"], [(0, 2), (5.5, 6)], ["A", "A"]),
        ([(0, 2), (2, 4)], [None, None], [(0, 2), (2, 4)], [None, None]),  # no speaker: never merged
        ([(0, 2), (2, 4), (4, 6)], ["A", "B", "A"], [(0, 2), (2, 4), (4, 6)], ["A", "B", "A"]),
    ],
)
def test_merge_speaker(spans_in, speakers, expected, out_speakers):
    segs = fake_segments(spans_in, [f"t{i}." for i in range(len(spans_in))], speakers)
    out = pp.MergeSpeaker(max_gap_s=3.0).process(RecordingContext(fake_recording()), segs).segments
    assert spans(out) == expected
    assert [s.speaker for s in out] == out_speakers


# --- d. min_duration -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("min_s", "durations", "kept"),
    [
        (1.0, [0.5, 0.99, 1.0, 2.0], [1.0, 2.0]),
        (3.0, [2.99, 3.0, 3.01, 30.0], [3.0, 3.01, 30.0]),
    ],
)
def test_min_duration(min_s, durations, kept):
    segs = fake_segments([(10 * i, 10 * i + d) for i, d in enumerate(durations)])
    result = pp.MinDuration(min_s=min_s).process(RecordingContext(fake_recording()), segs)
    assert [round(s.duration_s, 2) for s in result.segments] == kept
    assert len(result.rejected) == len(durations) - len(kept)
    assert all(
        r.stage == "min_duration" and r.reason == "too_short" and "shorter than" in r.detail for r in result.rejected
    )


# --- e. split_long ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "parts"),
    [
        (30.0, [30.0]),
        (30.5, [15.25, 15.25]),
        (60.0, [30.0, 30.0]),
        (95.0, [23.75] * 4),
        (121.0, [15.125] * 8),
    ],
)
def test_split_long_halves_recursively(duration, parts):
    (seg,) = fake_segments([(100, 100 + duration)], ["lang verhaal"])
    out = pp.split_long([seg], 30.0)
    assert [s.duration_s for s in out] == pytest.approx(parts)
    assert out[0].start_s == 100 and out[-1].end_s == 100 + duration
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(out))
    if len(parts) > 1:
        assert all(s.text is None for s in out)  # no word timestamps: the text of a half is unknown


def test_split_long_assigns_words_by_time():
    words = tuple(Word(f" w{i}", i * 10.0, i * 10.0 + 2, 0.9) for i in range(7))  # parts of 16 s
    seg = Segment.new("rec", "/a.flac", 0, 64, "w-raw", text="all", words=words)
    out = pp.split_long([seg], 30.0)
    assert [s.duration_s for s in out] == [16.0] * 4
    assert [s.text for s in out] == ["w0 w1", "w2 w3", "w4", "w5 w6"]  # midpoints 1, 11, … 61 s
    assert sum(len(s.words) for s in out) == 7
    # WhisperX-style words without a leading space still join with spaces
    assert pp.join_words([Word("Hallo"), Word("daar.")]) == "Hallo daar."


# --- the Whisper order, as configured in the pipelines --------------------------------------------------


def test_whisper_post_chain_example(repo):
    import yaml

    raw = yaml.safe_load((repo / "pipelines" / "post" / "w-pp-3s.yaml").read_text())
    pipe = parse_pipeline(raw, "w-pp-3s.yaml", available_variants=["w-raw"])
    segs = fake_segments(
        [(0, 2), (2.1, 3.0), (3.2, 3.9), (10, 11), (11.5, 12.2), (20, 115)],
        ["[Muziek]", "Dit is", "een zin.", "Kort.", "Hallo...", "Een heel lang verhaal."],
    )
    ctx = RecordingContext(fake_recording(language="nl"))
    rejected = []
    for st in pipe.derive[0].stages:
        r = st.process(ctx, segs)
        segs, rejected = r.segments, rejected + r.rejected
    assert spans(segs) == [(20, 43.75), (43.75, 67.5), (67.5, 91.25), (91.25, 115)]
    assert {r.stage for r in rejected} == {"drop_phrases", "min_duration"}
    # "Dit is een zin." (0.9+0.7 s) and "Kort." are shorter than 3 s; "Hallo..." merged with the long one?
    # no: the gap 12.2 → 20 is > 3 s, so "Hallo..." stays alone and is too short
    assert sorted(round(r.segment.duration_s, 2) for r in rejected if r.stage == "min_duration") == [0.7, 1.0, 1.8]
