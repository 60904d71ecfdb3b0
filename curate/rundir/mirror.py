"""A run directory on object storage (``--out s3://bucket/run``), staged through a local directory: a
:class:`StagedRunDir` is a :class:`~curate.rundir.layout.RunDir` (the same paths, in the staging copy) whose
``publish``/``checkpoint``/``pull_others``/``on_node`` move files to and from the bucket; on a local run
directory they are no-ops, so no caller threads a URL through its signatures (:func:`open_run` picks).

Every part of curate reads and writes a local run directory (atomic renames, Parquet datasets, markers), so a
URL run directory is *mirrored*: a local staging directory holds the working copy, and files move between the
two at a few well-defined points.

- The staging directory of a URL is ``$CURATE_STAGING/<sha256(url)[:16]>`` (default root
  ``~/.cache/curate/staging``): the same rule on every node, so a Ray worker elsewhere finds its own copy.
- :func:`pull` mirrors the remote into a *fresh* staging directory (stale local files are deleted first), so a
  local completion marker never claims work the remote does not have.
- :func:`push` uploads files in the order given: a shard's parts first and its completion marker last, so the
  remote never holds a marker without its parts; the plan and run.json are pushed last for the same reason.

http(s) URLs are read-only: they cannot hold a run directory. Credentials come from the environment (``AWS_*``
variables, ``~/.aws``, ``GOOGLE_APPLICATION_CREDENTIALS``), which the Ray workers inherit.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from curate import audio
from curate.errors import RunDirError
from curate.rundir.layout import DONE_DIR, PLAN, PROGRESS_DIR, RUN_JSON, SHARD_DIRS, RunDir

log = logging.getLogger(__name__)

STAGING_ENV = "CURATE_STAGING"
READ_ONLY_SCHEMES = ("http", "https")


def is_remote(path: str | Path) -> bool:
    """Is this run directory a URL (object storage) rather than a local path?"""
    return audio.is_url(path)


def staging_root() -> Path:
    return Path(os.environ.get(STAGING_ENV) or Path.home() / ".cache" / "curate" / "staging")


def staging_dir(url: str, purpose: str = "run") -> Path:
    """The local working copy of the run directory at ``url``. ``purpose`` ``read`` is a separate copy for
    readers (stats, export …), so reading a run never replaces the copy a run in progress is writing."""
    key = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return staging_root() / (key if purpose == "run" else f"{key}-{purpose}")


def _storage_errors() -> tuple[type[BaseException], ...]:
    """What a storage backend raises for a missing bucket, a refused request or missing credentials."""
    kinds: list[type[BaseException]] = [OSError, ValueError]
    with contextlib.suppress(ImportError):
        from botocore.exceptions import BotoCoreError, ClientError

        kinds += [BotoCoreError, ClientError]
    with contextlib.suppress(ImportError):
        from google.auth.exceptions import GoogleAuthError

        kinds.append(GoogleAuthError)
    return tuple(kinds)


@contextlib.contextmanager
def _storage(url: str, action: str) -> Iterator[None]:
    """One line naming the URL and what failed, instead of a backend traceback."""
    try:
        yield
    except RunDirError:
        raise
    except _storage_errors() as e:
        hint = "check the bucket name, the endpoint and the credentials in the environment (AWS_*, …)"
        raise RunDirError(f"{url}: cannot {action} ({type(e).__name__}: {e}); {hint}") from None


def _fs(url: str):
    try:
        return audio.url_fs(url.rstrip("/"))
    except RuntimeError as e:  # the backend is not installed: the message names the curate[storage] extra
        raise RunDirError(str(e)) from None


def check_writable(url: str) -> None:
    """Refuse a run directory on a read-only scheme (http, https) before any work starts."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in READ_ONLY_SCHEMES:
        raise RunDirError(
            f"--out {url}: {scheme}:// is read-only; a run directory needs a local path or writable object "
            "storage (s3://, gs://)"
        )


def _is_marker(rel: str) -> bool:
    """The plan and the completion markers: files that claim others exist, so they are copied after them."""
    return rel == PLAN or rel.startswith(DONE_DIR)


def remote_files(url: str) -> dict[str, int]:
    """Every object under ``url``: relative path → size (empty for a prefix that does not exist yet)."""
    fs, root = _fs(url)
    with _storage(url, "list the run directory"):
        found = fs.find(root, detail=True)
    return {name[len(root) :].lstrip("/"): info.get("size") or 0 for name, info in found.items()}


def _download(url: str, local: Path, rels: list[str]) -> None:
    """Download ``rels`` (many at a time), markers after every other file: a copy interrupted half-way never
    holds a marker (or a plan) whose files are missing. Each file lands under a temp name and is renamed, so
    two workers of one node fetching the same files never read a half-written one."""
    fs, root = _fs(url)
    with _storage(url, "download the run directory"):
        for group in ([r for r in rels if not _is_marker(r)], [r for r in rels if _is_marker(r)]):
            if not group:
                continue
            temps = []
            for rel in group:
                target = local / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                temps.append(target.with_name(f".{target.name}.{os.getpid()}.tmp"))
            # lists on both sides: fsspec copies them concurrently, without listing again
            fs.get([f"{root}/{r}" for r in group], [str(t) for t in temps])
            for rel, tmp in zip(group, temps, strict=True):
                os.replace(tmp, local / rel)


def pull(url: str, local: Path, files: dict[str, int] | None = None) -> Path:
    """Mirror the run directory at ``url`` (whose listing ``files`` may already be known) into ``local``, which
    is emptied first; returns ``local``."""
    files = remote_files(url) if files is None else files
    if local.exists():
        shutil.rmtree(local)
    local.mkdir(parents=True, exist_ok=True)  # (a run's log handler may have made it again meanwhile)
    _download(url, local, list(files))
    log.info("%s: %d files pulled into %s", url, len(files), local)
    return local


def pull_missing(url: str, local: Path, skip: tuple[str, ...] = ()) -> list[str]:
    """Download the files of ``url`` that ``local`` lacks (other nodes' shards); nothing local is removed.
    ``skip``: relative path prefixes not to fetch. Returns what was downloaded."""
    missing = [r for r in remote_files(url) if not r.startswith(skip) and not (local / r).exists()]
    _download(url, local, missing)
    return missing


def push(local: Path, url: str, paths: Iterable[str | Path], then: Iterable[str | Path] = ()) -> None:
    """Upload ``paths`` (absolute, or relative to ``local``; many at a time), then each of ``then`` in order once
    they are all there: a shard's marker, the plan, run.json."""

    def rel(p: str | Path) -> str:
        return Path(p).relative_to(local).as_posix() if Path(p).is_absolute() else Path(p).as_posix()

    fs, root = _fs(url)
    with _storage(url, "upload to the run directory"):
        body = [rel(p) for p in paths]
        if body:
            fs.put([str(local / r) for r in body], [f"{root}/{r}" for r in body])
        for r in map(rel, then):
            fs.put_file(str(local / r), f"{root}/{r}")


Snapshot = dict[str, tuple[int, int]]


def snapshot(local: Path) -> Snapshot:
    """Size and modification time of every file under ``local`` (temp files excluded)."""
    out: Snapshot = {}
    for p in local.rglob("*"):
        if p.is_file() and not (p.name.startswith(".") and p.name.endswith(".tmp")):
            st = p.stat()
            out[p.relative_to(local).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def push_changed(local: Path, url: str, before: Snapshot, last: tuple[str, ...] = ()) -> list[str]:
    """Upload the files written or rewritten under ``local`` since ``before``; markers, the plan and ``last``
    (e.g. ``run.json``) go after everything else. Returns what was pushed."""
    changed = sorted(r for r, st in snapshot(local).items() if before.get(r) != st)
    tail = [r for r in changed if _is_marker(r) and r not in last] + [r for r in last if r in changed]
    body = [r for r in changed if r not in tail]
    push(local, url, body, then=tail)
    return body + tail


def _pull_for_run(url: str) -> Path:
    """Pull the run directory at ``url`` for a new or resumed run; returns its staging directory.

    Refuses a prefix that holds other objects but no curate run or resume state (like a non-empty local
    ``--out``), before downloading any of them."""
    check_writable(url)
    files = remote_files(url)
    if files and RUN_JSON not in files and not any(r.startswith(f"{PROGRESS_DIR}/") for r in files):
        raise RunDirError(f"{url} is not empty and holds no curate run plan; choose a new --out")
    return pull(url, staging_dir(url), files)


class StagedRunDir(RunDir):
    """A run directory on object storage, worked on in its local staging copy ``staging_dir(url)``.

    :meth:`publish` uploads files (markers after the files they list), :meth:`checkpoint` uploads what changed
    since the last checkpoint, :meth:`pull_others` fetches the shards other nodes wrote, and :meth:`on_node`
    gives a worker its own node's copy (fetching what ``prepare`` wrote when this node has none yet)."""

    def __init__(self, url: str, path: str | Path | None = None) -> None:
        super().__init__(path if path is not None else staging_dir(url))
        self.url = url.rstrip("/")
        self._uploaded: Snapshot | None = None

    def __repr__(self) -> str:
        return f"StagedRunDir({self.url!r}, {str(self.path)!r})"

    @property
    def lock_file(self) -> Path:  # beside the staging copy, which a fetch replaces
        return self.path.with_name(f"{self.path.name}.lock")

    def fetch(self) -> None:
        """Pull the run from the bucket into a fresh staging copy (every file it holds counted as uploaded)."""
        _pull_for_run(self.url)
        self._uploaded = snapshot(self.path)

    def publish(self, paths: Iterable[str | Path], then: Iterable[str | Path] = ()) -> None:
        push(self.path, self.url, paths, then)

    def checkpoint(self) -> None:
        before = self._uploaded if self._uploaded is not None else {}
        push_changed(self.path, self.url, before, last=(RUN_JSON,))
        self._uploaded = snapshot(self.path)

    def pull_others(self) -> None:
        pull_missing(self.url, self.path)
        self._uploaded = snapshot(self.path)  # what was pulled is there already; what workers wrote was published

    def on_node(self, stages: Iterable[Any] = ()) -> RunDir:
        here = StagedRunDir(self.url)  # the staging rule of this node (its own CURATE_STAGING)
        if not here.plan_json.is_file():
            pull_missing(self.url, here.path, skip=SHARD_DIRS)
        return RunDir.on_node(here, stages)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._uploaded = None


def open_run(out: str | Path) -> RunDir:
    """The run directory a ``curate run --out`` works in: a local path as is; a URL as a :class:`StagedRunDir`
    (its :meth:`~StagedRunDir.fetch`, once the run holds its lock, pulls the bucket into the staging copy)."""
    if not is_remote(out):
        return RunDir(out)
    url = str(out).rstrip("/")
    check_writable(url)
    return StagedRunDir(url)


@contextlib.contextmanager
def staged_errors(run: RunDir) -> Iterator[None]:
    """While the body works in ``run``: a :class:`RunDirError` names the URL the user gave, not the staging copy
    (and nothing is uploaded); any other interruption (an error, Ctrl-C) first uploads what was finished, so the
    rerun resumes from there as a local run would. A local run directory: the body as is."""
    if run.url is None:
        yield
        return
    try:
        yield
    except RunDirError as e:
        raise RunDirError(str(e).replace(str(run.path), run.url)) from None
    except BaseException:
        with contextlib.suppress(RunDirError):  # the interruption is the error to report, not a failed upload
            run.checkpoint()
        raise


def _finished(url: str, purpose: str) -> Path:
    files = remote_files(url)
    if RUN_JSON not in files:
        raise RunDirError(f"{url}: no {RUN_JSON}; expected a finished `curate run` directory")
    return pull(url, staging_dir(url, purpose), files)


def local_copy(run_dir: str | Path) -> Path:
    """A finished run's directory to read: a local path as is; a URL pulled into its reader's staging copy
    (refreshed on every call; never pushed back)."""
    return _finished(str(run_dir).rstrip("/"), "read") if is_remote(run_dir) else Path(run_dir)


@contextlib.contextmanager
def edited(run_dir: str | Path) -> Iterator[Path]:
    """A finished run to add files to (``curate derive``, ``curate quality``): a local path as is; a URL pulled
    into its staging copy, and whatever the body writes there pushed back afterwards, run.json last."""
    if not is_remote(run_dir):
        yield Path(run_dir)
        return
    url = str(run_dir).rstrip("/")
    check_writable(url)
    local = _finished(url, "run")
    before = snapshot(local)
    yield local
    push_changed(local, url, before, last=(RUN_JSON,))


__all__ = [
    "StagedRunDir",
    "check_writable",
    "edited",
    "is_remote",
    "local_copy",
    "open_run",
    "pull",
    "pull_missing",
    "push",
    "push_changed",
    "snapshot",
    "staged_errors",
    "staging_dir",
]
