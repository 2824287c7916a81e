"""Tests for the statistics job: when the daily post is due, and the facts it reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sobat_matrix.stats import CurhatFacts
from sobat_matrix.statsjob import facts, last_full_hour, next_daily
from sobat_matrix.store import Case, Store, Tx

JAKARTA = ZoneInfo("Asia/Jakarta")
UTC_ZONE = ZoneInfo("UTC")

# Monday 14 December 2026, 12:00 in Jakarta (UTC+7, no daylight saving).
NOW = datetime(2026, 12, 14, 5, 0, tzinfo=UTC)


def jakarta(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, second, tzinfo=JAKARTA)


def utc(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, second, tzinfo=UTC)


# -- next_daily ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "daily_at", "tz", "expected"),
    [
        pytest.param(
            jakarta(14, 6, 59), time(7, 0), JAKARTA, jakarta(14, 7), id="later-today"
        ),
        pytest.param(
            jakarta(14, 7), time(7, 0), JAKARTA, jakarta(15, 7), id="exactly-at"
        ),
        pytest.param(
            jakarta(14, 7, 0, 1), time(7, 0), JAKARTA, jakarta(15, 7), id="just-after"
        ),
        pytest.param(
            jakarta(14, 23, 50),
            time(0, 5),
            JAKARTA,
            jakarta(15, 0, 5),
            id="across-local-midnight",
        ),
        pytest.param(
            jakarta(31, 23, 0),
            time(8, 0),
            JAKARTA,
            datetime(2027, 1, 1, 8, 0, tzinfo=JAKARTA),
            id="across-new-year",
        ),
        # 23:30 UTC is already 06:30 the next day in Jakarta.
        pytest.param(
            utc(14, 23, 30), time(7, 0), JAKARTA, jakarta(15, 7), id="utc-evening"
        ),
        pytest.param(
            utc(14, 23, 30), time(7, 0), UTC_ZONE, utc(15, 7), id="utc-evening-in-utc"
        ),
        # 01:00 UTC is 08:00 in Jakarta: today's 07:00 there has passed.
        pytest.param(
            utc(14, 1), time(7, 0), JAKARTA, jakarta(15, 7), id="jakarta-passed"
        ),
        pytest.param(utc(14, 1), time(7, 0), UTC_ZONE, utc(14, 7), id="utc-not-yet"),
        # 20:00 UTC on the 14th is 03:00 on the 15th in Jakarta: the 15th's 02:00 is
        # gone, although on the UTC calendar it is still the 14th.
        pytest.param(
            utc(14, 20), time(2, 0), JAKARTA, jakarta(16, 2), id="jakarta-day-ahead"
        ),
        pytest.param(
            utc(14, 20), time(2, 0), UTC_ZONE, utc(15, 2), id="utc-day-behind"
        ),
    ],
)
def test_next_daily(
    now: datetime, daily_at: time, tz: ZoneInfo, expected: datetime
) -> None:
    due = next_daily(now, daily_at, tz)

    assert due == expected
    assert due.tzinfo == tz
    assert (due.hour, due.minute) == (daily_at.hour, daily_at.minute)
    assert timedelta(0) < due - now <= timedelta(days=1)


# -- facts -----------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "sobat.db")
    yield opened
    await opened.close()


async def add_case(
    tx: Tx,
    code: str,
    requested_at: datetime,
    *,
    category: str = "keluarga",
    status: str = "waiting",
    offers: tuple[str, ...] = (),
    **fields: float | int | str,
) -> Case:
    """A case requested at ``requested_at``, with one offer per status in ``offers``."""
    case = await tx.add_case(
        code=code,
        warga="@warga:sukabumi.test",
        dm_room="!dm:sukabumi.test",
        category=category,
        pref_type=None,
        pref_gender=None,
    )
    await tx.update_case(
        case.id, requested_at=requested_at.timestamp(), status=status, **fields
    )

    for number, offer_status in enumerate(offers):
        offer = await tx.add_offer(case.id, f"@c{number}:sukabumi.test", 0, 600.0)
        if offer_status != "pending":
            await tx.answer_offer(offer.id, offer_status)
    return case


async def read_facts(store: Store) -> list[CurhatFacts]:
    async with store.tx() as tx:
        return await facts(tx, NOW)


async def test_facts_of_a_closed_curhat(store: Store) -> None:
    requested = NOW - timedelta(hours=3)
    joined = requested + timedelta(minutes=12)
    closed = joined + timedelta(minutes=40)
    async with store.tx() as tx:
        await add_case(
            tx,
            "AAAA",
            requested,
            category="sosial",
            status="closed",
            offers=("declined", "timed_out", "accepted"),
            counsellor_joined_at=joined.timestamp(),
            closed_at=closed.timestamp(),
            rating=4,
        )

    assert await read_facts(store) == [
        CurhatFacts(
            category="sosial",
            requested_at=requested,
            counsellor_joined_at=joined,
            closed_at=closed,
            rating=4,
            offers_declined=1,
            offers_timed_out=1,
        )
    ]


@pytest.mark.parametrize(
    ("offers", "declined", "timed_out"),
    [
        pytest.param((), 0, 0, id="no-offers"),
        pytest.param(("pending",), 0, 0, id="pending"),
        pytest.param(("declined", "declined"), 2, 0, id="two-declined"),
        pytest.param(("timed_out",) * 3, 0, 3, id="three-timed-out"),
        pytest.param(
            ("declined", "timed_out", "timed_out", "accepted"), 1, 2, id="mixed"
        ),
        pytest.param(("withdrawn", "accepted"), 0, 0, id="withdrawn-and-accepted"),
    ],
)
async def test_offer_counts_per_case(
    store: Store, offers: tuple[str, ...], declined: int, timed_out: int
) -> None:
    async with store.tx() as tx:
        # A neighbour with its own offers, which must not be counted for this case.
        await add_case(tx, "XXXX", NOW - timedelta(hours=2), offers=("declined",) * 4)
        await add_case(tx, "AAAA", NOW - timedelta(hours=1), offers=offers)

    neighbour, case = await read_facts(store)

    assert (neighbour.offers_declined, neighbour.offers_timed_out) == (4, 0)
    assert (case.offers_declined, case.offers_timed_out) == (declined, timed_out)


@pytest.mark.parametrize(
    ("status", "has_closed_at"),
    [
        ("waiting", False),
        ("accepted", False),
        ("active", False),
        ("closing", False),
        ("cancelled", False),
        ("closed", True),
    ],
)
async def test_closed_at_only_for_closed_curhats(
    store: Store, status: str, has_closed_at: bool
) -> None:
    closed = NOW - timedelta(minutes=5)
    async with store.tx() as tx:
        await add_case(
            tx,
            "AAAA",
            NOW - timedelta(hours=1),
            status=status,
            closed_at=closed.timestamp(),
        )

    [fact] = await read_facts(store)

    assert fact.closed_at == (closed if has_closed_at else None)


async def test_cases_older_than_eight_days_are_left_out(store: Store) -> None:
    async with store.tx() as tx:
        for code, age in [
            ("OLD1", timedelta(days=30)),
            ("OLD2", timedelta(days=8, seconds=1)),
            ("NEW1", timedelta(days=8) - timedelta(seconds=1)),
            ("NEW2", timedelta(days=1)),
            ("NEW3", timedelta(0)),
        ]:
            await add_case(tx, code, NOW - age, category=code.lower())

    assert [f.category for f in await read_facts(store)] == ["new1", "new2", "new3"]


async def test_facts_are_timezone_aware_utc(store: Store) -> None:
    requested = NOW - timedelta(days=2)
    async with store.tx() as tx:
        await add_case(tx, "AAAA", requested)

    [fact] = await read_facts(store)

    assert fact.requested_at == requested
    assert fact.requested_at.utcoffset() == timedelta(0)
    assert fact.counsellor_joined_at is None
    assert fact.rating is None


async def test_facts_stop_at_the_cut_off(store: Store) -> None:
    """Nothing after the cut-off counts, so a report depends only on its cut-off."""
    async with store.tx() as tx:
        await add_case(
            tx,
            "BEFR",
            NOW - timedelta(minutes=50),
            status="closed",
            counsellor_joined_at=(NOW - timedelta(minutes=40)).timestamp(),
            closed_at=(NOW + timedelta(minutes=5)).timestamp(),
            rating=5,
        )
        await add_case(tx, "AFTR", NOW + timedelta(minutes=1))

    [fact] = await read_facts(store)

    assert fact.requested_at == NOW - timedelta(minutes=50)
    assert fact.counsellor_joined_at == NOW - timedelta(minutes=40)
    assert fact.closed_at is None and fact.rating is None


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (
            datetime(2026, 12, 14, 9, 59, 59, tzinfo=UTC),
            datetime(2026, 12, 14, 9, 0, tzinfo=UTC),
        ),
        (
            datetime(2026, 12, 14, 10, 0, tzinfo=UTC),
            datetime(2026, 12, 14, 10, 0, tzinfo=UTC),
        ),
    ],
)
def test_on_request_reports_count_to_the_last_full_hour(
    now: datetime, expected: datetime
) -> None:
    assert last_full_hour(now) == expected


@pytest.mark.parametrize(
    ("closed_by", "requested_ago_h", "unserved"),
    [
        pytest.param("unserved", 1, True, id="unserved"),
        pytest.param("cancel", 1, False, id="cancelled-by-the-warga"),
        # Given up after the report's cut-off: not yet, as things stood then.
        pytest.param("unserved", -1, False, id="given-up-after-the-cut-off"),
    ],
)
async def test_unserved_curhats_are_a_fact(
    store: Store, closed_by: str, requested_ago_h: int, unserved: bool
) -> None:
    requested = NOW - timedelta(hours=2)
    async with store.tx() as tx:
        await add_case(
            tx,
            "AAAA",
            requested,
            status="cancelled",
            offers=("declined", "declined"),
            closed_by=closed_by,
            close_requested_at=(NOW - timedelta(hours=requested_ago_h)).timestamp(),
        )

    (case,) = await read_facts(store)

    assert (case.unserved, case.offers_declined) == (unserved, 2)
