"""CPU speed and WER of the two Whisper backends with the same weights (issue 26).

    python -m benchmarks.bench_whisper_backends [--model tiny.en] [--beam 1] [--compute-type float32] [--threads 1]

The English real-speech clips with transcripts (../shared/data/realaudio, 23 clips, 113 s) are the VAD chunks of
one recording (0.5 s pauses between clips), transcribed in batches of 8 by wx_transcribe's two code paths:
CTranslate2 (faster-whisper, ``--compute-type``) and transformers (float32 on CPU). Prints WER of each against
the transcripts (Whisper's English normaliser), seconds of each, and how far the DTW word times of the two are
apart. On a shared machine use ``--threads 1`` (two torch threads suffer badly under contention).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
REALAUDIO = Path(os.environ.get("CURATE_REALAUDIO", REPO.parent / "shared" / "data" / "realaudio"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--compute-type", default="float32")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import jiwer
    import pandas as pd
    import torch
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    from curate import audio
    from curate.models import hf_whisper, resolve
    from curate.stages.wx_transcribe import load_whisper, transcribe_chunks, transcribe_chunks_hf

    inv = pd.read_csv(REALAUDIO / "INVENTORY.csv", keep_default_na=False)
    rows = inv[(inv.content_type == "speech") & (inv.transcript != "") & (inv.language == "en")]
    clips = [audio.load(REALAUDIO / "flac" / f"{i}.flac") for i in rows.id]
    pause = np.zeros(8000, np.float32)
    x = np.concatenate([p for c in clips for p in (c, pause)])
    starts = np.cumsum([0] + [len(c) + len(pause) for c in clips[:-1]]) / 16000
    chunks = [(float(s), float(s) + len(c) / 16000) for s, c in zip(starts, clips, strict=True)]
    norm = EnglishTextNormalizer({})
    refs = [norm(t) for t in rows.transcript]
    torch.set_num_threads(a.threads)
    ct2 = load_whisper(str(resolve(f"faster-whisper:{a.model}").path), "cpu", a.compute_type, a.threads)
    t = time.perf_counter()
    r1, _ = transcribe_chunks(ct2, x, chunks, "en", 8, a.beam, True)
    t1 = time.perf_counter() - t
    hw = hf_whisper.load(str(resolve(f"transformers:{a.model}").path), "cpu", threads=a.threads)
    t = time.perf_counter()
    r2, _ = transcribe_chunks_hf(hw, x, chunks, "en", 8, a.beam, True)
    t2 = time.perf_counter() - t
    w1 = 100 * jiwer.wer(refs, [norm(r["text"]) for r in r1])
    w2 = 100 * jiwer.wer(refs, [norm(r["text"]) for r in r2])
    d = [
        abs(p.start_s - q.start_s)
        for u, v in zip(r1, r2, strict=True)
        if [w.word for w in u["words"]] == [w.word for w in v["words"]]
        for p, q in zip(u["words"], v["words"], strict=True)
    ]
    dur = len(x) / 16000
    print(f"{a.model} beam {a.beam}, {len(clips)} clips, {dur:.1f} s audio, {a.threads} thread(s)")
    print(f"  CTranslate2 ({a.compute_type}): WER {w1:.2f} %  {t1:.1f} s  ({dur / t1:.1f}x real time)")
    print(f"  transformers (float32):  WER {w2:.2f} %  {t2:.1f} s  ({dur / t2:.1f}x real time)")
    print(f"  word start |Δ| median {np.median(d):.3f} s, p90 {np.percentile(d, 90):.3f} s over {len(d)} words")


if __name__ == "__main__":
    main()
