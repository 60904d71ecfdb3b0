"""Moved to :mod:`curate.rundir.mirror` (a URL run directory is a staged :class:`~curate.rundir.RunDir`); this
name stays so that code written against it keeps importing."""

from curate.rundir.mirror import (  # noqa: F401
    check_writable,
    edited,
    is_remote,
    local_copy,
    pull,
    pull_missing,
    push,
    push_changed,
    remote_files,
    snapshot,
    staging_dir,
)
