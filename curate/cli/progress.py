"""Progress bars for a pipeline run (probe, recordings, audio hours), for ``curate run`` and the demo."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from curate.cli.console import progress_bar


def run_with_progress(pipeline, catalog: Path, out_dir: Path, **kw: Any) -> dict[str, Any]:
    """Run a pipeline with rich progress bars for ingest, recordings, and audio hours."""
    from curate.runners import run_pipeline

    with progress_bar() as bar:
        ingest_task = bar.add_task("catalog rows", total=None, extra="")
        state: dict[str, Any] = {}

        def on_plan(plan) -> None:
            bar.update(
                ingest_task,
                total=bar.tasks[ingest_task].completed or 1,
                completed=bar.tasks[ingest_task].completed or 1,
            )
            n = sum(len(s) for s in plan.shards)
            pending = set(plan.pending())
            done = [i for i in range(len(plan.shards)) if i not in pending]
            hours = float(plan.durations_s.sum()) / 3600
            done_h = sum(float(plan.shard_duration_s(i).sum()) for i in done) / 3600
            state["hours"] = hours
            state["done_h"] = done_h
            state["task"] = bar.add_task(
                "recordings",
                total=n,
                completed=sum(len(plan.shards[i]) for i in done),
                extra=f"{done_h:.2f}/{hours:.2f} h audio",
            )

            state["done_n"] = bar.tasks[state["task"]].completed
            state["total"] = n
            state["run"] = plan.run
            poller.start()

        def show(in_flight: int = 0) -> None:  # finished shards + recordings done inside running ones
            done = min(state["total"], state["done_n"] + in_flight)
            bar.update(state["task"], completed=done, extra=f"{state['done_h']:.2f}/{state['hours']:.2f} h audio")

        def poll() -> None:  # workers note each recording they finish in their shard's running note
            while not stop.wait(1.0):
                show(state["run"].recordings_in_flight())

        def on_done(summary: dict[str, Any]) -> None:
            state["done_h"] += summary["audio_s"] / 3600
            state["done_n"] += len(summary["recordings"])
            show()

        stop = threading.Event()
        poller = threading.Thread(target=poll, name="curate-progress", daemon=True)
        try:
            return run_pipeline(
                pipeline,
                catalog,
                out_dir,
                on_plan=on_plan,
                on_ingest=lambda n: bar.advance(ingest_task, n),
                on_done=on_done,
                **kw,
            )
        finally:
            stop.set()
            if poller.is_alive():
                poller.join()


__all__ = ["run_with_progress"]
