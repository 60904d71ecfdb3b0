"""Checkpoints are tensors + plain data, read with weights_only=True: opening one never runs code from it."""

import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from curate.w2v2 import checkpoint  # noqa: E402


class _Payload:
    """Unpickling this object with a full unpickler calls open(marker, "w"): code from the file runs."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def malicious(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "last.pt"
    torch.save({"config": {"model": {}}, "model": {"w": torch.zeros(2)}, "step": 1, "x": _Payload(marker)}, path)
    return path, marker


def test_a_checkpoint_carrying_a_pickled_object_is_refused(malicious):
    path, marker = malicious
    with pytest.raises(checkpoint.CheckpointError, match="refused: it holds pickled Python objects") as e:
        checkpoint.load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists(), "loading the checkpoint ran code from it"


def test_every_reader_refuses_it(malicious):
    from curate.w2v2.finetune import FinetuneError, load_finetuned, load_pretrained

    path, marker = malicious
    for reader in (load_pretrained, load_finetuned):
        with pytest.raises(FinetuneError, match="refused"):
            reader(path)
    pytest.importorskip("transformers")
    from curate.w2v2.export_hf import export_hf

    with pytest.raises(ValueError, match="refused"):
        export_hf(path, path.parent / "hf")
    assert not marker.exists()


def test_no_reader_unpickles_with_weights_only_false():
    root = Path(__file__).resolve().parents[1] / "curate"
    hits = [
        f"{p.relative_to(root)}:{i}"
        for p in root.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"weights_only\s*=\s*False", line)
    ]
    assert not hits, f"torch.load(weights_only=False) runs code from the file: {hits}"


def test_round_trip_converts_numpy_and_keeps_plain_data(tmp_path):
    obj = {
        "config": {"lr": np.float64(1e-3), "dims": [1, 2], "betas": (0.9, 0.98), "name": "base", "x": None},
        "model": {"w": torch.arange(3.0)},
        "step": np.int64(7),
        "hist": np.arange(3),
        "optimizer": {0: {"a": 1}},
    }
    ck = checkpoint.load(checkpoint.save(tmp_path / "a.pt", obj))
    assert ck["config"] == {"lr": 1e-3, "dims": [1, 2], "betas": (0.9, 0.98), "name": "base", "x": None}
    assert type(ck["step"]) is int and ck["optimizer"] == {0: {"a": 1}}
    assert torch.equal(ck["model"]["w"], torch.arange(3.0)) and torch.equal(ck["hist"], torch.arange(3))
    assert not list(tmp_path.glob("*.tmp"))


def test_saving_an_object_is_refused_naming_where(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match=r"checkpoint\.config\.spec: a .*_Payload cannot be stored"):
        checkpoint.save(tmp_path / "a.pt", {"config": {"spec": _Payload(tmp_path / "m")}})
    assert not (tmp_path / "a.pt").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint"])
def test_a_damaged_file_is_a_clear_error(tmp_path, content):
    p = tmp_path / "best.pt"
    p.write_bytes(content)
    with pytest.raises(checkpoint.CheckpointError, match="not a readable torch checkpoint"):
        checkpoint.load(p)
