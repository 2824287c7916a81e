"""Which invites the bot joins, decided from the stripped state alone.

The stripped states below have the shape Synapse 1.163 sends by default (checked
against the test Synapse): an Element "Start chat" carries the creation event, the
join rules, the encryption, the inviter's membership and the invite with
``is_direct``; a public room carries its name instead of the encryption; a space
has ``type: m.space`` in its creation event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import pytest

from sobat_matrix import invites
from sobat_matrix.service import Service

BOT = "@sobat:kota.test"
WARGA = "@warga:kota.test"
ALLOWED = {"kota.test", "kota-lain.test"}


def may_open_chat(user_id: str) -> bool:
    return user_id.partition(":")[2] in ALLOWED


def event(type_: str, content: dict[str, Any], *, key: str = "") -> dict[str, Any]:
    return {"type": type_, "state_key": key, "sender": WARGA, "content": content}


def stripped(
    *,
    inviter: str = WARGA,
    is_direct: object = True,
    join_rule: str | None = "invite",
    room_type: str | None = None,
    membership: str = "invite",
    name: str | None = None,
) -> list[dict[str, Any]]:
    """A stripped invite state, Element's direct chat unless told otherwise."""
    create: dict[str, Any] = {"room_version": "12"}
    if room_type is not None:
        create["type"] = room_type
    state = [event("m.room.create", create)]
    if join_rule is not None:
        state.append(event("m.room.join_rules", {"join_rule": join_rule}))
    state.append(event("m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}))
    if name is not None:
        state.append(event("m.room.name", {"name": name}))
    state.append(event("m.room.member", {"membership": "join"}, key=inviter))

    invite: dict[str, Any] = {"membership": membership}
    if is_direct is not None:
        invite["is_direct"] = is_direct
    state.append(
        {
            "type": "m.room.member",
            "state_key": BOT,
            "sender": inviter,
            "content": invite,
        }
    )
    return state


CASES = [
    ("element direct chat", stripped(), None, invites.DIRECT_CHAT),
    (
        "direct chat from an allowed server",
        stripped(inviter="@warga:kota-lain.test"),
        None,
        invites.DIRECT_CHAT,
    ),
    (
        "direct chat from a server not allowed",
        stripped(inviter="@warga:evil.test"),
        None,
        invites.SERVER_NOT_ALLOWED,
    ),
    ("not marked direct", stripped(is_direct=None), None, invites.NOT_DIRECT),
    ("is_direct false", stripped(is_direct=False), None, invites.NOT_DIRECT),
    ("is_direct not a boolean", stripped(is_direct="yes"), None, invites.NOT_DIRECT),
    (
        "public room marked direct",
        stripped(join_rule="public", name="Pasar Kota"),
        None,
        invites.NOT_INVITE_ONLY,
    ),
    ("knock room", stripped(join_rule="knock"), None, invites.NOT_INVITE_ONLY),
    (
        "restricted room",
        stripped(join_rule="restricted"),
        None,
        invites.NOT_INVITE_ONLY,
    ),
    ("space marked direct", stripped(room_type="m.space"), None, invites.ROOM_TYPE),
    (
        "public space from a server not allowed",
        stripped(inviter="@x:evil.test", join_rule="public", room_type="m.space"),
        None,
        invites.SERVER_NOT_ALLOWED,
    ),
    ("no join rules shared", stripped(join_rule=None), None, invites.DIRECT_CHAT),
    ("the inviter alone joined", stripped(), 1, invites.DIRECT_CHAT),
    ("the inviter and one more joined", stripped(), 2, invites.DIRECT_CHAT),
    ("three joined already", stripped(), 3, invites.CROWDED),
    ("a crowd joined already", stripped(), 500, invites.CROWDED),
    ("a public crowd", stripped(join_rule="public"), 500, invites.NOT_INVITE_ONLY),
]


@pytest.mark.parametrize(
    ("state", "joined", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decision(state: list[dict[str, Any]], joined: int | None, reason: str) -> None:
    verdict = invites.decide(
        state, bot=BOT, may_open_chat=may_open_chat, joined_members=joined
    )

    assert verdict is not None
    assert verdict.reason == reason
    assert verdict.join is (reason == invites.DIRECT_CHAT)
    assert verdict.inviter == state[-1]["sender"]


@pytest.mark.parametrize(
    "state",
    [
        [],
        stripped(membership="join"),
        stripped(membership="leave"),
        stripped()[:-1],
        [{"type": "m.room.member", "state_key": BOT, "content": "invite"}],
        [
            {
                "type": "m.room.member",
                "state_key": BOT,
                "content": {"membership": "invite"},
            }
        ],
    ],
    ids=[
        "empty",
        "already joined",
        "left",
        "no invite of the bot",
        "content not an object",
        "invite without sender",
    ],
)
def test_nothing_to_decide(state: list[dict[str, Any]]) -> None:
    assert invites.decide(state, bot=BOT, may_open_chat=may_open_chat) is None


def test_an_invite_of_someone_else_is_not_the_bots() -> None:
    state = stripped()
    state[-1] = {**state[-1], "state_key": "@orang-lain:kota.test"}

    assert invites.decide(state, bot=BOT, may_open_chat=may_open_chat) is None


class FakeMatrix:
    """Records requests; each one waits until the test lets it through."""

    def __init__(self, joined: int | None = 1) -> None:
        self.joined = joined
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.paths: list[str] = []

    async def request(
        self, method: str, path: str, body: object = None, *, what: str
    ) -> dict[str, Any]:
        self.paths.append(path)
        self.entered.set()
        await self.release.wait()
        return {}

    async def joined_count(self, room_id: str, via: str) -> int | None:
        assert via == "kota.test"
        return self.joined


class FakeStore:
    def __init__(self) -> None:
        self.chats: list[tuple[str, str]] = []

    @contextlib.asynccontextmanager
    async def tx(self) -> AsyncIterator[FakeStore]:
        yield self

    async def add_direct_chat(self, room_id: str, warga: str) -> None:
        self.chats.append((room_id, warga))


def service_with(matrix: FakeMatrix) -> tuple[Service, FakeStore]:
    store = FakeStore()
    service = Service(cast(Any, None), cast(Any, None))
    config = SimpleNamespace(may_open_chat=may_open_chat)
    service.rt = cast(
        Any, SimpleNamespace(bot=BOT, config=config, matrix=matrix, store=store)
    )
    return service, store


async def test_a_decline_waits_in_the_background_not_in_the_sync() -> None:
    matrix = FakeMatrix()
    service, _ = service_with(matrix)
    state = stripped(join_rule="public")

    handled = asyncio.create_task(service._on_invite("!pasar:kota.test", state))
    await matrix.entered.wait()
    # The decline is under way and held; the handler has already returned.
    assert handled.done() and handled.exception() is None
    await service._on_invite("!pasar:kota.test", state)  # the next sync, again
    assert len(service.tasks) == 1

    matrix.release.set()
    await service.tasks.cancel_all()
    assert matrix.paths == ["/_matrix/client/v3/rooms/%21pasar%3Akota.test/leave"]


@pytest.mark.parametrize(
    ("joined", "chats", "path"),
    [
        (1, [("!dm:kota.test", WARGA)], "/_matrix/client/v3/join/%21dm%3Akota.test"),
        (None, [("!dm:kota.test", WARGA)], "/_matrix/client/v3/join/%21dm%3Akota.test"),
        (3, [], "/_matrix/client/v3/rooms/%21dm%3Akota.test/leave"),
    ],
    ids=["the inviter alone", "no summary", "a crowd"],
)
async def test_the_joined_count_decides_between_join_and_decline(
    joined: int | None, chats: list[tuple[str, str]], path: str
) -> None:
    matrix = FakeMatrix(joined)
    matrix.release.set()
    service, store = service_with(matrix)

    await service._on_invite("!dm:kota.test", stripped())
    await matrix.entered.wait()
    await service.tasks.cancel_all()

    assert matrix.paths == [path]
    assert store.chats == chats
