"""Tests for loraroute.data.text: the two meanings of "the same text"."""

from __future__ import annotations

from loraroute.data.text import duplicate_key, word_key


def test_word_key_folds_case_punctuation_underscores_and_space():
    assert word_key("  What's   THE answer?\n(Pick one) ") == "what s the answer pick one"
    assert word_key("snake_case-name") == "snake case name"


def test_word_key_folds_unicode_compatibility_forms_and_case_beyond_ascii():
    assert word_key("ﬁne—Café") == word_key("fine café")
    assert word_key("STRASSE") == word_key("straße")  # casefold, not lower: ß is ss
    assert word_key("Ｆｕｌｌｗｉｄｔｈ") == "fullwidth"


def test_word_key_keeps_words_of_other_scripts_and_digits():
    assert word_key("Привет, мир! 42") == "привет мир 42"
    assert word_key(None) == ""


def test_duplicate_key_folds_case_and_whitespace_but_not_punctuation():
    assert duplicate_key("  Is it\tTrue? ") == duplicate_key("is it true?")
    assert duplicate_key("Is it true?") != duplicate_key("Is it true!")
