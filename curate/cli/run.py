"""``curate run``, ``curate stats``, ``curate validate``: run a pipeline on a catalog, and look at the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.cli.console import (
    JsonOption,
    RayAddressOption,
    RunDirArgument,
    Runner,
    RunnerOption,
    fail,
    out,
    print_json,
    run_dir_here,
)
from curate.cli.progress import run_with_progress


def load_pipeline_or_exit(path: Path, overrides: list[str] | None):
    from curate.config import load_pipeline
    from curate.errors import ConfigError

    try:
        return load_pipeline(path, overrides)
    except ConfigError as e:
        fail(str(e))


def staged(out_dir: str) -> Path:
    """Where a run's files are on this machine: the directory, or the staging copy of a URL run directory."""
    from curate.rundir.mirror import is_remote, staging_dir

    return staging_dir(out_dir.rstrip("/")) if is_remote(out_dir) else Path(out_dir)


def out_console_stats(run_dir: Path, load_stats, format_table, shown: str | None = None) -> None:
    import pyarrow.compute as pc

    from curate import manifest

    out.print(format_table(load_stats(run_dir)), soft_wrap=True)
    from curate.rundir import RunDir

    run = RunDir(run_dir)
    failures = manifest.read_table(run.failures, "failures")
    n_err = pc.sum(pc.equal(failures.column("severity"), "error")).as_py() or 0
    n_warn = manifest.read_table(run.warnings, "warnings").num_rows if run.warnings.is_file() else 0
    out.print(
        f"run directory: {shown or run_dir}  ({n_err} failed recordings in failures.parquet, {n_warn} notes in warnings.parquet)"
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        pipeline: Annotated[Path, typer.Argument(help="pipeline YAML, e.g. pipelines/seq.yaml")],
        # str, not Path: Path("s3://b/c.csv") is "s3:/b/c.csv"
        catalog: Annotated[str, typer.Option(help="catalog CSV/TSV/JSONL/Parquet: a path or URL (s3://…)")],
        out: Annotated[
            str,
            typer.Option(help="run directory: a path, or s3://… / gs://… staged locally (rerun the command to resume)"),
        ],
        runner: RunnerOption = Runner.ray,
        ray_address: RayAddressOption = None,
        workers: Annotated[int | None, typer.Option(help="model workers (default: one per GPU, or per CPU)")] = None,
        stage_pools: Annotated[
            bool, typer.Option(help="Ray: one actor pool per model stage, each with its own resources")
        ] = False,
        set_: Annotated[list[str] | None, typer.Option("--set", help="override STAGE.PARAM=VALUE (repeatable)")] = None,
        retry_failed: Annotated[
            bool,
            typer.Option(
                help="resume and try every failed recording again (a rerun already retries files that were away)"
            ),
        ] = False,
    ) -> None:
        """Ingest, filter, de-duplicate and segment a catalog into a run directory."""
        from curate.audio import is_url
        from curate.cli.console import check_out_dir
        from curate.rundir import RunDir
        from curate.runners.runlog import run_log
        from curate.stats import format_table, load_stats

        if not is_url(out):
            check_out_dir(out)
        pipe = load_pipeline_or_exit(pipeline, set_)
        # RUN/logs/curate.log; a bucket run's in its staging copy, published with the run's files
        with run_log(RunDir(staged(out)).log_file):  # a CurateError (catalog, run directory …): the CLI's one line
            result = run_with_progress(
                pipe,
                catalog,
                out,
                runner=runner.value,
                ray_address=ray_address,
                num_workers=workers,
                stage_pools=stage_pools,
                retry_failed=retry_failed,
            )
        out_console_stats(staged(out), load_stats, format_table, out)
        counts = result["counts"]
        if counts["failed"] and not counts["processed"]:
            failures = RunDir(out).relative(RunDir(out).failures)
            fail(f"every recording failed ({counts['failed']}): see {out.rstrip('/')}/{failures}", code=1)

    @app.command()
    def stats(run_dir: RunDirArgument, json_: JsonOption = False) -> None:
        """Print the Table-14 columns per variant of a run."""
        from curate.stats import format_table, load_stats

        try:
            table = load_stats(run_dir_here(run_dir))
        except FileNotFoundError as e:
            fail(str(e))
        if json_:
            print_json(table)
        else:
            out.print(format_table(table), soft_wrap=True)

    @app.command()
    def validate(
        pipelines: Annotated[list[Path], typer.Argument(help="pipeline YAML files")],
        set_: Annotated[list[str] | None, typer.Option("--set", help="override STAGE.PARAM=VALUE")] = None,
        models: Annotated[bool, typer.Option(help="check that every model can be found here (store, bundled)")] = True,
    ) -> None:
        """Check pipelines without running them (stages exist, params valid, variants consistent, models found)."""
        from rich.markup import escape

        from curate.cli.console import console
        from curate.config import check_models, load_pipeline
        from curate.errors import ConfigError

        bad = 0
        for p in pipelines:  # every file is checked; all problems are reported, then the exit status says
            try:
                pipe = load_pipeline(p, set_)
                if models:
                    check_models(pipe)
            except ConfigError as e:
                message = str(e) if str(p) in str(e) else f"{p}: {e}"
                console.print(f"[bold red]error:[/] {escape(message)}")
                bad += 1
                continue
            out.print(f"[green]ok[/] {escape(str(p))}: {pipe.name} → variants {', '.join(pipe.variants()) or 'none'}")
        if bad:
            fail(f"{bad} of {len(pipelines)} pipeline files are not valid")


__all__ = ["load_pipeline_or_exit", "register"]
