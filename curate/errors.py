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


class ConfigError(ValueError):
    """A pipeline or stage configuration is invalid. Raised before any data moves."""


class RecordingError(RuntimeError):
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


class RunDirError(RuntimeError):
    """The output directory holds something else, or a different run."""


class UnknownVariantError(RunDirError, FileNotFoundError):
    """A run directory has no variant of that name; the message lists the variants it has."""


__all__ = ["ConfigError", "RecordingError", "StageTimeout", "RunDirError", "UnknownVariantError"]
