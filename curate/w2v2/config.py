"""Pre-training config: four small dataclasses (model, data, optim, train) loaded from YAML.

A config file has the sections ``model:``, ``data:``, ``optim:``, ``train:`` (all optional) and may start with
``preset: base|large|tiny-cpu`` to inherit a preset's model. ``--set section.key=value`` overrides (YAML values).
Checkpoints carry ``asdict(PretrainConfig)`` so a checkpoint alone rebuilds its model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import ConfigError
from curate.yamlconf import build_dataclass, parse_set

# What model.mask_prob means: "spans" (fairseq's and the thesis's configs, p = 0.5 or 0.65): p·T/L spans of L
# frames per utterance; "start_prob" (the wav2vec 2.0 paper's p = 0.065): each frame starts a span with
# probability p. Sensible ranges, outside of which the value belongs to the other reading (or masks ~all/~nothing).
MASK_SEMANTICS = {"spans": (0.1, 1.0), "start_prob": (0.01, 0.1)}
# curate.w2v2.health's checks and what each does unless train.on_health says otherwise.
HEALTH_DEFAULTS = {
    "divergence": "stop",
    "quantizer_collapse": "stop",
    "diversity_collapse": "warn",
    "contrastive_at_chance": "stop",
}
HEALTH_CHECKS = tuple(HEALTH_DEFAULTS)


def expected_masked_fraction(span_p: float, span: int) -> float:
    """≈ fraction of the frames masked with span-start parameter ``span_p`` (p·T/L starts, overlaps merge):
    each frame is a start with probability p/L and is masked when one of the L frames up to it is one."""
    return 1.0 - (1.0 - min(1.0, span_p / span)) ** span


@dataclass
class ModelConfig:
    # CNN feature encoder (thesis §5.2): 7 × 512 channels; padding on both sides → exactly 50 frames/s.
    conv_dim: list[int] = field(default_factory=lambda: [512] * 7)
    conv_kernel: list[int] = field(default_factory=lambda: [10, 3, 3, 3, 3, 2, 2])
    conv_stride: list[int] = field(default_factory=lambda: [5, 2, 2, 2, 2, 2, 2])
    conv_padding: list[int] = field(default_factory=lambda: [3, 1, 1, 1, 1, 0, 0])
    feature_grad_mult: float = 0.1  # gradient scale on the CNN output
    # Transformer (post-LN). BASE 12×768/12 heads; FFN 3072 (fairseq; the thesis text says 2048).
    hidden: int = 768
    layers: int = 12
    heads: int = 12
    ffn: int = 3072
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    # Implementations of the same function (speed only): auto = the fast one on CUDA, the reference elsewhere.
    pos_conv_impl: str = "auto"  # "grouped" (reference: grouped conv) or "fft" (fp32 FFT, per-frequency GEMMs)
    cnn_layout: str = "auto"  # "ncl" (reference: Conv1d) or "nlc" (channels-last 2-D convs, tensor cores)
    # The three dropout places: after the feature projection (input), on the quantizer input (features),
    # inside the transformer (residual branches + attention probabilities).
    dropout_input: float = 0.1
    dropout_features: float = 0.1
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    # Quantizer: G codebooks × V entries; codevector_dim is the concatenated size (G × 128 for BASE).
    codebooks: int = 2
    codebook_entries: int = 320
    codevector_dim: int = 256
    final_dim: int = 256  # shared space of context and targets for the cosine similarity
    tau_start: float = 2.0
    tau_end: float = 0.5
    tau_decay: float = 0.999995
    # Masking (see MASK_SEMANTICS: 0.5 "spans" masks ≈ 40 % of the frames, fairseq's 0.65 ≈ 49 %) and loss.
    mask_prob: float = 0.5
    mask_length: int = 10
    mask_semantics: str = "spans"
    num_negatives: int = 100
    logit_temp: float = 0.1
    diversity_weight: float = 0.1
    l2_weight: float = 10.0
    loss_reduction: str = "per_token"  # "per_token" (fairseq, recommended) or "sum" (thesis)

    def validate(self) -> None:
        n = len(self.conv_dim)
        if not (len(self.conv_kernel) == len(self.conv_stride) == len(self.conv_padding) == n):
            raise ConfigError("model: conv_dim, conv_kernel, conv_stride and conv_padding must have equal lengths")
        if self.hidden % self.heads:
            raise ConfigError(f"model: hidden={self.hidden} is not divisible by heads={self.heads}")
        if self.codevector_dim % self.codebooks:
            raise ConfigError(
                f"model: codevector_dim={self.codevector_dim} not divisible by codebooks={self.codebooks}"
            )
        if self.loss_reduction not in ("per_token", "sum"):
            raise ConfigError(f"model.loss_reduction: expected per_token or sum, got {self.loss_reduction!r}")
        for name, allowed in (("pos_conv_impl", ("auto", "grouped", "fft")), ("cnn_layout", ("auto", "ncl", "nlc"))):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"model.{name}: expected one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.mask_semantics not in MASK_SEMANTICS:
            raise ConfigError(
                f"model.mask_semantics: expected one of {', '.join(MASK_SEMANTICS)}, got {self.mask_semantics!r}"
            )
        if self.mask_length < 1:
            raise ConfigError(f"model.mask_length must be ≥ 1, got {self.mask_length}")
        lo, hi = MASK_SEMANTICS[self.mask_semantics]
        if not lo <= self.mask_prob <= hi:
            other = next(k for k in MASK_SEMANTICS if k != self.mask_semantics)
            frac = expected_masked_fraction(
                self.mask_prob * (self.mask_length if other == "start_prob" else 1), self.mask_length
            )
            raise ConfigError(
                f"model.mask_prob={self.mask_prob} makes no sense with mask_semantics={self.mask_semantics} "
                f"(sensible: {lo}–{hi}); it reads like a mask_semantics={other} value (masks ≈ {frac:.0%} of the "
                f"frames that way). Thesis: 0.5 spans (≈ 40 % masked); fairseq: 0.65 spans (≈ 49 %); "
                f"paper: 0.065 start_prob (≈ 49 %)"
            )

    @property
    def span_p(self) -> float:
        """The p of ``loss.compute_mask`` (p·T/L span starts per utterance) for this mask_prob and semantics."""
        return self.mask_prob * self.mask_length if self.mask_semantics == "start_prob" else self.mask_prob

    @property
    def masked_fraction(self) -> float:
        return expected_masked_fraction(self.span_p, self.mask_length)


@dataclass
class DataConfig:
    path: str | None = None  # a run directory or a materialized directory (or --data)
    variant: str | None = None  # run-dir variant; None for a materialized directory
    batch_samples: int = 2_400_000  # per-GPU sample budget of one batch (padded cost: B × longest)
    bin_size: int = 5000  # length-sorted bins
    queue_size: int = 300  # priority queue fed by random draws
    max_spread_s: float = 10.0  # drop batches whose shortest and longest differ by more
    min_s: float = 1.0  # shorter segments are skipped (too few frames for masking)
    max_s: float = 30.0  # longer segments are cropped to this
    crop: bool = True  # crop each training batch to its shortest member (no padding, no attn mask)
    val_bucket_s: float = 0.0  # validation is never cropped; > 0: lengths within this share a padded batch
    # (faster; GroupNorm then sees the padding), 0: one utterance per batch (exact)
    normalize: bool = False  # per-utterance zero mean / unit variance (fairseq: LARGE only)
    val_split: str = "median_per_session"  # or "random"
    val_fraction: float = 0.01  # for val_split=random
    num_workers: int = 0  # DataLoader worker processes
    compile_bucket_s: float = 0.5  # with train.compile: crop lengths down to this grid
    corruption: dict[str, Any] | None = None  # {condition: ..., sources: ...} → curate.corrupt at batch time


@dataclass
class OptimConfig:
    lr: float | None = None  # peak LR; None → from the heuristic
    heuristic: str = "h_const"  # h_const, h_sqrt, h_lin (m_lr, s_orig below)
    m_lr: float = 5e-4
    s_orig: float = 6000.0
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-6
    clip_norm: float = 0.0  # 0 = no clipping (grad norm is still logged)
    schedule: str = "tri_cyclic"  # tri_cyclic, tri_stage, cosine, constant
    cycle_up: int = 25_000
    cycle_down: int = 25_000
    min_ratio: float = 0.01  # tri_cyclic minimum = max / 100
    warmup_steps: int = 32_000  # cosine
    stage_ratios: list[float] = field(default_factory=lambda: [0.1, 0.4, 0.5])  # tri_stage
    init_lr_scale: float = 0.01
    final_lr_scale: float = 0.05


@dataclass
class TrainConfig:
    out_dir: str = "pretrain_out"  # checkpoints, metrics.jsonl, tb/ (or --out)
    max_steps: int = 400_000
    max_time_s: float = 0.0  # stop (with checkpoint + validation) after this wall time; 0 = off
    accumulation: int = 1
    seed: int = 0
    device: str = "auto"  # auto → cuda when available
    precision: str = "auto"  # auto → bf16 on CUDA, fp32 on CPU; or bf16 / fp32
    compile: bool = False
    val_every: int = 5000
    ckpt_every: int = 5000
    log_every: int = 100
    tensorboard: bool = True
    peak_tflops: float = 0.0  # device peak for MFU; 0 → known GPU table (CPU: not reported)
    # Health checks (curate.w2v2.health), each by name: divergence, quantizer_collapse, diversity_collapse,
    # contrastive_at_chance. on_health maps a name to "stop" or "warn" (unnamed: HEALTH_DEFAULTS).
    on_health: dict[str, str] = field(default_factory=dict)
    spike_factor: float = 3.0  # divergence: loss > factor × running median …
    spike_patience: int = 50  # … for this many consecutive steps
    collapse_after: int = 5000  # the collapse/stall checks (at validations) start at this step
    chance_margin: float = 0.02  # held-out contrastive ≥ (1 − margin) × its chance level = "at chance"
    chance_patience: int = 3  # validations in a row at chance (or not improving) before a check fires
    min_code_dependence: float = 0.01  # quantizer collapse: 1 − mean per-frame code entropy / ln V below this …
    min_perplexity: float = 2.0  # … or a codebook's held-out code perplexity below this

    def validate(self) -> None:
        bad = {k: v for k, v in self.on_health.items() if k not in HEALTH_CHECKS or v not in ("stop", "warn")}
        if bad:
            raise ConfigError(
                f"train.on_health: {bad}: expected {{name: stop|warn}} with name in {', '.join(HEALTH_CHECKS)}"
            )
        if not 0 <= self.chance_margin < 1 or self.chance_patience < 1:
            raise ConfigError("train.chance_margin must be in [0, 1) and train.chance_patience ≥ 1")


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "train": TrainConfig}


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """``section.key=value`` (value parsed as YAML) sets ``raw[section][key]``."""
    shape = f"SECTION.KEY=VALUE with SECTION in {', '.join(SECTIONS)}"
    for key, value in parse_set(overrides, shape):
        section, dot, name = key.partition(".")
        if not dot or section not in SECTIONS:
            raise ConfigError(f"--set {key!r}: expected {shape}")
        raw.setdefault(section, {})[name] = value
    return raw


def from_dict(raw: dict[str, Any], origin: str = "<config>") -> PretrainConfig:
    unknown = set(raw) - set(SECTIONS) - {"preset", "description"}
    if unknown:
        raise ConfigError(f"{origin}: unknown section(s) {', '.join(sorted(unknown))}; valid: {', '.join(SECTIONS)}")
    if isinstance(raw.get("train"), dict) and "collapse_window" in raw["train"]:  # retired; in older checkpoints
        raw = {**raw, "train": {k: v for k, v in raw["train"].items() if k != "collapse_window"}}
    parts = {
        name: build_dataclass(cls, dict(raw.get(name) or {}), f"{origin}: {name}") for name, cls in SECTIONS.items()
    }
    cfg = PretrainConfig(**parts)
    cfg.model.validate()
    cfg.train.validate()
    return cfg


def load_config(
    source: str | Path | dict[str, Any] | PretrainConfig, overrides: list[str] | None = None
) -> PretrainConfig:
    """A YAML path, a preset name (``base``, ``large``, ``tiny-cpu``), a dict or a config → a validated config."""
    if isinstance(source, PretrainConfig):
        source = source.to_dict()
    origin = "<dict>"
    if isinstance(source, str | Path):
        from curate import presets

        path = Path(source)
        if not path.exists():
            path = presets.find("pretrain", source)
        if path is None:
            raise ConfigError(f"{source}: no such config file (or preset: {', '.join(presets.names('pretrain'))})")
        from curate.yamlconf import read_yaml_mapping

        source = read_yaml_mapping(path, "pre-training config (sections model/data/optim/train)")
        origin = str(path)
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in dict(source).items()}
    preset = raw.pop("preset", None)
    if preset:
        base = load_config(preset).to_dict()
        for name in SECTIONS:
            base[name].update(raw.get(name) or {})
        raw = {**raw, **base}
    return from_dict(apply_overrides(raw, overrides), origin)
