"""Request bodies for the rooms the bot creates, built without I/O for tests to read.

Every room the bot creates is end-to-end encrypted from its first event, invite-only,
closed to guests and to federation, and carries a random ``token`` in its creation
event. The token is how a restarted bot finds a room whose ``createRoom`` answer it
never saw (Synapse can create the room and still answer with an error), so that a
restart never creates a second room for the same purpose.

Names are neutral: a case code at most, never anything about the person or the problem.
"""

from __future__ import annotations

from typing import Any

MEGOLM = "m.megolm.v1.aes-sha2"
TOKEN_KEY = "org.sobat_matrix.token"

# Power needed for everything that changes a room; only the bot has it.
ADMIN = 100
# A curhat room starts muted for everybody but the bot, so nobody can tell their
# story before the counsellor is in and able to read it (history is "joined" only).
MUTED = 50
TALK = 0

_STATE_EVENTS = (
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


def privileged_creators(room_version: str) -> bool:
    """Whether a room version gives its creator unlimited power (MSC4289, v12 on).

    In such rooms the creator must not be listed in ``m.room.power_levels``.
    """
    try:
        return int(room_version) >= 12
    except ValueError:
        return room_version.startswith("org.matrix.hydra")


def power_levels(
    bot_user_id: str, room_version: str, *, events_default: int, talkers: dict[str, int]
) -> dict[str, Any]:
    """Power levels where the bot alone can invite, kick, redact and change state."""
    users = dict(talkers)
    if not privileged_creators(room_version):
        users[bot_user_id] = ADMIN

    return {
        "users": users,
        "users_default": TALK,
        "events_default": events_default,
        "state_default": ADMIN,
        "invite": ADMIN,
        "kick": ADMIN,
        "ban": ADMIN,
        "redact": ADMIN,
        "events": {event_type: ADMIN for event_type in _STATE_EVENTS},
        "notifications": {"room": ADMIN},
    }


def _state(event_type: str, content: dict[str, Any]) -> dict[str, Any]:
    return {"type": event_type, "state_key": "", "content": content}


def _private_room(
    *,
    token: str,
    name: str,
    room_version: str,
    power: dict[str, Any],
    invite: list[str],
    is_direct: bool,
) -> dict[str, Any]:
    return {
        "visibility": "private",
        "preset": "private_chat",
        "name": name,
        "room_version": room_version,
        "is_direct": is_direct,
        "invite": invite,
        "creation_content": {"m.federate": False, TOKEN_KEY: token},
        "initial_state": [
            _state("m.room.encryption", {"algorithm": MEGOLM}),
            _state("m.room.join_rules", {"join_rule": "invite"}),
            _state("m.room.guest_access", {"guest_access": "forbidden"}),
            _state("m.room.history_visibility", {"history_visibility": "joined"}),
        ],
        "power_level_content_override": power,
    }


def curhat_room(
    *, code: str, token: str, bot_user_id: str, room_version: str
) -> dict[str, Any]:
    """The room of one curhat: nobody invited yet, everybody but the bot muted."""
    return _private_room(
        token=token,
        name=f"Curhat #{code}",
        room_version=room_version,
        power=power_levels(bot_user_id, room_version, events_default=MUTED, talkers={}),
        invite=[],
        is_direct=False,
    )


def staff_room(
    *,
    name: str,
    token: str,
    bot_user_id: str,
    room_version: str,
    members: list[str],
    invite: bool,
) -> dict[str, Any]:
    """A counsellor's duty room or the supervisors' room: members talk, bot rules."""
    return _private_room(
        token=token,
        name=name,
        room_version=room_version,
        power=power_levels(bot_user_id, room_version, events_default=TALK, talkers={}),
        invite=members if invite else [],
        is_direct=len(members) == 1,
    )


def opened_power_levels(current: dict[str, Any]) -> dict[str, Any]:
    """Power levels that let the members of a curhat room talk."""
    return {**current, "events_default": TALK}


def closed_power_levels(current: dict[str, Any]) -> dict[str, Any]:
    """Power levels of a closed curhat room: nobody but the bot can post anything."""
    return {
        **current,
        "events_default": ADMIN,
        "users": {
            user: level
            for user, level in current.get("users", {}).items()
            if level >= ADMIN
        },
    }
