"""Tests for routing decisions: who gets the next offer, and what intake may offer."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sobat_matrix.policy import (
    NEVER,
    Category,
    Counsellor,
    DateRange,
    Policy,
    QueueRules,
    Referral,
    RouteStep,
    Urgent,
    WeeklyHours,
    load_policy,
)
from sobat_matrix.routing import (
    Choice,
    Load,
    Preference,
    _rosters,
    choose,
    choose_on_call,
    language_options,
    next_opening,
    preference_options,
    religion_options,
    service_open,
    step_candidates,
)

REPO = Path(__file__).resolve().parent.parent

A = Counsellor("@a:kota.test", "A", ("psikolog",), "perempuan", ("id",), 3)
B = Counsellor("@b:kota.test", "B", ("psikolog",), "laki-laki", ("id",), 3)
C = Counsellor("@c:kota.test", "C", ("keluarga",), "perempuan", ("id",), 2)
D = Counsellor("@d:kota.test", "D", ("keagamaan", "psikolog"), "laki-laki", ("id",), 1)

FAMILY_STEP = RouteStep(("keluarga",), (), 600.0)
PSY_STEP = RouteStep(("psikolog",), (), 300.0)
NAMED_STEP = RouteStep((), ("@d:kota.test",), 120.0)


def labels(text: str) -> MappingProxyType[str, str]:
    return MappingProxyType({"id": text})


def make_policy(*routes: tuple[RouteStep, ...]) -> Policy:
    """A policy with counsellors A-D and one category ``k<i>`` per route."""
    categories = tuple(
        Category(f"k{i}", labels(f"K{i}"), labels(""), True, True, route)
        for i, route in enumerate(routes)
    )
    types = {key: labels(key) for key in ("psikolog", "keluarga", "keagamaan")}
    return Policy(Path("test.yaml"), MappingProxyType(types), (A, B, C, D), categories)


POLICY = make_policy((FAMILY_STEP, PSY_STEP, NAMED_STEP))
IDLE = Preference()


def pick(
    pref: Preference = IDLE,
    loads: dict[str, Load] | None = None,
    declined: set[str] | frozenset[str] = frozenset(),
    timed_out: set[str] | frozenset[str] = frozenset(),
    policy: Policy = POLICY,
    category: str = "k0",
) -> Choice | None:
    return choose(policy, category, pref, loads or {}, declined, timed_out)


def full(counsellor: Counsellor) -> Load:
    return Load(open_curhats=counsellor.max_open)


def test_first_step_wins_when_someone_is_free() -> None:
    assert pick() == Choice(C, 0, 600.0, new_round=False)


def test_falls_back_to_the_next_step() -> None:
    choice = pick(loads={C.user_id: full(C)})

    assert choice == Choice(A, 1, 300.0, new_round=False)


@pytest.mark.parametrize(
    ("loads", "expected"),
    [
        pytest.param({}, A, id="tie-goes-to-file-order"),
        pytest.param({"@a:kota.test": Load(2), "@b:kota.test": Load(1)}, B, id="least"),
        pytest.param({"@a:kota.test": Load(1), "@b:kota.test": Load(1)}, A, id="tie"),
        pytest.param({"@a:kota.test": Load(3)}, B, id="a-at-capacity"),
        pytest.param({"@a:kota.test": Load(0, pending_offer=True)}, B, id="a-pending"),
        pytest.param(
            {"@a:kota.test": Load(3), "@b:kota.test": Load(0, True)},
            None,
            id="both-busy",
        ),
    ],
)
def test_least_loaded_available_counsellor(
    loads: dict[str, Load], expected: Counsellor | None
) -> None:
    # C and D are full so that A and B of the psychologists' step compete.
    loads = {C.user_id: full(C), D.user_id: full(D), **loads}

    choice = pick(loads=loads)

    assert (choice and choice.counsellor) == expected


def test_an_idle_counsellor_beats_file_order() -> None:
    loads = {C.user_id: full(C), A.user_id: Load(1), B.user_id: Load(1)}

    assert pick(loads=loads) == Choice(D, 1, 300.0, new_round=False)


def test_a_counsellor_over_capacity_is_never_chosen() -> None:
    loads = {c.user_id: Load(open_curhats=c.max_open + 1) for c in (A, B, C, D)}

    assert pick(loads=loads) is None


def test_a_counsellor_in_several_steps_is_offered_at_the_first() -> None:
    loads = {C.user_id: full(C), A.user_id: full(A), B.user_id: full(B)}

    assert pick(loads=loads) == Choice(D, 1, 300.0, new_round=False)
    assert pick(loads=loads, declined={D.user_id}) is None


def test_named_step_uses_its_own_timeout() -> None:
    policy = make_policy((FAMILY_STEP, NAMED_STEP))

    choice = pick(policy=policy, loads={C.user_id: full(C)})

    assert choice == Choice(D, 1, 120.0, new_round=False)


def test_named_step_without_types() -> None:
    policy = make_policy((NAMED_STEP,))

    assert pick(policy=policy) == Choice(D, 0, 120.0, new_round=False)


def test_declined_is_never_asked_again() -> None:
    declined = {C.user_id, A.user_id, B.user_id, D.user_id}

    assert pick(declined={C.user_id}) == Choice(A, 1, 300.0, new_round=False)
    assert pick(declined=declined) is None
    assert pick(declined=declined, timed_out=declined) is None


def test_timed_out_is_skipped_while_others_are_free() -> None:
    assert pick(timed_out={C.user_id}) == Choice(A, 1, 300.0, new_round=False)


def test_timed_out_is_retried_in_a_new_round() -> None:
    declined = {A.user_id, B.user_id, D.user_id}

    choice = pick(declined=declined, timed_out={C.user_id})

    assert choice == Choice(C, 0, 600.0, new_round=True)


def test_new_round_picks_least_loaded_timed_out_in_step_order() -> None:
    timed_out = {c.user_id for c in (A, B, C, D)}
    loads = {
        C.user_id: full(C),
        A.user_id: Load(2),
        B.user_id: Load(1),
        D.user_id: full(D),
    }

    choice = pick(loads=loads, timed_out=timed_out)

    assert choice == Choice(B, 1, 300.0, new_round=True)


def test_new_round_skips_busy_and_declined() -> None:
    timed_out = {C.user_id, A.user_id}
    declined = {B.user_id, D.user_id, A.user_id}

    assert (
        pick(timed_out=timed_out, declined=declined, loads={C.user_id: full(C)}) is None
    )
    assert (
        pick(timed_out=timed_out, declined=declined, loads={C.user_id: Load(0, True)})
        is None
    )


@pytest.mark.parametrize(
    ("pref", "expected"),
    [
        pytest.param(
            Preference(gender="perempuan"), Choice(C, 0, 600.0, False), id="f"
        ),
        pytest.param(
            Preference(gender="laki-laki"), Choice(B, 1, 300.0, False), id="m"
        ),
        pytest.param(
            Preference(type="keagamaan"), Choice(D, 1, 300.0, False), id="rel"
        ),
        pytest.param(
            Preference(type="psikolog", gender="laki-laki"),
            Choice(B, 1, 300.0, False),
            id="psy-m",
        ),
        pytest.param(Preference(type="keluarga", gender="laki-laki"), None, id="none"),
        pytest.param(Preference(type="hukum"), None, id="unknown-type"),
    ],
)
def test_preference_filters_candidates(
    pref: Preference, expected: Choice | None
) -> None:
    assert pick(pref=pref) == expected


def test_preference_applies_in_the_new_round_too() -> None:
    timed_out = {c.user_id for c in (A, B, C, D)}

    choice = pick(pref=Preference(gender="laki-laki"), timed_out=timed_out)

    assert choice == Choice(B, 1, 300.0, new_round=True)


def test_step_with_types_and_counsellors_is_their_intersection() -> None:
    step = RouteStep(("psikolog",), ("@b:kota.test", "@c:kota.test"), 60.0)
    policy = make_policy((step,))
    category = policy.categories[0]

    assert step_candidates(policy, category, step, IDLE) == [B]
    assert pick(policy=policy) == Choice(B, 0, 60.0, new_round=False)


def test_step_candidates_in_file_order_and_filtered() -> None:
    category = POLICY.categories[0]

    assert step_candidates(POLICY, category, PSY_STEP, IDLE) == [A, B, D]
    male = Preference(gender="laki-laki")
    assert step_candidates(POLICY, category, PSY_STEP, male) == [B, D]
    religious = Preference(type="keagamaan")
    assert step_candidates(POLICY, category, PSY_STEP, religious) == [D]
    assert step_candidates(POLICY, category, FAMILY_STEP, male) == []


def test_missing_load_means_idle() -> None:
    loads = {B.user_id: Load(0)}

    assert pick(loads=loads, declined={C.user_id}) == Choice(A, 1, 300.0, False)


def test_unknown_category_is_a_bug() -> None:
    with pytest.raises(KeyError):
        pick(category="nope")


def test_preference_options() -> None:
    types, genders = preference_options(POLICY, POLICY.categories[0])
    assert types == ["psikolog", "keluarga", "keagamaan"]
    assert genders == ["perempuan", "laki-laki"]

    family_only = make_policy((FAMILY_STEP,))
    assert preference_options(family_only, family_only.categories[0]) == (
        ["keluarga"],
        ["perempuan"],
    )

    given = Preference(type="keagamaan")
    assert preference_options(POLICY, POLICY.categories[0], given) == (
        ["psikolog", "keagamaan"],
        ["laki-laki"],
    )


def test_preference_options_of_the_sample_policy() -> None:
    policy = load_policy(REPO / "policies" / "sukabumi.yaml")
    options = {c.key: preference_options(policy, c) for c in policy.categories}

    both = ["perempuan", "laki-laki"]
    assert options == {
        "keluarga": (["psikolog", "ketahanan_keluarga", "keagamaan"], both),
        "sosial": (["psikolog", "ketahanan_keluarga", "keagamaan"], both),
        "ekonomi": (["psikolog", "ketahanan_keluarga"], both),
        # A referral is not counselling: nobody to choose.
        "pengaduan": ([], []),
    }


def test_language_options_of_the_sample_policy() -> None:
    """Bahasa Indonesia first, then as first seen; narrowed by the answers so far."""
    policy = load_policy(REPO / "policies" / "sukabumi.yaml")
    options = {c.key: language_options(policy, c) for c in policy.categories}

    assert options == {
        "keluarga": ["id", "su", "ar"],
        "sosial": ["id", "su", "ar"],
        "ekonomi": ["id", "su"],
        "pengaduan": [],
    }
    ekonomi = policy.categories[2]
    assert language_options(policy, ekonomi, Preference(gender="laki-laki")) == ["id"]


def test_sample_policy_routes_family_to_siti_first() -> None:
    policy = load_policy(REPO / "policies" / "sukabumi.yaml")
    siti = policy.counsellor("@siti:sukabumi.test")
    assert siti is not None

    choice = choose(policy, "keluarga", IDLE, {}, set(), set())

    assert choice == Choice(siti, 0, 600.0, new_round=False)


def test_a_thousand_counsellors_decide_in_under_a_millisecond() -> None:
    counsellors = tuple(
        Counsellor(
            f"@c{i}:kota.test",
            f"C{i}",
            ("psikolog",) if i % 2 else ("keluarga",),
            "perempuan" if i % 3 else "laki-laki",
            ("id",),
            3,
        )
        for i in range(1000)
    )
    route = (
        FAMILY_STEP,
        PSY_STEP,
        RouteStep((), tuple(c.user_id for c in counsellors[:500]), 60.0),
    )
    category = Category("k", labels("K"), labels(""), True, True, route)
    types = {key: labels(key) for key in ("psikolog", "keluarga")}
    policy = Policy(Path("big.yaml"), MappingProxyType(types), counsellors, (category,))

    # The worst case: everybody full, so every step and the new round run to the end.
    loads = {c.user_id: Load(open_curhats=3) for c in counsellors}
    timed_out = {c.user_id for c in counsellors[::2]}
    pref = Preference(type="psikolog", gender="perempuan")

    best_s = float("inf")
    for _ in range(20):
        start = time.perf_counter()
        assert choose(policy, "k", pref, loads, set(), timed_out) is None
        best_s = min(best_s, time.perf_counter() - start)
    assert best_s < 0.001


# Schedules, leave and holidays. 2026-12-07 is a Monday and 2026-12-03 a Thursday.
WIB = ZoneInfo("Asia/Jakarta")  # UTC+7
WIT = ZoneInfo("Asia/Jayapura")  # UTC+9
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
GENDERS_CYCLE = ("perempuan", "laki-laki")


def hours(**days: list[str]) -> WeeklyHours:
    """Weekly hours from ``mon=["13:00-17:00"]``-style keyword arguments."""

    def minutes(text: str) -> int:
        hour, minute = text.split(":")
        return int(hour) * 60 + int(minute)

    return WeeklyHours.from_days(
        {
            day: [(minutes(r[:5]), minutes(r[6:])) for r in ranges]
            for day, ranges in days.items()
        }
    )


def wib(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=WIB)


def psychologist(name: str, **duty: Any) -> Counsellor:
    return Counsellor(
        f"@{name}:kota.test", name, ("psikolog",), "perempuan", ("id",), 3, **duty
    )


PAGI = psychologist("pagi", schedule=hours(**{d: ["08:00-16:00"] for d in WEEKDAYS}))
MALAM = psychologist("malam", schedule=hours(thu=["22:00-02:00"]))
TIMUR = psychologist(
    "timur", schedule=hours(mon=["13:00-17:00"], thu=["13:00-17:00"]), timezone=WIT
)
LIBUR = psychologist(
    "libur", timezone=WIT, leave=((date(2026, 12, 24), date(2026, 12, 26)),)
)
AUGUST_17: DateRange = (date(2026, 8, 17), date(2026, 8, 17))


def one_step_policy(
    counsellors: tuple[Counsellor, ...],
    step: RouteStep = PSY_STEP,
    *,
    holidays: tuple[DateRange, ...] = (),
    pools: Mapping[str, tuple[str, ...]] | None = None,
) -> Policy:
    category = Category("k", labels("K"), labels(""), False, False, (step,))
    types = {key: labels(key) for key in ("psikolog", "keluarga", "keagamaan")}
    return Policy(
        Path("t.yaml"),
        MappingProxyType(types),
        counsellors,
        (category,),
        pools=MappingProxyType(pools or {}),
        holidays=holidays,
    )


CLOCKS = one_step_policy((PAGI, MALAM, TIMUR, LIBUR), holidays=(AUGUST_17,))


def offered_in_turn(policy: Policy, **options: Any) -> list[str]:
    """Who gets offers, one after the other, as each declines the one before."""
    declined: set[str] = set()
    names = []
    while choice := choose(policy, "k", IDLE, {}, declined, set(), **options):
        names.append(choice.counsellor.name)
        declined.add(choice.counsellor.user_id)
    return names


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(None, ["pagi", "malam", "timur", "libur"], id="no-clock"),
        pytest.param(wib("2026-12-07 10:00"), ["pagi", "libur"], id="mon-morning"),
        pytest.param(
            wib("2026-12-07 12:00"), ["pagi", "timur", "libur"], id="mon-13:00-in-wit"
        ),
        pytest.param(wib("2026-12-07 15:00"), ["pagi", "libur"], id="mon-17:00-in-wit"),
        pytest.param(wib("2026-12-07 16:00"), ["libur"], id="shift-end-excluded"),
        pytest.param(wib("2026-12-03 21:59"), ["libur"], id="thu-before-night"),
        pytest.param(wib("2026-12-03 22:00"), ["malam", "libur"], id="thu-night"),
        pytest.param(wib("2026-12-04 01:59"), ["malam", "libur"], id="past-midnight"),
        pytest.param(wib("2026-12-04 02:00"), ["libur"], id="night-over"),
        pytest.param(
            datetime(2026, 12, 3, 15, 30, tzinfo=UTC), ["malam", "libur"], id="utc-now"
        ),
        pytest.param(wib("2026-12-23 21:59"), ["libur"], id="before-leave-in-wit"),
        pytest.param(wib("2026-12-23 22:00"), [], id="leave-starts-in-wit"),
        pytest.param(wib("2026-12-24 23:00"), ["malam"], id="on-leave"),
        pytest.param(wib("2026-12-26 21:59"), [], id="last-day-of-leave"),
        pytest.param(wib("2026-12-26 22:00"), ["libur"], id="back-in-wit"),
        pytest.param(wib("2026-08-16 23:59"), ["libur"], id="eve-of-holiday"),
        pytest.param(wib("2026-08-17 10:00"), [], id="holiday"),
        pytest.param(wib("2026-08-18 00:00"), ["libur"], id="after-holiday"),
    ],
)
def test_schedules_leave_and_holidays(
    now: datetime | None, expected: list[str]
) -> None:
    assert offered_in_turn(CLOCKS, now=now) == expected


def test_holidays_are_read_on_the_policys_clock() -> None:
    # 2026-08-16 23:30 in Jakarta is already the 17th in Jayapura.
    policy = Policy(
        CLOCKS.source,
        CLOCKS.counsellor_types,
        CLOCKS.counsellors,
        CLOCKS.categories,
        timezone=WIT,
        holidays=(AUGUST_17,),
    )

    assert offered_in_turn(policy, now=wib("2026-08-16 23:30")) == []
    assert offered_in_turn(CLOCKS, now=wib("2026-08-16 23:30")) == ["libur"]


def test_a_naive_now_is_a_bug() -> None:
    with pytest.raises(ValueError, match="now must be an aware datetime"):
        choose(CLOCKS, "k", IDLE, {}, set(), set(), now=datetime(2026, 12, 7, 10))


def test_schedules_and_capacity_together() -> None:
    loads = {LIBUR.user_id: Load(3), PAGI.user_id: Load(2)}

    choice = choose(CLOCKS, "k", IDLE, loads, set(), set(), now=wib("2026-12-07 12:00"))

    assert choice == Choice(TIMUR, 0, 300.0, new_round=False)


def test_a_timed_out_counsellor_off_duty_is_not_asked_again() -> None:
    now = wib("2026-12-07 16:30")
    timed_out = {PAGI.user_id}

    assert choose(CLOCKS, "k", IDLE, {}, {LIBUR.user_id}, timed_out, now=now) is None
    later = choose(
        CLOCKS, "k", IDLE, {}, {LIBUR.user_id}, timed_out, now=wib("2026-12-08 09:00")
    )
    assert later == Choice(PAGI, 0, 300.0, new_round=True)


def test_a_thousand_counsellors_on_schedules_decide_in_under_a_millisecond() -> None:
    """The other worst case: everybody free, so every clock is read."""
    shifts = [hours(**{d: ["08:00-16:00"]}) for d in ("mon", "tue", "wed")]
    counsellors = tuple(
        Counsellor(
            f"@c{i}:kota.test",
            f"C{i}",
            ("psikolog",),
            GENDERS_CYCLE[i % 2],
            ("id", "su") if i % 3 else ("id",),
            3,
            schedule=shifts[i % 3] if i % 4 else None,
            timezone=WIT if i % 5 == 0 else WIB,
            leave=((date(2026, 12, 1), date(2026, 12, 2)),) if i % 7 == 0 else (),
        )
        for i in range(1000)
    )
    policy = one_step_policy(counsellors)
    now = wib("2026-12-07 10:00")

    best_s = float("inf")
    for _ in range(20):
        start = time.perf_counter()
        assert choose(policy, "k", IDLE, {}, set(), set(), now=now, language="su")
        best_s = min(best_s, time.perf_counter() - start)
    assert best_s < 0.001


def test_the_duty_roster_agrees_with_each_counsellors_schedule() -> None:
    """Routing reads a roster built once; it must say what every schedule says."""
    rng = random.Random(4)
    shifts = ["08:00-12:00", "13:00-17:00", "22:00-02:00", "00:00-24:00", "23:30-00:30"]
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    counsellors = tuple(
        psychologist(
            f"k{i}",
            schedule=None
            if i % 5 == 0
            else hours(**{d: rng.sample(shifts, 2) for d in rng.sample(days, 3)}),
            timezone=rng.choice((WIB, WIT, ZoneInfo("Europe/Amsterdam"))),
            leave=((date(2026, 3, 28), date(2026, 3, 30)),) if i % 4 == 0 else (),
        )
        for i in range(30)
    )
    policy = one_step_policy(counsellors)
    # Around the change to summer time in Amsterdam (2026-03-29) and the
    # leave, and through a whole week.
    start = datetime(2026, 3, 27, tzinfo=UTC)

    for _ in range(150):
        now = start + timedelta(minutes=rng.randrange(7 * 1440))
        expected = {c.name for c in counsellors if c.on_duty(now)}
        assert set(offered_in_turn(policy, now=now)) == expected, now


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        pytest.param("2026-11-30", ["biasa", "selamanya", "dua"], id="before-leave"),
        pytest.param("2026-12-01", ["biasa"], id="both-leaves-start"),
        pytest.param("2026-12-15", ["biasa"], id="second-leave-overlaps-first"),
        pytest.param("2026-12-21", ["biasa", "dua"], id="second-leave-over"),
        pytest.param("9999-12-31", ["biasa", "dua"], id="for-ever-lasts"),
    ],
)
def test_a_leave_for_ever_and_overlapping_leaves(day: str, expected: list[str]) -> None:
    counsellors = (
        psychologist("biasa"),
        psychologist("selamanya", leave=((date(2026, 12, 1), date.max),)),
        psychologist(
            "dua",
            leave=(
                (date(2026, 12, 1), date(2026, 12, 10)),
                (date(2026, 12, 5), date(2026, 12, 20)),
            ),
        ),
    )
    policy = one_step_policy(counsellors)
    now = wib(f"{day} 12:00")

    assert offered_in_turn(policy, now=now) == expected
    assert [c.name for c in counsellors if c.on_duty(now)] == expected
    # The roster holds the days leave starts or ends, not every day of it.
    (roster,) = _rosters(counsellors).values()
    assert len(roster.leave_cuts) == 4


# Orders within a step. A, B and D are the psychologists, in that file order.
def ordered(order: str, named: tuple[str, ...] = ()) -> Policy:
    return one_step_policy(
        (A, B, C, D), RouteStep(("psikolog",), named, 60.0, order=order)
    )


@pytest.mark.parametrize(
    ("state", "loads", "expected"),
    [
        pytest.param({}, {}, A, id="nobody-offered-yet"),
        pytest.param({}, {"@a:kota.test": Load(1)}, B, id="never-offered-by-load"),
        pytest.param(
            {"@a:kota.test": 100.0, "@b:kota.test": 50.0}, {}, D, id="never-first"
        ),
        pytest.param(
            {"@a:kota.test": 100.0, "@b:kota.test": 50.0, "@d:kota.test": 200.0},
            {},
            B,
            id="longest-since-last-offer",
        ),
        pytest.param(
            {"@a:kota.test": 100.0, "@b:kota.test": 100.0, "@d:kota.test": 200.0},
            {"@a:kota.test": Load(2), "@b:kota.test": Load(1)},
            B,
            id="same-time-less-load",
        ),
        pytest.param(
            {"@a:kota.test": 100.0, "@b:kota.test": 100.0, "@d:kota.test": 200.0},
            {},
            A,
            id="same-time-file-order",
        ),
        pytest.param(
            {"@a:kota.test": 1.0, "@b:kota.test": 50.0, "@d:kota.test": 200.0},
            {"@a:kota.test": Load(3)},
            B,
            id="oldest-is-full",
        ),
    ],
)
def test_round_robin(
    state: dict[str, float], loads: dict[str, Load], expected: Counsellor
) -> None:
    choice = choose(
        ordered("round_robin"), "k", IDLE, loads, set(), set(), round_robin_state=state
    )

    assert choice is not None and choice.counsellor == expected


@pytest.mark.parametrize(
    ("named", "loads", "expected"),
    [
        pytest.param((), {"@a:kota.test": Load(2)}, A, id="file-order-over-load"),
        pytest.param(
            ("@d:kota.test", "@b:kota.test", "@a:kota.test"), {}, D, id="named-order"
        ),
        pytest.param(
            ("@d:kota.test", "@b:kota.test", "@a:kota.test"),
            {"@d:kota.test": Load(1)},
            B,
            id="next-named-when-first-is-full",
        ),
        pytest.param(
            ("@d:kota.test", "@b:kota.test", "@a:kota.test"),
            {"@d:kota.test": Load(0, pending_offer=True), "@b:kota.test": Load(3)},
            A,
            id="skips-pending-and-full",
        ),
    ],
)
def test_priority(
    named: tuple[str, ...], loads: dict[str, Load], expected: Counsellor
) -> None:
    choice = choose(ordered("priority", named), "k", IDLE, loads, set(), set())

    assert choice is not None and choice.counsellor == expected


@pytest.mark.parametrize(
    ("previous", "loads", "declined", "expected"),
    [
        pytest.param(None, {}, set(), A, id="no-previous-least-loaded"),
        pytest.param(
            "@b:kota.test", {"@b:kota.test": Load(2)}, set(), B, id="previous"
        ),
        pytest.param(
            "@b:kota.test", {"@b:kota.test": Load(3)}, set(), A, id="previous-full"
        ),
        pytest.param(
            "@b:kota.test",
            {"@a:kota.test": Load(1)},
            {"@b:kota.test"},
            D,
            id="declined",
        ),
        pytest.param("@c:kota.test", {}, set(), A, id="previous-not-in-step"),
        pytest.param("@x:kota.test", {}, set(), A, id="previous-unknown"),
    ],
)
def test_previous(
    previous: str | None,
    loads: dict[str, Load],
    declined: set[str],
    expected: Counsellor,
) -> None:
    choice = choose(
        ordered("previous"), "k", IDLE, loads, declined, set(), previous=previous
    )

    assert choice is not None and choice.counsellor == expected


def test_previous_off_duty_falls_back_to_least_loaded() -> None:
    step = RouteStep(("psikolog",), (), 60.0, order="previous")
    policy = one_step_policy((PAGI, MALAM), step)
    now = wib("2026-12-07 10:00")

    choice = choose(
        policy, "k", IDLE, {}, set(), set(), now=now, previous=MALAM.user_id
    )

    assert choice == Choice(PAGI, 0, 60.0, new_round=False)


def test_orders_other_than_previous_ignore_previous() -> None:
    choice = choose(
        ordered("least_loaded"), "k", IDLE, {}, set(), set(), previous=B.user_id
    )

    assert choice is not None and choice.counsellor == A


# Step filters and the warga's language.
SU = Counsellor(
    "@su:kota.test",
    "SU",
    ("psikolog",),
    "perempuan",
    ("id", "su"),
    3,
    skills=("kdrt",),
    religion="islam",
)
EN = Counsellor(
    "@en:kota.test",
    "EN",
    ("psikolog",),
    "laki-laki",
    ("en",),
    3,
    skills=("duka", "kdrt"),
    religion="kristen",
)
ID = Counsellor("@id:kota.test", "ID", ("keluarga",), "laki-laki", ("id",), 3)
SPEAKERS = (SU, EN, ID)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        pytest.param(
            RouteStep((), (), 60.0, skills=("kdrt",)), ["SU", "EN"], id="skill"
        ),
        pytest.param(
            RouteStep((), (), 60.0, skills=("duka",)), ["EN"], id="other-skill"
        ),
        pytest.param(
            RouteStep((), (), 60.0, languages=("su", "en")), ["SU", "EN"], id="language"
        ),
        pytest.param(
            RouteStep((), (), 60.0, genders=("laki-laki",)), ["EN", "ID"], id="gender"
        ),
        pytest.param(
            RouteStep(("psikolog",), (), 60.0, genders=("laki-laki",)),
            ["EN"],
            id="type-and-gender",
        ),
        pytest.param(
            RouteStep((), (), 60.0, pools=("piket",)), ["SU", "ID"], id="pool"
        ),
        pytest.param(
            RouteStep((), ("@en:kota.test",), 60.0, pools=("piket",)),
            ["SU", "EN", "ID"],
            id="named-or-pooled",
        ),
        pytest.param(
            RouteStep(("psikolog",), (), 60.0, pools=("piket",)),
            ["SU"],
            id="pool-and-type",
        ),
        pytest.param(RouteStep((), (), 60.0, pools=("nope",)), [], id="unknown-pool"),
    ],
)
def test_step_filters(step: RouteStep, expected: list[str]) -> None:
    policy = one_step_policy(
        SPEAKERS, step, pools={"piket": ("@id:kota.test", "@su:kota.test")}
    )

    assert offered_in_turn(policy) == expected
    assert [
        c.name for c in step_candidates(policy, policy.categories[0], step, IDLE)
    ] == expected


@pytest.mark.parametrize(
    ("pref", "expected"),
    [
        pytest.param(Preference(religion="islam"), "SU", id="islam"),
        pytest.param(Preference(religion="kristen"), "EN", id="kristen"),
        pytest.param(Preference(religion="hindu"), None, id="nobody"),
        pytest.param(
            Preference(religion="islam", gender="laki-laki"), None, id="and-gender"
        ),
    ],
)
def test_religion_preference(pref: Preference, expected: str | None) -> None:
    policy = one_step_policy(SPEAKERS, RouteStep(("psikolog", "keluarga"), (), 60.0))

    choice = choose(policy, "k", pref, {}, set(), set())

    assert (choice and choice.counsellor.name) == expected


ALL_SPEAKERS = RouteStep(("psikolog", "keluarga"), (), 60.0)


@pytest.mark.parametrize(
    ("language", "loads", "expected"),
    [
        pytest.param(None, {"@su:kota.test": Load(1)}, "EN", id="no-language"),
        pytest.param("su", {"@su:kota.test": Load(2)}, "SU", id="speaker-first"),
        pytest.param("su", {"@su:kota.test": Load(3)}, "ID", id="falls-back-to-id"),
        pytest.param("en", {"@en:kota.test": Load(2)}, "EN", id="english"),
        pytest.param("en", {"@en:kota.test": Load(3)}, "SU", id="english-falls-back"),
        pytest.param(
            "id",
            {"@su:kota.test": Load(3), "@id:kota.test": Load(3)},
            None,
            id="id-never-to-english-only",
        ),
        pytest.param("jv", {"@su:kota.test": Load(1)}, "ID", id="nobody-speaks-it"),
    ],
)
def test_warga_language(
    language: str | None, loads: dict[str, Load], expected: str | None
) -> None:
    policy = one_step_policy(SPEAKERS, ALL_SPEAKERS)

    choice = choose(policy, "k", IDLE, loads, set(), set(), language=language)

    assert (choice and choice.counsellor.name) == expected


def test_language_comes_before_step_order() -> None:
    """A Sundanese speaker further down the route beats the first step."""
    route = (RouteStep(("keluarga",), (), 60.0), RouteStep(("psikolog",), (), 30.0))
    category = Category("k", labels("K"), labels(""), False, False, route)
    policy = Policy(POLICY.source, POLICY.counsellor_types, SPEAKERS, (category,))

    assert choose(policy, "k", IDLE, {}, set(), set(), language="su") == Choice(
        SU, 1, 30.0, new_round=False
    )
    assert choose(policy, "k", IDLE, {}, set(), set()) == Choice(ID, 0, 60.0, False)


def test_a_fresh_counsellor_comes_before_a_timed_out_speaker() -> None:
    policy = one_step_policy(SPEAKERS, ALL_SPEAKERS)
    timed_out = {SU.user_id}

    fresh = choose(policy, "k", IDLE, {}, set(), timed_out, language="su")
    assert fresh == Choice(ID, 0, 60.0, new_round=False)
    again = choose(policy, "k", IDLE, {}, {ID.user_id}, timed_out, language="su")
    assert again == Choice(SU, 0, 60.0, new_round=True)


# Service hours: open on weekdays 07:00-22:00 and Saturday mornings, in Jakarta.
SERVICE = Policy(
    POLICY.source,
    POLICY.counsellor_types,
    POLICY.counsellors,
    POLICY.categories,
    service_hours=hours(**{d: ["07:00-22:00"] for d in WEEKDAYS}, sat=["08:00-14:00"]),
    holidays=((date(2026, 12, 25), date(2026, 12, 25)),),
)
ALWAYS = Policy(
    POLICY.source,
    POLICY.counsellor_types,
    POLICY.counsellors,
    POLICY.categories,
    holidays=((date(2026, 12, 24), date(2026, 12, 26)),),
)


@pytest.mark.parametrize(
    ("policy", "now", "opens"),
    [
        pytest.param(
            SERVICE, wib("2026-12-07 10:00"), wib("2026-12-07 10:00"), id="open"
        ),
        pytest.param(
            SERVICE, wib("2026-12-07 06:59:30"), wib("2026-12-07 07:00"), id="early"
        ),
        pytest.param(
            SERVICE, wib("2026-12-07 22:00"), wib("2026-12-08 07:00"), id="late"
        ),
        pytest.param(
            SERVICE, wib("2026-12-05 14:00"), wib("2026-12-07 07:00"), id="weekend"
        ),
        pytest.param(
            SERVICE,
            wib("2026-12-24 23:00"),
            wib("2026-12-26 08:00"),
            id="christmas-eve",
        ),
        pytest.param(
            SERVICE, wib("2026-12-25 10:00"), wib("2026-12-26 08:00"), id="christmas"
        ),
        pytest.param(
            SERVICE,
            datetime(2026, 12, 7, 0, 30, tzinfo=UTC),
            wib("2026-12-07 07:30"),
            id="utc-in-hours",
        ),
        pytest.param(
            ALWAYS, wib("2026-12-23 23:59"), wib("2026-12-23 23:59"), id="always"
        ),
        pytest.param(
            ALWAYS, wib("2026-12-25 10:00"), wib("2026-12-27 00:00"), id="holidays"
        ),
    ],
)
def test_service_hours(policy: Policy, now: datetime, opens: datetime) -> None:
    opening = next_opening(policy, now)

    assert service_open(policy, now) is (opening == now)
    assert opening == opens
    assert opening is not None and opening.tzinfo == WIB


def test_a_service_without_hours_or_holidays_is_always_open() -> None:
    now = datetime(2026, 12, 25, 3, 0, tzinfo=UTC)

    assert service_open(POLICY, now)
    assert next_opening(POLICY, now) == now


def test_a_service_that_never_opens_has_no_next_opening() -> None:
    never = Policy(
        POLICY.source,
        POLICY.counsellor_types,
        POLICY.counsellors,
        POLICY.categories,
        service_hours=WeeklyHours(()),
    )
    now = wib("2026-12-07 10:00")

    assert not service_open(never, now)
    assert next_opening(never, now) is None


@pytest.mark.parametrize(
    ("last", "opens"),
    [
        pytest.param(date(2036, 12, 6), wib("2036-12-08 07:00"), id="ten-years"),
        pytest.param(date.max, None, id="for-ever"),
    ],
)
def test_a_long_holiday_is_skipped_at_once(last: date, opens: datetime | None) -> None:
    # Overlapping ranges, the longest written last: the next day after it counts.
    holidays = ((date(2026, 12, 1), date(2026, 12, 31)), (date(2026, 12, 20), last))
    closed = replace(SERVICE, holidays=holidays)

    assert next_opening(closed, wib("2026-12-07 10:00")) == opens


@pytest.mark.parametrize("check", [service_open, next_opening])
def test_service_hours_need_an_aware_now(
    check: Callable[[Policy, datetime], object],
) -> None:
    with pytest.raises(ValueError, match="now must be an aware datetime"):
        check(SERVICE, datetime(2026, 12, 7, 10))


# The shipped sample, at a few moments of a real week.
SAMPLE = load_policy(REPO / "policies" / "sukabumi.yaml")


def sample_choice(category: str, now: datetime, **options: Any) -> str | None:
    choice = choose(SAMPLE, category, IDLE, {}, set(), set(), now=now, **options)
    return None if choice is None else choice.counsellor.name


@pytest.mark.parametrize(
    ("category", "now", "options", "expected"),
    [
        pytest.param(
            "sosial", wib("2026-12-07 14:00"), {}, "Ibu Rina", id="mon-both-on"
        ),
        pytest.param(
            "sosial",
            wib("2026-12-07 14:00"),
            {
                "round_robin_state": {
                    "@rina:sukabumi.test": 10.0,
                    "@budi:sukabumi.test": 5.0,
                }
            },
            "Pak Budi",
            id="mon-budis-turn",
        ),
        pytest.param(
            "sosial", wib("2026-12-08 14:00"), {}, "Ibu Rina", id="tue-rina-only"
        ),
        pytest.param(
            "sosial", wib("2026-12-03 14:00"), {}, "Pak Budi", id="thu-budi-only"
        ),
        pytest.param(
            "sosial", wib("2026-12-03 20:00"), {}, "Ibu Siti", id="thu-evening"
        ),
        pytest.param(
            "sosial", wib("2026-12-06 00:30"), {}, "Ibu Rina", id="sat-night-shift"
        ),
        pytest.param("sosial", wib("2026-12-24 20:00"), {}, None, id="siti-on-leave"),
        pytest.param("keluarga", wib("2026-12-25 10:00"), {}, None, id="christmas"),
        pytest.param(
            "keluarga",
            wib("2026-12-03 14:00"),
            {"language": "su", "previous": "@siti:sukabumi.test"},
            "Ibu Siti",
            id="previous",
        ),
    ],
)
def test_sample_policy_over_a_week(
    category: str, now: datetime, options: dict[str, object], expected: str | None
) -> None:
    assert sample_choice(category, now, **options) == expected


# A counsellor's own word: !siap (True) and !istirahat (False).
@pytest.mark.parametrize(
    ("now", "available", "expected"),
    [
        pytest.param(
            wib("2026-08-17 10:00"), {"@pagi:kota.test": True}, ["pagi"], id="holiday"
        ),
        pytest.param(
            wib("2026-08-17 10:00"),
            {"@pagi:kota.test": False},
            [],
            id="holiday-nobody-said-yes",
        ),
        pytest.param(
            wib("2026-12-07 10:00"),
            {"@malam:kota.test": True},
            ["pagi", "malam", "libur"],
            id="off-schedule",
        ),
        pytest.param(
            wib("2026-12-24 23:00"),
            {"@libur:kota.test": True},
            ["malam", "libur"],
            id="on-leave",
        ),
        pytest.param(
            wib("2026-12-07 10:00"),
            {"@pagi:kota.test": False},
            ["libur"],
            id="away-while-on-schedule",
        ),
        pytest.param(
            wib("2026-12-07 10:00"),
            {"@pagi:kota.test": True, "@libur:kota.test": False},
            ["pagi"],
            id="both-ways",
        ),
        pytest.param(
            None, {"@pagi:kota.test": False}, ["malam", "timur", "libur"], id="no-clock"
        ),
        pytest.param(
            None,
            {"@pagi:kota.test": True},
            ["pagi", "malam", "timur", "libur"],
            id="no-clock-already-on",
        ),
        pytest.param(wib("2026-12-07 10:00"), {}, ["pagi", "libur"], id="empty"),
        pytest.param(
            wib("2026-12-07 10:00"),
            {"@stranger:kota.test": True},
            ["pagi", "libur"],
            id="unknown-user",
        ),
    ],
)
def test_a_counsellors_own_word_overrides_the_clock(
    now: datetime | None, available: dict[str, bool], expected: list[str]
) -> None:
    assert offered_in_turn(CLOCKS, now=now, available=available) == expected


def test_an_override_does_not_lift_capacity_or_a_decline() -> None:
    now = wib("2026-08-17 10:00")
    available = {PAGI.user_id: True, MALAM.user_id: True}
    loads = {PAGI.user_id: full(PAGI)}

    choice = choose(
        CLOCKS, "k", IDLE, loads, {MALAM.user_id}, set(), now=now, available=available
    )

    assert choice is None


def test_an_override_on_a_holiday_still_follows_the_route() -> None:
    now = wib("2026-08-17 10:00")
    timed_out = {TIMUR.user_id}

    choice = choose(
        CLOCKS,
        "k",
        IDLE,
        {},
        set(),
        timed_out,
        now=now,
        available={TIMUR.user_id: True},
    )

    assert choice == Choice(TIMUR, 0, 300.0, new_round=True)


# Urgent curhats go to those on call, in the written order, holidays or not.
ON_CALL = replace(
    CLOCKS,
    urgent=Urgent(
        ("bunuh diri",),
        (LIBUR.user_id, PAGI.user_id, MALAM.user_id, TIMUR.user_id),
        parallel=2,
    ),
)


def on_call(**options: Any) -> list[str]:
    loads = options.pop("loads", {})
    exclude = options.pop("exclude", frozenset())
    return [c.name for c in choose_on_call(ON_CALL, loads, exclude, **options)]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param({}, ["libur", "pagi"], id="parallel-in-written-order"),
        pytest.param({"count": 1}, ["libur"], id="count-one"),
        pytest.param({"count": 9}, ["libur", "pagi", "malam", "timur"], id="all"),
        pytest.param({"count": 0}, [], id="count-zero"),
        pytest.param(
            {"exclude": {"@libur:kota.test"}}, ["pagi", "malam"], id="excluded"
        ),
        pytest.param(
            {"loads": {"@libur:kota.test": Load(3), "@pagi:kota.test": Load(2)}},
            ["pagi", "malam"],
            id="at-capacity",
        ),
        pytest.param(
            {"loads": {"@libur:kota.test": Load(0, pending_offer=True)}},
            ["libur", "pagi"],
            id="pending-offer-elsewhere",
        ),
        pytest.param(
            {"now": wib("2026-12-07 10:00"), "count": 9},
            ["libur", "pagi"],
            id="mon-morning",
        ),
        pytest.param(
            {"now": wib("2026-12-03 22:30"), "count": 9},
            ["libur", "malam"],
            id="thu-night",
        ),
        pytest.param(
            {"now": wib("2026-08-17 10:00"), "count": 9},
            ["libur", "pagi"],
            id="holiday-does-not-stop-on-call",
        ),
        pytest.param(
            {"now": wib("2026-12-24 10:00"), "count": 9},
            ["pagi"],
            id="leave",
        ),
        pytest.param(
            {
                "now": wib("2026-12-07 10:00"),
                "available": {"@malam:kota.test": True, "@libur:kota.test": False},
                "count": 9,
            },
            ["pagi", "malam"],
            id="overrides",
        ),
    ],
)
def test_choose_on_call(options: dict[str, Any], expected: list[str]) -> None:
    assert on_call(**options) == expected


def test_no_urgent_section_means_nobody_on_call() -> None:
    assert choose_on_call(CLOCKS, {}, set()) == []


def test_on_call_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="now must be an aware datetime"):
        choose_on_call(ON_CALL, {}, set(), now=datetime(2026, 12, 7, 10))


def test_sample_policy_on_call_at_christmas() -> None:
    # Friday 2026-12-25: a holiday, Siti on leave, Rina off schedule; Ahmad works.
    chosen = choose_on_call(SAMPLE, {}, set(), now=wib("2026-12-25 10:00"))

    assert [c.name for c in chosen] == ["Ustaz Ahmad"]


# A referral category sends the warga elsewhere; nobody is ever offered it.
REFERRAL_POLICY = replace(
    POLICY,
    categories=(
        *POLICY.categories,
        Category(
            "rujukan",
            labels("Rujukan"),
            labels(""),
            False,
            False,
            (),
            referral=Referral("https://super.kota.test", labels("Lewat SUPER.")),
        ),
    ),
)


def test_a_referral_category_is_never_routed() -> None:
    rujukan = REFERRAL_POLICY.category("rujukan")
    assert rujukan is not None

    now = wib("2026-12-07 10:00")
    available = {A.user_id: True}

    assert pick(policy=REFERRAL_POLICY, category="rujukan") is None
    routed = choose(
        REFERRAL_POLICY, "rujukan", IDLE, {}, set(), set(), now=now, available=available
    )
    assert routed is None
    assert REFERRAL_POLICY.reachable(rujukan) == ()
    assert preference_options(REFERRAL_POLICY, rujukan) == ([], [])
    assert religion_options(REFERRAL_POLICY, rujukan) == []
    assert pick(policy=REFERRAL_POLICY) == Choice(C, 0, 600.0, new_round=False)


def test_religion_options_in_file_order() -> None:
    faithful = (
        replace(A, religion="kristen"),
        replace(B, religion="islam"),
        C,
        replace(D, religion="islam"),
    )
    policy = replace(POLICY, counsellors=faithful)
    category = policy.categories[0]

    assert religion_options(policy, category) == ["kristen", "islam"]
    assert religion_options(policy, category, Preference(gender="laki-laki")) == [
        "islam"
    ]
    assert religion_options(policy, category, Preference(type="keluarga")) == []
    assert religion_options(SAMPLE, SAMPLE.categories[0]) == ["islam"]


# -- preference fallback --------------------------------------------------------------

WANITA = Preference(gender="perempuan")
# Two men on a morning shift, one woman at night: the woman is off duty by day.
PRIA_PAGI = Counsellor(
    "@pria:kota.test",
    "pria",
    ("psikolog",),
    "laki-laki",
    schedule=hours(**{d: ["08:00-16:00"] for d in WEEKDAYS}),
)
PRIA_PENUH = Counsellor(
    "@penuh:kota.test", "penuh", ("psikolog",), "laki-laki", max_open=1
)
WANITA_MALAM = psychologist("wanita", schedule=hours(thu=["22:00-02:00"]))
FALLBACK_15M = 900.0


def fallback_policy(category_s: float | None, queue_s: float = NEVER) -> Policy:
    """One psychologists' step over the three above, with the fallbacks given."""
    policy = one_step_policy((WANITA_MALAM, PRIA_PAGI, PRIA_PENUH))
    category = replace(policy.categories[0], preference_fallback_s=category_s)
    return Policy(
        policy.source,
        policy.counsellor_types,
        policy.counsellors,
        (category,),
        queue=QueueRules(preference_fallback_s=queue_s),
    )


THU_NIGHT = wib("2026-12-03 23:00")  # the woman is on duty
MON_DAY = wib("2026-12-07 10:00")  # only the men are
MON_EVENING = wib("2026-12-07 20:00")  # nobody is


@pytest.mark.parametrize(
    ("policy", "now", "waited_s", "loads", "expected"),
    [
        pytest.param(
            fallback_policy(FALLBACK_15M),
            THU_NIGHT,
            3600.0,
            {},
            ("wanita", False),
            id="match-found-no-fallback",
        ),
        pytest.param(
            fallback_policy(FALLBACK_15M),
            MON_DAY,
            FALLBACK_15M - 1,
            {},
            None,
            id="nobody-matches-fallback-not-reached",
        ),
        pytest.param(
            fallback_policy(FALLBACK_15M),
            MON_DAY,
            FALLBACK_15M,
            {},
            ("pria", True),
            id="fallback-reached-relaxed",
        ),
        pytest.param(
            fallback_policy(FALLBACK_15M),
            MON_DAY,
            None,
            {},
            None,
            id="no-wait-given-no-fallback",
        ),
        pytest.param(
            fallback_policy(NEVER),
            MON_DAY,
            7 * 24 * 3600.0,
            {},
            None,
            id="never",
        ),
        pytest.param(
            fallback_policy(None, queue_s=FALLBACK_15M),
            MON_DAY,
            FALLBACK_15M,
            {},
            ("pria", True),
            id="queue-default-applies",
        ),
        pytest.param(
            fallback_policy(NEVER, queue_s=FALLBACK_15M),
            MON_DAY,
            FALLBACK_15M,
            {},
            None,
            id="category-never-beats-queue",
        ),
        pytest.param(
            fallback_policy(FALLBACK_15M),
            MON_DAY,
            FALLBACK_15M,
            {"@pria:kota.test": Load(3)},
            ("penuh", True),
            id="relaxed-pass-respects-capacity",
        ),
        pytest.param(
            fallback_policy(FALLBACK_15M),
            MON_DAY,
            FALLBACK_15M,
            {"@pria:kota.test": Load(3), "@penuh:kota.test": Load(1)},
            None,
            id="relaxed-pass-everyone-full",
        ),
        pytest.param(
            fallback_policy(FALLBACK_15M),
            MON_EVENING,
            FALLBACK_15M,
            {"@penuh:kota.test": Load(1)},
            None,
            id="relaxed-pass-respects-schedules",
        ),
        pytest.param(
            fallback_policy(FALLBACK_15M),
            THU_NIGHT,
            FALLBACK_15M,
            {"@wanita:kota.test": Load(0, pending_offer=True)},
            ("penuh", True),
            id="matching-counsellor-busy-with-an-offer",
        ),
    ],
)
def test_preference_fallback(
    policy: Policy,
    now: datetime,
    waited_s: float | None,
    loads: dict[str, Load],
    expected: tuple[str, bool] | None,
) -> None:
    choice = choose(
        policy, "k", WANITA, loads, set(), set(), now=now, waited_s=waited_s
    )

    assert (choice and (choice.counsellor.name, choice.relaxed)) == expected


def test_relaxed_pass_keeps_what_must_stay() -> None:
    # A hand-over to a type keeps the type when the gender is let go of.
    policy = replace_policy_fallback(make_policy((PSY_STEP, FAMILY_STEP)), 60.0)
    wanted = Preference(type="keluarga", gender="laki-laki")

    strict = choose(policy, "k0", wanted, {}, set(), set(), waited_s=59.0)
    relaxed = choose(
        policy,
        "k0",
        wanted,
        {},
        set(),
        set(),
        waited_s=60.0,
        relaxed=Preference(type="keluarga"),
    )

    assert strict is None
    assert relaxed == Choice(C, 1, 600.0, new_round=False, relaxed=True)


def test_relaxed_pass_skips_who_declined_and_asks_timed_out_again() -> None:
    policy = fallback_policy(FALLBACK_15M)
    pria, penuh = PRIA_PAGI.user_id, PRIA_PENUH.user_id
    options: dict[str, Any] = {"now": MON_DAY, "waited_s": FALLBACK_15M}

    again = choose(policy, "k", WANITA, {}, {pria}, {penuh}, **options)
    nobody = choose(policy, "k", WANITA, {}, {pria, penuh}, set(), **options)

    assert again == Choice(PRIA_PENUH, 0, 300.0, new_round=True, relaxed=True)
    assert nobody is None


def replace_policy_fallback(policy: Policy, seconds: float) -> Policy:
    return Policy(
        policy.source,
        policy.counsellor_types,
        policy.counsellors,
        policy.categories,
        queue=QueueRules(preference_fallback_s=seconds),
    )
