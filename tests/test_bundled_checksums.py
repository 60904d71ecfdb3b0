"""Every bundled model has a recorded SHA-256 that is checked before its path is handed out."""

from __future__ import annotations

import json

import pytest

from curate.models import bundled


def test_every_bundled_model_has_a_checksum():
    assert set(bundled.SHA256) == set(bundled.BUNDLED)
    assert all(len(h) == 64 for files in bundled.SHA256.values() for h in files.values())


@pytest.mark.parametrize("key", [("silero", "vad"), ("pyannote", "segmentation"), ("resemblyzer", "ge2e")])
def test_installed_bundled_models_verify_once(key, tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_CACHE", str(tmp_path))
    path = bundled.locate(*key)
    if path is None:
        pytest.skip(f"{bundled.BUNDLED[key][2]} not installed")
    seen = json.loads((tmp_path / "models" / "verified.json").read_text())
    assert str(path.resolve()) in seen
    monkeypatch.setattr(bundled, "sha256", lambda p: pytest.fail("re-hashed a verified file"))
    assert bundled.locate(*key) == path


def test_a_changed_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "silero_vad.jit"
    weights.write_bytes(b"not the model")
    monkeypatch.setitem(bundled.BUNDLED, ("silero", "vad"), (lambda: weights, "Silero VAD", "silero-vad"))
    with pytest.raises(bundled.BundledModelError, match=r"silero_vad\.jit: SHA-256 .* reinstall silero-vad"):
        bundled.locate("silero", "vad")
    real = bundled.SHA256[("silero", "vad")]["."]
    monkeypatch.setitem(bundled.SHA256, ("silero", "vad"), {".": bundled.sha256(weights)})
    assert bundled.locate("silero", "vad") == weights
    weights.write_bytes(b"changed after verification!")  # new size: verified again, and refused
    monkeypatch.setitem(bundled.SHA256, ("silero", "vad"), {".": real})
    with pytest.raises(bundled.BundledModelError):
        bundled.locate("silero", "vad")
