"""curate calibrate on a labelled run: replaying a clean variant from saved passes, fitting clean_trim's music
threshold where the shipped one cuts clean speech, the operating curve, and the CLI writing its YAML."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from curate import calibrate, manifest
from curate.quality import Region
from curate.rundir import RunDir
from curate.schema import Frames, Segment
from curate.testing import fake_recording

HOP = 0.48


def _labelled_run(root) -> tuple[RunDir, dict[str, list[Region]]]:
    """One 60 s recording: A speaks 0-20 s (YAMNet's music score flickers at 0.3 over it, as on real speech),
    music 20-30 s (score 0.9), B speaks 30-60 s over nothing. The source variant has one segment per turn, the
    music one included; the clean variant is clean_trim's old frame rule (threshold 0.1, every frame cut) then a
    1 s minimum."""
    rd = RunDir(root)
    rec = fake_recording("r", 60.0)
    manifest.write_records(rd.recordings, [rec], "recordings")
    segs = [
        Segment.new("r", rec.audio_path, 0.0, 20.0, "src", speaker="A"),
        Segment.new("r", rec.audio_path, 20.0, 30.0, "src", speaker="A"),
        Segment.new("r", rec.audio_path, 30.0, 60.0, "src", speaker="B"),
    ]
    manifest.write_records(rd.variant_path("src") / "part-00000.parquet", segs, "segments")
    n = int(60 / HOP)
    start = np.arange(n) * HOP
    mid = start + HOP
    music = np.where((mid >= 20) & (mid < 30), 0.9, np.where(np.arange(n) % 4 == 0, 0.3, 0.02))
    z = np.zeros(n)
    tags = Frames("tags", start, start + 2 * HOP, {"speech": np.where(music > 0.5, 0.1, 0.9), "music": music,
                  "vocal_music": z, "noise": z, "energy_db": np.full(n, -20.0)})  # fmt: skip
    manifest.write_table(rd.scores_path("tags", "r"), tags.to_arrow(), "tags")
    chain = [{"stage": "clean_trim", "music": 0.1, "overlap": None, "change": None, "min_split_s": 0.0, "hysteresis": 1.0},
             {"stage": "min_duration", "min_s": 1.0}]  # fmt: skip
    rd.write_run("t", ["src", "x-clean"], pipeline={"derive": {"x-clean": {"from": "src", "stages": chain}}})
    truth = {
        "r": [
            Region(0.0, 20.0, "speech", speaker="A"),
            Region(20.0, 30.0, "music"),
            Region(30.0, 60.0, "speech", speaker="B"),
        ]
    }
    return rd, truth


def test_replay_fit_and_curve_on_a_labelled_run(tmp_path) -> None:
    rd, truth = _labelled_run(tmp_path)
    data = calibrate.load(rd.path, truth, "x-clean")
    as_run = calibrate.score(data, calibrate.trim_params(data.chain))
    assert as_run.music_pct == pytest.approx(0.0) and as_run.clean_recall_pct < 80  # the flicker cuts speech
    grid = {"music": (0.1, 0.2, 0.5, 0.95), "min_split_s": (0.0, 1.0)}
    params, q = calibrate.fit(data, calibrate.trim_params(data.chain), grid=grid)
    assert 0.3 <= params["music"] < 0.9  # above the flicker, below the music
    assert q.clean_single_pct >= 95 and q.music_pct <= 2 and q.clean_recall_pct >= 95
    points = dict(calibrate.curve(data, params, values=(0.1, 0.5, 0.95)))
    assert points[0.1].clean_recall_pct < points[0.5].clean_recall_pct  # more kept as the threshold rises …
    assert points[0.95].music_pct > points[0.5].music_pct  # … until the music itself stays
    cut = {(st, why): (s, clean) for st, why, s, clean in calibrate.where_it_went(data, params)}
    assert cut[("clean_trim", "music")][0] == pytest.approx(10.0, abs=1.0) and cut[("clean_trim", "music")][1] < 10


def _calibrate_cli(tmp_path, *args: str):
    """``curate calibrate`` on the labelled run (its truth written beside it) with ``args``: (run, CLI result)."""
    from typer.testing import CliRunner

    from curate.cli.app import app

    rd, truth = _labelled_run(tmp_path / "run")
    ref = tmp_path / "truth.json"
    manifest.write_json(ref, {rid: [r.__dict__ for r in regs] for rid, regs in truth.items()})
    (rd.path / "decisions.parquet").touch()
    return rd, CliRunner().invoke(app, ["calibrate", str(rd.path), "--reference", str(ref), *args])


def test_calibrate_cli_writes_the_fitted_params(tmp_path) -> None:
    rd, res = _calibrate_cli(tmp_path, "--passes", "1")
    assert res.exit_code == 0, res.output
    fitted = yaml.safe_load(rd.calibration.read_text())
    assert fitted["x-clean"]["from"] == "src" and fitted["x-clean"]["clean_trim"]["music"] >= 0.3
    assert "clean_trim.music=" in "".join(res.output.split())  # the apply line (wrapped by the console)


def test_the_demo_picks_the_clean_variant_nearest_the_targets() -> None:
    from curate.calibrate import best_clean
    from curate.quality import VariantQuality

    def q(single: float, kept: float, segments: int = 5) -> VariantQuality:
        return VariantQuality(segments, 0.1, 99, single, 0, 0, 0, 0, 90, clean_single_pct=single, clean_recall_pct=kept)

    results = {
        "a-clean": q(96, 40),
        "b-clean": q(97, 80),
        "c-clean": q(90, 95),
        "wx-diar-3s": q(60, 99),
        "d-clean": q(99, 99, 0),
    }
    assert best_clean(results) == "b-clean"  # meets the purity target, keeps the most; d has no segments
    assert best_clean({"wx-diar-3s": q(60, 99)}) is None


def test_calibrate_margin_is_checked_before_any_fit(tmp_path) -> None:
    rd, res = _calibrate_cli(tmp_path, "--margin", "7")
    assert res.exit_code == 2 and "must be in [0, 5) points, got 7" in " ".join(res.output.split())
    assert not rd.calibration.exists()
