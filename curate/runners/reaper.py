"""The reaper of a local Ray: when the driver that started it dies, even by SIGKILL, no Ray process stays.

Ray ties the processes the driver starts itself (GCS, raylet) to the driver's life (``PR_SET_PDEATHSIG``),
but processes the raylet starts (the dashboard agent, the runtime-env agent) were seen alive long after a
SIGKILLed driver, some for good. So while a local Ray starts, :func:`reaped_children` puts a run token in the
driver's environment (every Ray process inherits it: the raylet passes its environment on to workers and
agents) and starts a small process, in its own session, that waits for the driver's end (EOF on a pipe only
the driver holds), meanwhile remembering the token's processes and all their descendants (:func:`family`: an
agent's environment as ``/proc`` shows it can lose the token when Ray retitles it), and then kills them all.
Linux only (it reads ``/proc``); elsewhere it does nothing.

The reaper runs this file as an isolated script (``python -I reaper.py TOKEN``): it imports only the standard
library, so it works whatever ``sys.path`` the driver had.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TOKEN_VAR = "CURATE_RAY_RUN"
_token: str | None = None
_reaper: subprocess.Popen | None = None


def _start() -> str | None:
    """Start this driver's reaper (once per driver process); returns its token, or None where it cannot work."""
    global _token, _reaper
    if _token is None and Path("/proc/self/environ").exists():
        token = f"{os.getpid()}-{secrets.token_hex(8)}"
        env = {k: v for k, v in os.environ.items() if k != TOKEN_VAR}  # the reaper must not match itself
        _reaper = subprocess.Popen(
            [sys.executable, "-I", __file__, token],
            stdin=subprocess.PIPE,  # the write end stays in this process: EOF there means the driver is gone
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # a Ctrl-C or a kill of the driver's process group leaves it running
        )
        _token = token
    return _token


@contextmanager
def reaped_children() -> Iterator[None]:
    """Processes started inside this block (a local Ray: GCS, raylet, and through the raylet every worker and
    agent) carry the driver's token and are killed when the driver ends. The driver's own environment is
    restored after the block: processes it starts later are not the reaper's business."""
    token = _start()
    if token is None:
        yield
        return
    old = os.environ.get(TOKEN_VAR)
    os.environ[TOKEN_VAR] = token
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(TOKEN_VAR, None)
        else:
            os.environ[TOKEN_VAR] = old


def marked(token: str) -> list[int]:
    """Pids of this user's processes whose environment carries ``token``."""
    needle = f"{TOKEN_VAR}={token}".encode()
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if needle in (d / "environ").read_bytes().split(b"\0"):
                pids.append(int(d.name))
        except OSError:  # gone, or another user's
            continue
    return pids


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of ``pid``, or None when it is gone (or a zombie: dead, waiting
    for its parent to collect it; no signal reaches it)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else (int(fields[1]), int(fields[19]))


Family = dict[int, int]  # pid → its start time (a pid reused by another process is never taken for ours)


def family(token: str, known: Family | None = None) -> Family:
    """The token's processes and every descendant of one, plus those of ``known`` still running.

    The token alone misses some: Ray retitles its agents (``ray::DashboardAgent``), and rewriting the title can
    overwrite the process's environment block as ``/proc/PID/environ`` shows it (seen: an agent of a curate run
    without the token, alive after its driver and raylet were killed). So while the driver lives, the reaper
    remembers every descendant of a token process (a child of the raylet), whatever its environment says."""
    stats = {int(d.name): _stat(int(d.name)) for d in Path("/proc").iterdir() if d.name.isdigit()}
    stats = {pid: st for pid, st in stats.items() if st is not None}
    ours = {pid: start for pid, start in (known or {}).items() if pid in stats and stats[pid][1] == start}
    ours.update((pid, stats[pid][1]) for pid in marked(token) if pid in stats)
    grown = True
    while grown:
        children = {pid: st[1] for pid, st in stats.items() if st[0] in ours and pid not in ours}
        ours.update(children)
        grown = bool(children)
    ours.pop(os.getpid(), None)  # never the reaper itself
    return ours


def reap(token: str, grace_s: float = 2.0, timeout_s: float = 30.0, known: Family | None = None) -> None:
    """SIGTERM every process of the token's family (see :func:`family`), SIGKILL whatever is still there after
    ``grace_s``, until none is left."""
    deadline = time.monotonic() + timeout_s
    sig = signal.SIGTERM
    ours = dict(known or {})
    quiet = 0  # consecutive scans that found nothing: a process still starting (an agent the raylet was
    while quiet < 3 and time.monotonic() < deadline:  # spawning as it died) shows up a moment later
        ours = family(token, ours)
        if not ours:
            quiet += 1
            time.sleep(0.5)
            continue
        quiet = 0
        for pid in ours:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(grace_s if sig == signal.SIGTERM else 0.2)
        sig = signal.SIGKILL


def watch(token: str, every_s: float = 1.0) -> Family:
    """Wait for the driver's end (EOF on stdin, however it ended), scanning the token's family every
    ``every_s`` seconds meanwhile; returns the family as last seen."""
    import select

    fd = sys.stdin.fileno()
    known: Family = {}
    while True:
        ready, _, _ = select.select([fd], [], [], every_s)
        if ready and not os.read(fd, 4096):
            return known
        known = family(token, known)


def private_temp_dir() -> Path:
    """Where a local Ray keeps its session files: ``$RAY_TMPDIR`` when set, else ``$TMPDIR/curate-ray-<uid>``;
    mode 0700 either way (Ray's own default, ``/tmp/ray``, is shared and world-writable)."""
    path = Path(os.environ.get("RAY_TMPDIR") or Path(tempfile.gettempdir()) / f"curate-ray-{os.getuid()}")
    path.mkdir(mode=0o700, exist_ok=True)
    if path.stat().st_uid != os.getuid():
        raise RuntimeError(f"{path} belongs to another user; set TMPDIR to a folder of your own")
    path.chmod(0o700)
    return path


def main() -> None:
    token = sys.argv[1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reap(token, known=watch(token))


if __name__ == "__main__":
    main()
