"""The reference runner: shards one after another in this process. Tests use it; Ray must match it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from curate.runners.driver import Plan
from curate.runners.shard import PipelineWorker


def execute(plan: Plan, on_done: Callable[[dict[str, Any]], None] | None = None, verify: bool = True) -> None:
    pending = plan.pending()
    if not pending:
        return
    worker = PipelineWorker(plan.pipeline, plan.run, verify)
    try:
        for shard_id in pending:
            summary = worker(shard_id, plan.shard_recordings(shard_id))
            if on_done:
                on_done(summary)
    finally:
        worker.teardown()
