"""Lhotse manifests: ``recordings_<split>.jsonl.gz``, ``supervisions_<split>.jsonl.gz``, ``cuts_<split>.jsonl.gz``.

Recordings point at the source files (at their native rate and channels), supervisions carry the segment's
text/speaker/language, and every cut is a view ``[start_s, end_s)`` into its recording: no audio is copied.
Cut ids are the curate segment ids. Multi-channel sources become MultiCuts over all channels (curate
itself mixes them to mono; do the same with lhotse's transforms if needed).
"""

from __future__ import annotations

from typing import Any

from curate.export.common import ExportContext, ExportError, meta_records


def write(ctx: ExportContext) -> dict[str, Any]:
    try:
        from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
        from lhotse.audio import AudioSource
        from lhotse.cut import MonoCut, MultiCut
    except ImportError:
        raise ExportError("the lhotse export needs lhotse: pip install 'curate[export]'") from None
    recs = {}
    for r in ctx.recordings.to_dict("records"):
        sr, ch = int(r["sample_rate"]), int(r["num_channels"])
        n = round(float(r["duration_s"]) * sr)
        recs[r["recording_id"]] = Recording(
            id=r["recording_id"],
            sources=[AudioSource(type="file", channels=list(range(ch)), source=r["audio_path"])],
            sampling_rate=sr,
            num_samples=n,
            duration=n / sr,
            channel_ids=list(range(ch)),
        )
    files = []
    for name, part in ctx.splits():
        rows = meta_records(part)
        cuts, sups = [], []
        for r in rows:
            rec = recs[r["recording_id"]]
            channel: Any = 0 if rec.num_channels == 1 else list(range(rec.num_channels))
            sup = SupervisionSegment(
                id=r["segment_id"],
                recording_id=r["recording_id"],
                start=r["start_s"],
                duration=r["duration_s"],
                channel=channel,
                text=r["text"],
                speaker=r["speaker"],
                language=r["language"],
            )
            sups.append(sup)
            cls = MonoCut if rec.num_channels == 1 else MultiCut
            cuts.append(
                cls(
                    id=r["segment_id"],
                    start=r["start_s"],
                    duration=r["duration_s"],
                    channel=channel,
                    recording=rec,
                    supervisions=[sup.with_offset(-r["start_s"])],
                    custom={"variant": r["variant"]},
                )
            )
        used = sorted({r["recording_id"] for r in rows})
        for kind, obj in (
            ("recordings", RecordingSet.from_recordings([recs[i] for i in used])),
            ("supervisions", SupervisionSet.from_segments(sups)),
            ("cuts", CutSet.from_cuts(cuts)),
        ):
            path = ctx.out_dir / f"{kind}_{name}.jsonl.gz"
            tmp = path.with_name(f".{path.name}.tmp.jsonl.gz")
            obj.to_file(tmp)
            tmp.replace(path)
            files.append(path.name)
    return {"files": files}
