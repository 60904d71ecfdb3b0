"""One-call GPU benchmark of curate's WhisperX path with ``backend: transformers`` (issue 26).

    python -m benchmarks.gpu_curate pack --out bench_pack [--model base]     # here: code + weights + audio
    python bench_pack/code/benchmarks/gpu_curate.py run --dir bench_pack --out OUT [--hours 1] [--device cuda]

``pack`` builds a folder of at most 64 MiB: curate's Python code, this file, the converted Whisper weights
quantised to int8 per output row (+ float16 scales) in an LZMA zip, Silero VAD's TorchScript file, and a few real
recordings as 16-bit WAV. ``run`` needs only Python with torch, transformers, numpy, pyarrow and pyyaml (no
faster-whisper, ctranslate2, pyannote, whisperx, soundfile or ffmpeg; no network): it restores float16 weights,
repeats the recordings to ``--hours`` of audio and runs, per recording, what ``wx-diar-3s`` runs, timing each part:

  decode       Python's ``wave`` (CPU)
  vad          Silero VAD v6 TorchScript, 32 recordings stepped in lockstep  [substitutes pyannote segmentation]
  chunks       WhisperX cut & merge into ≤ 30 s chunks, pure Python          [substitutes whisperx.merge_chunks]
  transcribe   transformers Whisper, chunks of all recordings batched (fp16 + SDPA on GPU)
  align        Whisper's cross-attention DTW word times (part of transcribe)  [= wx_align's whisper_words fallback]
  diarize      SKIPPED: pyannote / resemblyzer absent (no speaker labels, so merge_speaker merges nothing)
  post-3s      drop_phrases, merge_speaker 3 s, min_duration 3 s, split_long 30 s (curate.stages.postprocess)

It prints audio-hours per device-hour per part and end to end, the GPU utilisation (sampled with nvidia-smi when
present) and the CPU share of decode, VAD and alignment, and writes results.json. The ``clean`` pipeline's
tagger pass is not in this benchmark.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import threading
import time
import wave
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
SR = 16000
MAX_PACK = 64 * 2**20


# --- pack (here) ---------------------------------------------------------------------------------------------


def _quantise(path: Path) -> dict[str, bytes]:
    """model.safetensors → {name.npy: int8 [rows, …] or float16 1-d, name.scale.npy: float16 per row}."""
    from safetensors.numpy import load_file

    out = {}
    for k, v in load_file(str(path)).items():
        v = v.astype(np.float32)
        if v.ndim >= 2:
            scale = np.abs(v).reshape(len(v), -1).max(axis=1) / 127 + 1e-12
            q = np.round(v / scale.reshape(-1, *[1] * (v.ndim - 1))).astype(np.int8)
            out[f"{k}.scale.npy"], out[f"{k}.npy"] = _npy(scale.astype(np.float16)), _npy(q)
        else:
            out[f"{k}.npy"] = _npy(v.astype(np.float16))
    return out


def _npy(a: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _write_wav(path: Path, x: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def pack(
    out: Path,
    model: str = "base",
    clip_ids: list[str] | None = None,
    max_audio_s: float = 45.0,
    fast: bool = False,
    weights_from: Path | None = None,
) -> Path:
    """Build the travel folder (see the module docstring); refuses to exceed 64 MiB."""
    from curate import audio
    from curate.models import resolve

    repo = HERE.parent.parent
    if out.exists():
        shutil.rmtree(out)
    (out / "code" / "benchmarks").mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "demo", "explore", "w2v2", "corrupt", "export", "ablation")
    shutil.copytree(repo / "curate", out / "code" / "curate", ignore=skip)
    shutil.copy(HERE, out / "code" / "benchmarks" / "gpu_curate.py")
    (out / "code" / "benchmarks" / "__init__.py").write_text("")
    src = resolve(f"transformers:{model}").path
    if weights_from is not None:  # an earlier pack's weights.zip (LZMA of base takes minutes)
        shutil.copy(weights_from, out / "weights.zip")
    method = zipfile.ZIP_DEFLATED if fast else zipfile.ZIP_LZMA  # fast: the smoke test's pack (size no matter)
    with (
        zipfile.ZipFile(out / "weights.zip", "w", method, compresslevel=1 if fast else None)
        if weights_from is None
        else _nothing()
    ) as z:
        for f in src.iterdir() if z is not None else []:
            if f.name != "model.safetensors" and f.is_file():
                z.write(f, f"model/{f.name}")
        for name, data in _quantise(src / "model.safetensors").items() if z is not None else []:
            z.writestr(f"int8/{name}", data)
    import importlib.util

    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("silero-vad is not installed here: its TorchScript VAD travels with the pack")
    shutil.copy(Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.jit", out / "silero_vad.jit")
    real = Path(__import__("os").environ.get("CURATE_REALAUDIO", repo.parent / "shared" / "data" / "realaudio"))
    (out / "audio").mkdir()
    rows = []
    if (real / "INVENTORY.csv").exists():
        import csv

        with open(real / "INVENTORY.csv", encoding="utf-8") as f:
            inv = {r["id"]: r for r in csv.DictReader(f)}
        english = [
            i for i, r in inv.items() if r["content_type"] in ("speech", "conversation") and r["language"] == "en"
        ]
        ids = clip_ids or english
        total, parts, lang = 0.0, [], None
        for i in ids:
            x = audio.load(real / "flac" / f"{i}.flac")
            if total + len(x) / SR > max_audio_s:
                break
            parts += [x, np.zeros(SR // 2, np.float32)]
            total += len(x) / SR + 0.5
            lang = lang or inv[i]["language"][:2]
        half = len(parts) // 2 or 1  # two recordings of real clips with pauses
        for k, group in enumerate([parts[:half], parts[half:]]):
            if group:
                _write_wav(out / "audio" / f"rec{k}.wav", np.concatenate(group))
                rows.append({"file": f"rec{k}.wav", "language": None})
    else:  # no real audio here: a noise recording keeps the path exercised (transcripts then mean nothing)
        _write_wav(out / "audio" / "rec0.wav", np.random.default_rng(0).normal(0, 0.05, SR * 20).astype(np.float32))
        rows.append({"file": "rec0.wav", "language": "en"})
    (out / "audio" / "catalog.json").write_text(json.dumps(rows))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    if size > MAX_PACK:
        raise RuntimeError(f"{out}: {size / 2**20:.1f} MiB > 64 MiB; use fewer clips (--max-audio-s)")
    print(f"packed {out}: {size / 2**20:.1f} MiB (model {model}, {len(rows)} recordings)")
    return out


# --- run (there) ---------------------------------------------------------------------------------------------


def restore(pack_dir: Path, dest: Path) -> Path:
    """weights.zip → a float16 transformers checkpoint in ``dest``."""
    import torch
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    sd = {}
    with zipfile.ZipFile(pack_dir / "weights.zip") as z:
        for n in z.namelist():
            if n.startswith("model/"):
                (dest / n[6:]).write_bytes(z.read(n))
        names = [n[5:-4] for n in z.namelist() if n.startswith("int8/") and not n.endswith(".scale.npy")]
        for k in names:
            a = np.load(io.BytesIO(z.read(f"int8/{k}.npy"))).astype(np.float32)
            if f"int8/{k}.scale.npy" in z.namelist():
                s = np.load(io.BytesIO(z.read(f"int8/{k}.scale.npy"))).astype(np.float32)
                a = a * s.reshape(-1, *[1] * (a.ndim - 1))
            sd[k] = torch.from_numpy(a.astype(np.float16))
    save_file(sd, str(dest / "model.safetensors"), metadata={"format": "pt"})
    return dest


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getframerate() != SR or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono {SR} Hz WAV")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768


def silero_probs(model, audios: list[np.ndarray], device: str, window: int = 512) -> list[np.ndarray]:
    """Speech probability per 32 ms window; the recordings are stepped together as one batch (state per row)."""
    import torch

    n = max(len(a) for a in audios) // window + 1
    x = np.zeros((len(audios), n * window), np.float32)
    for i, a in enumerate(audios):
        x[i, : len(a)] = a
    xt = torch.from_numpy(x).to(device)
    model.reset_states()
    probs = []
    with torch.inference_mode():
        for k in range(n):
            probs.append(model(xt[:, k * window : (k + 1) * window], SR).reshape(-1))
    p = torch.stack(probs, 1).float().cpu().numpy()
    return [p[i, : len(a) // window + 1] for i, a in enumerate(audios)]


def speech_regions(p: np.ndarray, onset=0.5, offset=0.35, min_on_s=0.25, min_off_s=0.1, pad_s=0.03, total_s=None):
    from curate import timeline
    from curate.models.vad import FrameScores, binarize

    fs = FrameScores(p, 0.0, 512 / SR, 512 / SR)
    regions = binarize(fs, onset, offset, min_on_s, min_off_s, total_s)
    return timeline.dilate(regions, pad_s, 0.0, total_s if total_s is not None else float("inf"))


def merge_to_chunks(regions, chunk_s: float = 30.0):
    """WhisperX's merge: regions (each ≤ chunk_s after halving) joined while a chunk stays ≤ chunk_s."""
    from curate import timeline

    out: list[tuple[float, float]] = []
    for s, e in timeline.split_to_max(regions, chunk_s):
        if out and e - out[-1][0] <= chunk_s:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


class GpuSampler:
    """nvidia-smi utilisation every 0.5 s in a thread (None when there is no nvidia-smi)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.ok = shutil.which("nvidia-smi") is not None
        self._stop = threading.Event()

    def __enter__(self):
        if self.ok:
            self._t = threading.Thread(target=self._run, daemon=True)
            self._t.start()
        return self

    def _run(self) -> None:
        q = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"]
        while not self._stop.wait(0.5):
            try:
                self.samples.append(float(subprocess.run(q, capture_output=True, text=True, timeout=5).stdout))
            except (ValueError, subprocess.SubprocessError, OSError):
                pass

    def __exit__(self, *exc) -> None:
        self._stop.set()

    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


class Clock:
    """Per-part wall and CPU (process) seconds; syncs the GPU so wall time is the part's own."""

    def __init__(self, device: str) -> None:
        self.device, self.wall, self.cpu = device, {}, {}

    def __call__(self, name: str):
        clock = self

        class _Part:
            def __enter__(self):
                self.w, self.c = time.perf_counter(), time.process_time()

            def __exit__(self, *exc):
                if clock.device == "cuda":
                    import torch

                    torch.cuda.synchronize()
                clock.wall[name] = clock.wall.get(name, 0.0) + time.perf_counter() - self.w
                clock.cpu[name] = clock.cpu.get(name, 0.0) + time.process_time() - self.c

        return _Part()


def run(pack_dir: Path, out: Path, hours: float, device: str, batch_size: int = 32, beam_size: int = 5) -> dict:
    import torch

    from curate.models import hf_whisper
    from curate.schema import Segment, Word
    from curate.stages import postprocess as pp
    from curate.stages.wx_transcribe import chunk_segments

    out.mkdir(parents=True, exist_ok=True)
    clock = Clock(device)
    with clock("restore"):
        mdir = restore(pack_dir, out / "model")
    hw = hf_whisper.load(str(mdir), device)
    vad = torch.jit.load(str(pack_dir / "silero_vad.jit"), map_location=device)
    catalog = json.loads((pack_dir / "audio" / "catalog.json").read_text())
    lang = "en"  # the packed recordings; a multilingual model is told, an English-only one needs nothing
    base_s = sum(read_wav(pack_dir / "audio" / r["file"]).size / SR for r in catalog)
    copies = max(1, int(np.ceil(hours * 3600 / base_s)))
    recs = [(f"{r['file']}#{k}", r) for k in range(copies) for r in catalog]
    dtw_s = [0.0]
    inner = hf_whisper.token_start_times

    def timed_dtw(*a, **kw):  # alignment's CPU part (DTW + filters), counted on its own
        t = time.process_time()
        try:
            return inner(*a, **kw)
        finally:
            dtw_s[0] += time.process_time() - t

    hf_whisper.token_start_times = timed_dtw
    segs3: list[Segment] = []
    audio_s, n_chunks, n_words = 0.0, 0, 0
    t0 = time.perf_counter()
    with GpuSampler() as gpu:
        for g in range(0, len(recs), 32):  # 32 recordings at a time (the VAD's lockstep batch)
            group = recs[g : g + 32]
            with clock("decode"):
                audios = [read_wav(pack_dir / "audio" / r["file"]) for _, r in group]
            audio_s += sum(a.size for a in audios) / SR
            with clock("vad"):
                probs = silero_probs(vad, audios, device)
            with clock("chunks"):
                chunks = [
                    merge_to_chunks(speech_regions(p, total_s=a.size / SR)) for p, a in zip(probs, audios, strict=True)
                ]
            items = [(i, c) for i, cs in enumerate(chunks) for c in cs]
            n_chunks += len(items)
            rows: list[dict] = []
            with clock("transcribe+align"):
                for b in range(0, len(items), batch_size):
                    part = items[b : b + batch_size]
                    clips = [audios[i][int(s * SR) : int(e * SR)] for i, (s, e) in part]
                    rows += hf_whisper.transcribe_batch(hw, clips, lang, beam_size, True)
            with clock("post-3s"):
                per_rec: list[list[dict]] = [[] for _ in group]
                for (i, (s, e)), row in zip(items, rows, strict=True):
                    words = [Word(w, s + a, s + b, p) for w, a, b, p in row["words"]]
                    keys = ("text", "avg_logprob", "no_speech_prob", "compression_ratio")
                    per_rec[i].append({"start_s": s, "end_s": e, "words": words, **{k: row[k] for k in keys}})
                    n_words += len(words)
                for (rid, r), mine in zip(group, per_rec, strict=True):
                    kept, _ = chunk_segments(mine, rid, r["file"], lang, "wx-align")
                    kept, _ = pp.drop_phrases(kept, lambda s: pp.language_phrases(lang))
                    long_enough, _ = pp.min_duration(pp.merge_speaker(kept, 3.0), 3.0)
                    segs3 += pp.split_long(long_enough, 30.0)
    total = time.perf_counter() - t0
    hf_whisper.token_start_times = inner
    result = report(clock, total, audio_s, dtw_s[0], gpu.mean(), device, n_chunks, n_words, len(segs3), hw.info)
    result["text_sample"] = " ".join(s.text or "" for s in segs3[:3])[:300]
    (out / "results.json").write_text(json.dumps(result, indent=1))
    return result


def report(clock, total, audio_s, dtw_s, gpu_util, device, n_chunks, n_words, n_segs, info) -> dict:
    h = audio_s / 3600
    parts = ["decode", "vad", "chunks", "transcribe+align", "post-3s"]
    unit = "GPU" if device == "cuda" else "CPU-process"
    print(
        f"\naudio {h:.3f} h in {len(parts)} parts on {device} ({info.get('precision')}, {info.get('attention')}); "
        f"{n_chunks} chunks, {n_words} words, {n_segs} wx-3s segments"
    )
    print(f"{'part':<18}{'wall s':>9}{'cpu s':>9}{'audio-h per ' + unit + '-h':>26}")
    for p in parts:
        w = clock.wall.get(p, 0.0)
        print(f"{p:<18}{w:>9.2f}{clock.cpu.get(p, 0.0):>9.2f}{(h / (w / 3600) if w else float('inf')):>26.1f}")
    print(f"{'diarize':<18}{'skipped: pyannote/resemblyzer absent':>44}")
    print(f"{'end to end':<18}{total:>9.2f}{'':>9}{h / (total / 3600):>26.1f}   (= {audio_s / total:.1f}x real time)")
    cpu_share = {k: clock.cpu.get(k, 0.0) / total for k in ("decode", "vad")} | {"align_dtw": dtw_s / total}
    print("CPU share of end-to-end wall: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in cpu_share.items()))
    print(f"GPU utilisation (nvidia-smi mean): {'n/a' if gpu_util is None else f'{gpu_util:.0f} %'}")
    print(f"restore weights: {clock.wall.get('restore', 0.0):.1f} s (not in end to end)")
    return {
        "device": device,
        "audio_s": audio_s,
        "end_to_end_s": total,
        "x_real_time": audio_s / total,
        "audio_h_per_device_h": h / (total / 3600),
        "parts_wall_s": clock.wall,
        "parts_cpu_s": clock.cpu,
        "cpu_share": cpu_share,
        "gpu_util_mean": gpu_util,
        "chunks": n_chunks,
        "words": n_words,
        "segments_3s": n_segs,
        "substitutions": {
            "vad": "silero (TorchScript) for pyannote",
            "chunks": "pure merge for whisperx",
            "align": "Whisper DTW words (wx_align fallback)",
            "diarize": "skipped",
        },
        "model": info,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--out", type=Path, default=Path("bench_pack"))
    p.add_argument("--model", default="base")
    p.add_argument("--max-audio-s", type=float, default=45.0, help="distinct audio (base leaves room for ~45 s)")
    p.add_argument("--weights-from", type=Path, default=None, help="reuse an earlier pack's weights.zip")
    p.add_argument("--fast", action="store_true", help="quick deflate compression (smoke tests; bigger pack)")
    p.add_argument("--clips", default="", help="comma-separated realaudio ids (default: speech + conversation)")
    r = sub.add_parser("run")
    r.add_argument("--dir", type=Path, default=HERE.parent.parent.parent)
    r.add_argument("--out", type=Path, default=Path("bench_out"))
    r.add_argument("--hours", type=float, default=1.0)
    r.add_argument("--device", default="cuda")
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--beam-size", type=int, default=5)
    r.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = ap.parse_args(argv)
    if a.cmd == "pack":
        clips = [c for c in a.clips.split(",") if c] or None
        pack(a.out, a.model, clips, a.max_audio_s, a.fast, a.weights_from)
    else:
        if a.threads:
            import torch

            torch.set_num_threads(a.threads)
        run(a.dir, a.out, a.hours, a.device, a.batch_size, a.beam_size)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent.parent))  # the packed curate code next to this file
    main()
