"""The errors every layer shares. Module-specific errors (``CatalogError``, ``ExportError`` …) live beside
their module; these cross every boundary, so they live here and nothing below them imports upward.

- :class:`ConfigError`: a configuration (pipeline, stage, trainer, condition) is invalid. Raised before any
  data moves.
- :class:`RecordingError`: a problem with one recording. Becomes a failure row; the run goes on.
- :class:`StageTimeout`: a stage ran past its watchdog limit on one recording (a :class:`RecordingError`).
- :class:`RunDirError`: a run directory does not hold what was asked of it (no such variant, not a run, a
  different run in the way).
"""

from __future__ import annotations

import re

# What a failure that may not happen again looks like (a file or a mount away for a while, an I/O or network
# error, a decode that stalled on slow storage): a rerun of the same command tries these recordings again.
# Everything else (damaged audio, a stage's own error, the stage watchdog's kill) is remembered.
TRANSIENT_PROBLEMS = (
    "file not found",
    "object not found",
    "cannot open it",
    "reading it failed",
    "decoding took longer than",
    "no such file or directory",
    "input/output error",
    "stale file handle",
    "connection",
    "timed out",
    "temporary failure",
    "network",
)
TRANSIENT_TYPES = ("FileNotFoundError", "ConnectionError", "TimeoutError", "DecodeTimeout", "OSError", "IOError")


def is_transient(error_type: str, message: str) -> bool:
    """Is a failure row (its ``error_type`` and ``message``) one a rerun should try again? The one rule."""
    if error_type in ("StageTimeout", "WorkerCrash", "Warning"):
        return False
    text = message.lower()
    return error_type in TRANSIENT_TYPES or any(p in text for p in TRANSIENT_PROBLEMS)


_POINTER = re.compile(r"\b0x[0-9a-fA-F]{6,16}\b")


def one_line(e: BaseException | str, limit: int = 200) -> str:
    """A message as one short line that is the same in every run: whitespace collapsed (a backend's message may
    run to many lines), pointer addresses (``0x7f3a…``, which differ between identical runs) replaced by
    ``0x…``, cut at ``limit`` characters."""
    text = " ".join(_POINTER.sub("0x…", str(e)).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


class CurateError(Exception):
    """The base of every error curate raises on purpose: its message says what was expected, where, and how to
    fix it, so the command line prints it as one line (``error: …``) and exits 2, without a traceback. Anything
    else is a bug and keeps its traceback."""


class ConfigError(CurateError, ValueError):
    """A pipeline or stage configuration is invalid. Raised before any data moves."""


class RecordingError(CurateError, RuntimeError):
    """A problem with one recording (its audio, its metadata). Becomes a failure row; the run goes on."""


class StageTimeout(RecordingError):
    """A stage ran longer on one recording than the watchdog allows (``settings.watchdog_floor_s`` +
    ``settings.stage_watchdog_factor`` × its duration) and was stopped, or its worker process was killed.
    A failure row that names the stage; the run goes on."""

    def __init__(self, message: str = "", stage: str = "segment"):
        super().__init__(message)
        self.stage = stage

    def __reduce__(self):  # keep the stage when pickled (a Ray worker's error travels to the driver)
        return (type(self), (str(self), self.stage))


class RunDirError(CurateError, RuntimeError):
    """The output directory holds something else, or a different run."""


class UnknownVariantError(RunDirError, FileNotFoundError):
    """A run directory has no variant of that name; the message lists the variants it has."""


__all__ = [
    "is_transient",
    "one_line",
    "CurateError",
    "ConfigError",
    "RecordingError",
    "StageTimeout",
    "RunDirError",
    "UnknownVariantError",
]
