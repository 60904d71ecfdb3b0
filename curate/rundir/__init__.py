"""The run directory: :mod:`~curate.rundir.layout` owns every path of a run and the shape of ``run.json``;
:mod:`~curate.rundir.mirror` makes a URL run directory a staged local copy (publish/pull, no-ops locally).
No other module spells a run-directory path (``tests/test_layout.py``)."""

from curate.rundir.layout import (
    PROGRESS_DIR,
    RUN_JSON,
    RunDir,
    host_info,
    package_versions,
    part_name,
    safe_name,
    shard_name,
)
from curate.rundir.mirror import StagedRunDir, open_run

__all__ = [
    "PROGRESS_DIR",
    "RUN_JSON",
    "RunDir",
    "StagedRunDir",
    "host_info",
    "open_run",
    "package_versions",
    "part_name",
    "safe_name",
    "shard_name",
]
