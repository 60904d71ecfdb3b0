"""A demo archive built from real recordings (`curate demo --real-audio DIR`) instead of synthesized ones.

DIR is a folder like ../shared/data/realaudio: ``INVENTORY.csv`` (id, content_type, speaker_id …), ``flac/``
(16 kHz mono) and ``annotations/`` (RTTM speaker turns of the conversations). Programmes are assembled from
its clips with a known timeline — turns of real speakers, real conversations (their RTTM turns; where two
turns overlap the region is overlapped speech), speech over real instrumental music and over a song, speech
over real noise, two speech clips overlapping, music, songs, noise and silence — and written with the same
catalog, ``ground_truth.json`` and RTTM layout as the synthetic archive (:mod:`curate.demo.archive`).
"""

from __future__ import annotations

import csv
import itertools
import json
import zlib
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from curate import audio
from curate.demo.archive import CATALOG_COLUMNS, _Track
from curate.demo.files import atomic_write, write_rttm
from curate.quality import Region

SR = audio.SAMPLE_RATE
GENERATOR_VERSION = 3  # 2: beds under speech mixed at a drawn speech-to-bed ratio (BED_SNR_DB), not at a fixed gain
# 3: every clip at a broadcast level (LEVEL_DB: programme audio is loudness-normalised, so voices that overlap or
#    follow each other lie within a few dB, where v2 kept each source's recording level, -59 to -12 dBFS), and speech
#    labelled where its voice is active (VOICED_*, from the isolated clip): a clip's lead-in and tail silence is
#    silence (or the bed heard alone), and "overlapped speech" is where both voices are active.
# A bed under a voice sits this many dB below it (active RMS over the voice's span), drawn per bed: the range of
# broadcast beds and field reports, so every region labelled "speech over X" has X audible under the voice. (v1 mixed
# the bed at 0.2-0.3 of its own level: a quiet noise clip then sat ~40 dB under the voice and was labelled noise.)
BED_SNR_DB = (0.0, 15.0)
# The oracle activity of an isolated clip (as simulated mixtures label their sources): 10 ms frames above a threshold
# set between the clip's noise floor and its loud frames, pauses shorter than VOICED_GAP_S bridged (a pause inside a
# sentence is speech), each voiced run widened by VOICED_PAD_S (the collar of a hand-marked boundary).
VOICED_GAP_S, VOICED_PAD_S = 0.5, 0.15
# Active level (dBFS, :func:`_active_rms`) a clip is scaled to, by content type: (centre, +- spread drawn per clip).
LEVEL_DB = {"speech": (-26.0, 3.0), "conversation": (-26.0, 3.0), "music-instrumental": (-26.0, 3.0),
            "music-vocal": (-26.0, 3.0), "noise": (-30.0, 5.0)}  # fmt: skip
BLOCKS = {"turns": 4, "conversation": 2, "bed": 2, "songbed": 1, "noisebed": 1, "overlap": 2, "music": 1, "song": 1,
          "noise": 1, "silence": 1}  # fmt: skip


class _Clips:
    """The folder's clips by kind, decoded on first use."""

    def __init__(self, roots: list[Path], only: set[str] | None = None):
        rows = []
        for root in roots:
            with open(root / "INVENTORY.csv", encoding="utf-8") as f:
                rows += [
                    {**r, "_root": str(root)}
                    for r in csv.DictReader(f)
                    if (root / "flac" / f"{r['id']}.flac").is_file() and (only is None or r["id"] in only)
                ]
        self.speech = [r for r in rows if r["content_type"] == "speech" and float(r["flac_duration_s"]) >= 1.5]
        self.conversations = [
            r
            for r in rows
            if r["content_type"] == "conversation" and (_root(r) / "annotations" / f"{r['id']}.rttm").is_file()
        ]
        self.music = [r for r in rows if r["content_type"] == "music-instrumental"]
        self.songs = [r for r in rows if r["content_type"] == "music-vocal"]
        self.noise = [r for r in rows if r["content_type"] == "noise" and float(r["flac_duration_s"]) >= 2.0]
        if not (self.speech and self.music and self.noise):
            where = ", ".join(map(str, roots))
            raise FileNotFoundError(
                f"{where}: need speech, music-instrumental and noise clips in INVENTORY.csv + flac/"
            )
        self._cache: dict[str, np.ndarray] = {}

    def load(self, row: dict) -> np.ndarray:
        """The clip at its broadcast level (:func:`clip_gain`)."""
        if row["id"] not in self._cache:
            x = audio.load(str(_root(row) / "flac" / f"{row['id']}.flac"))
            self._cache[row["id"]] = (x * np.float32(clip_gain(row, x))).astype(np.float32)
        return self._cache[row["id"]]


def clip_gain(row: dict, x: np.ndarray) -> float:
    """The gain that puts clip ``x`` at its content type's LEVEL_DB (a level drawn per clip id), peaks below 0.95."""
    centre, spread = LEVEL_DB.get(row["content_type"], (-26.0, 3.0))
    target = centre + np.random.default_rng([zlib.crc32(row["id"].encode()), 3]).uniform(-spread, spread)
    gain = 10 ** (target / 20) / max(_active_rms(x), 1e-6)
    return float(min(gain, 0.95 / max(float(np.max(np.abs(x))), 1e-6)))


def voiced(x: np.ndarray) -> np.ndarray:
    """Per sample: is the voice of the isolated clip ``x`` active (bool array of x's size)."""
    hop = SR // 100
    n = x.size // hop
    if n == 0:
        return np.ones(x.size, bool)
    e = 10 * np.log10(np.mean(np.square(x[: n * hop].reshape(n, hop), dtype=np.float64), axis=1) + 1e-12)
    loud, floor = np.percentile(e, 95), np.percentile(e, 5)
    on = e > min(max(loud - 35.0, floor + 10.0), loud - 20.0)
    idx = np.flatnonzero(on)
    mask = np.zeros(x.size, bool)
    if not idx.size:
        return mask
    gap, pad = round(VOICED_GAP_S * 100), round(VOICED_PAD_S * SR)
    breaks = np.flatnonzero(np.diff(idx) > gap)
    for a, b in zip(np.r_[idx[0], idx[breaks + 1]], np.r_[idx[breaks], idx[-1]], strict=True):
        end = x.size if b == n - 1 else (b + 1) * hop  # the last frame's remainder goes with it
        mask[max(0, a * hop - pad) : min(x.size, end + pad)] = True
    return mask


def _runs(codes: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs of equal values: (start, end, value)."""
    if not codes.size:
        return []
    cut = np.flatnonzero(np.diff(codes)) + 1
    starts, ends = np.r_[0, cut], np.r_[cut, codes.size]
    return [(int(a), int(b), int(codes[a])) for a, b in zip(starts, ends, strict=True)]


def _place_voiced(t: _Track, x: np.ndarray, active: np.ndarray, idle: str = "silence", idle_meta=None, **meta) -> None:
    """Place ``x``: speech (``meta``) where ``active``, else ``idle`` (silence, or the bed heard alone)."""
    for a, b, on in _runs(active.astype(np.int8)):
        if on:
            t.place(x[a:b], "speech", **meta)
            meta.pop("text", None)  # a transcript goes with the clip's first voiced piece only
        else:
            t.place(x[a:b], idle, **(idle_meta or {}))


def _root(row: dict) -> Path:
    return Path(row["_root"])


def _speaker(row: dict) -> str:
    return f"{row['id'].split('_')[1]}:{row['speaker_id'] or row['id']}"


def _pick(rng: np.random.Generator, rows: list[dict]) -> dict:
    return rows[int(rng.integers(len(rows)))]


def _piece(rng: np.random.Generator, x: np.ndarray, low: float, high: float) -> np.ndarray:
    n = min(x.size, int(rng.uniform(low, high) * SR))
    start = int(rng.integers(0, x.size - n + 1))
    return x[start : start + n]


def _turns(rng: np.random.Generator, clips: _Clips, n: int) -> _Track:
    t = _Track(SR)
    last = None
    for _ in range(n):
        row = _pick(rng, [r for r in clips.speech if _speaker(r) != last] or clips.speech)
        last = _speaker(row)
        x = clips.load(row)
        _place_voiced(
            t, x, voiced(x), speaker=last, language=row["language"][:2] or None, text=row["transcript"] or None
        )
        t.place(np.zeros(int(rng.uniform(0.3, 0.9) * SR), np.float32), "silence")
    return t


def _conversation(rng: np.random.Generator, clips: _Clips) -> _Track:
    """A real conversation with its RTTM turns: elementary intervals are silence, one speaker, or overlap."""
    t = _Track(SR)
    if not clips.conversations:
        return t
    row = _pick(rng, clips.conversations)
    x = clips.load(row)
    turns = []
    for ln in (_root(row) / "annotations" / f"{row['id']}.rttm").read_text().splitlines():
        f = ln.split()
        if ln.startswith("SPEAKER"):
            turns.append((float(f[3]), float(f[3]) + float(f[4]), f"{row['id']}:{f[7]}"))
    dur = x.size / SR
    edges = sorted({0.0, dur, *(min(dur, b) for a, e, _ in turns for b in (a, e))})
    for a, b in itertools.pairwise(edges):
        i, j = round(a * SR), round(b * SR)
        who = sorted({s for s0, s1, s in turns if s0 < b and s1 > a})
        if j <= i:
            continue
        if not who:
            t.place(x[i:j], "silence")
        elif len(who) == 1:
            t.place(x[i:j], "speech", speaker=who[0], language="en")
        else:
            t.place(x[i:j], "speech", speaker=who[0], language="en", background="speech", other_speaker=who[1])
    return t


def _active_rms(x: np.ndarray, frame: int = SR // 100) -> float:
    """RMS over the frames within 40 dB of the loudest (pauses between words do not count)."""
    n = x.size // frame
    if n == 0:
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    e = np.mean(np.square(x[: n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    return float(np.sqrt(np.mean(e[e >= e.max() * 1e-4])))


def _draw_snr(clip_id: str, intro: int) -> float:
    r = np.random.default_rng([zlib.crc32(clip_id.encode()), intro])
    return float(r.uniform(*BED_SNR_DB))


def _bed(rng: np.random.Generator, clips: _Clips, kind: str) -> _Track:
    """A speech clip over a bed (instrumental music, a song, noise) that plays alone before and after it."""
    pool = {"music": clips.music, "vocal_music": clips.songs or clips.music, "noise": clips.noise}[kind]
    kind = kind if pool is not clips.music or kind == "music" else "music"
    row = _pick(rng, clips.speech)
    voice = clips.load(row)
    intro, outro = int(rng.uniform(1.5, 3.0) * SR), int(rng.uniform(1.5, 2.5) * SR)
    bed_src = clips.load(_pick(rng, pool))
    total = intro + voice.size + outro
    bed = np.resize(bed_src, total).astype(np.float32)  # loops a short bed
    under = bed[intro : intro + voice.size]
    snr_db = _draw_snr(row["id"], intro)  # its own draw: the programme's layout stays that of v1
    level = _active_rms(voice) / max(_active_rms(under), 1e-6) * 10 ** (-snr_db / 20)
    # heard alone the bed is 6 dB louder than under the voice (ducked, as a presenter's bed is), peaks below 0.9
    alone = min(2.0 * level, 0.9 / max(float(np.max(np.abs(bed))), 1e-6))
    bed = bed * np.float32(alone)
    bed[intro : intro + voice.size] *= np.float32(min(level, alone) / alone)
    t = _Track(SR)
    t.place(bed[:intro], kind, source="bed")
    _place_voiced(t, bed[intro : intro + voice.size] + voice, voiced(voice), kind, {"source": "bed"},
                  speaker=_speaker(row), language=row["language"][:2] or None, background=kind)  # fmt: skip
    t.place(bed[intro + voice.size :], kind, source="bed")
    return t


def _overlap(rng: np.random.Generator, clips: _Clips) -> _Track:
    a_row = _pick(rng, clips.speech)
    b_row = _pick(rng, [r for r in clips.speech if _speaker(r) != _speaker(a_row)] or clips.speech)
    a, b = clips.load(a_row), clips.load(b_row)
    ov = min(int(rng.uniform(0.8, 2.0) * SR), a.size // 2, b.size // 2)
    t = _Track(SR)
    sa, sb = _speaker(a_row), _speaker(b_row)
    la, lb = a_row["language"][:2] or None, b_row["language"][:2] or None
    va, vb = voiced(a), voiced(b)
    _place_voiced(t, a[: a.size - ov], va[: a.size - ov], speaker=sa, language=la)
    # the overlap: both voices where both are active, one where the other is silent, silence where neither speaks
    both = a[a.size - ov :] + b[:ov]
    for i, j, code in _runs(va[a.size - ov :].astype(np.int8) + 2 * vb[:ov].astype(np.int8)):
        if code == 3:
            t.place(both[i:j], "speech", speaker=sa, background="speech", other_speaker=sb)
        elif code:
            t.place(both[i:j], "speech", speaker=sa if code == 1 else sb, language=la if code == 1 else lb)
        else:
            t.place(both[i:j], "silence")
    _place_voiced(t, b[ov:], vb[ov:], speaker=sb, language=lb)
    t.place(np.zeros(int(rng.uniform(0.3, 0.9) * SR), np.float32), "silence")
    return t


def _block(name: str, rng: np.random.Generator, clips: _Clips) -> _Track:
    if name == "turns":
        return _turns(rng, clips, int(rng.integers(2, 6)))
    if name == "conversation":
        return _conversation(rng, clips)
    if name in ("bed", "songbed", "noisebed"):
        return _bed(rng, clips, {"bed": "music", "songbed": "vocal_music", "noisebed": "noise"}[name])
    if name == "overlap":
        return _overlap(rng, clips)
    t = _Track(SR)
    if name == "silence":
        t.place(np.zeros(int(rng.uniform(0.5, 2.0) * SR), np.float32), "silence")
    elif name in ("music", "song") and (clips.songs if name == "song" else clips.music):
        src = clips.load(_pick(rng, clips.songs if name == "song" else clips.music))
        t.place(_piece(rng, src, 4, 10), "vocal_music" if name == "song" else "music", source=name)
    elif name == "noise":
        t.place(_piece(rng, clips.load(_pick(rng, clips.noise)), 2, 6), "noise", source="noise")
    return t


def build_real_archive(
    out_dir: Path,
    root: Path | list[Path],
    *,
    n_programmes: int = 6,
    seed: int = 0,
    duration_s: float = 150,
    only: set[str] | None = None,
    prefix: str = "real",
) -> Path:
    """Assemble ``n_programmes`` of about ``duration_s`` from the real clips under ``root`` (one folder or
    several, each with its INVENTORY.csv; ``only``: just these clip ids, e.g. one half of a dev/test split);
    return catalog.csv. Recording ids are ``{prefix}-000`` …"""
    import soundfile as sf

    out_dir = Path(out_dir)
    roots = [Path(r) for r in root] if isinstance(root, list) else [Path(root)]
    params = {"builder": "real", "root": [str(r) for r in roots] if len(roots) > 1 else str(roots[0]),
              "n": n_programmes, "seed": seed, "duration_s": duration_s, "version": GENERATOR_VERSION,
              **({"only": sorted(only), "prefix": prefix} if only is not None or prefix != "real" else {})}  # fmt: skip
    catalog, params_file = out_dir / "catalog.csv", out_dir / "demo_params.json"
    if catalog.exists() and params_file.exists() and json.loads(params_file.read_text()) == params:
        return catalog
    clips = _Clips(roots, only)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    (out_dir / "rttm").mkdir(parents=True, exist_ok=True)
    names, weights = zip(*BLOCKS.items(), strict=True)
    probs = np.array(weights, float) / sum(weights)
    truth, rows = {}, []
    for i in range(n_programmes):
        rng = np.random.default_rng([seed, i, 7])
        track = _Track(SR)
        plan = ["silence", "turns", "bed", "overlap", "conversation", "songbed", "noisebed"]
        while track.n < duration_s * SR:
            track.extend(_block(plan.pop(0) if plan else str(rng.choice(names, p=probs)), rng, clips))
        rid = f"{prefix}-{i:03d}"
        x = track.audio()
        x = np.clip(x + rng.standard_normal(x.size).astype(np.float32) * np.float32(2e-4), -1, 1)
        sf.write(out_dir / "audio" / f"{rid}.flac", x, SR, subtype="PCM_16")
        regions: list[Region] = track.regions()
        write_rttm(out_dir / "rttm" / f"{rid}.rttm", rid, regions)
        truth[rid] = [asdict(r) for r in regions]
        genre = ("news", "talkshow", "documentary")[i % 3]
        when = (datetime(2024, 1, 8) + timedelta(days=i)).isoformat()
        row = (rid, f"audio/{rid}.flac", f"Real {genre} {i}", f"Programme {i} from real recordings.", genre, when, "en")
        rows.append(dict(zip(CATALOG_COLUMNS, (*row, "Real Radio"), strict=True)))
    atomic_write(out_dir / "ground_truth.json", json.dumps(truth, indent=1, ensure_ascii=False))
    with open(out_dir / "catalog.csv.tmp", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CATALOG_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    (out_dir / "catalog.csv.tmp").replace(catalog)
    atomic_write(params_file, json.dumps(params, indent=1))
    return catalog


__all__ = ["build_real_archive"]
