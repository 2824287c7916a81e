"""Which invites the bot accepts, decided before it joins anything.

The bot joins only a warga's direct chat. Every room it needs besides those (curhat
rooms, duty rooms, the supervisors' room) it creates itself, so an invite is never
how it gets into one of its own rooms. The decision is made from what the invitee
can see before joining: the stripped state of the invite, which Synapse fills by
default (``room_prejoin_state``) with the creation event, the join rules, the
encryption, the name, avatar, topic and alias, the inviter's membership and the
invite itself; and, asked separately, how many people have joined already.

Joining a room has a cost that leaving does not undo: the bot syncs its state,
becomes a visible member, and in a public room could be made to post. So what is
not plainly a chat between the inviter and the bot is declined, quietly, and the
log holds the room ID and a reason code, never the room's name or topic, nor who
invited.

Some things are left to the checks after the join (``handlers.py``), which can
explain themselves to the warga: a direct chat that is not encrypted, or one with a
second person in it. An invite whose stripped state has no join rules at all
(a server configured not to share them) is taken as invite-only: the room cannot
be judged before joining, and the checks after the join still apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# More people joined than the inviter and one more: not a chat between two that
# went wrong, but a group, where the bot does not want even to explain itself.
MAX_JOINED_MEMBERS = 2

DIRECT_CHAT = "direct_chat"
NOT_DIRECT = "not_direct"
SERVER_NOT_ALLOWED = "server_not_allowed"
ROOM_TYPE = "room_type"
NOT_INVITE_ONLY = "not_invite_only"
CROWDED = "crowded"


@dataclass(frozen=True)
class Verdict:
    """Join or decline one invite; ``reason`` is one of the codes above, for logs."""

    join: bool
    reason: str
    inviter: str


def decide(
    invite_state: Iterable[dict[str, Any]],
    *,
    bot: str,
    may_open_chat: Callable[[str], bool],
    joined_members: int | None = None,
) -> Verdict | None:
    """The verdict on the bot's pending invite in this stripped state.

    ``invite_state`` holds raw stripped state events as the sync delivered them;
    ``joined_members`` is the room summary's count, when it was asked. None means
    there is nothing to decide: no invite of the bot is pending in that state.
    """
    state = {
        (e.get("type"), e.get("state_key")): e
        for e in invite_state
        if isinstance(e, dict) and isinstance(e.get("content"), dict)
    }
    invite = state.get(("m.room.member", bot))
    if invite is None or invite["content"].get("membership") != "invite":
        return None
    inviter = invite.get("sender")
    if not isinstance(inviter, str):
        return None

    def verdict(reason: str) -> Verdict:
        return Verdict(join=reason == DIRECT_CHAT, reason=reason, inviter=inviter)

    if not may_open_chat(inviter):
        return verdict(SERVER_NOT_ALLOWED)
    if invite["content"].get("is_direct") is not True:
        return verdict(NOT_DIRECT)

    # A space, or any other kind of room that is not a plain room.
    create = state.get(("m.room.create", ""))
    if create is not None and create["content"].get("type") is not None:
        return verdict(ROOM_TYPE)

    join_rules = state.get(("m.room.join_rules", ""))
    if join_rules is not None and join_rules["content"].get("join_rule") != "invite":
        return verdict(NOT_INVITE_ONLY)

    if joined_members is not None and joined_members > MAX_JOINED_MEMBERS:
        return verdict(CROWDED)
    return verdict(DIRECT_CHAT)
