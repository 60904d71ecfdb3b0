"""The console every command writes to: results on stdout (``out``), messages and progress on stderr
(``console``), one error style (:func:`fail`), one progress-bar look, and the logging set-up (only the CLI
configures logging).

Only curate's own lines reach the console: curate's loggers at the ``-v`` level (WARNING, ``-v`` INFO, ``-vv``
DEBUG), every other library at WARNING (INFO with ``-vv``). When stderr is not a terminal (a cluster or nohup
log), progress is printed as plain lines every ``CURATE_PROGRESS_EVERY_S`` seconds (default 30) and at the end
instead of a live bar that would leave nothing in the file until the run is over."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
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


RunDirArgument = Annotated[
    str, typer.Argument(help="a curate run directory: a path, or a URL (s3://…, gs://…) read through a local copy")
]


def run_dir_here(run_dir: str) -> Path:
    """A run-directory argument as a local directory: a URL is pulled into its read-only staging copy."""
    from curate.errors import RunDirError
    from curate.rundir.mirror import local_copy

    try:
        return local_copy(run_dir)
    except RunDirError as e:
        fail(str(e))


@contextlib.contextmanager
def run_dir_edited(run_dir: str) -> Iterator[Path]:
    """A run-directory argument that a command adds files to (derive, quality): a URL is pulled into its staging
    copy and what the command writes is pushed back when it succeeds."""
    from curate.errors import RunDirError
    from curate.rundir.mirror import edited

    try:
        with edited(run_dir) as local:
            yield local
    except RunDirError as e:
        fail(str(e))


def local_out(path: str, what: str = "--out") -> Path:
    """An output directory: exports are written locally (upload them afterwards, e.g. ``aws s3 sync``)."""
    from curate.audio import is_url

    if is_url(path):
        fail(
            f"{what} {path}: writing here to object storage is not supported; write to a local directory and upload it"
        )
    return Path(path)


class _OwnLinesFilter(logging.Filter):
    """curate's records from ``own`` up, every other library's from ``others`` up (propagated records skip the
    root logger's level, so a library that sets its own logger to INFO would otherwise print)."""

    def __init__(self, own: int, others: int) -> None:
        super().__init__()
        self.own, self.others = own, others

    def filter(self, record: logging.LogRecord) -> bool:
        mine = record.name == "curate" or record.name.startswith("curate.")
        return record.levelno >= (self.own if mine else self.others)


def setup_logging(verbose: int = 0) -> None:
    from rich.logging import RichHandler

    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
    handler.addFilter(_OwnLinesFilter(level, logging.INFO if verbose > 1 else logging.WARNING))
    logging.basicConfig(level=logging.WARNING, format="%(message)s", datefmt="[%X]", handlers=[handler], force=True)
    logging.getLogger("curate").setLevel(level)
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}")  # `curate[storage]` is text, not a style
    raise typer.Exit(code)


@dataclass
class _PlainTask:
    description: str
    total: float | None = None
    completed: float = 0
    fields: dict = field(default_factory=dict)
    finished_s: float | None = None  # seconds into the block when it reached its total (its time stops there)


class PlainProgress:
    """What :func:`progress_bar` gives when stderr is not a terminal: the same calls (``add_task``, ``update``,
    ``advance``, ``tasks``), printed as one plain line per task when it starts, every ``every_s`` seconds (a
    timer thread, so a long quiet stretch still shows the run is alive) and when the block ends."""

    def __init__(self, every_s: float | None = None) -> None:
        import threading

        self.every_s = every_s if every_s is not None else float(os.environ.get("CURATE_PROGRESS_EVERY_S", "30"))
        self.tasks: list[_PlainTask] = []
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._tick, daemon=True, name="curate-progress")

    def __enter__(self) -> PlainProgress:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._timer.join()
        self.print()

    def _tick(self) -> None:
        while not self._stop.wait(self.every_s):
            self.print(unfinished=True)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields: object) -> int:
        self.tasks.append(_PlainTask(description, total, completed, dict(fields)))
        console.print(self.line(self.tasks[-1]), highlight=False, markup=False, soft_wrap=True)
        return len(self.tasks) - 1

    def update(self, task: int, *, total=None, completed=None, advance=None, **fields: object) -> None:
        t = self.tasks[task]
        if total is not None:
            t.total = total
        if completed is not None:
            t.completed = completed
        if advance is not None:
            t.completed += advance
        t.fields.update(fields)
        if t.finished_s is None and t.total and t.completed >= t.total:
            t.finished_s = time.monotonic() - self._t0

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def line(self, t: _PlainTask) -> str:
        done = f"{t.completed:g}/{t.total:g}" if t.total else f"{t.completed:g}"
        pct = f" ({100 * t.completed / t.total:.0f} %)" if t.total else ""
        extra = f"  {t.fields['extra']}" if t.fields.get("extra") else ""
        elapsed = t.finished_s if t.finished_s is not None else time.monotonic() - self._t0
        return f"{t.description}: {done}{pct}{extra}  [{elapsed:.0f} s]"

    def print(self, unfinished: bool = False) -> None:
        for t in list(self.tasks):
            if unfinished and t.total and t.completed >= t.total:
                continue
            console.print(self.line(t), highlight=False, markup=False, soft_wrap=True)


def progress_bar():
    if not console.is_terminal:
        return PlainProgress()
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
    "PlainProgress",
    "RayAddressOption",
    "Runner",
    "RunnerOption",
    "console",
    "fail",
    "out",
    "progress_bar",
    "setup_logging",
]
