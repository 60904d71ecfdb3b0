"""The stage watchdog in whole runs: a stage that hangs on one recording (``curate.testing.stalls``) costs that
recording only. Soft limit (Python code): a failure row naming the stage, in both runners. Hard limit (blocked
in one C call): the worker process is killed after leaving a note; Ray retries the shard, the local runner's
rerun resumes it, and the recording becomes its failure row instead of hanging again."""

import json
import subprocess
import sys
import textwrap
import time

import pytest

from curate import manifest
from curate.config import parse_pipeline
from curate.runners import run_pipeline
from curate.testing import make_catalog, tone, write_audio

FAST = {"watchdog_floor_s": 2.0, "stage_watchdog_factor": 0.0, "watchdog_grace_s": 3600.0}


def stall_pipeline(stage="test_stall", how="python", **settings):
    import curate.testing.stalls  # noqa: F401 - registers the test stages

    raw = {
        "name": "stall",
        "settings": {**FAST, "shard_size": 3, **settings},
        "passes": {"p": [{"stage": stage, "stall_on": ["stuck"], "how": how, "emit": "stall"}]},
    }
    return raw, parse_pipeline(raw)


@pytest.fixture
def catalog(tmp_path):
    rows = []
    for i, rid in enumerate(["a", "stuck", "b"]):
        p = write_audio(tmp_path / "audio" / f"{rid}.flac", tone(5.0 + i, seed=i), 16000)
        rows.append({"recording_id": rid, "audio_path": str(p)})
    return make_catalog(tmp_path / "catalog.csv", rows)


def check_run(out, stage, killed=False):
    """The run finished: the stuck recording is a failure row naming its stage and is not kept; the others
    have their segments."""
    segments = manifest.read_table(out / "variants" / "stall", "segments").to_pylist()
    failures = manifest.read_table(out / "failures.parquet", "failures").to_pylist()
    decisions = {d["recording_id"]: d for d in manifest.read_table(out / "decisions.parquet", "decisions").to_pylist()}
    assert sorted(s["recording_id"] for s in segments) == ["a", "b"]
    (row,) = failures
    assert (row["recording_id"], row["stage"], row["error_type"]) == ("stuck", stage, "StageTimeout")
    assert f"stage {stage} ran past its watchdog limit of 2 s for a 6 s recording" in row["message"]
    assert ("worker process was killed by the watchdog" in row["message"]) == killed
    assert decisions["stuck"]["kept"] is False and decisions["stuck"]["stage"] == stage
    assert decisions["a"]["kept"] and decisions["b"]["kept"]
    run = json.loads((out / "run.json").read_text())
    assert (run["counts"]["processed"], run["counts"]["failed"]) == (2, 1)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stage", ["test_stall", "test_stall_model"])
def test_local_run_with_a_hanging_stage_finishes_with_its_failure_row(catalog, tmp_path, stage):
    _, pipe = stall_pipeline(stage)
    run_pipeline(pipe, catalog, tmp_path / "run", runner="local")
    check_run(tmp_path / "run", stage)
    if stage == "test_stall_model":  # the stopped model is loaded afresh for the recordings after it
        assert pipe.transforms()[0].loads == 2


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("stage_pools", [False, True], ids=["actor-pool", "stage-pools"])
def test_ray_run_with_a_hanging_model_stage_finishes_with_its_failure_row(catalog, tmp_path, stage_pools):
    _, pipe = stall_pipeline("test_stall_model")
    run_pipeline(pipe, catalog, tmp_path / "run", runner="ray", num_workers=1, stage_pools=stage_pools)
    check_run(tmp_path / "run", "test_stall_model")


RUN_SCRIPT = """
import json, sys
from curate.config import parse_pipeline
from curate.runners import run_pipeline
import curate.testing.stalls
raw, catalog, out, runner, pools = json.loads(sys.argv[1])
run_pipeline(parse_pipeline(raw), catalog, out, runner=runner, num_workers=1, stage_pools=pools)
"""


def run_in_child(raw, catalog, out, runner, timeout_s, stage_pools=False):
    args = json.dumps([raw, str(catalog), str(out), runner, stage_pools])
    code = textwrap.dedent(RUN_SCRIPT)
    return subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True, timeout=timeout_s)


@pytest.mark.timeout(180)
def test_local_run_blocked_in_native_code_is_killed_and_its_rerun_records_the_failure(catalog, tmp_path):
    """The local runner runs shards in the driver: the hard limit ends the run (SIGKILL), after leaving the
    note; the same command then resumes and finishes, the stuck recording a failure row, never retried."""
    raw, _ = stall_pipeline(how="native", watchdog_grace_s=1.0)
    out = tmp_path / "run"
    first = run_in_child(raw, catalog, out, "local", 120)
    assert first.returncode == -9, first.stderr[-2000:]
    note = json.loads((out / "_progress" / "poison" / "stuck.json").read_text())
    assert (note["recording_id"], note["stage"], note["limit_s"]) == ("stuck", "test_stall", 2.0)
    assert "killing this worker process" in first.stderr
    second = run_in_child(raw, catalog, out, "local", 120)  # the same command: resumes, does not hang again
    assert second.returncode == 0, second.stderr[-2000:]
    check_run(out, "test_stall", killed=True)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("stage", "stage_pools"),
    [("test_stall", False), ("test_stall_model", False), ("test_stall_model", True)],
    ids=["tasks", "actor-pool", "stage-pools"],
)
def test_ray_worker_blocked_in_native_code_is_killed_and_the_retried_shard_finishes(
    catalog, tmp_path, stage, stage_pools
):
    """Under Ray the killed worker is replaced and its shard retried; the note turns the stuck recording into
    its failure row and the run (one command) completes."""
    raw, _ = stall_pipeline(stage, how="native", watchdog_grace_s=1.0)
    out = tmp_path / "run"
    done = run_in_child(raw, catalog, out, "ray", 280, stage_pools)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "_progress" / "poison" / "stuck.json").exists()
    assert f"stage {stage} still running 1 s after its watchdog limit of 2 s" in done.stderr
    check_run(out, stage, killed=True)


@pytest.mark.timeout(120)
def test_an_audio_pass_that_hangs_on_a_recording_costs_that_recording(catalog, tmp_path):
    """The driver's audio passes run under the same guard as the shards' stages: the stuck recording is a
    failure row naming the pass, dropped before planning; the others are planned and processed."""
    raw, _ = stall_pipeline()
    raw["filters"] = [{"stage": "test_stall_pass", "stall_on": ["stuck"]}]
    raw["passes"] = {"p": [{"stage": "test_stall", "emit": "stall"}]}
    out = tmp_path / "run"
    run = run_pipeline(parse_pipeline(raw), catalog, out, runner="local")
    assert (run["counts"]["kept"], run["counts"]["processed"]) == (2, 2)
    (row,) = manifest.read_table(out / "failures.parquet", "failures").to_pylist()
    assert (row["recording_id"], row["stage"], row["error_type"]) == ("stuck", "test_stall_pass", "StageTimeout")
    assert "stage test_stall_pass ran past its watchdog limit of 2 s" in row["message"]


@pytest.mark.parametrize("path", ["process_shard", "stage_pools"])
def test_a_recording_with_a_poison_note_is_not_tried_again(tmp_path, path):
    """Both shard paths (one worker runs every stage; a pool per stage) read the note before calling the stage:
    the stage never runs on that recording again (it would time out after 2 s with another message)."""
    from curate.rundir import RunDir
    from curate.runners.guard import note_path
    from curate.runners.shard import ShardState, process_shard
    from curate.testing import fake_recording

    _, pipe = stall_pipeline()
    recs = [fake_recording(rid, 5.0 + i) for i, rid in enumerate(["a", "stuck", "b"])]
    note = {"recording_id": "stuck", "stage": "test_stall", "limit_s": 2.0, "grace_s": 1.0, "duration_s": 6.0}
    manifest.write_json(note_path(RunDir(tmp_path).poison_dir, "stuck"), note)
    for stage in pipe.transforms():
        stage.bind(pipe.settings)
    if path == "process_shard":
        summary = process_shard(pipe, 0, recs, tmp_path, verify=False)
    else:
        state = ShardState(0, recs, run=RunDir(tmp_path))
        state.apply(pipe, pipe.passes[0].stages[0], first_of_pass=True, verify=False)
        summary = state.finish(pipe, tmp_path, 0.0)
    assert summary["processed"] == ["a", "b"] and summary["failed"] == ["stuck"]
    (row,) = manifest.read_table(tmp_path / "_progress" / "failures", "failures").to_pylist()
    assert row["error_type"] == "StageTimeout" and "killed by the watchdog" in row["message"]
    assert "(note: poison/stuck.json)" in row["message"]


def test_stage_timeout_keeps_its_stage_when_pickled():
    import pickle

    from curate.errors import StageTimeout

    e = pickle.loads(pickle.dumps(StageTimeout("x: stage s ran past …", "wx_align")))
    assert (str(e), e.stage) == ("x: stage s ran past …", "wx_align")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_real_model_stage_is_stopped_and_its_model_still_works(realaudio, tmp_path):
    """faster-whisper (bundled base, CPU) on a 113 s recording under a 1 s limit stops within one model call
    of the limit; the same loaded model then transcribes the next recording correctly."""
    import numpy as np
    import soundfile as sf

    from curate.config import Settings, build_stage
    from curate.errors import StageTimeout
    from curate.runners.shard import recording_context
    from curate.runners.watchdog import Watchdog
    from curate.schema import Recording

    clips = ["sp_en_libri_6313-76958-0021", "sp_en_libri_2412-153948-0000", "sp_en_libri_2412-153948-0001"] * 3
    x = np.concatenate([sf.read(realaudio / "flac" / f"{c}.flac", dtype="float32")[0] for c in clips])
    sf.write(tmp_path / "long.flac", x, 16000)
    long = Recording("long", str(tmp_path / "long.flac"), len(x) / 16000, 16000, 1, language="en")
    jfk = Recording("jfk", str(realaudio / "flac" / "sp_en_jfk.flac"), 11.0, 16000, 1, language="en")
    settings = Settings()
    spec = {"stage": "whisper_transcribe", "model": "faster-whisper:base", "device": "cpu", "emit": "w-raw"}
    stage = build_stage(spec, "test")
    stage.bind(settings)
    stage.setup()
    try:
        t0 = time.perf_counter()
        with pytest.raises(StageTimeout, match="stage whisper_transcribe ran past its watchdog limit of 1 s"):
            Watchdog(long, 1.0, 3600.0).call(stage.stage_name, stage.process, recording_context(settings, long), [])
        assert time.perf_counter() - t0 < 60  # one 30 s window's decoding on a busy 2-core machine, not 113 s
        result = Watchdog(jfk, 300.0, 3600.0).call(
            stage.stage_name, stage.process, recording_context(settings, jfk), []
        )
        assert "ask not what your country" in " ".join(s.text or "" for s in result.segments).lower()
    finally:
        stage.teardown()


@pytest.mark.timeout(240)
def test_a_watchdog_kill_in_a_bucket_run_leaves_its_note_in_the_bucket(catalog, tmp_path, s3, monkeypatch):
    """A run directory on object storage is pulled afresh by the rerun: the note must be in the bucket, or the
    rerun would hang on the same recording and be killed again."""
    from curate.rundir import mirror as remote

    monkeypatch.setenv(remote.STAGING_ENV, str(tmp_path / "staging"))
    raw, _ = stall_pipeline(how="native", watchdog_grace_s=1.0)
    url = "s3://curate-test/watchdog-run"
    first = run_in_child(raw, catalog, url, "local", 120)
    assert first.returncode == -9, first.stderr[-2000:]
    assert "_progress/poison/stuck.json" in remote.remote_files(url)
    second = run_in_child(raw, catalog, url, "local", 120)
    assert second.returncode == 0, second.stderr[-2000:]
    check_run(remote.local_copy(url), "test_stall", killed=True)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_recording_that_crashes_its_worker_twice_becomes_a_failure_row(catalog, tmp_path):
    """A crash the watchdog cannot see (SIGKILL, as a segfault in a decoder) under Ray's actor pool: the worker
    is replaced and the shard retried; the second death on the same recording leaves a note, and the third try
    records that recording as failed and finishes the others (one command, exit 0)."""
    raw, _ = stall_pipeline("test_stall_model", how="crash")
    out = tmp_path / "run"
    done = run_in_child(raw, catalog, out, "ray", 280)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "recording stuck: its worker died 2 times on it" in done.stderr
    failures = manifest.read_table(out / "failures.parquet", "failures").to_pylist()
    assert [(f["recording_id"], f["error_type"]) for f in failures] == [("stuck", "WorkerCrash")]
    assert "its worker process died 2 times while processing this recording" in failures[0]["message"]
    segments = manifest.read_table(out / "variants" / "stall", "segments").to_pylist()
    assert sorted(s["recording_id"] for s in segments) == ["a", "b"]
