"""The card page's words: both languages have every key; Accept-Language with q-values."""

from __future__ import annotations

from gateway.card import i18n


def test_both_languages_have_the_same_words() -> None:
    assert set(i18n.EN) == set(i18n.RU)


def test_accept_language_picks_the_preferred_supported_language() -> None:
    assert i18n.from_accept_language("ru-RU,ru;q=0.9,en;q=0.8") == "ru"
    assert i18n.from_accept_language("de-DE,en;q=0.5,ru;q=0.7") == "ru"
    assert i18n.from_accept_language("fr, de") == "en"
    assert i18n.from_accept_language("ru;q=0") == "en"
    assert i18n.choose("en", "ru") == "en"


def test_russian_plurals_of_points() -> None:
    words = i18n.Words("ru")
    assert [words.points(n) for n in (1, 2, 5, 11, 21, 1_500)] == [
        "1 балл",
        "2 балла",
        "5 баллов",
        "11 баллов",
        "21 балл",
        "1\u00a0500 баллов",
    ]
