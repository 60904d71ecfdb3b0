"""The CLI: `curate export`, `curate materialize`, `curate select` are thin over the library; bad input is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate import manifest
from curate.cli.app import app
from curate.testing.export import LABELLED, make_labelled_run

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_labelled_run(tmp_path_factory.mktemp("cli"))


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_export_with_selection_file_and_overrides(run_dir, tmp_path):
    res = invoke(
        "export",
        run_dir,
        "--variant",
        LABELLED,
        "--format",
        "nemo",
        "--out",
        tmp_path,
        "--select",
        REPO / "configs" / "selection" / "per-programme.yaml",
        "--set",
        "max_hours=0.01",
    )
    assert res.exit_code == 0, res.output
    stats = json.loads((tmp_path / "selection.json").read_text())
    n = sum(len((tmp_path / f"{s}_manifest.jsonl").read_text().splitlines()) for s in ("train", "valid"))
    assert n == stats["train"]["segments"] + stats["valid"]["segments"] == 7  # 36 s of 5 s segments
    assert "exported" in res.output


def test_materialize_pcm16_local(run_dir, tmp_path):
    res = invoke(
        "materialize", run_dir, "--variant", LABELLED, "--out", tmp_path, "--format", "pcm16", "--runner", "local"
    )
    assert res.exit_code == 0, res.output
    assert manifest.read_table(tmp_path / "index.parquet", "materialized").num_rows == 12
    assert (tmp_path / "shards" / "shard-00000.pcm16").stat().st_size == 12 * 5 * 16000 * 2


def test_select_dry_run_prints_steps(run_dir):
    res = invoke(
        "select",
        run_dir,
        "--variant",
        LABELLED,
        "--set",
        "genres=[news]",
        "--set",
        "split.method=random",
        "--set",
        "split.valid_pct=50",
    )
    assert res.exit_code == 0, res.output
    assert "| genre | 4 |" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "csv"], "'csv' is not one of 'fairseq', 'lhotse'"),
        (["--format", "nemo", "--set", "split.method=kfold"], "split.method must be one of"),
        (["--format", "nemo", "--select", "nope.yaml"], "nope.yaml: selection file not found"),
    ],
)
def test_export_bad_input_is_named(run_dir, tmp_path, args, message):
    res = invoke("export", run_dir, "--variant", LABELLED, "--out", tmp_path, *args)
    assert res.exit_code == 2
    assert message in " ".join(res.output.replace("│", " ").split())  # rich boxes wrap long errors


def test_missing_variant_is_named(run_dir, tmp_path):
    res = invoke("materialize", run_dir, "--variant", "wx-diar", "--out", tmp_path, "--runner", "local")
    assert res.exit_code == 2 and "no variant 'wx-diar'" in res.output
