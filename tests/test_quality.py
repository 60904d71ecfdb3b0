"""Segmentation quality against a reference timeline."""

import pytest

from curate.demo.archive import Region
from curate.quality import evaluate_segments

REF = {
    "r": [
        Region(0.0, 10.0, "music"),
        Region(10.0, 20.0, "speech", speaker="A"),
        Region(20.0, 22.0, "silence"),
        Region(22.0, 32.0, "speech", speaker="B", background="music"),
        Region(32.0, 40.0, "noise"),
    ]
}


@pytest.mark.parametrize(
    ("segments", "expect"),
    [
        (
            [("r", 10.0, 20.0)],
            {"speech_pct": 100, "clean_speech_pct": 100, "multi_speaker_pct": 0, "speech_recall_pct": 50},
        ),
        ([("r", 0.0, 20.0)], {"speech_pct": 50, "music_pct": 50, "speech_recall_pct": 50}),
        ([("r", 10.0, 32.0)], {"multi_speaker_pct": 100, "silence_pct": 100 * 2 / 22, "speech_recall_pct": 100}),
        ([("r", 10.0, 21.0), ("r", 31.5, 40.0)], {"multi_speaker_pct": 0, "noise_pct": 100 * 8 / 19.5}),
        ([("r", 19.5, 30.0)], {"multi_speaker_pct": 0}),  # B holds 8 s, A only 0.5 s: under the 10 % share
        ([("other", 0.0, 5.0)], {"segments": 0, "speech_recall_pct": 0}),
    ],
)
def test_evaluate_segments(segments, expect):
    q = evaluate_segments(segments, REF)
    for k, v in expect.items():
        assert getattr(q, k) == pytest.approx(v), k


def test_quality_on_a_run(tmp_path):
    from curate.config import load_pipeline
    from curate.quality import evaluate_run
    from curate.runners import run_pipeline
    from curate.testing import make_archive

    cat = make_archive(tmp_path, n=2, duration_s=61.0)
    run_pipeline(load_pipeline("pipelines/seq.yaml"), cat, tmp_path / "run", runner="local")
    ref = {"rec000": [Region(0.0, 61.0, "speech", speaker="A")], "rec001": [Region(0.0, 62.0, "music")]}
    res = evaluate_run(tmp_path / "run", ref)["seq"]
    assert res.segments == 4 and res.speech_pct == pytest.approx(50)
    assert res.speech_recall_pct == pytest.approx(100 * 60 / 61)
