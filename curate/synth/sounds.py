"""Sound sources for the synthetic demo archive: espeak-ng speech, synthesized music and noise.

Everything here returns mono float32 at a requested sample rate and is deterministic given a
``numpy.random.Generator``, so :mod:`curate.demo.archive` can place the pieces and know exactly where each one
lies. The music is deliberately "music-like" rather than pretty: harmonic tones with envelopes, chord
progressions and a voiced, vibrato-rich vocal line with formants, which is what a speech/music detector
has to tell apart from speech.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass

import numpy as np
import soxr
from scipy import signal

from curate.synth import espeak
from curate.synth.espeak import ESPEAK_RATE

log = logging.getLogger(__name__)


SENTENCES: dict[str, tuple[str, ...]] = {
    "nl": (
        "Goedenavond, dit is het nieuws van acht uur.",
        "Het kabinet heeft vandaag een nieuw plan voor de woningbouw gepresenteerd.",
        "In het noorden van het land wordt morgen veel regen verwacht.",
        "De burgemeester opende vanmiddag de vernieuwde brug over de rivier.",
        "Volgens de politie raakte niemand gewond bij het ongeluk.",
        "Dat is een goede vraag, en ik denk er al lang over na.",
        "Wat vond u van de reacties op uw nieuwe boek?",
        "Eerlijk gezegd had ik dat helemaal niet verwacht.",
        "We gaan zo meteen verder met het weerbericht.",
        "De treinen rijden vanavond weer volgens de normale dienstregeling.",
        "In de haven van Rotterdam werd vorig jaar meer vracht overgeslagen dan ooit.",
        "De boeren in de polder maken zich zorgen over de droogte.",
        "Kunt u ons iets meer vertellen over uw jeugd in Groningen?",
        "Mijn vader werkte vijftig jaar lang op dezelfde scheepswerf.",
        "Dat was een moeilijke tijd, maar we hebben het samen gered.",
        "Het museum verwacht deze zomer meer dan honderdduizend bezoekers.",
        "De wedstrijd eindigde na een spannende tweede helft in een gelijkspel.",
        "Welkom terug bij ons programma, fijn dat u weer luistert.",
        "Aan tafel zitten vanavond twee bijzondere gasten.",
        "De onderzoekers ontdekten resten van een oude Romeinse nederzetting.",
        "Vroeger stond hier een molen die graan maalde voor het hele dorp.",
        "De dijk werd in de vorige eeuw twee keer verhoogd.",
        "Ik ben het daar niet helemaal mee eens, eerlijk gezegd.",
        "Waarom heeft u toen besloten om te stoppen met de politiek?",
        "De prijzen in de supermarkt zijn het afgelopen jaar flink gestegen.",
        "Morgen wordt het droog en zonnig, met temperaturen rond de twintig graden.",
        "De minister wil volgend jaar meer geld uittrekken voor het onderwijs.",
        "Op het plein stonden honderden mensen te wachten op de koning.",
        "Het orkest speelt vanavond een programma met werk van Bach.",
        "Dank u wel voor dit gesprek, en veel succes met de voorstelling.",
        "Na de pauze hoort u een reportage over de visserij op de Noordzee.",
        "De vissers vertrekken elke nacht om drie uur uit de haven.",
        "Het water stond die winter tot aan de vensterbank.",
        "We hebben contact gehad met de gemeente, maar er kwam geen antwoord.",
        "Dit is een bijzonder moment voor de hele familie.",
        "Luisteraars kunnen tot vijf uur stemmen via de website.",
        "De zangeres brengt volgende maand haar derde album uit.",
        "Het verkeer op de snelweg staat vast door een gekanteld vrachtwagen.",
        "In Amsterdam werd vandaag een nieuwe metrolijn geopend.",
        "Dat was het nieuws, tot morgen en nog een fijne avond.",
    ),
    "en": (
        "Good evening, here is the news at eight o'clock.",
        "The government announced a new housing plan this afternoon.",
        "Heavy rain is expected in the north of the country tomorrow.",
        "The mayor opened the renovated bridge over the river today.",
        "According to the police, nobody was injured in the accident.",
        "That is a very good question, and I have thought about it for years.",
        "How did you feel about the reactions to your new book?",
        "To be honest, I did not expect that at all.",
        "We will continue with the weather forecast in a moment.",
        "Trains are running on the normal timetable again this evening.",
        "The port handled more cargo last year than ever before.",
        "Farmers in the valley are worried about the long drought.",
        "Can you tell us a little more about your childhood by the sea?",
        "My father worked at the same shipyard for fifty years.",
        "It was a difficult time, but we got through it together.",
        "The museum expects more than a hundred thousand visitors this summer.",
        "The match ended in a draw after an exciting second half.",
        "Welcome back to the programme, and thank you for listening.",
        "Tonight we are joined by two very special guests.",
        "Researchers found the remains of an old Roman settlement.",
        "A windmill once stood here, grinding grain for the whole village.",
        "The sea wall was raised twice during the last century.",
        "I do not entirely agree with that, if I am honest.",
        "Why did you decide to leave politics at that point?",
        "Prices in the supermarket have risen sharply over the past year.",
        "Tomorrow will be dry and sunny, with temperatures around twenty degrees.",
        "The minister wants to spend more money on education next year.",
        "Hundreds of people were waiting in the square for the king.",
        "Tonight the orchestra plays a programme of music by Bach.",
        "Thank you for talking to us, and good luck with the show.",
        "After the break you will hear a report on fishing in the North Sea.",
        "The fishermen leave the harbour at three o'clock every night.",
        "That winter the water came up to the window sill.",
        "We contacted the council, but we never received an answer.",
        "This is a very special moment for the whole family.",
        "Listeners can vote on the website until five o'clock.",
        "The singer releases her third album next month.",
        "Traffic on the motorway is at a standstill because of an overturned lorry.",
        "A new underground line opened in the capital today.",
        "That was the news, goodbye until tomorrow and have a pleasant evening.",
    ),
}


@dataclass(frozen=True)
class Speaker:
    """One synthetic voice: an espeak-ng voice+variant with its own pitch and speed."""

    label: str
    language: str
    voice: str
    pitch: int
    speed: int


SPEAKERS: tuple[Speaker, ...] = (
    Speaker("nl_m3", "nl", "nl+m3", 40, 160),
    Speaker("nl_f2", "nl", "nl+f2", 65, 155),
    Speaker("nl_m1", "nl", "nl+m1", 25, 145),
    Speaker("en_m1", "en", "en-us+m1", 45, 165),
    Speaker("en_f3", "en", "en+f3", 70, 160),
    Speaker("en_m7", "en", "en-gb+m7", 35, 150),
)


class SpeechBank:
    """Synthesizes each (speaker, sentence) once with espeak-ng and serves it at any sample rate.

    espeak-ng is fast (~15 ms a sentence) but a 40-minute archive reuses sentences hundreds of times, so
    clips are cached at the espeak rate; resampling on each use (~1 ms) is cheaper than caching every rate.
    """

    def __init__(self) -> None:
        espeak.require_tool("espeak-ng", "espeak-ng")
        self._tmp = tempfile.TemporaryDirectory(prefix="curate-demo-")
        self._native: dict[tuple[str, str], np.ndarray] = {}

    def __enter__(self) -> SpeechBank:
        return self

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()

    def get(self, speaker: Speaker, sentence: str, sample_rate: int) -> np.ndarray:
        """The sentence spoken by ``speaker``, trimmed to its voiced extent, peak-normalized."""
        clip = self._synthesize(speaker, sentence)
        if sample_rate == ESPEAK_RATE:
            return clip
        return soxr.resample(clip, ESPEAK_RATE, sample_rate).astype(np.float32)

    def _synthesize(self, speaker: Speaker, sentence: str) -> np.ndarray:
        key = (speaker.label, sentence)
        if key not in self._native:
            audio = espeak.speak_native(sentence, speaker.voice, speaker.pitch, speaker.speed, self._tmp.name)
            self._native[key] = _trim(audio, ESPEAK_RATE)
        return self._native[key]


def _trim(audio: np.ndarray, sample_rate: int, margin_s: float = 0.02) -> np.ndarray:
    """Cut espeak's leading/trailing silence so a speech region's bounds are where the voice is."""
    peak = float(np.max(np.abs(audio)))
    loud = np.flatnonzero(np.abs(audio) > 0.02 * peak)
    margin = int(margin_s * sample_rate)
    start, end = max(0, loud[0] - margin), min(audio.size, loud[-1] + margin)
    return (audio[start:end] * (0.6 / peak)).astype(np.float32)


# --------------------------------------------------------------------------- music

PROGRESSIONS = ((0, 7, 9, 5), (0, 5, 7, 0), (9, 5, 0, 7), (0, 9, 5, 7))  # I-V-vi-IV style, in semitones
MAJOR = (0, 4, 7)
MINOR = (0, 3, 7)
PENTATONIC = (0, 2, 4, 7, 9, 12, 14)
VOWELS = ((800, 1150, 2900), (400, 2000, 2550), (300, 2300, 3000), (450, 800, 2830), (325, 700, 2530))


def _hz(midi: float | np.ndarray) -> float | np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi) - 69) / 12)


def _envelope(n: int, sample_rate: int, attack_s: float, decay_s: float) -> np.ndarray:
    """Linear attack then exponential decay; short decays give plucks, long ones give pads."""
    t = np.arange(n, dtype=np.float32) / np.float32(sample_rate)
    env = np.minimum(np.float32(1), t / np.float32(max(attack_s, 1e-3))) * np.exp(-t / np.float32(decay_s))
    release = min(n, int(0.02 * sample_rate))  # avoid clicks at the note end
    env[n - release :] *= np.linspace(1.0, 0.0, release, dtype=np.float32)
    return env


def _tone(freq: float, n: int, sample_rate: int, harmonics: tuple[float, ...]) -> np.ndarray:
    """Additive tone; harmonics above Nyquist are skipped so nothing aliases. float32: notes are short."""
    t = np.arange(n, dtype=np.float32) / np.float32(sample_rate)
    out = np.zeros(n, np.float32)
    for k, amp in enumerate(harmonics, start=1):
        if k * freq < 0.45 * sample_rate:
            out += np.float32(amp) * np.sin(np.float32(2 * np.pi * k * freq) * t)
    return out


def instrumental(rng: np.random.Generator, sample_rate: int, duration_s: float) -> np.ndarray:
    """Chords, bass and an arpeggio at a random key and tempo: a jingle, a bed or an accompaniment."""
    n = round(duration_s * sample_rate)
    out = np.zeros(n)
    key = int(rng.integers(55, 65))
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    beat = 60.0 / float(rng.uniform(90, 130))
    chord_n = int(4 * beat * sample_rate)
    step_n = int(beat / 2 * sample_rate)
    for i, start in enumerate(range(0, n, chord_n)):
        root = key + progression[i % len(progression)]
        triad = MINOR if progression[i % len(progression)] == 9 else MAJOR
        length = min(chord_n, n - start)
        pad = sum(_tone(_hz(root + iv), length, sample_rate, (1, 0.3, 0.1)) for iv in triad)
        out[start : start + length] += 0.12 * pad * _envelope(length, sample_rate, 0.15, 3.0)
        for j, s in enumerate(range(start, start + length, step_n)):
            note_n = min(int(0.6 * sample_rate), n - s)
            arp = root + 12 + triad[j % 3] + (12 if j % 4 == 3 else 0)
            out[s : s + note_n] += (
                0.18
                * _tone(_hz(arp), note_n, sample_rate, (1, 0.5, 0.25, 0.12))
                * _envelope(note_n, sample_rate, 0.005, 0.18)
            )
            if j % 2 == 0:
                out[s : s + note_n] += (
                    0.25
                    * _tone(_hz(root - 12), note_n, sample_rate, (1, 0.4, 0.2))
                    * _envelope(note_n, sample_rate, 0.01, 0.3)
                )
    return _fade(_normalize(out, 0.5), sample_rate)


def sung_line(rng: np.random.Generator, sample_rate: int, duration_s: float) -> np.ndarray:
    """A voiced, harmonic-rich melody with vibrato, glides and vowel formants: 'singing' without words.

    The source is a band-limited sawtooth (like glottal pulses) whose f0 follows a pentatonic melody;
    each note gets a vowel, imposed by three parallel resonators at that vowel's formants.
    """
    n = round(duration_s * sample_rate)
    base = int(rng.integers(55, 64))
    notes: list[tuple[int, int, float, int]] = []  # start, length, midi pitch, vowel index
    pos = 0
    while pos < n:
        length = min(int(rng.uniform(0.3, 0.9) * sample_rate), n - pos)
        notes.append((pos, length, base + PENTATONIC[int(rng.integers(len(PENTATONIC)))], int(rng.integers(5))))
        pos += length + (int(0.25 * sample_rate) if rng.random() < 0.15 else 0)  # breath between phrases
    midi = np.empty(n)
    for (start, _, pitch, _), nxt in zip(notes, [s for s, *_ in notes[1:]] + [n], strict=True):
        midi[start:nxt] = pitch  # hold the pitch through the breath that follows the note
    glide = int(0.04 * sample_rate)
    midi = signal.lfilter([1.0 / glide], [1.0, -(1 - 1.0 / glide)], midi, zi=[midi[0] * (1 - 1.0 / glide)])[0]
    t = np.arange(n) / sample_rate
    midi += 0.35 * np.sin(2 * np.pi * rng.uniform(5.0, 6.5) * t)  # vibrato, +-0.35 semitone
    f0 = _hz(midi)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    source = np.zeros(n)
    for k in range(1, int(min(5000.0, 0.45 * sample_rate) / float(np.max(f0))) + 1):
        source += np.sin(k * phase) / k
    out = np.zeros(n)
    for start, length, _, vowel in notes:
        seg = source[start : start + length]
        voiced = sum(_resonator(seg, f, 80 + 0.05 * f, sample_rate) for f in VOWELS[vowel])
        out[start : start + length] = voiced * _envelope(length, sample_rate, 0.05, 2.0)
    return _fade(_normalize(out, 0.6), sample_rate)


def vocal_music(rng: np.random.Generator, sample_rate: int, duration_s: float) -> np.ndarray:
    """A sung line over an accompaniment: what a 'song' looks like to a speech detector."""
    return _normalize(sung_line(rng, sample_rate, duration_s) + 0.5 * instrumental(rng, sample_rate, duration_s), 0.6)


def _resonator(x: np.ndarray, freq: float, bandwidth: float, sample_rate: int) -> np.ndarray:
    """Two-pole resonance at ``freq`` Hz, unit gain at the peak: one formant."""
    r = np.exp(-np.pi * bandwidth / sample_rate)
    theta = 2 * np.pi * freq / sample_rate
    return signal.lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], x)


# --------------------------------------------------------------------------- noise


def noise_burst(rng: np.random.Generator, sample_rate: int, duration_s: float, colour: str) -> np.ndarray:
    """Band-passed white or 1/f ('pink') noise with soft edges: wind, traffic, crowd rumble, hiss."""
    n = round(duration_s * sample_rate)
    white = rng.standard_normal(n)
    if colour == "pink":
        spectrum = np.fft.rfft(white)
        spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
        noise = np.fft.irfft(spectrum, n)
    elif colour == "white":
        low, high = sorted(rng.uniform(200, 0.4 * sample_rate, size=2))
        sos = signal.butter(4, [low, max(high, low + 500)], btype="bandpass", fs=sample_rate, output="sos")
        noise = signal.sosfilt(sos, white)
    else:
        raise ValueError(f"unknown noise colour {colour!r}; expected 'white' or 'pink'")
    return _fade(_normalize(noise, 0.3), sample_rate, 0.2)


def applause(rng: np.random.Generator, sample_rate: int, duration_s: float) -> np.ndarray:
    """Many short band-passed clap transients, swelling and dying away like an audience."""
    n = round(duration_s * sample_rate)
    rate = rng.uniform(40, 80)  # claps per second at full strength
    impulses = (rng.random(n) < rate / sample_rate) * rng.uniform(0.3, 1.0, n)
    kernel_n = int(0.012 * sample_rate)
    kernel = rng.standard_normal(kernel_n) * np.exp(-np.arange(kernel_n) / (0.003 * sample_rate))
    claps = signal.fftconvolve(impulses, kernel)[:n]
    sos = signal.butter(2, [700, min(5000, 0.45 * sample_rate)], btype="bandpass", fs=sample_rate, output="sos")
    t = np.linspace(0.0, 1.0, n)
    swell = np.minimum(1.0, t / 0.15) * np.minimum(1.0, (1 - t) / 0.4)
    return _fade(_normalize(signal.sosfilt(sos, claps) * swell, 0.4), sample_rate)


def _normalize(x: np.ndarray, peak: float) -> np.ndarray:
    top = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (peak / top) if top > 0 else x).astype(np.float32)


def _fade(x: np.ndarray, sample_rate: int, fade_s: float = 0.05) -> np.ndarray:
    """Fade both ends so a piece never starts or stops with a click (a click would be a false 'noise')."""
    k = min(x.size // 2, int(fade_s * sample_rate))
    if k:
        ramp = np.linspace(0.0, 1.0, k, dtype=np.float32)
        x[:k] *= ramp
        x[x.size - k :] *= ramp[::-1]
    return x
