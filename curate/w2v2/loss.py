"""The pre-training objective, fully vectorized: span masking, distractor sampling, contrastive + diversity + L2.

Masking follows fairseq's ``compute_mask_indices``: per utterance with T valid frames, draw
``int(p · T / L + U[0,1))`` span starts without replacement from ``[0, T − L]`` and mask L frames from each
(spans may overlap, so the masked fraction is below p: ≈ 1 − (1 − p/L)^L ≈ 40 % for p = 0.5, L = 10).
That ``p`` is what fairseq's and the thesis's configs call the mask probability (``mask_semantics: spans``);
the wav2vec 2.0 paper's 0.065 is a per-frame *start* probability (``mask_semantics: start_prob``), i.e. p/L:
``ModelConfig.span_p`` converts. Padding frames are never masked and never drawn as distractors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def compute_mask(
    lengths: torch.Tensor, T: int, p: float, span: int, generator: torch.Generator | None = None, min_spans: int = 1
) -> torch.Tensor:
    """lengths [B] valid frames → mask [B, T] bool. No Python loop over the batch."""
    B = lengths.shape[0]
    dev = lengths.device
    n_starts = (lengths - span + 1).clamp(min=0)  # [B] admissible start positions
    u = torch.rand(B, generator=generator, device=dev)
    k = (p * lengths.double() / span + u).long().clamp(min=min_spans)  # [B] spans to draw
    k = torch.minimum(k, n_starts)
    pos = torch.arange(T, device=dev)
    # Sampling k of n without replacement: rank random keys; admissible positions get keys in [0,1), others 2.
    keys = torch.rand(B, T, generator=generator, device=dev)
    keys = torch.where(pos[None] < n_starts[:, None], keys, torch.full_like(keys, 2.0))
    rank = keys.argsort(1).argsort(1)  # [B, T] rank of each position
    starts = rank < k[:, None]  # [B, T] chosen span starts
    # A frame is masked if a start lies in [t − span + 1, t]: difference of a running count.
    c = F.pad(starts.long().cumsum(1), (span, 0))  # [B, T + span]
    covered = (c[:, span:] - c[:, :-span]) > 0
    return covered & (pos[None] < lengths[:, None])


def sample_negatives(mask: torch.Tensor, K: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """mask [B, T] → indices [N, K] into the N masked steps (row-major order): for each masked step, K
    distractors drawn uniformly with replacement from the other masked steps of the same utterance."""
    m = mask.sum(1)  # [B] masked steps per utterance
    utt = torch.repeat_interleave(torch.arange(mask.shape[0], device=mask.device), m)  # [N] utterance of step
    offset = torch.cumsum(m, 0) - m  # [B] first row of each utterance
    rank = torch.arange(utt.shape[0], device=mask.device) - offset[utt]  # [N] rank within its utterance
    high = (m[utt] - 1).clamp(min=1)  # [N] choices excluding itself
    r = (torch.rand(utt.shape[0], K, generator=generator, device=mask.device) * high[:, None]).long()
    r = r + (r >= rank[:, None]).long()  # skip the target's own step
    return offset[utt][:, None] + r.clamp(max=(m[utt] - 1)[:, None])


def contrastive_logits(
    c: torch.Tensor,
    q: torch.Tensor,
    neg_idx: torch.Tensor,
    temp: float,
    mask: torch.Tensor | None = None,
    codes: torch.Tensor | None = None,
) -> torch.Tensor:
    """c, q [N, F]; neg_idx [N, K] → logits [N, 1 + K] (column 0 = the true target), fp32.
    A distractor identical to the target (same code) gets −inf, as in fairseq.

    Each row is normalised once. With the span ``mask`` [B, T] the distractor similarities come from one
    [B, T, T] batched GEMM per batch (distractors are drawn from the same utterance) instead of a gathered
    [N, K, F] tensor; ``codes`` [N] (the quantizer's picks) replace comparing [N, K, F] vectors."""
    with torch.autocast(c.device.type, enabled=False):
        cn = F.normalize(c.float(), dim=-1, eps=1e-8)  # as cosine_similarity: x / max(‖x‖, 1e-8)
        qn = F.normalize(q.float(), dim=-1, eps=1e-8)
        pos = (cn * qn).sum(-1, keepdim=True)  # [N, 1]
        if mask is None:
            neg = torch.bmm(qn[neg_idx], cn.unsqueeze(-1)).squeeze(-1)  # [N, K]
        else:
            B, T = mask.shape
            frame = mask.flatten().nonzero().squeeze(1)  # [N] position b·T + t of each masked step
            cp = cn.new_zeros(B * T, cn.shape[1]).index_copy(0, frame, cn).view(B, T, -1)
            qp = qn.new_zeros(B * T, qn.shape[1]).index_copy(0, frame, qn).view(B, T, -1)
            sim = torch.bmm(cp, qp.transpose(1, 2)).view(B * T, T)  # [B·T, T] within each utterance
            neg = sim[frame].gather(1, frame[neg_idx] % T)  # [N, K]
        if codes is None:
            same = (q[neg_idx] == q[:, None]).all(-1)  # [N, K]
        else:
            same = codes[neg_idx] == codes[:, None]
        logits = torch.cat([pos, neg.masked_fill(same, float("-inf"))], 1) / temp
    return logits


def wav2vec2_loss(out: dict, neg_idx: torch.Tensor, cfg) -> dict:
    """Summed loss of one micro-batch and its parts. The caller divides by the masked steps of the whole
    (accumulated, all-GPU) batch for ``per_token`` reduction; ``sum`` keeps the thesis's summed loss.

    loss_sum = Σ_n CE_n + N · (0.1 · L_d + 10 · L2), L_d = (G·V − Σ_g perplexity_g) / (G·V).
    """
    logits = contrastive_logits(out["c"], out["q"], neg_idx, cfg.logit_temp, out.get("mask"), out.get("codes"))
    N = logits.shape[0]
    target = torch.zeros(N, dtype=torch.long, device=logits.device)
    contrastive = F.cross_entropy(logits, target, reduction="sum")
    GV = cfg.codebooks * cfg.codebook_entries
    diversity = (GV - out["prob_ppl"].sum()) / GV
    loss = contrastive + N * (cfg.diversity_weight * diversity + cfg.l2_weight * out["l2"])
    with torch.no_grad():
        chance = chance_levels(logits)
    return {
        "loss_sum": loss,
        "contrastive_sum": contrastive.detach(),
        "diversity": diversity.detach(),
        "l2": out["l2"].detach(),
        "correct": chance["correct"],
        "chance_sum": chance["chance_sum"],
        "chance_acc_sum": chance["chance_acc_sum"],
        "n": N,
    }


def chance_levels(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Chance level of the contrastive loss and accuracy on the *actual* distractor sets of ``logits`` [N, 1 + K].

    A distractor identical to its target was set to −inf, so a step has K_eff ≤ K usable distractors (a
    distractor drawn twice is in the softmax twice and counts twice). A model that cannot tell the target from
    them scores at best ln(K_eff + 1) (target and usable distractors are exchangeable; Jensen) and picks the
    target with probability 1 / (K_eff + 1). Sums over steps, so they average like the metrics themselves.
    ``correct`` counts a step only when the target beats every distractor strictly (all-equal logits, e.g. a
    zero context vector, are not a hit), as fairseq's argmax/argmin rule.
    """
    k_eff = torch.isfinite(logits[:, 1:]).sum(1).double()  # [N]
    if logits.shape[1] > 1:
        correct = logits[:, 0] > logits[:, 1:].max(1).values
    else:
        correct = torch.ones_like(logits[:, 0], dtype=torch.bool)
    return {
        "k_eff": k_eff,
        "chance_sum": torch.log1p(k_eff).sum(),
        "chance_acc_sum": (1.0 / (k_eff + 1)).sum(),
        "correct": correct.sum(),
        "correct_steps": correct,
    }


COLLAPSE_LOSS = math.log(101)  # ln(K + 1) for K = 100 distractors, none identical to its target (the upper bound)
