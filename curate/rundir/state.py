"""The bytes of a run directory's state, mixed into :class:`~curate.rundir.layout.RunDir`: a damaged state file
(empty, half-written, not what it should be) is named and set aside, never fatal; one run holds a directory at
a time (a lock). Paths come from the layout (``lock_file``, ``damaged_dir``, ``relative``)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curate.errors import RunDirError

log = logging.getLogger(__name__)


class RunState:
    """State-file reading and the run lock of a run directory (needs ``lock_file``, ``damaged_dir``,
    ``relative`` and ``name`` from the layout)."""

    def read_state(self, path: Path) -> dict[str, Any] | None:
        """A JSON state file of the run (plan, prepare, a marker): its content, or ``None`` when it is absent or
        damaged (empty, half-written, not a JSON object); a damaged one is set aside (:meth:`set_aside`)."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            obj = json.loads(raw.decode("utf-8"))
            if not isinstance(obj, dict):
                raise ValueError(f"a JSON {type(obj).__name__}, not an object")
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            self.set_aside(path, "empty (0 bytes)" if not raw else f"not readable JSON: {e}")
            return None
        return obj

    def parquet_problem(self, path: Path) -> str | None:
        """Why the Parquet part at ``path`` cannot be used (missing, empty, no readable footer), or ``None``."""
        import pyarrow.parquet as pq

        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return "missing"
        if size == 0:
            return "empty (0 bytes)"
        try:
            pq.read_metadata(path)
        except Exception as e:  # pyarrow raises ArrowInvalid/OSError for a truncated or foreign file
            return f"unreadable ({type(e).__name__}: {e})"
        return None

    def set_aside(self, path: Path, why: str) -> Path:
        """Move a damaged state file to ``_progress/damaged/`` (for a look) with a warning naming it and why; the
        work it stood for is redone."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = self.damaged_dir / f"{self.relative(path).replace('/', '__')}.{stamp}.{os.getpid()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        log.warning("%s is damaged (%s): set aside as %s; its work is redone", path, why, self.relative(target))
        return target

    @contextlib.contextmanager
    def lock(self) -> Iterator[Any]:
        """Hold the run directory for this process: a second run on it is refused in one line naming the holder
        (pid, host, since when). The lock is the kernel's (``flock``): it goes with the process, even on SIGKILL."""
        import fcntl

        path = self.lock_file
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            os.close(fd)
            try:
                who = json.loads(holder)
            except ValueError:
                who = {}
            raise RunDirError(
                f"{self.name} is in use by another curate run (pid {who.get('pid', '?')} on "
                f"{who.get('host', '?')}, since {who.get('since', '?')}); wait for it to end or choose another --out"
            ) from None
        try:
            me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
            yield self
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


__all__ = ["RunState"]
