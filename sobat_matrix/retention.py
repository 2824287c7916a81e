"""Forgets who the warga of a curhat was, a configured number of days after it ended.

Running the service needs the link between a warga and a curhat only while the
curhat is open and shortly after (rating, questions). The figures never need it, and
routing to the previous counsellor uses the pseudonym that stays. The link is cut
once an hour for every curhat that ended long enough ago, and so are the direct chats
of warga who have gone quiet for as long (see :meth:`Tx.forget_before`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from .store import Forgotten, Store

logger = logging.getLogger(__name__)

DAY_S = 24 * 3600
EVERY_S = 3600


async def forget_old(store: Store, days: int, now: float | None = None) -> Forgotten:
    cut_off = (time.time() if now is None else now) - days * DAY_S
    async with store.tx() as tx:
        forgotten = await tx.forget_before(cut_off)
    if forgotten.curhats or forgotten.chats:
        logger.info(
            "forgot the warga of %d curhats and %d direct chats",
            forgotten.curhats,
            forgotten.chats,
        )
    return forgotten


async def run(store: Store, days: int) -> None:
    while True:
        await forget_old(store, days)
        await asyncio.sleep(EVERY_S)
