"""The errors every layer shares. Module-specific errors (``CatalogError``, ``ExportError`` …) live beside
their module; these three cross every boundary, so they live here and nothing below them imports upward.

- :class:`ConfigError`: a configuration (pipeline, stage, trainer, condition) is invalid. Raised before any
  data moves.
- :class:`RecordingError`: a problem with one recording. Becomes a failure row; the run goes on.
- :class:`RunDirError`: a run directory does not hold what was asked of it (no such variant, not a run, a
  different run in the way).
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A pipeline or stage configuration is invalid. Raised before any data moves."""


class RecordingError(RuntimeError):
    """A problem with one recording (its audio, its metadata). Becomes a failure row; the run goes on."""


class RunDirError(RuntimeError):
    """The output directory holds something else, or a different run."""


class UnknownVariantError(RunDirError, FileNotFoundError):
    """A run directory has no variant of that name; the message lists the variants it has."""


__all__ = ["ConfigError", "RecordingError", "RunDirError", "UnknownVariantError"]
