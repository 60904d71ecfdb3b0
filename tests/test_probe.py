"""Fast probe: weighted layer sum + linear CTC head on a frozen checkpoint, and the per-layer report."""

from __future__ import annotations

import json

import pytest

from curate.w2v2 import asr_data
from curate.w2v2.probe import ProbeConfig, probe


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch

    from curate.w2v2.config import load_config
    from curate.w2v2.model import Wav2Vec2

    root = tmp_path_factory.mktemp("probe")
    utts = asr_data.read_dataset({"kind": "synthetic", "root": str(root / "train"), "words": ["yes", "no"], "n": 12})
    cfg = load_config("tiny-cpu")
    torch.manual_seed(0)
    model = Wav2Vec2(cfg.model)
    torch.save({"config": cfg.to_dict(), "model": model.state_dict(), "step": 7}, root / "ck.pt")
    return root / "ck.pt", utts, model


@pytest.mark.slow
def test_probe_report_and_plot(setup, tmp_path):
    import torch

    ck, utts, model = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    logs = []
    rep = probe(
        ck,
        utts,
        {"dev": utts[:4]},
        ProbeConfig(steps=40, lr=3e-3, batch_s=4, device="cpu", log_every=10),
        tmp_path,
        on_log=logs.append,
    )
    L = 1 + model.cfg.layers
    # One learned weight per hidden state (transformer input + each layer), a distribution.
    assert len(rep["layer_weights"]) == L and sum(rep["layer_weights"]) == pytest.approx(1.0)
    assert [r["layer"] for r in rep["layers"]["dev"]] == list(range(L))
    assert all(r["cer"] >= 0 for r in rep["layers"]["dev"]) and rep["pretrained_step"] == 7
    assert logs[-1]["loss"] < logs[0]["loss"], logs  # the heads learn
    assert json.loads((tmp_path / "probe.json").read_text())["wer"]["dev"] == rep["wer"]["dev"]
    assert (tmp_path / "layers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The checkpoint is frozen: probing never writes it.
    after = torch.load(ck, weights_only=True)["model"]
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_hidden_states_of_all_layers_match_the_model(setup):
    import torch

    from curate.w2v2.finetune import all_hidden_states

    _, utts, model = setup
    model.eval()
    wav = torch.from_numpy(utts[0].load())[None]
    states, flens, valid = all_hidden_states(model, wav, torch.tensor([wav.shape[1]]))
    assert len(states) == 1 + model.cfg.layers and bool(valid.all())
    assert int(flens[0]) == states[-1].shape[1] == wav.shape[1] // 320
    torch.testing.assert_close(states[-1], model.hidden_states(wav))


def test_features_stream_to_disk_and_read_back_exactly(setup, tmp_path):
    import torch

    from curate.w2v2.finetune import all_hidden_states
    from curate.w2v2.probe import extract

    _, utts, model = setup
    store = extract(model, utts[:5], torch.device("cpu"), batch_s=0.5, path=tmp_path / "f.f16")  # one per batch
    L, D = 1 + model.cfg.layers, model.cfg.hidden
    assert len(store) == 5 and (tmp_path / "f.f16").stat().st_size == 2 * L * D * sum(store.lengths)
    model.eval()
    for i in (0, 3):
        wav = torch.from_numpy(utts[i].load())[None]
        states, _, _ = all_hidden_states(model, wav, torch.tensor([wav.shape[1]]))
        want = torch.stack(states, 0)[:, 0].half()  # [L+1, T, D], alone in its batch: no padding
        torch.testing.assert_close(store[i], want, atol=2e-3, rtol=2e-3)
    store.remove()
    assert not (tmp_path / "f.f16").exists()
