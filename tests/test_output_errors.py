"""Disk and file-system faults say what happened in one line: a read-only or full output disk names the file
it could not write, a symlink loop is called one, and a run in which every recording failed exits non-zero."""

import errno
import os
import sys

import pytest
from typer.testing import CliRunner

from curate import audio, manifest
from curate.cli.app import app, main
from curate.testing import make_archive, make_catalog

SEQ = "pipelines/seq.yaml"


def _main(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["curate", *args])
    with pytest.raises(SystemExit) as e:
        main()
    cap = capsys.readouterr()
    return e.value.code, " ".join((cap.out + cap.err).split())


def _run_args(tmp_path):
    catalog = make_archive(tmp_path / "archive", n=2, duration_s=3.0)
    return ["run", SEQ, "--catalog", str(catalog), "--out", str(tmp_path / "out"), "--runner", "local"]


def test_full_disk_names_the_file(tmp_path, monkeypatch, capsys):
    def full(table, where, **kw):  # what pyarrow raises on ENOSPC: no filename, errno only in the text
        raise OSError("[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(manifest.pq, "write_table", full)
    code, text = _main(monkeypatch, capsys, *_run_args(tmp_path))
    assert code == 1
    assert "recordings.parquet: No space left on device" in text and "Traceback" not in text
    assert not list((tmp_path / "out").glob(".*.tmp"))  # no temp file left behind


def test_read_only_disk_names_the_file_not_its_temp_file(tmp_path, monkeypatch, capsys):
    def read_only(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path.parent / f".{path.name}.x1y2.tmp"))

    monkeypatch.setattr(manifest, "_atomic_path", read_only)
    code, text = _main(monkeypatch, capsys, *_run_args(tmp_path))
    assert code == 1
    first_write = tmp_path / "out" / "_progress" / "prepare.json"  # the run's first file (its resume marker)
    assert f"{first_write}: Read-only file system" in text
    assert ".tmp" not in text and "Traceback" not in text


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_unwritable_output_directory_is_one_line(tmp_path, monkeypatch, capsys):
    args = _run_args(tmp_path)
    (tmp_path / "out").mkdir(mode=0o500)
    code, text = _main(monkeypatch, capsys, *args)
    assert code == 1 and "Permission denied" in text and "Traceback" not in text


def test_a_symlink_loop_is_reported_as_one(tmp_path):
    a, b = tmp_path / "a.flac", tmp_path / "b.flac"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(audio.AudioDecodeError, match="symlink loop") as e:
        audio.probe(a)
    assert "not found" not in str(e.value)


def test_a_run_where_every_recording_failed_exits_non_zero(tmp_path):
    rows = [{"recording_id": f"r{i}", "audio_path": str(tmp_path / f"missing{i}.flac")} for i in range(2)]
    catalog = make_catalog(tmp_path / "catalog.csv", rows)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", SEQ, "--catalog", str(catalog), "--out", str(out), "--runner", "local"])
    assert res.exit_code == 1, res.output
    assert "every recording failed (2)" in " ".join(res.output.split())


def test_a_run_with_some_output_exits_zero(tmp_path):
    catalog = make_archive(tmp_path / "archive", n=1, duration_s=31.0)
    with open(catalog, "a") as f:
        f.write("lost,audio/missing.flac,t,s,news,2020-01-01,nl\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", SEQ, "--catalog", str(catalog), "--out", str(out), "--runner", "local"])
    assert res.exit_code == 0, res.output
