"""Output that reads well in a log: off a terminal nothing is hard-wrapped (one record, one line), records carry
no time column, library warnings stay out of the console, and every export prints progress lines with a rate."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from curate.cli import console as cons
from curate.cli.app import app
from curate.testing.export import LABELLED, make_labelled_run

REPO = Path(__file__).resolve().parent.parent
LONG = "a-directory-name-long-enough-that-every-line-about-it-runs-past-eighty-columns"


@pytest.fixture
def captured(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(cons, "console", Console(file=buf, force_terminal=False))  # width 80, as in a log
    yield buf
    logging.basicConfig(force=True)
    logging.captureWarnings(False)


def test_a_long_record_is_one_line_without_a_time_column(captured):
    cons.setup_logging(0)
    logging.getLogger("curate.export.kaldi").warning("kaldi: %s", "x" * 150)
    assert captured.getvalue() == f"WARNING curate.export.kaldi: kaldi: {'x' * 150}\n"


def test_library_warnings_and_lightning_notes_are_debug_records(captured):
    cons.setup_logging(0)
    lightning = logging.getLogger("lightning")  # what `import lightning` does: INFO through its own handler
    own = io.StringIO()
    handler = logging.StreamHandler(own)
    handler.setLevel(logging.INFO)
    lightning.addHandler(handler)
    lightning.setLevel(logging.INFO)
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # pytest's configuration ignores UserWarning
        logging.getLogger("lightning.pytorch.utilities.migration.utils").info("Lightning automatically upgraded")
        warnings.warn_explicit("pkg_resources is deprecated", UserWarning, "/site-packages/pkg_resources/x.py", 1)
        warnings.warn_explicit("curate says so", UserWarning, str(REPO / "curate" / "audio.py"), 1)
    lightning.handlers.clear()
    assert own.getvalue() == ""
    text = captured.getvalue()
    assert "pkg_resources" not in text and "Lightning" not in text
    assert "curate says so" in text and len(text.splitlines()) == 1  # the source line is joined, not wrapped


def test_progress_lines_carry_a_rate_and_an_eta(captured):
    with cons.PlainProgress(every_s=60) as bar:
        task = bar.add_task("export hf", total=10, extra="segments")
        bar._t0 -= 20
        bar.advance(task, 4)
        mid = bar.line(bar.tasks[task])
        bar.advance(task, 6)
    assert mid == "export hf: 4/10 (40 %)  segments  [20 s, 0.2/s, ETA 30 s]"
    assert captured.getvalue().splitlines()[-1].startswith("export hf: 10/10 (100 %)  segments  [20 s, 0.5/s]")
    assert cons.duration_text(5400) == "90 min" and cons.duration_text(4 * 3600) == "4.0 h"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_labelled_run(tmp_path_factory.mktemp(LONG), n=2, duration_s=12.0)


@pytest.mark.parametrize("fmt", ["hf", "webdataset", "lhotse", "nemo", "kaldi", "fairseq"])
def test_every_export_prints_progress_lines_off_a_terminal(run_dir, tmp_path, fmt):
    res = CliRunner().invoke(
        app, ["export", str(run_dir), "--variant", LABELLED, "--format", fmt, "--out", str(tmp_path / fmt), "--runner", "local"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    label = "materialize" if fmt == "fairseq" else f"export {fmt}"
    done = [line for line in res.output.splitlines() if line.startswith(f"{label}: ") and "(100 %)" in line]
    assert done, res.output  # (the rate and ETA: test_progress_lines_carry_a_rate_and_an_eta)
    exported = next(line for line in res.output.splitlines() if line.startswith("exported"))
    assert str(tmp_path / fmt) in exported and exported.endswith(" h)")  # the summary is one line


def test_a_redirected_run_and_export_write_whole_lines(tmp_path):
    from curate.testing import make_archive

    catalog = make_archive(tmp_path / "a", n=2, duration_s=6.0)
    out = tmp_path / LONG / "run"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        for args in (
            ["run", "pipelines/seq.yaml", "--catalog", str(catalog), "--out", str(out), "--runner", "local",
             "--set", "naive_segment.window_s=2"],
            ["export", str(out), "--variant", "seq", "--format", "kaldi", "--out", str(out.parent / "kaldi"),
             "--runner", "local"],
        ):  # fmt: skip
            subprocess.run(
                [sys.executable, "-m", "curate.cli", *args], stdout=f, stderr=f, env=env, cwd=REPO, check=True
            )
    lines = log.read_text().splitlines()
    assert any(line.startswith(f"run directory: {out}  (") and line.endswith("warnings.parquet)") for line in lines)
    warning = "WARNING curate.export.kaldi: kaldi: 6 of 6 train segments have no text (empty transcripts)"
    assert warning in lines
    assert any(line.startswith(f"exported seq → {out.parent / 'kaldi'} (kaldi; train: 6 segments") for line in lines)
    assert any(line.startswith("export kaldi: 6/6 (100 %)") for line in lines)
    assert not [line for line in lines if line.startswith((" ", "[")) or line.startswith("segments")], lines
