"""The console shows curate's own lines: library INFO chatter stays out, -v shows curate's INFO, and a run
whose stderr is a file (a cluster or nohup log) gets plain periodic progress lines."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from curate.cli import console as cons


@pytest.fixture
def captured(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(cons, "console", Console(file=buf, width=200, force_terminal=False))
    yield buf
    logging.basicConfig(force=True)


def _emit() -> None:
    logging.getLogger("curate.catalog").info("curate info line")
    logging.getLogger("curate.catalog").warning("curate warning line")
    lightning = logging.getLogger("lightning.pytorch.utilities.migration.utils")
    lightning.setLevel(logging.INFO)  # what Lightning does to its own logger at import
    lightning.info("Lightning automatically upgraded your loaded checkpoint")


@pytest.mark.parametrize(("verbose", "shown"), [(0, {"curate warning line"}), (1, {"curate info", "curate warning"})])
def test_only_curate_lines_at_the_chosen_level(captured, verbose, shown):
    cons.setup_logging(verbose)
    _emit()
    text = captured.getvalue()
    assert all(s in text for s in shown)
    assert "Lightning" not in text
    assert ("curate info line" in text) == (verbose >= 1)


def test_plain_progress_lines_when_not_a_terminal(captured):
    assert isinstance(cons.progress_bar(), cons.PlainProgress)
    with cons.PlainProgress(every_s=0.05) as bar:
        task = bar.add_task("recordings", total=4, extra="")
        for _ in range(4):
            bar.advance(task)
            bar.update(task, extra="1.00/2.00 h audio")
            import time

            time.sleep(0.03)
    lines = captured.getvalue().splitlines()
    assert lines[0].startswith("recordings: 0/4 (0 %)") and lines[-1].startswith("recordings: 4/4 (100 %)  1.00/2.00 h")
    assert len(lines) >= 3 and "\x1b[" not in captured.getvalue()


def test_a_finished_task_keeps_the_time_it_took(captured):
    """Ingest finishes long before the run: its last line says how long ingest took, not how long the run did."""
    with cons.PlainProgress(every_s=60) as bar:
        probe = bar.add_task("probe", total=None, extra="")
        bar.advance(probe, 12)
        bar.update(probe, total=12, completed=12)
        rec = bar.add_task("recordings", total=1, extra="")
        bar._t0 -= 100  # the run goes on for 100 s more
        bar.advance(rec)
    last = captured.getvalue().splitlines()[-2:]
    assert last[0] == "probe: 12/12 (100 %)  [0 s]" and last[1].startswith("recordings: 1/1 (100 %)  [100 s, 0.6/min]")


@pytest.mark.slow
def test_ray_run_with_stderr_in_a_file_has_only_curate_lines(tmp_path: Path):
    from curate.testing import make_archive

    catalog = make_archive(tmp_path / "a", n=2, duration_s=12)
    env = {**os.environ, "CURATE_PROGRESS_EVERY_S": "5", "COLUMNS": "200"}
    with open(tmp_path / "err.log", "w") as err:
        subprocess.run(
            [sys.executable, "-m", "curate.cli", "run", "pipelines/seq.yaml", "--catalog", str(catalog), "--out",
             str(tmp_path / "run"), "--set", "naive_segment.window_s=5"],
            stdout=subprocess.DEVNULL, stderr=err, env=env, check=True, cwd=Path(__file__).parents[1],
        )  # fmt: skip
    log = (tmp_path / "err.log").read_text()
    lines = log.splitlines()
    assert lines and all(line.startswith(("catalog rows:", "recordings:")) for line in lines), log
    assert lines[-1].startswith("recordings: 2/2 (100 %)") and "\x1b[" not in log
    assert (tmp_path / "run" / "warnings.parquet").is_file()
