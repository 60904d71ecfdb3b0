"""Catalog ingest: CSV/TSV/JSONL/Parquet rows → probed :class:`~curate.schema.Recording` rows.

Bad rows never stop the run: a row missing a required field, a duplicate ``recording_id`` or audio that
cannot be probed becomes a failure row; metadata that is not UTF-8 is decoded as Windows-1252 with a
warning row. Only a catalog that cannot be read at all (or lacks a required column) is fatal.

The catalog and its audio paths may be fsspec URLs (``s3://bucket/catalog.csv``); a relative audio path is
resolved against the catalog's directory, local or URL. URLs stay strings (``Path`` would eat a slash).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import posixpath
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from curate import audio
from curate.catalog.content import fingerprint_or_none
from curate.catalog.read import REQUIRED, CatalogError, catalog_sha256, clean_column, iter_catalog, read_catalog
from curate.errors import one_line
from curate.schema import Failure, Recording

log = logging.getLogger(__name__)

KNOWN = ("title", "summary", "genre", "published", "language")
STAGE = "ingest"


@dataclass
class IngestResult:
    recordings: list[Recording]
    failures: list[Failure]  # errors (recording lost) and warnings (recording kept)


def normalise_published(value: object, fmt: str | None = None) -> str | None:
    """``published`` → ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SS`` (UTC when it carries a zone), or ValueError.

    Without ``fmt`` only ISO 8601 is read (``2020-01-05``, ``2020-01-05T20:00:00``, ``… 20:00``, ``…Z``,
    ``…+02:00``, ``20200105``) and date/datetime values of a Parquet catalog: ``05/01/2020`` could be 5 January
    or 1 May, so nothing is guessed. ``fmt`` (``settings.published_format``, a strptime format such as
    ``%d/%m/%Y``) reads every value with that format instead; ISO values are still accepted."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, datetime | date):
        ts = value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            ts = datetime.fromisoformat(text)
        except ValueError:
            if fmt is None:
                raise ValueError(
                    f"published={value!r} is not an ISO date (YYYY-MM-DD) or datetime; day/month order "
                    "is not guessed: set settings.published_format (e.g. '%d/%m/%Y') to read it"
                ) from None
            try:
                ts = datetime.strptime(text, fmt)
            except ValueError:
                raise ValueError(f"published={value!r} is neither ISO nor in published_format {fmt!r}") from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts.strftime("%Y-%m-%dT%H:%M:%S") if (ts.hour, ts.minute, ts.second) != (0, 0, 0) else ts.strftime("%Y-%m-%d")


def _published(value: object, fmt: str | None) -> str | None:
    """:func:`normalise_published`, remembering text values: a big catalog repeats its broadcast dates."""
    return _published_text(value, fmt) if isinstance(value, str) else normalise_published(value, fmt)


@functools.lru_cache(maxsize=1 << 16)
def _published_text(value: str, fmt: str | None) -> str | None:
    return normalise_published(value, fmt)


def resolve_audio_path(audio_path: str, catalog_path: str | Path) -> str | Path:
    """A catalog row's audio: a URL or absolute path as given, a relative path against the catalog's directory
    (``s3://b/c/catalog.csv`` + ``a/x.flac`` → ``s3://b/c/a/x.flac``)."""
    if audio.is_url(audio_path):
        return audio_path
    p = Path(audio_path)
    if p.is_absolute():
        return p
    if audio.is_url(catalog_path):
        scheme, rest = str(catalog_path).split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(posixpath.dirname(rest), audio_path))}"
    return Path(catalog_path).parent / p


def probe_distinct(
    items: list[tuple[str, str | Path]], threads: int
) -> dict[str, audio.AudioInfo | audio.AudioDecodeError]:
    """Probe each ``(key, path)`` once, ``threads`` at a time: key → header info, or the decode error to report
    on every row that uses the file."""

    def one(path: str | Path) -> audio.AudioInfo | audio.AudioDecodeError:
        try:
            info = audio.probe(path)
        except audio.AudioDecodeError as e:
            return e
        return dataclasses.replace(info, content=fingerprint_or_none(path))  # checked before the audio is used

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return dict(zip((k for k, _ in items), pool.map(one, [p for _, p in items]), strict=True))


def _row_recording(
    row: dict,
    path: str | Path,
    audio_path: str,
    info: audio.AudioInfo | audio.AudioDecodeError,
    min_duration_s: float,
    published_format: str | None,
) -> tuple[Recording | None, list[Failure]]:
    """One validated row + its file's probe → its Recording (None when lost) and its failure/warning rows.
    ``path``: the row's audio as resolved against the catalog (named in messages); ``audio_path``: the absolute
    path or URL stored in the Recording."""
    rid = str(row["recording_id"]).strip()
    if isinstance(info, audio.AudioDecodeError):
        return None, [Failure(rid, STAGE, "AudioDecodeError", one_line(info, 4000), str(path))]
    if info.duration_s < min_duration_s:
        msg = f"{path}: {info.duration_s:.2f} s of audio, shorter than {min_duration_s} s"
        return None, [Failure(rid, STAGE, "TooShort", msg, str(path))]
    notes = []
    if info.sample_rate and info.sample_rate != audio.SAMPLE_RATE:
        notes.append(("Resampled", f"{path}: {info.sample_rate} Hz audio is resampled to 16 kHz"))
    if info.header_duration_s:
        notes.append(
            (
                "HeaderMismatch",
                f"{path}: header says {info.header_duration_s:.2f} s but "
                f"the file holds {info.duration_s:.2f} s; the decoded duration is used",
            )
        )
    if info.num_channels > 1:
        notes.append(("Downmixed", f"{path}: {info.num_channels} channels are averaged to mono"))
    out = [Failure(rid, STAGE, kind, msg, str(path), "warning") for kind, msg in notes]
    try:
        published = _published(row.get("published"), published_format)
    except ValueError as e:
        published = None
        out.append(Failure(rid, STAGE, "BadPublished", f"{rid}: {e}; treated as unknown", str(path), "warning"))
    extra = {k: v for k, v in row.items() if k not in REQUIRED + KNOWN and not k.startswith("_") and v is not None}
    rec = Recording(
        recording_id=rid,
        audio_path=audio_path,
        duration_s=float(info.duration_s),
        sample_rate=int(info.sample_rate),
        num_channels=int(info.num_channels),
        codec=info.codec,
        title=row.get("title"),
        summary=row.get("summary"),
        genre=row.get("genre"),
        published=published,
        language=row.get("language"),
        metadata=json.dumps(extra, ensure_ascii=False, sort_keys=True, default=str) if extra else None,
        content=info.content,
    )
    return rec, out


@dataclass
class IngestChunk:
    """One chunk of catalog rows, ingested. ``checks``: rows lost or flagged before probing (missing field,
    duplicate id, non-UTF-8 metadata); ``probed``: failure and warning rows from the file's probe and the row's
    values. A whole catalog lists every chunk's checks before any probe row (the order of ``failures.parquet``)."""

    recordings: list[Recording]
    checks: list[Failure]
    probed: list[Failure]
    rows: int  # rows that were probed (the ingest progress counts these)


ProbeFn = Callable[[list[tuple[str, "str | Path"]]], dict[str, "audio.AudioInfo | audio.AudioDecodeError"]]


def _check_row(row: dict, where: str, seen: set[str]) -> tuple[str | None, Failure | None]:
    """A row's recording id when it may go on (with a warning row for bad encoding), else its failure row."""
    rid = row.get("recording_id")
    missing = [c for c in REQUIRED if not row.get(c)]
    if missing:
        return None, Failure(
            str(rid or f"<row {row['_row']}>"), STAGE, "MissingField", f"{where}: required field(s) {missing} empty"
        )
    rid = str(rid).strip()
    if rid in seen:
        msg = f"{where}: recording_id '{rid}' already used by an earlier row; row skipped"
        return None, Failure(rid, STAGE, "DuplicateRecordingId", msg)
    seen.add(rid)
    if row["_bad_encoding"]:
        msg = f"{where}: metadata is not UTF-8; decoded as Windows-1252"
        return rid, Failure(rid, STAGE, "NonUtf8Metadata", msg, severity="warning")
    return rid, None


def ingest_chunks(
    catalog_path: str | Path,
    *,
    min_duration_s: float = 1.0,
    published_format: str | None = None,
    threads: int = 8,
    probe: ProbeFn | None = None,
    chunk_rows: int = 100_000,
) -> Iterator[IngestChunk]:
    """Ingest the catalog ``chunk_rows`` rows at a time, so memory follows the chunk, not the catalog.

    Each distinct audio file is probed once (many rows may point at one file, excerpts of a long recording; a
    probe is a file open + header read, the slowest part of ingest): ``probe`` gets the ``(key, path)`` pairs of
    a chunk's files not probed before and returns key → header info or the decode error to report on every row
    that uses the file (default: ``threads`` threads here; the run driver checkpoints and may use Ray)."""
    probe = probe or (lambda items: probe_distinct(items, threads))
    catalog_path = catalog_path if audio.is_url(catalog_path) else Path(catalog_path).resolve()
    catalog_name = str(catalog_path).rstrip("/").rsplit("/", 1)[-1]
    seen: set[str] = set()
    resolved: dict[str, str | Path] = {}  # the row's audio_path as given → resolved against the catalog
    key_of: dict[str, str] = {}  # str(that resolved path) → the key of its file (absolute, symlinks resolved)
    probes: dict[str, audio.AudioInfo | audio.AudioDecodeError] = {}
    counts = [0, 0]  # recordings, failure/warning rows (for the log line)
    for df in iter_catalog(catalog_path, chunk_rows):
        checks: list[Failure] = []
        candidates: list[tuple[dict, str | Path, str]] = []
        new: dict[str, str | Path] = {}  # key → what to probe: the first spelling, so messages read as before
        names = list(df.columns)
        for values in zip(*(clean_column(df[c].tolist()) for c in names), strict=True):
            row = dict(zip(names, values, strict=True))
            rid, failure = _check_row(row, f"{catalog_name} row {row['_row']}", seen)
            if failure:
                checks.append(failure)
            if rid is None:
                continue
            given = str(row["audio_path"])
            if given not in resolved:  # rows sharing a file share one resolved path (and its Path object)
                resolved[given] = resolve_audio_path(given, catalog_path)
            path = resolved[given]
            key = key_of.get(str(path))
            if key is None:
                key = key_of[str(path)] = str(path if audio.is_url(path) else path.resolve())
                if key not in probes:
                    new.setdefault(key, path)
            candidates.append((row, path, key))
        if new:
            probes.update(probe(list(new.items())))
        recordings: list[Recording] = []
        probed: list[Failure] = []
        for row, path, key in candidates:
            rec, fails = _row_recording(row, path, key, probes[key], min_duration_s, published_format)
            probed.extend(fails)
            if rec is not None:
                recordings.append(rec)
        chunk = IngestChunk(recordings, checks, probed, len(candidates))
        counts = [counts[0] + len(recordings), counts[1] + len(checks) + len(probed)]
        df = candidates = recordings = None  # while the caller writes the chunk, hold nothing else of it
        yield chunk
    log.info(
        "ingest: %d recordings from %d distinct audio files, %d failure/warning rows", counts[0], len(probes), counts[1]
    )


def ingest(
    catalog_path: str | Path,
    *,
    min_duration_s: float = 1.0,
    published_format: str | None = None,
    threads: int = 8,
    on_progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Read the catalog, validate every row, probe every audio file (headers only, in parallel), all in memory
    (the run driver streams :func:`ingest_chunks` instead). ``published_format``: a strptime format for non-ISO
    ``published`` values (see :func:`normalise_published`)."""
    kw = {"min_duration_s": min_duration_s, "published_format": published_format, "threads": threads}
    recordings: list[Recording] = []
    checks: list[Failure] = []
    probed: list[Failure] = []
    for chunk in ingest_chunks(catalog_path, **kw):
        recordings += chunk.recordings
        checks += chunk.checks
        probed += chunk.probed
        if on_progress and chunk.rows:
            on_progress(chunk.rows)
    return IngestResult(recordings, checks + probed)


__all__ = [
    "CatalogError",
    "IngestChunk",
    "catalog_sha256",
    "IngestResult",
    "iter_catalog",
    "ingest_chunks",
    "read_catalog",
]
__all__ += ["resolve_audio_path", "ingest", "normalise_published", "probe_distinct"]
