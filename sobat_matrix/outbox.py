"""Sends the bot's queued notices, in order per room, outside the sync loop.

A notice is queued in the same transaction as the change it reports, and sent here
afterwards with a transaction ID chosen at queue time, so a crash between the two
neither loses it nor (Synapse deduplicates by transaction ID) doubles it.

Each room's notices are sent by a task of their own, so a room whose send waits
holds back only its own notices: a room not synced yet, a send that failed, or a
send that waits out a 429 (nio sleeps inside the call, up to minutes) never keeps
another warga waiting for their answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .matrix import MatrixError, NotEncrypted, RoomNotReady
from .runtime import Runtime
from .store import OutboxItem, Tx

logger = logging.getLogger(__name__)

# A notice for a room the bot never gets to see is dropped after this long.
GIVE_UP_S = 15 * 60
RETRY_S = 1.0


async def run(rt: Runtime) -> None:
    """Send forever; woken by ``rt.wake_outbox`` and looking again every second.

    Owns the rooms' sender tasks: they end with it.
    """
    first_blocked: dict[str, float] = {}
    senders: dict[str, asyncio.Task[None]] = {}

    try:
        while True:
            try:
                async with asyncio.timeout(RETRY_S):
                    await rt.wake_outbox.wait()
            except TimeoutError:
                pass
            rt.wake_outbox.clear()

            try:
                await start_senders(rt, first_blocked, senders)
            except Exception as exc:  # noqa: BLE001 - the loop must survive any failure
                logger.error("outbox pass failed: %s", type(exc).__name__, exc_info=exc)
    finally:
        for task in senders.values():
            task.cancel()
        await asyncio.gather(*senders.values(), return_exceptions=True)


async def start_senders(
    rt: Runtime, first_blocked: dict[str, float], senders: dict[str, asyncio.Task[None]]
) -> None:
    """Start a sender for each room with notices waiting and no sender yet."""
    async with rt.store.tx() as tx:
        rooms = dict.fromkeys(item.room_id for item in await tx.outbox())

    for room_id in rooms:
        if room_id in senders:
            continue
        task = asyncio.create_task(
            send_room(rt, room_id, first_blocked), name=f"outbox {room_id}"
        )
        senders[room_id] = task
        task.add_done_callback(_forget_sender(senders, room_id))


def _forget_sender(
    senders: dict[str, asyncio.Task[None]], room_id: str
) -> Callable[[asyncio.Task[None]], None]:
    def forget(_: asyncio.Task[None]) -> None:
        senders.pop(room_id, None)

    return forget


async def send_room(rt: Runtime, room_id: str, first_blocked: dict[str, float]) -> None:
    """Send one room's notices in order, until none is left or one cannot go yet.

    A notice that cannot go yet ends the task; the next pass of :func:`run`, a
    second later, starts it again.
    """
    try:
        while True:
            async with rt.store.tx() as tx:
                items = [item for item in await tx.outbox() if item.room_id == room_id]
            if not items:
                return
            for item in items:
                if not await _send_one(rt, item, first_blocked):
                    return
    except Exception as exc:  # noqa: BLE001 - logged here, retried by the next pass
        logger.error(
            "outbox for room %s failed: %s", room_id, type(exc).__name__, exc_info=exc
        )


async def _send_one(
    rt: Runtime, item: OutboxItem, first_blocked: dict[str, float]
) -> bool:
    """Send or drop one notice; False if it must wait and be tried again."""
    try:
        event_id = await rt.matrix.send(item.room_id, item.content, item.txn_id)
    except (RoomNotReady, MatrixError) as exc:
        since = first_blocked.setdefault(item.room_id, time.monotonic())
        permanent = isinstance(exc, MatrixError) and exc.status in (403, 404)
        if not permanent and time.monotonic() - since < GIVE_UP_S:
            return False
        logger.warning(
            "dropping notice %d for room %s: %s",
            item.id,
            item.room_id,
            type(exc).__name__,
        )
        event_id = None
    except NotEncrypted:
        logger.error(
            "refusing to send notice %d in plaintext to room %s",
            item.id,
            item.room_id,
        )
        event_id = None

    first_blocked.pop(item.room_id, None)
    async with rt.store.tx() as tx:
        await tx.sent(item.id)
        if event_id is not None and item.ref:
            await _record(tx, item.ref, event_id)
    return True


async def _record(tx: Tx, ref: str, event_id: str) -> None:
    """Remember the event ID of a notice people answer by reacting to it."""
    kind, _, key = ref.partition(":")
    if kind == "offer":
        await tx.set_offer_event(int(key), event_id)
    elif kind == "rating":
        await tx.update_direct_chat(key, rating_event_id=event_id)
