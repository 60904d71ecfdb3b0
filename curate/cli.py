"""The ``curate`` command line: thin over the library. Logging is configured here and only here."""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn a broadcast archive into clean single-speaker speech segments for pre-training.")
console = Console(stderr=True)
out = Console()
log = logging.getLogger("curate")

REPO = Path(__file__).resolve().parent.parent


def setup_logging(verbose: int = 0) -> None:
    from rich.logging import RichHandler

    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    logging.basicConfig(level=logging.WARNING, format="%(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)], force=True)
    logging.getLogger("curate").setLevel(min(level, logging.INFO))
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@app.callback()
def _main(verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="-v info, -vv debug")] = 0) -> None:
    setup_logging(verbose)


def fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def progress_bar():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[extra]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, transient=False)


def run_with_progress(pipeline, catalog: Path, out_dir: Path, **kw: Any) -> dict[str, Any]:
    """Run a pipeline with rich progress bars for ingest, recordings, and audio hours."""
    from curate.runners import run_pipeline

    with progress_bar() as bar:
        ingest_task = bar.add_task("probe", total=None, extra="")
        state: dict[str, Any] = {}

        def on_plan(plan) -> None:
            bar.update(ingest_task, total=bar.tasks[ingest_task].completed or 1, completed=bar.tasks[ingest_task].completed or 1)
            n = sum(len(s) for s in plan.shards)
            done_ids = {r for i in range(len(plan.shards)) if i not in set(plan.pending()) for r in plan.shards[i]}
            hours = sum(plan.recordings[r].duration_s for s in plan.shards for r in s) / 3600
            done_h = sum(plan.recordings[r].duration_s for r in done_ids) / 3600
            state["hours"] = hours
            state["done_h"] = done_h
            state["task"] = bar.add_task("recordings", total=n, completed=len(done_ids),
                                         extra=f"{done_h:.2f}/{hours:.2f} h audio")

        def on_done(summary: dict[str, Any]) -> None:
            state["done_h"] += summary["audio_s"] / 3600
            bar.update(state["task"], advance=len(summary["recordings"]),
                       extra=f"{state['done_h']:.2f}/{state['hours']:.2f} h audio")

        return run_pipeline(pipeline, catalog, out_dir, on_plan=on_plan,
                            on_ingest=lambda n: bar.advance(ingest_task, n), on_done=on_done, **kw)


def load_pipeline_or_exit(path: Path, overrides: list[str] | None):
    from curate.config import ConfigError, load_pipeline

    try:
        return load_pipeline(path, overrides)
    except ConfigError as e:
        fail(str(e))


@app.command()
def run(
    pipeline: Annotated[Path, typer.Argument(help="pipeline YAML, e.g. pipelines/seq.yaml")],
    catalog: Annotated[Path, typer.Option(help="catalog CSV/TSV/JSONL/Parquet")],
    out: Annotated[Path, typer.Option(help="run directory (rerun the same command to resume)")],
    runner: Annotated[str, typer.Option(help="ray (default) or local (reference semantics)")] = "ray",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address; default: start Ray locally")] = None,
    workers: Annotated[int | None, typer.Option(help="model workers (default: one per GPU, or per CPU)")] = None,
    stage_pools: Annotated[bool, typer.Option(help="Ray: one actor pool per model stage, each with its own "
                                              "resources")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override STAGE.PARAM=VALUE (repeatable)")] = None,
) -> None:
    """Ingest, filter, de-duplicate and segment a catalog into a run directory."""
    from curate.catalog import CatalogError
    from curate.runners import RunDirError
    from curate.stats import format_table, load_stats

    pipe = load_pipeline_or_exit(pipeline, set_)
    try:
        run_with_progress(pipe, catalog, out, runner=runner, ray_address=ray_address, num_workers=workers,
                          stage_pools=stage_pools)
    except (CatalogError, RunDirError, ValueError) as e:
        fail(str(e))
    out_console_stats(out, load_stats, format_table)


def out_console_stats(run_dir: Path, load_stats, format_table) -> None:
    import pyarrow.compute as pc

    from curate import manifest

    out.print(format_table(load_stats(run_dir)), soft_wrap=True)
    failures = manifest.read_table(run_dir / "failures.parquet", "failures")
    n_err = pc.sum(pc.equal(failures.column("severity"), "error")).as_py() or 0
    out.print(f"run directory: {run_dir}  ({n_err} failed recordings, {failures.num_rows - n_err} warnings "
              f"in failures.parquet)")


@app.command()
def stats(run_dir: Annotated[Path, typer.Argument(help="a curate run directory")]) -> None:
    """Print the Table-14 columns per variant of a run."""
    from curate.stats import format_table, load_stats

    try:
        out.print(format_table(load_stats(run_dir)), soft_wrap=True)
    except FileNotFoundError as e:
        fail(str(e))


@app.command()
def validate(
    pipelines: Annotated[list[Path], typer.Argument(help="pipeline YAML files")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override STAGE.PARAM=VALUE")] = None,
) -> None:
    """Check pipelines without running them (stages exist, params valid, variants consistent)."""
    for p in pipelines:
        pipe = load_pipeline_or_exit(p, set_)
        out.print(f"[green]ok[/] {p}: {pipe.name} → variants {', '.join(pipe.variants()) or 'none'}")


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="where the demo archive and runs go")] = Path("demo_out"),
    pipeline: Annotated[Path, typer.Option(help="pipeline to run on the demo archive")] = REPO / "pipelines" / "demo.yaml",
    runner: Annotated[str, typer.Option(help="ray or local")] = "ray",
    seed: int = 0,
) -> None:
    """Build the synthetic demo archive and run the demo pipeline on it; print the stats table."""
    from curate.demo_run import run_demo

    run_demo(out_dir, pipeline, runner=runner, seed=seed, console=out)


def _register_parts() -> None:
    """Each command group (models, derive, corrupt, export, pretrain, …) lives in curate/cli_parts/."""
    import curate.cli_parts as parts

    for mod in pkgutil.iter_modules(parts.__path__):
        importlib.import_module(f"{parts.__name__}.{mod.name}").register(app)


_register_parts()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted; rerun the same command to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
