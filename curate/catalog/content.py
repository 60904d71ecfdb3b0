"""The content fingerprint of an audio file: taken when ingest probes it, checked before segmentation and at
materialize, so audio replaced under a run (even by a file of the same length) becomes a failure row naming what
changed instead of segments of the wrong audio, or a recordings row (duration, rate) that no longer holds."""

from __future__ import annotations

import hashlib
from pathlib import Path

from curate import audio


class ContentChanged(audio.AudioDecodeError):
    """The file is not the one ingest probed (its size, modification time or content differ): its recording's
    row (duration, rate, channels) no longer describes it. Becomes a failure row; the run goes on."""


EDGE_BYTES = 1 << 16  # the head and the tail a content fingerprint hashes


def content_fingerprint(path: str | Path) -> str:
    """A cheap fingerprint of a file's content: ``size:mtime_ns:hash`` (sha256 of its first and last 64 KiB), or
    for an object-store URL ``size:etag-or-modified``. Taken at ingest and checked before segmentation and at
    materialize, so audio replaced under a run (even by a file of the same length) is noticed."""
    if audio.is_url(path):
        fs, p = audio.url_fs(str(path))
        info = fs.info(p)
        tag = info.get("ETag") or info.get("etag") or info.get("LastModified") or info.get("mtime") or ""
        return f"{info.get('size')}:{str(tag).strip(chr(34))}"
    path = Path(path)
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(EDGE_BYTES))
        if st.st_size > EDGE_BYTES:
            f.seek(max(EDGE_BYTES, st.st_size - EDGE_BYTES))
            h.update(f.read(EDGE_BYTES))
    return f"{st.st_size}:{st.st_mtime_ns}:{h.hexdigest()[:16]}"


def check_content(path: str | Path, expected: str | None) -> None:
    """Raise :class:`ContentChanged` when the file at ``path`` is not the one fingerprinted as ``expected``
    (``None``: a run ingested before fingerprints; nothing to check)."""
    if not expected:
        return
    path = audio.local_path(path)
    try:
        now = content_fingerprint(path)
    except FileNotFoundError:
        raise audio.AudioDecodeError(path, "file not found") from None
    except OSError as e:
        raise audio.AudioDecodeError(path, f"cannot open it ({audio.one_line(e)})") from None
    if now != expected:
        old, new = expected.split(":"), now.split(":")
        what = ["size", "modification time", "content"]
        changed = [w for w, a, b in zip(what, old, new, strict=False) if a != b] or ["fingerprint"]
        raise ContentChanged(
            path,
            f"changed since ingest ({' and '.join(changed)} differ: {expected} then, {now} now); its recordings "
            "row no longer describes it: run the catalog again into a new --out",
        )


def fingerprint_or_none(path: str | Path) -> str | None:
    """:func:`content_fingerprint`, or ``None`` when it cannot be taken (the file is then not checked later)."""
    try:
        return content_fingerprint(audio.local_path(path))
    except Exception:
        return None


__all__ = ["ContentChanged", "check_content", "content_fingerprint", "fingerprint_or_none"]
