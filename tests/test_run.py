"""End to end: `curate run` through both runners, identical manifests, resume after SIGKILL, stats."""

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.compute as pc
import pytest

from curate import manifest, schema
from curate.config import load_pipeline
from curate.runners import RunDirError, run_pipeline
from curate.testing import make_archive

KINDS = {"recordings.parquet": "recordings", "decisions.parquet": "decisions", "failures.parquet": "failures"}


def snapshot(out):
    """Every manifest of a run directory as sorted rows (what 'identical manifests' means)."""
    snap = {}
    for name, kind in KINDS.items():
        t = manifest.read_table(out / name, kind)
        snap[name] = sorted(map(json.dumps, t.to_pylist()))
    for d in sorted((out / "variants").iterdir()):
        snap[d.name] = sorted(map(json.dumps, manifest.read_table(d, "segments").to_pylist()))
        snap[d.name + "/files"] = sorted(p.name for p in d.glob("part-*.parquet"))
    for d in sorted((out / "rejected").iterdir()) if (out / "rejected").exists() else []:  # none rejected
        snap["rejected/" + d.name] = sorted(map(json.dumps, manifest.read_table(d, "rejected").to_pylist()))
    snap["stats"] = json.loads((out / "stats.json").read_text())
    return snap


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("arch")
    return make_archive(root, n=6, duration_s=65.0)


def test_seq_run_directory_contents(archive, tmp_path):
    out = tmp_path / "run"
    run = run_pipeline(load_pipeline("pipelines/seq.yaml"), archive, out, runner="local")
    for name in ["recordings.parquet", "decisions.parquet", "failures.parquet", "stats.json", "stats.md", "run.json"]:
        assert (out / name).exists(), name
    segs = manifest.read_table(out / "variants" / "seq", "segments")
    # recordings of 65..70 s → two full 30 s windows each; the partial window is rejected with its reason
    assert segs.num_rows == 12
    assert pc.all(pc.equal(segs.column("duration_s"), 30.0)).as_py()
    rej = manifest.read_table(out / "rejected" / "naive_segment", "rejected")
    assert rej.num_rows == 6 and rej.column("reason")[0].as_py() == "partial_window"
    assert "last partial window" in rej.column("detail")[0].as_py()
    stats = json.loads((out / "stats.json").read_text())["variants"]["seq"]
    total = sum(65.0 + i for i in range(6))
    assert stats["segments"] == 12
    assert stats["discarded_pct"] == pytest.approx(100 * (1 - 360 / total))
    assert run["schema_version"] == schema.SCHEMA_VERSION and run["counts"]["processed"] == 6
    assert "curate" in run["versions"] and run["pipeline"]["name"] == "seq"


@pytest.mark.slow
def test_local_and_ray_runners_write_identical_manifests(archive, tmp_path):
    pipe = load_pipeline("pipelines/seq.yaml", ["settings.shard_size=2"])
    run_pipeline(pipe, archive, tmp_path / "local", runner="local")
    run_pipeline(pipe, archive, tmp_path / "ray", runner="ray", num_workers=2)  # 2 workers plan shards of 2 too
    a, b = snapshot(tmp_path / "local"), snapshot(tmp_path / "ray")
    assert a == b
    assert len(a["seq/files"]) == 3


def test_rerun_with_other_pipeline_is_refused(archive, tmp_path):
    out = tmp_path / "run"
    run_pipeline(load_pipeline("pipelines/seq.yaml"), archive, out, runner="local")
    other = load_pipeline("pipelines/seq.yaml", ["naive_segment.window_s=10"])
    with pytest.raises(RunDirError, match="another catalog or pipeline"):
        run_pipeline(other, archive, out, runner="local")


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
    catalog = make_archive(tmp_path / "arch", n=14, duration_s=120.0)
    cmd = [
        sys.executable,
        "-m",
        "curate.cli",
        "run",
        "pipelines/seq.yaml",
        "--catalog",
        str(catalog),
        "--runner",
        "local",
        "--set",
        "settings.shard_size=1",
    ]
    ref = tmp_path / "ref"
    subprocess.run([*cmd, "--out", str(ref)], check=True, capture_output=True)

    out = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = out / "_progress" / "done"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(done.glob("*.json")) if done.exists() else []) < 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in done.glob("*.json")}
    assert 2 <= len(finished) < 14, "the kill must land mid-run"
    assert not (out / "run.json").exists()

    subprocess.run([*cmd, "--out", str(out)], check=True, capture_output=True)
    assert snapshot(out) == snapshot(ref)
    # the shards finished before the kill were skipped, not redone
    assert all((done / n).stat().st_mtime_ns == t for n, t in finished.items())
