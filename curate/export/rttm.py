"""RTTM, the speaker-turn format of diarization tools (NIST; what pyannote reads and writes), owned here:
the ``rttm`` export format and the diarization error rate (DER) of a run's variants against reference RTTM.

Export: ``<split>.rttm`` with one ``SPEAKER <recording> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>``
line per segment that has a speaker label (labels are recording-scoped, as in curate), written by
``pyannote.core.Annotation.write_rttm``; ``pyannote.database.util.load_rttm`` reads it back.

DER: :func:`diarization_error` scores every variant with speaker labels against reference turns with
``pyannote.metrics.diarization.DiarizationErrorRate`` (optimal speaker mapping per recording), over the
reference's UEM when one is given (``<uri>.uem`` / ``*.uem`` files next to the RTTM), else over the union
of reference and hypothesis extents (pyannote's default). Only recordings that are in the reference and
were kept by the run count; a recording of the reference with no segments in a variant is all missed speech.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from curate import manifest
from curate.export.common import ExportContext, ExportError, meta_records
from curate.rundir import RunDir

log = logging.getLogger(__name__)


def annotation(uri: str, turns: Iterable[tuple[float, float, str]]) -> Any:
    """``(start_s, end_s, speaker)`` turns of one recording → a ``pyannote.core.Annotation``."""
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri)
    for i, (s, e, spk) in enumerate(turns):
        if e > s:
            ann[Segment(float(s), float(e)), i] = str(spk)
    return ann


def write(ctx: ExportContext) -> dict[str, Any]:
    files, skipped = [], 0
    for name, part in ctx.splits():
        rows = meta_records(part)
        labelled = [r for r in rows if r["speaker"] is not None]
        skipped += len(rows) - len(labelled)
        if not labelled and rows:
            raise ExportError(
                f"variant '{ctx.variant}' has no speaker labels: RTTM needs a diarized variant (wx-diar, …)"
            )
        by_rec: dict[str, list[tuple[float, float, str]]] = {}
        for r in labelled:
            by_rec.setdefault(r["recording_id"], []).append((r["start_s"], r["end_s"], r["speaker"]))
        path = ctx.out_dir / f"{name}.rttm"
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for rid in sorted(by_rec):
                annotation(rid, by_rec[rid]).write_rttm(f)
        tmp.replace(path)
        files.append(path.name)
        ctx.advance(len(rows))
    if skipped:
        log.warning("rttm: %d segments without a speaker label are not in the RTTM", skipped)
    return {"files": files, "unlabelled_segments": skipped}


# -- reading references ------------------------------------------------------------------------------------
def _files(path: Path, suffix: str) -> list[Path]:
    return sorted(path.glob(f"*{suffix}")) if path.is_dir() else [path] if path.suffix == suffix else []


def load_rttm(path: str | Path) -> dict[str, Any]:
    """An RTTM file, or every ``*.rttm`` of a directory → ``{uri: Annotation}`` (SPEAKER lines only)."""
    path = Path(path)
    files = _files(path, ".rttm")
    if not files:
        raise ExportError(f"{path}: no .rttm file (give an RTTM file or a directory of them)")
    turns: dict[str, list[tuple[float, float, str]]] = {}
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if not parts or parts[0] != "SPEAKER":
                continue
            if len(parts) < 8:
                raise ExportError(f"{f}:{n}: an RTTM SPEAKER line has 10 fields, got {len(parts)}: {line!r}")
            start, dur = float(parts[3]), float(parts[4])
            turns.setdefault(parts[1], []).append((start, start + dur, parts[7]))
    return {uri: annotation(uri, t) for uri, t in turns.items()}


def load_uem(path: str | Path) -> dict[str, Any]:
    """``*.uem`` files (``uri channel start end`` lines) next to / in ``path`` → ``{uri: Timeline}``."""
    from pyannote.core import Segment, Timeline

    path = Path(path)
    files = _files(path if path.is_dir() else path.parent, ".uem")
    spans: dict[str, list[Any]] = {}
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 4:
                spans.setdefault(parts[0], []).append(Segment(float(parts[2]), float(parts[3])))
    return {uri: Timeline(s, uri=uri) for uri, s in spans.items()}


# -- scoring -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiarizationQuality:
    recordings: int
    scored_s: float  # reference speech in the scored region
    der_pct: float
    missed_pct: float
    false_alarm_pct: float
    confusion_pct: float


def diarization_error(
    run_dir: str | Path,
    reference: dict[str, Any],
    uem: dict[str, Any] | None = None,
    variants: list[str] | None = None,
    collar: float = 0.0,
    skip_overlap: bool = False,
) -> dict[str, DiarizationQuality]:
    """DER per variant with speaker labels (variants without any are left out); see the module docstring."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    run = RunDir(run_dir)
    kept = {d["recording_id"] for d in manifest.read_table(run.decisions, "decisions").to_pylist() if d["kept"]}
    uris = sorted(set(reference) & kept)
    if not uris:
        raise ExportError(f"{run_dir}: none of the reference's {len(reference)} recordings was kept by the run")
    out = {}
    for v in variants or run.variants():
        cols = ["recording_id", "start_s", "end_s", "speaker"]
        t = manifest.read_table(run.variant_dir(v), "segments", columns=cols).to_pylist()
        if not any(r["speaker"] is not None for r in t):
            continue
        by_rec: dict[str, list[tuple[float, float, str]]] = {}
        for r in t:
            by_rec.setdefault(r["recording_id"], []).append((r["start_s"], r["end_s"], r["speaker"] or "?"))
        metric = DiarizationErrorRate(collar=collar, skip_overlap=skip_overlap)
        for uri in uris:
            kw = {"uem": uem[uri]} if uem and uri in uem else {}
            metric(reference[uri], annotation(uri, by_rec.get(uri, [])), **kw)
        total = metric["total"]

        def pct(x: float, total: float = total) -> float:
            return 100.0 * x / total if total else 0.0

        out[v] = DiarizationQuality(
            recordings=len(uris),
            scored_s=total,
            der_pct=100.0 * abs(metric),
            missed_pct=pct(metric["missed detection"]),
            false_alarm_pct=pct(metric["false alarm"]),
            confusion_pct=pct(metric["confusion"]),
        )
    return out


def format_der(results: dict[str, DiarizationQuality]) -> str:
    lines = [
        "| variant | recordings | scored speech s | DER % | missed % | false alarm % | confusion % |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for v, q in results.items():
        lines.append(
            f"| {v} | {q.recordings} | {q.scored_s:.1f} | {q.der_pct:.1f} | {q.missed_pct:.1f} "
            f"| {q.false_alarm_pct:.1f} | {q.confusion_pct:.1f} |"
        )
    return "\n".join(lines) + "\n"


def der_dict(results: dict[str, DiarizationQuality]) -> dict[str, Any]:
    return {v: asdict(q) for v, q in results.items()}


__all__ = [
    "DiarizationQuality",
    "annotation",
    "der_dict",
    "diarization_error",
    "format_der",
    "load_rttm",
    "load_uem",
    "write",
]
