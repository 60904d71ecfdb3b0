"""Whisper in PyTorch through transformers: the ``backend: transformers`` of the Whisper stages.

Short chunks (≤ 30 s, wx_transcribe) are decoded in batches: one encoder pass, one ``generate`` with the
prompt ``<|sot|> [<|lang|> <|transcribe|>] <|notimestamps|>`` forced, then one teacher-forced decoder pass over
the result that yields every number the segment rows carry: token log-probabilities (``avg_logprob``, word
probability), ``no_speech_prob`` (the ``<|nospeech|>`` probability after ``<|sot|>``, as openai-whisper) and,
with ``word_timestamps``, the cross-attention of the alignment heads (``generation_config.alignment_heads``,
carried over from CTranslate2's config by the converter), turned into word times by openai-whisper's recipe:
z-score over tokens, median filter (7 frames), mean over heads, DTW, a word starts where its first token's
row jumps. Long audio (whisper_transcribe, ``w-raw``) uses transformers' own sequential long-form decoding
with timestamps, then scores each predicted segment the same way.

On GPU the model runs in float16 (or bfloat16) with SDPA attention; on CPU in float32. The attention weights
come from hooks that recompute q·k for the alignment heads only, so SDPA stays on.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curate.audio import SAMPLE_RATE
from curate.models.whisper_align import (
    FRAMES_PER_S,
    compression_ratio,
    dtw,
    group_words,
    median_filter,
    token_start_times,
    whole_pieces,
)

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "float32", "float16", "bfloat16")


@dataclass
class HFWhisper:
    model: Any
    processor: Any
    device: str
    dtype: Any
    sot: int
    eot: int
    no_timestamps: int
    transcribe: int | None
    no_speech: int | None
    lang_to_id: dict[str, int]
    heads: list[tuple[int, int]]
    suppress: list[int]
    begin_suppress: list[int]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def multilingual(self) -> bool:
        return bool(self.lang_to_id)


def load(path: str, device: str = "cpu", precision: str = "auto", threads: int = 0) -> HFWhisper:
    """A transformers Whisper directory → :class:`HFWhisper` on ``device`` (float32 on CPU; float16 on GPU
    unless ``precision`` says bfloat16/float32)."""
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if threads:
        torch.set_num_threads(threads)
    name = "float32" if device == "cpu" and precision == "auto" else ("float16" if precision == "auto" else precision)
    dtype = getattr(torch, name)
    try:
        model = WhisperForConditionalGeneration.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
        processor = WhisperProcessor.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise RuntimeError(f"{path}: cannot load a transformers Whisper model ({type(e).__name__}: {e})") from e
    model = model.to(device).eval()
    gen, tok = model.generation_config, processor.tokenizer
    vocab = tok.get_vocab()
    heads = [tuple(map(int, h)) for h in (getattr(gen, "alignment_heads", None) or [])]
    if not heads:  # like CTranslate2: the second half of the decoder layers, all heads
        n, h = model.config.decoder_layers, model.config.decoder_attention_heads
        heads = [(layer, k) for layer in range(n // 2, n) for k in range(h)]
    lang_to_id = dict(getattr(gen, "lang_to_id", None) or {}) if getattr(gen, "is_multilingual", False) else {}
    return HFWhisper(
        model=model,
        processor=processor,
        device=device,
        dtype=dtype,
        sot=int(gen.decoder_start_token_id),
        eot=int(gen.eos_token_id if isinstance(gen.eos_token_id, int) else gen.eos_token_id[0]),
        no_timestamps=int(gen.no_timestamps_token_id),
        transcribe=vocab.get("<|transcribe|>"),
        no_speech=vocab.get("<|nospeech|>", vocab.get("<|nocaptions|>")),
        lang_to_id=lang_to_id,
        heads=heads,
        suppress=list(getattr(gen, "suppress_tokens", None) or []),
        begin_suppress=list(getattr(gen, "begin_suppress_tokens", None) or []),
        info={"precision": name, "attention": "sdpa", "alignment_heads": len(heads)},
    )


def spec_for_backend(spec: str, backend: str) -> str:
    """The model a Whisper stage loads: with ``backend: transformers`` a ``faster-whisper:NAME`` spec means
    ``transformers:NAME`` (the same weights, converted: see :mod:`curate.models.ct2_whisper`)."""
    from curate.models import parse_spec

    ms = parse_spec(spec, backend)
    if backend == "transformers" and ms.backend == "faster-whisper":
        return f"transformers:{ms.name}"
    return spec


# --- model passes ------------------------------------------------------------------------------------------


def _features(hw: HFWhisper, audios: list[np.ndarray]) -> Any:
    fe = hw.processor.feature_extractor
    f = fe([np.asarray(a, dtype=np.float32) for a in audios], sampling_rate=SAMPLE_RATE, return_tensors="pt")
    return f.input_features.to(hw.device, hw.dtype)


def detect_languages(hw: HFWhisper, enc: Any) -> list[str]:
    """Most likely language code per item from the token after ``<|sot|>``."""
    import torch

    codes = list(hw.lang_to_id)
    ids = torch.tensor([hw.lang_to_id[c] for c in codes], device=hw.device)
    dec = torch.full((enc.shape[0], 1), hw.sot, device=hw.device)
    logits = hw.model(encoder_outputs=(enc,), decoder_input_ids=dec).logits[:, 0]
    return [codes[i].strip("<|>") for i in logits[:, ids].argmax(-1).tolist()]


def prompt(hw: HFWhisper, language: str | None) -> list[int]:
    if not hw.multilingual:
        return [hw.sot, hw.no_timestamps]
    lang = hw.lang_to_id.get(f"<|{language}|>")
    if lang is None:
        raise ValueError(f"language {language!r} is not one this Whisper model knows")
    return [hw.sot, lang, hw.transcribe, hw.no_timestamps]


def _suppressor(hw: HFWhisper, begin_at: int) -> Any:
    """One logits processor with precomputed masks (transformers' SuppressTokens* call ``torch.isin`` every
    step, which dominated CPU decoding): always the config's suppressed ids plus every timestamp token and
    ``<|notimestamps|>`` (this mode has none, like faster-whisper's); at the first step also the begin ids."""
    import torch
    from transformers import LogitsProcessor

    vocab = hw.model.config.vocab_size
    always = torch.zeros(vocab, dtype=torch.bool, device=hw.device)
    always[[t for t in hw.suppress if t < vocab]] = True
    always[hw.no_timestamps :] = True
    begin = always.clone()
    begin[[t for t in hw.begin_suppress if t < vocab]] = True

    class Suppress(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            mask = begin if input_ids.shape[1] == begin_at else always
            return scores.masked_fill(mask[: scores.shape[-1]], float("-inf"))

    return Suppress()


def _generate(hw: HFWhisper, enc: Any, prompts: list[list[int]], beam_size: int, max_new_tokens: int) -> Any:
    import torch
    from transformers import GenerationConfig, LogitsProcessorList
    from transformers.generation.utils import GenerationMixin
    from transformers.modeling_outputs import BaseModelOutput

    cfg = GenerationConfig(
        max_new_tokens=max_new_tokens,
        num_beams=beam_size,
        do_sample=False,
        eos_token_id=hw.eot,
        pad_token_id=hw.eot,
        decoder_start_token_id=hw.sot,
    )
    dec = torch.tensor(prompts, device=hw.device)
    # the plain encoder-decoder generate (our prompt forced, the encoder output reused); the model's own
    # generation config is swapped out meanwhile, else its suppress lists come back as isin-based processors
    own, hw.model.generation_config = hw.model.generation_config, cfg
    try:
        return GenerationMixin.generate(
            hw.model,
            encoder_outputs=BaseModelOutput(last_hidden_state=enc),
            decoder_input_ids=dec,
            generation_config=cfg,
            logits_processor=LogitsProcessorList([_suppressor(hw, dec.shape[1])]),
        )
    finally:
        hw.model.generation_config = own


def score(
    hw: HFWhisper, enc: Any, prompts: list[list[int]], texts: list[list[int]], n_frames: list[int], words: bool
) -> list[dict[str, Any]]:
    """One teacher-forced pass over prompt + text + end-of-text per item → avg_logprob, no_speech_prob, and
    (with ``words``) word times relative to the item's audio start."""
    import torch

    seqs = [p + t + [hw.eot] for p, t in zip(prompts, texts, strict=True)]
    width = max(map(len, seqs))
    dec = torch.tensor([s + [hw.eot] * (width - len(s)) for s in seqs], device=hw.device)
    layers = sorted({layer for layer, _ in hw.heads})
    captured: dict[int, Any] = {}
    hooks = []
    if words:
        for layer in layers:
            attn = hw.model.model.decoder.layers[layer].encoder_attn

            def grab(mod, args, kwargs, layer=layer):
                captured[layer] = kwargs.get("hidden_states", args[0] if args else None)

            hooks.append(attn.register_forward_pre_hook(grab, with_kwargs=True))
    try:
        logits = hw.model(encoder_outputs=(enc,), decoder_input_ids=dec).logits.float()
    finally:
        for h in hooks:
            h.remove()
    logp = torch.log_softmax(logits, dim=-1)
    tok_lp = logp[:, :-1].gather(-1, dec[:, 1:, None])[..., 0].cpu().numpy()
    no_speech = torch.softmax(logits[:, 0], dim=-1)[:, hw.no_speech].cpu().numpy() if hw.no_speech else None
    attn_w = {}
    if words:
        for layer in layers:
            mod = hw.model.model.decoder.layers[layer].encoder_attn
            b, t, _ = captured[layer].shape
            hd = mod.head_dim
            q = mod.q_proj(captured[layer]).view(b, t, -1, hd).transpose(1, 2).float()
            k = mod.k_proj(enc).view(b, enc.shape[1], -1, hd).transpose(1, 2).float()
            attn_w[layer] = torch.softmax(q @ k.transpose(-1, -2) * hd**-0.5, dim=-1)
    tok = hw.processor.tokenizer
    out = []
    for i, (p, t) in enumerate(zip(prompts, texts, strict=True)):
        n0 = len(p)
        lp = tok_lp[i, n0 - 1 : n0 + len(t)]  # text tokens then end-of-text
        row: dict[str, Any] = {
            "avg_logprob": float(lp.sum() / max(1, len(lp))),
            "no_speech_prob": None if no_speech is None else float(no_speech[i]),
            "words": [],
        }
        if words and t:
            w = torch.stack([attn_w[layer][i, h, n0 - 1 : n0 + len(t)] for layer, h in hw.heads]).cpu().numpy()
            times = token_start_times(w, n_frames[i])
            pieces, groups = whole_pieces(tok, t)
            bounds = np.cumsum([0] + [len(g) for g in groups])
            probs = np.exp(lp[: len(t)])
            row["words"] = group_words(
                pieces, times[bounds], np.array([probs[a:b].mean() for a, b in itertools.pairwise(bounds)])
            )
        out.append(row)
    return out


def transcribe_batch(
    hw: HFWhisper,
    audios: list[np.ndarray],
    language: str | None,
    beam_size: int = 5,
    word_timestamps: bool = True,
    max_new_tokens: int | None = None,
) -> list[dict[str, Any]]:
    """Chunks of ≤ 30 s → one dict each: text, language, avg_logprob, no_speech_prob, compression_ratio,
    words [(word, start_s, end_s, probability)] with times relative to the chunk."""
    import torch

    if not audios:
        return []
    with torch.inference_mode():
        enc = hw.model.model.encoder(_features(hw, audios)).last_hidden_state
        langs = [language] * len(audios)
        if hw.multilingual and not language:
            langs = detect_languages(hw, enc)
        elif not hw.multilingual:
            langs = [language or "en"] * len(audios)
        prompts = [prompt(hw, lang) for lang in langs]
        room = hw.model.config.max_target_positions - len(prompts[0]) - 1
        seqs = _generate(hw, enc, prompts, beam_size, min(max_new_tokens or room, room)).tolist()
        texts = []
        for p, s in zip(prompts, seqs, strict=True):
            t = s[len(p) :]
            texts.append(t[: t.index(hw.eot)] if hw.eot in t else t)
        frames = [min(enc.shape[1], int(np.ceil(len(a) / SAMPLE_RATE * FRAMES_PER_S))) for a in audios]
        scored = score(hw, enc, prompts, texts, frames, word_timestamps)
    tok = hw.processor.tokenizer
    out = []
    for lang, t, sc in zip(langs, texts, scored, strict=True):
        text = tok.decode(t).strip()
        out.append({"text": text, "language": lang, "compression_ratio": compression_ratio(text), **sc})
    return out


def transcribe_long(
    hw: HFWhisper,
    audio: np.ndarray,
    language: str | None,
    beam_size: int = 5,
    condition_on_previous_text: bool = True,
    temperatures: tuple[float, ...] = (0.0,),
    word_timestamps: bool = False,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
) -> tuple[list[dict[str, Any]], str | None]:
    """Any length → (segments with Whisper's own times: start, end, text, avg_logprob, no_speech_prob,
    compression_ratio, words [{word, start, end, probability}]; the language used). transformers' sequential
    long-form decoding (openai-whisper's algorithm: timestamps, seek, temperature fallback) predicts the
    segments; each is then scored on its own audio by :func:`score`."""
    import torch

    fe = hw.processor.feature_extractor
    long = len(audio) > fe.n_samples
    kw: dict[str, Any] = {"truncation": False, "padding": "longest"} if long else {}
    f = fe(
        np.asarray(audio, np.float32), sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True, **kw
    )
    feats = f.input_features.to(hw.device, hw.dtype)
    with torch.inference_mode():
        if hw.multilingual and not language:
            enc = hw.model.model.encoder(feats[..., : fe.nb_max_frames]).last_hidden_state
            language = detect_languages(hw, enc)[0]
        gen: dict[str, Any] = dict(
            return_timestamps=True,
            return_segments=True,
            num_beams=beam_size,
            condition_on_prev_tokens=condition_on_previous_text,
            temperature=temperatures if len(temperatures) > 1 else temperatures[0],
        )
        if len(temperatures) > 1:  # openai-whisper's fallback thresholds (transformers needs all three together)
            gen.update(logprob_threshold=-1.0, compression_ratio_threshold=2.4, no_speech_threshold=0.6)
        if max_new_tokens:
            gen["max_new_tokens"] = max_new_tokens
        if hw.multilingual:
            gen.update(language=language, task="transcribe")
        am = f.attention_mask.to(hw.device) if long else None
        out = hw.model.generate(feats, attention_mask=am, **gen)
        raw = out["segments"][0] if isinstance(out, dict) else []
        segs = []
        for r in raw:
            toks = [int(t) for t in r["tokens"].tolist() if int(t) < hw.eot]
            start, end = float(r["start"]), float(r["end"])
            if toks and end > start:
                segs.append((start, min(end, start + 30.0, len(audio) / SAMPLE_RATE), toks))
        rows: list[dict[str, Any]] = []
        lang_prompt = prompt(hw, language)
        for b in range(0, len(segs), batch_size):
            part = segs[b : b + batch_size]
            clips = [
                audio[int(s * SAMPLE_RATE) : max(int(s * SAMPLE_RATE) + 1, int(e * SAMPLE_RATE))] for s, e, _ in part
            ]
            enc = hw.model.model.encoder(_features(hw, clips)).last_hidden_state
            frames = [min(enc.shape[1], int(np.ceil(len(c) / SAMPLE_RATE * FRAMES_PER_S))) for c in clips]
            scored = score(hw, enc, [lang_prompt] * len(part), [t for _, _, t in part], frames, word_timestamps)
            for (s0, e0, toks), sc in zip(part, scored, strict=True):
                text = hw.processor.tokenizer.decode(toks).strip()
                words = [
                    {"word": w, "start": s0 + ws, "end": s0 + we, "probability": p} for w, ws, we, p in sc["words"]
                ]
                rows.append(
                    {
                        "start": s0,
                        "end": e0,
                        "text": text,
                        "avg_logprob": sc["avg_logprob"],
                        "no_speech_prob": sc["no_speech_prob"],
                        "compression_ratio": compression_ratio(text),
                        "words": words if word_timestamps else None,
                    }
                )
    return rows, language


__all__ = [
    "HFWhisper",
    "PRECISIONS",
    "compression_ratio",
    "detect_languages",
    "dtw",
    "group_words",
    "load",
    "median_filter",
    "score",
    "spec_for_backend",
    "token_start_times",
    "transcribe_batch",
    "transcribe_long",
    "whole_pieces",
]
