"""The console every command writes to: results on stdout (``out``), messages and progress on stderr
(``console``), one error style (:func:`fail`), one progress-bar look, and the logging set-up (only the CLI
configures logging).

Only curate's own lines reach the console: curate's loggers at the ``-v`` level (WARNING, ``-v`` INFO, ``-vv``
DEBUG), every other library at WARNING (INFO with ``-vv``). Python warnings from libraries (``pkg_resources``,
pyannote) and notes that libraries print through handlers of their own (Lightning's checkpoint upgrade) are
demoted to DEBUG records: they are logged, not shown. When stderr is not a terminal (a cluster or nohup log),
nothing is hard-wrapped (one record, one line, whatever its length), log records are plain
``LEVEL logger: message`` lines without a time column, and progress is printed as plain lines with rate and
ETA every ``CURATE_PROGRESS_EVERY_S`` seconds (default 30) and at the end instead of a live bar that would
leave nothing in the file until the run is over."""

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
    typer.Option(
        help="ray: parallel Ray workers (a local Ray unless --ray-address); local: in-process, in order",
        case_sensitive=False,
    ),
]
RayAddressOption = Annotated[
    str | None, typer.Option(help="Ray cluster address (ray start … / RAY_ADDRESS); default: start Ray locally")
]
# ... and the third on those that run a pool of Ray actors (run, ablate, stems).
WorkersOption = Annotated[
    int | None,
    typer.Option(
        help="Ray workers: one recording's models, ablation cell or stems shard at a time each "
        "(default: one per GPU, or per CPU)"
    ),
]


JsonOption = Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout (for scripts)")]


def print_json(obj: object) -> None:
    """A command's result as JSON on stdout: plain text, no markup or wrapping (NaN as null)."""
    import json
    import math

    def plain(v: object) -> object:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v.item() if hasattr(v, "item") and callable(v.item) else v

    typer.echo(json.dumps(plain(obj), indent=2, ensure_ascii=False, default=str))


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
    check_out_dir(path, what)
    return Path(path)


def check_out_dir(path: str | Path, what: str = "--out") -> None:
    """An output directory that is an existing file (or lies under one) is one clear line, not a traceback."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                where = "" if q == p else f" {q}"
                fail(f"{what} {path}:{where} is a file, not a directory; name a directory (it is created if missing)")
            return


class _OwnLinesFilter(logging.Filter):
    """curate's records from ``own`` up, every other library's from ``others`` up (propagated records skip the
    root logger's level, so a library that sets its own logger to INFO would otherwise print)."""

    def __init__(self, own: int, others: int) -> None:
        super().__init__()
        self.own, self.others = own, others

    def filter(self, record: logging.LogRecord) -> bool:
        mine = record.name == "curate" or record.name.startswith("curate.")
        return record.levelno >= (self.own if mine else self.others)


# Loggers of libraries whose notes are not for the user: their records become DEBUG where they are made, so the
# handlers those libraries attach themselves (Lightning prints INFO through its own) skip them too.
DEMOTED_LOGGERS = (
    "lightning.pytorch.utilities.migration.utils",  # "Lightning automatically upgraded your loaded checkpoint"
    "pytorch_lightning.utilities.migration.utils",
    "py.warnings",  # Python warnings of libraries (logging.captureWarnings); curate's own stay warnings
)


class _Demote(logging.Filter):
    """Turn a library's record into a DEBUG record (a warning raised from curate's own code keeps its level)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "py.warnings" and f"{os.sep}curate{os.sep}" in str(record.args or record.msg):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


class PlainHandler(logging.Handler):
    """Log records off a terminal: ``LEVEL logger: message`` on one line (a multi-line message or traceback is
    joined with `` | ``), through the console so they interleave with progress lines; no time column."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            lines = [line.rstrip() for line in text.splitlines() if line.strip()]
            console.print(" | ".join(lines), markup=False, highlight=False, soft_wrap=True)
        except Exception:
            self.handleError(record)


def setup_logging(verbose: int = 0) -> None:
    from rich.logging import RichHandler

    for c in (console, out):  # off a terminal Rich would wrap at 80 columns: a log wants whole lines
        c.soft_wrap = not c.is_terminal
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    if console.is_terminal:
        handler: logging.Handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
    else:
        handler = PlainHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_OwnLinesFilter(level, logging.INFO if verbose > 1 else logging.WARNING))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("curate").setLevel(level)
    logging.captureWarnings(True)
    for name in DEMOTED_LOGGERS:
        lg = logging.getLogger(name)
        if not any(isinstance(f, _Demote) for f in lg.filters):
            lg.addFilter(_Demote())
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}")  # `curate[storage]` is text, not a style
    raise typer.Exit(code)


def duration_text(seconds: float) -> str:
    """A short duration for a log line: ``45 s``, ``12 min``, ``3.4 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def rate_eta(completed: float, total: float | None, elapsed_s: float) -> str:
    """``, 2.5/s, ETA 40 s`` (the ETA while unfinished and the total is known); "" before anything is done or
    within the first second (no rate to speak of yet)."""
    if completed <= 0 or elapsed_s < 1:
        return ""
    rate = completed / elapsed_s
    text = f", {rate:.0f}/s" if rate >= 100 else f", {rate:.3g}/s" if rate >= 0.1 else f", {rate * 60:.3g}/min"
    if total and completed < total:
        text += f", ETA {duration_text((total - completed) / rate)}"
    return text


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
        return f"{t.description}: {done}{pct}{extra}  [{elapsed:.0f} s{rate_eta(t.completed, t.total, elapsed)}]"

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
    "JsonOption",
    "PlainProgress",
    "RayAddressOption",
    "Runner",
    "RunnerOption",
    "WorkersOption",
    "console",
    "fail",
    "out",
    "print_json",
    "progress_bar",
    "setup_logging",
]
