"""A small synthetic broadcast archive with exact ground truth, for `make demo` and the tests.

Real archives cannot ship with the repo, and a pipeline is only testable end to end if we know what is in
the audio. So we assemble programmes from pieces whose kind and position we control (espeak-ng speech in
Dutch and English with turn-taking, synthesized music and songs, noise, silence), write them in the mixed
formats and rates that real archives have, and record every piece in ``ground_truth.json`` and per-programme
RTTM files. The catalog carries the traps the metadata stages must handle: genres to drop, an over-long
programme and a rerun broadcast the same day. The audio carries what only listening finds (``station.py``): a
station jingle, repeated adverts and a programme aired again under another title. Building is deterministic
given the seed and idempotent.

Layout of ``out_dir``: ``catalog.csv``, ``ground_truth.json``, ``duplicates.json``, ``demo_params.json``,
``audio/``, ``rttm/``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from curate.demo import station
from curate.demo.files import atomic_write, write_audio, write_rttm
from curate.quality import Region  # the reference format the demo writes
from curate.synth import espeak
from curate.synth import sounds as snd

log = logging.getLogger(__name__)

GENERATOR_VERSION = 3  # 2: jingles, adverts, an aired-again programme; 3: + overlap, speech over songs and applause, fast turns (bump when the output changes, so idempotent rebuilds notice)
CATALOG_COLUMNS = ("recording_id", "audio_path", "title", "summary", "genre", "published", "language", "channel")
FILTERED_GENRES = ("music", "commercial")  # what the demo pipeline's genre deny list drops
KINDS = ("speech", "music", "vocal_music", "noise", "silence")
# (format, sample rate, channels), cycled over the catalog rows.
# fmt: off
FORMATS = (("flac", 16000, 1), ("mp3", 44100, 1), ("wav", 22050, 1), ("wav", 48000, 2), ("flac", 44100, 1),
           ("mp3", 16000, 1), ("wav", 16000, 1), ("flac", 48000, 1), ("mp3", 22050, 1), ("wav", 44100, 1),
           ("flac", 22050, 2), ("mp3", 48000, 1))
# fmt: on
TITLES = {
    "news": {"nl": "Het Avondjournaal", "en": "The Evening Bulletin"},
    "talkshow": {"nl": "Aan Tafel", "en": "Talk of the Town"},
    "documentary": {"nl": "Verborgen Nederland", "en": "Hidden Histories"},
    "music": {"nl": "Muziek voor de Nacht", "en": "Songs at Midnight"},
    "commercial": {"nl": "Reclameblok", "en": "Commercial Break"},
}
# fmt: off
TOPICS = {
    "nl": ("de woningbouw", "de droogte in de polder", "de haven van Rotterdam", "een oude scheepswerf",
           "de nieuwe metrolijn", "de visserij", "het onderwijs", "de dijkversterking"),
    "en": ("the housing plan", "the long drought", "a busy harbour", "an old shipyard", "the new underground line",
           "the fishing fleet", "education", "the sea wall"),
}
# fmt: on
CHANNELS = {"nl": ("Demo Radio 1", "Demo TV 2"), "en": ("Demo World Service",)}
# Every programme opens with these blocks (so even a 40 s programme has each kind), then draws at random.
# Fixed-length pieces come first: turns and beds shrink to fit what is left, so they go last.
OPENING = {
    "news": ("silence", "jingle", "noise", "turns"),
    "talkshow": ("silence", "applause", "bed", "turns", "overlap", "cheer"),
    "documentary": ("silence", "noise", "bed", "turns", "songbed"),
    "music": ("silence", "jingle", "turns", "song"),
    "commercial": ("silence", "jingle", "song", "bed"),
}
# The harder blocks (archive v2): two voices at once, speech over a song or applause, fast turn-taking.
RECIPES = {
    "news": {"turns": 5, "jingle": 2, "noise": 1, "silence": 1, "bed": 1, "songbed": 1, "fast": 1},
    "talkshow": {"turns": 5, "applause": 1, "jingle": 1, "song": 1, "silence": 1, "overlap": 2, "cheer": 2, "fast": 2},
    "documentary": {"bed": 3, "turns": 3, "noise": 2, "silence": 1, "song": 1, "songbed": 1, "overlap": 1},
    "music": {"song": 4, "jingle": 2, "turns": 1, "silence": 1},
    "commercial": {"bed": 4, "jingle": 2, "song": 1, "silence": 1},
}


@dataclass(frozen=True)
class _Programme:
    recording_id: str
    genre: str
    language: str
    duration_s: float
    fmt: str
    sample_rate: int
    channels: int
    title: str
    summary: str
    published: datetime
    channel: str
    rerun_of: str | None = None
    station: tuple[str, ...] = ()  # repeated pieces it airs (station.PIECES): the jingle first, adverts later
    trim_s: tuple[float, float] | None = None  # aired again: seconds of ``rerun_of`` cut at start and end


def build_demo_archive(
    out_dir: Path,
    *,
    n_programmes: int = 12,
    seed: int = 0,
    min_s: float = 120,
    max_s: float = 360,
    overlong_s: float = 420,
) -> Path:
    """Build the ~40-minute demo archive (mostly news/talkshow/documentary) and return its catalog.csv."""
    if n_programmes < 6 or not 0 < min_s <= max_s:
        raise ValueError(f"need n_programmes >= 6 and 0 < min_s <= max_s; got {n_programmes}, {min_s}, {max_s}")
    params = dict(builder="demo", n_programmes=n_programmes, seed=seed, min_s=min_s, max_s=max_s, overlong_s=overlong_s)
    rng = np.random.default_rng([seed, 1])
    slots = [
        (("news", "talkshow", "documentary")[i % 3], ("nl", "en", "nl", "nl")[i % 4], "")
        for i in range(n_programmes - 5)
    ]
    for pos, special in (
        (1, [("music", "nl", "")]),
        (3, [("talkshow", "nl", "original"), ("talkshow", "nl", "rerun")]),
        (6, [("documentary", "en", "overlong")]),
        (8, [("commercial", "nl", "")]),
    ):
        slots[pos:pos] = special
    # Stratified draws skewed short (cubed) keep 12 programmes near 40 minutes whatever the seed.
    quantiles = (rng.permutation(len(slots)) + 0.5) / len(slots)
    durations = [
        overlong_s if tag == "overlong" else round(min_s + (max_s - min_s) * q**3)
        for (_, _, tag), q in zip(slots, quantiles, strict=True)
    ]
    plain = [i for i, (_, _, tag) in enumerate(slots) if not tag]
    return _build(Path(out_dir), params, station.assign(_schedule("demo", slots, durations, rng), plain))


def build_mini_archive(out_dir: Path, *, n: int = 4, seed: int = 0, duration_s: float = 40) -> Path:
    """Build a tiny archive (seconds to make) with the same traps: a rerun pair and a genre to drop."""
    if n < 3 or duration_s < 20:
        raise ValueError(f"need n >= 3 and duration_s >= 20 for a mini archive; got n={n}, duration_s={duration_s}")
    params = {"builder": "mini", "n": n, "seed": seed, "duration_s": duration_s}
    slots = [("news", "nl", "original"), ("news", "nl", "rerun"), ("commercial", "en", "")]
    slots += [(("talkshow", "documentary", "news")[i % 3], ("en", "nl")[i % 2], "") for i in range(n - 3)]
    return _build(Path(out_dir), params, _schedule("mini", slots, [duration_s] * n, np.random.default_rng([seed, 1])))


def _schedule(
    prefix: str, slots: list[tuple[str, str, str]], durations: list[float], rng: np.random.Generator
) -> list[_Programme]:
    """Give each slot an id, format, title, summary and broadcast time; a rerun copies its original's metadata."""
    programmes: list[_Programme] = []
    day = datetime(2023, 3, 6)
    episodes: dict[str, int] = {}
    for i, ((genre, lang, tag), dur) in enumerate(zip(slots, durations, strict=True)):
        fmt, rate, channels = FORMATS[i % len(FORMATS)]
        rid = f"{prefix}-{i:03d}"
        if tag == "rerun":
            orig = programmes[-1]
            fmt = "mp3" if orig.fmt != "mp3" else "flac"  # the rerun is the same audio, re-encoded
            published = orig.published + timedelta(hours=4)
            programmes.append(replace(orig, recording_id=rid, fmt=fmt, published=published, rerun_of=orig.recording_id))
            continue
        title = TITLES[genre][lang]
        episodes[title] = episodes.get(title, 0) + 1
        topic = TOPICS[lang][int(rng.integers(len(TOPICS[lang])))]
        summary = f"{'Aflevering' if lang == 'nl' else 'Episode'} {episodes[title]}: {topic}."
        channel = CHANNELS[lang][list(TITLES).index(genre) % len(CHANNELS[lang])]
        published = day + timedelta(days=i, hours=int(rng.choice([7, 9, 12, 13])), minutes=int(rng.integers(0, 4)) * 15)
        programmes.append(
            _Programme(rid, genre, lang, float(dur), fmt, rate, channels, title, summary, published, channel)
        )
    return programmes


def _build(out_dir: Path, params: dict, programmes: list[_Programme]) -> Path:
    """Write audio, catalog, ground truth and RTTMs, unless an identical build is already there."""
    params = {**params, "version": GENERATOR_VERSION}
    catalog, params_file = out_dir / "catalog.csv", out_dir / "demo_params.json"
    if catalog.exists() and params_file.exists() and json.loads(params_file.read_text()) == params:
        log.info("demo archive already built at %s; reusing it", out_dir)
        return catalog
    ffmpeg = espeak.require_tool("ffmpeg", "ffmpeg")
    espeak.require_tool("espeak-ng", "espeak-ng")  # fail before deleting anything
    for stale in (params_file, catalog, out_dir / "ground_truth.json", out_dir / "duplicates.json"):
        stale.unlink(missing_ok=True)
    for sub in ("audio", "rttm"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)
        (out_dir / sub).mkdir(parents=True)
    truth: dict[str, list[dict]] = {}
    rows = []
    previous: tuple[np.ndarray, list[Region]] | None = None
    aired_again = {p.rerun_of for p in programmes if p.trim_s is not None}
    originals: dict[str, tuple[np.ndarray, list[Region]]] = {}
    pending: list[Future] = []
    # Encoding (ffmpeg, libsndfile) releases the GIL: write one programme while synthesizing the next.
    with snd.SpeechBank() as bank, ThreadPoolExecutor(max_workers=2) as pool:
        for prog in programmes:
            if prog.trim_s is not None and prog.rerun_of in originals:
                audio, regions = station.air_again(*originals.pop(prog.rerun_of), prog.sample_rate, prog.trim_s)
            elif prog.rerun_of is not None and previous is not None:
                audio, regions = previous
            else:
                seed = [params["seed"], int(prog.recording_id.rsplit("-", 1)[1])]
                audio, regions = _assemble(prog, bank, np.random.default_rng(seed))
                previous = audio, regions
                if prog.recording_id in aired_again:
                    originals[prog.recording_id] = previous
            rel = f"audio/{prog.recording_id}.{prog.fmt}"
            if len(pending) >= 2:  # bounds memory, and a failed write stops the build early
                pending.pop(0).result()
            pending.append(pool.submit(write_audio, out_dir / rel, audio, prog, ffmpeg))
            write_rttm(out_dir / "rttm" / f"{prog.recording_id}.rttm", prog.recording_id, regions)
            truth[prog.recording_id] = [asdict(r) for r in regions]
            row = (prog.recording_id, rel, prog.title, prog.summary, prog.genre, prog.published.isoformat())
            rows.append(dict(zip(CATALOG_COLUMNS, (*row, prog.language, prog.channel), strict=True)))
            log.info("demo: %s (%s, %s, %.0f s)", rel, prog.genre, prog.language, prog.duration_s)
        for job in pending:
            job.result()
    atomic_write(out_dir / "ground_truth.json", json.dumps(truth, indent=1, ensure_ascii=False))
    atomic_write(out_dir / "duplicates.json", json.dumps(station.duplicates(programmes, truth), indent=1))
    with open(out_dir / "catalog.csv.tmp", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CATALOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(out_dir / "catalog.csv.tmp", catalog)
    atomic_write(params_file, json.dumps(params, indent=1))  # written last: marks the build complete
    return catalog


@dataclass
class _Track:
    """Pieces placed one after another, kept in samples so region bounds stay exact and tile the track."""

    sample_rate: int
    chunks: list[np.ndarray] = field(default_factory=list)
    pieces: list[tuple[int, int, str, dict]] = field(default_factory=list)  # start, end (samples), kind, meta
    n: int = 0

    def place(self, audio: np.ndarray, kind: str, **meta: str | None) -> None:
        if audio.size:
            self.pieces.append((self.n, self.n + audio.size, kind, meta))
            self.chunks.append(audio.astype(np.float32))
            self.n += audio.size

    def extend(self, other: _Track) -> None:
        self.pieces += [(a + self.n, b + self.n, kind, meta) for a, b, kind, meta in other.pieces]
        self.chunks += other.chunks
        self.n += other.n

    def audio(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)

    def regions(self) -> list[Region]:
        return [Region(a / self.sample_rate, b / self.sample_rate, kind, **meta) for a, b, kind, meta in self.pieces]


@dataclass
class _Ctx:
    prog: _Programme
    bank: snd.SpeechBank
    rng: np.random.Generator
    speakers: list[snd.Speaker]
    last_speaker: snd.Speaker | None = None  # carried across blocks so consecutive turns always change speaker

    @property
    def sr(self) -> int:
        return self.prog.sample_rate


def _assemble(prog: _Programme, bank: snd.SpeechBank, rng: np.random.Generator) -> tuple[np.ndarray, list[Region]]:
    """Fill exactly ``prog.duration_s`` with the genre's opening blocks, then random ones, then an outro."""
    pool = [s for s in snd.SPEAKERS if s.language == prog.language]
    n_speakers = 3 if prog.genre == "talkshow" else 2
    ctx = _Ctx(prog, bank, rng, [pool[i] for i in rng.permutation(len(pool))[:n_speakers]])
    track = _Track(prog.sample_rate)
    target = round(prog.duration_s * ctx.sr)
    names, weights = zip(*RECIPES[prog.genre].items(), strict=True)
    probs = np.array(weights, float) / sum(weights)
    plan = list(OPENING[prog.genre])
    _place_station(track, prog, [s for s in prog.station if s == station.JINGLE], target - 10 * ctx.sr)
    adverts = [s for s in prog.station if s != station.JINGLE]
    misses = 0
    while misses < 5:
        if not plan and adverts:  # adverts follow the opening blocks
            _place_station(track, prog, adverts, target - 4 * ctx.sr)
            adverts = []
        budget = target - track.n - 2 * ctx.sr  # keep >= 2 s for the outro
        if budget < ctx.sr:
            break
        name = plan.pop(0) if plan else str(rng.choice(names, p=probs))
        block = BLOCKS[name](ctx, budget)
        misses = 0 if block.n else misses + 1
        track.extend(block)
    rest = target - track.n
    outro = snd.instrumental(rng, ctx.sr, rest / ctx.sr) if rest >= ctx.sr // 2 else np.zeros(rest, np.float32)
    track.place(outro, "music" if rest >= ctx.sr // 2 else "silence", source="outro")
    audio = track.audio()
    audio += rng.standard_normal(audio.size, dtype=np.float32) * np.float32(2e-4)  # a noise floor, like real tape
    return np.clip(audio, -1, 1, out=audio), track.regions()


def _place_station(track: _Track, prog: _Programme, sources: Iterable[str], limit: int) -> None:
    """Place the station's repeated pieces (station.py) that end before sample ``limit``."""
    for source in sources:
        audio, kind = station.piece(source, prog.sample_rate)
        if track.n + audio.size <= limit:
            track.place(audio, kind, source=source)


def _seconds(ctx: _Ctx, low: float, high: float, budget: int) -> float:
    return min(float(ctx.rng.uniform(low, high)), budget / ctx.sr)


def _turns(
    ctx: _Ctx, budget: int, n_turns: int | None = None, sentences: int = 4, pause_s: tuple = (0.25, 0.9)
) -> _Track:
    """Speakers take turns of 1 to ``sentences - 1`` sentences with pauses; stops early rather than overrun."""
    track = _Track(ctx.sr)
    for _ in range(n_turns or int(ctx.rng.integers(2, 7))):
        speaker, text, turn = _turn(ctx, sentences)
        pause = np.zeros(int(ctx.rng.uniform(*pause_s) * ctx.sr), np.float32)
        if track.n + turn.size + pause.size > budget:
            break
        ctx.last_speaker = speaker
        track.place(turn, "speech", speaker=speaker.label, language=speaker.language, text=text)
        track.place(pause, "silence")
    return track


def _turn(ctx: _Ctx, sentences: int = 4) -> tuple[snd.Speaker, str, np.ndarray]:
    """A speaker other than the last one says 1 to ``sentences - 1`` sentences (breaths between them)."""
    others = [i for i, s in enumerate(ctx.speakers) if s is not ctx.last_speaker]
    speaker = ctx.speakers[int(ctx.rng.choice(others))]
    said = [
        str(s)
        for s in ctx.rng.choice(snd.SENTENCES[speaker.language], int(ctx.rng.integers(1, sentences)), replace=False)
    ]
    parts: list[np.ndarray] = []
    for sentence in said:
        if parts:  # a breath between sentences of one turn belongs to the turn
            parts.append(np.zeros(int(ctx.rng.uniform(0.15, 0.35) * ctx.sr), np.float32))
        parts.append(ctx.bank.get(speaker, sentence, ctx.sr))
    return speaker, " ".join(said), np.concatenate(parts)


def _bed(ctx: _Ctx, budget: int, kind: str = "music") -> _Track:
    """Speech over a bed (music, a song, applause): the bed plays alone, ducks under 1-3 turns, comes back up."""
    intro, outro = (int(ctx.rng.uniform(*r) * ctx.sr) for r in ((2.0, 4.0), (1.5, 3.0)))
    speech = _turns(ctx, budget - intro - outro, int(ctx.rng.integers(1, 4)))
    track = _Track(ctx.sr)
    if not speech.n:
        return track
    total = intro + speech.n + outro
    low = 0.3 if kind == "noise" else 0.15
    gain = np.full(total, low, np.float32)
    ramp = int(0.3 * ctx.sr)
    gain[:intro], gain[intro + speech.n :] = 1.0, 1.0
    gain[intro - ramp : intro] = np.linspace(1.0, low, ramp)
    gain[intro + speech.n : intro + speech.n + ramp] = np.linspace(low, 1.0, ramp)
    make = {"music": snd.instrumental, "vocal_music": snd.vocal_music, "noise": snd.applause}[kind]
    source = {"music": "bed", "vocal_music": "songbed", "noise": "cheer"}[kind]
    bed = make(ctx.rng, ctx.sr, total / ctx.sr) * gain
    track.place(bed[:intro], kind, source=source)
    voice = np.concatenate([np.zeros(intro, np.float32), speech.audio()])
    for a, b, piece, meta in speech.pieces:
        mixed = bed[intro + a : intro + b] + voice[intro + a : intro + b]
        if piece == "speech":
            track.place(mixed, "speech", **meta, background=kind)
        else:
            track.place(mixed, kind, source=source)
    track.place(bed[intro + speech.n :], kind, source=source)
    return track


def _overlap(ctx: _Ctx, budget: int) -> _Track:
    """Two voices at once: B starts talking 0.8-2.5 s before A has finished."""
    track = _Track(ctx.sr)
    a_spk, a_text, a = _turn(ctx, 3)
    ctx.last_speaker = a_spk
    b_spk, b_text, b = _turn(ctx, 3)
    ov = min(int(ctx.rng.uniform(0.8, 2.5) * ctx.sr), a.size - ctx.sr // 2, b.size - ctx.sr // 2)
    pause = np.zeros(int(ctx.rng.uniform(0.25, 0.9) * ctx.sr), np.float32)
    if ov < ctx.sr // 4 or a.size + b.size - ov + pause.size > budget:
        return track
    ctx.last_speaker = b_spk
    both = a[a.size - ov :] + b[:ov]
    track.place(a[: a.size - ov], "speech", speaker=a_spk.label, language=a_spk.language, text=a_text)
    track.place(
        both, "speech", speaker=a_spk.label, language=a_spk.language, background="speech", other_speaker=b_spk.label
    )
    track.place(b[ov:], "speech", speaker=b_spk.label, language=b_spk.language, text=b_text)
    track.place(pause, "silence")
    return track


def _piece(
    kind: str, source: str, low: float, high: float, make: Callable[[_Ctx, float], np.ndarray]
) -> Callable[[_Ctx, int], _Track]:
    """A block holding one generated piece of random length, cut to the budget."""

    def block(ctx: _Ctx, budget: int) -> _Track:
        track = _Track(ctx.sr)
        seconds = _seconds(ctx, low, high, budget)
        if seconds >= 0.5:
            track.place(make(ctx, seconds), kind, source=source)
        return track

    return block


BLOCKS: dict[str, Callable[[_Ctx, int], _Track]] = {
    "turns": _turns,
    "bed": _bed,
    "songbed": lambda c, b: _bed(c, b, "vocal_music"),
    "cheer": lambda c, b: _bed(c, b, "noise"),
    "overlap": _overlap,
    "fast": lambda c, b: _turns(c, b, int(c.rng.integers(4, 9)), sentences=2, pause_s=(0.05, 0.2)),
    "jingle": _piece("music", "jingle", 3, 8, lambda c, s: snd.instrumental(c.rng, c.sr, s)),
    "song": _piece("vocal_music", "song", 12, 35, lambda c, s: snd.vocal_music(c.rng, c.sr, s)),
    "applause": _piece("noise", "applause", 2, 6, lambda c, s: snd.applause(c.rng, c.sr, s)),
    "noise": _piece(
        "noise", "noise", 1.5, 5, lambda c, s: snd.noise_burst(c.rng, c.sr, s, str(c.rng.choice(["pink", "white"])))
    ),
    "silence": _piece("silence", None, 0.5, 2.5, lambda c, s: np.zeros(round(s * c.sr), np.float32)),
}
