"""One-call GPU benchmark of curate's ``wx-diar-3s`` and ``clean`` pipelines with ``backend: transformers`` (issue 26).

    python -m benchmarks.gpu_pack --out bench_pack [--model base]                 # here: code + weights + audio
    python bench_pack/code/benchmarks/gpu_curate.py run --dir bench_pack --out OUT [--hours 1] [--device cuda]

``run`` needs only Python with torch, transformers, numpy, pyarrow and pyyaml (onnxruntime when present; no
pyannote, resemblyzer, scipy, librosa, faster-whisper, whisperx, soundfile or ffmpeg; no network): it restores the
weights (:mod:`benchmarks.gpu_pack`), repeats the packed recordings to ``--hours`` of audio and runs, per group of
16 recordings, what the two pipelines run, timing each stage:

  decode        Python's ``wave`` (CPU)
  vad           pyannote segmentation (plain-torch PyanNet), speech scores, chunks of all recordings batched
  chunks        WhisperX cut & merge into ≤ 30 s chunks (``wx_transcribe.cut_and_merge``, CPU)
  transcribe    transformers Whisper, chunks of all recordings batched (fp16 + SDPA on GPU), with the words'
                cross-attention DTW times (CPU); then wx_align's ``whisper_words`` fallback: a segment per sentence
  diarize       wx_diarize: PyanNet local speakers + GE2E embeddings (plain torch) + clustering (numpy)
  post-3s       the ``wx-diar-3s`` derivation of ``pipelines/whisperx.yaml`` (drop_phrases … split_long)
  tag_events    clean's tags pass: YAMNet int8 through onnxruntime (CUDA provider when present, else CPU)
  tag_speakers  clean's tags pass: PyanNet overlap and turn frames (step 2.5 s, as clean.yaml)
  clean-3s      clean.yaml's ``wx-diar-3s`` and ``wx-diar-3s-clean`` derivations (… clean_trim … clean_score)

It prints audio-hours per device-hour per stage and end to end for each pipeline (``wx-diar-3s``: decode …
post-3s; ``clean``: decode … diarize + the tags pass + clean-3s; clean's ``whisper`` pass, w-raw, is not run),
the GPU utilisation (nvidia-smi samples) and the CPU share, and writes results.json. ``--budget-s`` stops
starting new groups when the next one would not fit, so one call stays within its time limit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
SR = 16000
WX = ["decode", "vad", "chunks", "transcribe+align", "diarize", "post-3s"]
CLEAN = [*WX[:-1], "tag_events", "tag_speakers", "clean-3s"]
STAGES = [*WX, *CLEAN[len(WX) - 1 :]]


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


def _derivations(code: Path) -> dict[str, list]:
    """Derivation stage lists, built and set up: ``wx-diar-3s`` of the packed ``pipelines/whisperx.yaml``, and
    ``wx-diar-3s`` + ``wx-diar-3s-clean`` of ``pipelines/clean.yaml`` (with the quality columns)."""
    import yaml

    import curate.stages.clean
    import curate.stages.postprocess  # noqa: F401  (registers the derivation stages; no other stage module)
    from curate.config import build_stage

    out = {}
    for pipe, names in (("whisperx", ["wx-diar-3s"]), ("clean", ["wx-diar-3s", "wx-diar-3s-clean"])):
        cfg = yaml.safe_load((code / "curate" / "presets" / "pipelines" / f"{pipe}.yaml").read_text())
        for name in names:
            stages = [build_stage(s, f"{pipe}.derive.{name}") for s in cfg["derive"][name]["stages"]]
            for st in stages:
                st.setup()
            out[f"{pipe}:{name}"] = stages
    return out


def _tagger(pack_dir: Path, out: Path):
    """(SoundTagger or None, why not)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None, "onnxruntime absent"
    from benchmarks.gpu_pack import restore_yamnet
    from curate.models.tagger import SoundTagger

    return SoundTagger(restore_yamnet(pack_dir, out / "yamnet")), ""


def _sentences(seg, lang: str):
    """What ``wx_align`` does to a chunk without a wav2vec2 model (``fallback: whisper_words``)."""
    from dataclasses import replace

    from curate.stages.wx_align import sentence_segments, whisper_words

    words = whisper_words(seg)
    if not words:
        return [replace(seg, variant="wx-align")]
    return [replace(s, variant="wx-align") for s in sentence_segments(seg, words, lang)]


def _apply(stages, ctx, segs):
    for st in stages:
        segs = st.process(ctx, segs).segments
    return segs


def run(
    pack_dir: Path,
    out: Path,
    hours: float,
    device: str,
    batch_size: int = 32,
    beam_size: int = 5,
    budget_s: float = 420.0,
    group: int = 16,
) -> dict:
    from benchmarks.gpu_pack import read_wav, restore
    from curate.models import diarization, ge2e, hf_whisper, pyannet
    from curate.models.overlap import SpeakerActivity
    from curate.models.vad import FrameScores
    from curate.schema import Recording
    from curate.stages.wx_diarize import assign_speakers
    from curate.stages.wx_transcribe import chunk_row, chunk_segments, cut_and_merge

    out.mkdir(parents=True, exist_ok=True)
    clock = Clock(device)
    t_start = time.perf_counter()
    with clock("restore"):
        mdir = restore(pack_dir, out / "model")
        hw = hf_whisper.load(str(mdir), device)
        seg_model = pyannet.load(pack_dir / "models" / "pyannet.pt", device)
        diar = diarization.SegmentationResemblyzer(
            seg_model, ge2e.load(pack_dir / "models" / "ge2e.pt", device), diarization.DiarizationParams()
        )
        activity = SpeakerActivity(seg_model, 2.5, 0.1, 1.5)  # clean.yaml's tag_speakers
        tagger, tag_skip = _tagger(pack_dir, out)
        derive = _derivations(HERE.parent.parent)
    catalog = json.loads((pack_dir / "audio" / "catalog.json").read_text())
    lang = "en"  # the packed recordings; a multilingual model is told, an English-only one needs nothing
    base_s = sum(read_wav(pack_dir / "audio" / r["file"]).size / SR for r in catalog)
    copies = max(1, int(np.ceil(hours * 3600 / base_s)))
    recs = [(f"{r['file'].removesuffix('.wav')}-{k}", r) for k in range(copies) for r in catalog]
    dtw_s = [0.0]
    inner = hf_whisper.token_start_times

    def timed_dtw(*a, **kw):  # alignment's CPU part (DTW + filters), counted on its own
        t = time.process_time()
        try:
            return inner(*a, **kw)
        finally:
            dtw_s[0] += time.process_time() - t

    hf_whisper.token_start_times = timed_dtw
    counts = {"chunks": 0, "words": 0, "wx-diar-3s": 0, "wx-diar-3s-clean": 0, "speakers": 0}
    audio_s, samples, longest = 0.0, [], 0.0
    t0 = time.perf_counter()
    with GpuSampler() as gpu:
        for g in range(0, len(recs), group):
            tg = time.perf_counter()
            if g and (tg - t_start) + 1.2 * longest > budget_s:
                print(f"budget: stopping after {g} of {len(recs)} recordings (--budget-s {budget_s:g})")
                break
            part = recs[g : g + group]
            with clock("decode"):
                audios = [read_wav(pack_dir / "audio" / r["file"]) for _, r in part]
            audio_s += sum(a.size for a in audios) / SR
            with clock("vad"):
                raw = pyannet.chunk_scores_many(seg_model, audios, 0.5, 256)
                speech = [pyannet.aggregate_speech(seg_model, c, a.size) for c, a in zip(raw, audios, strict=True)]
            with clock("chunks"):
                chunks = []
                for s, a in zip(speech, audios, strict=True):
                    fs = FrameScores(s.data[:, 0], 0.0, s.sliding_window.step, s.sliding_window.duration)
                    cs = [(b, min(e, a.size / SR)) for b, e in cut_and_merge(fs, 30.0, 0.5, 0.363)]
                    chunks.append([c for c in cs if c[1] > c[0]])
            items = [(i, c) for i, cs in enumerate(chunks) for c in cs]
            counts["chunks"] += len(items)
            per_rec: list[list[dict]] = [[] for _ in part]
            with clock("transcribe+align"):
                for b in range(0, len(items), batch_size):
                    batch = items[b : b + batch_size]
                    clips = [audios[i][int(s * SR) : int(e * SR)] for i, (s, e) in batch]
                    rows = hf_whisper.transcribe_batch(hw, clips, lang, beam_size, True)
                    for (i, (s, e)), r in zip(batch, rows, strict=True):
                        stats = (r["avg_logprob"], r["no_speech_prob"], r["compression_ratio"])
                        per_rec[i].append(chunk_row(s, e, r["text"], r["words"], s, *stats))
                wx = []  # wx-asr chunks → wx_align's whisper_words fallback: one segment per sentence
                for (rid, r), rows in zip(part, per_rec, strict=True):
                    asr, _ = chunk_segments(rows, rid, r["file"], lang, "wx-asr")
                    wx.append([x for seg in asr for x in _sentences(seg, lang)])
            counts["words"] += sum(len(s.words or ()) for segs in wx for s in segs)
            ctxs = [
                _ctx(Recording(rid, r["file"], a.size / SR, SR, 1, language=lang), a)
                for (rid, r), a in zip(part, audios, strict=True)
            ]
            with clock("diarize"):
                diarized = []
                for ctx, segs in zip(ctxs, wx, strict=True):
                    turns = diar(ctx.read, ctx.recording.duration_s) if segs else []
                    counts["speakers"] += len({t.speaker for t in turns})
                    diarized.append(assign_speakers(segs, turns, True))
            with clock("post-3s"):
                for ctx, segs in zip(ctxs, diarized, strict=True):
                    counts["wx-diar-3s"] += len(_apply(derive["whisperx:wx-diar-3s"], ctx, list(segs)))
            with clock("tag_events"):
                for ctx in ctxs:
                    if tagger is not None:
                        ctx.frames["tags"] = tagger.frames(ctx.audio())
            with clock("tag_speakers"):
                for ctx in ctxs:
                    ctx.frames["speakers"] = activity.frames(ctx.audio())
            with clock("clean-3s"):
                for ctx, segs in zip(ctxs, diarized, strict=True):
                    _apply(derive["clean:wx-diar-3s"], ctx, list(segs))
                    kept = _apply(derive["clean:wx-diar-3s-clean"], ctx, list(segs))
                    counts["wx-diar-3s-clean"] += len(kept)
                    if not samples:
                        samples = [s.text or "" for s in kept[:3]]
            longest = max(longest, time.perf_counter() - tg)
    total = time.perf_counter() - t0
    hf_whisper.token_start_times = inner
    info = {**hw.info, "tagger": getattr(tagger, "provider", None) or f"skipped: {tag_skip}"}
    result = report(clock, total, audio_s, dtw_s[0], gpu.mean(), device, counts, info)
    result["text_sample"] = " ".join(samples)[:300]
    (out / "results.json").write_text(json.dumps(result, indent=1))
    return result


def _ctx(recording, audio: np.ndarray):
    """The RecordingContext the stages read, its audio already decoded."""
    from curate.stages.base import RecordingContext

    ctx = RecordingContext(recording)
    ctx.audio = lambda: audio  # type: ignore[method-assign]
    ctx.read = lambda s, e: audio[int(round(s * SR)) : int(round(e * SR))]  # type: ignore[method-assign]
    return ctx


def report(clock, total, audio_s, dtw_s, gpu_util, device, counts, info) -> dict:
    h = audio_s / 3600
    unit = "GPU" if device == "cuda" else "CPU-process"

    def speed(wall: float) -> float:
        return h / (wall / 3600) if wall else float("inf")

    print(
        f"\naudio {h:.3f} h on {device} ({info.get('precision')}, {info.get('attention')}; tagger {info['tagger']}); "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
    )
    print(f"{'stage':<24}{'wall s':>9}{'cpu s':>9}{'audio-h per ' + unit + '-h':>26}")
    for p in STAGES:
        w = clock.wall.get(p, 0.0)
        note = "   (skipped: " + info["tagger"][9:] + ")" if p == "tag_events" and "skipped" in info["tagger"] else ""
        print(f"{p:<24}{w:>9.2f}{clock.cpu.get(p, 0.0):>9.2f}{speed(w):>26.1f}{note}")
    ends = {}
    for name, parts in (("wx-diar-3s", WX), ("clean", CLEAN)):
        w = sum(clock.wall.get(p, 0.0) for p in parts)
        c = sum(clock.cpu.get(p, 0.0) for p in parts)
        ends[name] = {"wall_s": w, "cpu_s": c, "audio_h_per_device_h": speed(w), "x_real_time": audio_s / w}
        print(f"{'end to end ' + name:<24}{w:>9.2f}{c:>9.2f}{speed(w):>26.1f}   (= {audio_s / w:.1f}x real time)")
    cpu_share = {k: clock.cpu.get(k, 0.0) / total for k in ("decode", "vad", "chunks")} | {"align_dtw": dtw_s / total}
    cpu_share["all_process_cpu"] = sum(clock.cpu.get(p, 0.0) for p in STAGES) / total
    print("CPU share of the loop's wall: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in cpu_share.items()))
    print(f"GPU utilisation (nvidia-smi mean): {'n/a' if gpu_util is None else f'{gpu_util:.0f} %'}")
    print(f"loop wall {total:.1f} s; restore + load models {clock.wall.get('restore', 0.0):.1f} s (not in end to end)")
    return {
        "device": device,
        "audio_s": audio_s,
        "loop_wall_s": total,
        "end_to_end": ends,
        "x_real_time": ends["wx-diar-3s"]["x_real_time"],
        "parts_wall_s": clock.wall,
        "parts_cpu_s": clock.cpu,
        "cpu_share": cpu_share,
        "gpu_util_mean": gpu_util,
        "counts": counts,
        "chunks": counts["chunks"],
        "substitutions": {
            "align": "Whisper DTW words (wx_align's whisper_words fallback; no wav2vec2 model travels)",
            "clean": "tags pass + wx-diar-3s-clean derivation; the whisper pass (w-raw) is not run",
        },
        "model": info,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dir", type=Path, default=HERE.parent.parent.parent)
    r.add_argument("--out", type=Path, default=Path("bench_out"))
    r.add_argument("--hours", type=float, default=1.0)
    r.add_argument("--device", default="cuda")
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--beam-size", type=int, default=5)
    r.add_argument("--budget-s", type=float, default=420.0, help="start no group that would end after this")
    r.add_argument("--group", type=int, default=16, help="recordings per group (VAD and Whisper batch across them)")
    r.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = ap.parse_args(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    run(a.dir, a.out, a.hours, a.device, a.batch_size, a.beam_size, a.budget_s, a.group)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent.parent))  # the packed curate code next to this file
    main()
