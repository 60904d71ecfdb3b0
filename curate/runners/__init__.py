"""Runners execute a pipeline's shards: ``local`` (reference semantics) or ``ray`` (default, scales out)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curate.config import Pipeline, check_models
from curate.errors import ConfigError, RunDirError
from curate.rundir import mirror
from curate.runners.driver import Plan, finalize, prepare
from curate.runners.resume import repair

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
    retry_failed: bool = False,
) -> dict[str, Any]:
    """Run (or resume) ``pipeline`` on ``catalog`` into ``out_dir``; returns the run.json content.

    A rerun repairs (:mod:`curate.runners.resume`): finished shards are checked and redone when a part is
    missing or damaged or a recording failed with an error that may have passed; ``retry_failed`` tries every
    failed recording again. One run holds ``out_dir`` at a time (a second is refused, naming the holder).

    ``stage_pools`` (Ray only): every model stage gets its own actor pool sized by its own resources (e.g.
    ASR on GPUs, diarization on CPUs) instead of one pool of workers that each hold every model."""
    if runner not in RUNNERS:
        raise ConfigError(f"unknown runner {runner!r}; choose one of {RUNNERS}")
    if stage_pools and runner != "ray":
        raise ConfigError("--stage-pools needs the ray runner")
    if ray_address is None:  # a missing model fails now, not after ingest on every worker (on a cluster the
        check_models(pipeline)  # driver may not see the workers' model store, so the workers find out)
    t0 = time.perf_counter()
    probe_backend = None
    worker_count = None  # the local runner: one worker
    if runner == "ray":  # probe the catalog's files on the cluster, like everything else
        from curate.runners import ray as ray_runner

        probe_backend = ray_runner.probe_backend(ray_address)
        worker_count = lambda: ray_runner.worker_count(pipeline, ray_address, num_workers)  # noqa: E731
    run = mirror.open_run(out_dir)  # a URL: its staging copy, which publishes to the bucket as the run goes
    with run.lock():
        run.fetch()
        with mirror.staged_errors(run):
            plan = prepare(pipeline, catalog, run, on_ingest, probe_backend, retry_failed, worker_count)
        run.checkpoint()  # recordings, decisions …, the plan last
        repair(plan, retry_failed)  # finished shards that cannot stand go back to pending
        t1 = time.perf_counter()
        if on_plan:
            on_plan(plan)
        if runner == "local":
            from curate.runners import local

            local.execute(plan, on_done, verify_audio)
        elif stage_pools:
            ray_runner.execute_stage_pools(plan, on_done, verify_audio, address=ray_address)
        else:
            ray_runner.execute(plan, on_done, verify_audio, address=ray_address, num_workers=num_workers)
        t2 = time.perf_counter()
        mode = f"{runner}:stage-pools" if runner == "ray" and stage_pools else runner
        run.pull_others()  # the shards other nodes wrote
        result = finalize(plan, mode, {"prepare": t1 - t0, "segment": t2 - t1})
        run.checkpoint()  # run.json last
    return result


__all__ = ["run_pipeline", "RUNNERS", "RunDirError", "Plan"]
