"""CLI conventions a user relies on: --version, choices named on a typo, one runner default and --ray-address
everywhere, a counted -v; and files that honour the umask, so a cluster group can read the runs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate import __version__, manifest
from curate.cli.app import app

# every command that fans work out has the same runner default and a --ray-address
FANNING_OUT = [["run"], ["demo"], ["ablate"], ["export"], ["materialize"], ["corrupt", "stems"]]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_version():
    res = invoke("--version")
    assert res.exit_code == 0 and res.output.strip() == f"curate {__version__}"


def test_verbose_is_a_counter_without_an_int_metavar():
    res = invoke("--help")
    line = next(x for x in res.output.splitlines() if "--verbose" in x)
    assert "<int>" not in line and "INTEGER" not in line and "-vv debug" in line


@pytest.mark.parametrize("command", [[], ["run"], ["export"], ["pretrain"]], ids=" ".join)
def test_flags_show_no_value_label(command):
    """A flag takes no value: ``--help`` and ``--stage-pools`` are not shown as taking a ``<bool>``."""
    res = invoke(*command, "--help")
    assert res.exit_code == 0
    assert "--help" in res.output and "<bool>" not in res.output and "BOOLEAN" not in res.output
    assert "<str>" in res.output or "<path>" in res.output or not command  # options with values keep their label


@pytest.mark.parametrize("command", FANNING_OUT, ids=" ".join)
def test_runner_default_and_ray_address_everywhere(command):
    res = invoke(*command, "--help")
    lines = res.output.splitlines()
    at = next(i for i, x in enumerate(lines) if "--runner" in x)
    runner = " ".join(lines[at : at + 2])  # the default may wrap onto the next line
    assert "<ray|local>" in runner and "[default: ray]" in runner
    assert "--ray-address" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "RUN", "--variant", "v", "--out", "o", "--format", "tsv"], "'tsv' is not one of 'fairseq'"),
        (
            ["export", "RUN", "--variant", "v", "--out", "o", "--format", "nemo", "--runner", "rya"],
            "'rya' is not one of",
        ),
        (["materialize", "RUN", "--variant", "v", "--out", "o", "--format", "wav"], "'wav' is not one of 'flac'"),
    ],
)
def test_choices_are_named_on_a_typo(args, message):
    res = invoke(*args)
    assert res.exit_code == 2 and message in " ".join(res.output.replace("│", " ").split())


def test_export_hf_is_its_own_command(tmp_path):
    res = invoke("export-hf", str(tmp_path / "nope.pt"), str(tmp_path / "hf"))
    assert res.exit_code == 2 and "no such checkpoint" in " ".join(res.output.split())


@pytest.fixture
def group_umask():
    old = os.umask(0o002)
    yield
    os.umask(old)


def test_written_files_honour_the_umask(tmp_path: Path, group_umask):
    manifest.write_json(tmp_path / "a.json", {"x": 1})
    manifest.write_records(tmp_path / "f.parquet", [], "failures")
    for name in ("a.json", "f.parquet"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o664, name
    os.umask(0o077)
    manifest.atomic_write_text(tmp_path / "private.txt", "x")
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600
