"""CTC fine-tuning of a pre-trainer checkpoint on letters, greedy decoding, WER/CER (thesis protocol).

Protocol (fairseq's / the thesis's ``base_*`` fine-tuning recipes): letter vocabulary (blank, ``|``, ``'``, a–z);
tri-stage LR 10/40/50 % from 5e-7 to 5e-5 and down to 2.5e-6; Adam β 0.9/0.98 without weight decay; 5 % of the
time steps masked (spans of 10) with the pre-trained mask vector; dropout 0.1; the CNN is always frozen; the
transformer is frozen (only the linear CTC head trains) for the first ``freeze_steps``; batches of about
``batch_s`` = 200 s of audio. Label-amount presets set the step count (10 min → 12 k … 960 h → 320 k).

Shapes: B utterances, S samples, T frames (50/s), D hidden, V = 29 letters.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from curate.errors import ConfigError, CurateError
from curate.models.device import pick_device
from curate.w2v2 import checkpoint as checkpoints
from curate.w2v2 import text as txt

log = logging.getLogger(__name__)

LABEL_PRESETS = {"10min": 12_000, "1h": 13_000, "10h": 20_000, "100h": 80_000, "960h": 320_000}


class FinetuneError(CurateError, RuntimeError):
    """Fine-tuning cannot start or diverged (non-finite CTC loss)."""


@dataclass
class FinetuneConfig:
    labels: str | None = None  # a LABEL_PRESETS key: sets max_steps (unless max_steps is given)
    max_steps: int | None = None
    lr: float = 5e-5  # peak
    init_lr_scale: float = 0.01  # 5e-7
    final_lr_scale: float = 0.05  # 2.5e-6
    stage_ratios: list[float] | None = None  # default [0.1, 0.4, 0.5]
    betas: list[float] | None = None  # default [0.9, 0.98]
    eps: float = 1e-8
    freeze_steps: int = 5000  # transformer frozen (head only) for these steps; the CNN always is
    mask_prob: float = 0.05  # fraction of time steps masked …
    mask_length: int = 10  # … in spans of this many frames
    dropout: float = 0.1
    batch_s: float = 200.0  # audio seconds per batch
    max_s: float = 30.0  # longer utterances are skipped
    clip_norm: float = 0.0
    eval_every: int = 0  # 0 → only at the end
    log_every: int = 100
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto → bf16 on CUDA, fp32 on CPU

    def steps(self) -> int:
        if self.max_steps is not None:
            return self.max_steps
        if self.labels is None:
            raise ConfigError("finetune: give max_steps or labels (one of " + ", ".join(LABEL_PRESETS) + ")")
        return LABEL_PRESETS[self.labels]

    def validate(self) -> FinetuneConfig:
        if self.labels is not None and self.labels not in LABEL_PRESETS:
            raise ConfigError(f"finetune.labels: expected one of {', '.join(LABEL_PRESETS)}, got {self.labels!r}")
        if self.steps() <= 0:
            raise ConfigError(f"finetune.max_steps must be positive, got {self.steps()}")
        if not 0 <= self.mask_prob < 1 or not 0 <= self.dropout < 1:
            raise ConfigError("finetune: mask_prob and dropout must be in [0, 1)")
        if self.lr <= 0 or self.batch_s <= 0:
            raise ConfigError("finetune: lr and batch_s must be positive")
        if self.stage_ratios is not None and (len(self.stage_ratios) != 3 or abs(sum(self.stage_ratios) - 1) > 1e-6):
            raise ConfigError(f"finetune.stage_ratios: three fractions summing to 1, got {self.stage_ratios}")
        return self


# ------------------------------------------------------------------------------------------------ model


def load_pretrained(path: str | Path, device: str = "cpu", dropout: float | None = None):
    """A pre-trainer checkpoint (``best.pt``/``last.pt``: {"config", "model", "step", …}) → (Wav2Vec2, raw dict).

    ``dropout`` overrides the three dropout places of the model config (fine-tuning uses 0.1)."""

    from curate.w2v2.config import load_config
    from curate.w2v2.model import Wav2Vec2

    path = Path(path)
    if not path.is_file():
        raise FinetuneError(f"{path}: no such checkpoint (expected best.pt or last.pt of `curate pretrain`)")
    try:
        ck = checkpoints.load(path)
    except checkpoints.CheckpointError as e:
        raise FinetuneError(str(e)) from None
    if not isinstance(ck, dict) or "config" not in ck or "model" not in ck:
        raise FinetuneError(f"{path}: not a curate pre-trainer checkpoint (needs 'config' and 'model' entries)")
    cfg = load_config(ck["config"]).model
    if dropout is not None:
        cfg = replace(
            cfg, dropout=dropout, attention_dropout=dropout, activation_dropout=dropout, dropout_input=dropout
        )
    model = Wav2Vec2(cfg)
    model.load_state_dict(ck["model"])
    return model.to(device), ck


def all_hidden_states(w2v, wav, lengths, mask=None):
    """[B, S] waveform + sample lengths → (list of L+1 hidden states [B, T, D], frame lengths [B], valid [B, T]).

    Entry 0 is the transformer input (after the positional conv and its LayerNorm), entry i the output of layer i.
    ``mask`` [B, T] bool replaces those frames with the learned mask vector (fine-tuning's time masking)."""
    import torch

    from curate.w2v2.model import frames_for

    feats, _ = w2v.features(wav)  # [B, T, C]
    T = feats.shape[1]
    flens = torch.clamp(frames_for(lengths, w2v.cfg), max=T)
    valid = torch.arange(T, device=wav.device)[None] < flens[:, None]  # [B, T]
    x = torch.nn.functional.dropout(w2v.post_extract_proj(feats), w2v.cfg.dropout_input, w2v.training)
    if mask is not None:
        x = torch.where(mask.unsqueeze(-1), w2v.mask_emb.to(x.dtype), x)
    key_mask = None if bool(valid.all()) else valid[:, None, None, :]
    return w2v.encode(x, key_mask, return_all_layers=True), flens, valid


class CTCModel:
    """Wav2Vec2 encoder + linear head over the letter vocabulary (a plain nn.Module built lazily: torch import)."""

    def __new__(cls, w2v):
        import torch
        from torch import nn

        class _CTC(nn.Module):
            def __init__(self, w2v):
                super().__init__()
                self.w2v = w2v
                self.head = nn.Linear(w2v.cfg.hidden, len(txt.VOCAB))

            def forward(self, wav, lengths, mask=None, frozen=False):
                """→ log-probs [B, T, V] fp32, frame lengths [B]."""
                with torch.no_grad() if frozen else nullcontext():
                    states, flens, _ = all_hidden_states(self.w2v, wav, lengths, mask)
                x = states[-1]
                return torch.log_softmax(self.head(x).float(), -1), flens

        return _CTC(w2v)


# ------------------------------------------------------------------------------------------------ data


def make_batches(durations_s: np.ndarray, batch_s: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Length-sorted batches of at most ``batch_s`` padded seconds (B × longest), in random order."""
    order = np.argsort(durations_s, kind="stable")
    batches, cur, longest = [], [], 0.0
    for i in order:
        d = float(durations_s[i])
        if cur and max(longest, d) * (len(cur) + 1) > batch_s:
            batches.append(np.array(cur))
            cur, longest = [], 0.0
        cur.append(i)
        longest = max(longest, d)
    if cur:
        batches.append(np.array(cur))
    rng.shuffle(batches)
    return batches


def _collate(audio: list[np.ndarray]):
    import torch

    n = max(a.size for a in audio)
    wav = np.zeros((len(audio), n), np.float32)
    for j, a in enumerate(audio):
        wav[j, : a.size] = a
    return torch.from_numpy(wav), torch.tensor([a.size for a in audio])


class AudioCache:
    """Reads utterance audio through curate.audio; keeps it in memory when the set is small (≤ ``max_h``)."""

    def __init__(self, utts, max_h: float = 2.0):
        self.utts = utts
        self.keep = sum(u.duration_s for u in utts) / 3600 <= max_h
        self.mem: dict[int, np.ndarray] = {}

    def __call__(self, i: int) -> np.ndarray:
        if i in self.mem:
            return self.mem[i]
        a = self.utts[i].load()
        if self.keep:
            self.mem[i] = a
        return a


def _device(name: str):
    import torch

    return torch.device(pick_device(name))


# ------------------------------------------------------------------------------------------------ training


def finetune(
    checkpoint: str | Path,
    train,
    cfg: FinetuneConfig,
    out_dir: str | Path,
    *,
    evals: dict | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune ``checkpoint`` on ``train`` (list of asr_data.Utterance), evaluate on ``evals`` {name: utts};
    write ``out_dir/{finetuned.pt, metrics.jsonl, eval-<name>.json, summary.json}``; return the summary."""
    import torch

    from curate.w2v2.loss import compute_mask
    from curate.w2v2.schedule import tri_stage

    cfg.validate()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = _device(cfg.device)
    torch.manual_seed(cfg.seed)
    w2v, ck = load_pretrained(checkpoint, "cpu", dropout=cfg.dropout)
    model = CTCModel(w2v).to(device)
    for p in model.w2v.feature_extractor.parameters():  # CNN frozen throughout
        p.requires_grad_(False)
    # The quantizer and projections of the pre-training objective are not used by CTC.
    for mod in (model.w2v.quantizer, model.w2v.project_q, model.w2v.final_proj):
        for p in mod.parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas or (0.9, 0.98)), eps=cfg.eps, weight_decay=0.0)
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext

    train = [u for u in train if u.duration_s <= cfg.max_s and u.text]
    if not train:
        raise FinetuneError("fine-tuning set is empty (no utterance with text and at most max_s seconds)")
    labels = [torch.tensor(txt.encode(u.text)) for u in train]
    cache = AudioCache(train)
    rng = np.random.default_rng(cfg.seed)
    durations = np.array([u.duration_s for u in train])
    total, ratios = cfg.steps(), cfg.stage_ratios or [0.1, 0.4, 0.5]
    gen = torch.Generator().manual_seed(cfg.seed)
    metrics = (out_dir / "metrics.jsonl").open("w")
    step, batches, t0, audio_s, results = 0, [], time.perf_counter(), 0.0, {}
    model.train()
    while step < total:
        if not batches:
            batches = make_batches(durations, cfg.batch_s, rng)
        idx = batches.pop()
        wav, lens = _collate([cache(int(i)) for i in idx])
        wav, lens = wav.to(device), lens.to(device)
        lr = tri_stage(step, cfg.lr, total, ratios, cfg.init_lr_scale, cfg.final_lr_scale)
        for g in opt.param_groups:
            g["lr"] = lr
        frozen = step < cfg.freeze_steps
        model.w2v.train(not frozen)  # frozen phase: no dropout in the encoder
        mask = None
        if cfg.mask_prob > 0 and not frozen:
            from curate.w2v2.model import frames_for

            flens = torch.clamp(frames_for(lens.cpu(), model.w2v.cfg), min=0)
            T = int(frames_for(wav.shape[1], model.w2v.cfg))
            mask = compute_mask(flens, T, cfg.mask_prob, cfg.mask_length, gen, min_spans=0).to(device)
        with autocast():
            logp, flens = model(wav, lens, mask, frozen=frozen)
        tgt = [labels[int(i)] for i in idx]
        loss = torch.nn.functional.ctc_loss(
            logp.transpose(0, 1),
            torch.cat(tgt).to(device),
            flens,
            torch.tensor([len(t) for t in tgt], device=device),
            blank=0,
            reduction="mean",
            zero_infinity=True,
        )
        if not torch.isfinite(loss):
            raise FinetuneError(
                f"step {step}: CTC loss is {float(loss)} (diverged); lower finetune.lr (now {cfg.lr:g})"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm if cfg.clip_norm > 0 else float("inf")))
        opt.step()
        step += 1
        audio_s += float(lens.sum()) / 16_000
        if step % cfg.log_every == 0 or step == total:
            rec = {
                "step": step,
                "loss": float(loss.detach()),
                "lr": lr,
                "grad_norm": gnorm,
                "frozen": frozen,
                "audio_h": audio_s / 3600,
                "seconds": time.perf_counter() - t0,
            }
            metrics.write(json.dumps(rec) + "\n")
            metrics.flush()
            if on_log:
                on_log(rec)
        if evals and cfg.eval_every and step % cfg.eval_every == 0 and step < total:
            for name, utts in evals.items():
                r = evaluate(model, utts, device)
                metrics.write(json.dumps({"step": step, "eval": name, "wer": r["wer"], "cer": r["cer"]}) + "\n")
    metrics.close()
    finetuned = {
        "config": ck["config"],
        "finetune": asdict(cfg),
        "model": model.state_dict(),
        "vocab": list(txt.VOCAB),
        "pretrained_step": ck.get("step"),
    }
    checkpoints.save(out_dir / "finetuned.pt", finetuned)
    for name, utts in (evals or {}).items():
        results[name] = evaluate(model, utts, device)
        (out_dir / f"eval-{name}.json").write_text(json.dumps(results[name], indent=2) + "\n")
    summary = {
        "steps": step,
        "final_loss": float(loss.detach()),
        "audio_h": audio_s / 3600,
        "seconds": time.perf_counter() - t0,
        "checkpoint": str(checkpoint),
        "pretrained_step": ck.get("step"),
        "wer": {k: v["wer"] for k, v in results.items()},
        "cer": {k: v["cer"] for k, v in results.items()},
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# ------------------------------------------------------------------------------------------------ evaluation


def transcribe(model, utts, device=None, batch_s: float = 200.0) -> list[str]:
    """Greedy letter decoding of each utterance (in order)."""
    import torch

    device = device or next(model.parameters()).device
    was = model.training
    model.eval()
    hyps: list[str | None] = [None] * len(utts)
    cache = AudioCache(utts, max_h=0)
    for idx in make_batches(np.array([u.duration_s for u in utts]), batch_s, np.random.default_rng(0)):
        wav, lens = _collate([cache(int(i)) for i in idx])
        with torch.no_grad():
            logp, flens = model(wav.to(device), lens.to(device))
        best = logp.argmax(-1).cpu()
        for j, i in enumerate(idx):
            hyps[int(i)] = txt.ctc_greedy(best[j, : int(flens[j])].tolist())
    model.train(was)
    return [h or "" for h in hyps]


def error_rates(refs: list[str], hyps: list[str]) -> tuple[float, float]:
    """Corpus WER and CER in percent (jiwer); an empty hypothesis counts every reference word as deleted."""
    import jiwer

    pairs = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]
    if not pairs:
        return math.nan, math.nan
    r, h = [p[0] for p in pairs], [p[1] for p in pairs]
    return 100 * jiwer.wer(r, h), 100 * jiwer.cer(r, h)


def evaluate(model, utts, device=None) -> dict[str, Any]:
    hyps = transcribe(model, utts, device)
    refs = [u.text for u in utts]
    wer, cer = error_rates(refs, hyps)
    return {
        "wer": wer,
        "cer": cer,
        "utterances": len(utts),
        "examples": [{"id": u.id, "ref": u.text, "hyp": h} for u, h in list(zip(utts, hyps, strict=True))[:20]],
    }


def load_finetuned(path: str | Path, device: str = "cpu"):
    """``finetuned.pt`` → the CTC model (eval mode)."""

    from curate.w2v2.config import load_config
    from curate.w2v2.model import Wav2Vec2

    try:
        ck = checkpoints.load(path)
    except checkpoints.CheckpointError as e:
        raise FinetuneError(str(e)) from None
    if "finetune" not in ck:
        raise FinetuneError(f"{path}: not a fine-tuned checkpoint (written by `curate finetune`)")
    model = CTCModel(Wav2Vec2(load_config(ck["config"]).model))
    model.load_state_dict(ck["model"])
    return model.to(device).eval()
