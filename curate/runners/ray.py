"""The Ray runner: the only module that imports ray.

Shards stream through Ray Data. A pipeline without model stages runs as plain tasks (decode-bound work
spreads over every CPU); a pipeline with models runs as an actor pool, so each worker loads its models
once and keeps them (one GPU per worker when the stages ask for one). Each worker writes its shard's part
files and completion marker itself; the driver only sees small summaries, never audio.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

from curate.rundir import RunDir
from curate.runners.driver import Plan
from curate.runners.guard import RecordingGuard
from curate.runners.runlog import LOG_FILE_ENV, add_run_log
from curate.runners.shard import PipelineWorker, ShardState, publish
from curate.runners.streaming import read_shard

log = logging.getLogger(__name__)


def _resources(pipeline) -> tuple[float, float]:
    stages = pipeline.transforms()
    cpus = max([s.resources.cpus for s in stages] or [1.0])
    gpus = max([s.resources.gpus for s in stages] or [0.0])
    return cpus, gpus


class _ShardActor:
    """One worker of a model pipeline: its models load on the first shard and stay for the next ones."""

    def __init__(self, pipeline, run: RunDir, verify: bool):
        self.worker = PipelineWorker(pipeline, run, verify)

    def ready(self) -> bool:
        return True

    def run(self, shard_id: int, recordings: list) -> dict[str, Any]:
        return self.worker(shard_id, recordings)


def _shard_items(plan: Plan, pending: list[int]) -> list[dict[str, Any]]:
    """One Ray Data row per pending shard: its id and its row range in the plan's recordings file, which the
    worker reads (the driver never holds the recordings, and a worker only its shard's)."""
    return [dict(zip(("start", "stop"), plan.shard_rows(i), strict=True), shard_id=i) for i in pending]


def _run_shards(worker: PipelineWorker, batch: dict[str, Any]) -> dict[str, Any]:
    worker.setup()  # its run is now this node's run directory (a staging copy for a URL run)
    out = [
        json.dumps(worker(int(shard_id), read_shard(worker.run, int(start), int(stop))))
        for shard_id, start, stop in zip(batch["shard_id"], batch["start"], batch["stop"], strict=True)
    ]
    return {"summary": out}


def quiet_worker() -> None:
    """Ray worker set-up: curate logs at the driver's level (``CURATE_LOG_LEVEL``); below INFO verbosity every
    INFO record is disabled, because libraries set their own loggers to INFO when imported (Lightning's
    checkpoint-upgrade notes, printed once per model load) and no handler level can stop that."""
    level = logging.getLevelName(os.environ.get("CURATE_LOG_LEVEL", "WARNING"))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("curate").setLevel(level)
    if add_run_log(os.environ.get(LOG_FILE_ENV), level):  # the run's log file gets this worker's lines too
        return
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
    curate_level = os.environ.get("CURATE_LOG_LEVEL", curate_level)  # the console's, when a run log is attached
    # workers inherit a quiet warnings filter: library deprecation chatter would bury the progress bars
    env = {"PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::UserWarning", "CURATE_LOG_LEVEL": curate_level}
    if os.environ.get(LOG_FILE_ENV):
        env[LOG_FILE_ENV] = os.environ[LOG_FILE_ENV]
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
        from ray._private import ray_constants

        from curate.runners.reaper import private_temp_dir, reaped_children

        # a Ray that curate starts is this user's alone: its services listen on loopback only (Ray's own switch
        # for a machine-local Ray; it maps an explicit 127.0.0.1 to the reachable address), and its session
        # files live in a folder only this user can enter
        cluster, ray_constants.ENABLE_RAY_CLUSTER = ray_constants.ENABLE_RAY_CLUSTER, False
        try:
            with reaped_children():  # the local Ray goes when this driver goes, even on SIGKILL
                ray.init(num_cpus=num_cpus, _temp_dir=str(private_temp_dir()), **kw)
        finally:
            ray_constants.ENABLE_RAY_CLUSTER = cluster


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
    import ray

    pending = plan.pending()
    if not pending:
        return
    _start_data(address)
    if any(s.uses_model for s in plan.pipeline.transforms()):
        n, cpus, gpus = _pool(plan.pipeline, num_workers)
        _run_actor_pool(plan, pending, min(n, len(pending)), cpus, gpus, verify, on_done)
        return
    items = _shard_items(plan, pending)
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    worker = PipelineWorker(plan.pipeline, plan.run, verify)
    ds = ds.map_batches(lambda batch: _run_shards(worker, batch), batch_size=1, num_cpus=1)
    for row in ds.iter_rows():
        if on_done:
            on_done(json.loads(row["summary"]))


def _pool(pipeline, num_workers: int | None = None) -> tuple[int, float, float]:
    """(workers, CPUs and GPUs per worker) of a model pipeline's actor pool on the running cluster: one worker
    per GPU its stages ask for (on CPU when the cluster has none), else per their CPUs."""
    import ray

    cpus, gpus = _resources(pipeline)
    res = ray.cluster_resources()
    cluster_cpus, cluster_gpus = int(res.get("CPU", 1)), int(res.get("GPU", 0))
    if gpus > 0 and cluster_gpus == 0:
        log.info("stages ask for a GPU but the cluster has none: running on CPU")
        gpus = 0.0
    n = num_workers or max(1, int(cluster_gpus // gpus) if gpus else int(cluster_cpus // max(cpus, 1)))
    return n, cpus, gpus


def worker_count(pipeline, address: str | None = None, num_workers: int | None = None) -> int:
    """How many shards run at once on the cluster (Ray started if needed): the actor pool of a model pipeline,
    else one task per CPU. The driver plans a small catalog so each gets a shard."""
    import ray

    if num_workers:
        return num_workers
    init(address)
    if any(s.uses_model for s in pipeline.transforms()):
        return _pool(pipeline)[0]
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


MAX_SHARD_ATTEMPTS = 4  # a shard whose worker dies this many times (a crash it causes itself) stops the run


def _run_actor_pool(
    plan: Plan,
    pending: list[int],
    n: int,
    cpus: float,
    gpus: float,
    verify: bool,
    on_done: Callable[[dict[str, Any]], None] | None,
) -> None:
    """Shards of a model pipeline on ``n`` actors, each fed its next shard when it finishes one (the driver holds
    at most ``n`` shards' recordings in flight).

    A worker that dies (its node lost, the process killed) is replaced by a new actor, and its shard goes back
    to the queue for whichever actor is free first; the replacement takes work once it has started, which may
    be never if the cluster has no room left (the other actors go on). A shard that loses its worker
    ``MAX_SHARD_ATTEMPTS`` times stops the run with an error naming it. The actors get their (small)
    arguments inline, so Ray prints no "constructor arguments in the object store" line on the console."""
    import ray
    from ray.exceptions import RayActorError

    actor_cls = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0)(_ShardActor)

    def start() -> Any:
        actor = actor_cls.remote(plan.pipeline, plan.run, verify)
        starting[actor.ready.remote()] = actor
        return actor

    actors: list[Any] = []
    starting: dict[Any, Any] = {}  # ready() ref → actor still starting
    running: dict[Any, tuple[Any, int]] = {}  # run() ref → (actor, shard id)
    idle: list[Any] = []
    queue = list(reversed(pending))  # next shard at the end
    attempts: dict[int, int] = {}
    guard = RecordingGuard(plan.pipeline.settings, plan.run)  # counts the deaths of workers per recording
    actors += [start() for _ in range(n)]
    try:
        while queue or running:
            while idle and queue:
                actor, shard_id = idle.pop(), queue.pop()
                running[actor.run.remote(shard_id, plan.shard_recordings(shard_id))] = (actor, shard_id)
            [ref], _ = ray.wait([*running, *starting], num_returns=1)
            if ref in starting:
                actor = starting.pop(ref)
                try:
                    ray.get(ref)
                    idle.append(actor)
                except RayActorError:  # died while starting (its node went): start another
                    actors.append(start())
                continue
            actor, shard_id = running.pop(ref)
            try:
                summary = ray.get(ref)
            except RayActorError as e:
                guard.worker_died(shard_id)
                attempts[shard_id] = attempts.get(shard_id, 0) + 1
                if attempts[shard_id] >= MAX_SHARD_ATTEMPTS:
                    raise RuntimeError(
                        f"shard {shard_id} lost its worker {attempts[shard_id]} times; last: {e}"
                    ) from None
                log.warning("shard %d: its worker died (%s); the shard is queued again", shard_id, type(e).__name__)
                ray.kill(actor)
                queue.append(shard_id)
                actors.append(start())
                continue
            idle.append(actor)
            if on_done:
                on_done(summary)
    finally:
        for actor in actors:
            ray.kill(actor)


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


def _probe_task(item: dict[str, Any]) -> dict[str, Any]:
    import dataclasses

    from curate.runners.probes import probe_chunk

    return {"probes": [dataclasses.asdict(p) for p in probe_chunk(item["items"])]}


def probe_backend(address: str | None = None):
    """Ingest's probing as Ray tasks (one per chunk of distinct files), for
    :class:`~curate.runners.probes.ProbeCheckpoint`: results come back as small rows, stored by the driver as
    each task finishes."""
    from curate.schema import Probe

    def backend(chunks):
        items = [{"items": [(k, str(p)) for k, p in chunk]} for chunk in chunks]
        for result in map_tasks(items, _probe_task, address=address):
            yield [Probe(**r) for r in result["probes"]]

    return backend


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

    def __init__(self, stage, pipeline, first_of_pass: bool, verify_first: bool, run: RunDir):
        self.stage, self.pipeline = stage, pipeline
        self.first_of_pass, self.verify_first = first_of_pass, verify_first
        run.on_node([stage])  # on another node, the staging copy of a remote run directory
        self.stage.bind(pipeline.settings)
        self.stage.setup()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return _map_states(batch, lambda st: st.apply(self.pipeline, self.stage, self.first_of_pass, self.verify_first))


def execute_stage_pools(
    plan: Plan, on_done: Callable[[dict[str, Any]], None] | None = None, verify: bool = True, address: str | None = None
) -> None:
    """Like :func:`execute`, but every model stage runs in its own actor pool sized by its own resources
    (one worker per GPU it asks for, else per its CPUs); model-free stages run as tasks."""
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
    items = _shard_items(plan, pending)
    run, pipeline = plan.run, plan.pipeline

    def load(batch: dict[str, Any]) -> dict[str, Any]:  # a shard's recordings, read on the worker
        local = run.on_node()
        states = [
            cloudpickle.dumps(ShardState(int(i), read_shard(local, int(a), int(b)), run=local))
            for i, a, b in zip(batch["shard_id"], batch["start"], batch["stop"], strict=True)
        ]
        return {"shard_id": batch["shard_id"], "state": states}

    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(load, batch_size=1, num_cpus=1)
    first = True
    for p in plan.pipeline.passes:
        for k, stage in enumerate(p.stages):
            kw = {"stage": stage, "pipeline": plan.pipeline, "first_of_pass": k == 0, "verify_first": verify and first}
            kw["run"] = plan.run
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

                def apply_stage(batch: dict[str, Any], kw=kw) -> dict[str, Any]:
                    kw["run"].on_node([kw["stage"]])
                    return _map_states(
                        batch, lambda st: st.apply(kw["pipeline"], kw["stage"], kw["first_of_pass"], kw["verify_first"])
                    )

                ds = ds.map_batches(apply_stage, batch_size=1, num_cpus=1)

    def write(batch: dict[str, Any]) -> dict[str, Any]:
        local = run.on_node()
        out = [
            json.dumps(publish(cloudpickle.loads(b).finish(pipeline, local, time.time() - t0), local))
            for b in batch["state"]
        ]
        return {"summary": out}

    for row in ds.map_batches(write, batch_size=1, num_cpus=1).iter_rows():
        if on_done:
            on_done(json.loads(row["summary"]))
