"""Ray as a user meets it: a real two-node cluster (one node killed mid-run) gives the local runner's
segments, and a local Ray started by ``curate run`` dies with its driver.

Every Ray process a test starts carries that test's own ``RAY_TMPDIR`` in its environment (Ray passes the
driver's or ``ray start``'s environment down to the raylet and its workers); that is how a test finds, and
at the end kills, exactly its own processes: other Ray clusters on the machine are never touched."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_run import snapshot  # the one definition of "identical manifests"

from curate.runners import reaper
from curate.synth import espeak
from curate.testing import make_archive, make_catalog, write_audio

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
TOKEN = secrets.token_hex(32)  # the test cluster's own auth token: never the user's ~/.ray/auth_token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_of(tmp: Path) -> list[int]:
    """Pids of this user's processes whose environment names ``tmp`` as RAY_TMPDIR (this process excluded)."""
    needle = f"RAY_TMPDIR={tmp}".encode()
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:  # another user's process, or gone
            continue
        if needle in env:
            pids.append(int(d.name))
    return pids


def running_shards(tmp: Path) -> list[bytes]:
    """Titles of the Ray workers of ``tmp`` running a shard: Ray titles a busy worker ``ray::<task>`` (a Ray Data
    ``MapBatches`` task for a model-free pipeline, ``_ShardActor.run`` for a model pipeline), an idle one
    ``ray::IDLE``."""
    titles = []
    for pid in processes_of(tmp):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::") and (b"MapBatches" in title or b"_ShardActor.run" in title):
            titles.append(title)
    return titles


def kill_all(tmp: Path) -> None:
    """Kill every process of one node at once, as a node failure does: all are stopped first, so no worker sees
    its ffmpeg child die (and records a decode failure) before it dies itself."""
    pids = processes_of(tmp)
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def wait_gone(tmp: Path, timeout_s: float) -> list[int]:
    deadline = time.time() + timeout_s
    while (left := processes_of(tmp)) and time.time() < deadline:
        time.sleep(0.2)
    return left


def env_for(tmp: Path) -> dict[str, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "RAY_TMPDIR": str(tmp),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": TOKEN,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }


def curate_run(catalog: Path, out: Path, *extra: str, pipeline: str = "pipelines/seq.yaml") -> list[str]:
    return [sys.executable, "-m", "curate.cli", "run", pipeline, "--catalog", str(catalog),
            "--out", str(out), "--set", "settings.shard_size=1", *extra]  # fmt: skip


def wait_for_done(out: Path, n: int, proc: subprocess.Popen, timeout_s: float) -> None:
    done = out / "_progress" / "done"
    deadline = time.time() + timeout_s
    while len(list(done.glob("*.json")) if done.exists() else []) < n:
        assert proc.poll() is None, f"curate run ended early (rc {proc.returncode})"
        assert time.time() < deadline, f"no {n} finished shards after {timeout_s} s"
        time.sleep(0.05)


@pytest.fixture
def ray_tmp(tmp_path_factory):
    """Per-test Ray temp dirs (short paths: Ray's unix sockets live there); every process left in them is
    SIGKILLed at the end, pass or fail."""
    made: list[Path] = []

    def new(name: str) -> Path:
        made.append(Path(tmp_path_factory.mktemp(f"r{name}", numbered=True)))
        return made[-1]

    yield new
    for tmp in made:
        kill_all(tmp)
    for tmp in made:
        assert not wait_gone(tmp, 10), f"Ray processes of {tmp} outlived the test"


def start_node(tmp: Path, ip: str, *args: str) -> subprocess.Popen:
    """``ray start --block`` in its own session: the node's processes stay findable by its RAY_TMPDIR."""
    cmd = [RAY, "start", "--block", "--num-cpus", "1", "--node-ip-address", ip, "--temp-dir", str(tmp),
           "--disable-usage-stats", "--dashboard-agent-listen-port", str(free_port()), *args]  # fmt: skip
    log = open(tmp / "ray-start.log", "w")  # noqa: SIM115 - kept open for the node's life
    return subprocess.Popen(cmd, env=env_for(tmp), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_nodes(address: str, tmp: Path, n: int, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        r = subprocess.run([RAY, "status", "--address", address], env=env_for(tmp), capture_output=True, text=True)
        active = r.stdout.partition("Active:")[2].partition("Pending:")[0]
        if r.returncode == 0 and active.count("node_") >= n:
            return
        time.sleep(0.5)
    raise AssertionError(f"the cluster at {address} never had {n} live nodes: {r.stdout}{r.stderr}")


@pytest.mark.slow
def speech_archive(root: Path, n: int) -> Path:
    """``n`` recordings of espeak sentences between pauses over faint noise: something for a VAD to find."""
    rng = np.random.default_rng(0)
    words = ["the", "archive", "keeps", "every", "programme", "of", "the", "evening", "news", "and", "the", "weather"]
    rows = []
    for i in range(n):
        parts = []
        for _ in range(4):
            parts += [
                np.zeros(int(16000 * rng.uniform(0.8, 2.0)), np.float32),
                espeak.speak(" ".join(rng.choice(words, 8))),
            ]
        x = np.concatenate(parts)
        x = (x + 0.002 * rng.standard_normal(x.size)).astype(np.float32)
        path = write_audio(root / "audio" / f"rec{i:03d}.flac", x)
        rows.append({"recording_id": f"rec{i:03d}", "audio_path": str(path.relative_to(root)), "language": "en"})
    return make_catalog(root / "catalog.csv", rows)


# seq: model-free shards as Ray Data tasks (tones); sad (Silero VAD on speech): a model pipeline on curate's own
# actor pool, whose lost actor is replaced and whose lost shard is queued again
@pytest.mark.parametrize("pipeline", ["pipelines/seq.yaml", "pipelines/sad.yaml"])
def test_two_node_cluster_with_a_node_killed_mid_run_equals_local(tmp_path, ray_tmp, pipeline):
    if pipeline.endswith("sad.yaml"):
        if not espeak.available():
            pytest.skip("needs espeak-ng (make setup installs it)")
        catalog = speech_archive(tmp_path / "arch", n=12)
    else:
        catalog = make_archive(tmp_path / "arch", n=12, duration_s=65.0)
    ref = tmp_path / "local"
    cmd = [*curate_run(catalog, ref, pipeline=pipeline), "--runner", "local"]
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)

    head_tmp, worker_tmp, driver_tmp = ray_tmp("head"), ray_tmp("worker"), ray_tmp("driver")
    # Ray swaps 127.0.0.1 and localhost for the machine's outward address; other loopback addresses stay
    port = free_port()
    address = f"127.0.0.2:{port}"
    head = start_node(head_tmp, "127.0.0.2", "--head", "--port", str(port), "--include-dashboard=false",
                      "--ray-client-server-port", str(free_port()))  # fmt: skip
    wait_for_nodes(address, head_tmp, 1)
    worker = start_node(worker_tmp, "127.0.0.3", "--address", address)
    wait_for_nodes(address, head_tmp, 2)

    out = tmp_path / "ray"
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen([*curate_run(catalog, out, pipeline=pipeline), "--ray-address", address],
                                  env=env_for(driver_tmp),
                                  stdout=log, stderr=subprocess.STDOUT, cwd=REPO)  # fmt: skip
        try:
            wait_for_done(out, 1, driver, 120)
            while not (busy := running_shards(worker_tmp)):  # the worker node is in the middle of a shard
                assert driver.poll() is None, "the run ended before the worker node took a shard"
                time.sleep(0.005)
            kill_all(worker_tmp)  # the worker node dies: its raylet, its workers, the `ray start` holding it
            print("killed the worker node while it ran", busy)
            assert not wait_gone(worker_tmp, 10)
            assert driver.wait(timeout=150) == 0, (tmp_path / "driver.log").read_text()[-3000:]
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
    assert worker.wait(timeout=10) != 0 and head.poll() is None
    assert snapshot(out) == snapshot(ref)
    if pipeline.endswith("sad.yaml"):  # the VAD found the speech: the comparison is not of two empty runs
        assert len(pd.read_parquet(ref / "variants" / "sad")) >= 12 * 3


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="the reaper reads /proc (Linux)")
def test_local_ray_dies_with_a_killed_driver(tmp_path, ray_tmp):
    catalog = make_archive(tmp_path / "arch", n=12, duration_s=65.0)
    tmp = ray_tmp("local")
    out = tmp_path / "run"
    driver = subprocess.Popen([*curate_run(catalog, out), "--runner", "ray"], env=env_for(tmp),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                              start_new_session=True)  # fmt: skip
    try:
        wait_for_done(out, 1, driver, 120)
        assert len(processes_of(tmp)) > 1, "Ray processes should run beside the driver"
    finally:
        driver.kill()
        driver.wait()
    left = wait_gone(tmp, 30)  # the reaper's own limit (SIGTERM, 2 s grace, SIGKILL; slower on a loaded machine)
    assert not left, [Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in left if Path(f"/proc/{p}").exists()]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="the reaper reads /proc (Linux)")
def test_reaper_kills_exactly_the_marked_processes():
    token = f"test-{secrets.token_hex(4)}"
    mine = subprocess.Popen(["sleep", "60"], env={**os.environ, reaper.TOKEN_VAR: token})
    other = subprocess.Popen(["sleep", "60"], env={**os.environ, reaper.TOKEN_VAR: token + "x"})
    try:
        assert reaper.marked(token) == [mine.pid]
        reaper.reap(token, grace_s=0.1, timeout_s=5)
        assert mine.wait(timeout=5) == -signal.SIGTERM and other.poll() is None
    finally:
        other.kill()
        other.wait()


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="the reaper reads /proc (Linux)")
def test_reaper_kills_a_child_of_the_family_whose_environment_lost_the_token():
    """Ray retitles its agents, which can overwrite the environment ``/proc`` shows: such a child of a token
    process (the raylet) is still the driver's, found through its parent while the parent lives."""
    token = f"test-{secrets.token_hex(4)}"
    code = "import subprocess, sys, time; subprocess.Popen(['sleep', '60'], env={}); time.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, reaper.TOKEN_VAR: token})
    stranger = subprocess.Popen(["sleep", "60"], env={})
    try:
        deadline = time.time() + 10
        while len(known := reaper.family(token)) < 2 and time.time() < deadline:
            time.sleep(0.05)
        (child,) = set(known) - {parent.pid}
        assert Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"sleep")
        assert reaper.marked(token) == [parent.pid]  # the child does not carry the token
        parent.kill()  # the parent dies first, as the raylet does: the child is an orphan now
        parent.wait()
        reaper.reap(token, grace_s=0.1, timeout_s=5, known=known)
        assert reaper.family(token, known) == {}  # the child is gone (or a zombie for its new parent to collect)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
