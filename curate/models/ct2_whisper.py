"""CTranslate2 Whisper → transformers Whisper, offline: read ``model.bin``, undo the CT2 layout, save a checkpoint.

CTranslate2's ``model.bin`` (binary version ≥ 5) is little-endian::

    u32 version | str spec name | u32 revision | u32 n_vars
    n_vars × (str name | u8 ndim | ndim × u32 dim | u8 dtype | u32 nbytes | nbytes of data)
    u32 n_aliases | n_aliases × (str alias | str target)

where ``str`` is ``u16 length (incl. NUL) | UTF-8 bytes | NUL`` and dtype indexes (float32, int8, int16, int32,
float16, bfloat16). A quantised weight ``…/weight`` (int8/int16) comes with ``…/weight_scale``; the float value is
``weight / scale`` per output row. The CT2 Whisper layout fuses self-attention q/k/v into ``linear_0`` and
cross-attention k/v into ``linear_1`` (k has no bias in Whisper: CT2 stores zeros there), and ties the output
projection to the token embeddings through an alias. :func:`to_hf_state_dict` splits them back into
``WhisperForConditionalGeneration``'s names; :func:`convert` writes safetensors + config + generation config +
tokenizer + feature extractor, so ``WhisperForConditionalGeneration.from_pretrained(dest)`` loads it offline.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.audio import SAMPLE_RATE
from curate.errors import CurateError

log = logging.getLogger(__name__)

_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # None: bfloat16, widened below


class CT2FormatError(CurateError, ValueError):
    """A file is not a CTranslate2 model this reader understands."""


@dataclass(frozen=True)
class CT2Model:
    spec: str  # e.g. WhisperSpec
    revision: int
    variables: dict[str, np.ndarray]  # aliases resolved; quantised weights already float32


def _bf16_to_f32(raw: bytes, shape: list[int]) -> np.ndarray:
    return (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)


def read_ct2(path: str | Path) -> CT2Model:
    """Every variable of a CTranslate2 ``model.bin``, quantised ones dequantised to float32."""
    path = Path(path)
    data = path.read_bytes()
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (v,) = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v

    def text() -> str:
        nonlocal pos
        n = take("H")
        s = data[pos : pos + n - 1].decode("utf-8")
        pos += n
        return s

    try:
        version = take("I")
        if not 5 <= version <= 6:
            raise CT2FormatError(f"{path}: CTranslate2 binary version {version}; this reader knows versions 5-6")
        spec, revision, n = text(), take("I"), take("I")
        raw: dict[str, np.ndarray] = {}
        for _ in range(n):
            name, ndim = text(), take("B")
            shape = [take("I") for _ in range(ndim)]
            dtype_id, nbytes = take("B"), take("I")
            if dtype_id >= len(_DTYPES):
                raise CT2FormatError(f"{path}: variable {name} has unknown dtype id {dtype_id}")
            buf = data[pos : pos + nbytes]
            pos += nbytes
            dt = _DTYPES[dtype_id]
            raw[name] = _bf16_to_f32(buf, shape) if dt is None else np.frombuffer(buf, dtype=dt).reshape(shape)
        aliases = {text(): text() for _ in range(take("I"))}
    except struct.error as e:
        raise CT2FormatError(f"{path}: truncated or not a CTranslate2 model.bin ({e})") from None
    out: dict[str, np.ndarray] = {}
    for name, arr in raw.items():
        if name.endswith("/weight_scale"):
            continue
        scale = raw.get(name + "_scale")
        if scale is not None and arr.dtype in (np.int8, np.int16):  # per-row scale: w = q / scale
            arr = arr.astype(np.float32) / scale.astype(np.float32).reshape(-1, *([1] * (arr.ndim - 1)))
        out[name] = arr
    for alias, target in aliases.items():
        if target in out:
            out[alias] = out[target]
    return CT2Model(spec, revision, out)


def _layers(v: dict[str, np.ndarray], prefix: str) -> int:
    return len({k.split("/")[1] for k in v if re.match(rf"{prefix}/layer_\d+/", k)})


def _heads(v: dict[str, np.ndarray], prefix: str) -> int:
    return int(np.asarray(v[f"{prefix}/num_heads"]).reshape(-1)[0])


def to_hf_state_dict(m: CT2Model) -> dict[str, np.ndarray]:
    """CT2 WhisperSpec variables → ``WhisperForConditionalGeneration`` state dict (float32 numpy arrays)."""
    if m.spec != "WhisperSpec":
        raise CT2FormatError(f"not a Whisper model: CTranslate2 spec {m.spec!r} (expected WhisperSpec)")
    v = {k: np.asarray(a, dtype=np.float32) for k, a in m.variables.items() if np.asarray(a).ndim > 0}
    sd: dict[str, np.ndarray] = {}

    def lin(dst: str, src: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/weight"]
        if bias:
            sd[f"{dst}.bias"] = v[f"{src}/bias"]

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = v[f"{src}/gamma"], v[f"{src}/beta"]

    def split(dst: str, src: str, names: tuple[str, ...]) -> None:
        ws, bs = np.split(v[f"{src}/weight"], len(names)), np.split(v[f"{src}/bias"], len(names))
        for name, w, b in zip(names, ws, bs, strict=True):
            sd[f"{dst}.{name}.weight"] = w
            if name != "k_proj":  # Whisper's key projection has no bias (CT2 stores zeros)
                sd[f"{dst}.{name}.bias"] = b

    def block(dst: str, src: str, cross: bool) -> None:
        split(f"{dst}.self_attn", f"{src}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
        lin(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        if cross:
            lin(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
            split(f"{dst}.encoder_attn", f"{src}/attention/linear_1", ("k_proj", "v_proj"))
            lin(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
            norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
        lin(f"{dst}.fc1", f"{src}/ffn/linear_0")
        lin(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")

    for c in ("conv1", "conv2"):
        lin(f"model.encoder.{c}", f"encoder/{c}")
    sd["model.encoder.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    for i in range(_layers(v, "encoder")):
        block(f"model.encoder.layers.{i}", f"encoder/layer_{i}", cross=False)
    norm("model.encoder.layer_norm", "encoder/layer_norm")
    sd["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    sd["model.decoder.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    for i in range(_layers(v, "decoder")):
        block(f"model.decoder.layers.{i}", f"decoder/layer_{i}", cross=True)
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    return sd


def _token_id(tok: dict, content: str) -> int | None:
    return next((t["id"] for t in tok["added_tokens"] if t["content"] == content), None)


def hf_configs(m: CT2Model, ct2_config: dict, tokenizer: dict) -> tuple[dict, dict]:
    """(``config.json``, ``generation_config.json``) of the transformers checkpoint, from the CT2 dimensions,
    the CT2 ``config.json`` (suppressed ids, language ids, alignment heads) and ``tokenizer.json``."""
    v = m.variables
    d_model = int(v["encoder/conv1/weight"].shape[0])
    vocab = int(v["decoder/embeddings/weight"].shape[0])
    eot, sot = _token_id(tokenizer, "<|endoftext|>"), _token_id(tokenizer, "<|startoftranscript|>")
    no_ts = _token_id(tokenizer, "<|notimestamps|>")
    if None in (eot, sot, no_ts):
        raise CT2FormatError("tokenizer.json lacks Whisper's special tokens (<|endoftext|>, <|startoftranscript|>)")
    lang_ids = list(ct2_config.get("lang_ids") or [])
    multilingual = vocab >= 51865  # openai-whisper's rule: English-only models have one token fewer
    enc_layers, dec_layers = _layers(v, "encoder"), _layers(v, "decoder")
    config = {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "vocab_size": vocab,
        "num_mel_bins": int(v["encoder/conv1/weight"].shape[1]),
        "d_model": d_model,
        "encoder_layers": enc_layers,
        "decoder_layers": dec_layers,
        "encoder_attention_heads": _heads(v, "encoder"),
        "decoder_attention_heads": _heads(v, "decoder"),
        "encoder_ffn_dim": int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(v["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(v["decoder/position_encodings/encodings"].shape[0]),
        "activation_function": "gelu",
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "decoder_start_token_id": sot,
        "suppress_tokens": list(ct2_config.get("suppress_ids") or []),
        "begin_suppress_tokens": list(ct2_config.get("suppress_ids_begin") or []),
        "torch_dtype": "float32",
    }
    gen = {
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "decoder_start_token_id": sot,
        "no_timestamps_token_id": no_ts,
        "prev_sot_token_id": _token_id(tokenizer, "<|startofprev|>"),
        "suppress_tokens": config["suppress_tokens"],
        "begin_suppress_tokens": config["begin_suppress_tokens"],
        "alignment_heads": [list(map(int, h)) for h in ct2_config.get("alignment_heads") or []]
        or [
            [layer, h] for layer in range(dec_layers // 2, dec_layers) for h in range(config["decoder_attention_heads"])
        ],
        "max_initial_timestamp_index": 50,
        "max_length": config["max_target_positions"],
        "is_multilingual": multilingual,
        "return_timestamps": False,
    }
    if multilingual:
        names = {t["id"]: t["content"] for t in tokenizer["added_tokens"]}
        gen["lang_to_id"] = {names[i]: i for i in lang_ids if i in names}
        gen["task_to_id"] = {
            "transcribe": _token_id(tokenizer, "<|transcribe|>"),
            "translate": _token_id(tokenizer, "<|translate|>"),
        }
    return config, gen


def _write_tokenizer(src: Path, dest: Path, n_timestamps: int, n_mels: int) -> None:
    """tokenizer + feature extractor files (WhisperProcessor.save_pretrained) from the CT2 ``tokenizer.json``."""
    from transformers import AddedToken, WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizerFast

    tok = WhisperTokenizerFast(
        tokenizer_file=str(src / "tokenizer.json"),
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    if n_timestamps > 0:  # vocabulary.txt's <|0.00|> … <|30.00|>: not special (HF's own layout)
        tok.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", lstrip=False, rstrip=False) for i in range(n_timestamps)])
    fe = WhisperFeatureExtractor(feature_size=n_mels, sampling_rate=SAMPLE_RATE)
    WhisperProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(str(dest))


def convert(src: str | Path, dest: str | Path) -> Path:
    """Convert the CTranslate2 Whisper directory ``src`` into a transformers checkpoint at ``dest`` (atomic:
    built in a temp directory next to it, then renamed). Needs numpy, safetensors and transformers; no network."""
    from safetensors.numpy import save_file

    src, dest = Path(src), Path(dest)
    for f in ("model.bin", "config.json", "tokenizer.json"):
        if not (src / f).is_file():
            raise CT2FormatError(
                f"{src / f}: missing; expected a CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json)"
            )
    m = read_ct2(src / "model.bin")
    sd = to_hf_state_dict(m)
    tokenizer = json.loads((src / "tokenizer.json").read_text())
    config, gen = hf_configs(m, json.loads((src / "config.json").read_text()), tokenizer)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        # float16 on disk like the CT2 source (half the bytes); loaded as float32 on CPU by the backend
        save_file(
            {k: np.ascontiguousarray(a.astype(np.float16)) for k, a in sd.items()},
            str(tmp / "model.safetensors"),
            metadata={"format": "pt"},
        )
        # suppress lists live in the generation config only (transformers warns when both carry them)
        cfg = {k: x for k, x in config.items() if "suppress" not in k}
        (tmp / "config.json").write_text(json.dumps({**cfg, "torch_dtype": "float16"}, indent=1))
        (tmp / "generation_config.json").write_text(json.dumps(gen, indent=1))
        n_text = max(t["id"] for t in tokenizer["added_tokens"]) + 1
        _write_tokenizer(src, tmp, config["vocab_size"] - n_text, config["num_mel_bins"])
        (tmp / "CONVERTED_FROM").write_text(f"{src}\n")
        for f in tmp.iterdir():
            f.chmod(0o644)
        tmp.chmod(0o755)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("converted %s → %s (%d tensors)", src, dest, len(sd))
    return dest


__all__ = ["CT2FormatError", "CT2Model", "convert", "hf_configs", "read_ct2", "to_hf_state_dict"]
