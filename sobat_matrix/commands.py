"""Which chat command each kind of person may use, and in which room.

One table decides for every handler, so the rules can be read in one place and
tested as a matrix of command by role and room. The answer is one of:

- ``RUN``: this person may use the command here;
- ``REFUSE``: the command is not theirs; they get one short line saying whose it is;
- ``IGNORE``: the command is theirs but not in this room, or the person has no role
  here at all (a stranger in the supervisors' room): nothing happens, nothing is said;
- ``UNKNOWN``: not a command the bot knows; the room's handler decides (help in a staff
  room, an intake answer in a direct chat, nothing in a curhat room).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# The roles and rooms the table speaks of.
WARGA = "warga"
COUNSELLOR = "counsellor"
SUPERVISOR = "supervisor"
NOBODY = "nobody"

DIRECT = "direct"
CURHAT = "curhat"
DUTY = "duty"
SUPERVISORS = "supervisors"


class Verdict(enum.Enum):
    RUN = "run"
    REFUSE = "refuse"
    IGNORE = "ignore"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Command:
    """``!name arg`` as typed; ``name`` in lower case."""

    name: str
    arg: str


@dataclass(frozen=True)
class Rule:
    role: str
    room: str


RULES: dict[str, Rule] = {
    "batal": Rule(WARGA, DIRECT),
    # Forget me: everything the bot holds about this warga (see handlers).
    "hapus": Rule(WARGA, DIRECT),
    "selesai": Rule(WARGA, CURHAT),
    "alihkan": Rule(COUNSELLOR, CURHAT),
    "terima": Rule(COUNSELLOR, DUTY),
    "tolak": Rule(COUNSELLOR, DUTY),
    "siap": Rule(COUNSELLOR, DUTY),
    "istirahat": Rule(COUNSELLOR, DUTY),
    "status": Rule(COUNSELLOR, DUTY),
    "statistik": Rule(SUPERVISOR, SUPERVISORS),
    "antrean": Rule(SUPERVISOR, SUPERVISORS),
    "konselor": Rule(SUPERVISOR, SUPERVISORS),
    "pindah": Rule(SUPERVISOR, SUPERVISORS),
    "muat-ulang": Rule(SUPERVISOR, SUPERVISORS),
}
# Both people in a curhat may end it.
SHARED: dict[str, set[str]] = {"selesai": {WARGA, COUNSELLOR}}


def parse(body: str) -> Command | None:
    """``!name [arg]`` at the start of a message, else None."""
    words = body.split(maxsplit=1)
    if not words or not words[0].startswith("!") or len(words[0]) == 1:
        return None
    arg = words[1].strip() if len(words) > 1 else ""
    return Command(words[0][1:].lower(), arg)


def decide(name: str, role: str, room: str) -> Verdict:
    """May ``role`` use ``!name`` in a room of kind ``room``?"""
    rule = RULES.get(name)
    if rule is None:
        return Verdict.UNKNOWN
    roles = SHARED.get(name, {rule.role})
    if role in roles:
        return Verdict.RUN if room == rule.room else Verdict.IGNORE
    if role == NOBODY:
        return Verdict.IGNORE
    return Verdict.REFUSE


def owner(name: str) -> str:
    """The role a refusal names: whose command this is."""
    return RULES[name].role
