"""The console every command writes to: results on stdout (``out``), messages and progress on stderr
(``console``), one error style (:func:`fail`), one progress-bar look, and the logging set-up (only the CLI
configures logging)."""

from __future__ import annotations

import logging
import os
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True)
out = Console()
log = logging.getLogger("curate")


class Runner(StrEnum):
    """Where parallel work runs; one default for every command."""

    ray = "ray"
    local = "local"


# The same two options on every command that fans work out (run, demo, export, materialize, ablate, stems).
RunnerOption = Annotated[
    Runner,
    typer.Option(help="ray: parallel Ray workers (a local Ray unless --ray-address); local: in-process, in order"),
]
RayAddressOption = Annotated[
    str | None, typer.Option(help="Ray cluster address (ray start … / RAY_ADDRESS); default: start Ray locally")
]


def setup_logging(verbose: int = 0) -> None:
    from rich.logging import RichHandler

    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    logging.getLogger("curate").setLevel(min(level, logging.INFO))
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


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

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


__all__ = [
    "RayAddressOption",
    "Runner",
    "RunnerOption",
    "console",
    "fail",
    "out",
    "progress_bar",
    "setup_logging",
]
