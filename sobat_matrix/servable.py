"""Whether a counsellor's weekly hours ever meet the service's, across time zones.

The policy check uses this to refuse a category that can never be served: one whose
counsellors all work only while the service is closed, or are on leave for ever.
Both schedules repeat every week, so comparing one week of each is exact, once the
counsellor's hours are moved onto the service's clock.

A counsellor's clock can run ahead of or behind the service's by an amount that
changes with daylight saving time (Indonesia has none, a counsellor abroad may), so
every difference the two clocks take over the coming year is tried: the hours meet
if they meet under any of them. Nothing here knows about policy files; it works on
plain minute spans, so :mod:`sobat_matrix.policy` can import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

MINUTES_PER_WEEK = 7 * 24 * 60
FOR_EVER = date.max
"""The last day a leave can name; a leave reaching it never ends."""

Spans = Sequence[tuple[int, int]]
"""Sorted, disjoint, half-open ``(start, end)`` minutes since Monday 00:00."""

# One look a day finds every offset a clock keeps for more than a day; a year of
# them finds every daylight-saving period the zone database knows of ahead.
_SAMPLE_DAYS = 366


def clock_shifts(
    service: ZoneInfo, counsellor: ZoneInfo, start: datetime
) -> frozenset[int]:
    """Every amount, in minutes, ``counsellor``'s clock runs ahead of ``service``'s.

    Looked at once a day for a year from ``start`` (aware). Known shortcoming: a
    difference is counted as if it held for a whole week, which is wrong only for
    one kept less than a week; no zone in the database changes that often. A
    change of rules announced after the zone data was installed is not known.
    """
    if service == counsellor:
        return frozenset({0})

    shifts: set[int] = set()
    for day in range(_SAMPLE_DAYS):
        instant = start + timedelta(days=day)
        ahead = instant.astimezone(counsellor).utcoffset()
        behind = instant.astimezone(service).utcoffset()
        assert ahead is not None and behind is not None
        shifts.add(int((ahead - behind).total_seconds()) // 60)
    return frozenset(shifts)


def on_service_clock(spans: Spans, shift: int) -> list[tuple[int, int]]:
    """``spans`` read on a clock ``shift`` minutes ahead, moved to the service's.

    A span pushed past either end of the week continues at the other end.
    """
    moved: list[tuple[int, int]] = []
    for start, end in spans:
        start, end = start - shift, end - shift
        offset = (start // MINUTES_PER_WEEK) * MINUTES_PER_WEEK
        start, end = start - offset, end - offset
        if end > MINUTES_PER_WEEK:
            moved.append((0, end - MINUTES_PER_WEEK))
            end = MINUTES_PER_WEEK
        moved.append((start, end))
    return sorted(moved)


def overlap(first: Spans, second: Iterable[tuple[int, int]]) -> bool:
    """Whether some minute lies in both ``first`` and ``second``."""
    return any(
        start < other_end and other_start < end
        for start, end in first
        for other_start, other_end in second
    )


def meets(service: Spans | None, schedule: Spans | None, shifts: Iterable[int]) -> bool:
    """Whether a schedule ever meets the service hours; ``None`` means always.

    ``shifts`` are the minutes the schedule's clock may run ahead of the service's
    (see :func:`clock_shifts`).
    """
    if service is None or schedule is None:
        return True
    return any(overlap(service, on_service_clock(schedule, s)) for s in shifts)


def on_leave_for_ever(leave: Sequence[tuple[date, date]]) -> bool:
    """Whether one of the leave ranges never ends.

    A leave that ends, however far ahead, is over one day: only one written up to
    ``9999-12-31`` keeps the counsellor away for good.
    """
    return any(last == FOR_EVER for _, last in leave)
