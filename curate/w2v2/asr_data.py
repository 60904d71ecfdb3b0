"""Labelled speech for fine-tuning and evaluation, read from local directories (nothing is downloaded).

Layouts (as distributed):
- **LibriSpeech** ``ROOT/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` (``ID TRANSCRIPT`` lines) and
  ``<speaker>-<chapter>-<utt>.flac``; ``split`` = train-clean-100, dev-clean, test-other, … (``ROOT`` may also
  be the split directory itself).
- **Libri-light limited supervision** (``librispeech_finetuning.tgz``) ``ROOT/1h/{0..5}/{clean,other}/<spk>/<chap>/``
  and ``ROOT/9h/{clean,other}/<spk>/<chap>/`` in the LibriSpeech layout. Amounts, as defined by Libri-light and
  used by wav2vec 2.0: ``10min`` = ``1h/0`` (clean + other); ``1h`` = all six ``1h/*`` folds; ``10h`` = ``1h`` +
  ``9h``. ``100h`` and ``960h`` are LibriSpeech's train-clean-100 and all three train splits.
- **Multilingual LibriSpeech** Dutch ``ROOT/<split>/transcripts.txt`` (``<spk>_<book>_<seg>\\tTEXT``) and
  ``ROOT/<split>/audio/<spk>/<book>/<id>.flac`` (``.opus`` in the opus release); durations from
  ``segments.txt`` when present. ``split`` = train, dev, test; limited supervision (``amount``: 10min = ``1hr/0``,
  1h = ``1hr/*``, 10h = + ``9hr``) from ``train/limited_supervision/…/handles.txt``.
- **Common Voice** ``ROOT/<split>.tsv`` (columns ``path``, ``sentence``, ``client_id``) + ``ROOT/clips/*.mp3``, where
  ``ROOT`` is ``cv-corpus-*/nl``; ``split`` = train, dev, test (validated, other … work too). Durations from
  ``clip_durations.tsv`` when present, else probed.

Every transcript is normalized with :func:`curate.w2v2.text.normalize` in the dataset's language.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.errors import CurateError
from curate.w2v2.text import normalize

log = logging.getLogger(__name__)

LIBRILIGHT_AMOUNTS = {
    "10min": ["1h/0"],
    "1h": [f"1h/{i}" for i in range(6)],
    "10h": [f"1h/{i}" for i in range(6)] + ["9h"],
}
LIBRISPEECH_AMOUNTS = {"100h": ["train-clean-100"], "960h": ["train-clean-100", "train-clean-360", "train-other-500"]}
KINDS = ("librispeech", "librilight", "mls", "commonvoice")


class AsrDataError(CurateError, RuntimeError):
    """A labelled dataset is missing or malformed; the message names the file and the expected layout."""


@dataclass(frozen=True)
class Utterance:
    id: str
    audio_path: str
    text: str  # normalized
    duration_s: float
    speaker: str = ""
    raw_text: str = ""

    def load(self) -> np.ndarray:
        from curate.audio import load

        return load(self.audio_path)


def _duration(path: Path) -> float:
    from curate.audio import probe

    return probe(path).duration_s


def _librispeech_dir(d: Path, language: str, digits: str) -> list[Utterance]:
    utts = []
    for trans in sorted(d.rglob("*.trans.txt")):
        for n, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            uid, _, raw = line.partition(" ")
            if not raw:
                raise AsrDataError(f"{trans}:{n}: expected 'ID TRANSCRIPT', got {line!r}")
            audio = next(
                (trans.parent / f"{uid}{ext}" for ext in (".flac", ".wav") if (trans.parent / f"{uid}{ext}").exists()),
                None,
            )
            if audio is None:
                raise AsrDataError(f"{trans}:{n}: audio {uid}.flac is missing in {trans.parent}")
            utts.append(
                Utterance(uid, str(audio), normalize(raw, language, digits), _duration(audio), uid.split("-")[0], raw)
            )
    return utts


def read_librispeech(
    root: str | Path, split: str | None = None, language: str = "en", digits: str = "spell"
) -> list[Utterance]:
    """LibriSpeech ``ROOT/<split>`` (or ``ROOT`` itself when ``split`` is None)."""
    root = Path(root)
    d = root / split if split else root
    if not d.is_dir():
        have = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) if root.is_dir() else "none"
        raise AsrDataError(f"{d}: no such LibriSpeech split directory (found: {have})")
    utts = _librispeech_dir(d, language, digits)
    if not utts:
        raise AsrDataError(f"{d}: no *.trans.txt files (expected <speaker>/<chapter>/<speaker>-<chapter>.trans.txt)")
    return utts


def read_librilight(root: str | Path, amount: str) -> list[Utterance]:
    """Libri-light limited supervision: ``amount`` in 10min, 1h, 10h (see the module docstring)."""
    if amount not in LIBRILIGHT_AMOUNTS:
        raise AsrDataError(f"librilight amount: expected one of {', '.join(LIBRILIGHT_AMOUNTS)}, got {amount!r}")
    root = Path(root)
    utts = []
    for sub in LIBRILIGHT_AMOUNTS[amount]:
        d = root / sub
        if not d.is_dir():
            raise AsrDataError(f"{d}: missing (expected librispeech_finetuning/{{1h/0..5,9h}}/{{clean,other}}/…)")
        utts += _librispeech_dir(d, "en", "spell")
    return utts


def _mls_handles(d: Path, amount: str) -> set[str]:
    lim = d / "limited_supervision"
    files = {
        "1h": [lim / "1hr" / str(i) / "handles.txt" for i in range(6)],
        "10min": [lim / "1hr" / "0" / "handles.txt"],
    }
    files["10h"] = files["1h"] + [lim / "9hr" / "handles.txt"]
    if amount not in files:
        raise AsrDataError(f"mls amount: expected 10min, 1h or 10h (limited supervision), got {amount!r}")
    out: set[str] = set()
    for f in files[amount]:
        if not f.is_file():
            raise AsrDataError(
                f"{f}: missing (expected mls_dutch/train/limited_supervision/{{1hr/0..5,9hr}}/handles.txt)"
            )
        out.update(x.strip() for x in f.read_text().split() if x.strip())
    return out


def read_mls(
    root: str | Path, split: str, language: str = "nl", digits: str = "spell", amount: str | None = None
) -> list[Utterance]:
    """Multilingual LibriSpeech (Dutch by default): ``ROOT/<split>/transcripts.txt`` + ``audio/<spk>/<book>/``.
    ``amount`` (10min, 1h, 10h; train only) keeps the ids of the limited-supervision ``handles.txt`` files."""
    d = Path(root) / split
    keep = _mls_handles(d, amount) if amount else None
    trans = d / "transcripts.txt"
    if not trans.is_file():
        raise AsrDataError(f"{trans}: missing (expected mls_dutch/{{train,dev,test}}/transcripts.txt)")
    durations: dict[str, float] = {}
    seg = d / "segments.txt"
    if seg.is_file():
        for line in seg.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) >= 4:
                durations[parts[0]] = float(parts[3]) - float(parts[2])
    utts = []
    for n, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        uid, _, raw = line.partition("\t")
        parts = uid.split("_")
        if len(parts) != 3 or not raw:
            raise AsrDataError(f"{trans}:{n}: expected '<speaker>_<book>_<segment>\\tTEXT', got {line[:80]!r}")
        if keep is not None and uid not in keep:
            continue
        base = d / "audio" / parts[0] / parts[1] / uid
        audio = next(
            (base.with_suffix(ext) for ext in (".flac", ".opus", ".wav") if base.with_suffix(ext).exists()), None
        )
        if audio is None:
            raise AsrDataError(f"{trans}:{n}: audio {base}.flac (or .opus) is missing")
        dur = durations.get(uid) or _duration(audio)
        utts.append(Utterance(uid, str(audio), normalize(raw, language, digits), dur, parts[0], raw))
    return utts


def read_commonvoice(root: str | Path, split: str, language: str = "nl", digits: str = "spell") -> list[Utterance]:
    """Common Voice ``cv-corpus-*/<lang>``: ``<split>.tsv`` + ``clips/``."""
    root = Path(root)
    tsv = root / f"{split}.tsv"
    if not tsv.is_file():
        raise AsrDataError(f"{tsv}: missing (expected cv-corpus-*/{language}/{{train,dev,test}}.tsv and clips/)")
    durations: dict[str, float] = {}
    cd = root / "clip_durations.tsv"
    if cd.is_file():
        with cd.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                durations[row["clip"]] = float(row["duration[ms]"]) / 1000
    utts = []
    with tsv.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"path", "sentence"} - set(reader.fieldnames or [])
        if missing:
            raise AsrDataError(f"{tsv}: missing column(s) {', '.join(sorted(missing))}")
        for row in reader:
            audio = root / "clips" / row["path"]
            if not audio.exists():
                raise AsrDataError(f"{tsv}: clip {audio} is missing")
            dur = durations.get(row["path"]) or _duration(audio)
            utts.append(
                Utterance(
                    Path(row["path"]).stem,
                    str(audio),
                    normalize(row["sentence"], language, digits),
                    dur,
                    row.get("client_id", ""),
                    row["sentence"],
                )
            )
    return utts


def read_dataset(spec: dict) -> list[Utterance]:
    """``{kind: librispeech|librilight|mls|commonvoice|synthetic, root: DIR, split|amount: …, language?, limit?}``
    → utterances. ``limit`` keeps the first N (sorted by id) for quick runs. ``synthetic`` speaks ``n`` sentences
    of ``words_per_utt`` words drawn from ``words`` (seeded by ``seed``) with espeak-ng into ``root`` (a cache)."""
    kind = spec.get("kind")
    root = spec.get("root")
    if kind not in (*KINDS, "synthetic") or not root:
        raise AsrDataError(f"dataset {spec!r}: needs kind (one of {', '.join(KINDS)}, synthetic) and root")
    if kind == "synthetic":
        utts = read_librispeech(write_synthetic(root, synthetic_sentences(spec), split=spec.get("split", "train")))
    elif kind == "librispeech":
        utts = read_librispeech(root, spec.get("split"), spec.get("language", "en"))
    elif kind == "librilight":
        utts = read_librilight(root, spec.get("amount", "10min"))
    elif kind == "mls":
        utts = read_mls(root, spec.get("split", "test"), spec.get("language", "nl"), amount=spec.get("amount"))
    else:
        utts = read_commonvoice(root, spec.get("split", "test"), spec.get("language", "nl"))
    utts.sort(key=lambda u: u.id)
    if spec.get("limit"):
        utts = utts[: int(spec["limit"])]
    return utts


def synthetic_sentences(spec: dict) -> list[str]:
    """``words`` (list), ``n`` sentences, ``words_per_utt``, ``seed`` → deterministic word sequences."""
    import random

    words = list(spec.get("words") or ["yes", "no", "stop", "go"])
    if not all(isinstance(w, str) and w for w in words):
        raise AsrDataError(
            f"synthetic dataset: words must be non-empty strings, got {words!r} "
            "(in YAML, quote yes/no/on/off: they read as booleans)"
        )
    rng = random.Random(int(spec.get("seed", 0)))
    return [
        " ".join(rng.choice(words) for _ in range(int(spec.get("words_per_utt", 1))))
        for _ in range(int(spec.get("n", 40)))
    ]


def write_synthetic(
    out_dir: str | Path,
    sentences: list[str],
    *,
    speakers: tuple[str, ...] = ("en_m1", "en_f3", "en_m7"),
    split: str = "train",
    chapter: int = 1,
) -> Path:
    """Speak ``sentences`` with espeak-ng voices of the demo into a LibriSpeech-layout tree (FLAC, 16 kHz) under
    ``out_dir/split``; sentence i is spoken by speaker ``i % len(speakers)``. Idempotent; returns the split dir."""
    import soundfile as sf

    from curate.synth.sounds import SPEAKERS, SpeechBank

    voices = {s.label: s for s in SPEAKERS}
    final = Path(out_dir) / split
    if (final / ".complete").exists():
        return final
    d = Path(out_dir) / f".{split}.tmp-{os.getpid()}"  # concurrent writers: each builds its own, one wins
    shutil.rmtree(d, ignore_errors=True)
    by_spk: dict[int, list[str]] = {}
    with SpeechBank() as bank:
        for i, sentence in enumerate(sentences):
            spk = speakers[i % len(speakers)]
            sid = 100 + list(voices).index(spk)
            uid = f"{sid}-{chapter}-{i:04d}"
            cdir = d / str(sid) / str(chapter)
            cdir.mkdir(parents=True, exist_ok=True)
            sf.write(cdir / f"{uid}.flac", bank.get(voices[spk], sentence, 16_000), 16_000)
            by_spk.setdefault(sid, []).append(f"{uid} {sentence.upper()}")
    for sid, lines in by_spk.items():
        (d / str(sid) / str(chapter) / f"{sid}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    (d / ".complete").write_text("")
    try:
        shutil.rmtree(final, ignore_errors=True) if not (final / ".complete").exists() else None
        os.rename(d, final)
    except OSError:  # another process finished first
        shutil.rmtree(d, ignore_errors=True)
    return final
