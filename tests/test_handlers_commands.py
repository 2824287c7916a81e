"""Tests for the small pure helpers of the handlers: commands, case codes, waits."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sobat_matrix import curhat
from sobat_matrix.commands import Command
from sobat_matrix.commands import parse as parse_command
from sobat_matrix.curhat import CODE_ALPHABET, new_code, waited
from sobat_matrix.handlers import Handlers
from sobat_matrix.matrix import NotEncrypted

LOOK_ALIKES = "0O1I"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("!terima", Command("terima", "")),
        ("!Terima 7F3K", Command("terima", "7F3K")),
        ("!TOLAK #7F3K", Command("tolak", "#7F3K")),
        ("  !selesai  ", Command("selesai", "")),
        ("!terima   7F3K  ", Command("terima", "7F3K")),
        ("!batal sekarang juga", Command("batal", "sekarang juga")),
        ("\n!statistik\n", Command("statistik", "")),
        ("terima", None),
        ("terima !selesai", None),
        ("", None),
        ("   ", None),
    ],
)
def test_parse_command(body: str, expected: Command | None) -> None:
    assert parse_command(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("!", None),
        ("!terima\n7F3K", Command("terima", "7F3K")),
        ("!terima\t7F3K", Command("terima", "7F3K")),
    ],
)
def test_parse_command_whitespace_and_bare_bang(
    body: str, expected: Command | None
) -> None:
    assert parse_command(body) == expected


def test_code_alphabet_has_no_look_alikes() -> None:
    assert not set(LOOK_ALIKES) & set(CODE_ALPHABET)
    assert CODE_ALPHABET.isupper() and CODE_ALPHABET.isalnum()
    assert len(set(CODE_ALPHABET)) == len(CODE_ALPHABET) == 32


def test_new_code_is_four_characters_of_the_alphabet() -> None:
    codes = [new_code() for _ in range(200)]

    for code in codes:
        assert len(code) == 4
        assert set(code) <= set(CODE_ALPHABET)
        assert not set(code) & set(LOOK_ALIKES)
    # 32**4 codes: 200 draws nearly never repeat, and never collapse to a few.
    assert len(set(codes)) > 150


def test_new_code_comes_from_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    picks = iter("ABCD")
    monkeypatch.setattr(curhat.secrets, "choice", lambda seq: next(picks))

    assert new_code() == "ABCD"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 dtk"),
        (0.9, "0 dtk"),
        (1, "1 dtk"),
        (59, "59 dtk"),
        (59.99, "59 dtk"),
        (60, "1 mnt"),
        (119, "1 mnt"),
        (600, "10 mnt"),
        (900.5, "15 mnt"),
        (3600, "60 mnt"),
    ],
)
def test_waited(seconds: float, text: str) -> None:
    assert waited(seconds) == text


async def test_a_refused_chat_is_left_even_when_the_reason_cannot_be_sent() -> None:
    """An unencrypted chat refused a second time: the encrypted send fails, yet the
    bot must not stay in a chat it stopped serving."""
    left: list[str] = []

    async def send(*args: object, **kwargs: object) -> None:
        raise NotEncrypted("!dm:kota.test")

    async def leave(room_id: str) -> None:
        left.append(room_id)

    handlers = Handlers.__new__(Handlers)
    handlers.rt = SimpleNamespace(  # type: ignore[assignment]
        text=lambda key, **kw: key,
        matrix=SimpleNamespace(send=send, leave=leave),
    )

    await handlers._say_and_leave("!dm:kota.test", "intake.not_private", False)

    assert left == ["!dm:kota.test"]
