"""Transcript normalization and the letter vocabulary of CTC fine-tuning (thesis: Dutch and English).

``normalize(text, language)``:
1. Unicode NFKC, lower-case; typographic apostrophes (’ ‘ ´ `) become ``'``.
2. Accented letters become their closest ASCII letter (é→e, ë→e, ç→c; ß→ss, æ→ae, œ→oe, ø→o, ĳ→ij …).
3. Numbers are spelled out in the utterance's language with ``num2words`` (``digits="spell"``, the default):
   "21" → "twenty one" / "eenentwintig", years "1999" → "nineteen ninety nine", decimals "3.5" → "three point
   five" ("3,5" → "drie komma vijf" in Dutch: the decimal separator follows the language), "1,000,000" → "one
   million", ordinals "21st" / "3de"; digit strings with a leading zero (phone numbers, codes) digit by digit.
   Languages num2words lacks fall back to English. The alternative ``digits="drop"`` removes numbers. Digits
   are never in the vocabulary: LibriSpeech has none, and a spelled number is what a speaker says.
   Currency signs and units beside a number are said after it, as words (Dutch, else English): "€5" → "five
   euros" / "vijf euro", "$1.5 million" → "one point five million dollars", "20%" → "twenty percent" /
   "twintig procent", "30 km/h", "12 kg", "21 °C" → "twenty one degrees celsius"; a lone € $ £ % is its word.
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
# A number as written: digits with optional grouping/decimal separators, then an optional ordinal suffix
# (1st 2nd 3rd 4th; Dutch 1e 2de 8ste).
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:st|nd|rd|th|ste|de|e)?(?![a-z])|\d+")
_ORDINAL = re.compile(r"(st|nd|rd|th|ste|de|e)$")


def _lang(language: str) -> str:
    """num2words' language code for ``language`` ("nl-BE" → "nl", "en_GB" → "en"); English when unsupported."""
    from num2words import CONVERTER_CLASSES

    code = language.replace("-", "_").lower()
    for c in (code, code.split("_")[0]):
        if c in CONVERTER_CLASSES:
            return c
    return "en"


def spell_number(n: int | str, language: str = "en", to: str = "cardinal") -> str:
    """A number in words with ``num2words`` (``to``: cardinal, ordinal or year; a decimal string such as
    "3.5" reads "three point five"). Hyphens and commas of num2words' output stay (normalize removes them)."""
    from decimal import Decimal

    from num2words import num2words

    value = Decimal(n) if isinstance(n, str) else n
    return num2words(value, lang=_lang(language), to=to)


def _digits(s: str, language: str) -> str:
    return " ".join(spell_number(int(d), language) for d in s)


def _spell(token: str, language: str) -> str:
    """One written number → words: thousands separators and the decimal point/comma of the language,
    ordinals, years (1100–2099) and digit strings (leading zero, or longer than 15 digits) one by one."""
    suffix = _ORDINAL.search(token)
    body = token[: suffix.start()] if suffix else token
    decimal, group = (",", ".") if _lang(language) in _COMMA_DECIMAL else (".", ",")
    parts = re.split(r"[.,]", body)
    seps = re.findall(r"[.,]", body)
    if seps and all(s == group for s in seps) and all(len(p) == 3 for p in parts[1:]) and len(parts[0]) <= 3:
        body, seps = "".join(parts), []  # 1,000,000 / 1.000.000
    if len(seps) == 1 and seps[0] == decimal and not suffix:
        whole, frac = parts
        if not (len(whole) > 1 and whole.startswith("0")):
            return spell_number(f"{whole}.{frac}", language)
    if seps:  # versions, dates, times: every group on its own
        return " ".join(_spell(p, language) for p in parts)
    if len(body) > 15 or (len(body) > 1 and body.startswith("0")):
        return _digits(body, language)
    n = int(body)
    if suffix:
        return spell_number(n, language, "ordinal")
    if len(body) == 4 and 1100 <= n < 2100:
        return spell_number(n, language, "year")
    return spell_number(n, language)


# Languages that write a decimal comma (and group thousands with a point).
_COMMA_DECIMAL = {"nl", "de", "fr", "es", "it", "pt", "da", "sv", "no", "nb", "fi", "pl", "cs", "ru", "tr", "id"}


# Symbols and units said after their number: (English singular, English plural, Dutch).
_SIGNS = {"€": ("euro", "euros", "euro"), "$": ("dollar", "dollars", "dollar"), "£": ("pound", "pounds", "pond")}
_UNITS = {
    "%": ("percent", "percent", "procent"),
    "km/h": ("kilometre per hour", "kilometres per hour", "kilometer per uur"),
    "km": ("kilometre", "kilometres", "kilometer"),
    "cm": ("centimetre", "centimetres", "centimeter"),
    "mm": ("millimetre", "millimetres", "millimeter"),
    "m": ("metre", "metres", "meter"),
    "kg": ("kilogram", "kilograms", "kilo"),
    "g": ("gram", "grams", "gram"),
    "ml": ("millilitre", "millilitres", "milliliter"),
    "l": ("litre", "litres", "liter"),
    "°c": ("degree celsius", "degrees celsius", "graden celsius"),
    "°": ("degree", "degrees", "graden"),
}
_AMOUNT = r"(\d+(?:[.,]\d+)*(?:\s(?:thousand|million|billion|duizend|miljoen|miljard))?)"
_SIGN = "[" + "".join(re.escape(c) for c in _SIGNS) + "]"
_SIGN_FIRST = re.compile(rf"({_SIGN})\s?{_AMOUNT}")
_SIGN_AFTER = re.compile(rf"{_AMOUNT}\s?({_SIGN})")
_UNIT_AFTER = re.compile(rf"{_AMOUNT}\s?({'|'.join(re.escape(u) for u in _UNITS)})(?![a-z])")


def _say(words: tuple[str, str, str], amount: str, language: str) -> str:
    word = words[2] if _lang(language) == "nl" else words[0] if amount == "1" else words[1]
    return f" {amount} {word} "


def _symbols(text: str, language: str) -> str:
    """Currency signs and units beside a number → the number, then the word (see the module docstring)."""
    text = _SIGN_FIRST.sub(lambda m: _say(_SIGNS[m.group(1)], m.group(2), language), text)
    text = _SIGN_AFTER.sub(lambda m: _say(_SIGNS[m.group(2)], m.group(1), language), text)
    text = _UNIT_AFTER.sub(lambda m: _say(_UNITS[m.group(2)], m.group(1), language), text)
    for sign, words in (*_SIGNS.items(), ("%", _UNITS["%"])):  # a sign on its own
        text = text.replace(sign, f" {words[2] if _lang(language) == 'nl' else words[1]} ")
    return text


def _numbers(text: str, language: str, digits: str) -> str:
    if digits == "drop":
        return re.sub(r"\d+", " ", text)
    return _NUMBER.sub(lambda m: f" {_spell(m.group(0), language)} ", text)


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
    t = _numbers(_symbols(t, language), language, digits)
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
