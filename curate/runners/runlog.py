"""The run's log file, ``RUN/logs/curate.log``: every line curate logs at INFO and above, from the driver and
from every worker on the driver's machine (each line carries its process id), whatever the console shows.

A run on object storage logs into its staging copy, which the run replaces with the bucket's files when it
starts (the bucket's log of earlier runs included): the handler follows the file (a replaced or removed file is
opened again, its folder made again), and the log is published with the run's other files."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
from collections.abc import Iterator
from pathlib import Path

LOG_FILE_ENV = "CURATE_LOG_FILE"  # RUN/logs/curate.log of the run in progress (set by the CLI)


class _RunLogHandler(logging.handlers.WatchedFileHandler):
    """Appends to the run's log file, opening it again when it was replaced or removed (and its folder with it)."""

    def _open(self):
        os.makedirs(os.path.dirname(self.baseFilename), exist_ok=True)
        return super()._open()


def add_run_log(path: str | None, console_level: int) -> logging.Handler | None:
    """Append curate's INFO lines (with their pid) to the run's log file ``path``, keeping the console handlers at
    ``console_level``. A no-op on a machine without that folder (another node of a cluster)."""
    if not path or not os.path.isdir(os.path.dirname(path)):
        return None
    handler = _RunLogHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    for h in logging.getLogger().handlers:
        h.setLevel(max(h.level, console_level))
    curate_log = logging.getLogger("curate")
    curate_log.addHandler(handler)
    curate_log.setLevel(min(curate_log.level or logging.WARNING, logging.INFO))
    return handler


@contextlib.contextmanager
def run_log(path: Path) -> Iterator[None]:
    """While the block runs, curate's lines go to ``path`` too (the driver's, and through the environment Ray
    workers inherit, the workers'). The console keeps the level it had. For the command line only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    curate_log = logging.getLogger("curate")
    console = curate_log.getEffectiveLevel()
    saved_env = {k: os.environ.get(k) for k in (LOG_FILE_ENV, "CURATE_LOG_LEVEL")}
    saved_levels = [(h, h.level) for h in logging.getLogger().handlers]
    old_level = curate_log.level
    os.environ.update({LOG_FILE_ENV: str(path), "CURATE_LOG_LEVEL": logging.getLevelName(console)})
    handler = add_run_log(str(path), console)
    try:
        yield
    finally:
        if handler is not None:
            curate_log.removeHandler(handler)
            handler.close()
        curate_log.setLevel(old_level)
        for h, level in saved_levels:
            h.setLevel(level)
        for k, v in saved_env.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


__all__ = ["LOG_FILE_ENV", "add_run_log", "run_log"]
