"""File names inside a run directory: a shard's stem and parts, and the one safe name of a free-text id."""

from __future__ import annotations

PART = "part-"
SAFE_NAME_BYTES = 120  # well under every file system's 255-byte name limit, with room for a suffix


def safe_name(key: str, suffix: str = "") -> str:
    """The one file name of a free-text id (a recording or segment id) for a per-recording file, ``suffix``
    appended. Ids are free text in manifests, never raw file names: the name is percent-quoted (no ``/``, no NUL
    or control character: it never leaves its folder), never starts with ``.`` (hidden, ``..``), and is bounded
    (an id whose quoted form is longer than ``SAFE_NAME_BYTES`` keeps a prefix plus ``%~`` and a hash of the
    whole id; quoting never makes ``%~``, so names stay unique). Plain ids (letters, digits, ``_.-~``) are
    their own names."""
    import hashlib
    from urllib.parse import quote

    q = quote(str(key), safe="") or "%"  # "%" alone is no quoted id: the empty id gets a name of its own
    if q.startswith("."):
        q = "%2E" + q[1:]
    if len(q) > SAFE_NAME_BYTES:  # quote() output is ASCII: characters are bytes
        q = (
            q[: SAFE_NAME_BYTES - 18]
            + "%~"
            + hashlib.sha256(str(key).encode("utf-8", "surrogatepass")).hexdigest()[:16]
        )
    return q + suffix


def shard_name(shard_id: int) -> str:
    """The stem of every file a shard writes (``part-00042``): its parts, its marker, its failure rows."""
    return f"{PART}{shard_id:05d}"


def part_name(n: int) -> str:
    """The file name of the ``n``-th part of a Parquet dataset (``part-00042.parquet``)."""
    return f"{shard_name(n)}.parquet"


__all__ = ["PART", "SAFE_NAME_BYTES", "part_name", "safe_name", "shard_name"]
