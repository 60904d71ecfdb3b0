"""wav2vec 2.0 model and objective: shapes (50 frames/s with the real CNN), the vectorized loss against a
plain loop-based reference, masking statistics and distractor sampling, configs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from curate.errors import ConfigError
from curate.w2v2.config import ModelConfig, load_config
from curate.w2v2.loss import compute_mask, contrastive_logits, sample_negatives, wav2vec2_loss
from curate.w2v2.model import FeatureEncoder, Wav2Vec2, flops_per_audio_second, frames_for

REPO = Path(__file__).resolve().parent.parent


def test_real_cnn_gives_exactly_50_frames_per_second():
    cfg = ModelConfig()  # the real spec: 7 × 512, padding [3,1,1,1,1,0,0]
    enc = FeatureEncoder(cfg)
    with torch.no_grad():
        y = enc(torch.randn(2, 16000))
    assert y.shape == (2, 512, 50)
    for seconds in (1, 2, 7, 30):
        assert frames_for(16000 * seconds, cfg) == 50 * seconds
    assert isinstance(enc.layers[0].norm, torch.nn.GroupNorm) and enc.layers[0].norm.num_groups == 512
    assert all(layer.norm is None for layer in enc.layers[1:])


def test_base_size_and_flops_match_the_thesis():
    cfg = ModelConfig()
    model = Wav2Vec2(cfg)
    assert 94e6 < model.num_params() < 96e6  # wav2vec 2.0 BASE ≈ 95 M parameters
    assert 42e9 < flops_per_audio_second(cfg) < 50e9  # ≈ 46 GFLOP per audio second (fwd + bwd)


def _reference_loss(c, q, neg, prob_logits, feats, cfg):
    """Slow, obviously-correct loops: contrastive (cosine / τ, CE on the target), diversity, L2."""
    N, K = len(neg), len(neg[0])
    contrastive = 0.0
    for n in range(N):

        def cos(a, b):
            return float(
                sum(x * y for x, y in zip(a, b, strict=True))
                / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
            )

        scores = [cos(c[n], q[n]) / cfg.logit_temp]
        for k in range(K):
            j = neg[n][k]
            scores.append(-math.inf if list(q[j]) == list(q[n]) else cos(c[n], q[j]) / cfg.logit_temp)
        m = max(scores)
        contrastive += -(scores[0] - m - math.log(sum(math.exp(s - m) for s in scores if s != -math.inf)))
    ppl_sum = 0.0
    for g in range(cfg.codebooks):
        avg = [0.0] * cfg.codebook_entries
        for n in range(N):
            row = prob_logits[n][g]
            z = sum(math.exp(v) for v in row)
            for v in range(cfg.codebook_entries):
                avg[v] += math.exp(row[v]) / z / N
        ppl_sum += math.exp(-sum(p * math.log(p + 1e-7) for p in avg))
    GV = cfg.codebooks * cfg.codebook_entries
    diversity = (GV - ppl_sum) / GV
    l2 = sum(x * x for row in feats for x in row) / (len(feats) * len(feats[0]))
    return contrastive + N * (cfg.diversity_weight * diversity + cfg.l2_weight * l2), contrastive, diversity


def test_vectorized_loss_equals_loop_reference():
    cfg = ModelConfig(codebooks=2, codebook_entries=5, num_negatives=4)
    g = torch.Generator().manual_seed(0)
    N, F = 7, 6
    c, q = torch.randn(N, F, generator=g), torch.randn(N, F, generator=g)
    q[3] = q[5]  # a distractor equal to the target is excluded
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[0, :N] = True
    neg = sample_negatives(mask, cfg.num_negatives, g)
    neg[5, 0] = 3
    prob_logits = torch.randn(N, cfg.codebooks, cfg.codebook_entries, generator=g)
    feats = torch.randn(3, 4, generator=g)
    avg = torch.softmax(prob_logits, -1).mean(0)
    out = {"c": c, "q": q, "prob_ppl": torch.exp(-(avg * torch.log(avg + 1e-7)).sum(-1)), "l2": feats.pow(2).mean()}
    res = wav2vec2_loss(out, neg, cfg)
    ref_total, ref_con, ref_div = _reference_loss(
        c.tolist(), q.tolist(), neg.tolist(), prob_logits.tolist(), feats.tolist(), cfg
    )
    assert float(res["contrastive_sum"]) == pytest.approx(ref_con, rel=1e-5)
    assert float(res["diversity"]) == pytest.approx(ref_div, rel=1e-5)
    assert float(res["loss_sum"]) == pytest.approx(ref_total, rel=1e-5)
    assert torch.isinf(contrastive_logits(c, q, neg, 0.1)[5, 1])


def test_model_forward_returns_masked_steps_only_and_finite_loss():
    cfg = load_config("tiny-cpu").model
    model = Wav2Vec2(cfg)
    wav = torch.randn(2, 32000)
    mask = compute_mask(torch.tensor([100, 100]), 100, cfg.mask_prob, cfg.mask_length, torch.Generator().manual_seed(1))
    out = model(wav, mask, None, tau=2.0)
    N = int(mask.sum())
    assert out["c"].shape == (N, cfg.final_dim) and out["q"].shape == (N, cfg.final_dim)
    res = wav2vec2_loss(out, sample_negatives(mask, cfg.num_negatives), cfg)
    assert torch.isfinite(res["loss_sum"])
    res["loss_sum"].backward()
    assert model.mask_emb.grad is not None and model.feature_extractor.layers[0].conv.weight.grad is not None


def _expected_masked_fraction(T: int, p: float, L: int) -> float:
    """Exact expectation for the fairseq rule, by enumeration (k uniform from floor(pT/L + U))."""
    n = T - L + 1
    base = p * T / L
    k_lo = int(base)
    w_hi = base - k_lo  # P(k = k_lo + 1)
    total = 0.0
    for k, w in ((k_lo, 1 - w_hi), (k_lo + 1, w_hi)):
        for t in range(T):
            cover = min(t, n - 1) - max(0, t - L + 1) + 1  # starts that would mask frame t
            p_free = math.comb(n - cover, k) / math.comb(n, k)
            total += w * (1 - p_free) / T
    return total


def test_masking_statistics_and_padding_excluded():
    T, B, p, L = 200, 3000, 0.5, 10
    lengths = torch.full((B,), T)
    lengths[B // 2 :] = 120  # half the batch is padded after 120 frames
    mask = compute_mask(lengths, T, p, L, torch.Generator().manual_seed(0))
    full = mask[: B // 2].float().mean().item()
    assert full == pytest.approx(_expected_masked_fraction(T, p, L), abs=0.005)
    assert mask[B // 2 :].float().sum(1).div(120).mean().item() == pytest.approx(
        _expected_masked_fraction(120, p, L), abs=0.005
    )
    assert not mask[B // 2 :, 120:].any()  # padding is never masked
    # spans: every run of masked frames is at least L long (overlapping spans merge)
    row = mask[0].int().tolist()
    runs = [len(r) for r in "".join(map(str, row)).split("0") if r]
    assert min(runs) >= L


def test_distractors_come_from_other_masked_steps_of_the_same_utterance():
    mask = compute_mask(torch.tensor([80, 50, 120]), 120, 0.5, 10, torch.Generator().manual_seed(3))
    neg = sample_negatives(mask, 100, torch.Generator().manual_seed(4))
    counts = mask.sum(1).tolist()
    utt = np.repeat(np.arange(3), counts)
    assert neg.shape == (sum(counts), 100)
    n = torch.arange(neg.shape[0])[:, None]
    assert not (neg == n).any()  # the target's own step is excluded
    assert (utt[neg.numpy()] == utt[:, None]).all()  # same utterance only
    first = neg[: counts[0]].flatten().bincount(minlength=counts[0]).float()
    assert first.min() > 0.5 * first.mean()  # roughly uniform over the utterance's steps


def test_every_pretrain_config_loads_and_base_matches_thesis():
    for path in sorted((REPO / "configs" / "pretrain").glob("*.yaml")):
        load_config(path)
    base, large = load_config("base"), load_config("large")
    m = base.model
    assert (m.layers, m.hidden, m.heads, m.ffn) == (12, 768, 12, 3072)
    assert (m.codebooks, m.codebook_entries, m.codevector_dim // m.codebooks) == (2, 320, 128)
    assert (m.mask_prob, m.mask_length, m.num_negatives, m.logit_temp) == (0.5, 10, 100, 0.1)
    assert (m.diversity_weight, m.l2_weight, m.feature_grad_mult) == (0.1, 10.0, 0.1)
    assert (m.tau_start, m.tau_end, m.tau_decay) == (2.0, 0.5, 0.999995)
    assert base.data.batch_samples == 2_400_000 and base.optim.betas == [0.9, 0.98]
    assert (large.model.layers, large.model.hidden, large.model.heads, large.model.ffn) == (24, 1024, 16, 4096)
    assert large.model.codevector_dim // large.model.codebooks == 384
    tiny = load_config("tiny-cpu").model
    assert (tiny.conv_kernel, tiny.conv_stride, tiny.conv_padding) == (m.conv_kernel, m.conv_stride, m.conv_padding)


def test_bad_config_gives_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown parameter"):
        load_config("base", ["model.hiden=5"])
    with pytest.raises(ConfigError, match=r"SECTION\.KEY"):
        load_config("base", ["hidden=5"])
    with pytest.raises(ConfigError, match="loss_reduction"):
        load_config("base", ["model.loss_reduction=mean"])
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "nope.yaml")


def test_padding_never_changes_an_utterances_features():
    """The one padding rule (pre-training validation, fine-tuning, evaluation, probing): an utterance's states in a
    zero-padded batch equal its states alone — GroupNorm over valid frames, padded frames zeroed, attention masked."""
    from curate.w2v2.config import load_config
    from curate.w2v2.finetune import all_hidden_states
    from curate.w2v2.model import Wav2Vec2

    cfg = load_config("tiny-cpu")
    torch.manual_seed(0)
    model = Wav2Vec2(cfg.model).eval()
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(1, 16000, generator=g), torch.randn(1, 27000, generator=g)  # 1 s and ~1.7 s
    batch = torch.zeros(2, 27000)
    batch[0, :16000], batch[1] = a[0], b[0]
    lens = torch.tensor([16000, 27000])
    with torch.no_grad():
        padded, flens, _ = all_hidden_states(model, batch, lens)
        for i, x in enumerate((a, b)):
            alone, fl, _ = all_hidden_states(model, x, torch.tensor([x.shape[1]]))
            assert int(flens[i]) == int(fl[0])
            for layer in (0, len(alone) - 1):  # the transformer input and the last layer
                torch.testing.assert_close(padded[layer][i, : int(fl[0])], alone[layer][0], atol=1e-4, rtol=1e-4)
        # without the lengths (the old rule: GroupNorm sees the zeros) the short utterance's features move
        moved, _ = model.features(batch)
        ref, _ = model.features(a)
        assert (moved[0, : ref.shape[1]] - ref[0]).abs().max() > 1e-2
