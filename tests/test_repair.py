"""Reruns that repair (issue 24, item 4): a short outage, a deleted or damaged part, a damaged state file and a
second run on the same directory, each reproduced; the rerun of the same command equals an uninterrupted run."""

import json
import logging
import os
import shutil
import subprocess
import sys

import pytest

from curate.config import load_pipeline
from curate.errors import RunDirError
from curate.rundir import RunDir
from curate.runners import run_pipeline
from curate.testing import make_archive
from tests.test_run import snapshot

SET = ["settings.shard_size=2"]  # 6 recordings → 3 shards


def pipe():
    return load_pipeline("pipelines/seq.yaml", SET)


def run(catalog, out, **kw):
    return run_pipeline(pipe(), catalog, out, runner="local", **kw)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_archive(tmp_path_factory.mktemp("arch"), n=6, duration_s=65.0)


@pytest.fixture(scope="module")
def reference(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    run(archive, out)
    return snapshot(out)


@pytest.fixture
def audio_away(archive):
    """Rename the archive's audio folder away (a mount gone for a while); always put it back."""
    folder = archive.parent / "audio"
    away = archive.parent / "audio.away"
    yield lambda: folder.rename(away), lambda: away.rename(folder)
    if away.exists():
        away.rename(folder)


def test_a_folder_away_after_the_first_shard_is_tried_again_by_the_rerun(archive, reference, audio_away, tmp_path):
    leave, come_back = audio_away
    out = tmp_path / "run"
    seen = []

    def on_done(summary):
        seen.append(summary["shard_id"])
        if len(seen) == 1:
            leave()

    first = run(archive, out, on_done=on_done)
    assert first["counts"]["failed"] == 4  # the fault: shards 1 and 2 lost their audio, and got markers
    come_back()
    again = run(archive, out)
    assert again["counts"]["failed"] == 0 and snapshot(out) == reference


@pytest.mark.parametrize("killed", [False, True], ids=["finished", "killed-during-ingest"])
def test_a_folder_away_during_ingest_is_probed_again_by_the_rerun(archive, reference, audio_away, tmp_path, killed):
    leave, come_back = audio_away
    out = tmp_path / "run"
    leave()
    first = run(archive, out)
    assert first["counts"]["recordings"] == 0  # every probe said "file not found"
    if killed:  # what a kill -9 after the probes were checkpointed leaves: prepare.json and the probes
        rd = RunDir(out)
        keep = {rd.prepare_json, *rd.probes_dir.iterdir()}
        for p in sorted(out.rglob("*"), reverse=True):
            if p.is_file() and p not in keep:
                p.unlink()
    come_back()
    run(archive, out)
    assert snapshot(out) == reference


def damage(out, what):
    rd = RunDir(out)
    target = {
        "deleted part": rd.variant_part("seq", 1),
        "zero-byte part": rd.variant_part("seq", 1),
        "half-written part": rd.variant_part("seq", 2),
        "zero-byte marker": rd.marker(0),
        "half-written plan": rd.plan_json,
        "zero-byte prepare.json": rd.prepare_json,
    }[what]
    if what == "deleted part":
        target.unlink()
    elif what.startswith("half-written"):
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    else:
        target.write_bytes(b"")
    return target


@pytest.mark.parametrize(
    "what",
    [
        "deleted part",
        "zero-byte part",
        "half-written part",
        "zero-byte marker",
        "half-written plan",
        "zero-byte prepare.json",
    ],
)
def test_a_damaged_part_or_state_file_is_named_and_redone(archive, reference, tmp_path, caplog, what):
    out = tmp_path / "run"
    run(archive, out)
    target = damage(out, what)
    with caplog.at_level(logging.WARNING, logger="curate"):
        run(archive, out)
    assert snapshot(out) == reference
    if what != "zero-byte prepare.json":  # read only when no plan exists: a finished run never looks at it
        assert any(target.name in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_a_damaged_probe_checkpoint_is_set_aside_and_probed_again(archive, reference, tmp_path, caplog):
    """A run killed during ingest with a half-written probe checkpoint (no plan yet) resumes."""
    out = tmp_path / "run"
    run(archive, out)
    rd = RunDir(out)
    part = rd.probe_part(0)
    for p in sorted(out.rglob("*"), reverse=True):  # back to the state of a kill during ingest
        if p.is_file() and p not in {rd.prepare_json, part}:
            p.unlink()
    part.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="curate"):
        run(archive, out)
    assert snapshot(out) == reference
    assert any("damaged" in r.getMessage() and part.name in r.getMessage() for r in caplog.records)
    assert list(rd.damaged_dir.iterdir())  # kept for a look


def test_retry_failed_tries_deterministic_failures_again(archive, tmp_path):
    """A recording whose audio was damaged (a deterministic failure) is remembered by a plain rerun, and tried
    again with --retry-failed (here: the file was repaired in the meantime)."""
    root = tmp_path / "arch"
    shutil.copytree(archive.parent, root)
    catalog = root / archive.name
    audio = root / "audio" / "rec001.flac"
    good = audio.read_bytes()
    audio.write_bytes(b"not audio at all" * 100)
    out = tmp_path / "run"
    assert run(catalog, out)["counts"]["recordings"] == 5
    audio.write_bytes(good)
    assert run(catalog, out)["counts"]["recordings"] == 5  # remembered: not a transient error
    assert run(catalog, out, retry_failed=True)["counts"]["recordings"] == 6


def test_a_second_run_on_the_same_directory_is_refused_naming_the_holder(archive, tmp_path):
    out = tmp_path / "run"
    with RunDir(out).lock():
        with pytest.raises(RunDirError, match=rf"in use by another curate run \(pid {os.getpid()} on "):
            run(archive, out)
        cli = [sys.executable, "-m", "curate.cli", "run", "pipelines/seq.yaml", "--catalog", str(archive)]
        res = subprocess.run([*cli, "--out", str(out), "--runner", "local"], capture_output=True, text=True)
    assert res.returncode == 2
    text = " ".join(res.stderr.split())  # rich wraps the line at the terminal's width
    assert text.count("error:") == 1 and f"in use by another curate run (pid {os.getpid()} on" in text, res.stderr
    assert "Traceback" not in res.stderr
    assert not RunDir(out).has_work()  # the refused run wrote nothing
    run(archive, out)  # the lock went with its holder


def test_the_run_log_holds_every_line_and_run_json_the_command(archive, tmp_path):
    """RUN/logs/curate.log gets curate's INFO lines (with their pid) though the console shows warnings only;
    run.json says which command line made the run."""
    out = tmp_path / "run"
    cli = [sys.executable, "-m", "curate.cli", "run", "pipelines/seq.yaml", "--catalog", str(archive)]
    res = subprocess.run([*cli, "--out", str(out), "--runner", "local"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = RunDir(out).log_file.read_text().splitlines()
    assert any(" INFO curate." in line for line in lines) and "INFO" not in res.stderr
    assert all(line.split()[2].isdigit() for line in lines)  # date, time, pid
    command = json.loads(RunDir(out).run_json.read_text())["command"]
    assert "run pipelines/seq.yaml --catalog" in command and str(out) in command


def test_progress_reaches_k_of_n_inside_one_shard(archive, tmp_path, monkeypatch):
    """A catalog in one shard (shard_size 8, 6 recordings) still shows progress per recording: the worker's
    running note counts the recordings it finished, and the driver's progress sums the notes."""
    from curate.runners import shard

    out = tmp_path / "run"
    seen = []
    real = shard.process_recording

    def counted(pipeline, rec, verify=True, guard=None):
        seen.append(RunDir(out).recordings_in_flight())
        return real(pipeline, rec, verify, guard)

    monkeypatch.setattr(shard, "process_recording", counted)
    result = run_pipeline(load_pipeline("pipelines/seq.yaml", ["settings.shard_size=8"]), archive, out, runner="local")
    assert result["counts"]["shards"] == 1 and seen == [0, 1, 2, 3, 4, 5]
    assert RunDir(out).recordings_in_flight() == 0  # the finished shard's note is gone
