"""A CLI that fits: -h, completion, --json for scripts, did-you-mean, validate reports every file,
case-insensitive choices with plain messages, one-line errors for an --out that is a file, a help summary that
ends a sentence, labelled plot axes, and `curate inspect` (kept/dropped time per recording, subtitles)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli.app import app
from curate.export import subtitles
from curate.testing.export import LABELLED, make_labelled_run

REPO = Path(__file__).resolve().parent.parent


def invoke(*args):
    res = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return res, " ".join(res.output.replace("│", " ").split())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_labelled_run(tmp_path_factory.mktemp("fit"), n=2, duration_s=12.0)


@pytest.mark.parametrize("command", [[], ["export"], ["inspect"]], ids=" ".join)
def test_dash_h_is_help(command):
    res, text = invoke(*command, "-h")
    assert res.exit_code == 0 and "Usage:" in text and "-h" in text


def test_completion_is_offered():
    _, text = invoke("--help")
    assert "--install-completion" in text and "--show-completion" in text


def test_the_quality_summary_ends_a_sentence():
    from curate.cli.quality import SUMMARY

    _, text = invoke("--help")
    assert SUMMARY in text and SUMMARY.endswith(".") and len(SUMMARY) < 100


def test_json_on_stats_select_and_quality(run_dir, tmp_path):
    res, _ = invoke("stats", run_dir, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["variants"]["seq"]["segments"] == 4
    res, _ = invoke("select", run_dir, "--variant", LABELLED, "--set", "max_hours=0.005", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["train"]["segments"] == 3  # 18 s of 5 s segments
    res, _ = invoke("quality", run_dir, "--plot", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["plots"] == [f"{run_dir}/plots/lengths.png"]


def test_validate_checks_every_file_and_suggests_a_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\npases: {}\n")
    res, text = invoke("validate", bad, REPO / "pipelines" / "seq.yaml", tmp_path / "missing.yaml")
    assert res.exit_code == 2
    assert "unknown top-level key(s) ['pases'] (did you mean 'passes' for 'pases'?)" in text
    assert "ok " in text and "seq.yaml" in text and "missing.yaml: pipeline file not found" in text
    assert "2 of 3 pipeline files are not valid" in text


def test_choices_ignore_case_and_say_it_plainly(run_dir, tmp_path):
    res, text = invoke(
        "export", run_dir, "--variant", LABELLED, "--format", "NeMo", "--out", tmp_path, "--runner", "Local"
    )
    assert res.exit_code == 0, text
    res, text = invoke("export", run_dir, "--variant", LABELLED, "--format", "nemx", "--out", tmp_path)
    assert res.exit_code == 2 and "'nemx' is not one of 'fairseq'" in text and "Value error" not in text


@pytest.mark.parametrize("command", ["run", "export", "materialize"])
@pytest.mark.parametrize("under", [False, True], ids=["file", "under-a-file"])
def test_an_out_that_is_a_file_is_one_line(run_dir, tmp_path, command, under):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" / "sub" if under else tmp_path / "f"
    args = {
        "run": ["run", REPO / "pipelines" / "seq.yaml", "--catalog", tmp_path / "c.csv"],
        "export": ["export", run_dir, "--variant", LABELLED, "--format", "nemo"],
        "materialize": ["materialize", run_dir, "--variant", LABELLED],
    }[command]
    res, text = invoke(*args, "--out", out, "--runner", "local")
    assert res.exit_code == 2 and "Traceback" not in text
    assert f"--out {out}: {'' if not under else str(tmp_path / 'f') + ' '}is a file, not a directory" in text


def test_every_lengths_panel_labels_its_x_axis(tmp_path, monkeypatch):
    from curate.cli import plots

    figs = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figs.append(fig) or Path(path))
    plots.plot_lengths({f"v{i:02d}": [1.0 + i % 5, 3.0, 7.5] for i in range(14)}, tmp_path / "lengths.png")
    fig = figs[0]
    fig.canvas.draw()
    shown = [ax for ax in fig.axes if ax.axison]
    assert len(shown) == 14
    assert all(any(t.get_visible() and t.get_text() for t in ax.get_xticklabels()) for ax in shown)


def test_inspect_kept_and_dropped_time(run_dir):
    res, _ = invoke("inspect", run_dir, "--variant", LABELLED, "--json")
    rows = {r["recording_id"]: r for r in json.loads(res.stdout)}
    assert set(rows) == {"rec000", "rec001"}
    assert (rows["rec001"]["duration_s"], rows["rec001"]["kept_s"], rows["rec001"]["dropped_s"]) == (13.0, 10.0, 3.0)
    res, _ = invoke("inspect", run_dir, "--variant", LABELLED)
    assert "| rec001 | 13.0 | 2 | 10.0 | 3.0 | 76.9 | kept |" in res.output


def test_inspect_a_recording_as_subtitles(run_dir):
    res, _ = invoke("inspect", run_dir, "--variant", LABELLED, "--recording", "rec001", "--srt")
    assert res.exit_code == 0
    cues = res.stdout.split("\n\n")
    assert cues[0].startswith("1\n00:00:00,000 --> 00:00:05,000\n[")
    assert cues[1].startswith("2\n00:00:05,000 --> 00:00:10,000\n[")
    res, _ = invoke("inspect", run_dir, "--variant", LABELLED, "--recording", "rec001", "--vtt")
    assert res.stdout.startswith("WEBVTT\n\nrec001_00000000_00005000\n00:00:00.000 --> 00:00:05.000\n")
    res, text = invoke("inspect", run_dir, "--variant", LABELLED, "--srt")
    assert res.exit_code == 2 and "add --recording ID" in text


def test_subtitle_timestamps_and_cues():
    assert subtitles.timestamp(3725.0456) == "01:02:05,046" and subtitles.timestamp(0.5, ".") == "00:00:00.500"
    row = {"segment_id": "r_1", "start_s": 1.0, "end_s": 2.0, "speaker": "A", "text": " two\nlines "}
    assert subtitles.srt([row]) == "1\n00:00:01,000 --> 00:00:02,000\n[A] two lines\n\n"
    assert subtitles.cue_text({**row, "speaker": None, "text": None}) == "(r_1)"


LINEAGE = """
name: lineage
passes:
  seq:
    - {stage: naive_segment, window_s: 5, emit: seq}
derive:
  seq-long:
    from: seq
    stages: [{stage: min_duration, min_s: 5.5}]
  seq-halves:
    from: seq
    stages: [{stage: split_long, max_s: 3}]
"""
LATER = "name: later\nderive:\n  seq-halves-3s:\n    from: seq-halves\n    stages: [{stage: min_duration, min_s: 3}]\n"


def test_inspect_dropped_time_by_reason_follows_each_variants_lineage(tmp_path):
    """A variant's dropped time per reason counts what its own stages and the variants it was made from dropped,
    never a sibling's cuts: the pass (naive_segment's partial window), a derivation in the pipeline, and a later
    `curate derive` on top of a derived variant."""
    from curate.testing import make_archive

    catalog = make_archive(tmp_path / "archive", n=2, duration_s=12.0)  # rec000 12 s, rec001 13 s
    (tmp_path / "lineage.yaml").write_text(LINEAGE)
    (tmp_path / "later.yaml").write_text(LATER)
    run = tmp_path / "run"
    res, text = invoke("run", tmp_path / "lineage.yaml", "--catalog", catalog, "--out", run, "--runner", "local")
    assert res.exit_code == 0, text
    res, text = invoke("derive", run, "--pipeline", tmp_path / "later.yaml")
    assert res.exit_code == 0, text

    def dropped(variant):
        res, text = invoke("inspect", run, "--variant", variant, "--json")
        assert res.exit_code == 0, text
        rows = {r["recording_id"]: r for r in json.loads(res.stdout)}
        reasons = rows["rec001"]["dropped_by_reason"]
        assert set(reasons) >= {"music", "too_short", "partial_window"}  # the closed set, 0 where nothing
        return {k: v for k, v in reasons.items() if v}, rows["rec001"]["dropped_unattributed_s"]

    assert dropped("seq") == ({"partial_window": 3.0}, 0.0)
    assert dropped("seq-long") == ({"partial_window": 3.0, "too_short": 10.0}, 0.0)  # 5 s windows < 5.5 s
    assert dropped("seq-halves") == ({"partial_window": 3.0}, 0.0)
    assert dropped("seq-halves-3s") == ({"partial_window": 3.0, "too_short": 10.0}, 0.0)  # 2.5 s halves < 3 s
    res, _ = invoke("inspect", run, "--variant", "seq-long")
    assert "| recording | too_short | partial_window | unattributed |" in res.output
    assert "| rec001 | 10.0 | 3.0 | 0.0 |" in res.output and "| **total** | 20.0 | 5.0 | 0.0 |" in res.output
