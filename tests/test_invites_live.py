"""On the real Synapse, the bot declines invites it has no business in, unjoined.

A warga can mark any invite ``is_direct``. A public room, a space or a room where
a group has already gathered is declined from the invite alone: the bot's
membership goes from invite to leave and never passes through join, so it neither
becomes a visible member nor says anything there. A direct chat from the same
warga is still served.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nio import RoomCreateResponse, RoomPreset, RoomVisibility

from sobat_matrix.devserver import DevServer
from sobat_matrix.devtools import Actor

from .botkit import BotWorld, LogCapture, make_world

pytestmark = pytest.mark.integration

ROOM_NAME = "Pasar Kota Sukabumi"


@pytest.fixture
async def world(synapse: DevServer, tmp_path: Path) -> AsyncIterator[BotWorld]:
    world = await make_world(synapse, tmp_path)
    yield world
    await world.close()


@pytest.fixture
def capture() -> Iterator[LogCapture]:
    handler = LogCapture()
    ours = logging.getLogger("sobat_matrix")
    old_level = ours.level
    ours.addHandler(handler)
    ours.setLevel(logging.DEBUG)
    yield handler
    ours.removeHandler(handler)
    ours.setLevel(old_level)


async def created(actor: Actor, **kwargs: object) -> str:
    resp = await actor.client.room_create(**kwargs)  # type: ignore[arg-type]
    assert isinstance(resp, RoomCreateResponse), resp
    return str(resp.room_id)


async def memberships(
    synapse: DevServer, reader: Actor, room_id: str, user_id: str
) -> list[str]:
    """Every membership ``user_id`` had in the room, oldest first."""
    events = await synapse.raw_messages(reader.access_token, room_id)
    return [
        e["content"]["membership"]
        for e in events
        if e["type"] == "m.room.member" and e["state_key"] == user_id
    ]


async def wait_left(
    synapse: DevServer, reader: Actor, room_id: str, user_id: str
) -> list[str]:
    async with asyncio.timeout(60):
        while True:
            history = await memberships(synapse, reader, room_id, user_id)
            if history[-1:] == ["leave"]:
                return history
            await asyncio.sleep(0.3)


async def crowded_room(world: BotWorld, bot: str) -> str:
    """An invite-only room where three have joined, then the bot invited as direct.

    The invite is a membership state event so that it can carry ``is_direct``
    after the others have joined (the invite endpoint has no such field).
    """
    warga = world.warga
    others = [world.counsellors["a"], world.counsellors["b"]]
    room_id = await created(
        warga,
        preset=RoomPreset.private_chat,
        invite=[x.user_id for x in others],
    )
    for other in others:
        await other.wait_joined(room_id)
    resp = await warga.client.room_put_state(
        room_id,
        "m.room.member",
        {"membership": "invite", "is_direct": True},
        state_key=bot,
    )
    assert getattr(resp, "event_id", None), resp
    return room_id


async def test_public_space_and_crowded_invites_are_declined_unjoined(
    synapse: DevServer, world: BotWorld, capture: LogCapture
) -> None:
    await world.start_bot()
    bot = world.stage.bot.user_id
    warga = world.warga

    public = await created(
        warga,
        visibility=RoomVisibility.public,
        preset=RoomPreset.public_chat,
        is_direct=True,
        invite=[bot],
        name=ROOM_NAME,
    )
    space = await created(warga, space=True, is_direct=True, invite=[bot])
    crowded = await crowded_room(world, bot)

    # The same warga's direct chat is served meanwhile.
    dm = await warga.start_direct_chat(bot)
    await warga.wait_for_text("selamat datang", room_id=dm, timeout=60)

    for room_id in (public, space, crowded):
        assert await wait_left(synapse, warga, room_id, bot) == ["invite", "leave"]
        said = [e for e in warga.received if e.room_id == room_id]
        assert [e for e in said if e.type != "m.room.member"] == []

    log = capture.text()
    assert f"declining invite to room {public} (not_invite_only)" in log
    assert f"declining invite to room {space} (room_type)" in log
    assert f"declining invite to room {crowded} (crowded)" in log
    assert f"joined direct chat {dm}" in log
    assert ROOM_NAME not in log and warga.user_id not in log
