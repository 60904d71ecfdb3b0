"""Object storage that cannot be reached hurts one row, or stops a command in one line: an ``s3://`` row without
credentials and a ``gs://`` row without gcsfs are failure rows (the run goes on); a catalog or a run directory
there is refused with one ``error:`` line naming it, never a backend's traceback."""

from __future__ import annotations

import csv
import sys

import pytest
from typer.testing import CliRunner

from curate import manifest
from curate.cli.app import app
from curate.config import load_pipeline
from curate.rundir import RunDir, mirror
from curate.runners import run_pipeline
from curate.testing import make_archive

BUCKET = "curate-test"


@pytest.fixture
def no_credentials(s3, monkeypatch, tmp_path):
    """The moto endpoint stays, every way to find AWS credentials goes; and gcsfs is not installed."""
    import s3fs

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv(mirror.STAGING_ENV, str(tmp_path / "staging"))
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # `import gcsfs` fails, as on a machine without it
    s3fs.S3FileSystem.clear_instance_cache()
    yield
    s3fs.S3FileSystem.clear_instance_cache()


def test_rows_in_unreachable_buckets_become_failure_rows(no_credentials, tmp_path):
    make_archive(tmp_path / "arch", n=3)
    rows = list(csv.DictReader((tmp_path / "arch" / "catalog.csv").read_text().splitlines()))
    rows[1]["audio_path"] = f"s3://{BUCKET}/audio/rec001.flac"
    rows[2]["audio_path"] = "gs://a-bucket/audio/rec002.flac"
    catalog = tmp_path / "arch" / "mixed.csv"
    with open(catalog, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    run = run_pipeline(load_pipeline("pipelines/seq.yaml"), catalog, tmp_path / "run", runner="local")
    assert run["counts"]["processed"] == 1 and run["counts"]["recordings"] == 1  # the rest of the run goes on
    failed = manifest.read_table(RunDir(tmp_path / "run").failures, "failures").to_pylist()
    by_id = {r["recording_id"]: r["message"] for r in failed}
    assert set(by_id) == {"rec001", "rec002"}
    assert by_id["rec001"].startswith(f"s3://{BUCKET}/audio/rec001.flac: cannot open it (NoCredentialsError")
    assert by_id["rec002"].startswith("gs://a-bucket/audio/rec002.flac: unsupported or unreachable URL scheme gs://")
    assert "curate[storage]" in by_id["rec002"]
    assert all("\n" not in m for m in by_id.values())


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("catalog-s3", f"error: s3://{BUCKET}/cat.csv: cannot read catalog (NoCredentialsError"),
        ("catalog-gs", "error: gs://a-bucket/cat.csv: cannot read catalog"),
        ("out-s3", f"error: s3://{BUCKET}/run: cannot list the run directory (NoCredentialsError"),
        ("out-gs", "error: gs://a-bucket/run: reading gs:// URLs needs fsspec and its backend"),
    ],
)
def test_a_catalog_or_run_directory_in_an_unreachable_bucket_is_one_line(no_credentials, tmp_path, where, expected):
    make_archive(tmp_path / "arch", n=1)
    catalog, out = str(tmp_path / "arch" / "catalog.csv"), str(tmp_path / "run")
    kind, scheme = where.split("-")
    bucket = f"s3://{BUCKET}" if scheme == "s3" else "gs://a-bucket"
    if kind == "catalog":
        catalog = f"{bucket}/cat.csv"
    else:
        out = f"{bucket}/run"
    args = ["run", "pipelines/seq.yaml", "--catalog", catalog, "--out", out, "--runner", "local"]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "500"})
    assert res.exit_code == 2, res.output
    assert expected in res.output and "Traceback" not in res.output
    assert sum(line.startswith("error:") for line in res.output.splitlines()) == 1
