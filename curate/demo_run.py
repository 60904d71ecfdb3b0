"""`curate demo` / `make demo`: build the synthetic archive, run the demo pipeline, show what came out."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rich.console import Console

log = logging.getLogger(__name__)


def run_demo(out_dir: Path, pipeline_path: Path, *, runner: str = "ray", seed: int = 0,
             console: Console | None = None) -> Path:
    from curate.cli import run_with_progress
    from curate.config import load_pipeline
    from curate.demo import build_demo_archive
    from curate.stats import format_table, load_stats

    console = console or Console()
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    console.rule("[bold]1. demo archive")
    catalog = build_demo_archive(out_dir / "archive", seed=seed)
    console.print(f"catalog: {catalog}  (built in {time.perf_counter() - t0:.0f} s)")
    console.rule("[bold]2. curation run")
    pipe = load_pipeline(pipeline_path)
    run_dir = out_dir / "runs" / pipe.name
    run_with_progress(pipe, catalog, run_dir, runner=runner)
    console.print(format_table(load_stats(run_dir)))
    console.print(f"run directory: {run_dir}")
    console.rule(f"[bold]demo finished in {time.perf_counter() - t0:.0f} s")
    return run_dir
