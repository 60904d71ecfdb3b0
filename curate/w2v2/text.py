"""Transcript normalization and the letter vocabulary of CTC fine-tuning (thesis: Dutch and English).

``normalize(text, language)``:
1. Unicode NFKC, lower-case; typographic apostrophes (’ ‘ ´ `) become ``'``.
2. Accented letters become their closest ASCII letter (é→e, ë→e, ç→c; ß→ss, æ→ae, œ→oe, ø→o, ĳ→ij …).
3. Numbers are spelled out in the utterance's language (``digits="spell"``, the default: "21" → "twenty one" /
   "eenentwintig"; integers up to 10⁹, longer digit strings digit by digit; "3.5" → "three five" because the
   point is punctuation). The alternative ``digits="drop"`` removes them. Digits are never in the vocabulary:
   LibriSpeech has none, MLS and Common Voice Dutch very few, and a spelled number is what a speaker says.
4. Every other character that is not a letter or an apostrophe, hyphens included, becomes a space.
5. Apostrophes are kept inside words (don't, zo'n, auto's) and for the Dutch clitics at a word's start ('s, 't,
   'n, 'k, 'm, 'r, 'ns); other leading/trailing apostrophes are quotation marks and are removed.
6. Runs of spaces collapse; the result is stripped.

Vocabulary: blank (index 0), ``|`` word boundary, ``'``, a–z → 29 symbols. ``encode`` maps spaces to ``|``.
"""

from __future__ import annotations

import re
import unicodedata

BLANK = "<blank>"
WORD = "|"
VOCAB: tuple[str, ...] = (BLANK, WORD, "'", *"abcdefghijklmnopqrstuvwxyz")
INDEX = {c: i for i, c in enumerate(VOCAB)}

_SPECIAL = {
    "ß": "ss",
    "æ": "ae",
    "œ": "oe",
    "ø": "o",
    "ĳ": "ij",
    "ł": "l",
    "đ": "d",
    "ð": "d",
    "þ": "th",
    "ı": "i",
    "ŀ": "l",
}
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "´": "'", "`": "'", "ʼ": "'", "′": "'"})
_NL_CLITICS = {"'s", "'t", "'n", "'k", "'m", "'r", "'ns"}
_NUMBER = re.compile(r"\d+")

_EN_ONES = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_NL_ONES = (
    "nul",
    "een",
    "twee",
    "drie",
    "vier",
    "vijf",
    "zes",
    "zeven",
    "acht",
    "negen",
    "tien",
    "elf",
    "twaalf",
    "dertien",
    "veertien",
    "vijftien",
    "zestien",
    "zeventien",
    "achttien",
    "negentien",
)
_NL_TENS = ("", "", "twintig", "dertig", "veertig", "vijftig", "zestig", "zeventig", "tachtig", "negentig")


def spell_number(n: int, language: str = "en") -> str:
    """A non-negative integer < 10⁹ as words ("en": "one hundred twenty three"; "nl": "honderddrieëntwintig"
    before accent folding, i.e. "honderddrieentwintig")."""
    if not 0 <= n < 10**9:
        raise ValueError(f"spell_number: {n} is outside [0, 10^9)")
    return _spell_nl(n) if language.startswith("nl") else _spell_en(n)


def _spell_en(n: int) -> str:
    if n < 20:
        return _EN_ONES[n]
    if n < 100:
        return _EN_TENS[n // 10] + ("" if n % 10 == 0 else " " + _EN_ONES[n % 10])
    for size, name in ((10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            rest = n % size
            return f"{_spell_en(n // size)} {name}" + (f" {_spell_en(rest)}" if rest else "")
    raise AssertionError("unreachable")


def _spell_nl(n: int) -> str:
    # Dutch writes numbers below a million as one word: 21 = eenentwintig, 123 = honderddrieëntwintig.
    if n < 20:
        return _NL_ONES[n]
    if n < 100:
        ones, tens = n % 10, _NL_TENS[n // 10]
        if not ones:
            return tens
        link = "ën" if _NL_ONES[ones].endswith("e") else "en"
        return _NL_ONES[ones] + link + tens
    if n < 1000:
        head = "" if n // 100 == 1 else _NL_ONES[n // 100]
        return head + "honderd" + (_spell_nl(n % 100) if n % 100 else "")
    if n < 10**6:
        head = "" if n // 1000 == 1 else _spell_nl(n // 1000)
        return head + "duizend" + (" " + _spell_nl(n % 1000) if n % 1000 else "")
    rest = n % 10**6
    return _spell_nl(n // 10**6) + " miljoen" + (" " + _spell_nl(rest) if rest else "")


def _numbers(text: str, language: str, digits: str) -> str:
    if digits == "drop":
        return _NUMBER.sub(" ", text)

    def spell(m: re.Match) -> str:
        s = m.group(0)
        if len(s) > 9 or (len(s) > 1 and s.startswith("0")):  # phone numbers, codes: digit by digit
            return " " + " ".join(spell_number(int(d), language) for d in s) + " "
        return " " + spell_number(int(s), language) + " "

    return _NUMBER.sub(spell, text)


def fold_accents(text: str) -> str:
    """Accented letters → closest ASCII letter; characters without one are kept (and later become spaces)."""
    out = []
    for ch in text:
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        out.append(base if base.isascii() and base else ch)
    return "".join(out)


def _word(w: str, language: str) -> str:
    if language.startswith("nl") and w in _NL_CLITICS:
        return w
    w = w.strip("'")
    return w


def normalize(text: str, language: str = "en", digits: str = "spell") -> str:
    """A transcript → lower-case letters, apostrophes and single spaces (see the module docstring)."""
    if digits not in ("spell", "drop"):
        raise ValueError(f"digits must be 'spell' or 'drop', got {digits!r}")
    t = unicodedata.normalize("NFKC", text).lower().translate(_APOSTROPHES)
    t = _numbers(t, language, digits)
    t = fold_accents(t)
    t = re.sub(r"[^a-z']+", " ", t)
    words = (_word(w, language) for w in t.split())
    return " ".join(w for w in words if w.strip("'"))


def encode(text: str) -> list[int]:
    """Normalized text → label ids (space → ``|``). Characters outside the vocabulary raise ValueError."""
    try:
        return [INDEX[WORD if c == " " else c] for c in text]
    except KeyError as e:
        raise ValueError(
            f"character {e.args[0]!r} is not in the letter vocabulary; normalize() the text first"
        ) from None


def decode(ids: list[int]) -> str:
    """Label ids (no blanks) → text with spaces; leading/trailing/doubled word boundaries collapse."""
    s = "".join(VOCAB[i] for i in ids if i != 0)
    return " ".join(s.replace(WORD, " ").split())


def ctc_greedy(ids: list[int]) -> str:
    """Frame-wise argmax ids → text: collapse repeats, drop blanks (greedy CTC decoding)."""
    out, prev = [], -1
    for i in ids:
        if i != prev and i != 0:
            out.append(i)
        prev = i
    return decode(out)
