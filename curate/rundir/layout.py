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
DIR/logs/curate.log          the run's log lines
DIR/_progress/               resume state: prepare.json, probes/, ingest failure rows, plan.json,
                             plan_recordings.parquet, done/<unit>.json markers (listing their parts),
                             failures/<unit>.parquet, running/<shard>.json, poison/<id>.json, damaged/ (set aside)
```

Every module that reads or writes a run directory goes through :class:`RunDir`, so the layout can change in
one file (``tests/test_layout.py`` fails when a module outside ``curate/rundir/`` spells one of these names).
A run directory on object storage is a :class:`~curate.rundir.mirror.StagedRunDir`: the same paths in a local
staging copy, with :meth:`RunDir.publish` and friends doing the uploads (no-ops here). Directories whose name starts with ``.`` under ``variants/`` are work in progress and never listed.
"""

from __future__ import annotations

import json
import logging
import platform
import shlex
import socket
import sys
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from curate import __version__
from curate.errors import RunDirError, UnknownVariantError
from curate.rundir.names import PART, part_name, safe_name, shard_name
from curate.rundir.state import RunState

log = logging.getLogger(__name__)

RUN_JSON = "run.json"
PROGRESS_DIR = "_progress"  # plan, completion markers, per-shard failure parts: how a run resumes
VARIANTS = "variants"
REJECTED = "rejected"
SCORES = "scores"
PLAN = f"{PROGRESS_DIR}/plan.json"
DONE_DIR = f"{PROGRESS_DIR}/done/"
# what a shard writes (its own files; other nodes' shards are fetched before finalize, never at worker start)
SHARD_DIRS = (f"{VARIANTS}/", f"{REJECTED}/", f"{SCORES}/", DONE_DIR, f"{PROGRESS_DIR}/failures/")
PROBE_PARTS = f"{PROGRESS_DIR}/probes"
# what prepare() writes before plan.json: a directory holding only these is a prepare that was killed
PREPARE_FILES = frozenset(
    {
        "recordings.parquet",
        "decisions.parquet",
        PROGRESS_DIR,
        f"{PROGRESS_DIR}/ingest_failures.parquet",
        f"{PROGRESS_DIR}/ingest_probe_failures.parquet",
        f"{PROGRESS_DIR}/plan_recordings.parquet",
        PROBE_PARTS,
        f"{PROGRESS_DIR}/prepare.json",
        f"{PROGRESS_DIR}/audio_pass_failures.parquet",
        f"{PROGRESS_DIR}/damaged",
        "logs",
        "logs/curate.log",
        f"{PROGRESS_DIR}/lock",
    }
)


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


class RunDir(RunState):
    """A run directory at ``path`` (it need not exist yet)."""

    url: str | None = None  # a run directory on object storage: the URL this is the staging copy of

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @classmethod
    def of(cls, run: RunDir | str | Path) -> RunDir:
        """``run`` itself when it is a :class:`RunDir` already (a staged one keeps its URL), else a local one."""
        return run if isinstance(run, RunDir) else cls(run)

    @property
    def name(self) -> str:
        """What the user called this run directory (the URL of a staged one), for messages."""
        return self.url or str(self.path)

    # -- mirroring: no-ops for a local run directory (see curate.rundir.mirror.StagedRunDir) -----------
    def publish(self, paths: Iterable[str | Path], then: Iterable[str | Path] = ()) -> None:
        """Make ``paths`` (then each of ``then``, in order) durable where the run lives. Local: already so."""

    def fetch(self) -> None:
        """Bring the run's files here before work starts. Local: they are here."""

    def checkpoint(self) -> None:
        """Publish whatever changed since the last checkpoint, markers last. Local: nothing to do."""

    def pull_others(self) -> None:
        """Fetch what other nodes published (their shards) before the run is finalized. Local: nothing."""

    def on_node(self, stages: Iterable[Any] = ()) -> RunDir:
        """The copy of this run directory a worker on this machine writes (``stages`` bound to it): itself."""
        for stage in stages:
            stage.bind_run(self)
        return self

    def __getstate__(self) -> dict[str, Any]:  # workers get the path (and URL), never a driver's lock or cache
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

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
    def stats_md(self) -> Path:
        return self.path / "stats.md"

    @property
    def quality_json(self) -> Path:
        """``curate quality``'s measures of the run against a reference timeline."""
        return self.path / "quality.json"

    @property
    def catalog_csv(self) -> Path:
        """A catalog of the run's recordings, for a run directory made from a corpus (``curate run`` reads it)."""
        return self.path / "catalog.csv"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def log_file(self) -> Path:
        """Every line of the driver and of the workers (``logs/curate.log``)."""
        return self.logs_dir / "curate.log"

    # -- resume state (_progress/) -------------------------------------------------------------------
    @property
    def progress(self) -> Path:
        return self.path / PROGRESS_DIR

    @property
    def plan_json(self) -> Path:
        """The shard plan and the fingerprint of the command that made it (a rerun resumes from it)."""
        return self.path / PLAN

    @property
    def prepare_json(self) -> Path:
        """The fingerprint of the command whose ingest is under way (a run killed before its plan resumes)."""
        return self.progress / "prepare.json"

    @property
    def plan_recordings(self) -> Path:
        """The kept recordings in shard order: a shard's recordings are one row range."""
        return self.progress / "plan_recordings.parquet"

    @property
    def probes_dir(self) -> Path:
        """Ingest's probe checkpoints (``part-*.parquet``), a chunk of distinct files each."""
        return self.path / PROBE_PARTS

    def probe_part(self, n: int) -> Path:
        return self.probes_dir / part_name(n)

    @property
    def ingest_checks(self) -> Path:
        """Ingest's failure rows from the catalog checks (before probing)."""
        return self.progress / "ingest_failures.parquet"

    @property
    def ingest_probed(self) -> Path:
        """Ingest's failure rows from probing the files."""
        return self.progress / "ingest_probe_failures.parquet"

    @property
    def audio_pass_failures(self) -> Path:
        return self.progress / "audio_pass_failures.parquet"

    @property
    def markers_dir(self) -> Path:
        return self.path / DONE_DIR

    def marker(self, unit: str | int) -> Path:
        """The completion marker of a unit of work (a shard id, or a name such as ``unit-00003``)."""
        return self.markers_dir / f"{shard_name(unit) if isinstance(unit, int) else unit}.json"

    def marker_ids(self) -> list[int]:
        """The shards that have a completion marker."""
        if not self.markers_dir.is_dir():
            return []
        return sorted(int(p.stem.removeprefix(PART)) for p in self.markers_dir.glob(f"{PART}*.json"))

    @property
    def unit_failures_dir(self) -> Path:
        """The failure rows of every unit of work, one part per unit (merged into failures.parquet at the end)."""
        return self.progress / "failures"

    def unit_failures(self, unit: str | int) -> Path:
        return self.unit_failures_dir / f"{shard_name(unit) if isinstance(unit, int) else unit}.parquet"

    def progress_parts(self, kind: str) -> Path:
        """The folder of a maker's own resume parts of ``kind`` (``recordings``, ``index`` …)."""
        return self.progress / kind

    def progress_part(self, kind: str, n: int) -> Path:
        """The ``n``-th resume part of ``kind``."""
        return self.progress_parts(kind) / part_name(n)

    def progress_file(self, name: str) -> Path:
        """A maker's own small resume file (``render.json``)."""
        return self.progress / name

    def running(self, shard_id: int) -> Path:
        """The recording a worker is processing in a shard right now (and how many of the shard's recordings are
        done): if the worker dies, the runner knows which; the driver's progress counts recordings with it."""
        return self.running_dir / f"{shard_name(shard_id)}.json"

    @property
    def running_dir(self) -> Path:
        return self.progress / "running"

    def recordings_in_flight(self) -> int:
        """Recordings finished inside shards that are still running (the sum of their running notes' ``done``)."""
        total = 0
        for note in self.running_dir.glob("*.json"):
            try:
                total += int(json.loads(note.read_text()).get("done", 0))
            except (OSError, ValueError, AttributeError):  # a note replaced or removed as we read it
                continue
        return total

    @property
    def poison_dir(self) -> Path:
        """Notes for recordings a worker died on (the watchdog's kill, repeated crashes): not tried again."""
        return self.progress / "poison"

    @property
    def damaged_dir(self) -> Path:
        """Where a damaged state file (half-written plan, marker, checkpoint) is set aside, for a look."""
        return self.progress / "damaged"

    @property
    def lock_file(self) -> Path:
        return self.progress / "lock"

    def has_work(self) -> bool:
        """Does the directory hold anything but its lock and log (what a new run leaves before it writes)?"""
        if not self.path.is_dir():
            return False
        ignored = {self.lock_file, self.log_file}
        return any(p.is_file() and p not in ignored for p in self.path.rglob("*"))

    def relative(self, path: str | Path) -> str:
        """``path`` relative to the run directory, as a marker lists it (``variants/seq/part-00001.parquet``)."""
        p = Path(path)
        return (p.relative_to(self.path) if p.is_absolute() else p).as_posix()

    def shard_files(self, shard_id: int) -> list[Path]:
        """Every part a shard may have written (its variants', its rejected segments', its failure rows), found on
        disk: what is removed before the shard is redone, so no part of an earlier try outlives it."""
        name = part_name(shard_id)
        found = [*self.variants_root.glob(f"*/{name}"), *self.path.joinpath(REJECTED).glob(f"*/{name}")]
        return [p for p in [*found, self.unit_failures(shard_id)] if p.is_file()]

    def variant_part(self, variant: str, shard_id: int) -> Path:
        return self.variant_path(variant) / part_name(shard_id)

    def rejected_part(self, stage: str, shard_id: int) -> Path:
        return self.rejected_dir(stage) / part_name(shard_id)

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
        """The stages that rejected something in this run (their ``rejected_dir`` exists), sorted."""
        d = self.path / REJECTED
        return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []

    @property
    def calibration(self) -> Path:
        """``curate calibrate``'s fitted clean_trim params (YAML), per clean variant."""
        return self.path / "calibration.yaml"

    def scores_dir(self, kind: str) -> Path:
        """The folder of one kind of per-recording frame scores (``tags``, ``speakers``)."""
        return self.path / SCORES / kind

    def scores_path(self, kind: str, recording_id: str) -> Path:
        """One recording's frame scores of ``kind``; the id is made a safe file name (:func:`safe_name`)."""
        return self.scores_dir(kind) / safe_name(recording_id, ".parquet")

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
        the schema and package versions, the host, the command line and when it finished, plus the maker's own ``fields``
        (``pipeline``, ``counts``, ``timings_s``, ``source`` …)."""
        from curate import manifest
        from curate.schema import SCHEMA_VERSION

        run = {
            "pipeline_name": pipeline_name,
            "variants": list(variants),
            "schema_version": SCHEMA_VERSION,
            "versions": package_versions(),
            "host": host_info(),
            "command": shlex.join(sys.argv),  # the command line that made (or last resumed) the run
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


__all__ = [
    "PROGRESS_DIR",
    "RUN_JSON",
    "RunDir",
    "host_info",
    "package_versions",
    "part_name",
    "safe_name",
    "shard_name",
]
