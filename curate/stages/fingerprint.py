"""``stage: fingerprint``: a cheap CPU pass that stores each recording's Chromaprint fingerprint in the run
directory (``fingerprints/part-*.parquet``, ~31 bytes per second of audio) for ``audio_dedup``.

It runs among the ``filters:``, after the metadata stages (so dropped recordings are never decoded) and before
``audio_dedup``. Each recording is decoded once, straight to Chromaprint's 11025 Hz. A killed run resumes:
recordings whose fingerprint is stored are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from curate import manifest
from curate.registry import register
from curate.schema import Fingerprint as FingerprintRow
from curate.schema import Recording
from curate.stages.base import AudioPass

if TYPE_CHECKING:
    from curate.rundir import RunDir


def load_fingerprints(run: RunDir, recording_ids: set[str] | None = None) -> dict[str, np.ndarray]:
    """Stored fingerprints (uint32 arrays) by recording id; only ``recording_ids`` when given."""
    from curate.models.fingerprint import from_bytes

    out: dict[str, np.ndarray] = {}
    if not run.fingerprints_dir.is_dir():
        return out
    for batch in manifest.iter_batches(run.fingerprints_dir, "fingerprints", batch_size=1024):
        ids = batch.column("recording_id").to_pylist()
        blobs = batch.column("fingerprint")
        for i, rid in enumerate(ids):
            if recording_ids is None or rid in recording_ids:
                out[rid] = from_bytes(blobs[i].as_py())
    return out


@register("fingerprint")
@dataclass
class Fingerprint(AudioPass):
    block_s: float = 60.0  # decode this many seconds at a time (bounded memory for long programmes)

    def validate(self) -> None:
        from curate.errors import ConfigError

        if self.block_s <= 0:
            raise ConfigError(f"fingerprint.block_s must be > 0, got {self.block_s}")

    def done(self, run: RunDir) -> set[str]:
        d = run.fingerprints_dir
        if not d.is_dir():
            return set()
        return set(manifest.read_table(d, "fingerprints", columns=["recording_id"]).column("recording_id").to_pylist())

    def compute(self, rec: Recording) -> np.ndarray:
        from curate.models.fingerprint import fingerprint_file

        return fingerprint_file(rec.audio_path, self.block_s)

    def store(self, run: RunDir, results: list[tuple[str, np.ndarray]]) -> None:
        from curate.models.fingerprint import ALGORITHM, ITEM_S, to_bytes

        if not results:
            return
        d = run.fingerprints_dir
        n = len(list(d.glob("part-*.parquet"))) if d.is_dir() else 0
        rows = [FingerprintRow(rid, ITEM_S, int(fp.size), ALGORITHM, to_bytes(fp)) for rid, fp in results]
        manifest.write_records(d / f"part-{n:05d}.parquet", rows, "fingerprints")
