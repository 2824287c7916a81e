"""Tests for the room bodies and power levels the bot sends, built without I/O."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sobat_matrix import rooms

BOT = "@sobat:sukabumi.test"
RINA = "@rina:sukabumi.test"
BUDI = "@budi:sukabumi.test"
WARGA = "@warga:sukabumi.test"
TOKEN = "tok-3f9a"

# Every state event a member could use to change what the room is or who sees it.
STATE_EVENTS = (
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.power_levels",
    "m.room.history_visibility",
    "m.room.encryption",
    "m.room.join_rules",
    "m.room.guest_access",
    "m.room.canonical_alias",
    "m.room.server_acl",
    "m.room.tombstone",
    "m.room.pinned_events",
    "m.space.parent",
    "m.space.child",
)


def curhat(room_version: str = "11", code: str = "7F3K") -> dict[str, Any]:
    return rooms.curhat_room(
        code=code, token=TOKEN, bot_user_id=BOT, room_version=room_version
    )


def staff(
    members: list[str], *, invite: bool, room_version: str = "11"
) -> dict[str, Any]:
    return rooms.staff_room(
        name="Sobat: tugas",
        token=TOKEN,
        bot_user_id=BOT,
        room_version=room_version,
        members=members,
        invite=invite,
    )


def initial_state(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The initial state events of a body by type, checking each is room-wide."""
    by_type = {}
    for event in body["initial_state"]:
        assert event["state_key"] == ""
        by_type[event["type"]] = event["content"]
    return by_type


BODIES = [
    pytest.param(lambda v: curhat(v), id="curhat"),
    pytest.param(lambda v: staff([RINA], invite=True, room_version=v), id="duty"),
    pytest.param(
        lambda v: staff([RINA, BUDI], invite=False, room_version=v), id="supervisors"
    ),
]
VERSIONS = ["10", "11", "12"]


# -- what every room the bot creates has in common ---------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("make", BODIES)
def test_room_is_encrypted_from_its_first_event(make: Any, version: str) -> None:
    state = initial_state(make(version))

    assert state["m.room.encryption"] == {"algorithm": "m.megolm.v1.aes-sha2"}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("make", BODIES)
def test_room_is_closed_to_everyone_not_invited(make: Any, version: str) -> None:
    body = make(version)
    state = initial_state(body)

    assert body["visibility"] == "private"
    assert body["preset"] == "private_chat"
    assert state["m.room.join_rules"] == {"join_rule": "invite"}
    assert state["m.room.guest_access"] == {"guest_access": "forbidden"}
    assert state["m.room.history_visibility"] == {"history_visibility": "joined"}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("make", BODIES)
def test_creation_content_stops_federation_and_carries_the_token(
    make: Any, version: str
) -> None:
    body = make(version)

    assert body["room_version"] == version
    assert body["creation_content"] == {
        "m.federate": False,
        "org.sobat_matrix.token": TOKEN,
    }


# -- the curhat room -----------------------------------------------------------------


@pytest.mark.parametrize("code", ["7F3K", "ABCD", "2345"])
def test_curhat_room_has_a_neutral_name_and_no_topic(code: str) -> None:
    body = curhat(code=code)

    assert body["name"] == f"Curhat #{code}"
    assert "topic" not in body
    assert "m.room.topic" not in initial_state(body)


def test_curhat_room_invites_nobody() -> None:
    body = curhat()

    assert body["invite"] == []
    assert body["is_direct"] is False
    assert "invite_3pid" not in body


@pytest.mark.parametrize("version", VERSIONS)
def test_curhat_room_is_muted_until_the_counsellor_is_in(version: str) -> None:
    power = curhat(version)["power_level_content_override"]

    assert power["events_default"] == 50
    assert power["users_default"] == 0
    assert power["users_default"] < power["events_default"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "key", ["invite", "kick", "ban", "redact", "state_default"], ids=str
)
def test_only_the_bot_may_change_the_room(version: str, key: str) -> None:
    power = curhat(version)["power_level_content_override"]

    assert power[key] == 100


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("event_type", STATE_EVENTS)
def test_every_state_event_needs_admin_power(version: str, event_type: str) -> None:
    power = curhat(version)["power_level_content_override"]

    assert power["events"][event_type] == 100


@pytest.mark.parametrize(
    ("version", "users"),
    [
        pytest.param("10", {BOT: 100}, id="v10-bot-listed"),
        pytest.param("11", {BOT: 100}, id="v11-bot-listed"),
        pytest.param("12", {}, id="v12-privileged-creator-omitted"),
    ],
)
def test_bot_is_listed_only_where_the_creator_is_not_privileged(
    version: str, users: dict[str, int]
) -> None:
    power = curhat(version)["power_level_content_override"]

    assert power["users"] == users


@pytest.mark.parametrize(
    ("version", "privileged"),
    [
        ("1", False),
        ("10", False),
        ("11", False),
        ("12", True),
        ("13", True),
        ("org.matrix.hydra.11", True),
        ("org.matrix.msc1234", False),
    ],
)
def test_privileged_creators(version: str, privileged: bool) -> None:
    assert rooms.privileged_creators(version) is privileged


# -- changing a curhat room's power levels -----------------------------------------


def current_power(version: str) -> dict[str, Any]:
    """Power levels as the server would hold them once both people are in."""
    power = copy.deepcopy(curhat(version)["power_level_content_override"])
    power["users"].update({RINA: 50, WARGA: 0})
    return power


@pytest.mark.parametrize("version", VERSIONS)
def test_opened_power_levels_let_members_talk_and_keep_the_rest(version: str) -> None:
    current = current_power(version)
    before = copy.deepcopy(current)

    opened = rooms.opened_power_levels(current)

    assert opened["events_default"] == 0
    assert {k: v for k, v in opened.items() if k != "events_default"} == {
        k: v for k, v in before.items() if k != "events_default"
    }
    assert current == before


@pytest.mark.parametrize(
    ("version", "users"),
    [
        pytest.param("11", {BOT: 100}, id="v11"),
        pytest.param("12", {}, id="v12"),
    ],
)
def test_closed_power_levels_silence_everybody_but_admins(
    version: str, users: dict[str, int]
) -> None:
    current = current_power(version)
    before = copy.deepcopy(current)

    closed = rooms.closed_power_levels(current)

    assert closed["events_default"] == 100
    assert closed["users"] == users
    unchanged = {
        k: v for k, v in before.items() if k not in ("events_default", "users")
    }
    assert {k: closed[k] for k in unchanged} == unchanged
    assert current == before


def test_closed_power_levels_without_users() -> None:
    closed = rooms.closed_power_levels({"events_default": 0})

    assert closed == {"events_default": 100, "users": {}}


# -- staff rooms -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "invite", "invited", "is_direct"),
    [
        pytest.param([RINA], True, [RINA], True, id="duty-invite"),
        pytest.param([RINA], False, [], True, id="duty-no-invite"),
        pytest.param([RINA, BUDI], True, [RINA, BUDI], False, id="group-invite"),
        pytest.param([RINA, BUDI], False, [], False, id="group-no-invite"),
        pytest.param([], True, [], False, id="nobody"),
    ],
)
def test_staff_room_invites_and_directness(
    members: list[str], invite: bool, invited: list[str], is_direct: bool
) -> None:
    body = staff(members, invite=invite)

    assert body["invite"] == invited
    assert body["is_direct"] is is_direct


@pytest.mark.parametrize(
    ("version", "users"), [("11", {BOT: 100}), ("12", {})], ids=["v11", "v12"]
)
def test_staff_room_members_talk_and_the_bot_rules(
    version: str, users: dict[str, int]
) -> None:
    body = staff([RINA, BUDI], invite=True, room_version=version)
    power = body["power_level_content_override"]

    assert body["name"] == "Sobat: tugas"
    assert power["events_default"] == 0
    assert power["users"] == users
    assert power["state_default"] == power["invite"] == power["kick"] == 100
