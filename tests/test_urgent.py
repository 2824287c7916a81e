"""Tests for noticing urgent words however a warga in distress spells them."""

from __future__ import annotations

import time

import pytest

from sobat_matrix.urgent import UrgentMatcher, fold

PHRASES = (
    "bunuh diri",
    "ingin mati",
    "mau mati aja",
    "melukai diri",
    "dipukuli",
    "hayang paeh",
    "kill myself",
    "suicide",
)
MATCHER = UrgentMatcher(PHRASES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("aku ingin bunuh diri", True, id="plain"),
        pytest.param("Aku mau BUNUH DIRI", True, id="upper-case"),
        pytest.param("bunuhdiri saja", True, id="no-space"),
        pytest.param("bunuh   diri", True, id="extra-spaces"),
        pytest.param("bunuh\ndiri", True, id="line-break"),
        pytest.param("b.u.n.u.h diri", True, id="dots-between-letters"),
        pytest.param("b-u-n-u-h-d-i-r-i", True, id="dashes-between-letters"),
        pytest.param("bu\u200bnuh di\u00adri", True, id="zero-width-and-soft-hyphen"),
        pytest.param("bunuh\x07 diri", True, id="control-character"),
        pytest.param("pengen ingin matiii", True, id="repeated-letters"),
        pytest.param("iiingin maatiiii", True, id="repeats-everywhere"),
        pytest.param("1ngin m4t1", True, id="leet-digits"),
        pytest.param("5uicide", True, id="leet-five"),
        pytest.param("mau m@ti aja", True, id="at-sign"),
        pytest.param("bunúh dirì", True, id="accents"),
        pytest.param("ｂｕｎｕｈ ｄｉｒｉ", True, id="full-width"),
        pytest.param("hayang paéh wae", True, id="sundanese"),
        pytest.param("I want to KILL MYSELF.", True, id="english"),
        pytest.param("I want to kilmyself", True, id="english-squashed"),
        pytest.param("sering dipukuli suami", True, id="one-word"),
        pytest.param("ingin matinya", True, id="suffix"),
        pytest.param("tolong, (bunuh-diri)!", True, id="punctuation-around"),
        pytest.param("matikan lampu", False, id="matikan-lampu"),
        pytest.param("mati lampu dari tadi", False, id="mati-lampu"),
        pytest.param("lapar", False, id="lapar"),
        pytest.param("tes", False, id="tes"),
        pytest.param("", False, id="empty"),
        pytest.param("pemati rasa", False, id="inside-a-word"),
        pytest.param("Adi pukul ini", False, id="squashed-not-at-a-word-start"),
        pytest.param("saya ingin makan", False, id="ingin-something-else"),
        pytest.param("sayabunuh diri", False, id="glued-to-the-word-before"),
    ],
)
def test_matches(text: str, expected: bool) -> None:
    assert MATCHER.matches(text) is expected


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("  Bunuh   DIRI!! ", "bunuh diri"),
        ("tolooong", "tolong"),
        ("m4t1", "mati"),
        ("café", "cafe"),
        ("a\u200bb", "ab"),
        ("a\tb", "a b"),
        ("...", ""),
    ],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_short_phrases_are_not_looked_for_without_spaces() -> None:
    """A short phrase squashed would turn up inside unrelated words."""
    short = UrgentMatcher(["ga ada"])
    long = UrgentMatcher(["ga ada lagi"])

    assert short.matches("sudah ga ada")
    assert not short.matches("sudah gaada")
    assert long.matches("sudah gaadalagi")


def test_no_phrases_match_nothing() -> None:
    assert not UrgentMatcher([]).matches("bunuh diri")
    assert not UrgentMatcher(["!!!"]).matches("!!!")


def test_a_long_message_is_searched_quickly() -> None:
    filler = "saya sedang bercerita tentang hari ini, lampu mati lagi. " * 900
    text = filler[:50_000]
    assert len(text) == 50_000
    late = text[:-20] + " ingin mati"

    best_s = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        assert not MATCHER.matches(text)
        assert MATCHER.matches(late)
        best_s = min(best_s, time.perf_counter() - start)
    assert best_s < 0.1


def test_a_long_message_that_is_not_ascii_is_searched_quickly() -> None:
    text = ("kopi é ☕ " * 6000)[:50_000] + "\u200b"

    start = time.perf_counter()
    assert not MATCHER.matches(text)
    assert time.perf_counter() - start < 0.2
