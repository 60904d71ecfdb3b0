"""wav2vec 2.0 (thesis §5.2), top to bottom: CNN encoder → masking → transformer → quantizer → logits.

Shapes: B batch, S samples, T frames (S/320 = 50 per second), C CNN channels (512), D hidden (768 BASE),
G codebooks (2), V entries (320), F final_dim (256), N masked steps in the batch, K distractors (100).
Numerically sensitive parts (GroupNorm, L2 penalty, Gumbel softmax, cosine similarity, losses) run in fp32
even under bf16 autocast. The objective itself lives in loss.py.

Two layers have a fast formulation for GPUs (``model.pos_conv_impl``, ``model.cnn_layout``; ``auto`` picks it
on CUDA and the reference formulation elsewhere); both compute the same function (tests compare them).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from curate.w2v2.config import ModelConfig


def frames_for(num_samples: torch.Tensor | int, cfg: ModelConfig) -> torch.Tensor | int:
    """Number of CNN frames for ``num_samples`` (per conv: floor((L + 2p − k) / s) + 1); 16000 → 50."""
    n = num_samples
    for k, s, p in zip(cfg.conv_kernel, cfg.conv_stride, cfg.conv_padding, strict=True):
        n = (n + 2 * p - k) // s + 1
    return n


class GradMultiply(torch.autograd.Function):
    """Identity forward, gradient × scale backward (the CNN learns 10× slower than the transformer)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class FeatureEncoder(nn.Module):
    """[B, S] waveform → [B, C, T] features. GroupNorm (one group per channel) after the first conv only."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layers, c_in = [], 1
        for i, (c, k, s, p) in enumerate(
            zip(cfg.conv_dim, cfg.conv_kernel, cfg.conv_stride, cfg.conv_padding, strict=True)
        ):
            layer = nn.Module()
            layer.conv = nn.Conv1d(c_in, c, k, stride=s, padding=p, bias=False)
            nn.init.kaiming_normal_(layer.conv.weight)
            layer.norm = nn.GroupNorm(c, c, affine=True) if i == 0 else None
            layers.append(layer)
            c_in = c
        self.layers = nn.ModuleList(layers)
        self.layout = cfg.cnn_layout

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``lengths`` [B] valid samples of a zero-padded batch: the padding rule shared by pre-training,
        validation, fine-tuning and evaluation is that padding never changes an utterance's features — the
        GroupNorm statistics are taken over each utterance's valid frames only, and every layer's frames past
        the valid length are zeroed (as the conv's own zero padding of an utterance alone), so the valid
        frames equal those of the utterance run alone. Cropped batches (pre-training) have no padding."""
        padded = lengths is not None and bool((lengths < wav.shape[1]).any())
        if not padded and (self.layout == "nlc" or (self.layout == "auto" and wav.device.type == "cuda")):
            return self._forward_nlc(wav)
        x = wav.unsqueeze(1)  # [B, 1, S]
        n = lengths.to(wav.device) if padded else None
        for layer in self.layers:
            x = layer.conv(x)
            valid = None
            if n is not None:
                (k,), (st,), (p,) = layer.conv.kernel_size, layer.conv.stride, layer.conv.padding
                n = torch.div(n + 2 * p - k, st, rounding_mode="floor") + 1
                valid = (torch.arange(x.shape[-1], device=x.device)[None] < n[:, None]).unsqueeze(1)  # [B, 1, T]
            if layer.norm is not None:  # fp32 island: per-channel stats over time
                x = _group_norm(x.float(), layer.norm, valid)
            x = F.gelu(x)
            if valid is not None:
                x = x * valid
        return x  # [B, C, T]

    def _forward_nlc(self, wav: torch.Tensor) -> torch.Tensor:
        """The same convolutions as 2-D convs [B, C, 1, L] in channels-last memory ([B, L, C] in memory): cuDNN
        runs them as tensor-core implicit GEMMs, without NCHW↔NHWC conversions around every conv. PyTorch has no
        channels-last GroupNorm kernel on CUDA (it would transpose the largest activation twice), so the first
        layer's norm + GELU is ``ChannelNormGELU``: fp32 statistics, nothing fp32 kept for backward."""
        cl = torch.channels_last
        x = wav[:, None, None, :].contiguous(memory_format=cl)  # [B, 1, 1, S]
        for layer in self.layers:
            c = layer.conv
            w = c.weight.unsqueeze(2).contiguous(memory_format=cl)
            x = F.conv2d(x, w, None, (1, c.stride[0]), (0, c.padding[0])).contiguous(memory_format=cl)
            if layer.norm is not None:
                x = ChannelNormGELU.apply(x, layer.norm.weight, layer.norm.bias, layer.norm.eps)
            else:
                x = F.gelu(x)
        return x.squeeze(2)  # [B, C, T] (a strided view of [B, T, C] memory)


def _group_norm(x: torch.Tensor, norm: nn.GroupNorm, valid: torch.Tensor | None) -> torch.Tensor:
    """One group per channel over time; with ``valid`` [B, 1, T] the statistics of the valid frames only."""
    if valid is None:
        return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)
    v = valid.to(x.dtype)
    cnt = v.sum(-1, keepdim=True).clamp_min(1.0)  # [B, 1, 1]
    mean = (x * v).sum(-1, keepdim=True) / cnt
    var = (((x - mean) * v) ** 2).sum(-1, keepdim=True) / cnt
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight[:, None] + norm.bias[:, None]


NORM_CHUNK = 2**27  # elements per fp32 temporary of ChannelNormGELU (512 MiB)


class ChannelNormGELU(torch.autograd.Function):
    """GELU(GroupNorm with one group per channel) of x [B, C, 1, L], any memory layout, statistics and math in
    fp32, output in x's dtype. Saves only x and the [B, C] statistics (the reference path keeps two fp32 copies
    of this [B, 512, 1, S/5] tensor for backward: 7.8 GB for a 600 s batch). Forward reads and writes the big
    tensor as often as GroupNorm + GELU do; backward recomputes the pre-activation and needs two reductions
    (Σ g, Σ g·x per channel). Works in batch chunks so no fp32 temporary exceeds ``NORM_CHUNK`` elements."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        B, C = x.shape[:2]
        w, b = weight.float().view(1, C, 1, 1), bias.float().view(1, C, 1, 1)
        out = torch.empty_like(x)
        mean, rstd = x.new_empty(B, C, 1, 1, dtype=torch.float32), x.new_empty(B, C, 1, 1, dtype=torch.float32)
        step = max(1, NORM_CHUNK // max(1, x[0].numel()))
        for i in range(0, B, step):
            xf = x[i : i + step].float()
            var, m = torch.var_mean(xf, dim=-1, keepdim=True, correction=0)
            r = torch.rsqrt(var + eps)
            a = r * w
            h = torch.addcmul(b - m * a, xf, a)  # (x − mean)·rstd·w + b
            del xf
            out[i : i + step] = torch.ops.aten.gelu_(h)
            mean[i : i + step], rstd[i : i + step] = m, r
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.step = step
        return out

    @staticmethod
    def backward(ctx, gy):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        C, L, step = x.shape[1], x.shape[-1], ctx.step
        w, b = weight.float().view(1, C, 1, 1), bias.float().view(1, C, 1, 1)
        gx = torch.empty_like(x)
        gw, gb = torch.zeros(C, device=x.device), torch.zeros(C, device=x.device)
        for i in range(0, x.shape[0], step):
            xc, m, r = x[i : i + step], mean[i : i + step], rstd[i : i + step]
            a = r * w
            g = torch.ops.aten.gelu_backward(gy[i : i + step].float(), torch.addcmul(b - m * a, xc, a))  # ∂/∂h
            s1 = g.sum(-1, keepdim=True)  # Σ_t g
            s2 = r * ((g * xc).sum(-1, keepdim=True) - m * s1)  # Σ_t g·x̂
            gw += s2.sum((0, 2, 3))
            gb += s1.sum((0, 2, 3))
            # ∂/∂x = a·(g − s1/L − x̂·s2/L), x̂ = (x − mean)·rstd: a·g + c0 − k·x
            k = a * r * s2 / L
            gx[i : i + step] = torch.addcmul(k * m - a * s1 / L, g, a).addcmul_(xc, -k)
        return gx, gw.to(weight.dtype), gb.to(bias.dtype), None


class PositionalConv(nn.Module):
    """Convolutional relative positional embedding: kernel 128, padding 64, 16 groups, weight norm, GELU."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        conv = nn.Conv1d(
            cfg.hidden, cfg.hidden, cfg.pos_conv_kernel, padding=cfg.pos_conv_kernel // 2, groups=cfg.pos_conv_groups
        )
        std = math.sqrt(4 / (cfg.pos_conv_kernel * cfg.hidden))  # fairseq's init
        nn.init.normal_(conv.weight, mean=0, std=std)
        nn.init.zeros_(conv.bias)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.remove = 1 if cfg.pos_conv_kernel % 2 == 0 else 0  # even kernel + padding k/2 → one extra frame
        self.impl = cfg.pos_conv_impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D] → [B, T, D]
        if self.impl == "fft" or (self.impl == "auto" and x.device.type == "cuda"):
            return self._forward_fft(x)
        y = self.conv(x.transpose(1, 2))
        if self.remove:
            y = y[:, :, : -self.remove]
        return F.gelu(y).transpose(1, 2)

    def _forward_fft(self, x: torch.Tensor) -> torch.Tensor:
        """The grouped convolution in the frequency domain, fp32. cuDNN runs a 48-channel group with a 128-tap
        kernel on CUDA cores (≈ 2·T·D·48·128 FLOPs); here it is per frequency a [B, 48] × [48, 48] complex
        product per group (≈ 50× fewer FLOPs at 15 s) plus FFTs. Cross-correlation with zero padding K//2:
        y[t] = Σ_k w[k] x[t + k − K//2]; with n ≥ T + K nothing wraps around."""
        B, T, D = x.shape
        w = self.conv.weight  # [D, D/G, K] (weight norm applied)
        G, Cg, K = D // w.shape[1], w.shape[1], w.shape[2]
        n = _fft_size(T + K)
        with torch.autocast(x.device.type, enabled=False):  # FFTs along the last, contiguous dim
            xf = torch.fft.rfft(x.float().transpose(1, 2).contiguous(), n=n).view(B, G, Cg, -1)  # [B, G, Ci, F]
            # tap k sits at lag k − K//2 (mod n): roll the zero-padded kernel so the lag-0 tap is at index 0
            wk = torch.roll(F.pad(w.float(), (0, n - K)), -(K // 2), dims=-1).view(G, Cg, Cg, n)  # [G, Co, Ci, n]
            yf = torch.einsum("bgif,goif->bgof", xf, torch.fft.rfft(wk).conj()).reshape(B, D, -1)  # [B, D, F]
            y = (torch.fft.irfft(yf, n=n)[..., :T] + self.conv.bias.float()[:, None]).transpose(1, 2)  # [B, T, D]
        return F.gelu(y).to(x.dtype)


def _fft_size(m: int) -> int:
    """Smallest n ≥ m with no prime factor above 7 (fast FFT sizes)."""
    n = m
    while True:
        r = n
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            return n
        n += 1


class EncoderLayer(nn.Module):
    """Post-LN block: x = LN(x + Drop(Attn(x))); x = LN(x + Drop(FFN(x))). Attention is fused SDPA."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.hidden
        self.heads, self.attn_p, self.p, self.act_p = (
            cfg.heads,
            cfg.attention_dropout,
            cfg.dropout,
            cfg.activation_dropout,
        )
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.attn_norm = nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, cfg.ffn), nn.Linear(cfg.ffn, d)
        self.ffn_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        B, T, D = x.shape
        h = self.heads

        def split(t):  # [B, T, D] → [B, H, T, D/H]
            return t.view(B, T, h, D // h).transpose(1, 2)

        # One [D, 3D] GEMM for q, k, v (one cast of x under autocast instead of three); same outputs.
        w = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
        q, k, v = F.linear(x, w, torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])).chunk(3, -1)
        # key_mask: [B, 1, 1, T] bool (True = attend) broadcast by SDPA; None when the batch is cropped.
        a = F.scaled_dot_product_attention(
            split(q),
            split(k),
            split(v),
            attn_mask=key_mask,
            dropout_p=self.attn_p if self.training else 0.0,
        )
        a = self.out_proj(a.transpose(1, 2).reshape(B, T, D))
        x = self.attn_norm(x + F.dropout(a, self.p, self.training))
        f = F.dropout(F.gelu(self.fc1(x)), self.act_p, self.training)
        return self.ffn_norm(x + F.dropout(self.fc2(f), self.p, self.training))


class GumbelQuantizer(nn.Module):
    """G codebooks × V entries; a hard Gumbel-softmax pick per codebook (straight-through), concatenated."""

    def __init__(self, cfg: ModelConfig, in_dim: int):
        super().__init__()
        self.G, self.V = cfg.codebooks, cfg.codebook_entries
        self.codevectors = nn.Parameter(torch.empty(1, self.G * self.V, cfg.codevector_dim // self.G).uniform_())
        self.weight_proj = nn.Linear(in_dim, self.G * self.V)
        nn.init.normal_(self.weight_proj.weight, mean=0, std=1)
        nn.init.zeros_(self.weight_proj.bias)

    def forward(self, x: torch.Tensor, tau: float, return_logits: bool = False) -> tuple[torch.Tensor, ...]:
        """x [N, C] → (quantized [N, G·d], soft-perplexity per codebook [G], hard-perplexity per codebook [G],
        the picked code of each step [N] as one integer over all codebooks, input dependence [G]), plus the code logits [N, G, V] with
        ``return_logits`` (validation measures their input-dependence)."""
        N = x.shape[0]
        with torch.autocast(x.device.type, enabled=False):  # fp32 island
            logits = self.weight_proj(x.float()).view(N * self.G, self.V)
            picked = self._pick(logits, N, tau)
        return (*picked, logits.view(N, self.G, self.V)) if return_logits else picked

    def _pick(self, logits: torch.Tensor, N: int, tau: float) -> tuple[torch.Tensor, ...]:
        hard = F.one_hot(logits.argmax(-1), self.V).view(N, self.G, self.V).float()
        code_ppl = torch.exp(-torch.sum(_xlogx(hard.mean(0)), -1))  # [G] (monitoring)
        probs = torch.softmax(logits.view(N, self.G, self.V), -1)  # [N, G, V]
        avg_probs = probs.mean(0)  # [G, V] batch average
        prob_ppl = torch.exp(-torch.sum(_xlogx(avg_probs), -1))  # [G] (diversity loss)
        # input dependence (monitoring): 1 − mean per-step code entropy / ln V; 0 = the codes ignore the input
        dep = 1.0 - (-torch.sum(_xlogx(probs.detach()), -1)).mean(0) / math.log(self.V)  # [G]
        if self.training:
            onehot = F.gumbel_softmax(logits, tau=tau, hard=True).view(N, self.G, self.V)
        else:
            onehot = hard
        # per codebook: [G, N, V] @ [G, V, d] → [G, N, d] (a batched matmul, no [N, G, V, d] temporary)
        cv = self.codevectors.float().view(self.G, self.V, -1)
        q = torch.bmm(onehot.transpose(0, 1), cv).transpose(0, 1)  # [N, G, d]
        codes = (onehot.argmax(-1) * self.V ** torch.arange(self.G, device=logits.device)).sum(-1)  # [N]
        return q.reshape(N, -1), prob_ppl, code_ppl, codes, dep


def _xlogx(p: torch.Tensor) -> torch.Tensor:
    return p * torch.log(p + 1e-7)


class Wav2Vec2(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        C, D = cfg.conv_dim[-1], cfg.hidden
        self.feature_extractor = FeatureEncoder(cfg)
        self.feature_norm = nn.LayerNorm(C)
        self.post_extract_proj = nn.Linear(C, D)
        self.mask_emb = nn.Parameter(torch.empty(D).uniform_())
        self.pos_conv = PositionalConv(cfg)
        self.encoder_norm = nn.LayerNorm(D)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.layers))
        self.quantizer = GumbelQuantizer(cfg, C)
        self.project_q = nn.Linear(cfg.codevector_dim, cfg.final_dim)
        self.final_proj = nn.Linear(D, cfg.final_dim)
        for m in self.layers.modules():  # BERT init, as fairseq/HF for the transformer
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def features(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, S] (+ valid sample lengths [B] of a padded batch) → (normalized CNN features [B, T, C], L2 penalty
        scalar fp32)."""
        f = self.feature_extractor(wav, lengths)
        if self.training and self.cfg.feature_grad_mult != 1.0:
            f = GradMultiply.apply(f, self.cfg.feature_grad_mult)
        f = f.transpose(1, 2)  # [B, T, C]
        l2 = f.float().pow(2).mean()  # fp32: penalty on the raw CNN output
        return self.feature_norm(f), l2

    def encode(
        self, x: torch.Tensor, key_mask: torch.Tensor | None = None, return_all_layers: bool = False
    ) -> torch.Tensor | list[torch.Tensor]:
        """Projected features [B, T, D] → context [B, T, D] (positional conv, LN, post-LN layers).
        ``return_all_layers``: the list of L+1 states instead: entry 0 the transformer input (after the
        positional conv, its LayerNorm and dropout), entry i the output of layer i."""
        if key_mask is not None:  # zero padded steps so the conv does not see them
            x = x * key_mask.view(x.shape[0], -1, 1).to(x.dtype)
        x = self.encoder_norm(x + self.pos_conv(x))
        x = F.dropout(x, self.cfg.dropout, self.training)
        states = [x]
        for layer in self.layers:
            x = layer(x, key_mask)
            if return_all_layers:
                states.append(x)
        return states if return_all_layers else x

    def forward(
        self,
        wav: torch.Tensor,
        mask: torch.Tensor,
        valid: torch.Tensor | None = None,
        tau: float = 2.0,
        code_logits: bool = False,
        lengths: torch.Tensor | None = None,
    ) -> dict:
        """wav [B, S]; mask [B, T] bool (masked steps); valid [B, T] bool or None (no padding).

        Returns context projections and quantized targets for the N masked steps only (in batch order);
        with ``code_logits`` also the quantizer's logits of those steps [N, G, V].
        """
        feats, l2 = self.features(wav, lengths)  # [B, T, C]
        x = F.dropout(self.post_extract_proj(feats), self.cfg.dropout_input, self.training)  # [B, T, D]
        x = torch.where(mask.unsqueeze(-1), self.mask_emb.to(x.dtype), x)
        key_mask = None if valid is None else valid[:, None, None, :]
        ctx = self.encode(x, key_mask)  # [B, T, D]
        # Only the masked steps enter the loss: project and quantize N rows, never B×T.
        c = self.final_proj(ctx[mask]).float()  # [N, F]
        y = F.dropout(feats[mask], self.cfg.dropout_features, self.training)  # [N, C]
        q, prob_ppl, code_ppl, codes, dep, *logits = self.quantizer(y, tau, return_logits=code_logits)  # [N, G·d]
        q = self.project_q(q).float()  # [N, F]
        out = {"c": c, "q": q, "prob_ppl": prob_ppl, "code_ppl": code_ppl, "l2": l2, "codes": codes, "mask": mask}
        out["code_dep"] = dep
        return {**out, "code_logits": logits[0]} if code_logits else out

    @torch.no_grad()
    def hidden_states(self, wav: torch.Tensor) -> torch.Tensor:
        """Inference: [B, S] → last hidden state [B, T, D] (no masking), for the HF parity test."""
        feats, _ = self.features(wav)
        return self.encode(self.post_extract_proj(feats))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def flops_per_audio_second(cfg: ModelConfig, utterance_s: float = 15.0) -> float:
    """Forward + backward FLOPs per second of audio (≈ 3 × forward; matmul/conv MACs × 2). BASE ≈ 46 GFLOP."""
    fwd, rate, c_in = 0.0, 16_000.0, 1
    for c, k, s in zip(cfg.conv_dim, cfg.conv_kernel, cfg.conv_stride, strict=True):
        rate /= s
        fwd += 2 * c_in * c * k * rate
        c_in = c
    T, D = 50.0, cfg.hidden
    fwd += 2 * T * (cfg.conv_dim[-1] * D + D * D * cfg.pos_conv_kernel / cfg.pos_conv_groups)
    fwd += cfg.layers * 2 * T * (4 * D * D + 2 * D * cfg.ffn)
    fwd += cfg.layers * 4 * T * (T * utterance_s) * D  # QKᵀ and AV
    return 3 * fwd
