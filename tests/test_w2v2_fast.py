"""The GPU fast paths compute the same function as the reference formulation (CPU, fp32): the FFT positional
convolution, the channels-last CNN, the fused contrastive logits, and the whole step with all of them."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from curate.w2v2.config import ModelConfig, load_config
from curate.w2v2.loss import compute_mask, contrastive_logits, sample_negatives
from curate.w2v2.model import FeatureEncoder, PositionalConv, Wav2Vec2


def _grads(module, x, impl_attr, impl):
    setattr(module, impl_attr, impl)
    y = module(x)
    return y, torch.autograd.grad(y.square().sum(), [x, *module.parameters()])


@pytest.mark.parametrize(("kernel", "groups", "hidden", "T"), [(16, 4, 64, 37), (15, 4, 64, 50), (128, 16, 768, 90)])
def test_fft_positional_conv_equals_the_grouped_conv(kernel, groups, hidden, T):
    cfg = ModelConfig(hidden=hidden, heads=4, pos_conv_kernel=kernel, pos_conv_groups=groups)
    torch.manual_seed(0)
    pc = PositionalConv(cfg)
    x = torch.randn(2, T, hidden, requires_grad=True)
    y0, g0 = _grads(pc, x, "impl", "grouped")
    y1, g1 = _grads(pc, x, "impl", "fft")
    torch.testing.assert_close(y1, y0, rtol=1e-4, atol=1e-5)
    for a, b in zip(g0, g1, strict=True):  # input, bias, weight_g, weight_v
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max()))


@pytest.mark.parametrize("chunk", [2**27, 1])  # 1: ChannelNormGELU works one utterance at a time
def test_channels_last_cnn_equals_conv1d(chunk, monkeypatch):
    monkeypatch.setattr("curate.w2v2.model.NORM_CHUNK", chunk)
    cfg = load_config("tiny-cpu").model
    torch.manual_seed(0)
    enc = FeatureEncoder(cfg)
    with torch.no_grad():  # move the norm's affine parameters off their init values
        enc.layers[0].norm.weight.add_(0.3 * torch.randn(cfg.conv_dim[0]))
        enc.layers[0].norm.bias.add_(0.3 * torch.randn(cfg.conv_dim[0]))
    wav = torch.randn(3, 16000, requires_grad=True)
    y0, g0 = _grads(enc, wav, "layout", "ncl")
    y1, g1 = _grads(enc, wav, "layout", "nlc")
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-6)
    for a, b in zip(g0, g1, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5 * float(a.abs().max()))


def _unfused_logits(c, q, neg_idx, temp):
    """The formulation before the fused one: gather [N, K, F], cosine_similarity, compare vectors."""
    negs = q[neg_idx]
    logits = F.cosine_similarity(c[:, None], torch.cat([q[:, None], negs], 1), dim=-1) / temp
    logits[:, 1:] = logits[:, 1:].masked_fill((negs == q[:, None]).all(-1), float("-inf"))
    return logits


def test_fused_contrastive_logits_equal_the_unfused_ones():
    g = torch.Generator().manual_seed(0)
    mask = compute_mask(torch.tensor([80, 60, 80]), 80, 0.5, 10, g, min_spans=2)
    N, F_ = int(mask.sum()), 16
    codes = torch.randint(0, 4, (N,), generator=g)  # few codes → many distractors equal to their target
    table = torch.randn(4, F_, generator=g)
    c, q = torch.randn(N, F_, generator=g, requires_grad=True), table[codes].requires_grad_()
    neg = sample_negatives(mask, 20, g)
    ref = _unfused_logits(c, q, neg, 0.1)
    fin = torch.isfinite(ref)
    ga = torch.autograd.grad(ref[fin].sum(), [c, q])
    for kw in ({}, {"mask": mask}, {"mask": mask, "codes": codes}):
        out = contrastive_logits(c, q, neg, 0.1, **kw)
        assert torch.equal(torch.isinf(out), torch.isinf(ref)) and torch.isinf(ref).any()
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        gb = torch.autograd.grad(out[fin].sum(), [c, q])
        for a, b in zip(ga, gb, strict=True):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_whole_step_with_every_fast_path_equals_the_reference():
    from curate.w2v2.step import accumulate_gradients, prepare

    rng = np.random.default_rng(0)
    batch = {"wav": rng.standard_normal((2, 24000)).astype(np.float32), "lengths": np.array([24000, 24000])}
    grads, stats = [], []
    for impl, layout in (("grouped", "ncl"), ("fft", "nlc")):
        cfg = load_config("tiny-cpu", [f"model.pos_conv_impl={impl}", f"model.cnn_layout={layout}"])
        torch.manual_seed(0)
        model = Wav2Vec2(cfg.model).train()
        st = accumulate_gradients(model, [prepare(batch, cfg, torch.device("cpu"), 7)], cfg, 2.0, 1, nullcontext)
        stats.append(st)
        grads.append({k: p.grad for k, p in model.named_parameters() if p.grad is not None})
    assert float(stats[0]["loss_sum"]) == pytest.approx(float(stats[1]["loss_sum"]), rel=1e-5)
    assert int(stats[0]["correct"]) == int(stats[1]["correct"])
    for k, a in grads[0].items():
        torch.testing.assert_close(grads[1][k], a, rtol=1e-3, atol=1e-4 * float(a.abs().max()) + 1e-8, msg=k)
