"""Speaker purity of clean segments on the real conversations with reference turns (issue 21, item 4).

python -m benchmarks.bench_purity [--voice 0.2,0.25,0.3,0.35] [--halves dev,test] [--programmes DIR] [--quick]

Each conversation of the real-audio benchmark (RTTM turns; split dev/test by :mod:`benchmarks.realaudio`) is
tagged once (``tag_speakers`` with the bench's 2.5 s step, ``tag_voices``); one segment covering the whole clip
then goes through ``clean_trim`` with wx-asr-1s-clean's shipped params (pauses on the speakers grid, overlap,
speaker-activity turns, the margins cut around turns in speech) and ``min_duration`` 1 s, once as shipped, once
without the turn margins (``turn_cut_s`` 0) and once per ``--voice`` threshold (turns where the GE2E voice
distance peaks). Per setting, over the half's conversations:

- purity: the main speaker's share of each segment's speech, time-weighted (overlapped speech counts for both);
- >1 speaker: segments where a second speaker holds >= 10 % of the speech (``curate.quality``'s rule);
- kept: share of the reference speech the segments keep;
- DER of the segments labelled by their main reference speaker (an oracle labelling: what remains is the error
  the segment *boundaries* cause — missed speech, and the other speaker inside a segment).

With ``--programmes DIR`` (default ``manifests/bench_quality``: the cached runs of ``benchmarks.bench_quality``)
the same settings replay on the benchmark's programmes too (``curate.calibrate.replay``, model-free once the
voice scores are there): ``tag_voices`` runs on each cached run's recordings that lack ``scores/voices`` (its
CPU time is printed), then wx-asr-1s-clean as shipped, without turn margins, over the ``turn_cut_s`` ×
``turn_cut_pause_s`` grid the shipped pair was fitted on (dev), per voice threshold, and w-pp-3s-clean re-joined by
voice are scored against the ground truth (:func:`curate.quality.evaluate_segments`).

Tune on dev; report test.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import yaml

from benchmarks import realaudio
from curate import timeline

REPO = Path(__file__).resolve().parents[1]


def reference_turns(root: Path, cid: str) -> list[tuple[float, float, str]]:
    turns = []
    for ln in (root / "annotations" / f"{cid}.rttm").read_text().splitlines():
        f = ln.split()
        if ln.startswith("SPEAKER"):
            turns.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return sorted(turns)


def score(segments: list[tuple[float, float]], turns: list[tuple[float, float, str]]) -> dict[str, float]:
    """Purity, mixed segments, kept speech and the boundary DER (main-speaker labels) of one clip's segments."""
    main_t = speech_t = 0.0
    mixed = 0
    labelled = []
    for s, e in segments:
        per: dict[str, float] = defaultdict(float)
        for a, b, spk in turns:
            per[spk] += timeline.overlap((s, e), (a, b))
        spoken = sum(per.values())
        if spoken <= 0:
            continue
        top = sorted(per.values())
        main_t += top[-1]
        speech_t += spoken
        mixed += len(top) > 1 and top[-2] >= 0.1 * spoken
        labelled.append((s, e, max(per, key=per.get)))
    ref_speech = timeline.total(timeline.merge([(a, b) for a, b, _ in turns]))
    kept = timeline.total(timeline.intersect(timeline.merge(segments), timeline.merge([(a, b) for a, b, _ in turns])))
    return {"main": main_t, "speech": speech_t, "mixed": mixed, "n": len(labelled), "kept": kept,
            "ref": ref_speech, "der": _der(turns, labelled)}  # fmt: skip


def _der(turns: list[tuple[float, float, str]], hyp: list[tuple[float, float, str]]) -> float:
    """Seconds of diarization error (pyannote.metrics, no collar) of ``hyp`` against ``turns``."""
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref, h = Annotation(), Annotation()
    for a, b, spk in turns:
        ref[Segment(a, b)] = spk
    for a, b, spk in hyp:
        h[Segment(a, b)] = spk
    m = DiarizationErrorRate()
    m(ref, h)
    return float(m["missed detection"] + m["false alarm"] + m["confusion"])


def add_voices(run_dir: Path) -> tuple[int, float, float]:
    """``tag_voices`` (default params) on the recordings of a run that lack ``scores/voices``, saved where the
    runner saves them: (recordings done, CPU s, audio s)."""
    import time

    from curate import manifest
    from curate.rundir import RunDir
    from curate.schema import recording_from_row
    from curate.stages.base import RecordingContext
    from curate.stages.tag import TagVoices

    run = RunDir(run_dir)
    recs = [recording_from_row(r) for r in manifest.read_table(run.recordings, "recordings").to_pylist()]
    todo = [r for r in recs if not run.scores_path("voices", r.recording_id).is_file()]
    if not todo:
        return 0, 0.0, 0.0
    st = TagVoices(device="cpu")
    st.setup()
    cpu = secs = 0.0
    for rec in todo:
        ctx = RecordingContext(rec)
        ctx.frames_loader = lambda kind, rid=rec.recording_id: run.read_scores(kind, rid)
        ctx.audio()
        t = time.process_time()
        st.process(ctx, [])
        cpu, secs = cpu + time.process_time() - t, secs + rec.duration_s
        manifest.write_table(run.scores_path("voices", rec.recording_id), ctx.frames["voices"].to_arrow(), "voices")
    st.teardown()
    return len(todo), cpu, secs


TURN_CUT_GRID = [(m, p) for m in (0.5, 0.6, 0.7, 0.8) for p in (None, 0.4, 0.5)]  # turn_cut_s, turn_cut_pause_s
PROGRAMME_SETTINGS = [("wx-asr-1s-clean", "shipped", {}), ("wx-asr-1s-clean", "turn_cut_s 0", {"turn_cut_s": 0.0})] + [
    ("wx-asr-1s-clean", f"turn_cut_s {m}, turn_cut_pause_s {p}", {"turn_cut_s": m, "turn_cut_pause_s": p})
    for m, p in TURN_CUT_GRID
] + [
    ("wx-asr-1s-clean", f"voice {v}", {"voice": v}) for v in (0.2, 0.25, 0.3, 0.35)
] + [
    ("w-pp-3s-clean", "shipped", {}),
    ("w-pp-3s-clean", "join_gap_s 0.5", {"join_gap_s": 0.5}),
    ("w-pp-3s-clean", "join_gap_s 0.5, join_voice 0.2", {"join_gap_s": 0.5, "join_voice": 0.2}),
]  # fmt: skip


def programmes(out: Path, halves: list[str]) -> None:
    """The settings replayed on the cached bench_quality runs of each half (see the module docstring)."""
    from curate import calibrate, quality

    print("\n| half | variant | setting | segments | clean 1-spk % | >1 speaker % | clean kept % |")
    print("|---|---|---|---:|---:|---:|---:|")
    for half in halves:
        run, truth_path = out / half / "run", out / half / "archive" / "ground_truth.json"
        if not truth_path.is_file():
            print(f"| {half} | – | no cached run at {run} (python -m benchmarks.bench_quality) | | | | |")
            continue
        n, cpu, secs = add_voices(run)
        if n:
            print(f"<!-- tag_voices on {n} recordings of {half}: {cpu:.1f} CPU s for {secs:.0f} s of audio -->")
        truth = quality.load_ground_truth(truth_path)
        for variant, name, params in PROGRAMME_SETTINGS:
            data = calibrate.load(run, truth, variant)
            post = yaml.safe_load((REPO / "pipelines" / "post" / f"{variant}.yaml").read_text())
            data.chain = post["derive"][variant]["stages"]  # as shipped, whatever the run last derived
            segs = calibrate.replay(data, params)
            q = quality.evaluate_segments([(s.recording_id, s.start_s, s.end_s) for s in segs], data.reference)
            print(f"| {half} | {variant} | {name} | {q.segments} | {q.clean_single_pct:.1f} | "
                  f"{q.multi_speaker_pct:.1f} | {q.clean_recall_pct:.1f} |", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voice", default="0.2,0.25,0.3,0.35", help="voice-distance thresholds to try")
    ap.add_argument("--halves", default="dev,test")
    ap.add_argument("--programmes", type=Path, default=REPO / "manifests" / "bench_quality")
    ap.add_argument("--quick", action="store_true", help="the conversations only, not the programmes")
    args = ap.parse_args()
    if not realaudio.roots():
        print("no real-audio folders found; skipped")
        return
    import torch

    from curate import audio
    from curate.schema import Recording, Segment
    from curate.stages.base import RecordingContext
    from curate.stages.clean import CleanTrim
    from curate.stages.postprocess import MinDuration
    from curate.stages.tag import TagSpeakers, TagVoices

    torch.set_num_threads(1)
    post = yaml.safe_load((REPO / "pipelines" / "post" / "wx-asr-1s-clean.yaml").read_text())
    trim = next(
        {k: v for k, v in st.items() if k != "stage"} for st in post["derive"]["wx-asr-1s-clean"]["stages"]
        if st["stage"] == "clean_trim"
    )  # fmt: skip
    halves = realaudio.split()
    convs = []
    for root in realaudio.roots():
        with open(root / "INVENTORY.csv", encoding="utf-8") as f:
            convs += [(root, r["id"]) for r in csv.DictReader(f)
                      if r["content_type"] == "conversation" and (root / "annotations" / f"{r['id']}.rttm").is_file()
                      and r["id"] in halves]  # fmt: skip
    speakers, voices = TagSpeakers(step_s=2.5, device="cpu"), TagVoices(device="cpu")
    for st in (speakers, voices):
        st.setup()
    frames = {}
    for root, cid in convs:
        path = str(root / "flac" / f"{cid}.flac")
        rec = Recording(cid, path, audio.probe(path).duration_s, 16000, 1)
        ctx = RecordingContext(rec)
        speakers.process(ctx, [])
        voices.process(ctx, [])
        frames[cid] = (rec, dict(ctx.frames))
    settings = [("shipped", {}), ("turn_cut_s 0", {"turn_cut_s": 0.0})]
    settings += [(f"voice {v}", {"voice": float(v)}) for v in args.voice.split(",") if v]
    print("| half | setting | conversations | segments | purity % | >1 speaker % | speech kept % | DER % |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for half in args.halves.split(","):
        mine = [(root, cid) for root, cid in convs if halves[cid] == half]
        for name, extra in settings:
            tot: dict[str, float] = defaultdict(float)
            for root, cid in mine:
                rec, fr = frames[cid]
                ctx = RecordingContext(rec)
                ctx.frames.update(fr)
                seg = Segment.new(cid, rec.audio_path, 0.0, rec.duration_s, "conv")
                st = CleanTrim(**{**trim, **extra})
                st.validate()
                kept = MinDuration(min_s=1.0).process(ctx, st.process(ctx, [seg]).segments).segments
                for k, v in score([(s.start_s, s.end_s) for s in kept], reference_turns(root, cid)).items():
                    tot[k] += v
            print(
                f"| {half} | {name} | {len(mine)} | {int(tot['n'])} | {100 * tot['main'] / max(tot['speech'], 1e-9):.1f} "
                f"| {100 * tot['mixed'] / max(tot['n'], 1):.1f} | {100 * tot['kept'] / max(tot['ref'], 1e-9):.1f} "
                f"| {100 * tot['der'] / max(tot['ref'], 1e-9):.1f} |",
                flush=True,
            )
    if not args.quick:
        programmes(args.programmes, args.halves.split(","))


if __name__ == "__main__":
    main()
