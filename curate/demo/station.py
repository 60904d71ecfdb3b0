"""What a broadcaster repeats, for the demo archive: the station jingle at the start of most programmes, two
adverts aired in several programmes, and one programme aired again weeks later under another title and date,
trimmed differently and opened by the jingle. ``audio_dedup`` should find all of it; ``duplicates.json``
(written next to ``ground_truth.json``) says where it is, and :mod:`curate.quality` scores the run against it.

Each repeated piece is generated once (fixed seeds, 48 kHz) and resampled to each programme's rate, so its
copies are the same audio written at different rates and in different formats, as in a real archive.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np

from curate.quality import Region
from curate.synth import sounds as snd

SPEECH_GENRES = ("news", "talkshow", "documentary")
JINGLE = "station-jingle"
#: source → (kind, seconds, generator); fixed seeds make every copy the same audio
PIECES = {
    JINGLE: ("music", 10.0, lambda sr, s: snd.instrumental(np.random.default_rng([17, 1]), sr, s)),
    "advert-a": ("vocal_music", 20.0, lambda sr, s: snd.vocal_music(np.random.default_rng([17, 2]), sr, s)),
    "advert-b": ("music", 16.0, lambda sr, s: snd.instrumental(np.random.default_rng([17, 3]), sr, s)),
}
AGAIN_TITLES = {"nl": "Het Beste van de Week", "en": "Best of the Week"}
AGAIN_TRIM = (0.07, 0.04)  # shares of the original cut from its start and its end (not whole items)


@functools.lru_cache(maxsize=8)
def _piece_48k(source: str) -> np.ndarray:
    _, seconds, make = PIECES[source]
    return make(48000, seconds)


def piece(source: str, sample_rate: int) -> tuple[np.ndarray, str]:
    """A repeated piece at ``sample_rate`` (the same audio at every rate) and its region kind."""
    import soxr

    audio = _piece_48k(source)
    if sample_rate != 48000:
        audio = soxr.resample(audio, 48000, sample_rate).astype(np.float32)
    return audio, PIECES[source][0]


def assign(programmes: list[Any], plain: list[int]) -> list[Any]:
    """Give most speech programmes the jingle (it opens them) and some an advert (after their opening blocks);
    turn the last plain speech programme (``plain``: indices of programmes without a catalog trap) into an
    aired-again copy of the first (another title and date, trimmed). Programmes are ``_Programme``s."""
    regular = [i for i, p in enumerate(programmes) if p.genre in SPEECH_GENRES and p.rerun_of is None]
    out = list(programmes)
    for k, i in enumerate(regular):
        station = () if k % 4 == 3 else (JINGLE,)  # most, not all
        station += ("advert-a",) if k % 3 == 0 else ("advert-b",) if k % 3 == 1 else ()
        out[i] = replace(out[i], station=station)
    for i, p in enumerate(out):  # a same-day rerun is the same audio as its original
        if p.rerun_of is not None:
            out[i] = replace(p, station=next(q.station for q in out if q.recording_id == p.rerun_of))
    plain = [i for i in plain if out[i].genre in SPEECH_GENRES]
    if len(plain) >= 3:
        first, last = out[plain[0]], out[plain[-1]]
        cut = tuple(round(share * first.duration_s, 2) for share in AGAIN_TRIM)
        out[plain[-1]] = replace(
            first,
            recording_id=last.recording_id,
            duration_s=first.duration_s - sum(cut) + PIECES[JINGLE][1],
            fmt="mp3" if first.fmt != "mp3" else "wav",  # re-encoded; the rate stays the original's
            channels=last.channels,
            title=AGAIN_TITLES[first.language],
            summary=f"{last.summary.split(':')[0]}: {first.summary.split(': ', 1)[-1]}",
            published=last.published + timedelta(hours=2),
            channel=last.channel,
            station=(JINGLE,),
            rerun_of=first.recording_id,
            trim_s=cut,
        )
    return out


def air_again(
    audio: np.ndarray, regions: list[Region], sample_rate: int, trim_s: tuple[float, float]
) -> tuple[np.ndarray, list[Region]]:
    """The original ``audio`` trimmed by ``trim_s`` (start, end) and opened by the station jingle."""
    a, b = round(trim_s[0] * sample_rate), audio.size - round(trim_s[1] * sample_rate)
    jingle, kind = piece(JINGLE, sample_rate)
    t0, t_cut, t_end = jingle.size / sample_rate, a / sample_rate, b / sample_rate
    moved = [
        replace(r, start_s=max(r.start_s, t_cut) - t_cut + t0, end_s=min(r.end_s, t_end) - t_cut + t0)
        for r in regions
        if r.end_s > t_cut and r.start_s < t_end
    ]
    return np.concatenate([jingle, audio[a:b]]), [Region(0.0, t0, kind, source=JINGLE), *moved]


def duplicates(programmes: list[Any], truth: dict[str, list[dict]]) -> dict[str, Any]:
    """The ground truth of ``duplicates.json``: reruns (id → original) and where each repeated piece lies."""
    repeats = {
        rid: [[r["start_s"], r["end_s"], r["source"]] for r in regions if r.get("source") in PIECES]
        for rid, regions in truth.items()
    }
    return {
        "reruns": {p.recording_id: p.rerun_of for p in programmes if p.rerun_of is not None},
        "repeats": {rid: spans for rid, spans in repeats.items() if spans},
    }
