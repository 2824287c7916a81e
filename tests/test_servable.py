"""Tests for the across-time check that a counsellor ever works in service hours."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from sobat_matrix.servable import (
    MINUTES_PER_WEEK,
    clock_shifts,
    meets,
    on_leave_for_ever,
    on_service_clock,
)

JAKARTA = ZoneInfo("Asia/Jakarta")
DAY = 24 * 60
START = datetime(2026, 12, 4, tzinfo=UTC)


def test_a_clock_without_daylight_saving_has_one_shift() -> None:
    assert clock_shifts(JAKARTA, ZoneInfo("Asia/Makassar"), START) == {60}
    assert clock_shifts(JAKARTA, ZoneInfo("Asia/Jayapura"), START) == {120}
    assert clock_shifts(JAKARTA, JAKARTA, START) == {0}


def test_a_clock_with_daylight_saving_has_both_shifts() -> None:
    # Amsterdam is 6 hours behind Jakarta in winter and 5 in summer.
    assert clock_shifts(JAKARTA, ZoneInfo("Europe/Amsterdam"), START) == {
        -360,
        -300,
    }


@pytest.mark.parametrize(
    ("spans", "shift", "moved"),
    [
        pytest.param([(480, 540)], 60, [(420, 480)], id="an-hour-ahead"),
        pytest.param(
            [(30, 90)],
            60,
            [(0, 30), (MINUTES_PER_WEEK - 30, MINUTES_PER_WEEK)],
            id="back-past-monday",
        ),
        pytest.param(
            [(MINUTES_PER_WEEK - 60, MINUTES_PER_WEEK)],
            -120,
            [(60, 120)],
            id="on-past-sunday",
        ),
        pytest.param(
            [(MINUTES_PER_WEEK - 60, MINUTES_PER_WEEK)],
            -30,
            [(0, 30), (MINUTES_PER_WEEK - 30, MINUTES_PER_WEEK)],
            id="across-sunday-midnight",
        ),
    ],
)
def test_on_service_clock(
    spans: list[tuple[int, int]], shift: int, moved: list[tuple[int, int]]
) -> None:
    assert on_service_clock(spans, shift) == moved


def test_hours_that_only_touch_do_not_meet() -> None:
    morning = [(7 * 60, 12 * 60)]
    afternoon = [(12 * 60, 17 * 60)]

    assert not meets(morning, afternoon, {0})
    assert meets(morning, afternoon, {0, 60})


def test_always_open_or_always_on_duty_meets() -> None:
    assert meets(None, [(0, 60)], {0})
    assert meets([(DAY, DAY + 60)], None, {0})


def test_only_a_leave_without_end_is_for_ever() -> None:
    assert on_leave_for_ever([(date(2026, 1, 1), date(9999, 12, 31))])
    assert not on_leave_for_ever([(date(2026, 1, 1), date(2099, 12, 31))])
    assert not on_leave_for_ever([])
