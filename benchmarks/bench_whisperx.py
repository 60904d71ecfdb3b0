"""WhisperX pass on CPU: per-stage throughput (audio seconds per second) and peak memory, and diarization of
long programmes with bounded memory.

    python benchmarks/bench_whisperx.py --quick            # a 2 min programme; diarization of 5 and 10 min
    python benchmarks/bench_whisperx.py                    # a 5 min programme; diarization of 10, 20, 30 min
    python benchmarks/bench_whisperx.py --diar-3h          # diarization of 30 min, 1 h and 3 h (slow on CPU)

Programmes are tiled from ../shared/data/realaudio speech clips of several speakers with pauses (or from
``--clips DIR``). Every measurement runs in a fresh subprocess so its peak RSS is its own. The reference
printed next to the diarization figures is the memory budget the windowing is meant to keep (flat RSS: the
peak must not grow with the programme length).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
REALAUDIO = Path(os.environ.get("CURATE_REALAUDIO", REPO.parent / "shared" / "data" / "realaudio"))


def build_programme(path: Path, duration_s: float, clips_dir: Path, seed: int = 0) -> Path:
    """Tile speech clips (several speakers, turns of 1–3 clips) with 0.3–2 s pauses into one FLAC, written
    block by block (a 3 h file never sits in memory)."""
    import pandas as pd
    import soundfile as sf

    from curate import audio

    inv = pd.read_csv(clips_dir / "INVENTORY.csv", keep_default_na=False)
    ids = inv[(inv.content_type == "speech") & (inv.flac_duration_s >= 2.0)].id.tolist()
    bank = [audio.load(clips_dir / "flac" / f"{i}.flac") for i in ids]
    rng = np.random.default_rng(seed)
    total = int(duration_s * 16000)
    with sf.SoundFile(str(path), "w", 16000, 1, format="FLAC") as f:
        written = 0
        while written < total:
            k = int(rng.integers(len(bank)))
            block = [bank[k]] * int(rng.integers(1, 4)) + [np.zeros(int(rng.uniform(0.3, 2.0) * 16000), np.float32)]
            x = np.concatenate(block)[: total - written]
            f.write(x)
            written += x.size
    return path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_stages(path: str, whisper_model: str, beam_size: int, threads: int) -> dict:
    """Run wx_transcribe → wx_align → wx_diarize → sad_segment, and the clean variants' frame-score pass
    (tag_events, tag_speakers), on one file, timing each (wall and CPU seconds; models loaded first)."""
    import torch

    torch.set_num_threads(threads)
    from curate import audio
    from curate.schema import Recording
    from curate.stages.base import RecordingContext
    from curate.stages.sad import SadSegment
    from curate.stages.tag import TagEvents, TagSpeakers
    from curate.stages.wx_align import WxAlign
    from curate.stages.wx_diarize import WxDiarize
    from curate.stages.wx_transcribe import WxTranscribe

    info = audio.probe(path)
    rec = Recording("bench", path, info.duration_s, 16000, 1, language="en")
    stages = [
        WxTranscribe(model=whisper_model, beam_size=beam_size, device="cpu", cpu_threads=threads),
        WxAlign(),
        WxDiarize(device="cpu"),
        SadSegment(device="cpu"),
        TagEvents(threads=threads),
        TagSpeakers(device="cpu", step_s=1.25),
    ]
    own_segments = ("sad_segment", "tag_events", "tag_speakers")  # start from no segments
    out: dict = {"audio_s": info.duration_s, "stages": {}}
    for st in stages:
        t = time.perf_counter()
        st.setup()
        out["stages"][st.stage_name] = {"load_s": time.perf_counter() - t}
    ctx = RecordingContext(rec)
    ctx.audio()
    segs: list = []
    for st in stages:
        t, c = time.perf_counter(), time.process_time()
        res = st.process(ctx, segs if st.stage_name not in own_segments else [])
        dt, cpu = time.perf_counter() - t, time.process_time() - c
        if st.stage_name not in own_segments:
            segs = res.segments
        out["stages"][st.stage_name].update(
            seconds=dt,
            cpu_s=cpu,
            segments=len(res.segments),
            x_realtime=info.duration_s / dt,
            peak_rss_mb=_peak_rss_mb(),
        )
    return out


def child_diar(path: str, window_s: float, step_s: float, threads: int) -> dict:
    """Diarize a long file window by window, reading each window from disk."""
    import torch

    torch.set_num_threads(threads)
    from curate import audio
    from curate.schema import Recording
    from curate.stages.base import RecordingContext
    from curate.stages.wx_diarize import WxDiarize

    info = audio.probe(path)
    st = WxDiarize(window_s=window_s, step_s=step_s, device="cpu")
    st.setup()
    base = _peak_rss_mb()
    ctx = RecordingContext(Recording("long", path, info.duration_s, 16000, 1))  # audio never loaded whole
    t = time.perf_counter()
    turns = st.turns(ctx)
    dt = time.perf_counter() - t
    return {
        "audio_s": info.duration_s,
        "seconds": dt,
        "x_realtime": info.duration_s / dt,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_after_load_mb": base,
        "speakers": len({t.speaker for t in turns}),
        "turns": len(turns),
    }


def _spawn(fn: str, *args) -> dict:
    code = (
        f"import json,sys; sys.path.insert(0,{str(REPO / 'benchmarks')!r}); import bench_whisperx as b; "
        f"print('RESULT'+json.dumps(b.{fn}(*{args!r})))"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYANNOTE_METRICS_ENABLED="0")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{fn} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][6:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small run (~2-4 min)")
    ap.add_argument("--diar-3h", action="store_true", help="diarize 30 min, 1 h and 3 h programmes")
    ap.add_argument("--clips", type=Path, default=REALAUDIO, help="realaudio directory (INVENTORY.csv, flac/)")
    ap.add_argument("--model", default="faster-whisper:base", help="Whisper model for the stage run")
    ap.add_argument("--beam-size", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--window-s", type=float, default=600.0)
    ap.add_argument("--step-s", type=float, default=1.0)
    ap.add_argument("--skip-stages", action="store_true")
    ap.add_argument("--skip-diar", action="store_true", help="only the per-stage run (wx pass beside the tag passes)")
    args = ap.parse_args()
    if not (args.clips / "INVENTORY.csv").exists():
        sys.exit(f"{args.clips}: realaudio clips not found (INVENTORY.csv); pass --clips DIR")
    prog_s = 120 if args.quick else 300
    diar_lengths = [1800, 3600, 10800] if args.diar_3h else ([300, 600] if args.quick else [600, 1200, 1800])
    diar_lengths = [] if args.skip_diar else diar_lengths
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_stages:
            p = build_programme(Path(tmp) / "prog.flac", prog_s, args.clips)
            r = _spawn("child_stages", str(p), args.model, args.beam_size, args.threads)
            print(
                f"\nPer-stage throughput on CPU ({args.threads} threads), {r['audio_s']:.0f} s programme, "
                f"{args.model} beam {args.beam_size}:"
            )
            print(
                f"{'stage':<14}{'load s':>8}{'run s':>8}{'cpu s':>8}{'x realtime':>12}{'segments':>10}{'peak RSS MB':>13}"
            )
            for name, s in r["stages"].items():
                print(
                    f"{name:<14}{s['load_s']:>8.1f}{s['seconds']:>8.1f}{s['cpu_s']:>8.1f}{s['x_realtime']:>12.1f}"
                    f"{s['segments']:>10}{s['peak_rss_mb']:>13.0f}"
                )
            wx = ("wx_transcribe", "wx_align", "wx_diarize")
            total = sum(r["stages"][n]["seconds"] for n in wx)
            wx_cpu = sum(r["stages"][n]["cpu_s"] for n in wx)
            for tag in ("tag_events", "tag_speakers"):
                t = r["stages"][tag]
                print(
                    f"{tag} adds {100 * t['cpu_s'] / wx_cpu:.1f} % to the wx pass's CPU time "
                    f"({100 * t['seconds'] / total:.1f} % of its wall time)"
                )
            print(
                f"whole wx pass (asr+align+diar): {r['audio_s'] / total:.1f}x real time "
                "(thesis reference: 62x on one A100 with large-v2; GPU not measured here)"
            )
        print(
            f"\nDiarization of long programmes (window {args.window_s:g} s, step {args.step_s:g} s, "
            f"{args.threads} threads); reference: peak RSS flat in the programme length"
        )
        print(f"{'length':>8}{'run s':>9}{'x realtime':>12}{'peak RSS MB':>13}{'after load MB':>15}{'speakers':>10}")
        for n in diar_lengths:
            p = build_programme(Path(tmp) / f"long{n}.flac", n, args.clips, seed=n)
            r = _spawn("child_diar", str(p), args.window_s, args.step_s, args.threads)
            print(
                f"{n / 60:>6.0f}m {r['seconds']:>9.0f}{r['x_realtime']:>12.1f}{r['peak_rss_mb']:>13.0f}"
                f"{r['rss_after_load_mb']:>15.0f}{r['speakers']:>10}",
                flush=True,
            )
            p.unlink()


if __name__ == "__main__":
    main()
