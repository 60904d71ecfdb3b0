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
        ("In 1984, 105 people", "en", "in one thousand nine hundred eighty four one hundred five people"),
        ("Pi is 3.14", "en", "pi is three fourteen"),
        ("call 0612", "en", "call zero six one two"),
        ("ROCK–N–ROLL…  yeah", "en", "rock n roll yeah"),
        # Dutch: accents to ASCII, clitics 's 't 'n kept, plural apostrophes kept, numbers as one word.
        ("Één café, twee cafés!", "nl", "een cafe twee cafes"),
        ("Hij zegt: 's Avonds eet ik 't liefst auto's.", "nl", "hij zegt 's avonds eet ik 't liefst auto's"),
        ("Zo’n mooie dag", "nl", "zo'n mooie dag"),
        ("Noord-Holland en Zuid-Holland", "nl", "noord holland en zuid holland"),
        ("ruïne, coördinatie, België", "nl", "ruine coordinatie belgie"),
        ("Er waren 21 mensen en 123 katten", "nl", "er waren eenentwintig mensen en honderddrieentwintig katten"),
        ("Op 2 juni 2024", "nl", "op twee juni tweeduizend vierentwintig"),
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
    ("n", "en", "nl"),
    [
        (0, "zero", "nul"),
        (13, "thirteen", "dertien"),
        (40, "forty", "veertig"),
        (99, "ninety nine", "negenennegentig"),
        (100, "one hundred", "honderd"),
        (1000, "one thousand", "duizend"),
        (2500, "two thousand five hundred", "tweeduizend vijfhonderd"),
        (1_000_000, "one million", "een miljoen"),
    ],
)
def test_spell_number(n, en, nl):
    assert txt.spell_number(n, "en") == en
    assert txt.spell_number(n, "nl") == nl


def test_vocabulary_and_greedy_decoding():
    assert len(txt.VOCAB) == 29 and txt.VOCAB[0] == txt.BLANK and txt.VOCAB[1] == "|"
    ids = txt.encode("don't go")
    assert txt.decode(ids) == "don't go"
    # CTC greedy: repeats collapse unless separated by a blank; blanks vanish.
    d, o, g = txt.INDEX["d"], txt.INDEX["o"], txt.INDEX["g"]
    assert txt.ctc_greedy([0, g, g, 0, o, o, 0, 0, o, 1, 1, d, 0]) == "goo d"
    with pytest.raises(ValueError, match="normalize"):
        txt.encode("Capital")
