"""The three stage kinds. A stage is a small dataclass whose fields are its YAML params; its algorithm is a
module-level pure function. Models load in ``setup()``, never in ``__init__``, so any pipeline can be
validated on a laptop.

- :class:`Filter`: recording metadata → keep, or the reason to drop it (catalog level, vectorised).
- :class:`Aggregate`: the whole catalog → which recordings to drop, e.g. de-duplication.
- :class:`Transform`: one recording + its current segments → new segments (and rejected ones).
- :class:`AudioPass`: reads each surviving recording's audio once, before planning, and keeps a compact
  per-recording result in the run directory for the Aggregates after it (e.g. audio fingerprints).

Every stage may read its run directory (``self.run_dir``) once the driver has bound it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from curate.errors import ConfigError
from curate.schema import Frames, Recording, RejectedSegment, Segment

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from curate.rundir import RunDir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs. Only the runner decides how to use it."""

    cpus: float = 1.0
    gpus: float = 0.0
    batch_size: int = 1
    memory_gb: float = 0.0


@dataclass
class Stage:
    stage_name: ClassVar[str] = ""
    resources: ClassVar[Resources] = Resources()
    requires: ClassVar[tuple[str, ...]] = ()  # stages that must come before this one in the same list

    def validate(self) -> None:
        """Raise :class:`ConfigError` for invalid params. Called once when the pipeline is loaded."""

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def bind_run(self, run: RunDir) -> None:
        """Called by the driver (and ``curate derive``) before any data moves: the run directory."""
        self._run = run

    @property
    def run_dir(self) -> RunDir:
        run = getattr(self, "_run", None)
        if run is None:
            raise ConfigError(f"stage '{self.stage_name}' reads its run directory, but none was bound to it")
        return run


@dataclass
class Filter(Stage):
    """Keep a recording or give the reason to drop it."""

    def keep(self, rec: Recording) -> str | None:
        """``None`` to keep; otherwise a short reason (``"genre 'music' denied"``)."""
        raise NotImplementedError

    def reasons(self, df: pd.DataFrame) -> pd.Series:
        """Vectorised form over the recordings table: a reason per row, ``None`` to keep. Override for speed."""
        import pandas as pd

        from curate.schema import recording_from_row

        return pd.Series([self.keep(recording_from_row(r)) for r in df.to_dict("records")], index=df.index)


@dataclass
class Aggregate(Stage):
    """Looks at the whole catalog at once."""

    # the recordings columns ``drop`` reads (None: all); the driver loads only these for a big catalog
    columns: ClassVar[tuple[str, ...] | None] = None

    def drop(self, df: pd.DataFrame) -> pd.DataFrame:
        """Rows to drop: columns ``recording_id``, ``reason``, ``duplicate_of`` (nullable)."""
        raise NotImplementedError


@dataclass
class AudioPass(Stage):
    """Per-recording work on the audio of the recordings that survive the stages before it, stored in the run
    directory, resumable. Drops only recordings whose audio cannot be read (they become failure rows).
    The driver decides how many recordings run at once (threads: the work is a decoder + C library)."""

    resources: ClassVar[Resources] = Resources(cpus=1.0, batch_size=256)  # batch: recordings per stored part

    def done(self, run: RunDir) -> set[str]:
        """Recording ids whose result is already stored (a resumed run skips them)."""
        raise NotImplementedError

    def compute(self, rec: Recording) -> Any:
        """One recording's result; raise :class:`~curate.audio.AudioDecodeError` or ``RecordingError``."""
        raise NotImplementedError

    def store(self, run: RunDir, results: list[tuple[str, Any]]) -> None:
        """Store a batch of ``(recording_id, result)`` atomically."""
        raise NotImplementedError


@dataclass
class StageResult:
    segments: list[Segment]
    rejected: list[RejectedSegment] = field(default_factory=list)


class RecordingContext:
    """What a transform sees of one recording: its row, its audio (decoded lazily, once), and a warning sink."""

    def __init__(
        self, recording: Recording, default_language: str | None = None, decode_timeout_s: float | None = None
    ):
        self.recording = recording
        self.decode_timeout_s = decode_timeout_s  # watchdog for decoding this recording (None: no limit)
        self.language = recording.language or default_language
        self.warnings: list[str] = []
        self.info: dict[str, Any] = {}  # stage facts worth recording in run.json (e.g. a fallback taken)
        self.frames: dict[str, Frames] = {}  # frame scores made by a stage (``tags``, ``speakers``): saved per run
        self.frames_loader: Callable[[str], Frames | None] | None = None  # saved scores (``curate derive``)
        self._audio: np.ndarray | None = None

    def frame_scores(self, kind: str) -> Frames | None:
        """Frame scores of ``kind`` made earlier in this run, else the run's saved ones, else ``None``."""
        if kind not in self.frames and self.frames_loader is not None:
            loaded = self.frames_loader(kind)
            if loaded is not None:
                self.frames[kind] = loaded
        return self.frames.get(kind)

    def audio(self) -> np.ndarray:
        """The whole recording as 16 kHz mono float32 (cached for the stages of this recording)."""
        if self._audio is None:
            from curate import audio

            self._audio = audio.load(self.recording.audio_path, timeout_s=self.decode_timeout_s)
        return self._audio

    def read(self, start_s: float, end_s: float) -> np.ndarray:
        from curate import audio

        if self._audio is not None:
            sr = audio.SAMPLE_RATE
            return self._audio[int(round(start_s * sr)) : int(round(end_s * sr))]
        return audio.load(self.recording.audio_path, start_s, end_s, timeout_s=self.decode_timeout_s)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def release(self) -> None:
        self._audio = None


@dataclass
class Transform(Stage):
    """Recording + segments → segments. ``emit`` writes the segments as they are after this stage."""

    emit: str | None = None

    def bind(self, settings: Any) -> None:
        """Called by the runner before :meth:`setup`: the pipeline-wide settings (model store, downloads)."""
        self._settings = settings

    def setting(self, name: str, own: Any = None) -> Any:
        """A stage's own param when set, else the pipeline setting of that name (``None`` when unbound)."""
        if own is not None:
            return own
        return getattr(getattr(self, "_settings", None), name, None)

    def setup(self) -> None:
        """Load models here (once per worker), never in ``__init__``."""

    def teardown(self) -> None:
        """Free models (e.g. before the next model stage loads on the same GPU)."""

    def process(self, ctx: RecordingContext, segments: list[Segment]) -> StageResult:
        raise NotImplementedError

    @property
    def uses_model(self) -> bool:
        return type(self).setup is not Transform.setup


@dataclass
class ModelStage(Transform):
    """A transform that loads models in :meth:`setup`: the one place a stage finds its models and its device.

    - :meth:`model_specs` names every model :meth:`setup` loads; :meth:`check_models` (``curate validate``, and
      the driver before any data moves) and :meth:`resolve_model` (a worker's set-up) ask the same question of
      :mod:`curate.models` with the same store and the same ``allow_download`` (the stage's own ``model_store``
      / ``allow_download`` params when it has them, else the pipeline's settings), and refuse with the same
      :class:`ConfigError`: validate refuses exactly what the run would.
    - :meth:`pick_device`: the stage's ``device`` param through :func:`curate.models.device.pick_device`.
    - :meth:`teardown` drops the stage's models (:meth:`unload`) and frees the GPU memory they held.
    """

    def model_specs(self) -> list[tuple[str, str | None]]:
        """(spec, default backend) of every model :meth:`setup` must find; checked before any data moves."""
        return []

    def _model_source(self, settings: Any = None) -> tuple[str | None, bool]:
        """(model store, downloads allowed): the stage's own params when set, else the pipeline's settings."""
        settings = settings if settings is not None else getattr(self, "_settings", None)
        store = getattr(self, "model_store", None) or getattr(settings, "model_store", None)
        download = bool(getattr(self, "allow_download", False)) or bool(getattr(settings, "allow_download", False))
        return store, download

    def check_models(self, settings: Any) -> None:
        """Would :meth:`resolve_model` find every model of :meth:`model_specs` under ``settings``? Loads,
        assembles and downloads nothing; raises the :class:`ConfigError` set-up would raise."""
        from curate import models

        store, download = self._model_source(settings)
        for spec, backend in self.model_specs():
            try:
                models.check(spec, store, download, default_backend=backend)
            except (ValueError, models.ModelNotFoundError) as e:
                raise ConfigError(f"{self.stage_name}: {e}") from None

    def resolve_model(self, spec: str, default_backend: str | None = None) -> Any:
        """``spec`` → a :class:`curate.models.ResolvedModel` (its ``path`` to load), downloading only when
        allowed; a model that cannot be found is a :class:`ConfigError` naming the stage."""
        from curate import models

        store, download = self._model_source()
        try:
            return models.resolve(spec, store, download, default_backend=default_backend)
        except (ValueError, models.ModelNotFoundError) as e:
            raise ConfigError(f"{self.stage_name}: {e}") from e

    def pick_device(self) -> str:
        """The device this stage's models run on: its ``device`` param (``auto``: CUDA when torch sees a GPU)."""
        from curate.models.device import pick_device

        return pick_device(getattr(self, "device", "auto"))

    def unload(self) -> None:
        """Drop the models :meth:`setup` loaded (set their attributes to ``None``)."""

    def teardown(self) -> None:
        from curate.models.device import free_cuda

        self.unload()
        free_cuda()


__all__ = [
    "Resources",
    "Stage",
    "Filter",
    "Aggregate",
    "Transform",
    "ModelStage",
    "AudioPass",
    "StageResult",
    "RecordingContext",
]
