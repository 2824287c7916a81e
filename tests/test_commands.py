"""The matrix of chat command by role and room: who may do what, where.

Written out in full on purpose: a change to the rules must change this table, so a
command that became usable by the wrong people shows up in review.
"""

from __future__ import annotations

import pytest

from sobat_matrix.commands import (
    COUNSELLOR,
    CURHAT,
    DIRECT,
    DUTY,
    NOBODY,
    RULES,
    SUPERVISOR,
    SUPERVISORS,
    WARGA,
    Command,
    Verdict,
    decide,
    parse,
)

R, F, X = Verdict.RUN, Verdict.REFUSE, Verdict.IGNORE  # run, refuse, ignore
ROLES = (WARGA, COUNSELLOR, SUPERVISOR, NOBODY)
ROOMS = (DIRECT, CURHAT, DUTY, SUPERVISORS)

# command -> role -> the verdict in each room, in ROOMS order.
MATRIX: dict[str, dict[str, tuple[Verdict, Verdict, Verdict, Verdict]]] = {
    **{
        name: {
            WARGA: (R, X, X, X),
            COUNSELLOR: (F, F, F, F),
            SUPERVISOR: (F, F, F, F),
            NOBODY: (X, X, X, X),
        }
        for name in ("batal", "hapus")
    },
    "selesai": {
        WARGA: (X, R, X, X),
        COUNSELLOR: (X, R, X, X),
        SUPERVISOR: (F, F, F, F),
        NOBODY: (X, X, X, X),
    },
    "alihkan": {
        WARGA: (F, F, F, F),
        COUNSELLOR: (X, R, X, X),
        SUPERVISOR: (F, F, F, F),
        NOBODY: (X, X, X, X),
    },
    **{
        name: {
            WARGA: (F, F, F, F),
            COUNSELLOR: (X, X, R, X),
            SUPERVISOR: (F, F, F, F),
            NOBODY: (X, X, X, X),
        }
        for name in ("terima", "tolak", "siap", "istirahat", "status")
    },
    **{
        name: {
            WARGA: (F, F, F, F),
            COUNSELLOR: (F, F, F, F),
            SUPERVISOR: (X, X, X, R),
            NOBODY: (X, X, X, X),
        }
        for name in ("statistik", "antrean", "konselor", "pindah", "muat-ulang")
    },
}


def test_the_matrix_covers_every_command() -> None:
    assert set(MATRIX) == set(RULES)


@pytest.mark.parametrize(
    ("name", "role", "room", "expected"),
    [
        (name, role, room, MATRIX[name][role][index])
        for name in MATRIX
        for role in ROLES
        for index, room in enumerate(ROOMS)
    ],
)
def test_command_by_role_and_room(
    name: str, role: str, room: str, expected: Verdict
) -> None:
    assert decide(name, role, room) is expected


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("room", ROOMS)
def test_unknown_commands_are_left_to_the_room(role: str, room: str) -> None:
    assert decide("hapus-semua", role, room) is Verdict.UNKNOWN


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("!muat-ulang", Command("muat-ulang", "")),
        ("!Pindah #7F3K keluarga", Command("pindah", "#7F3K keluarga")),
        ("!alihkan ketahanan keluarga", Command("alihkan", "ketahanan keluarga")),
        ("tolong !siap", None),
    ],
)
def test_parse(body: str, expected: Command | None) -> None:
    assert parse(body) == expected
