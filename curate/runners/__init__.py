"""Runners execute a pipeline's shards: ``local`` (reference semantics) or ``ray`` (default, scales out)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from curate.config import Pipeline, check_models
from curate.errors import RunDirError
from curate.rundir import RUN_JSON
from curate.runners import remote
from curate.runners.driver import Plan, finalize, prepare
from curate.runners.probes import Backend, thread_backend

RUNNERS = ("ray", "local")


def run_pipeline(
    pipeline: Pipeline,
    catalog: str | Path,
    out_dir: str | Path,
    *,
    runner: str = "ray",
    ray_address: str | None = None,
    num_workers: int | None = None,
    stage_pools: bool = False,
    verify_audio: bool = True,
    on_plan: Callable[[Plan], None] | None = None,
    on_ingest: Callable[[int], None] | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) ``pipeline`` on ``catalog`` into ``out_dir``; returns the run.json content.

    ``stage_pools`` (Ray only): every model stage gets its own actor pool sized by its own resources (e.g.
    ASR on GPUs, diarization on CPUs) instead of one pool of workers that each hold every model."""
    if runner not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r}; choose one of {RUNNERS}")
    if stage_pools and runner != "ray":
        raise ValueError("--stage-pools needs the ray runner")
    if ray_address is None:  # a missing model fails now, not after ingest on every worker (on a cluster the
        check_models(pipeline)  # driver may not see the workers' model store, so the workers find out)
    t0 = time.perf_counter()
    probe_backend = None
    if runner == "ray":  # probe the catalog's files on the cluster, like everything else
        from curate.runners import ray as ray_runner

        probe_backend = ray_runner.probe_backend(ray_address)
    url = str(out_dir).rstrip("/") if remote.is_remote(out_dir) else None
    if url:  # a run directory on object storage: work in its staging copy (see curate.runners.remote)
        plan = _prepare_staged(pipeline, catalog, url, on_ingest, probe_backend)
    else:
        plan = prepare(pipeline, catalog, out_dir, on_ingest=on_ingest, probe_backend=probe_backend)
    t1 = time.perf_counter()
    if on_plan:
        on_plan(plan)
    if runner == "local":
        from curate.runners import local

        local.execute(plan, on_done, verify_audio)
    else:
        from curate.runners import ray as ray_runner

        if stage_pools:
            ray_runner.execute_stage_pools(plan, on_done, verify_audio, address=ray_address)
        else:
            ray_runner.execute(plan, on_done, verify_audio, address=ray_address, num_workers=num_workers)
    t2 = time.perf_counter()
    mode = f"{runner}:stage-pools" if runner == "ray" and stage_pools else runner
    if not url:
        return finalize(plan, mode, {"prepare": t1 - t0, "segment": t2 - t1})
    remote.pull_missing(url, plan.out_dir)  # the shards other nodes wrote
    before = remote.snapshot(plan.out_dir)
    run = finalize(plan, mode, {"prepare": t1 - t0, "segment": t2 - t1})
    remote.push_changed(plan.out_dir, url, before, last=(RUN_JSON,))
    return run


def _prepare_staged(
    pipeline: Pipeline,
    catalog: str | Path,
    url: str,
    on_ingest: Callable[[int], None] | None,
    probe_backend: Backend | None = None,
) -> Plan:
    """:func:`prepare` in the staging copy of ``url``; what it wrote goes to the bucket, the plan last. Ingest's
    probe checkpoints go up as they are stored, and when prepare is interrupted by an error or Ctrl-C what it
    finished (ingest, audio-pass batches) is uploaded too, so the rerun resumes from there as a local run would
    (after a SIGKILL during the filters, the rerun redoes ingest from its stored probes, then the filters)."""
    local = remote.open_run(url)
    uploaded = remote.snapshot(local)  # what the bucket holds of the staging copy

    def upload() -> None:
        nonlocal uploaded
        remote.push_changed(local, url, uploaded)
        uploaded = remote.snapshot(local)

    def probing(chunks: list) -> Iterator:  # the probe back end, uploading each chunk once it is stored
        for rows in (probe_backend or thread_backend)(chunks):
            yield rows  # the checkpoint stores this chunk before it asks for the next one
            upload()

    try:
        plan = prepare(pipeline, catalog, local, on_ingest=on_ingest, probe_backend=probing)
    except RunDirError as e:  # a refusal: name the URL the user gave, not its staging copy; upload nothing
        raise RunDirError(str(e).replace(str(local), url)) from None
    except BaseException:
        with contextlib.suppress(RunDirError):  # the interruption is the error to report, not a failed upload
            upload()
        raise
    upload()  # recordings, decisions …, the plan last
    plan.remote = url
    return plan


__all__ = ["run_pipeline", "RUNNERS", "RunDirError", "Plan"]
