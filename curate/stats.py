"""Table-14 statistics per variant: segments, hours, discarded % of the kept input, avg/min/max seconds.

Computed by streaming the ``duration_s`` column of each variant's parts: bounded memory at any scale. Variants
whose segments carry the quality columns (schema v2) also get their distribution: the mean of each ratio and
the share of segments above :data:`DIRTY_RATIO`, the share with a speaker turn, the mean SNR estimate.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from curate import manifest, timeline
from curate.rundir import RunDir

RATIOS = ("speech_ratio", "music_ratio", "vocal_music_ratio", "noise_ratio", "overlap_ratio")
DIRTY_RATIO = 0.02  # a segment with more than 2 % of its time over music (noise, overlap …) counts as touched


def _quality_sums(batch: Any, acc: dict[str, list[float]]) -> None:
    """Add a batch's quality columns to running [measured, sum, above] counts (bounded memory)."""
    for col in (*RATIOS, "snr_db", "speaker_change"):
        if col not in batch.schema.names:
            continue
        v = batch.column(col)
        measured = len(v) - v.null_count
        if not measured:
            continue
        a = acc.setdefault(col, [0.0, 0.0, 0.0])
        a[0] += measured
        if col == "speaker_change":
            a[2] += pc.sum(pc.cast(v, "int64")).as_py() or 0
        else:
            a[1] += pc.sum(v).as_py() or 0.0
            a[2] += pc.sum(pc.cast(pc.greater(v, DIRTY_RATIO), "int64")).as_py() or 0 if col != "snr_db" else 0


def variant_stats(variant_dir: Path, input_s: float) -> dict[str, Any]:
    n = 0
    total = 0.0
    lo, hi = math.inf, -math.inf
    acc: dict[str, list[float]] = {}
    if variant_dir.exists():
        for batch in manifest.iter_batches(variant_dir, "segments"):
            d = batch.column("duration_s")
            if len(d) == 0:
                continue
            n += len(d)
            total += pc.sum(d).as_py()
            mm = pc.min_max(d).as_py()
            lo, hi = min(lo, mm["min"]), max(hi, mm["max"])
            _quality_sums(batch, acc)
    quality = {}
    for col, (measured, tot, above) in acc.items():
        if col == "speaker_change":
            quality[col] = {"measured": int(measured), "pct": 100.0 * above / measured}
        elif col == "snr_db":
            quality[col] = {"measured": int(measured), "mean": tot / measured}
        else:
            quality[col] = {"measured": int(measured), "mean": tot / measured, "above_pct": 100.0 * above / measured}
    return {
        "segments": n,
        "hours": total / 3600.0,
        "discarded_pct": 100.0 * (1.0 - total / input_s) if input_s > 0 else 0.0,
        "avg_s": total / n if n else 0.0,
        "min_s": lo if n else 0.0,
        "max_s": hi if n else 0.0,
        **({"quality": quality} if quality else {}),
    }


def dedup_stats(out_dir: Path) -> dict[str, Any] | None:
    """Audio de-duplication of a run: recordings dropped as reruns and repeated excerpts found, in hours
    (``None`` when the run has no ``audio_dedup``)."""
    run = RunDir(out_dir)
    if not run.repeats.exists():
        return None
    d = manifest.read_table(run.decisions, "decisions", columns=["recording_id", "reason"])
    reruns = set(pc.filter(d.column("recording_id"), pc.equal(d.column("reason"), "audio_duplicate")).to_pylist())
    recs = manifest.read_table(run.recordings, "recordings", columns=["recording_id", "duration_s"]).to_pylist()
    rerun_s = sum(r["duration_s"] for r in recs if r["recording_id"] in reruns)
    rep = manifest.read_table(run.repeats, "repeats", columns=["recording_id", "start_s", "end_s"]).to_pylist()
    spans: dict[str, list[tuple[float, float]]] = {}
    for r in rep:
        spans.setdefault(r["recording_id"], []).append((r["start_s"], r["end_s"]))
    repeat_s = sum(timeline.total(timeline.merge(v)) for v in spans.values())
    return {
        "reruns": len(reruns),
        "rerun_hours": rerun_s / 3600.0,
        "repeats": len(rep),
        "repeat_hours": repeat_s / 3600.0,
    }


def legacy_reason(text: str) -> str:
    """A schema v1/v2 free-text reason mapped onto :data:`curate.schema.REJECT_REASONS` (``other`` if unknown)."""
    from curate.schema import REJECT_REASONS

    head = text.split(" (")[0].strip().replace(" ", "_")
    if head in REJECT_REASONS:
        return head
    for prefix, reason in (("shorter than", "too_short"), ("repeated excerpt", "repeat"), ("no transcript",
                           "no_transcript"), ("empty transcript", "phrase"), ("no words", "phrase"),
                           ("non-speech phrase", "phrase"), ("zero-length", "zero_length"),
                           ("last partial window", "partial_window")):  # fmt: skip
        if text.startswith(prefix):
            return reason
    return "other"


def rejected_stats(out_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Hours cut per variant, stage and reason, from every ``rejected/<stage>/`` (streamed)."""
    from curate.schema import REJECT_REASONS

    rd = RunDir(out_dir)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for stage in rd.rejected_stages():
        for batch in manifest.iter_batches(rd.rejected_dir(stage), "rejected"):
            cols = batch.select(["variant", "reason", "duration_s"]).to_pydict()
            for v, r, d in zip(cols["variant"], cols["reason"], cols["duration_s"], strict=True):
                reason = r if r in REJECT_REASONS else legacy_reason(r)
                cell = out.setdefault(v or "?", {}).setdefault(stage, {})
                cell[reason] = cell.get(reason, 0.0) + (d or 0.0) / 3600.0
    return out


def compute_stats(out_dir: Path, variants: list[str], input_s: float) -> dict[str, Any]:
    out = {
        "input_hours": input_s / 3600.0,
        "variants": {v: variant_stats(RunDir(out_dir).variant_path(v), input_s) for v in variants},
    }
    cut = rejected_stats(Path(out_dir))
    if cut:
        out["rejected_hours"] = cut
    dedup = dedup_stats(Path(out_dir))
    if dedup is not None:
        out["audio_dedup"] = dedup
    return out


# Thesis Table 14 row order; other variants follow alphabetically.
TABLE14_ORDER = (
    "seq",
    "sad",
    "w-raw",
    "w-pp-1s",
    "w-pp-3s",
    "wx-asr",
    "wx-align",
    "wx-diar",
    "wx-diar-1s",
    "wx-diar-3s",
)


def ordered(variants: list[str]) -> list[str]:
    rank = {v: i for i, v in enumerate(TABLE14_ORDER)}
    return sorted(variants, key=lambda v: (rank.get(v, len(rank)), v))


def format_table(stats: dict[str, Any]) -> str:
    """Markdown in the layout of thesis Table 14."""
    lines = [f"Input (kept recordings): {stats['input_hours']:.3f} h"]
    if "audio_dedup" in stats:
        d = stats["audio_dedup"]
        lines.append(
            f"Audio de-duplication: {d['rerun_hours']:.3f} h removed as reruns ({d['reruns']} recordings), "
            f"{d['repeat_hours']:.3f} h of repeated excerpts ({d['repeats']}) for cut_repeats / select to cut"
        )
    lines += [
        "",
        "| variant | segments | hours | discarded % | avg s | min s | max s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for v in ordered(list(stats["variants"])):
        s = stats["variants"][v]
        lines.append(
            f"| {v} | {s['segments']:,} | {s['hours']:.3f} | {s['discarded_pct']:.2f} | {s['avg_s']:.2f} "
            f"| {s['min_s']:.2f} | {s['max_s']:.2f} |"
        )
    measured = [v for v in ordered(list(stats["variants"])) if stats["variants"][v].get("quality")]
    if measured:
        lines += [
            "",
            f"Quality columns (mean ratio / % of segments above {100 * DIRTY_RATIO:g} %):",
            "",
            "| variant | speech | music | sung | noise | overlap | with a turn % | SNR dB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for v in measured:
            q = stats["variants"][v]["quality"]

            def cell(col: str, q: dict = q) -> str:
                c = q.get(col)
                return f"{c['mean']:.3f} / {c['above_pct']:.0f}" if c else "–"

            turn = f"{q['speaker_change']['pct']:.1f}" if "speaker_change" in q else "–"
            snr = f"{q['snr_db']['mean']:.1f}" if "snr_db" in q else "–"
            lines.append(
                f"| {v} | {cell('speech_ratio')} | {cell('music_ratio')} | {cell('vocal_music_ratio')} "
                f"| {cell('noise_ratio')} | {cell('overlap_ratio')} | {turn} | {snr} |"
            )
    if stats.get("rejected_hours"):
        lines += ["", *format_rejected(stats["rejected_hours"])]
    return "\n".join(lines) + "\n"


def format_rejected(cut: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Hours cut per reason (columns) for each variant and stage (rows), with a total column."""
    reasons = sorted({r for stages in cut.values() for per in stages.values() for r in per})
    lines = [
        "Cut per reason (hours; rejected/, curate.schema.REJECT_REASONS):",
        "",
        "| variant | stage | " + " | ".join(reasons) + " | total |",
        "|---|---|" + "---:|" * (len(reasons) + 1),
    ]
    for v in ordered(list(cut)):
        for stage, per in sorted(cut[v].items()):
            cells = " | ".join(f"{per[r]:.4f}" if r in per else "–" for r in reasons)
            lines.append(f"| {v} | {stage} | {cells} | {sum(per.values()):.4f} |")
    return lines


def write_stats(out_dir: Path, stats: dict[str, Any]) -> None:
    run = RunDir(out_dir)
    manifest.write_json(run.stats_json, stats)
    manifest.atomic_write_text(run.stats_md, format_table(stats))


# The variant a demo or a quick pre-training uses when none is named: the thesis' best pre-training data
# first (w-pp-3s had the best WER on both test sets), then its 55 k-hour set.
BEST_ORDER = ("w-pp-3s", "wx-diar-3s", "w-pp-1s", "wx-diar-1s", "seq")


def best_variant(stats: dict[str, Any]) -> str:
    """The first of :data:`BEST_ORDER` that a run produced segments for (else any variant with segments)."""
    have = [v for v, s in stats["variants"].items() if s["segments"] > 0]
    if not have:
        raise FileNotFoundError("the run has no variant with segments")
    return next((v for v in BEST_ORDER if v in have), have[0])


def load_stats(out_dir: str | Path) -> dict[str, Any]:
    p = RunDir(out_dir).stats_json
    if not p.exists():
        raise FileNotFoundError(f"{out_dir}: no stats.json (is this a finished curate run directory?)")
    return json.loads(p.read_text())


def lineage(run: dict[str, Any], variant: str) -> list[tuple[set[str] | None, set[str]]]:
    """Where the time ``variant`` lost was cut, from run.json's pipeline (and later ``curate derive`` files):
    (stages, labels) pairs; a rejected row counts when its stage is one of the stages (``None``: any) and its
    variant label one of the labels (or one part of a ``curate derive`` label ``a+b``). A pass's variant: the pass's
    stages up to the one that emits it, rows labelled ``""`` or by an emit so far; a derived variant: its
    derivation's stages and rows labelled with its name, then its source's lineage."""
    pipelines = [run.get("pipeline") or {}, *((d.get("pipeline") or {}) for d in run.get("derived") or [])]
    for p in pipelines:
        for stages in (p.get("passes") or {}).values():
            emits = [st.get("emit") for st in stages]
            if variant in emits:
                i = emits.index(variant)
                return [({st["stage"] for st in stages[: i + 1]}, {"", *filter(None, emits[: i + 1])})]
    for p in reversed(pipelines):  # the latest derivation of a name made it (derive --force)
        spec = (p.get("derive") or {}).get(variant)
        if spec and spec.get("from") != variant:
            names = {st if isinstance(st, str) else st["stage"] for st in spec.get("stages") or []}
            return [(names, {variant}), *lineage(run, spec["from"])]
    return [(None, {variant})]


def dropped_by_reason(run_dir: str | Path, variant: str) -> dict[str, dict[str, float]]:
    """Seconds of each recording that ``variant`` and the variants it was made from dropped, per reason of
    :data:`curate.schema.REJECT_REASONS` (``rejected/``, streamed; see :func:`lineage`)."""
    from curate.schema import REJECT_REASONS

    run = RunDir(run_dir)
    clauses = lineage(run.read_run(), variant)
    out: dict[str, dict[str, float]] = {}
    for stage in run.rejected_stages():
        labels = set().union(*(lab for stages, lab in clauses if stages is None or stage in stages))
        if not labels:
            continue
        for batch in manifest.iter_batches(run.rejected_dir(stage), "rejected"):
            cols = batch.select(["recording_id", "variant", "reason", "duration_s"]).to_pydict()
            for rid, v, r, d in zip(*cols.values(), strict=True):
                if (v or "") in labels or not labels.isdisjoint((v or "").split("+")):
                    reason = r if r in REJECT_REASONS else legacy_reason(r)
                    cell = out.setdefault(rid, {})
                    cell[reason] = cell.get(reason, 0.0) + (d or 0.0)
    return out


def recording_times(run_dir: str | Path, variant: str) -> list[dict[str, Any]]:
    """Per recording of the run: its duration, whether the metadata filters kept it (and why not), and how much of
    it ``variant`` keeps (segments, seconds, %) and drops (the rest: silence, music, rejected or filtered).
    ``dropped_by_reason``: seconds per reason of :data:`curate.schema.REJECT_REASONS` (every reason, 0 where none;
    ``other`` for an old run's unknown free text); ``dropped_unattributed_s``: dropped time no rejected segment
    accounts for (never segmented, e.g. silence; the whole recording when a filter dropped it).
    Reads only the variant's recording ids and durations and the rejected rows: bounded by their number."""
    from curate.errors import UnknownVariantError
    from curate.schema import REJECT_REASONS

    run = RunDir(run_dir)
    by_reason = dropped_by_reason(run_dir, variant)
    try:
        seg = manifest.read_table(run.variant_dir(variant), "segments", columns=["recording_id", "duration_s"])
        kept = list(zip(seg.column(0).to_pylist(), seg.column(1).to_pylist(), strict=True))
    except UnknownVariantError:
        if variant not in run.read_run().get("variants", []):
            raise
        kept = []  # a variant the run made that kept nothing: rejected/ says why
    kept_s: dict[str, float] = {}
    count: dict[str, int] = {}
    for rid, d in kept:
        kept_s[rid] = kept_s.get(rid, 0.0) + float(d)
        count[rid] = count.get(rid, 0) + 1
    decisions = {r["recording_id"]: r for r in manifest.read_table(run.decisions, "decisions").to_pylist()}
    rows = []
    for r in manifest.read_table(run.recordings, "recordings", columns=["recording_id", "duration_s"]).to_pylist():
        rid, dur = r["recording_id"], float(r["duration_s"] or 0.0)
        d = decisions.get(rid, {})
        k = kept_s.get(rid, 0.0)
        rows.append(
            {
                "recording_id": rid,
                "duration_s": dur,
                "kept_by_filters": bool(d.get("kept", True)),
                "dropped_by": None if d.get("kept", True) else f"{d.get('stage')}: {d.get('reason')}",
                "segments": count.get(rid, 0),
                "kept_s": k,
                "dropped_s": max(0.0, dur - k),
                "kept_pct": 100 * k / dur if dur > 0 else 0.0,
                "dropped_by_reason": dict.fromkeys(REJECT_REASONS, 0.0) | by_reason.get(rid, {}),
                "dropped_unattributed_s": max(0.0, dur - k - sum(by_reason.get(rid, {}).values())),
            }
        )
    return rows


def format_recording_times(rows: list[dict[str, Any]], variant: str) -> str:
    """A markdown table of :func:`recording_times`, with a total line."""
    lines = [
        f"variant {variant}: kept and dropped time per recording",
        "",
        "| recording | duration s | segments | kept s | dropped s | kept % | filters |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        why = "kept" if r["kept_by_filters"] else f"dropped ({r['dropped_by']})"
        lines.append(
            f"| {r['recording_id']} | {r['duration_s']:.1f} | {r['segments']} | {r['kept_s']:.1f} | "
            f"{r['dropped_s']:.1f} | {r['kept_pct']:.1f} | {why} |"
        )
    total, kept = sum(r["duration_s"] for r in rows), sum(r["kept_s"] for r in rows)
    lines.append(
        f"| **{len(rows)} recordings** | {total:.1f} | {sum(r['segments'] for r in rows)} | {kept:.1f} | "
        f"{total - kept:.1f} | {100 * kept / total if total else 0:.1f} | |"
    )
    return "\n".join([*lines, "", *format_dropped_by_reason(rows)])


def format_dropped_by_reason(rows: list[dict[str, Any]]) -> list[str]:
    """Dropped seconds per reason (columns; the reasons no recording lost time to left out) per recording, with a
    total line."""
    reasons = (
        [r for r in rows[0]["dropped_by_reason"] if any(x["dropped_by_reason"].get(r) for x in rows)] if rows else []
    )
    cols = [*reasons, "unattributed"]
    lines = [
        "dropped time by reason (s; curate.schema.REJECT_REASONS, reasons without time left out; unattributed: "
        "never segmented, or a recording the filters dropped)",
        "",
        "| recording | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]

    def cells(r: dict[str, Any]) -> list[float]:
        return [*(r["dropped_by_reason"].get(x, 0.0) for x in reasons), r["dropped_unattributed_s"]]

    for r in rows:
        lines.append(f"| {r['recording_id']} | " + " | ".join(f"{c:.1f}" for c in cells(r)) + " |")
    totals = [sum(col) for col in zip(*(cells(r) for r in rows), strict=True)] if rows else [0.0]
    lines.append("| **total** | " + " | ".join(f"{c:.1f}" for c in totals) + " |")
    return lines
