"""The run directory, owned in one place: every path of the layout and the one shape of ``run.json``.

```
DIR/run.json                 what made the run (see :meth:`RunDir.write_run`)
DIR/recordings.parquet       every catalog row after probing
DIR/decisions.parquet        kept / dropped + reason per recording
DIR/failures.parquet         per-recording failures (the recording was lost at a stage)
DIR/warnings.parquet         per-recording notes (resampled, downmixed …; the recording went on)
DIR/variants/<variant>/part-*.parquet   segments
DIR/rejected/<stage>/part-*.parquet     segments a stage dropped, with reason
DIR/fingerprints/part-*.parquet         per-recording audio fingerprints (``stage: fingerprint``)
DIR/repeats.parquet          excerpts heard before in the catalog (``stage: audio_dedup``)
DIR/scores/<kind>/<recording_id>.parquet  frame scores of a recording (tags, speakers), for model-free derivations
DIR/stats.json, DIR/stats.md
DIR/_progress/               the plan and one completion marker per shard (resume state)
```

Every module that reads or writes a run directory goes through :class:`RunDir`, so the layout can change in
one file. Directories whose name starts with ``.`` under ``variants/`` are work in progress and never listed.
"""

from __future__ import annotations

import json
import platform
import socket
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from curate import __version__
from curate.errors import RunDirError, UnknownVariantError

RUN_JSON = "run.json"
PROGRESS_DIR = "_progress"  # plan, completion markers, per-shard failure parts: how a run resumes
VARIANTS = "variants"
REJECTED = "rejected"
SCORES = "scores"

# Packages whose versions decide what a run produced; recorded in every run.json.
VERSIONED_PACKAGES = (
    "torch",
    "faster-whisper",
    "openai-whisper",
    "whisperx",
    "pyannote.audio",
    "demucs",
    "ray",
    "pyarrow",
)


def package_versions() -> dict[str, str]:
    out = {"curate": __version__}
    for pkg in VERSIONED_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def host_info() -> dict[str, str]:
    return {"name": socket.gethostname(), "python": platform.python_version(), "platform": platform.platform()}


class RunDir:
    """A run directory at ``path`` (it need not exist yet)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- the layout ------------------------------------------------------------------------------------
    @property
    def run_json(self) -> Path:
        return self.path / RUN_JSON

    @property
    def recordings(self) -> Path:
        return self.path / "recordings.parquet"

    @property
    def decisions(self) -> Path:
        return self.path / "decisions.parquet"

    @property
    def failures(self) -> Path:
        return self.path / "failures.parquet"

    @property
    def warnings(self) -> Path:
        return self.path / "warnings.parquet"

    @property
    def stats_json(self) -> Path:
        return self.path / "stats.json"

    @property
    def variants_root(self) -> Path:
        return self.path / VARIANTS

    @property
    def fingerprints_dir(self) -> Path:
        """Fingerprint parts (``part-*.parquet``, a few hundred recordings each), written by ``fingerprint``."""
        return self.path / "fingerprints"

    @property
    def repeats(self) -> Path:
        """The repeated excerpts ``audio_dedup`` found (kind ``repeats``), cut by ``cut_repeats`` and select."""
        return self.path / "repeats.parquet"

    def rejected_dir(self, stage: str) -> Path:
        return self.path / REJECTED / stage

    def rejected_stages(self) -> list[str]:
        """The stages that wrote rejected segments, sorted (each a folder of ``part-*.parquet`` files)."""
        d = self.path / REJECTED
        return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")) if d.is_dir() else []

    def scores_dir(self, kind: str) -> Path:
        """The folder of one kind of per-recording frame scores (``tags``, ``speakers``)."""
        return self.path / SCORES / kind

    def scores_path(self, kind: str, recording_id: str) -> Path:
        """One recording's frame scores of ``kind``; the id is made file-name safe (``/`` → ``%2F``)."""
        from urllib.parse import quote

        return self.scores_dir(kind) / f"{quote(recording_id, safe='')}.parquet"

    def read_scores(self, kind: str, recording_id: str) -> Any:
        """One recording's :class:`~curate.schema.Frames` of ``kind``, or ``None`` when the run has none."""
        from curate import manifest
        from curate.schema import Frames

        p = self.scores_path(kind, recording_id)
        return Frames.from_arrow(kind, manifest.read_table(p, kind)) if p.is_file() else None

    def is_run(self) -> bool:
        """A finished (or resumable) run: it has a run.json."""
        return self.run_json.is_file()

    # -- variants --------------------------------------------------------------------------------------
    def variants(self) -> list[str]:
        """The variants on disk, sorted; in-progress (``.name``) directories are not listed."""
        d = self.variants_root
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))

    def variant_path(self, variant: str) -> Path:
        """Where ``variant``'s parts live, whether or not it exists yet (for writers)."""
        return self.variants_root / variant

    def variant_dir(self, variant: str) -> Path:
        """The directory of an existing variant; :class:`UnknownVariantError` lists the variants there are."""
        d = self.variant_path(variant)
        if not d.is_dir():
            have = self.variants()
            raise UnknownVariantError(f"{self.path}: no variant '{variant}' (variants: {', '.join(have) or 'none'})")
        return d

    def only_variant(self) -> str:
        """The run's single variant, or an error asking to choose one."""
        have = self.variants()
        if len(have) != 1:
            raise RunDirError(f"{self.path}: choose a variant with --variant (variants: {', '.join(have) or 'none'})")
        return have[0]

    # -- run.json ----------------------------------------------------------------------------------------
    def read_run(self) -> dict[str, Any]:
        if not self.run_json.is_file():
            raise RunDirError(f"{self.path}: no {RUN_JSON}; expected a finished `curate run` directory")
        return json.loads(self.run_json.read_text())

    def write_run(self, pipeline_name: str, variants: list[str], **fields: Any) -> dict[str, Any]:
        """Write ``run.json`` in its one shape: what made the run (``pipeline_name``), the variants it holds,
        the schema and package versions, the host and when it finished, plus the maker's own ``fields``
        (``pipeline``, ``counts``, ``timings_s``, ``source`` …)."""
        from curate import manifest
        from curate.schema import SCHEMA_VERSION

        run = {
            "pipeline_name": pipeline_name,
            "variants": list(variants),
            "schema_version": SCHEMA_VERSION,
            "versions": package_versions(),
            "host": host_info(),
            **fields,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        manifest.write_json(self.run_json, run)
        return run

    def add_derived(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Record a derivation (``entry['variants']`` made from ``entry['from']``) in run.json."""
        from curate import manifest

        run = self.read_run()
        run.setdefault("derived", []).append(entry)
        run["variants"] = list(dict.fromkeys([*run.get("variants", []), *entry["variants"]]))
        manifest.write_json(self.run_json, run)
        return run


__all__ = ["PROGRESS_DIR", "RUN_JSON", "RunDir", "host_info", "package_versions"]
