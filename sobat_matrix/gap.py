"""The events a "limited" sync left out of a room's timeline, fetched with /messages.

A sync carries at most the filter's timeline limit (100) of each room's events; when
more arrived since the previous sync token, the timeline comes back ``limited`` and
the older ones are only reachable by paging back from the timeline's ``prev_batch``
towards that token. Skipping them would lose a warga's request or a counsellor's
command, so the service fetches them here and handles them before the timeline.

Which limited timelines have a gap, and where it ends:

- the very first sync of a fresh store has none: the history before the bot's
  first token is deliberately not handled;
- otherwise the gap runs back from ``prev_batch`` to the previous sync token, or to
  the bot's own join (membership ``join`` that was not ``join`` before), whichever
  comes first: nothing before the bot joined is missed. So a room the bot joined
  since the previous token has a gap only if its join is not in the timeline; if
  it is, Synapse marks the timeline limited merely because the room is new.

This rule uses only the stored token and the events themselves, so it holds after
a restart just as in a running loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from nio import Event, RoomMemberEvent, RoomMessagesResponse

from .matrix import MatrixError

logger = logging.getLogger(__name__)

PAGE_LIMIT = 100
# A bound on the events fetched for one room's gap: beyond it the oldest are skipped.
MAX_GAP_EVENTS = 1000
FETCH_ATTEMPTS = 3
FETCH_BACKOFF_MAX_S = 10.0

FetchPage = Callable[[str, str, str, int], Awaitable[RoomMessagesResponse]]


@dataclass
class Gap:
    """What was fetched of one room's gap, oldest event first."""

    events: list[Event]
    # Older events than these exist but were not fetched: over the bound, or a
    # page could not be fetched.
    truncated: bool = False
    failed: bool = False


def is_own_join(event: Event, bot: str) -> bool:
    """True for the bot's own arrival in a room (not a profile change)."""
    if not isinstance(event, RoomMemberEvent):
        return False
    if event.state_key != bot or event.membership != "join":
        return False
    return event.prev_membership != "join"


def has_gap(limited: bool, timeline: Sequence[Event], bot: str) -> bool:
    """Whether a limited timeline left events out, by the rule of this module."""
    if not limited:
        return False
    return not any(is_own_join(event, bot) for event in timeline)


async def fetch_gap(
    fetch_page: FetchPage,
    room_id: str,
    *,
    prev_batch: str,
    since: str,
    bot: str,
    max_events: int = MAX_GAP_EVENTS,
    on_page: Callable[[], None] | None = None,
) -> Gap:
    """Page back from ``prev_batch`` to ``since`` (or the bot's join) in one room.

    ``fetch_page(room_id, start, end, limit)`` is one /messages request backwards.
    One more event than ``max_events`` is asked for, to know that the bound cut
    the gap rather than met its end. ``on_page`` is called after each page, so
    the sync watchdog sees a loop that pages as one that is alive.
    """
    newest_first: list[Event] = []
    token = prev_batch

    while len(newest_first) <= max_events:
        limit = min(PAGE_LIMIT, max_events + 1 - len(newest_first))
        page = await _page(fetch_page, room_id, token, since, limit)
        if on_page is not None:
            on_page()
        if page is None:
            return Gap(newest_first[::-1], truncated=True, failed=True)

        for event in page.chunk:
            newest_first.append(event)
            if is_own_join(event, bot):
                return Gap(newest_first[::-1])

        # Synapse leaves ``end`` out once nothing is left before ``since``.
        if not page.chunk or not page.end or page.end == token:
            return Gap(newest_first[::-1])
        token = page.end

    return Gap(newest_first[max_events - 1 :: -1], truncated=True)


async def _page(
    fetch_page: FetchPage, room_id: str, start: str, end: str, limit: int
) -> RoomMessagesResponse | None:
    """One page, tried ``FETCH_ATTEMPTS`` times; None if every try failed.

    A 429 is already waited out (a bounded number of times) inside the nio call;
    these tries are for the server errors and dropped connections left over.
    """
    for attempt in range(FETCH_ATTEMPTS):
        try:
            return await fetch_page(room_id, start, end, limit)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the sync goes on
            # The class and status only: nio puts the access token in the URL,
            # which a transport error's text may carry.
            what = (
                f"{exc.status} {exc.errcode}"
                if isinstance(exc, MatrixError)
                else type(exc).__name__
            )
            logger.warning(
                "fetching the gap of room %s failed (%s, try %d of %d)",
                room_id,
                what,
                attempt + 1,
                FETCH_ATTEMPTS,
            )
        if attempt + 1 < FETCH_ATTEMPTS:
            await asyncio.sleep(min(2.0**attempt, FETCH_BACKOFF_MAX_S))
    return None
