"""The bot's sends rotate the room key when membership changes.

A new member must not read what was said before they came (history is "joined"),
and someone who left must not read what is said after. So the next message after a
join or a leave goes out under a new megolm session, shared with exactly the members
of that moment. This drives the bot's own Matrix connection against Synapse with
real E2EE clients as members.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sobat_matrix import rooms
from sobat_matrix.devserver import DevServer
from sobat_matrix.devtools import Actor
from sobat_matrix.matrix import Matrix

pytestmark = pytest.mark.integration


@pytest.fixture
async def sender(synapse: DevServer, tmp_path: Path) -> AsyncIterator[Matrix]:
    """The bot's Matrix connection for a fresh account, syncing in the background."""
    password = secrets.token_urlsafe(12)
    user_id = await synapse.register_user(f"rot{secrets.token_hex(3)}", password)
    matrix = Matrix(
        synapse.url, user_id, tmp_path / "bot", device_name="t", pickle_key="k" * 32
    )
    await matrix.connect(password)

    async def sync_forever() -> None:
        token = None
        while True:
            resp = await matrix.sync(token, full_state=False, timeout_ms=500)
            token = resp.next_batch
            await matrix.housekeeping()

    task = asyncio.create_task(sync_forever())
    yield matrix
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await matrix.close()


async def members_known(matrix: Matrix, room_id: str, users: set[str]) -> None:
    async with asyncio.timeout(30):
        while True:
            room = matrix.client.rooms.get(room_id)
            if room is not None and set(room.users) - set(room.invited_users) == users:
                return
            await asyncio.sleep(0.1)


def sessions_of(actor: Actor, room_id: str) -> set[str]:
    olm = actor.client.olm
    assert olm is not None
    return {s.id for s in olm.inbound_group_store if s.room_id == room_id}


async def test_room_key_changes_with_membership(
    synapse: DevServer, sender: Matrix, make_actor
) -> None:  # type: ignore[no-untyped-def]
    a: Actor = await make_actor("ana")
    b: Actor = await make_actor("beni")
    version = await sender.default_room_version()
    room_id = await sender.create_room(
        rooms.staff_room(
            name="t",
            token="t",
            bot_user_id=sender.user_id,
            room_version=version,
            members=[a.user_id],
            invite=True,
        )
    )
    await a.wait_joined(room_id)
    await members_known(sender, room_id, {sender.user_id, a.user_id})

    async def say(text: str) -> str:
        await sender.send(
            room_id, {"msgtype": "m.notice", "body": text}, secrets.token_hex(8)
        )
        return text

    first = await say("satu")
    await a.wait_for_text(first, room_id=room_id)

    # B joins: the next message has a new session, which A and B both get.
    await sender.invite(room_id, b.user_id)
    await b.wait_joined(room_id)
    await members_known(sender, room_id, {sender.user_id, a.user_id, b.user_id})
    second = await say("dua")
    await a.wait_for_text(second, room_id=room_id)
    await b.wait_for_text(second, room_id=room_id)

    # A leaves: the next message has a new session, which A never receives.
    await a.client.room_leave(room_id)
    await members_known(sender, room_id, {sender.user_id, b.user_id})
    third = await say("tiga")
    await b.wait_for_text(third, room_id=room_id)

    # A saw the room until it left, B since it came: together, every event.
    seen = await synapse.raw_messages(a.access_token, room_id)
    seen += await synapse.raw_messages(b.access_token, room_id)
    raw = sorted(
        {e["event_id"]: e for e in seen}.values(), key=lambda e: e["origin_server_ts"]
    )
    by_sender = [
        e
        for e in raw
        if e["sender"] == sender.user_id and e["type"] == "m.room.encrypted"
    ]
    session_ids = [e["content"]["session_id"] for e in by_sender]
    assert len(session_ids) == 3 and len(set(session_ids)) == 3
    s1, s2, s3 = session_ids
    assert {s1, s2} <= sessions_of(a, room_id) and s3 not in sessions_of(a, room_id)
    assert s1 not in sessions_of(b, room_id) and {s2, s3} <= sessions_of(b, room_id)
