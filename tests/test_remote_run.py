"""A run directory on object storage (``--out s3://bucket/run``), against the local moto S3 server of the ``s3``
fixture: the same segments as a local run, resume from the bucket, readers of a finished run, refusals.

Skipped without ``moto[server]`` and ``s3fs`` (``pip install -e '.[storage,dev]'``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_ray_cluster import REPO, env_for, free_port, ray_tmp, start_node, wait_for_nodes  # noqa: F401 - ray_tmp: a fixture
from typer.testing import CliRunner

from curate import manifest
from curate.cli.app import app
from curate.config import load_pipeline
from curate.errors import RunDirError
from curate.rundir import RunDir, StagedRunDir
from curate.rundir import mirror as remote
from curate.runners import run_pipeline
from curate.testing import make_archive, make_catalog

BUCKET = "curate-test"
KEEP = ("segment_id", "recording_id", "audio_path", "start_s", "end_s", "variant")
SHARDS = ["settings.shard_size=2"]  # 5 recordings → 3 shards


@pytest.fixture(autouse=True)
def staging(tmp_path, monkeypatch):
    """Each test's own staging root (never ~/.cache)."""
    monkeypatch.setenv(remote.STAGING_ENV, str(tmp_path / "staging"))
    return tmp_path / "staging"


@pytest.fixture(scope="module")
def catalog(s3, tmp_path_factory):
    """5 recordings in the bucket and a catalog beside them (relative audio paths) → its s3:// URL."""
    root = tmp_path_factory.mktemp("archive")
    make_archive(root, n=5, duration_s=65.0)
    s3.put(str(root / "audio"), f"{BUCKET}/runs-archive/audio", recursive=True)
    s3.put(str(root / "catalog.csv"), f"{BUCKET}/runs-archive/catalog.csv")
    return f"s3://{BUCKET}/runs-archive/catalog.csv"


@pytest.fixture(scope="module")
def reference(catalog, tmp_path_factory):
    """The same run into a local directory: what the bucket's run must equal."""
    out = tmp_path_factory.mktemp("local") / "run"
    run_pipeline(load_pipeline("pipelines/seq.yaml", SHARDS), catalog, out, runner="local")
    return out


def segments(run_dir: Path) -> list[tuple]:
    rows = manifest.read_table(run_dir / "variants" / "seq", "segments").to_pylist()
    return sorted(tuple(r[k] for k in KEEP) for r in rows)


def local_files(run_dir: Path) -> set[str]:
    """Every file of a local run directory but its lock (a run in a bucket is locked beside its staging copy)."""
    lock = RunDir(run_dir).lock_file
    return {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file() and p != lock}


def test_a_run_in_a_bucket_holds_the_files_of_a_local_run(catalog, reference, s3, staging):
    url = f"s3://{BUCKET}/runs/same"
    run = run_pipeline(load_pipeline("pipelines/seq.yaml", SHARDS), catalog, url, runner="local")
    assert run["counts"]["processed"] == 5 and run["counts"]["shards"] == 3
    in_bucket = remote.remote_files(url)
    assert set(in_bucket) == local_files(reference)  # every file, nothing more (no temp files)
    for name in (
        "run.json",
        "stats.json",
        "failures.parquet",
        "_progress/plan.json",
        "variants/seq/part-00002.parquet",
    ):
        assert name in in_bucket, name
    assert sorted(n for n in in_bucket if n.startswith("_progress/done/")) == [
        f"_progress/done/part-{i:05d}.json" for i in range(3)
    ]
    # read back from the bucket itself, not from the staging copy
    copy = staging / "readback"
    s3.get(f"{BUCKET}/runs/same", str(copy), recursive=True)
    assert segments(copy) == segments(reference) and len(segments(copy)) == 10  # 2 full 30 s windows × 5
    assert {s[2] for s in segments(copy)} == {f"s3://{BUCKET}/runs-archive/audio/rec{i:03d}.flac" for i in range(5)}
    marker = json.loads((copy / "_progress/done/part-00001.json").read_text())
    assert marker["files"] == ["variants/seq/part-00001.parquet", "rejected/naive_segment/part-00001.parquet"]


class Killed(Exception):
    pass


def test_a_killed_run_resumes_from_the_bucket_not_from_stale_local_files(catalog, reference, s3):
    url = f"s3://{BUCKET}/runs/killed"
    pipe = load_pipeline("pipelines/seq.yaml", SHARDS)

    def die(summary):
        raise Killed  # the driver dies after its first shard is written and pushed

    with pytest.raises(Killed):
        run_pipeline(pipe, catalog, url, runner="local", on_done=die)
    files = remote.remote_files(url)
    assert "run.json" not in files and "_progress/plan.json" in files
    assert [n for n in files if n.startswith("_progress/done/")] == ["_progress/done/part-00000.json"]
    assert "variants/seq/part-00000.parquet" in files and "variants/seq/part-00001.parquet" not in files
    # a stale staging copy claims shard 2 is done (e.g. left by another run): the bucket says it is not
    stale = remote.staging_dir(url) / "_progress" / "done"
    (stale / "part-00002.json").write_text((stale / "part-00000.json").read_text())
    done: list[int] = []
    run_pipeline(pipe, catalog, url, runner="local", on_done=lambda s: done.append(s["shard_id"]))
    assert done == [1, 2]  # shard 0 is skipped (its marker is in the bucket), shard 2 is not
    assert set(remote.remote_files(url)) == local_files(reference)
    assert segments(remote.local_copy(url)) == segments(reference)


def test_a_prepare_interrupted_by_an_error_uploads_its_ingest_and_the_rerun_resumes(catalog, reference, monkeypatch):
    from curate.runners import driver

    url = f"s3://{BUCKET}/runs/interrupted"
    pipe = load_pipeline("pipelines/seq.yaml", SHARDS)
    real = driver.filter_run

    def interrupted(*args, **kw):
        raise KeyboardInterrupt  # Ctrl-C after ingest, during the filters

    monkeypatch.setattr(driver, "filter_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(pipe, catalog, url, runner="local")
    files = remote.remote_files(url)
    assert {"recordings.parquet", "_progress/prepare.json"} <= set(files) and "_progress/plan.json" not in files
    monkeypatch.setattr(driver, "filter_run", real)
    run_pipeline(pipe, catalog, url, runner="local")
    assert set(remote.remote_files(url)) == local_files(reference)
    assert segments(remote.local_copy(url)) == segments(reference)


def test_a_run_killed_during_ingest_resumes_from_the_probes_in_the_bucket(catalog, reference, monkeypatch):
    """kill -9 while ingest probes (one file per checkpoint here): the checkpoints stored before the kill are in
    the bucket, and the same command probes only the files after them."""
    from test_resume_phases import KILLER

    from curate import audio

    url = f"s3://{BUCKET}/runs/killed-in-ingest"
    script = "import curate.runners.probes as p\np.CHUNK_FILES = 1\n" + KILLER
    args = ["run", "pipelines/seq.yaml", "--catalog", catalog, "--out", url, "--runner", "local", "--set", SHARDS[0]]
    first = subprocess.run([sys.executable, "-c", script, "probes/part-00002.parquet", *args],
                           capture_output=True, text=True, cwd=REPO, timeout=180)  # fmt: skip
    assert first.returncode == -9, first.stderr[-2000:]
    files = remote.remote_files(url)
    assert {
        "_progress/prepare.json",
        "_progress/probes/part-00000.parquet",
        "_progress/probes/part-00001.parquet",
    } <= set(files)
    assert "_progress/plan.json" not in files
    probed: list[str] = []
    real = audio.probe
    monkeypatch.setattr(audio, "probe", lambda path: probed.append(str(path)) or real(path))
    run_pipeline(load_pipeline("pipelines/seq.yaml", SHARDS), catalog, url, runner="local")
    assert len(probed) == 3  # 5 files, 2 probed before the kill (the third was stored but not uploaded)
    assert segments(remote.local_copy(url)) == segments(reference)


def test_a_shard_lost_from_the_bucket_is_redone(catalog, reference, s3):
    url = f"s3://{BUCKET}/runs/lost"
    pipe = load_pipeline("pipelines/seq.yaml", SHARDS)
    run_pipeline(pipe, catalog, url, runner="local")
    s3.rm(f"{BUCKET}/runs/lost/_progress/done/part-00002.json")
    s3.rm(f"{BUCKET}/runs/lost/variants/seq/part-00002.parquet")
    done: list[int] = []
    run_pipeline(pipe, catalog, url, runner="local", on_done=lambda s: done.append(s["shard_id"]))
    assert done == [2]
    assert segments(remote.local_copy(url)) == segments(reference)
    other = load_pipeline("pipelines/seq.yaml", ["naive_segment.window_s=10"])
    with pytest.raises(RunDirError, match=rf"^s3://{BUCKET}/runs/lost holds a run of another catalog or pipeline"):
        run_pipeline(other, catalog, url, runner="local")


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_runs_into_a_bucket_and_reads_the_run_back(catalog, reference, tmp_path):
    url = f"s3://{BUCKET}/runs/cli"
    res = invoke("run", "pipelines/seq.yaml", "--catalog", catalog, "--out", url, "--runner", "local")
    assert res.exit_code == 0, res.output
    assert "run.json" in remote.remote_files(url)
    log = RunDir(remote.local_copy(url)).log_file.read_text()  # the run's log, published with its files
    assert f"{url}: 0 files pulled" in log and "INFO curate.catalog: ingest: 5 recordings" in log, log
    res = invoke("stats", url)
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if line.startswith("| seq "))
    assert row.split("|")[2].strip() == "10", res.output  # the seq variant's segments
    out = tmp_path / "kaldi"
    res = invoke("export", url, "--variant", "seq", "--format", "kaldi", "--out", out, "--runner", "local")
    assert res.exit_code == 0, res.output
    assert len((out / "train" / "segments").read_text().splitlines()) == 10
    assert f"s3://{BUCKET}/runs-archive/audio/rec000.flac" in (out / "train" / "wav.scp").read_text()
    assert json.loads((out / "export.json").read_text())["run_dir"] == url  # where the run is, not its copy
    res = invoke("quality", url, "--plot")  # a command that adds files to the run uploads them
    assert res.exit_code == 0, res.output
    assert "plots/lengths.png" in remote.remote_files(url)
    assert f"plot: {url}/plots/lengths.png" in res.output  # named by its URL, not by its staging copy
    res = invoke("export", url, "--variant", "seq", "--format", "kaldi", "--out", f"s3://{BUCKET}/exports/k")
    assert res.exit_code != 0 and "write to a local directory" in res.output


def test_cli_derive_adds_a_variant_to_a_run_in_the_bucket(catalog, tmp_path):
    url = f"s3://{BUCKET}/runs/derived"
    run_pipeline(load_pipeline("pipelines/seq.yaml"), catalog, url, runner="local")
    post = tmp_path / "halves.yaml"
    post.write_text(
        "name: halves\nderive:\n  seq-15:\n    from: seq\n    stages:\n      - {stage: split_long, max_s: 15}\n"
    )
    res = invoke("derive", url, "--pipeline", post)
    assert res.exit_code == 0, res.output
    copy = remote.local_copy(url)  # a fresh read of the bucket
    assert "seq-15" in json.loads((copy / "run.json").read_text())["variants"]
    assert manifest.read_table(copy / "variants" / "seq-15", "segments").num_rows == 20


def test_every_upload_puts_the_marker_plan_or_run_json_last(catalog, monkeypatch):
    pushes: list[tuple[list[str], list[str]]] = []  # (uploaded together, then one by one after them)
    real = remote.push

    def recording_push(local, url, paths, then=()):
        paths, then = list(paths), list(then)

        def rel(p):
            return Path(p).relative_to(local).as_posix() if Path(p).is_absolute() else Path(p).as_posix()

        pushes.append(([rel(p) for p in paths], [rel(p) for p in then]))
        real(local, url, paths, then)

    monkeypatch.setattr(remote, "push", recording_push)
    run_pipeline(load_pipeline("pipelines/seq.yaml", SHARDS), catalog, f"s3://{BUCKET}/runs/order", runner="local")
    probing, (prepare, *shards, final) = pushes[:1], pushes[1:]  # 5 files: one probe checkpoint
    assert probing == [(["_progress/prepare.json", "_progress/probes/part-00000.parquet"], [])]
    assert prepare[1] == ["_progress/plan.json"] and "recordings.parquet" in prepare[0]
    assert [then for _, then in shards] == [[f"_progress/done/part-{i:05d}.json"] for i in range(3)]
    assert [body for body, _ in shards][1] == [
        "variants/seq/part-00001.parquet",
        "rejected/naive_segment/part-00001.parquet",
    ]
    assert final[1] == ["run.json"] and "stats.json" in final[0]


def test_cli_readers_refuse_a_prefix_without_a_finished_run(s3):
    res = invoke("stats", f"s3://{BUCKET}/runs-archive")
    assert res.exit_code != 0
    assert f"s3://{BUCKET}/runs-archive: no run.json" in res.output


@pytest.mark.parametrize("url", ["https://example.org/run", "http://127.0.0.1:1/run"])
def test_a_read_only_url_is_refused_as_a_run_directory(tmp_path, url):
    with pytest.raises(RunDirError, match=r"http(s)?:// is read-only"):
        run_pipeline(load_pipeline("pipelines/seq.yaml"), tmp_path / "c.csv", url, runner="local")
    res = invoke("run", "pipelines/seq.yaml", "--catalog", tmp_path / "c.csv", "--out", url, "--runner", "local")
    assert res.exit_code != 0 and "read-only" in res.output


def test_a_missing_bucket_is_one_clear_line(catalog, s3):
    url = "s3://no-such-bucket/run"
    with pytest.raises(RunDirError, match=r"^s3://no-such-bucket/run: cannot list the run directory") as e:
        run_pipeline(load_pipeline("pipelines/seq.yaml"), catalog, url, runner="local")
    assert "\n" not in str(e.value)


def test_a_prefix_holding_other_objects_is_refused_before_any_download(catalog, staging):
    url = f"s3://{BUCKET}/runs-archive"  # audio and a catalog, no run
    with pytest.raises(RunDirError, match="is not empty and holds no curate run plan"):
        run_pipeline(load_pipeline("pipelines/seq.yaml"), catalog, url, runner="local")
    assert not remote.staging_dir(url).exists()


def test_a_missing_backend_names_the_extra(tmp_path, monkeypatch):
    import fsspec.core

    def no_backend(url, **kw):
        raise ImportError("Install gcsfs to access Google Storage")

    monkeypatch.setattr(fsspec.core, "url_to_fs", no_backend)
    catalog = make_catalog(tmp_path / "c.csv", [{"recording_id": "a", "audio_path": "a.flac"}])
    with pytest.raises(RunDirError, match=r"gs:// URLs needs fsspec.*curate\[storage\]"):
        run_pipeline(load_pipeline("pipelines/seq.yaml"), catalog, "gs://bucket/run", runner="local")


def test_cli_names_the_extra_of_a_missing_backend(tmp_path, monkeypatch):
    import fsspec.core

    def no_backend(url, **kw):
        raise ImportError("Install gcsfs to access Google Storage")

    monkeypatch.setattr(fsspec.core, "url_to_fs", no_backend)
    catalog = make_catalog(tmp_path / "c.csv", [{"recording_id": "a", "audio_path": "a.flac"}])
    res = invoke("run", "pipelines/seq.yaml", "--catalog", catalog, "--out", "gs://bucket/run", "--runner", "local")
    assert res.exit_code == 2 and "pip install 'curate[storage]'" in " ".join(res.output.split())


def test_staging_is_one_rule_per_url(staging, monkeypatch):
    a = remote.staging_dir("s3://b/run")
    assert a == remote.staging_dir("s3://b/run/") and a.parent == staging
    assert remote.staging_dir("s3://b/other") != a and remote.staging_dir("s3://b/run", "read") != a
    monkeypatch.delenv(remote.STAGING_ENV)
    assert remote.staging_dir("s3://b/run").parent == Path.home() / ".cache" / "curate" / "staging"


def test_a_worker_on_another_node_fetches_the_prepared_files_not_the_shards(catalog, staging, monkeypatch):
    url = f"s3://{BUCKET}/runs/node"
    run_pipeline(load_pipeline("pipelines/seq.yaml", SHARDS), catalog, url, runner="local")
    monkeypatch.setenv(remote.STAGING_ENV, str(staging.parent / "other-node"))
    local = StagedRunDir(url, "/the/driver/staging/copy").on_node().path
    assert local == remote.staging_dir(url) and local.is_relative_to(staging.parent / "other-node")
    assert (local / "_progress" / "plan.json").is_file() and (local / "recordings.parquet").is_file()
    assert not (local / "variants").exists() and not (local / "_progress" / "done").exists()


@pytest.mark.slow
def test_a_two_node_ray_cluster_writes_the_bucket_run_of_the_local_runner(
    catalog,
    reference,
    staging,
    monkeypatch,
    ray_tmp,  # noqa: F811 - the fixture of test_ray_cluster
):
    """Each node stages into its own directory (as on separate machines): shards written on the worker node
    reach the driver only through the bucket; credentials and the endpoint reach the workers from the
    environment their node was started with."""
    head_tmp, worker_tmp = ray_tmp("head"), ray_tmp("worker")
    port = free_port()
    address = f"127.0.0.2:{port}"
    monkeypatch.setenv(remote.STAGING_ENV, str(staging / "head-node"))
    start_node(head_tmp, "127.0.0.2", "--head", "--port", str(port), "--include-dashboard=false",
               "--ray-client-server-port", str(free_port()))  # fmt: skip
    wait_for_nodes(address, head_tmp, 1)
    monkeypatch.setenv(remote.STAGING_ENV, str(staging / "worker-node"))
    start_node(worker_tmp, "127.0.0.3", "--address", address)
    wait_for_nodes(address, head_tmp, 2)
    monkeypatch.setenv(remote.STAGING_ENV, str(staging / "head-node"))
    url = f"s3://{BUCKET}/runs/ray"
    cmd = [sys.executable, "-m", "curate.cli", "run", "pipelines/seq.yaml", "--catalog", catalog, "--out", url,
           "--set", "settings.shard_size=1", "--ray-address", address]  # fmt: skip
    res = subprocess.run(cmd, env=env_for(head_tmp), capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert segments(remote.local_copy(url)) == segments(reference)
    assert list((staging / "worker-node").rglob("_progress/done/*.json")), "no shard ran on the worker node"
    assert len([f for f in remote.remote_files(url) if f.startswith("_progress/done/")]) == 5


@pytest.mark.slow
def test_ray_stage_pools_write_the_bucket_run_of_the_local_runner(catalog, reference, ray_tmp):  # noqa: F811
    """A local Ray started by `curate run` (its workers get the endpoint and credentials from the driver's
    environment); the stage-pools mode's last step uploads each shard."""
    url = f"s3://{BUCKET}/runs/pools"
    cmd = [sys.executable, "-m", "curate.cli", "run", "pipelines/seq.yaml", "--catalog", catalog, "--out", url,
           "--set", "settings.shard_size=2", "--runner", "ray", "--stage-pools"]  # fmt: skip
    res = subprocess.run(cmd, env=env_for(ray_tmp("pools")), capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    log = RunDir(reference).relative(RunDir(reference).log_file)  # the command's log, which run_pipeline has not
    assert set(remote.remote_files(url)) == local_files(reference) | {log}
    assert segments(remote.local_copy(url)) == segments(reference)
