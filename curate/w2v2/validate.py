"""Held-out validation that means something: every held-out second scored, every number beside its chance level.

- No cropping: each held-out utterance is scored whole (one longer than ``data.max_s`` is cut into equal
  consecutive chunks, none dropped). Utterances whose lengths differ by at most ``data.val_bucket_s`` share a
  batch, zero-padded to the longest; padding is never masked, never a distractor and never attended to
  (``val_bucket_s: 0`` scores one utterance per batch, with no padding at all).
- Chance levels on the actual distractor sets (``loss.chance_levels``): a step whose K_eff usable distractors
  (those not identical to the target) cannot be told apart from its target scores ln(K_eff + 1) and is right
  with probability 1 / (K_eff + 1); both are averaged over the masked steps like the loss and the accuracy.
- The quantizer: per codebook, the held-out code perplexity (hard picks), the soft perplexity, and how much
  the codes depend on the input: the mean per-frame entropy H̄ of the code distribution against ln V
  (``val_code_dependence_g = 1 − H̄/ln V``: 0 = codes ignore the input) and the mutual information
  I(frame; code) = H(p̄) − H̄ (nats).
Masks and distractors are seeded by the batch number, so every validation scores the same masked steps.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from curate.audio import SAMPLE_RATE
from curate.w2v2.config import DataConfig, PretrainConfig

VAL_SEED = 10**9  # global batch numbers of validation batches start here (training batches never reach it)


def build_validation_set(source, ids: np.ndarray, cfg: DataConfig) -> list[dict[str, Any]]:
    """Held-out utterances ``ids`` of ``source`` → collated numpy batches (``lengths`` = valid samples)."""
    from curate.w2v2.data import collate

    max_n = int(cfg.max_s * SAMPLE_RATE)
    pieces = []
    for i in np.asarray(ids).tolist():
        a = source.read(i)
        k = max(1, math.ceil(a.size / max_n))  # equal consecutive chunks of ≤ max_s
        pieces += [c for c in np.array_split(a, k) if c.size]
    pieces.sort(key=lambda a: a.size)
    spread = int(cfg.val_bucket_s * SAMPLE_RATE)
    groups: list[list[np.ndarray]] = []
    for a in pieces:  # ascending: the newest piece is the longest
        g = groups[-1] if groups else None
        if g and a.size - g[0].size <= spread and a.size * (len(g) + 1) <= cfg.batch_samples:
            g.append(a)
        else:
            groups.append([a])
    rng = np.random.default_rng(0)  # unused without cropping
    batches = []
    for g in groups:
        wav, lens, waste = collate(g, False, rng, cfg.normalize)
        batches.append({"wav": wav, "lengths": lens, "waste": waste, "audio_s": float(lens.sum()) / SAMPLE_RATE})
    return batches


def _shuffle_within(mask, seed: int):
    """A permutation of the N masked steps [N] that moves each step's context to another masked step of the same
    utterance (seeded): the shuffled-context control. A model that beats chance without using the context at a
    step's position (e.g. by recognising a speaker's codes) scores as well with it; learning is the margin
    above it."""
    import torch

    utt = torch.repeat_interleave(torch.arange(mask.shape[0], device=mask.device), mask.sum(1))
    gen = torch.Generator(device=mask.device).manual_seed(seed)
    key = utt.double() + torch.rand(utt.shape[0], generator=gen, device=mask.device, dtype=torch.float64)
    return key.argsort()


def _entropy(p, dim: int = -1):
    import torch

    return -torch.sum(p * torch.log(p.clamp_min(1e-30)), dim)


def validate(model, batches: list[dict], cfg: PretrainConfig, device, tau: float, autocast) -> dict[str, float]:
    """Eval mode (no dropout, no Gumbel noise), fixed masks and distractors → the ``val_*`` record."""
    import torch

    from curate.w2v2.loss import wav2vec2_loss
    from curate.w2v2.step import prepare

    mc = cfg.model
    G, V = mc.codebooks, mc.codebook_entries
    keys = ("loss", "contrastive", "chance", "correct", "chance_acc", "n", "audio_s", "waste_s")
    tot = dict.fromkeys((*keys, "shuffled_correct", "shuffled_contrastive"), 0.0)
    counts = torch.zeros(G, V, dtype=torch.float64)
    psum = torch.zeros(G, V, dtype=torch.float64)
    hsum = torch.zeros(G, dtype=torch.float64)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for j, b in enumerate(batches):
            m = prepare(b, cfg, device, VAL_SEED + j)
            with autocast():
                out = model(m["wav"], m["mask"], m["valid"], tau, code_logits=True, lengths=m["lengths"])
            neg = m["neg"]
            res = wav2vec2_loss(out, neg, mc)
            shuf = wav2vec2_loss({**out, "c": out["c"][_shuffle_within(m["mask"], VAL_SEED + j)]}, neg, mc)
            tot["shuffled_correct"] += float(shuf["correct"])
            tot["shuffled_contrastive"] += float(shuf["contrastive_sum"])
            for k, src in (
                ("loss", "loss_sum"),
                ("contrastive", "contrastive_sum"),
                ("chance", "chance_sum"),
                ("correct", "correct"),
                ("chance_acc", "chance_acc_sum"),
            ):
                tot[k] += float(res[src])
            tot["n"] += res["n"]
            tot["audio_s"] += b["audio_s"]
            tot["waste_s"] += b["waste"] * b["wav"].size / SAMPLE_RATE
            p = torch.softmax(out["code_logits"].double(), -1).cpu()  # [N, G, V]
            counts += torch.nn.functional.one_hot(p.argmax(-1), V).sum(0)
            psum += p.sum(0)
            hsum += _entropy(p).sum(0)
    model.train(was_training)
    n = max(1.0, tot["n"])
    rec = {
        "val_loss": tot["loss"] / n,
        "val_contrastive": tot["contrastive"] / n,
        "val_contrastive_chance": tot["chance"] / n,
        "val_accuracy": tot["correct"] / n,
        "val_accuracy_chance": tot["chance_acc"] / n,
        "val_accuracy_shuffled": tot["shuffled_correct"] / n,
        "val_contrastive_shuffled": tot["shuffled_contrastive"] / n,
        "val_masked_steps": tot["n"],
        "val_scored_s": tot["audio_s"],
        "val_padding_s": tot["waste_s"],
        "val_ln_v": math.log(V),
    }
    for g in range(G):
        pbar, hbar = psum[g] / n, float(hsum[g]) / n
        rec[f"val_code_perplexity_{g}"] = float(torch.exp(_entropy(counts[g] / n)))
        rec[f"val_prob_perplexity_{g}"] = float(torch.exp(_entropy(pbar)))
        rec[f"val_code_entropy_{g}"] = hbar
        rec[f"val_code_mi_{g}"] = float(_entropy(pbar)) - hbar
        rec[f"val_code_dependence_{g}"] = 1.0 - hbar / math.log(V)
    return rec


def below_chance(rec: dict) -> float:
    """How far the held-out contrastive loss is below its chance level, as a fraction of chance."""
    c = rec.get("val_contrastive_chance") or 0.0
    return 1.0 - rec["val_contrastive"] / c if c > 0 else 0.0


def held_out_line(result: dict | str) -> str:
    """One line for people: the last held-out contrastive loss beside its chance level, and the accuracy beside
    its chance. ``result``: ``pretrain``'s summary, a metrics record, or a run's output directory."""
    if isinstance(result, dict) and "val" in result:
        result = result["val"] or {}
    if not isinstance(result, dict):
        import json
        from pathlib import Path

        recs = [json.loads(ln) for ln in (Path(result) / "metrics.jsonl").read_text().splitlines()]
        result = next((r for r in reversed(recs) if "val_contrastive" in r), {})
    if "val_contrastive" not in result:
        return "held-out: no validation ran (no held-out segments: a session needs ≥ 2 segments)"
    r = result
    b = below_chance(r)
    state = f"{b:.1%} below chance" if b >= 0.02 else "at chance (within 2 %)" if b > -0.02 else "above chance"
    control = ""
    if "val_accuracy_shuffled" in r:
        s = r["val_accuracy_shuffled"]
        control = f"shuffled-context control {s:.3f}, {r['val_accuracy'] - s:+.3f} over it; "
    return (
        f"held-out accuracy {r['val_accuracy']:.3f} ({control}chance {r['val_accuracy_chance']:.3f}), {state}: "
        f"held-out contrastive {r['val_contrastive']:.3f} (chance {r['val_contrastive_chance']:.3f})"
    )


def score_utterances(checkpoint: str | Path, source, device: str = "cpu") -> list[list[float]]:
    """Per held-out utterance of ``source`` (e.g. an ablation's shared ``ValSetSource``): [contrastive loss sum,
    masked steps, correct] of the checkpoint's model in eval mode. Masks and distractors depend only on the
    utterance's position (train.seed fixed to 0), so two checkpoints are scored on identical masked steps:
    what pairs two variants' losses utterance by utterance."""
    import dataclasses

    import torch

    from curate.w2v2 import checkpoint as checkpoints
    from curate.w2v2.config import load_config
    from curate.w2v2.data import collate
    from curate.w2v2.loss import wav2vec2_loss
    from curate.w2v2.model import Wav2Vec2
    from curate.w2v2.step import prepare

    ck = checkpoints.load(checkpoint)
    cfg = load_config(ck["config"])
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=0))
    model = Wav2Vec2(cfg.model).to(device)
    model.load_state_dict(ck["model"])
    model.eval()
    mc = cfg.model
    tau = max(mc.tau_end, mc.tau_start * mc.tau_decay ** int(ck.get("step", 0)))
    max_n = int(cfg.data.max_s * SAMPLE_RATE)
    rng, g, out = np.random.default_rng(0), 0, []
    with torch.no_grad():
        for i in range(len(source.lengths)):
            a = source.read(i)
            row = [0.0, 0.0, 0.0]
            for c in np.array_split(a, max(1, math.ceil(a.size / max_n))):
                wav, lens, _ = collate([c], False, rng, cfg.data.normalize)
                m = prepare({"wav": wav, "lengths": lens}, cfg, device, VAL_SEED + g)
                g += 1
                res = wav2vec2_loss(
                    model(m["wav"], m["mask"], m["valid"], tau),
                    m["neg"],
                    mc,
                )
                row = [row[0] + float(res["contrastive_sum"]), row[1] + float(res["n"]), row[2] + float(res["correct"])]
            out.append(row)
    return out
