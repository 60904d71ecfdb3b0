"""Corruption simulator for data-quality ablations (thesis Table 13): pure, seeded, reproducible.

Public API (see docs/corruption.md):

- :func:`load_condition` / :func:`load_condition_config`: a preset name, YAML path or thesis condition name →
  a validated :class:`Condition`.
- :class:`CorruptionTransform`: the collate-time transform (``2spk-mix-*``, ``sub-*``, ``mix-*``).
- :class:`ConcatTransform`: the dataset-level pairing for ``1spk-concat`` / ``2spk-concat``.
- :class:`Sources` of :class:`AudioPool`: MUSAN noise (:func:`musan_pool`), FMA music (:func:`fma_pool`),
  Demucs stems (:func:`curate.corrupt.stems.stems_pools`).

Heavy dependencies (torch, demucs, pyannote) are imported only by :mod:`curate.corrupt.stems`.
"""

from curate.corrupt.conditions import (
    Condition,
    ConditionError,
    batch_rng,
    condition_from_name,
    load_condition,
    parse_condition,
    realized_snr_db,
)
from curate.corrupt.readers import fma_pool, librispeech_run_dir, musan_pool, read_fma, read_musan, run_utterances
from curate.corrupt.sources import AudioPool, Clip, MissingSourceError, Sources, Utterance
from curate.corrupt.transform import ConcatTransform, Corruption, CorruptionTransform, make_transforms

load_condition_config = load_condition  # the validating loader of configs/corruption/*.yaml

__all__ = [
    "AudioPool",
    "Clip",
    "ConcatTransform",
    "Condition",
    "ConditionError",
    "Corruption",
    "CorruptionTransform",
    "MissingSourceError",
    "Sources",
    "Utterance",
    "batch_rng",
    "condition_from_name",
    "fma_pool",
    "librispeech_run_dir",
    "load_condition",
    "load_condition_config",
    "make_transforms",
    "musan_pool",
    "parse_condition",
    "read_fma",
    "read_musan",
    "realized_snr_db",
    "run_utterances",
]
