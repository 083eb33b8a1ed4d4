"""One boolean parser, one word set: options, backup cells and service settings agree."""

import pytest

from fiwareglancesync.booleans import FALSE_WORDS, TRUE_WORDS, parse_bool


@pytest.mark.parametrize("word", sorted(TRUE_WORDS))
def test_true_words_in_any_case_and_spacing(word):
    for text in (word, word.upper(), word.capitalize(), f"  {word}\t"):
        assert parse_bool(text) is True


@pytest.mark.parametrize("word", sorted(FALSE_WORDS))
def test_false_words_in_any_case_and_spacing(word):
    for text in (word, word.upper(), word.capitalize(), f" {word} "):
        assert parse_bool(text) is False


def test_the_word_set_is_the_documented_one():
    assert sorted(TRUE_WORDS) == ["1", "on", "true", "yes"]
    assert sorted(FALSE_WORDS) == ["0", "false", "no", "off"]


@pytest.mark.parametrize("text", ["", "  ", "perhaps", "2", "y", "n", "truely", "none"])
def test_anything_else_is_refused_naming_the_words(text):
    with pytest.raises(ValueError) as raised:
        parse_bool(text)
    assert str(raised.value) == (
        f"{text.strip()!r} is not a boolean (use true/false, yes/no, on/off, 1/0)"
    )
