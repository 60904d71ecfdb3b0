"""Transcript normalization (thesis: Dutch and English) and the letter vocabulary of CTC fine-tuning."""

from __future__ import annotations

import pytest

from curate.w2v2 import text as txt


@pytest.mark.parametrize(
    ("raw", "language", "expected"),
    [
        # English: case, punctuation, hyphens → spaces; apostrophes kept inside words; quotes removed.
        ("Hello, World!", "en", "hello world"),
        ("It's a well-known fact.", "en", "it's a well known fact"),
        ("'Quoted' words: 'don't'", "en", "quoted words don't"),
        ("Café naïve façade", "en", "cafe naive facade"),
        ("I have 3 cats and 21 dogs", "en", "i have three cats and twenty one dogs"),
        ("In 1984, 105 people", "en", "in nineteen eighty four one hundred and five people"),  # a year reads as one
        ("1999 and 2000", "en", "nineteen ninety nine and two thousand"),
        ("Pi is 3.14", "en", "pi is three point one four"),
        ("1,000,000 on the 21st", "en", "one million on the twenty first"),
        # Currency signs, % and units are said after their number, as words.
        ("It costs €5, not $1.", "en", "it costs five euros not one dollar"),
        ("$1.5 million", "en", "one point five million dollars"),
        ("Het kost € 20 of 3 £", "nl", "het kost twintig euro of drie pond"),
        ("20% van de kijkers, 5 %", "nl", "twintig procent van de kijkers vijf procent"),
        ("30 km/h, 12 kg at 21 °C", "en", "thirty kilometres per hour twelve kilograms at twenty one degrees celsius"),
        ("5 m long, 1 man", "en", "five metres long one man"),
        ("the % sign", "en", "the percent sign"),
        ("call 0612", "en", "call zero six one two"),
        ("ROCK–N–ROLL…  yeah", "en", "rock n roll yeah"),
        # Dutch: accents to ASCII, clitics 's 't 'n kept, plural apostrophes kept, numbers as one word.
        ("Één café, twee cafés!", "nl", "een cafe twee cafes"),
        ("Hij zegt: 's Avonds eet ik 't liefst auto's.", "nl", "hij zegt 's avonds eet ik 't liefst auto's"),
        ("Zo’n mooie dag", "nl", "zo'n mooie dag"),
        ("Noord-Holland en Zuid-Holland", "nl", "noord holland en zuid holland"),
        ("ruïne, coördinatie, België", "nl", "ruine coordinatie belgie"),
        ("Er waren 21 mensen en 123 katten", "nl", "er waren eenentwintig mensen en honderddrieentwintig katten"),
        ("Op 2 juni 2024", "nl", "op twee juni tweeduizendvierentwintig"),
        ("3,5 procent voor de 3de keer", "nl", "drie komma vijf procent voor de derde keer"),
        ("42 Jahre, \ufffd 7", "de", "zweiundvierzig jahre sieben"),  # U+FFFD goes; other languages
        ("7 sagot", "xx", "seven sagot"),  # num2words lacks it: English
        ("Straße Ærø", "nl", "strasse aero"),
        ("", "nl", ""),
        ("?!-", "en", ""),
    ],
)
def test_normalize_table(raw, language, expected):
    got = txt.normalize(raw, language)
    assert got == expected
    assert set(got) <= set("abcdefghijklmnopqrstuvwxyz' ")


def test_digits_can_be_dropped():
    assert txt.normalize("Room 101 is free", "en", digits="drop") == "room is free"
    with pytest.raises(ValueError, match="digits"):
        txt.normalize("x", "en", digits="keep")


@pytest.mark.parametrize(
    ("n", "to", "en", "nl"),
    [
        (0, "cardinal", "zero", "nul"),
        (99, "cardinal", "ninety-nine", "negenennegentig"),
        (1000, "cardinal", "one thousand", "duizend"),
        (1999, "year", "nineteen ninety-nine", "negentien honderd negenennegentig"),
        (3, "ordinal", "third", "derde"),
        ("3.5", "cardinal", "three point five", "drie komma vijf"),
    ],
)
def test_spell_number(n, to, en, nl):
    assert txt.spell_number(n, "en", to) == en
    assert txt.spell_number(n, "nl", to) == nl


def test_vocabulary_and_greedy_decoding():
    assert len(txt.VOCAB) == 29 and txt.VOCAB[0] == txt.BLANK and txt.VOCAB[1] == "|"
    ids = txt.encode("don't go")
    assert txt.decode(ids) == "don't go"
    # CTC greedy: repeats collapse unless separated by a blank; blanks vanish.
    d, o, g = txt.INDEX["d"], txt.INDEX["o"], txt.INDEX["g"]
    assert txt.ctc_greedy([0, g, g, 0, o, o, 0, 0, o, 1, 1, d, 0]) == "goo d"
    with pytest.raises(ValueError, match="normalize"):
        txt.encode("Capital")
