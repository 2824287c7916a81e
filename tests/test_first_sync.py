"""The first sync of a fresh store: the rooms' history is not the bot's to act on.

A bot whose database and E2EE store were lost (or a new deployment on an old
account) is still in its old rooms. Their history must not be replayed: not the
events it can read, and not the encrypted ones it cannot read yet either, or a
room key arriving later would make it act on a warga's message of last month.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from nio import MegolmEvent, RoomMessageText

from sobat_matrix.service import Service
from sobat_matrix.store import Store

ROOM = "!dm:kota.test"


def megolm(event_id: str) -> MegolmEvent:
    return MegolmEvent.from_dict(
        {
            "event_id": event_id,
            "sender": "@warga:kota.test",
            "origin_server_ts": 1,
            "type": "m.room.encrypted",
            "room_id": ROOM,
            "content": {
                "algorithm": "m.megolm.v1.aes-sha2",
                "ciphertext": "AwgA",
                "device_id": "WARGA",
                "sender_key": "k" * 43,
                "session_id": "s" * 43,
            },
        }
    )


def text(event_id: str) -> RoomMessageText:
    event = RoomMessageText.from_dict(
        {
            "event_id": event_id,
            "sender": "@warga:kota.test",
            "origin_server_ts": 1,
            "type": "m.room.message",
            "content": {"msgtype": "m.text", "body": "ya"},
        }
    )
    assert isinstance(event, RoomMessageText)
    return event


def sync_of(*events: Any) -> Any:
    timeline = SimpleNamespace(events=list(events), limited=False, prev_batch=None)
    return SimpleNamespace(
        rooms=SimpleNamespace(
            invite={}, join={ROOM: SimpleNamespace(timeline=timeline)}
        ),
        next_batch="s1",
    )


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[Service, list[str]]]:
    store = await Store.open(tmp_path / "bot.db")
    handled: list[str] = []

    async def on_event(room_id: str, event: Any) -> None:
        handled.append(event.event_id)

    async def request_room_key(event: Any) -> None:
        return None

    svc = Service(None, None)  # type: ignore[arg-type]
    svc.rt = SimpleNamespace(  # type: ignore[assignment]
        store=store,
        bot="@sobat:kota.test",
        wake_reconciler=asyncio.Event(),
        matrix=SimpleNamespace(
            client=SimpleNamespace(
                request_room_key=request_room_key, decrypt_event=lambda e: e
            )
        ),
    )
    svc.handlers = SimpleNamespace(on_event=on_event)  # type: ignore[assignment]
    yield svc, handled
    await store.close()


async def test_the_first_sync_keeps_no_history_for_later(
    service: tuple[Service, list[str]],
) -> None:
    svc, handled = service

    await svc.handle_sync(sync_of(megolm("$old-secret"), text("$old")), since=None)

    assert handled == [] and len(svc.late) == 0


async def test_a_later_sync_keeps_what_it_cannot_read_yet(
    service: tuple[Service, list[str]],
) -> None:
    svc, handled = service

    await svc.handle_sync(sync_of(megolm("$new-secret"), text("$new")), since="s0")

    assert handled == ["$new"] and len(svc.late) == 1
