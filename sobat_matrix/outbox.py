"""Sends the bot's queued notices, in order per room, outside the sync loop.

A notice is queued in the same transaction as the change it reports, and sent here
afterwards with a transaction ID chosen at queue time, so a crash between the two
neither loses it nor (Synapse deduplicates by transaction ID) doubles it. A room that
is not ready yet (not synced, or a send failed) holds back only its own notices.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .matrix import MatrixError, NotEncrypted, RoomNotReady
from .runtime import Runtime
from .store import Tx

logger = logging.getLogger(__name__)

# A notice for a room the bot never gets to see is dropped after this long.
GIVE_UP_S = 15 * 60
RETRY_S = 1.0


async def run(rt: Runtime) -> None:
    """Send forever; woken by ``rt.wake_outbox`` and retrying every second."""
    first_blocked: dict[str, float] = {}

    while True:
        try:
            async with asyncio.timeout(RETRY_S):
                await rt.wake_outbox.wait()
        except TimeoutError:
            pass
        rt.wake_outbox.clear()

        try:
            await send_pending(rt, first_blocked)
        except Exception as exc:  # noqa: BLE001 - the loop must survive any failure
            logger.error("outbox pass failed: %s", type(exc).__name__, exc_info=exc)


async def send_pending(rt: Runtime, first_blocked: dict[str, float]) -> None:
    async with rt.store.tx() as tx:
        items = await tx.outbox()

    blocked: set[str] = set()
    for item in items:
        if item.room_id in blocked:
            continue

        try:
            event_id = await rt.matrix.send(item.room_id, item.content, item.txn_id)
        except (RoomNotReady, MatrixError) as exc:
            blocked.add(item.room_id)
            since = first_blocked.setdefault(item.room_id, time.monotonic())
            permanent = isinstance(exc, MatrixError) and exc.status in (403, 404)
            if not permanent and time.monotonic() - since < GIVE_UP_S:
                continue
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


async def _record(tx: Tx, ref: str, event_id: str) -> None:
    """Remember the event ID of a notice people answer by reacting to it."""
    kind, _, key = ref.partition(":")
    if kind == "offer":
        await tx.set_offer_event(int(key), event_id)
    elif kind == "rating":
        await tx.update_direct_chat(key, rating_event_id=event_id)
