"""Ingest's probes, checkpointed: each chunk of distinct files probed is stored in the run directory as it
completes (``_progress/probes/part-*.parquet``), so a run killed during ingest probes only the files it had not
probed yet when the same command runs again. Probing runs in driver threads (local runner) or as Ray tasks
(:func:`curate.runners.ray.probe_chunks`); either way the driver stores the results.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from curate import audio, manifest
from curate.catalog import probe_distinct
from curate.errors import is_transient
from curate.rundir import RunDir
from curate.schema import Probe

log = logging.getLogger(__name__)

CHUNK_FILES = 2000  # distinct files per probe chunk: one checkpoint file (and one Ray task) each

Item = tuple[str, "str | Path"]  # (key, path to probe)
Result = audio.AudioInfo | audio.AudioDecodeError
# a probing back end: chunks of items in, each chunk's Probe rows out as it completes (any order)
Backend = Callable[[list[list[Item]]], Iterator[list[Probe]]]


def to_probe(key: str, result: Result) -> Probe:
    if isinstance(result, audio.AudioDecodeError):
        return Probe(key, error_path=result.path, error=result.problem)
    r = result
    return Probe(key, r.duration_s, r.sample_rate, r.num_channels, r.codec, r.header_duration_s, content=r.content)


def from_probe(p: Probe | dict) -> Result:
    p = p if isinstance(p, Probe) else Probe(**p)
    if p.error is not None:
        return audio.AudioDecodeError(p.error_path, p.error)
    return audio.AudioInfo(p.duration_s, p.sample_rate, p.num_channels, p.codec, p.header_duration_s, p.content)


def probe_chunk(items: list[Item]) -> list[Probe]:
    """Probe one chunk of distinct files (threads), as checkpoint rows. Also what a Ray probe task runs."""
    got = probe_distinct(items, threads=8)
    return [to_probe(k, got[k]) for k, _ in items]


def thread_backend(chunks: list[list[Item]]) -> Iterator[list[Probe]]:
    for chunk in chunks:
        yield probe_chunk(chunk)


class ProbeCheckpoint:
    """The ``probe`` of :func:`curate.catalog.ingest_chunks`: answers from the run directory's stored probes, and
    probes the rest with ``backend`` in chunks of ``chunk_files``, storing each chunk as it arrives (and
    publishing it, for a run directory on object storage)."""

    def __init__(
        self,
        out_dir: RunDir | Path,
        backend: Backend | None = None,
        chunk_files: int | None = None,
        retry_failed: bool = False,
    ):
        self.run = RunDir.of(out_dir)
        self.dir = self.run.probes_dir
        self.backend = backend or thread_backend
        self.chunk_files = chunk_files or CHUNK_FILES
        self.stored = 0
        self.known: dict[str, Result] = {}
        again = 0
        for n, part in self._parts():
            self.stored = max(self.stored, n + 1)
            problem = self.run.parquet_problem(part)
            if problem:  # a half-written checkpoint: its files are probed again
                self.run.set_aside(part, problem)
                continue
            for r in manifest.read_table(part, "probes").to_pylist():
                result = from_probe(r)
                if isinstance(result, audio.AudioDecodeError) and (
                    retry_failed or is_transient("AudioDecodeError", result.problem)
                ):
                    again += 1  # the file was away (or unreadable) then: probe it again
                    self.known.pop(r["key"], None)
                    continue
                self.known[r["key"]] = result
        if self.known or again:
            log.info(
                "ingest: %d distinct files already probed, %d to probe again (%s)", len(self.known), again, self.dir
            )

    def _parts(self) -> list[tuple[int, Path]]:
        """The stored checkpoint parts, in the order they were written (a later one wins for a key)."""
        if not self.dir.is_dir():
            return []
        parts = [(int(p.stem.split("-")[-1]), p) for p in self.dir.iterdir() if p.suffix == ".parquet"]
        return sorted(parts)

    def __call__(self, items: list[Item]) -> dict[str, Result]:
        out = {k: self.known[k] for k, _ in items if k in self.known}
        todo = [(k, p) for k, p in items if k not in self.known]
        chunks = [todo[i : i + self.chunk_files] for i in range(0, len(todo), self.chunk_files)]
        for rows in self.backend(chunks) if chunks else ():
            manifest.write_records(self.run.probe_part(self.stored), rows, "probes")
            self.stored += 1
            self.run.checkpoint()
            out.update((r.key, from_probe(r)) for r in rows)
        return out


__all__ = ["CHUNK_FILES", "ProbeCheckpoint", "probe_chunk", "thread_backend", "to_probe", "from_probe"]
