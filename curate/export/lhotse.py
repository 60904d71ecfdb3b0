"""Lhotse manifests: ``recordings_<split>.jsonl.gz``, ``supervisions_<split>.jsonl.gz``, ``cuts_<split>.jsonl.gz``.

By default every cut is a view ``[start_s, end_s)`` into its source recording (no audio is copied), shaped
like curate's own decode so that ``collate_audio`` batches one rate and one channel:

- ``sample_rate`` (default 16000): recordings at another rate carry lhotse's lazy ``Resample`` transform
  (``Recording.resample``); ``None`` keeps the native rates (then batches may mix rates: lhotse does not warn).
- ``downmix`` (default): a multi-channel source whose channels carry the same signal (dual mono, checked on
  three short windows: :func:`curate.audio.channels_identical`) becomes a ``MonoCut`` of channel 0, which *is*
  the channel mean; a source whose channels differ becomes a ``MixedCut`` of its channels at 1/channels volume
  each (the channel mean as curate computes it), which ``CutSet.to_shar(fields={"recording": …})`` cannot
  store (a warning says so; ``materialize=True`` gives mono files). ``downmix=False`` gives ``MultiCut`` s.
- ``materialize=True``: the segments are cut once into 16 kHz mono FLAC files under the export (``audio/…``,
  resumable, Ray with ``--runner ray``) and each cut spans one whole such recording.

Sources on object storage (``s3://…``) are ``"url"`` audio sources, which lhotse reads through ``smart_open``
(``pip install 'smart_open[s3]'``; every cut downloads its whole recording unless
``lhotse.set_caching_enabled(True)``).

Cut and supervision ids are the curate segment ids; the supervisions carry text/speaker/language (``None``
where a segment has none). When some segments of a split have text and others not,
``cuts_<split>_labelled.jsonl.gz`` holds the labelled ones, for ASR datasets such as
``K2SpeechRecognitionDataset`` that need a text on every supervision.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from curate.audio import SAMPLE_RATE, AudioDecodeError, channels_identical, is_url
from curate.export.common import ExportContext, ExportError, has_text, materialized, meta_records

log = logging.getLogger(__name__)


def _source_recordings(ctx: ExportContext) -> dict[str, Any]:
    from lhotse import Recording
    from lhotse.audio import AudioSource

    recs = {}
    urls = 0
    for r in ctx.recordings.to_dict("records"):
        sr, ch = int(r["sample_rate"]), int(r["num_channels"])
        n = round(float(r["duration_s"]) * sr)
        kind = "url" if is_url(r["audio_path"]) else "file"
        urls += kind == "url"
        rec = Recording(
            id=r["recording_id"],
            sources=[AudioSource(type=kind, channels=list(range(ch)), source=r["audio_path"])],
            sampling_rate=sr,
            num_samples=n,
            duration=n / sr,
            channel_ids=list(range(ch)),
        )
        recs[r["recording_id"]] = rec.resample(ctx.sample_rate) if ctx.sample_rate else rec
    if urls and importlib.util.find_spec("smart_open") is None:
        log.warning(
            "lhotse: %d recordings are URLs, which lhotse reads through smart_open: pip install 'smart_open[s3]'", urls
        )
    return recs


def _mono_channel(ctx: ExportContext) -> dict[str, bool]:
    """Recording id → True when its cuts can be MonoCuts of channel 0 (mono, or dual mono and downmixing)."""
    from concurrent.futures import ThreadPoolExecutor

    recs = ctx.recordings.to_dict("records")
    multi = [r for r in recs if int(r["num_channels"]) > 1] if ctx.downmix else []

    def same(r: dict[str, Any]) -> bool:  # three short ffmpeg decodes: threads overlap them (and the I/O)
        try:
            return channels_identical(r["audio_path"], int(r["num_channels"]), float(r["duration_s"]))
        except AudioDecodeError as e:  # not decodable here: keep the downmix, which decodes nothing now
            log.warning("lhotse: %s: channels not compared (%s); its cuts are MixedCuts", r["recording_id"], e)
            return False

    with ThreadPoolExecutor(max_workers=8) as pool:
        identical = dict(zip((r["recording_id"] for r in multi), pool.map(same, multi), strict=True))
    out = {r["recording_id"]: int(r["num_channels"]) == 1 or identical.get(r["recording_id"], False) for r in recs}
    mixed = [i for i, mono in out.items() if not mono]
    if mixed and ctx.downmix:
        log.warning(
            "lhotse: %d of %d recordings have channels that differ; their cuts are MixedCuts (the channel mean), "
            "which CutSet.to_shar(fields={'recording': …}) cannot store (--materialize writes mono files)",
            len(mixed),
            len(out),
        )
    return out


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


def _cut(r: dict[str, Any], rec: Any, start: float, downmix: bool, mono: bool) -> Any:
    """``mono``: a MonoCut of channel 0 (a mono or dual-mono source)."""
    from lhotse import SupervisionSegment
    from lhotse.cut import MixedCut, MixTrack, MonoCut, MultiCut

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
    mono = {} if by_segment is not None else _mono_channel(ctx)
    files = []
    for name, part in ctx.splits():
        rows = meta_records(part)
        if by_segment is not None:
            rows = [r for r in rows if r["segment_id"] in by_segment]  # undecodable recordings are missing
        cuts, sups, used = [], [], {}
        for r in rows:
            rec = by_segment[r["segment_id"]] if by_segment is not None else recs[r["recording_id"]]
            start = 0.0 if by_segment is not None else r["start_s"]
            sup, cut = _cut(r, rec, start, ctx.downmix, mono.get(rec.id, True))
            sups.append(sup)
            cuts.append(cut)
            used[rec.id] = rec
            ctx.advance()
        labelled = [c for c, r in zip(cuts, rows, strict=True) if has_text(r)]
        subsets = [
            ("recordings", RecordingSet.from_recordings([used[i] for i in sorted(used)])),
            ("supervisions", SupervisionSet.from_segments(sups)),
            ("cuts", CutSet.from_cuts(cuts)),
        ]
        stale = ctx.out_dir / f"cuts_{name}_labelled.jsonl.gz"
        if labelled and len(labelled) < len(cuts):
            subsets.append(("cuts", CutSet.from_cuts(labelled), "_labelled"))
            log.warning(
                "lhotse: %d of %d %s segments have no text; ASR datasets (K2SpeechRecognitionDataset): %s",
                len(cuts) - len(labelled),
                len(cuts),
                name,
                stale.name,
            )
        elif stale.exists():  # an earlier export's subset would be taken for this one's
            stale.unlink()
        for kind, obj, *suffix in subsets:
            path = ctx.out_dir / f"{kind}_{name}{''.join(suffix)}.jsonl.gz"
            tmp = path.with_name(f".{path.name}.tmp.jsonl.gz")
            obj.to_file(tmp)
            tmp.replace(path)
            files.append(path.name)
    return {"files": files, "sample_rate": SAMPLE_RATE if ctx.materialize else ctx.sample_rate}
