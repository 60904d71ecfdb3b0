"""The corruption conditions of thesis Table 13 as validated specs, and the pure, seeded signal functions.

Everything here is a pure function of its inputs: the random draws come from a :class:`numpy.random.Generator`
that the caller seeds from ``(seed, epoch, batch_idx)`` (:func:`batch_rng`), so the same triple always gives
the same audio. Signals are mono float32 at 16 kHz.

SNR convention: ``snr_db = 10·log10(P_speech / P_added)`` with ``P`` the mean power over the utterance's
length, measured on what is actually added to the output (after cropping, tiling or zero-padding the added
signal to the utterance's length). :func:`scale_to_snr` makes that realized SNR equal the drawn one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curate.errors import CurateError

KINDS = ("concat", "mix", "sub")
MIX_SOURCES = ("speech", "noise", "music", "instrumental", "vocals")
SUB_SOURCES = ("noise", "music")
PAIRINGS = ("same-session", "different-speaker")
_EPS = 1e-12


class ConditionError(CurateError, ValueError):
    """A corruption condition (name or YAML preset) is invalid. Raised before any audio is touched."""


@dataclass(frozen=True)
class Condition:
    """One corruption condition. ``fraction`` is the share of utterances of a batch that get corrupted
    (at least one per batch); ``snr_db`` the uniform range of the drawn SNR (mix conditions only)."""

    name: str
    kind: str  # concat | mix | sub
    source: str | None = None  # mix: speech|noise|music|instrumental|vocals; sub: noise|music; concat: None
    fraction: float = 1.0
    snr_db: tuple[float, float] = (0.0, 15.0)
    pairing: str | None = None  # concat only: same-session (1spk) | different-speaker (2spk)
    description: str = ""

    def validate(self) -> Condition:
        where = f"condition '{self.name}'"
        if self.kind not in KINDS:
            raise ConditionError(f"{where}: kind '{self.kind}' is not one of {list(KINDS)}")
        if self.kind == "concat":
            if self.pairing not in PAIRINGS:
                raise ConditionError(f"{where}: concat needs pairing: one of {list(PAIRINGS)}, got {self.pairing!r}")
            if self.source is not None:
                raise ConditionError(f"{where}: concat takes no source (got {self.source!r})")
        else:
            allowed = MIX_SOURCES if self.kind == "mix" else SUB_SOURCES
            if self.source not in allowed:
                raise ConditionError(f"{where}: {self.kind} source must be one of {list(allowed)}, got {self.source!r}")
            if self.pairing is not None:
                raise ConditionError(f"{where}: pairing applies to concat conditions only")
        if not 0.0 < self.fraction <= 1.0:
            raise ConditionError(f"{where}: fraction must be in (0, 1], got {self.fraction}")
        lo, hi = self.snr_db
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
            raise ConditionError(f"{where}: snr_db must be [low, high] with low <= high, got {list(self.snr_db)}")
        return self


_NAME = re.compile(
    r"^(?:(?P<concat>[12])spk-concat|2spk-mix-(?P<spk>\d+)|(?P<kind>sub|mix)-(?P<src>[a-z]+)-(?P<x>\d+))$"
)
_SHORT = {"noise": "noise", "music": "music", "instr": "instrumental", "vocal": "vocals"}


def condition_from_name(name: str) -> Condition:
    """The thesis naming: ``1spk-concat``, ``2spk-concat``, ``2spk-mix-X``, ``sub-{noise,music}-X``,
    ``mix-{noise,music,instr,vocal}-X`` with X the percentage of a batch."""
    m = _NAME.match(name)
    if m is None:
        raise ConditionError(
            f"'{name}' is not a condition name; expected 1spk-concat, 2spk-concat, 2spk-mix-X, sub-noise-X, "
            "sub-music-X, mix-noise-X, mix-music-X, mix-instr-X or mix-vocal-X (X = percent of a batch, e.g. 33)"
        )
    if m["concat"]:
        return Condition(
            name, "concat", pairing="same-session" if m["concat"] == "1" else "different-speaker"
        ).validate()
    pct = int(m["spk"] or m["x"])
    if not 0 < pct <= 100:
        raise ConditionError(f"'{name}': the percentage must be in 1..100")
    if m["spk"]:
        return Condition(name, "mix", "speech", pct / 100).validate()
    src = _SHORT.get(m["src"])
    if src is None or (m["kind"] == "sub" and src not in SUB_SOURCES):
        raise ConditionError(f"'{name}': unknown source '{m['src']}' for {m['kind']}-* conditions")
    return Condition(name, m["kind"], src, pct / 100).validate()


_KEYS = {"name", "kind", "source", "fraction", "snr_db", "pairing", "description"}


def parse_condition(raw: Any, origin: str = "<condition>") -> Condition:
    """A YAML mapping → a validated :class:`Condition`."""
    if not isinstance(raw, dict):
        raise ConditionError(f"{origin}: a corruption preset is a YAML mapping")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConditionError(f"{origin}: unknown key(s) {sorted(unknown)}; valid: {sorted(_KEYS)}")
    for key in ("name", "kind"):
        if not raw.get(key):
            raise ConditionError(f"{origin}: missing '{key}'")
    snr = raw.get("snr_db", [0.0, 15.0])
    if not isinstance(snr, list | tuple) or len(snr) != 2 or not all(isinstance(v, int | float) for v in snr):
        raise ConditionError(f"{origin}: snr_db must be a list [low, high] in dB, got {snr!r}")
    fraction = raw.get("fraction", 1.0)
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise ConditionError(f"{origin}: fraction must be a number in (0, 1], got {fraction!r}")
    try:
        return Condition(
            str(raw["name"]),
            str(raw["kind"]),
            raw.get("source"),
            float(fraction),
            (float(snr[0]), float(snr[1])),
            raw.get("pairing"),
            str(raw.get("description", "")),
        ).validate()
    except ConditionError as e:
        raise ConditionError(f"{origin}: {e}") from None


def load_condition(spec: str | Path, preset_dir: Path | None = None) -> Condition:
    """A YAML file path, a preset name under ``configs/corruption/``, or a bare thesis condition name."""
    from curate import presets

    path = Path(spec)
    if path.suffix not in (".yaml", ".yml"):
        path = (preset_dir or presets.preset_dir("corruption")) / f"{spec}.yaml"
        if not path.is_file():
            return condition_from_name(str(spec))
    elif not path.is_file():
        path = presets.find("corruption", spec) or path
    from curate.yamlconf import read_yaml_mapping

    cond = parse_condition(read_yaml_mapping(path, "corruption preset", ConditionError), str(path))
    if path.parent.name == "corruption" and cond.name != path.stem:
        raise ConditionError(f"{path}: preset name '{cond.name}' differs from its file name '{path.stem}'")
    return cond


# ---------------------------------------------------------------------------------------------------
# Pure signal functions.


def batch_rng(seed: int, epoch: int, batch_idx: int, stream: int = 0) -> np.random.Generator:
    """The one source of randomness for a batch: independent streams per (seed, epoch, batch). ``stream``
    separates other uses (1: dataset-level pairing of an epoch, 2: choosing preview utterances)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(batch_idx), int(stream)]))


def choose(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``round(fraction·n)`` utterances out of ``n``, at least one (none if ``n`` is 0)."""
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    k = min(n, max(1, round(fraction * n)))
    return np.sort(rng.choice(n, size=k, replace=False))


def power(x: np.ndarray) -> float:
    """Mean power in float64 (float32 sums lose precision on long signals)."""
    return float(np.dot(x.astype(np.float64), x.astype(np.float64)) / x.size) if x.size else 0.0


def fit_length(x: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Exactly ``n`` samples of ``x``: a random crop when longer, tiled (repeated, wrapping around from a
    random start) when shorter. Returns the samples and the start offset in ``x``."""
    if x.size == 0:
        raise ValueError("cannot fit an empty signal")
    offset = int(rng.integers(0, x.size - n + 1)) if x.size >= n else int(rng.integers(0, x.size))
    if x.size >= n:
        return x[offset : offset + n], offset
    return np.take(x, np.arange(offset, offset + n), mode="wrap"), offset


def place(x: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``x`` inside ``n`` samples without repetition (for speech): a random crop when longer, otherwise
    zero-padded at a random position. Returns the samples and the (signed) offset: >= 0 is a crop start in
    ``x``, < 0 means ``x`` starts ``-offset`` samples into the output."""
    if x.size >= n:
        offset = int(rng.integers(0, x.size - n + 1))
        return x[offset : offset + n], offset
    pos = int(rng.integers(0, n - x.size + 1))
    y = np.zeros(n, dtype=np.float32)
    y[pos : pos + x.size] = x
    return y, -pos


def scale_to_snr(speech: np.ndarray, added: np.ndarray, snr_db: float) -> tuple[np.ndarray, float]:
    """``added`` scaled so that ``10·log10(P(speech)/P(scaled)) == snr_db``; returns (scaled, gain).
    A silent ``added`` or silent ``speech`` gives gain 0 (nothing is added)."""
    ps, pa = power(speech), power(added)
    if pa < _EPS or ps < _EPS:
        return np.zeros_like(added, dtype=np.float32), 0.0
    gain = float(np.sqrt(ps / (pa * 10.0 ** (snr_db / 10.0))))
    return (added * np.float32(gain)).astype(np.float32, copy=False), gain


def mix_at_snr(speech: np.ndarray, added: np.ndarray, snr_db: float) -> tuple[np.ndarray, float]:
    """``speech + added`` at ``snr_db`` (both of the same length); returns (mixture, gain of ``added``)."""
    if speech.shape != added.shape:
        raise ValueError(f"mix_at_snr: lengths differ ({speech.shape} vs {added.shape})")
    scaled, gain = scale_to_snr(speech, added, snr_db)
    return (speech + scaled).astype(np.float32, copy=False), gain


def substitute(speech: np.ndarray, replacement: np.ndarray) -> tuple[np.ndarray, float]:
    """``replacement`` (already of the utterance's length) at the power of the replaced utterance, so the
    level statistics of a batch stay the same. A silent utterance keeps the replacement's own level."""
    if speech.shape != replacement.shape:
        raise ValueError(f"substitute: lengths differ ({speech.shape} vs {replacement.shape})")
    ps, pr = power(speech), power(replacement)
    gain = float(np.sqrt(ps / pr)) if ps > _EPS and pr > _EPS else 1.0
    return (replacement * np.float32(gain)).astype(np.float32, copy=False), gain


def concat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two utterances back to back (no cross-fade: the artefact of a hard cut is part of the condition)."""
    return np.concatenate([a, b]).astype(np.float32, copy=False)


def realized_snr_db(clean: np.ndarray, corrupted: np.ndarray) -> float:
    """The SNR measured on an output: ``10·log10(P(clean) / P(corrupted − clean))``."""
    return float(10.0 * np.log10(power(clean) / max(power(corrupted - clean), _EPS)))


__all__ = [
    "KINDS",
    "MIX_SOURCES",
    "PAIRINGS",
    "SUB_SOURCES",
    "Condition",
    "ConditionError",
    "batch_rng",
    "choose",
    "concat",
    "condition_from_name",
    "fit_length",
    "load_condition",
    "mix_at_snr",
    "parse_condition",
    "place",
    "power",
    "realized_snr_db",
    "scale_to_snr",
    "substitute",
]
