"""A run killed at any phase boundary of ingest and planning resumes with the same command and ends equal to
an uninterrupted run; a refused rerun says what differs (pipeline, its overrides, or the catalog's content)."""

import shutil
import subprocess
import sys
import textwrap

import pytest

from curate.config import load_pipeline
from curate.runners import RunDirError, run_pipeline
from curate.testing import make_archive
from tests.test_run import snapshot

SEQ = "pipelines/seq.yaml"
# prepare() writes, in order: prepare.json, probe checkpoints (_progress/probes/part-*.parquet), the ingest
# failure rows, recordings.parquet, decisions.parquet, the plan's recordings, plan.json
BOUNDARIES = [
    "prepare.json",
    "probes/part-00000.parquet",
    "ingest_probe_failures.parquet",
    "ingest_failures.parquet",
    "recordings.parquet",
    "audio_pass_failures.parquet",
    "decisions.parquet",
    "plan_recordings.parquet",
]

KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from curate.cli.app import main

    target, real = sys.argv.pop(1), os.replace

    def replace(src, dst, **kw):  # kill -9 right after the target file is (atomically) written
        real(src, dst, **kw)
        if str(dst).endswith(target):
            dst = Path(dst)
            (dst.parent / f".{dst.name}.abc123.tmp").write_bytes(b"half")  # as a kill mid-write leaves
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    sys.argv[0] = "curate"
    main()
""")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_archive(tmp_path_factory.mktemp("arch"), n=3, duration_s=31.0)


@pytest.fixture(scope="module")
def reference(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    run_pipeline(load_pipeline(SEQ), archive, out, runner="local")
    return snapshot(out)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_kill_during_ingest_or_planning_resumes_with_the_same_command(archive, reference, tmp_path, boundary):
    out = tmp_path / "run"
    args = ["run", SEQ, "--catalog", str(archive), "--out", str(out), "--runner", "local"]
    killed = subprocess.run([sys.executable, "-c", KILLER, boundary, *args], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (out / "_progress" / "plan.json").exists()
    again = subprocess.run([sys.executable, "-m", "curate.cli", *args], capture_output=True, text=True)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert snapshot(out) == reference
    assert not list(out.rglob("*.tmp"))


def test_a_directory_with_other_files_is_still_refused(archive, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="holds no curate run plan"):
        run_pipeline(load_pipeline(SEQ), archive, out, runner="local")


def test_a_moved_but_identical_catalog_resumes(archive, tmp_path):
    out = tmp_path / "run"
    run_pipeline(load_pipeline(SEQ), archive, out, runner="local")
    moved = tmp_path / "elsewhere"
    shutil.copytree(archive.parent, moved)
    run_pipeline(load_pipeline(SEQ), moved / archive.name, out, runner="local")  # not refused


def test_a_refusal_names_the_pipeline_difference(archive, tmp_path):
    out = tmp_path / "run"
    run_pipeline(load_pipeline(SEQ), archive, out, runner="local")
    other = load_pipeline(SEQ, ["naive_segment.window_s=10"])
    with pytest.raises(RunDirError) as e:
        run_pipeline(other, archive, out, runner="local")
    msg = str(e.value)
    assert "pipeline or its --set overrides differ" in msg and "window_s: 30 → 10" in msg
    assert "catalog" not in msg.split(":", 1)[1].split("differ")[0]


def test_a_refusal_names_a_changed_catalog(archive, tmp_path):
    out = tmp_path / "run"
    run_pipeline(load_pipeline(SEQ), archive, out, runner="local")
    changed = tmp_path / "changed"
    shutil.copytree(archive.parent, changed)
    with open(changed / archive.name, "a") as f:
        f.write("extra,audio/rec000.flac,t,s,news,2020-01-09,nl\n")
    with pytest.raises(RunDirError, match="the catalog's content differs") as e:
        run_pipeline(load_pipeline(SEQ), changed / archive.name, out, runner="local")
    assert "pipeline" not in str(e.value).split("content differs")[1].split(";")[0]
