"""Export to Hugging Face Wav2Vec2Model: the exported model gives the same hidden states as ours."""

from __future__ import annotations

import pytest
import torch

from curate.w2v2.config import load_config
from curate.w2v2.export_hf import export_hf, load_hf_model
from curate.w2v2.model import Wav2Vec2


def test_hf_export_parity(tmp_path):
    cfg = load_config("tiny-cpu", ["model.layers=2"])
    torch.manual_seed(0)
    model = Wav2Vec2(cfg.model).eval()
    with torch.no_grad():  # move every parameter off its init values
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    torch.save({"config": cfg.to_dict(), "model": model.state_dict()}, tmp_path / "last.pt")
    export_hf(tmp_path / "last.pt", tmp_path / "hf")
    hf = load_hf_model(tmp_path / "hf").eval()
    wav = torch.randn(2, 21000)
    ours = model.hidden_states(wav)
    with torch.no_grad():
        theirs = hf(wav).last_hidden_state
    assert ours.shape == theirs.shape == (2, 65, cfg.model.hidden)  # 21000 samples → 65 frames (50/s)
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)


def test_export_rejects_non_checkpoints(tmp_path):
    torch.save({"weights": 1}, tmp_path / "x.pt")
    from curate.w2v2.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="not a curate pre-training checkpoint"):
        export_hf(tmp_path / "x.pt", tmp_path / "hf")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        export_hf(tmp_path / "missing.pt", tmp_path / "hf")
