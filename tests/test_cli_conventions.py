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


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["models", "fetch", "nobackend:foo"], "error: model spec 'nobackend:foo': unknown backend 'nobackend'"),
        (["models", "fetch", "faster-whisper:"], "error: model spec 'faster-whisper:': missing the name"),
        (["run", "pipelines/seq.yaml", "--out", "OUT", "--stage-pools", "--runner", "local"], "needs the ray runner"),
        (
            ["validate", "pipelines/seq.yaml", "--set", "no-equals-sign"],
            "--set 'no-equals-sign': expected STAGE.PARAM=VALUE",
        ),
    ],
)
def test_a_curate_error_is_one_line_from_the_one_handler(args, expected, tmp_path):
    """Commands leave their CurateErrors (a bad model spec, runner or --set) to the CLI's one handler: one
    ``error:`` line, exit status 2, no traceback."""
    from curate.testing import make_archive

    catalog = make_archive(tmp_path / "arch", n=1) if "run" in args else None
    args = [str(tmp_path / "run") if a == "OUT" else a for a in args]
    if catalog is not None:
        args += ["--catalog", str(catalog)]
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    assert expected in res.output and "Traceback" not in res.output


def test_eval_sets_are_read_by_the_one_key_value_parser():
    from curate.errors import ConfigError
    from curate.yamlconf import parse_set

    assert parse_set(["test={kind: synthetic, root: d}"], option="--eval") == [
        ("test", {"kind": "synthetic", "root": "d"})
    ]
    with pytest.raises(ConfigError, match=r"^--eval 'test': expected NAME="):
        parse_set(["test"], "NAME={kind: …, root: …}", option="--eval")
