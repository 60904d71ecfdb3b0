"""Readers for the corpora of the thesis ablations: LibriSpeech, MUSAN noise and FMA music.

- LibriSpeech (``<root>/<subset>/<speaker>/<chapter>/<spk>-<chap>-<utt>.flac`` + ``<spk>-<chap>.trans.txt``)
  becomes a curate run directory: one recording per utterance, one segment per utterance (text from the
  transcripts, ``speaker`` = the LibriSpeech speaker id, chapter kept in the recording metadata), so the
  pre-trainer reads it like any curated variant. A ``catalog.csv`` is written too (for ``curate run``).
- MUSAN: every audio file under the chosen top-level categories (default ``noise``: its sub-folders
  ``free-sound`` and ``sound-bible``, and any other sub-folder found there); see docs/corruption.md.
- FMA: ``fma_large/<3-digit>/<track>.mp3`` 30 s clips, joined with ``fma_metadata/tracks.csv`` (two header
  rows) for genre and the "Instrumental" top genre where present.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from curate import audio, manifest
from curate.corrupt.conditions import Condition
from curate.corrupt.sources import AudioPool, Clip, Sources, Utterance
from curate.errors import CurateError, UnknownVariantError
from curate.rundir import RunDir
from curate.schema import Decision, Failure, Recording, Segment

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")
STAGE = "librispeech"


class CorpusError(CurateError, ValueError):
    """A corpus directory does not have the expected layout."""


@dataclass(frozen=True)
class LibriUtterance:
    utterance_id: str
    speaker: str
    chapter: str
    subset: str
    path: str
    text: str | None


def _is_speaker_dir(p: Path) -> bool:
    return p.is_dir() and p.name.isdigit()


def scan_librispeech(
    root: str | Path, subsets: Sequence[str] | None = None
) -> tuple[list[LibriUtterance], list[Failure]]:
    """Every utterance under ``root`` (a LibriSpeech folder with subsets, or one subset folder)."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: LibriSpeech root not found")
    if any(_is_speaker_dir(p) for p in root.iterdir()):
        subset_dirs = [root]
    else:
        subset_dirs = sorted(p for p in root.iterdir() if p.is_dir() and any(_is_speaker_dir(q) for q in p.iterdir()))
    if subsets:
        subset_dirs = [d for d in subset_dirs if d.name in set(subsets)]
    if not subset_dirs:
        raise CorpusError(
            f"{root}: no LibriSpeech subset found (expected <subset>/<speaker>/<chapter>/*.flac"
            + (f" for subsets {list(subsets)}" if subsets else "")
            + ")"
        )
    utts: list[LibriUtterance] = []
    failures: list[Failure] = []
    for sd in subset_dirs:
        for chap_dir in sorted(sd.glob("*/*")):
            if not chap_dir.is_dir():
                continue
            spk, chap = chap_dir.parent.name, chap_dir.name
            trans = chap_dir / f"{spk}-{chap}.trans.txt"
            texts: dict[str, str] = {}
            if trans.is_file():
                for line in trans.read_text(encoding="utf-8", errors="replace").splitlines():
                    uid, _, text = line.strip().partition(" ")
                    if uid:
                        texts[uid] = text.strip()
            else:
                failures.append(
                    Failure(
                        f"{spk}-{chap}",
                        STAGE,
                        "MissingTranscript",
                        f"{trans}: transcript file missing; utterances kept without text",
                        severity="warning",
                    )
                )
            for f in sorted(chap_dir.glob("*.flac")):
                uid = f.stem
                if trans.is_file() and uid not in texts:
                    failures.append(
                        Failure(uid, STAGE, "MissingTranscript", f"{trans}: no line for {uid}", str(f), "warning")
                    )
                utts.append(LibriUtterance(uid, spk, chap, sd.name, str(f.resolve()), texts.get(uid)))
    return utts, failures


def librispeech_run_dir(
    root: str | Path,
    out_dir: str | Path,
    variant: str = "librispeech",
    subsets: Sequence[str] | None = None,
    part_rows: int = 50_000,
    threads: int = 8,
    on_progress: Callable[[int], None] | None = None,
) -> Path:
    """Write LibriSpeech as a run directory (recordings, decisions, failures, ``variants/<variant>``, stats,
    run.json, catalog.csv). Rerunning on the same ``out_dir`` rewrites it."""
    import pandas as pd

    from curate.stats import compute_stats, write_stats

    out_dir = Path(out_dir)
    run = RunDir(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not run.is_run():
        raise CorpusError(f"{out_dir} is not empty and is not a run directory; choose a new --out")
    t0 = time.time()
    utts, failures = scan_librispeech(root, subsets)

    def probe(u: LibriUtterance) -> tuple[LibriUtterance, audio.AudioInfo | Failure]:
        try:
            return u, audio.probe(u.path)
        except audio.AudioDecodeError as e:
            return u, Failure(u.utterance_id, STAGE, "AudioDecodeError", str(e), u.path)

    recs, segs, decisions = [], [], []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for u, info in pool.map(probe, utts):
            if on_progress:
                on_progress(1)
            if isinstance(info, Failure):
                failures.append(info)
                continue
            meta = {"speaker": u.speaker, "chapter": u.chapter, "subset": u.subset, "corpus": "librispeech"}
            recs.append(
                Recording(
                    u.utterance_id,
                    u.path,
                    info.duration_s,
                    info.sample_rate,
                    info.num_channels,
                    info.codec,
                    language="en",
                    metadata=json.dumps(meta, sort_keys=True),
                )
            )
            decisions.append(Decision(u.utterance_id, True, "kept"))
            segs.append(
                Segment.new(
                    u.utterance_id, u.path, 0.0, info.duration_s, variant, text=u.text, language="en", speaker=u.speaker
                )
            )
    manifest.write_records(run.recordings, recs, "recordings")
    manifest.write_records(run.decisions, decisions, "decisions")
    manifest.write_records(run.failures, failures, "failures")
    vdir = run.variant_path(variant)
    for old in vdir.glob("part-*.parquet") if vdir.exists() else []:
        old.unlink()
    for k in range(0, max(len(segs), 1), part_rows):
        manifest.write_records(run.variant_part(variant, k // part_rows), segs[k : k + part_rows], "segments")
    input_s = sum(r.duration_s for r in recs)
    write_stats(out_dir, compute_stats(out_dir, [variant], input_s))
    catalog = pd.DataFrame(
        [
            {
                "recording_id": r.recording_id,
                "audio_path": r.audio_path,
                "language": "en",
                **json.loads(r.metadata or "{}"),
            }
            for r in recs
        ]
    )
    manifest.atomic_write_text(run.catalog_csv, catalog.to_csv(index=False))
    run.write_run(
        "librispeech-import",
        [variant],
        source=str(Path(root).resolve()),
        subsets=sorted({u.subset for u in utts}),
        counts={"recordings": len(recs), "failures": len(failures)},
        timings_s={"total": round(time.time() - t0, 3)},
    )
    log.info("librispeech: %d utterances (%.2f h) → %s", len(recs), input_s / 3600, out_dir)
    return out_dir


def run_utterances(run_dir: str | Path, variant: str) -> tuple[list[Segment], list[Utterance]]:
    """Segments of a variant and their pairing keys. Session = LibriSpeech chapter when the recording
    metadata has one, else the recording (a programme is a session). Speaker = the global ``speaker`` of the
    recording metadata (LibriSpeech), else the segment's recording-scoped label prefixed by the recording."""
    run_dir = Path(run_dir)
    try:
        vdir = RunDir(run_dir).variant_dir(variant)
    except UnknownVariantError as e:
        raise CorpusError(str(e)) from None
    segs = manifest.read_segments(vdir)
    meta: dict[str, dict] = {}
    for row in manifest.read_table(
        RunDir(run_dir).recordings, "recordings", columns=["recording_id", "metadata"]
    ).to_pylist():
        meta[row["recording_id"]] = json.loads(row["metadata"]) if row["metadata"] else {}
    utts = []
    for s in segs:
        m = meta.get(s.recording_id, {})
        session = f"{m['speaker']}-{m['chapter']}" if "chapter" in m and "speaker" in m else s.recording_id
        if "speaker" in m:
            spk = str(m["speaker"])
        else:
            spk = f"{s.recording_id}:{s.speaker}" if s.speaker is not None else None
        utts.append(Utterance(s.segment_id, spk, session))
    return segs, utts


def read_musan(root: str | Path, categories: Sequence[str] = ("noise",)) -> list[Clip]:
    """Every audio file under ``<root>/<category>/`` (recursively) for each category."""
    root = Path(root)
    clips = []
    for cat in categories:
        d = root / cat
        if not d.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            raise CorpusError(
                f"{d}: MUSAN category folder not found (expected <musan>/{{music,noise,speech}}; "
                f"found {found or 'no folder at ' + str(root)})"
            )
        files = sorted(p for p in d.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        clips += [Clip(str(p.relative_to(root)), str(p.resolve())) for p in files]
    if not clips:
        raise CorpusError(f"{root}: no audio files in MUSAN categories {list(categories)}")
    return clips


def musan_pool(root: str | Path, categories: Sequence[str] = ("noise",), cache_s: float = 4 * 3600.0) -> AudioPool:
    return AudioPool("noise", read_musan(root, categories), cache_s=cache_s)


@dataclass(frozen=True)
class FmaTrack:
    track_id: int
    path: str
    genre_top: str | None = None
    title: str | None = None
    artist: str | None = None
    subset: str | None = None
    instrumental: bool | None = None  # genre_top == "Instrumental" (None without metadata)


_TRACK_FILE = re.compile(r"^\d{6}$")


def _fma_dirs(root: Path) -> tuple[Path, Path | None]:
    """(audio folder with the 3-digit sub-folders, tracks.csv or None)."""
    if not root.is_dir():
        raise CorpusError(f"{root}: FMA folder not found")
    if any(p.is_dir() and re.fullmatch(r"\d{3}", p.name) for p in root.iterdir()):
        audio_dir = root
    else:
        cands = sorted(p for p in root.glob("fma_*") if p.is_dir() and p.name != "fma_metadata")
        if not cands:
            raise CorpusError(f"{root}: no FMA audio (expected fma_large/<3-digit>/<track>.mp3 or <3-digit>/*.mp3)")
        audio_dir = cands[0]
    for meta in (audio_dir.parent / "fma_metadata" / "tracks.csv", root / "fma_metadata" / "tracks.csv"):
        if meta.is_file():
            return audio_dir, meta
    return audio_dir, None


def read_fma_metadata(tracks_csv: str | Path) -> dict[int, dict]:
    """``tracks.csv`` (two header rows: ``album/artist/set/track`` × field) → {track_id: fields}."""
    import pandas as pd

    try:
        df = pd.read_csv(tracks_csv, index_col=0, header=[0, 1], low_memory=False)
    except Exception as e:
        raise CorpusError(f"{tracks_csv}: cannot read FMA metadata ({type(e).__name__}: {e})") from None
    want = {
        "genre_top": ("track", "genre_top"),
        "title": ("track", "title"),
        "artist": ("artist", "name"),
        "subset": ("set", "subset"),
    }
    out: dict[int, dict] = {}
    cols = {k: c for k, c in want.items() if c in df.columns}
    if ("track", "genre_top") not in df.columns:
        log.warning("%s: no (track, genre_top) column; genres unknown", tracks_csv)
    for tid, row in df.iterrows():
        try:
            key = int(tid)
        except (TypeError, ValueError):
            continue  # the third header line ("track_id,,,") or junk
        out[key] = {k: (None if pd.isna(row[c]) else str(row[c])) for k, c in cols.items()}
    return out


def read_fma(root: str | Path) -> list[FmaTrack]:
    audio_dir, meta_file = _fma_dirs(Path(root))
    meta = read_fma_metadata(meta_file) if meta_file else {}
    if meta_file is None:
        log.warning("%s: no fma_metadata/tracks.csv next to it; genres unknown", root)
    tracks = []
    for p in sorted(audio_dir.glob("[0-9][0-9][0-9]/*.mp3")):
        if not _TRACK_FILE.match(p.stem):
            continue
        m = meta.get(int(p.stem), {})
        genre = m.get("genre_top")
        tracks.append(
            FmaTrack(
                int(p.stem),
                str(p.resolve()),
                genre,
                m.get("title"),
                m.get("artist"),
                m.get("subset"),
                None if not meta else genre == "Instrumental",
            )
        )
    if not tracks:
        raise CorpusError(f"{audio_dir}: no <3-digit>/<6-digit>.mp3 clips found")
    return tracks


def fma_pool(root: str | Path, cache_s: float = 4 * 3600.0) -> AudioPool:
    return AudioPool("music", [Clip(f"{t.track_id:06d}", t.path) for t in read_fma(root)], cache_s=cache_s)


def build_sources(
    condition: Condition,
    noise: str | Path | None = None,
    music: str | Path | None = None,
    stems: str | Path | None = None,
    musan_categories: Sequence[str] = ("noise",),
) -> Sources:
    """Only the pools the condition needs are scanned (a missing one is a clear error, before any audio)."""
    src = Sources()
    need = condition.source
    if need == "noise" and noise is not None:
        src.noise = musan_pool(noise, musan_categories)
    elif need == "music" and music is not None:
        src.music = fma_pool(music)
    elif need in ("instrumental", "vocals") and stems is not None:
        from curate.corrupt.stems import stems_pools

        src.instrumental, src.vocals = stems_pools(stems)
    if need not in (None, "speech"):
        src.require(need, condition.name)
    return src


__all__ = [
    "CorpusError",
    "build_sources",
    "FmaTrack",
    "LibriUtterance",
    "fma_pool",
    "librispeech_run_dir",
    "musan_pool",
    "read_fma",
    "read_fma_metadata",
    "read_musan",
    "run_utterances",
    "scan_librispeech",
]
