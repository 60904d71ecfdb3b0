"""Ablation specs (``configs/ablations/*.yaml``) and fine-tuning configs (``configs/finetune/*.yaml``): YAML →
validated dataclasses, before any work starts.

An ablation file::

    name: table13
    pretrain: {config: base, set: ["train.val_every=5000"], hours: 100, lr: [5e-4]}   # defaults of every cell
    data: {run_dir: /data/ls960-run, variant: train-960}                               # the base dataset
    lr_scan: {lrs: [1e-4, 2e-4, 5e-4, 1e-3], fraction: 0.1, top: 2}                    # used by cells with lr: scan
    measure: [finetune, probe]
    finetune: {config: configs/finetune/10min.yaml, train: {kind: librilight, root: …, amount: 10min}}
    probe: {config: {steps: 2000}, train: {kind: librilight, root: …, amount: 10min}}
    eval: {test-clean: {kind: librispeech, root: …, split: test-clean}}
    cells:
      - {name: baseline}
      - {name: 2spk-mix-10, corruption: 2spk-mix-10}
      - {name: w-pp-3s, variant: w-pp-3s, hours: 50, lr: scan}

Paths are used as written (relative ones against the working directory). Existence of data is checked when the
run starts (``check_inputs``), so templates with placeholder paths still validate.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import ConfigError
from curate.rundir import RunDir
from curate.yamlconf import build_dataclass

MEASURES = ("finetune", "probe")
DATASET_KINDS = ("librispeech", "librilight", "mls", "commonvoice", "synthetic")


@dataclass
class LrScan:
    """Two-phase LR scan: phase 1 runs every ``lrs`` for ``fraction`` of the budget; phase 2 runs the ``top``
    best of phase 1 (lowest validation loss, diverged runs last) for the full budget."""

    lrs: list[float] = field(default_factory=lambda: [1e-4, 2e-4, 5e-4, 1e-3, 2e-3])
    fraction: float = 0.1
    top: int = 2


@dataclass
class Cell:
    name: str
    condition: str | None = None  # label in the table (default: name)
    run_dir: str | None = None  # default: data.run_dir
    variant: str | None = None  # default: data.variant
    corruption: Any = None  # a condition name (configs/corruption/<name>.yaml) or a data.corruption dict
    hours: float | None = None  # pre-training budget in audio hours seen (default: pretrain.hours)
    lr: Any = None  # a number, a list of choices, or "scan" (default: pretrain.lr)
    set: list[str] = field(default_factory=list)  # extra pre-training overrides SECTION.KEY=VALUE

    @property
    def label(self) -> str:
        return self.condition or self.name


@dataclass
class AblationSpec:
    name: str
    cells: list[Cell]
    pretrain: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    lr_scan: LrScan = field(default_factory=LrScan)
    measure: list[str] = field(default_factory=lambda: ["finetune"])
    finetune: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""
    source: dict[str, Any] = field(default_factory=dict)

    def cell(self, name: str) -> Cell:
        for c in self.cells:
            if c.name == name:
                return c
        raise KeyError(name)

    def lr_choices(self, cell: Cell) -> list[float] | str:
        lr = cell.lr if cell.lr is not None else self.pretrain.get("lr")
        if lr == "scan":
            return "scan"
        if lr is None:
            return [math.nan]  # NaN = the pre-training config's own LR (or heuristic)
        return [float(x) for x in (lr if isinstance(lr, list) else [lr])]

    def hours(self, cell: Cell) -> float | None:
        return cell.hours if cell.hours is not None else self.pretrain.get("hours")


def _read_yaml(path: str | Path) -> dict[str, Any]:
    from curate.yamlconf import read_yaml_mapping

    return read_yaml_mapping(path, "config")


def check_dataset(spec: Any, where: str) -> dict[str, Any]:
    if not isinstance(spec, dict) or spec.get("kind") not in DATASET_KINDS or not spec.get("root"):
        raise ConfigError(
            f"{where}: a dataset is a mapping with kind ({', '.join(DATASET_KINDS)}) and root, got {spec!r}"
        )
    return spec


def load_finetune_config(source: str | Path | dict[str, Any], where: str = "finetune"):
    """A finetune YAML (``configs/finetune/*.yaml``) or dict → a validated FinetuneConfig."""
    from curate.w2v2.finetune import FinetuneConfig

    if isinstance(source, str | Path):
        from curate import presets

        where = str(source)
        source = _read_yaml(presets.locate("finetune", source))
    raw = {k: v for k, v in dict(source).items() if k != "description"}
    return build_dataclass(FinetuneConfig, raw, where).validate()


def load_probe_config(source: dict[str, Any] | None, where: str = "probe"):
    from curate.w2v2.probe import ProbeConfig

    return build_dataclass(ProbeConfig, dict(source or {}), where).validate()


def corruption_spec(value: Any, where: str) -> dict[str, Any] | None:
    """A condition name or dict → the pre-trainer's ``data.corruption`` mapping (condition must exist)."""
    if value is None:
        return None
    spec = {"condition": value} if isinstance(value, str) else dict(value)
    cond = spec.get("condition")
    if not isinstance(cond, str) or not cond:
        raise ConfigError(f"{where}: corruption needs a condition name, got {value!r}")
    from curate.corrupt import ConditionError, load_condition

    try:
        load_condition(cond)
    except ConditionError as e:
        raise ConfigError(f"{where}: corruption: {e}") from None
    return spec


def pretrain_overrides(spec: AblationSpec, cell: Cell) -> list[str]:
    return [*spec.pretrain.get("set", []), *cell.set]


def load_ablation(path: str | Path) -> AblationSpec:
    """Read and validate an ablation YAML: every cell's pre-training config is built (presets, overrides),
    the fine-tuning/probe configs and dataset specs checked. Raises ConfigError naming the file and problem."""
    from curate import presets
    from curate.w2v2.config import load_config

    where = str(path)
    raw = _read_yaml(presets.locate("ablations", path))
    known = {f.name for f in dataclasses.fields(AblationSpec)} - {"source"}
    unknown = {k for k in raw if not str(k).startswith("x-")} - known  # x-…: free keys for YAML anchors
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(known))}")
    if not raw.get("name") or not raw.get("cells"):
        raise ConfigError(f"{where}: needs a name and a non-empty list of cells")
    cells = []
    for i, c in enumerate(raw["cells"]):
        if not isinstance(c, dict) or not c.get("name"):
            raise ConfigError(f"{where}: cells[{i}] must be a mapping with a name")
        cells.append(build_dataclass(Cell, c, f"{where}: cells[{i}]"))
    names = [c.name for c in cells]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{where}: duplicate cell name(s) {', '.join(dupes)}")
    bad = [n for n in names if not n.replace("-", "").replace("_", "").replace(".", "").isalnum()]
    if bad:
        raise ConfigError(f"{where}: cell names become directory names; use letters, digits, - _ . only: {bad}")
    pre = dict(raw.get("pretrain") or {})
    unknown = set(pre) - {"config", "set", "hours", "lr"}
    if unknown:
        raise ConfigError(
            f"{where}: pretrain: unknown key(s) {', '.join(sorted(unknown))}; valid: config, set, hours, lr"
        )
    spec = AblationSpec(
        name=str(raw["name"]),
        cells=cells,
        pretrain=pre,
        data=dict(raw.get("data") or {}),
        lr_scan=build_dataclass(LrScan, dict(raw.get("lr_scan") or {}), f"{where}: lr_scan"),
        measure=list(raw.get("measure") or ["finetune"]),
        finetune=dict(raw.get("finetune") or {}),
        probe=dict(raw.get("probe") or {}),
        eval=dict(raw.get("eval") or {}),
        description=str(raw.get("description", "")),
        source=raw,
    )
    bad = set(spec.measure) - set(MEASURES)
    if bad or not spec.measure:
        raise ConfigError(f"{where}: measure: expected a non-empty subset of {', '.join(MEASURES)}, got {spec.measure}")
    if not spec.eval:
        raise ConfigError(f"{where}: eval: name at least one test set, e.g. test-clean: {{kind: librispeech, root: …}}")
    for name, ds in spec.eval.items():
        check_dataset(ds, f"{where}: eval.{name}")
    for part in spec.measure:
        sec = getattr(spec, part)
        check_dataset(sec.get("train"), f"{where}: {part}.train")
        extra = set(sec) - {"config", "train"}
        if extra:
            raise ConfigError(f"{where}: {part}: unknown key(s) {', '.join(sorted(extra))}; valid: config, train")
    if "finetune" in spec.measure:
        load_finetune_config(spec.finetune.get("config") or {}, f"{where}: finetune.config")
    if "probe" in spec.measure:
        load_probe_config(spec.probe.get("config"), f"{where}: probe.config")
    if not 0 < spec.lr_scan.fraction <= 1 or spec.lr_scan.top < 1 or not spec.lr_scan.lrs:
        raise ConfigError(f"{where}: lr_scan: fraction in (0, 1], top ≥ 1 and a non-empty lrs list")
    for c in cells:
        w = f"{where}: cell {c.name}"
        if not (c.run_dir or spec.data.get("run_dir")):
            raise ConfigError(f"{w}: no run_dir (set data.run_dir or the cell's run_dir)")
        corruption_spec(c.corruption, w)
        lrs = spec.lr_choices(c)
        if lrs != "scan" and any(not (x > 0) for x in lrs if not math.isnan(x)):
            raise ConfigError(f"{w}: lr must be positive numbers or 'scan', got {c.lr!r}")
        hours = spec.hours(c)
        if hours is not None and not float(hours) > 0:
            raise ConfigError(f"{w}: hours must be positive, got {hours!r}")
        try:
            load_config(spec.pretrain.get("config", "base"), pretrain_overrides(spec, c))
        except ConfigError as e:
            raise ConfigError(f"{w}: pretrain: {e}") from None
    return spec


def check_inputs(spec: AblationSpec) -> None:
    """Before any cell runs: every run directory/variant and every labelled dataset root exists."""
    problems = []
    for c in spec.cells:
        run_dir = Path(c.run_dir or spec.data["run_dir"])
        variant = c.variant or spec.data.get("variant")
        target = RunDir(run_dir).variant_path(variant) if variant else run_dir
        if not target.exists():
            problems.append(f"cell {c.name}: {target} does not exist")
    datasets = dict(spec.eval)
    for part in spec.measure:
        datasets[f"{part}.train"] = getattr(spec, part)["train"]
    for name, ds in datasets.items():
        if ds["kind"] != "synthetic" and not Path(ds["root"]).exists():
            problems.append(f"{name}: dataset root {ds['root']} does not exist")
    if problems:
        raise ConfigError("ablation inputs missing:\n  " + "\n  ".join(problems))


def load_any_config(path: str | Path):
    """The validating loader for ``configs/ablations/*.yaml`` (→ AblationSpec) and ``configs/finetune/*.yaml``
    (→ FinetuneConfig), chosen by the folder the file lives in."""
    path = Path(path)
    if path.parent.name == "finetune":
        return load_finetune_config(path)
    return load_ablation(path)
