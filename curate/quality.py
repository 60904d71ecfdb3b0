"""Segmentation quality against a ground-truth timeline: what each variant's segments actually contain.

The thesis judged variants by the WER of models pre-trained on them — days of GPU time per cell. When the
archive (or a sample of it) has a reference timeline, as the demo archive does, the same question gets a
cheap first answer: how much of each variant is clean single-speaker speech, how much music, noise or
silence it lets through, and how much of the speech it keeps.

Reference: ``{recording_id: [Region(start_s, end_s, kind, speaker, background, ...)]}`` with kinds
speech | music | vocal_music | noise | silence, read by :func:`load_ground_truth` (the demo writes one).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from curate import manifest, timeline
from curate.rundir import RunDir

#: a second speaker must cover at least this share of a segment's speech to count as a speaker mix
MIX_MIN_SHARE = 0.1


@dataclass(frozen=True)
class Region:
    """One placed piece: [start_s, end_s) in seconds of the written file. Regions of a programme tile it."""

    start_s: float
    end_s: float
    kind: str  # speech | music | vocal_music | noise | silence
    speaker: str | None = None
    language: str | None = None
    text: str | None = None
    background: str | None = None  # what lies under speech: music | vocal_music | noise | speech (a second voice)
    source: str | None = None  # the generator: jingle, bed, outro, song, applause, pink, white
    other_speaker: str | None = None  # background "speech": who talks at the same time


def load_ground_truth(path: Path) -> dict[str, list[Region]]:
    """Read ``ground_truth.json``: recording_id -> its regions in time order."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return {rid: [Region(**r) for r in regions] for rid, regions in raw.items()}


class RegionLike(Protocol):
    start_s: float
    end_s: float
    kind: str
    speaker: str | None
    background: str | None
    other_speaker: str | None


@dataclass(frozen=True)
class VariantQuality:
    segments: int
    hours: float
    speech_pct: float  # share of segment time that is speech (with or without a music bed)
    clean_speech_pct: float  # speech with nothing under it
    music_pct: float  # music or sung music, plus speech over a music bed
    noise_pct: float
    silence_pct: float
    multi_speaker_pct: float  # segments where a second speaker holds ≥ 10 % of the speech
    speech_recall_pct: float  # share of the reference speech (of the evaluated recordings) the variant keeps
    sung_pct: float = 0.0  # sung music (alone or under speech)
    overlap_pct: float = 0.0  # speech with a second voice at the same time
    clean_single_pct: float = 0.0  # clean speech of each segment's main speaker: the product
    clean_recall_pct: float = 0.0  # share of the reference clean speech the variant keeps

    def meets(self, targets: Targets) -> list[str]:
        """How this variant misses ``targets`` (empty when it meets them all)."""
        t, out = targets, []
        for name, value, limit, better in (
            ("clean single-speaker", self.clean_single_pct, t.clean_single_pct, "≥"),
            ("music", self.music_pct, t.music_pct, "≤"),
            ("sung", self.sung_pct, t.sung_pct, "≤"),
            (">1 speaker", self.multi_speaker_pct, t.multi_speaker_pct, "≤"),
            ("clean kept", self.clean_recall_pct, t.clean_recall_pct, "≥"),
        ):
            if (better == "≥" and value < limit) or (better == "≤" and value > limit):
                out.append(f"{name} {value:.1f} % (target {better} {limit:g} %)")
        return out


@dataclass(frozen=True)
class Targets:
    """The clean variants' targets (issue #12), in percent."""

    clean_single_pct: float = 95.0
    music_pct: float = 2.0
    sung_pct: float = 0.5
    multi_speaker_pct: float = 5.0
    clean_recall_pct: float = 75.0


def _overlap(spans: Sequence[tuple[float, float]], regions: Iterable[tuple[float, float]]) -> float:
    return timeline.total(timeline.intersect(spans, regions))


def evaluate_segments(
    segments: Sequence[tuple[str, float, float]], reference: dict[str, Sequence[RegionLike]]
) -> VariantQuality:
    """Score ``(recording_id, start_s, end_s)`` segments against the reference regions (pure function).

    Only recordings present in the reference count; recall is relative to the speech of the recordings that
    have at least one segment in some variant — the caller passes those as ``reference``."""
    by_rec: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for rid, s, e in segments:
        if rid in reference:
            by_rec[rid].append((s, e))
    total = speech = clean = music = sung = noise = silence = overlapped = kept_speech = ref_speech = 0.0
    single = kept_clean = ref_clean = 0.0
    mixed = n = 0
    for rid, regions in reference.items():
        spans = by_rec.get(rid, [])
        speech_regions = [(r.start_s, r.end_s) for r in regions if r.kind == "speech"]
        clean_regions = [(r.start_s, r.end_s) for r in regions if r.kind == "speech" and not r.background]
        ref_speech += timeline.total(speech_regions)
        ref_clean += timeline.total(clean_regions)
        if not spans:
            continue
        kept_speech += _overlap(timeline.merge(spans), speech_regions)
        kept_clean += _overlap(timeline.merge(spans), clean_regions)
        for s, e in spans:
            n += 1
            total += e - s
            per_speaker: dict[str, float] = defaultdict(float)
            clean_by: dict[str, float] = defaultdict(float)
            for r in regions:
                ov = timeline.overlap((s, e), (r.start_s, r.end_s))
                if ov <= 0:
                    continue
                if r.kind == "speech":
                    speech += ov
                    per_speaker[r.speaker or "?"] += ov
                    bg = r.background
                    if bg == "speech":
                        overlapped += ov
                        per_speaker[getattr(r, "other_speaker", None) or "?2"] += ov
                    elif bg == "noise":
                        noise += ov
                    elif bg:  # music or vocal_music (the demo's first archives wrote "music" for beds)
                        music += ov
                        sung += ov if bg == "vocal_music" else 0.0
                    else:
                        clean += ov
                        clean_by[r.speaker or "?"] += ov
                elif r.kind in ("music", "vocal_music"):
                    music += ov
                    sung += ov if r.kind == "vocal_music" else 0.0
                elif r.kind == "noise":
                    noise += ov
                elif r.kind == "silence":
                    silence += ov
            single += max(clean_by.values(), default=0.0)
            spoken = sum(per_speaker.values())
            if spoken > 0 and len(per_speaker) > 1 and sorted(per_speaker.values())[-2] >= MIX_MIN_SHARE * spoken:
                mixed += 1

    def pct(x: float, of: float) -> float:
        return 100.0 * x / of if of > 0 else 0.0

    return VariantQuality(
        segments=n,
        hours=total / 3600,
        speech_pct=pct(speech, total),
        clean_speech_pct=pct(clean, total),
        music_pct=pct(music, total),
        noise_pct=pct(noise, total),
        silence_pct=pct(silence, total),
        multi_speaker_pct=pct(mixed, n),
        speech_recall_pct=pct(kept_speech, ref_speech),
        sung_pct=pct(sung, total),
        overlap_pct=pct(overlapped, total),
        clean_single_pct=pct(single, total),
        clean_recall_pct=pct(kept_clean, ref_clean),
    )


def kept_reference(run_dir: str | Path, reference: dict[str, Sequence[RegionLike]]) -> dict[str, Sequence[RegionLike]]:
    """The reference of the recordings the run kept and did not fail: what recall is measured against."""
    run = RunDir(run_dir)
    decisions = manifest.read_table(run.decisions, "decisions").to_pylist()
    failed = {
        f["recording_id"] for f in manifest.read_table(run.failures, "failures").to_pylist() if f["severity"] == "error"
    }
    kept = {d["recording_id"] for d in decisions if d["kept"]} - failed
    return {rid: regions for rid, regions in reference.items() if rid in kept}


def evaluate_run(
    run_dir: str | Path, reference: dict[str, Sequence[RegionLike]], variants: list[str] | None = None
) -> dict[str, VariantQuality]:
    """Every variant of a run directory against the reference (only recordings the run processed)."""
    run = RunDir(run_dir)
    names = variants or run.variants()
    ref = kept_reference(run_dir, reference)
    out = {}
    for v in names:
        t = manifest.read_table(run.variant_dir(v), "segments", columns=["recording_id", "start_s", "end_s"])
        rows = zip(
            t.column("recording_id").to_pylist(),
            t.column("start_s").to_pylist(),
            t.column("end_s").to_pylist(),
            strict=True,
        )
        out[v] = evaluate_segments(list(rows), ref)
    return out


def format_quality(results: dict[str, VariantQuality], targets: Targets | None = None) -> str:
    """A Markdown table: the clean variants first (``*-clean``), then the rest in the usual order; with
    ``targets``, a last column says which targets each clean variant misses."""
    from curate.stats import ordered

    names = ordered(list(results))
    names = [v for v in names if v.endswith("-clean")] + [v for v in names if not v.endswith("-clean")]
    head = (
        "| variant | segments | hours | clean 1-spk % | speech % | clean speech % | music % | sung % | noise % "
        "| silence % | overlap % | >1 speaker % | speech kept % | clean kept % |"
    )
    lines = [head + (" targets |" if targets else ""), "|---|" + "---:|" * (13 + bool(targets))]
    for v in names:
        q = results[v]
        row = (
            f"| {v} | {q.segments} | {q.hours:.3f} | {q.clean_single_pct:.1f} | {q.speech_pct:.1f} "
            f"| {q.clean_speech_pct:.1f} | {q.music_pct:.1f} | {q.sung_pct:.1f} | {q.noise_pct:.1f} "
            f"| {q.silence_pct:.1f} | {q.overlap_pct:.1f} | {q.multi_speaker_pct:.1f} | {q.speech_recall_pct:.1f} "
            f"| {q.clean_recall_pct:.1f} |"
        )
        if targets:
            misses = q.meets(targets)
            row += (" met |" if not misses else " " + "; ".join(misses) + " |") if v.endswith("-clean") else " |"
        lines.append(row)
    return "\n".join(lines) + "\n"


# --- the tagger's own accuracy on labelled real clips ------------------------------------------------------


@dataclass(frozen=True)
class LabelledClip:
    """A real clip with reference intervals per sound group (``speech``, ``music``, ``vocal_music``)."""

    clip_id: str
    path: Path
    duration_s: float
    labels: dict[str, list[tuple[float, float]]]


def load_labelled_clips(root: Path) -> list[LabelledClip]:
    """The labelled clips of a real-audio folder (``INVENTORY.csv`` + ``annotations/``): speech clips are speech
    throughout unless a ``.vad.tsv`` says where; conversations are their RTTM turns; music clips are music
    throughout (``music-vocal`` also vocal music); noise clips hold none of the groups."""
    import csv

    root = Path(root)
    out = []
    with open(root / "INVENTORY.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        cid, kind, dur = r["id"], r["content_type"], float(r["flac_duration_s"])
        path = root / "flac" / f"{cid}.flac"
        if not path.is_file():
            continue
        whole = [(0.0, dur)]
        labels: dict[str, list[tuple[float, float]]] = {"speech": [], "music": [], "vocal_music": []}
        vad, rttm = root / "annotations" / f"{cid}.vad.tsv", root / "annotations" / f"{cid}.rttm"
        if kind == "speech":
            labels["speech"] = _vad_tsv(vad) if vad.is_file() else whole
        elif kind == "conversation" and rttm.is_file():
            labels["speech"] = timeline.merge(_rttm(rttm))
        elif kind.startswith("music"):
            labels["music"] = whole
            labels["vocal_music"] = whole if kind == "music-vocal" else []
        elif kind != "noise":
            continue
        out.append(LabelledClip(cid, path, dur, labels))
    return out


def _vad_tsv(path: Path) -> list[tuple[float, float]]:
    rows = [ln.split("\t") for ln in path.read_text().splitlines()[1:] if ln.strip()]
    return [(float(a), float(b)) for a, b, lab in rows if lab.strip() == "speech"]


def _rttm(path: Path) -> list[tuple[float, float]]:
    rows = [ln.split() for ln in path.read_text().splitlines() if ln.startswith("SPEAKER")]
    return [(float(r[3]), float(r[3]) + float(r[4])) for r in rows]


@dataclass(frozen=True)
class FrameAccuracy:
    group: str
    precision: float
    recall: float
    frames: int  # frames scored
    positives: int  # reference frames of the group


def frame_accuracy(
    scored: Iterable[tuple[Sequence[float], Sequence[float], Sequence[float], Sequence[tuple[float, float]]]],
    group: str,
    threshold: float = 0.5,
) -> FrameAccuracy:
    """Frame-level precision/recall of ``score > threshold`` against reference intervals. ``scored``: per clip
    (cell starts, cell ends, scores, reference intervals); a cell is positive when its middle is inside."""
    tp = fp = fn = n = 0
    for starts, ends, scores, ref in scored:
        ref = timeline.merge(ref)
        for a, b, v in zip(starts, ends, scores, strict=True):
            mid = (a + b) / 2
            truth = any(s <= mid < e for s, e in ref)
            pred = v > threshold
            n += 1
            tp += truth and pred
            fp += pred and not truth
            fn += truth and not pred
    return FrameAccuracy(
        group, tp / (tp + fp) if tp + fp else float("nan"), tp / (tp + fn) if tp + fn else float("nan"), n, tp + fn
    )


def as_dict(results: dict[str, VariantQuality]) -> dict[str, Any]:
    import dataclasses

    return {v: dataclasses.asdict(q) for v, q in results.items()}


__all__ = [
    "DedupQuality",
    "FrameAccuracy",
    "LabelledClip",
    "Region",
    "Targets",
    "VariantQuality",
    "as_dict",
    "evaluate_dedup",
    "evaluate_run",
    "evaluate_run_dedup",
    "evaluate_segments",
    "format_dedup",
    "format_quality",
    "frame_accuracy",
    "kept_reference",
    "load_labelled_clips",
    "load_ground_truth",
]


# ---------------------------------------------------------------------------------------------------
# Audio de-duplication against ``duplicates.json`` (the demo writes one next to ``ground_truth.json``):
# ``{"reruns": {rerun_id: original_id}, "repeats": {recording_id: [[start_s, end_s, source], ...]}}``.


@dataclass(frozen=True)
class DedupQuality:
    reruns_true: int  # reference reruns that reached audio_dedup (not dropped by an earlier stage)
    reruns_found: int  # recordings audio_dedup dropped as whole duplicates
    rerun_precision_pct: float
    rerun_recall_pct: float
    repeat_ref_s: float  # repeated material that should be cut: every occurrence after the first (kept recordings)
    repeat_cut_s: float  # what the repeats table cuts
    repeat_precision_pct: float  # share of the cut time that is repeated material
    repeat_recall_pct: float  # share of the repeated material (first occurrences excepted) that is cut


def evaluate_dedup(
    dropped: dict[str, str],
    reached: set[str],
    kept_in_order: Sequence[str],
    repeats: Sequence[tuple[str, float, float]],
    reference: dict[str, Any],
) -> DedupQuality:
    """Score audio de-duplication (pure function). ``dropped``: rerun id → the recording it duplicates;
    ``reached``: recordings that reached the stage; ``kept_in_order``: the recordings it kept, in broadcast
    order (the first occurrence of a piece is the one to keep); ``repeats``: the cut spans."""
    true_reruns = {r for r in reference.get("reruns", {}) if r in reached}
    hits = len(true_reruns & set(dropped))
    occurrences: dict[str, list[tuple[int, str, float, float]]] = defaultdict(list)
    rank = {rid: i for i, rid in enumerate(kept_in_order)}
    for rid, spans in reference.get("repeats", {}).items():
        if rid in rank:
            for s, e, source in spans:
                occurrences[source].append((rank[rid], rid, s, e))
    ref: dict[str, list[tuple[float, float]]] = defaultdict(list)  # repeated material, first occurrence aside
    for occ in occurrences.values():
        for _, rid, s, e in sorted(occ)[1:]:
            ref[rid].append((s, e))
    cut: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for rid, s, e in repeats:
        cut[rid].append((s, e))
    ref_s = sum(timeline.total(timeline.merge(v)) for v in ref.values())
    cut_s = sum(timeline.total(timeline.merge(v)) for v in cut.values())
    # a cut inside any occurrence (first ones too) is repeated material, so counts for precision
    every = {rid: [(s, e) for occ in occurrences.values() for _, r, s, e in occ if r == rid] for rid in cut}
    good = sum(_overlap(timeline.merge(v), timeline.merge(every.get(rid, []))) for rid, v in cut.items())
    found = sum(_overlap(timeline.merge(cut.get(rid, [])), timeline.merge(v)) for rid, v in ref.items())

    def pct(x: float, of: float) -> float:
        return 100.0 * x / of if of > 0 else 100.0

    return DedupQuality(
        reruns_true=len(true_reruns),
        reruns_found=len(set(dropped) & reached),
        rerun_precision_pct=pct(hits, len(set(dropped) & reached)),
        rerun_recall_pct=pct(hits, len(true_reruns)),
        repeat_ref_s=ref_s,
        repeat_cut_s=cut_s,
        repeat_precision_pct=pct(good, cut_s),
        repeat_recall_pct=pct(found, ref_s),
    )


def evaluate_run_dedup(run_dir: str | Path, reference: dict[str, Any], stage: str = "audio_dedup") -> DedupQuality:
    """A run directory's ``audio_dedup`` decisions and ``repeats.parquet`` against ``duplicates.json``."""
    run = RunDir(run_dir)
    decisions = manifest.read_table(run.decisions, "decisions").to_pandas()
    recs = manifest.read_table(run.recordings, "recordings").to_pandas()
    stages = [s.get("stage") for s in (run.read_run().get("pipeline") or {}).get("filters") or []]
    after = stages[stages.index(stage) + 1 :] if stage in stages else []
    # reached the stage: kept, dropped by it, or dropped by a later stage
    reached = set(decisions.loc[decisions["kept"] | decisions["stage"].isin([stage, *after]), "recording_id"])
    mine = decisions[decisions["stage"] == stage]
    dropped = dict(zip(mine["recording_id"], mine["duplicate_of"], strict=True))
    kept = recs[recs["recording_id"].isin(set(decisions.loc[decisions["kept"], "recording_id"]))]
    kept = kept.assign(_u=kept["published"].isna()).sort_values(["_u", "published", "recording_id"])
    rows = manifest.read_table(run.repeats, "repeats").to_pylist() if run.repeats.exists() else []
    spans = [(r["recording_id"], r["start_s"], r["end_s"]) for r in rows]
    return evaluate_dedup(dropped, reached, kept["recording_id"].tolist(), spans, reference)


def format_dedup(q: DedupQuality) -> str:
    return (
        "| reruns (reference) | reruns found | rerun precision % | rerun recall % | repeated s (reference) "
        "| cut s | repeat precision % | repeat recall % |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {q.reruns_true} | {q.reruns_found} | {q.rerun_precision_pct:.1f} | {q.rerun_recall_pct:.1f} "
        f"| {q.repeat_ref_s:.1f} | {q.repeat_cut_s:.1f} | {q.repeat_precision_pct:.1f} | {q.repeat_recall_pct:.1f} |\n"
    )
