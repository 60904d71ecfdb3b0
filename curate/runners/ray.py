"""The Ray runner: the only module that imports ray.

Shards stream through Ray Data. A pipeline without model stages runs as plain tasks (decode-bound work
spreads over every CPU); a pipeline with models runs as an actor pool, so each worker loads its models
once and keeps them (one GPU per worker when the stages ask for one). Each worker writes its shard's part
files and completion marker itself; the driver only sees small summaries, never audio.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from curate.runners.driver import Plan
from curate.runners.shard import PipelineWorker, ShardState

log = logging.getLogger(__name__)


def _resources(plan: Plan) -> tuple[float, float]:
    stages = plan.pipeline.transforms()
    cpus = max([s.resources.cpus for s in stages] or [1.0])
    gpus = max([s.resources.gpus for s in stages] or [0.0])
    return cpus, gpus


class _ShardActor:
    """Actor-pool worker: Ray Data constructs one per worker; models load on the first shard."""

    def __init__(self, pipeline, out_dir: str, verify: bool):
        self.worker = PipelineWorker(pipeline, out_dir, verify)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return _run_shards(self.worker, batch)


def _shard_items(plan: Plan, pending: list[int]) -> list[dict[str, Any]]:
    """One Ray Data row per pending shard, carrying its own recordings: a worker never holds the catalog."""
    from ray import cloudpickle

    return [{"shard_id": i, "recordings": cloudpickle.dumps(plan.shard_recordings(i))} for i in pending]


def _run_shards(worker: PipelineWorker, batch: dict[str, Any]) -> dict[str, Any]:
    import json

    from ray import cloudpickle

    out = [
        json.dumps(worker(int(shard_id), cloudpickle.loads(recs)))
        for shard_id, recs in zip(batch["shard_id"], batch["recordings"], strict=True)
    ]
    return {"summary": out}


def quiet_worker() -> None:
    """Ray worker set-up: curate logs at the driver's level (``CURATE_LOG_LEVEL``); below INFO verbosity every
    INFO record is disabled, because libraries set their own loggers to INFO when imported (Lightning's
    checkpoint-upgrade notes, printed once per model load) and no handler level can stop that."""
    level = logging.getLevelName(os.environ.get("CURATE_LOG_LEVEL", "WARNING"))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("curate").setLevel(level)
    if level > logging.INFO:
        logging.disable(logging.INFO)


def init(address: str | None = None, num_cpus: int | None = None) -> None:
    # Only curate's own lines on the console: Ray's start-up notes (token auth, "progress bars disabled",
    # "dataset finished") and the workers' library chatter are kept out unless curate logs at DEBUG (-vv).
    # Ray reads these variables when it is imported, so they are set first.
    debug = logging.getLogger("curate").getEffectiveLevel() <= logging.DEBUG
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # the dedup note carries raw ANSI colour codes
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # no ANSI codes in worker-line prefixes (log files)
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "INFO" if debug else "ERROR")
    import ray

    if ray.is_initialized():
        return
    for name in ("ray.data", "ray._private.authentication"):
        logging.getLogger(name).setLevel(logging.INFO if debug else logging.ERROR)
    curate_level = logging.getLevelName(logging.getLogger("curate").getEffectiveLevel())
    # workers inherit a quiet warnings filter: library deprecation chatter would bury the progress bars
    env = {"PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::UserWarning", "CURATE_LOG_LEVEL": curate_level}
    kw: dict[str, Any] = {
        "ignore_reinit_error": True,
        "include_dashboard": False,
        "log_to_driver": True,
        "logging_level": logging.INFO if debug else logging.ERROR,
        "runtime_env": {"env_vars": env, "worker_process_setup_hook": quiet_worker},
    }
    if address:
        ray.init(address=address, **kw)
    else:
        from curate.runners.reaper import reaped_children

        with reaped_children():  # the local Ray goes when this driver goes, even on SIGKILL
            ray.init(num_cpus=num_cpus, **kw)


def _start_data(address: str | None) -> None:
    """Ray up, Ray Data quiet: curate draws its own progress bars."""
    import ray

    init(address)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def execute(
    plan: Plan,
    on_done: Callable[[dict[str, Any]], None] | None = None,
    verify: bool = True,
    address: str | None = None,
    num_workers: int | None = None,
) -> None:
    import json

    import ray

    pending = plan.pending()
    if not pending:
        return
    _start_data(address)
    cpus, gpus = _resources(plan)
    cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
    cluster_gpus = int(ray.cluster_resources().get("GPU", 0))
    items = _shard_items(plan, pending)
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    uses_model = any(s.uses_model for s in plan.pipeline.transforms())
    if uses_model:
        if gpus > 0 and cluster_gpus == 0:
            log.info("stages ask for a GPU but the cluster has none: running on CPU")
            gpus = 0.0
        n = num_workers or max(1, int(cluster_gpus // gpus) if gpus else int(cluster_cpus // max(cpus, 1)))
        n = min(n, len(items))
        ds = ds.map_batches(
            _ShardActor,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=n),
            num_cpus=cpus,
            num_gpus=gpus,
            fn_constructor_kwargs={"pipeline": plan.pipeline, "out_dir": str(plan.out_dir), "verify": verify},
        )
    else:
        worker = PipelineWorker(plan.pipeline, plan.out_dir, verify)
        ds = ds.map_batches(lambda batch: _run_shards(worker, batch), batch_size=1, num_cpus=1)
    for row in ds.iter_rows():
        if on_done:
            on_done(json.loads(row["summary"]))


# ---------------------------------------------------------------------------------------------------
# Generic fan-out for jobs that are not curation pipelines (Demucs stems, materialize, ablation cells).
# Items and results are small JSON-able dicts; workers do their own I/O.


def map_tasks(
    items: list[dict[str, Any]],
    fn: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    num_cpus: float = 1,
    num_gpus: float = 0,
    max_in_flight: int | None = None,
    address: str | None = None,
):
    """Run ``fn(item)`` as Ray tasks, at most ``max_in_flight`` at a time (bounded memory); yield results as
    they finish (unordered)."""
    import ray

    init(address)
    remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(fn)
    limit = max_in_flight or max(1, int(ray.cluster_resources().get("CPU", 1) // max(num_cpus, 1e-3)) * 2)
    pending = list(reversed(items))
    running: list[Any] = []
    while pending or running:
        while pending and len(running) < limit:
            running.append(remote.remote(pending.pop()))
        done, running = ray.wait(running, num_returns=1)
        yield ray.get(done[0])


class _FactoryActor:
    def __init__(self, factory: Callable[[], Callable[[dict[str, Any]], dict[str, Any]]]):
        self.fn = factory()

    def call(self, item: dict[str, Any]) -> dict[str, Any]:
        return self.fn(item)


def map_actors(
    items: list[dict[str, Any]],
    factory: Callable[[], Callable[[dict[str, Any]], dict[str, Any]]],
    *,
    num_workers: int | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
    address: str | None = None,
):
    """An actor pool: each worker calls ``factory()`` once (load a model there), then handles items one by one.
    One worker per GPU when ``num_gpus`` > 0 and GPUs exist, else one per ``num_cpus`` CPUs. Yields results
    unordered."""
    import ray
    from ray.util import ActorPool

    init(address)
    res = ray.cluster_resources()
    if num_gpus and res.get("GPU", 0) == 0:
        log.warning("workers ask for a GPU but the cluster has none: running on CPU")
        num_gpus = 0
    n = num_workers or max(
        1, int(res.get("GPU", 0) // num_gpus) if num_gpus else int(res.get("CPU", 1) // max(num_cpus, 1))
    )
    n = max(1, min(n, len(items)))
    actor_cls = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(_FactoryActor)
    pool = ActorPool([actor_cls.remote(factory) for _ in range(n)])
    yield from pool.map_unordered(lambda a, item: a.call.remote(item), items)


# ---------------------------------------------------------------------------------------------------
# Stage pools (opt-in): every model stage of a pipeline is its own actor pool with its own resources, so a
# GPU-heavy stage (Whisper) and a light one (diarization) scale separately. Shards flow from pool to pool
# carrying their recordings' segments so far; the last step derives and writes exactly what
# ``shard.process_shard`` writes (same part files, same marker), so results match the other runners.


def _map_states(batch: dict[str, Any], fn: Callable[[Any], None]) -> dict[str, Any]:
    """Apply ``fn`` to each pickled :class:`~curate.runners.shard.ShardState` of a Ray Data batch."""
    from ray import cloudpickle

    states = []
    for blob in batch["state"]:
        state = cloudpickle.loads(blob)
        fn(state)
        states.append(cloudpickle.dumps(state))
    return {"shard_id": batch["shard_id"], "state": states}


class _StagePoolActor:
    """One model stage: its model loads once per worker; shards pass through it one at a time."""

    def __init__(self, stage, pipeline, first_of_pass: bool, verify_first: bool):
        self.stage, self.pipeline = stage, pipeline
        self.first_of_pass, self.verify_first = first_of_pass, verify_first
        self.stage.bind(pipeline.settings)
        self.stage.setup()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return _map_states(batch, lambda st: st.apply(self.pipeline, self.stage, self.first_of_pass, self.verify_first))


def execute_stage_pools(
    plan: Plan, on_done: Callable[[dict[str, Any]], None] | None = None, verify: bool = True, address: str | None = None
) -> None:
    """Like :func:`execute`, but every model stage runs in its own actor pool sized by its own resources
    (one worker per GPU it asks for, else per its CPUs); model-free stages run as tasks."""
    import json
    import time

    import ray
    from ray import cloudpickle

    pending = plan.pending()
    if not pending:
        return
    _start_data(address)
    res = ray.cluster_resources()
    cluster_cpus, cluster_gpus = int(res.get("CPU", 1)), int(res.get("GPU", 0))
    t0 = time.time()
    states = [ShardState(i, plan.shard_recordings(i), out_dir=str(plan.out_dir)) for i in pending]
    items = [{"shard_id": s.shard_id, "state": cloudpickle.dumps(s)} for s in states]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    first = True
    for p in plan.pipeline.passes:
        for k, stage in enumerate(p.stages):
            kw = {"stage": stage, "pipeline": plan.pipeline, "first_of_pass": k == 0, "verify_first": verify and first}
            first = False
            if stage.uses_model:
                gpus = stage.resources.gpus if cluster_gpus else 0.0
                cpus = stage.resources.cpus
                n = max(1, int(cluster_gpus // gpus) if gpus else int(cluster_cpus // max(cpus, 1)))
                ds = ds.map_batches(
                    _StagePoolActor,
                    batch_size=1,
                    concurrency=min(n, len(items)),
                    num_cpus=cpus,
                    num_gpus=gpus,
                    fn_constructor_kwargs=kw,
                )
            else:

                def run(batch: dict[str, Any], kw=kw) -> dict[str, Any]:
                    return _map_states(
                        batch, lambda st: st.apply(kw["pipeline"], kw["stage"], kw["first_of_pass"], kw["verify_first"])
                    )

                ds = ds.map_batches(run, batch_size=1, num_cpus=1)
    out_dir, pipeline = str(plan.out_dir), plan.pipeline

    def write(batch: dict[str, Any]) -> dict[str, Any]:
        out = [json.dumps(cloudpickle.loads(b).finish(pipeline, out_dir, time.time() - t0)) for b in batch["state"]]
        return {"summary": out}

    for row in ds.map_batches(write, batch_size=1, num_cpus=1).iter_rows():
        if on_done:
            on_done(json.loads(row["summary"]))
