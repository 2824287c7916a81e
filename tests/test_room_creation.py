"""A room is created once, even when the bot lost the answer to its request.

Synapse goes on creating a room after the client that asked went away, so a bot
killed during the request may find no room at its restart and yet one is coming.
These tests drive :meth:`Reconciler.ensure_room` against a fake homeserver and a
real store.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sobat_matrix.curhat import CREATE_GRACE_S, Reconciler, RoomMayBeComing
from sobat_matrix.matrix import MatrixError
from sobat_matrix.store import Store

PURPOSE = "case:1"


class FakeHomeserver:
    """Rooms by creation token; ``refuse`` makes the next create fail with it."""

    def __init__(self) -> None:
        self.rooms: dict[str, str] = {}
        self.created = 0
        self.refuse: int | None = None

    async def find_room_by_token(self, key: str, token: str) -> str | None:
        return self.rooms.get(token)

    async def create_room(self, body: dict[str, Any]) -> str:
        if self.refuse is not None:
            status, self.refuse = self.refuse, None
            raise MatrixError("create room", status, "M_LIMIT_EXCEEDED")
        self.created += 1
        room_id = f"!r{self.created}:kota.test"
        self.rooms[body["token"]] = room_id
        return room_id


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "bot.db")
    yield opened
    await opened.close()


def reconciler(store: Store, server: FakeHomeserver) -> Reconciler:
    rt = SimpleNamespace(store=store, matrix=server, bot="@sobat:kota.test")
    return Reconciler(rt)  # type: ignore[arg-type]


def body(token: str) -> dict[str, Any]:
    return {"token": token}


async def attempted(store: Store, seconds_ago: float) -> str:
    """A registered room with one attempt that many seconds ago; its token."""
    async with store.tx() as tx:
        room = await tx.want_room(PURPOSE, "tok-1")
        await tx.note_room_attempt(PURPOSE)
        await tx._run(
            "UPDATE owned_rooms SET attempted_at = ? WHERE purpose = ?",
            (time.time() - seconds_ago, PURPOSE),
        )
    return room.token


async def test_a_fresh_room_is_created_once(store: Store) -> None:
    server = FakeHomeserver()
    rec = reconciler(store, server)

    first = await rec.ensure_room(PURPOSE, body)
    again = await rec.ensure_room(PURPOSE, body)

    assert first == again == "!r1:kota.test" and server.created == 1


async def test_a_request_that_may_still_run_is_waited_for(store: Store) -> None:
    server = FakeHomeserver()
    token = await attempted(store, seconds_ago=2)
    rec = reconciler(store, server)

    with pytest.raises(RoomMayBeComing) as waiting:
        await rec.ensure_room(PURPOSE, body)
    assert server.created == 0
    assert CREATE_GRACE_S - 3 < waiting.value.wait_s <= CREATE_GRACE_S - 2

    # The earlier request finishes on the server: that room is taken, no second.
    server.rooms[token] = "!late:kota.test"
    assert await rec.ensure_room(PURPOSE, body) == "!late:kota.test"
    assert server.created == 0


async def test_after_the_grace_the_room_is_asked_for_again(store: Store) -> None:
    server = FakeHomeserver()
    await attempted(store, seconds_ago=CREATE_GRACE_S + 1)

    room_id = await reconciler(store, server).ensure_room(PURPOSE, body)

    assert room_id == "!r1:kota.test" and server.created == 1


async def test_a_refused_request_is_tried_again_at_once(store: Store) -> None:
    server = FakeHomeserver()
    server.refuse = 429
    rec = reconciler(store, server)

    with pytest.raises(MatrixError):
        await rec.ensure_room(PURPOSE, body)
    # Refused: no room can be on its way, so the next try does not wait.
    assert await rec.ensure_room(PURPOSE, body) == "!r1:kota.test"


async def test_a_lost_answer_is_waited_for_after_a_server_error(store: Store) -> None:
    server = FakeHomeserver()
    server.refuse = 502
    rec = reconciler(store, server)

    with pytest.raises(MatrixError):
        await rec.ensure_room(PURPOSE, body)
    with pytest.raises(RoomMayBeComing):
        await rec.ensure_room(PURPOSE, body)
    assert server.created == 0
