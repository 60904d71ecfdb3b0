"""Operating points of a clean variant (``curate select --operating-point``): the clean score of segments, the
curve, choosing a point on a labelled run, and clear errors for points the curve cannot reach."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from curate import manifest
from curate.errors import ConfigError
from curate.export import operating
from curate.export.select import load_selection, select
from curate.quality import Region, evaluate_segments
from curate.rundir import RunDir
from curate.schema import Decision, Frames, Segment
from curate.testing import fake_recording

HOP = 0.48
# per 5 s segment of one 120 s recording: (truth, the tagger's music score over it). The tagger is not perfect:
# two clean segments score 0.3 (a false alarm) and two segments over a music bed only 0.25.
PLAN = [("clean", 0.02)] * 14 + [("clean", 0.3)] * 2 + [("bed", 0.25)] * 2 + [("bed", 0.4 + 0.08 * k) for k in range(6)]
ORDER = [0, 14, 18, 1, 2, 20, 3, 15, 4, 5, 21, 6, 7, 19, 8, 22, 9, 10, 16, 23, 11, 12, 17, 13]  # spread them out
VARIANT = "x-clean"


def _labelled_run(root) -> tuple[RunDir, dict[str, list[Region]]]:
    rd = RunDir(root)
    rec = fake_recording("r", 120.0)
    manifest.write_records(rd.recordings, [rec], "recordings")
    manifest.write_records(rd.decisions, [Decision("r", True, "duration_filter")], "decisions")
    manifest.write_records(rd.failures, [], "failures")
    kinds = [PLAN[i] for i in ORDER]
    segs = [Segment.new("r", rec.audio_path, 5.0 * k, 5.0 * (k + 1), VARIANT, speaker="A") for k in range(24)]
    manifest.write_records(rd.variant_path(VARIANT) / "part-00000.parquet", segs, "segments")
    n = int(120 / HOP)
    start = np.arange(n) * HOP
    music = np.array([kinds[min(23, int((s + HOP) // 5))][1] for s in start])
    z = np.zeros(n)
    tags = Frames("tags", start, start + 2 * HOP, {"speech": np.full(n, 0.9), "music": music, "vocal_music": z,
                  "noise": z, "energy_db": np.full(n, -20.0)})  # fmt: skip
    manifest.write_table(rd.scores_path("tags", "r"), tags.to_arrow(), "tags")
    truth = {
        "r": [
            Region(5.0 * k, 5.0 * (k + 1), "speech", speaker="A", background=None if kind == "clean" else "music")
            for k, (kind, _) in enumerate(kinds)
        ]
    }
    return rd, truth


def _truth_file(tmp_path, truth) -> str:
    ref = tmp_path / "truth.json"
    manifest.write_json(ref, {rid: [r.__dict__ for r in regs] for rid, regs in truth.items()})
    return str(ref)


def _cli(*args: str):
    from curate.cli.app import app

    return CliRunner().invoke(app, list(args))


def test_the_clean_score_ranks_music_overlap_and_turns_below_clean_speech() -> None:
    n = 50
    start = np.arange(n) * HOP
    music = np.where(start >= 12, 0.8, 0.0)  # music from 12 s on
    tags = Frames("tags", start, start + 2 * HOP, {"speech": np.full(n, 0.9), "music": music,
                  "vocal_music": np.zeros(n), "noise": np.zeros(n), "energy_db": np.zeros(n)})  # fmt: skip
    g = np.arange(240) * 0.1
    overlap = np.where((g >= 6) & (g < 9), 0.9, 0.0)
    change = np.where(np.isclose(g, 3.0) | np.isclose(g, 9.9), 0.8, 0.0)
    speakers = Frames("speakers", g, g + 0.1, {"speech": np.ones(240), "overlap": overlap, "change": change})
    spans = [(0.0, 2.5), (2.0, 5.0), (6.0, 9.0), (13.0, 18.0), (7.5, 10.0)]
    clean, turn, overlapped, music_, edge_turn = operating.clean_scores(spans, tags, speakers)
    assert clean == pytest.approx(0.9, abs=0.01)  # speech score, nothing against it
    assert turn == pytest.approx(clean * 0.2, abs=0.01)  # a turn at 3 s inside it
    assert overlapped == pytest.approx(clean * 0.1, abs=0.02)  # two voices throughout
    assert music_ == pytest.approx(0.9 * 0.2, abs=0.01)
    assert edge_turn > turn  # the turn at 9.9 s lies within 0.3 s of its edge and is not counted
    assert np.isnan(operating.clean_scores([(0.0, 1.0)], None, None)).all()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=2, max_size=30),
    st.floats(0, 20),
    st.floats(0.05, 20),
)
def test_the_segment_mean_is_the_time_weighted_mean_of_the_frames(values, start, length) -> None:
    """The tags factor of a span is the exact integral of the frames' step function over it, / its length."""
    n = len(values)
    t0 = np.arange(n) * HOP
    v = np.asarray(values)
    tags = Frames("tags", t0, t0 + 2 * HOP, {"speech": v, "music": np.zeros(n), "vocal_music": np.zeros(n),
                  "noise": np.zeros(n), "energy_db": np.zeros(n)})  # fmt: skip
    from curate.stages.clean import cells

    a, b = cells(tags)
    s, e = start, start + length
    clipped = (max(s, a[0]), min(e, b[-1]))
    fine = np.linspace(*clipped, 4001) if clipped[1] > clipped[0] else np.array([])
    idx = np.clip(np.searchsorted(a, fine, side="right") - 1, 0, n - 1)
    brute = v[idx].mean() * (clipped[1] - clipped[0]) / length if len(fine) else 0.0
    assert operating.clean_scores([(s, e)], tags, None)[0] == pytest.approx(brute, abs=0.01)


@pytest.mark.parametrize(
    "text, goal",
    [
        ("clean=95", operating.Goal(clean_pct=95)),
        ("kept=80%", operating.Goal(kept_pct=80)),
        ("clean=95, kept=60", operating.Goal(95, 60)),
        ("score=0.7", operating.Goal(score=0.7)),
    ],
)
def test_operating_points_parse(text, goal) -> None:
    assert operating.parse_goal(text) == goal


@pytest.mark.parametrize("text", ["clean", "clean=101", "kept=0", "score=2", "score=0.5,kept=10", "purity=9", ""])
def test_bad_operating_points_are_refused(text) -> None:
    with pytest.raises(ConfigError, match="operating point"):
        operating.parse_goal(text)


def test_the_chosen_point_meets_the_requested_clean_share_and_keeps_the_most(tmp_path) -> None:
    rd, truth = _labelled_run(tmp_path / "run")
    out = tmp_path / "sel"
    res = _cli("select", str(rd.path), "--variant", VARIANT, "--operating-point", "clean=95",
               "--reference", _truth_file(tmp_path, truth), "--out", str(out), "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    point = report["operating_point"]
    assert point["clean_single_pct"] >= 95
    # what the written selection selects, measured again from scratch, meets the point …
    sel = load_selection(out / "selection.yaml")
    assert sel.min_clean_score == point["threshold"]
    df, stats = select(rd.path, VARIANT, sel)
    q = evaluate_segments(list(zip(df["recording_id"], df["start_s"], df["end_s"], strict=True)), truth)
    assert q.clean_single_pct >= 95 and len(df) == point["segments"] == 14
    assert stats["train"]["ids_sha256"] == json.loads((out / "selection.json").read_text())["train"]["ids_sha256"]
    # … and the next point down the curve (one more segment kept) would not
    curve = report["curve"]
    nxt = curve[[c["threshold"] for c in curve].index(point["threshold"]) + 1]
    assert nxt["clean_single_pct"] < 95 and nxt["kept_pct"] > point["kept_pct"]


def test_kept_share_without_a_reference(tmp_path) -> None:
    rd, _ = _labelled_run(tmp_path / "run")
    df, points = operating.variant_curve(rd.path, VARIANT)
    assert points[0].clean_single_pct is None  # nothing measured without a reference
    p = operating.choose(points, operating.parse_goal("kept=80"), VARIANT)
    before = points[points.index(p) - 1]
    assert p.kept_pct >= 80 > before.kept_pct  # the least that keeps 80 % of the hours
    kept = df[df["clean_score"] >= p.threshold]
    assert kept["duration_s"].sum() / df["duration_s"].sum() * 100 == pytest.approx(p.kept_pct)
    # the six segments over the loudest music beds are what 80 % leaves out (at most one of them stays)
    assert (kept["start_s"].isin([5.0 * ORDER.index(i) for i in range(18, 24)])).sum() <= 2


def test_unreachable_points_fail_with_what_the_curve_reaches(tmp_path) -> None:
    rd, truth = _labelled_run(tmp_path / "run")
    ref = _truth_file(tmp_path, truth)
    res = _cli(
        "select", str(rd.path), "--variant", VARIANT, "--operating-point", "clean=95,kept=80", "--reference", ref
    )
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "unreachable" in text and "cleanest point is 100.0 %" in text and "keeping at least 80 %" in text
    res = _cli("select", str(rd.path), "--variant", VARIANT, "--operating-point", "clean=95")
    assert res.exit_code == 2 and "--reference" in res.output


def test_a_selection_with_min_clean_score_needs_frame_scores(tmp_path) -> None:
    rd, _ = _labelled_run(tmp_path / "run")
    for p in rd.scores_dir("tags").iterdir():
        p.unlink()
    with pytest.raises(ConfigError, match="no frame scores"):
        select(rd.path, VARIANT, load_selection(None, ["min_clean_score=0.5"]))
    with pytest.raises(ConfigError, match="min_clean_score must be in"):
        load_selection(None, ["min_clean_score=2"])


def test_the_demo_prints_the_curves_writes_the_best_selection_and_the_plot(tmp_path) -> None:
    from rich.console import Console

    from curate.cli.plots import save_run_plots
    from curate.demo.run import _operating_curves
    from curate.quality import evaluate_run

    rd, truth = _labelled_run(tmp_path / "run")
    quality = evaluate_run(rd.path, truth)
    console = Console(record=True, width=250)
    curves = _operating_curves(rd.path, truth, quality, VARIANT, tmp_path / "selection", console)
    text = console.export_text()
    assert f"operating curve of {VARIANT}" in text and "← chosen" in text
    sel = load_selection(tmp_path / "selection" / "selection.yaml")
    df, _ = select(rd.path, VARIANT, sel)
    assert len(df) == 14  # the clean=95 point of the labelled run
    png = [p for p in save_run_plots(rd.path, quality, curves=curves) if p.name == "operating_curves.png"]
    assert png and png[0].stat().st_size > 10_000


def test_a_large_variant_gets_a_thinned_curve_that_still_ends_at_everything() -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 20_000
    df = pd.DataFrame({"segment_id": [f"s{i}" for i in range(n)], "duration_s": rng.uniform(1, 30, n),
                       "clean_score": rng.uniform(0, 1, n)})  # fmt: skip
    points = operating.curve(df, max_points=200)
    assert 150 <= len(points) <= 202
    kept = [p.kept_pct for p in points]
    assert kept == sorted(kept) and kept[-1] == pytest.approx(100) and np.diff(kept).max() < 1.5
    p = operating.choose(points, operating.Goal(kept_pct=50))
    assert 50 <= p.kept_pct < 51 and p.threshold == pytest.approx(0.5, abs=0.03)
