"""Lhotse manifests: ``recordings_<split>.jsonl.gz``, ``supervisions_<split>.jsonl.gz``, ``cuts_<split>.jsonl.gz``.

By default every cut is a view ``[start_s, end_s)`` into its source recording (no audio is copied), shaped
like curate's own decode so that ``collate_audio`` batches one rate and one channel:

- ``sample_rate`` (default 16000): recordings at another rate carry lhotse's lazy ``Resample`` transform
  (``Recording.resample``); ``None`` keeps the native rates (then batches may mix rates: lhotse does not warn).
- ``downmix`` (default): a multi-channel source becomes a ``MixedCut`` of its channels at 1/channels volume
  each, i.e. the channel mean as curate computes it; ``downmix=False`` gives ``MultiCut`` s over all channels.
- ``materialize=True``: the segments are cut once into 16 kHz mono FLAC files under the export (``audio/…``,
  resumable, Ray with ``--runner ray``) and each cut spans one whole such recording.

Cut and supervision ids are the curate segment ids; the supervisions carry text/speaker/language.
"""

from __future__ import annotations

from typing import Any

from curate.audio import SAMPLE_RATE
from curate.export.common import ExportContext, ExportError, materialized, meta_records


def _source_recordings(ctx: ExportContext) -> dict[str, Any]:
    from lhotse import Recording
    from lhotse.audio import AudioSource

    recs = {}
    for r in ctx.recordings.to_dict("records"):
        sr, ch = int(r["sample_rate"]), int(r["num_channels"])
        n = round(float(r["duration_s"]) * sr)
        rec = Recording(
            id=r["recording_id"],
            sources=[AudioSource(type="file", channels=list(range(ch)), source=r["audio_path"])],
            sampling_rate=sr,
            num_samples=n,
            duration=n / sr,
            channel_ids=list(range(ch)),
        )
        recs[r["recording_id"]] = rec.resample(ctx.sample_rate) if ctx.sample_rate else rec
    return recs


def _file_recordings(ctx: ExportContext) -> dict[str, Any]:
    """One 16 kHz mono FLAC recording per materialized segment, keyed by segment id."""
    from lhotse import Recording
    from lhotse.audio import AudioSource

    root = ctx.out_dir.resolve()
    return {
        sid: Recording(
            id=sid,
            sources=[AudioSource(type="file", channels=[0], source=str(root / m["shard"]))],
            sampling_rate=SAMPLE_RATE,
            num_samples=int(m["num_samples"]),
            duration=int(m["num_samples"]) / SAMPLE_RATE,
        )
        for sid, m in materialized(ctx).items()
    }


def _cut(r: dict[str, Any], rec: Any, start: float, downmix: bool) -> Any:
    from lhotse import SupervisionSegment
    from lhotse.cut import MixedCut, MixTrack, MonoCut, MultiCut

    mono = rec.num_channels == 1
    channel: Any = 0 if mono else list(range(rec.num_channels))
    duration = r["duration_s"] if rec.id != r["segment_id"] else rec.duration
    sup = SupervisionSegment(
        id=r["segment_id"],
        recording_id=rec.id,
        start=start,
        duration=duration,
        channel=channel,
        text=r["text"],
        speaker=r["speaker"],
        language=r["language"],
    )
    common = {"start": start, "duration": duration, "recording": rec, "custom": {"variant": r["variant"]}}
    if mono:
        return sup, MonoCut(id=r["segment_id"], channel=0, supervisions=[sup.with_offset(-start)], **common)
    multi = MultiCut(id=r["segment_id"], channel=channel, supervisions=[sup.with_offset(-start)], **common)
    if not downmix:
        return sup, multi
    # The channel mean: every channel at 1/channels volume, summed by the MixedCut; the supervision (on the
    # first track only, so it is not repeated) keeps channel 0.
    tracks = []
    for i, c in enumerate(multi.to_mono()):
        c = c.perturb_volume(1.0 / rec.num_channels, affix_id=False)
        if i:
            c = c.with_id(f"{r['segment_id']}-{i}").drop_supervisions()
        tracks.append(MixTrack(cut=c))
    return sup, MixedCut(id=r["segment_id"], tracks=tracks)


def write(ctx: ExportContext) -> dict[str, Any]:
    try:
        from lhotse import CutSet, RecordingSet, SupervisionSet
    except ImportError:
        raise ExportError("the lhotse export needs lhotse: pip install 'curate[export]'") from None
    by_segment = _file_recordings(ctx) if ctx.materialize else None
    recs = by_segment or _source_recordings(ctx)
    files = []
    for name, part in ctx.splits():
        rows = meta_records(part)
        if by_segment is not None:
            rows = [r for r in rows if r["segment_id"] in by_segment]  # undecodable recordings are missing
        cuts, sups, used = [], [], {}
        for r in rows:
            rec = by_segment[r["segment_id"]] if by_segment is not None else recs[r["recording_id"]]
            start = 0.0 if by_segment is not None else r["start_s"]
            sup, cut = _cut(r, rec, start, ctx.downmix)
            sups.append(sup)
            cuts.append(cut)
            used[rec.id] = rec
            ctx.advance()
        for kind, obj in (
            ("recordings", RecordingSet.from_recordings([used[i] for i in sorted(used)])),
            ("supervisions", SupervisionSet.from_segments(sups)),
            ("cuts", CutSet.from_cuts(cuts)),
        ):
            path = ctx.out_dir / f"{kind}_{name}.jsonl.gz"
            tmp = path.with_name(f".{path.name}.tmp.jsonl.gz")
            obj.to_file(tmp)
            tmp.replace(path)
            files.append(path.name)
    return {"files": files, "sample_rate": SAMPLE_RATE if ctx.materialize else ctx.sample_rate}
