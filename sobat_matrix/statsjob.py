"""Posts the anonymised figures to the supervisors' room: daily and on request.

Figures come from the curhats of the last eight days and carry no identifier of any
kind. Posts happen at a fixed time or when a supervisor asks, never because one curhat
closed, so their timing tells nothing about any one person.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from . import stats
from .runtime import Runtime
from .store import SUPERVISORS_PURPOSE, Case, Tx

logger = logging.getLogger(__name__)

WINDOW = timedelta(days=8)
LAST_POSTED_KEY = "stats_last_daily"


def _before(ts: float | None, as_of: float) -> datetime | None:
    """A timestamp as a datetime, or None if it is later than the cut-off."""
    if ts is None or ts > as_of:
        return None
    return datetime.fromtimestamp(ts, UTC)


async def facts(tx: Tx, now: datetime) -> list[stats.CurhatFacts]:
    """What the figures are made of, as things stood at ``now``.

    Anything after ``now`` is left out, so two reports with the same cut-off are
    the same whenever they are asked for.
    """
    as_of = now.timestamp()
    result = []
    for case in await tx.all_cases((now - WINDOW).timestamp()):
        if case.requested_at > as_of:
            continue
        offers = await tx.offers_of_case(case.id)
        answered = [o for o in offers if o.answered_at and o.answered_at <= as_of]
        closed_at = _before(case.closed_at, as_of) if case.status == "closed" else None
        result.append(
            stats.CurhatFacts(
                category=case.category,
                requested_at=datetime.fromtimestamp(case.requested_at, UTC),
                counsellor_joined_at=_before(case.counsellor_joined_at, as_of),
                closed_at=closed_at,
                rating=case.rating if closed_at else None,
                offers_declined=sum(o.status == "declined" for o in answered),
                offers_timed_out=sum(o.status == "timed_out" for o in answered),
                unserved=_unserved(case, as_of),
            )
        )
    return result


def _unserved(case: Case, as_of: float) -> bool:
    """Whether the curhat was given up because no counsellor could take it."""
    return (
        case.closed_by == "unserved"
        and case.close_requested_at is not None
        and case.close_requested_at <= as_of
    )


def last_full_hour(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


async def post_report(rt: Runtime, tx: Tx, as_of: datetime | None = None) -> bool:
    """Queue the report in the supervisors' room; False if there is no room yet.

    An on-request report counts up to the last full hour, not up to the minute:
    otherwise asking twice a few minutes apart would show when one curhat came or
    ended.
    """
    room = await tx.owned_room(SUPERVISORS_PURPOSE)
    if room is None or room.room_id is None:
        return False

    now = as_of or last_full_hour(datetime.now(UTC))
    tz = rt.config.timezone
    categories = [c.key for c in rt.policy.categories if c.referral is None]
    report = stats.compute(await facts(tx, now), now=now, tz=tz, categories=categories)
    labels = {c.key: rt.label(c.labels) for c in rt.policy.categories}
    plain, html = stats.render(report, rt.catalog, labels)
    await rt.say(tx, room.room_id, plain, html=html)
    logger.info("statistics report queued")
    return True


def next_daily(now: datetime, daily_at: time, tz: ZoneInfo) -> datetime:
    """The next time of day ``daily_at`` in ``tz`` after ``now``."""
    local = now.astimezone(tz)
    due = datetime.combine(local.date(), daily_at, tzinfo=tz)
    if due <= local:
        due = datetime.combine(local.date() + timedelta(days=1), daily_at, tzinfo=tz)
    return due


async def run_daily(rt: Runtime, daily_at: time) -> None:
    """Post once a day; a restart neither skips nor repeats a day's post."""
    tz = rt.config.timezone

    while True:
        now = datetime.now(UTC)
        today = now.astimezone(tz).date().isoformat()
        due_today = now.astimezone(tz).replace(
            hour=daily_at.hour, minute=daily_at.minute, second=0, microsecond=0
        )
        async with rt.store.tx() as tx:
            last = await tx.get_meta(LAST_POSTED_KEY)
            if now >= due_today and last != today:
                if await post_report(rt, tx, as_of=due_today.astimezone(UTC)):
                    await tx.set_meta(LAST_POSTED_KEY, today)

        wait_s = (next_daily(now, daily_at, tz) - now).total_seconds()
        # Wake at least every minute, so clock changes do not delay a post long.
        await asyncio.sleep(max(1.0, min(wait_s, 60.0)))
