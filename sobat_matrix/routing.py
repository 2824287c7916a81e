"""Who gets the next offer of a curhat: pure decisions over a policy and loads.

Nothing here does I/O or keeps state; the caller passes in the current loads, who
already declined or let an offer time out, and (optionally) the time, so every rule
can be tested with plain values. A warga's preferences narrow the route; they never
widen it, and they are only let go of when the policy's ``preference_fallback``
says so (rule 5).

The rules, in order:

1. A counsellor is available if they are under capacity (``open_curhats <
   max_open``), hold no pending offer, did not decline this curhat and match the
   warga's preference. Given ``now``, they must also be on their schedule and not on
   leave (on their own clock), and ``now`` must not be one of the policy's holidays
   (on the policy's clock): on a holiday nobody is offered anything. Without
   ``now`` the time is ignored, as before schedules existed. A counsellor's own
   word overrides all that time: ``!siap`` (``available`` true) puts them on duty
   whatever the schedule, leave or holiday says, ``!istirahat`` (false) keeps them
   from every offer.
2. Walk the category's route step by step, leaving out those whose offer timed
   out. The first step with anybody available decides; its ``order`` picks one of
   them (``least_loaded``, ``round_robin``, ``priority`` or ``previous``, see
   :mod:`sobat_matrix.policy`), ties going to file order. A step with nobody
   available falls through to the next: that is the route's fallback.
3. Given the warga's ``language`` (the one they chose at intake, else the bot's),
   the route is walked first among counsellors who speak it; if nobody is
   available, again among those who speak Bahasa Indonesia, which every warga of
   the service can read. A language is a wish, not a wall: rule 5 never needs to
   let go of it.
4. If nobody is available, start a new round among those whose offer timed out
   (not those who declined): a counsellor who missed an offer may be free now.
5. If still nobody matching the preference is available, and the curhat has waited
   the category's ``preference_fallback`` (given as ``waited_s``), rules 1-4 run
   again with the preference relaxed to what the caller says must stay (by default
   nothing; a hand-over to a counsellor type keeps the type). Such a choice is
   flagged ``relaxed``, so the warga can be told. A matching counsellor who is
   available always goes first: the relaxed pass runs only when the strict one
   found nobody. With ``never`` the fallback never comes.

An urgent curhat does not follow a route: :func:`choose_on_call` names the
counsellors on call who can take it at once, holidays or not.

Whether to take a curhat at all is a separate question: :func:`service_open` and
:func:`next_opening` answer it from the policy's ``service_hours`` and holidays;
:func:`choose` still offers a waiting curhat to anyone on duty out of hours.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from types import MappingProxyType
from zoneinfo import ZoneInfo

from sobat_matrix.policy import (
    GENDERS,
    MINUTES_PER_WEEK,
    REFERENCE_LANGUAGE,
    Category,
    Counsellor,
    DateRange,
    Policy,
    RouteStep,
    minute_of_week,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preference:
    """What the warga asked for at intake; ``None`` means no preference.

    ``religion`` matches ``Counsellor.religion``; a counsellor without one never
    matches a religion preference.
    """

    type: str | None = None
    gender: str | None = None
    religion: str | None = None

    def accepts(self, counsellor: Counsellor) -> bool:
        if self.type is not None and self.type not in counsellor.types:
            return False
        if self.religion is not None and self.religion != counsellor.religion:
            return False
        return self.gender is None or self.gender == counsellor.gender


@dataclass(frozen=True)
class Load:
    """How busy a counsellor is right now."""

    open_curhats: int = 0
    pending_offer: bool = False


@dataclass(frozen=True)
class Choice:
    """The counsellor to offer the curhat to, and at which step of the route.

    ``new_round`` is true when everybody had been tried and this counsellor is
    asked again after an earlier offer timed out. ``relaxed`` is true when nobody
    matching the warga's preference was available and the policy's
    ``preference_fallback`` let the curhat go to this counsellor instead.
    """

    counsellor: Counsellor
    step_index: int
    timeout_s: float
    new_round: bool
    relaxed: bool = False


_NO_LOAD = Load()
_ANYONE = Preference()
_NOBODY: frozenset[str] = frozenset()
_NO_OVERRIDES: Mapping[str, bool] = MappingProxyType({})

_Group = dict[str, tuple[Counsellor, int]]
"""Available counsellors: user ID -> (counsellor, open curhats), in file order."""


def step_candidates(
    policy: Policy, category: Category, step: RouteStep, pref: Preference
) -> list[Counsellor]:
    """Counsellors ``step`` admits who match ``pref``, in file order.

    ``category`` is not needed to decide today; it is taken so callers do not have
    to change if a category ever narrows its steps further.
    """
    return [c for c in policy.step_pool(step) if pref.accepts(c)]


def preference_options(
    policy: Policy, category: Category, given: Preference = Preference()
) -> tuple[list[str], list[str]]:
    """The counsellor types and genders a warga can usefully pick for ``category``.

    Types come in ``counsellor_types`` order and genders with ``perempuan`` first,
    limited to counsellors the route can reach, so the intake menu never offers a
    choice that nobody can serve. ``given`` narrows the second question by the
    answer to the first (after a type is picked, only genders with that type).
    """
    reachable = [c for c in policy.reachable(category) if given.accepts(c)]
    have_types = {t for c in reachable for t in c.types}
    have_genders = {c.gender for c in reachable}
    types = [t for t in policy.counsellor_types if t in have_types]
    genders = [g for g in GENDERS if g in have_genders]
    return types, genders


def religion_options(
    policy: Policy, category: Category, given: Preference = Preference()
) -> list[str]:
    """The religions a warga can usefully ask for in ``category``, in file order.

    Each religion as first seen among the counsellors the route can reach who
    match ``given`` (the answers so far); counsellors without one add nothing.
    """
    reachable = (c for c in policy.reachable(category) if given.accepts(c))
    religions = (c.religion for c in reachable if c.religion is not None)
    return list(dict.fromkeys(religions))


def language_options(
    policy: Policy, category: Category, given: Preference = Preference()
) -> list[str]:
    """The languages a warga can usefully ask for in ``category``.

    Those spoken by the counsellors the route can reach who match ``given`` (the
    answers so far): Bahasa Indonesia first, then each as first seen in file
    order. Asking for one is a wish (rule 3), so the list says who speaks what,
    not who will answer.
    """
    reachable = (c for c in policy.reachable(category) if given.accepts(c))
    spoken = dict.fromkeys(lang for c in reachable for lang in c.languages)
    return sorted(spoken, key=lambda lang: lang != REFERENCE_LANGUAGE)


def choose(
    policy: Policy,
    category_key: str,
    pref: Preference,
    loads: Mapping[str, Load],
    declined: Set[str],
    timed_out: Set[str],
    *,
    now: datetime | None = None,
    language: str | None = None,
    previous: str | None = None,
    round_robin_state: Mapping[str, float] | None = None,
    available: Mapping[str, bool] | None = None,
    waited_s: float | None = None,
    relaxed: Preference = _ANYONE,
) -> Choice | None:
    """The next counsellor to offer a curhat of ``category_key`` to, or ``None``.

    ``loads`` is keyed by counsellor user ID; a counsellor missing from it is idle.
    ``now`` (an aware datetime) turns on schedules, leave and holidays; ``language``
    is the warga's; ``previous`` is the user ID of the counsellor this warga had
    before, for ``order: previous``; ``round_robin_state`` holds each counsellor's
    last offer time (any increasing number, such as a Unix time), for ``order:
    round_robin``. ``available`` holds the counsellors' own overrides by user ID:
    true is on duty now (schedule, leave and holidays aside), false is away; a
    counsellor missing from it follows the schedule. ``waited_s`` is how long the
    curhat has waited for a counsellor (``None``: the fallback is not asked for);
    once it reaches the category's ``preference_fallback``, a curhat nobody
    matching ``pref`` can take goes to someone matching ``relaxed`` instead, and
    the choice says so. ``None`` means nobody can take it now (all full, busy,
    off duty, away or declined; always for a referral category); the caller
    tries again when a load or the time changes. Raises :class:`KeyError` for a
    category the policy does not have and :class:`ValueError` for a naive
    ``now``: both are bugs in the caller, not routing outcomes.
    """
    category = policy.category(category_key)
    if category is None:
        raise KeyError(category_key)
    overrides = available or _NO_OVERRIDES
    duty = _Duty(overrides)
    if now is not None:
        _require_aware(now)
        if policy.is_holiday(now):
            # Nobody works on a holiday but those who said they do.
            if True not in overrides.values():
                return None
            duty = _Duty(overrides, holiday=True)
        else:
            duty = _Duty(overrides, _off_duty(policy, now))

    orders = _Orders(previous, round_robin_state or {})
    route = partial(
        _route, policy, category, loads, declined, timed_out, duty, orders, language
    )
    choice = route(pref)
    if choice is not None or relaxed == pref:
        return choice
    if not fallback_due(policy, category, waited_s):
        return None
    choice = route(relaxed)
    return None if choice is None else replace(choice, relaxed=True)


def fallback_due(policy: Policy, category: Category, waited_s: float | None) -> bool:
    """Whether a curhat of ``category`` that waited ``waited_s`` may be relaxed."""
    return waited_s is not None and waited_s >= policy.preference_fallback_s(category)


def matching_ids(
    policy: Policy, category: Category, pref: Preference
) -> frozenset[str]:
    """User IDs of the counsellors the route reaches who match ``pref``.

    Busy, away or not: whether anybody could ever take the curhat. Worked out once
    per category and preference, like the candidates.
    """
    return policy.derived(
        ("routing.matching_ids", category.key, pref),
        lambda: frozenset(c.user_id for c in _matching(policy, category, pref)),
    )


def _route(
    policy: Policy,
    category: Category,
    loads: Mapping[str, Load],
    declined: Set[str],
    timed_out: Set[str],
    duty: _Duty,
    orders: _Orders,
    language: str | None,
    pref: Preference,
) -> Choice | None:
    """Rules 1 to 4 of the module for one preference."""
    fresh, retry = _available(policy, category, pref, loads, declined, timed_out, duty)
    for group, new_round in ((fresh, False), (retry, True)):
        for lang in _language_passes(language):
            members = group if lang is None else _speaking(group, lang)
            if not members:
                continue
            for index, step in enumerate(category.route):
                best = orders.pick(policy, step, members)
                if best is not None:
                    return Choice(best, index, step.timeout_s, new_round)
    return None


def choose_on_call(
    policy: Policy,
    loads: Mapping[str, Load],
    exclude: Set[str],
    *,
    now: datetime | None = None,
    available: Mapping[str, bool] | None = None,
    count: int | None = None,
) -> list[Counsellor]:
    """The on-call counsellors to offer an urgent curhat to now, in written order.

    Those of ``policy.urgent.on_call`` who are on duty (schedule and leave, with
    ``available`` overriding as in :func:`choose`; a holiday does not stop them),
    under capacity and not in ``exclude`` (who declined this curhat, let its offer
    time out or hold an offer of it now). A pending offer of another curhat does
    not stop them: an urgent curhat goes first. At most ``count``, by default
    ``policy.urgent.parallel``; empty without an urgent section.
    """
    urgent = policy.urgent
    if urgent is None:
        return []
    limit = urgent.parallel if count is None else count
    duty = _Duty(available or _NO_OVERRIDES)
    if now is not None:
        _require_aware(now)
        duty = _Duty(duty.overrides, _off_duty(policy, now))

    chosen: list[Counsellor] = []
    for user_id in urgent.on_call:
        if len(chosen) >= limit:
            break
        counsellor = policy.counsellor(user_id)
        if counsellor is None or user_id in exclude or not duty.on(user_id):
            continue
        if loads.get(user_id, _NO_LOAD).open_curhats >= counsellor.max_open:
            continue
        chosen.append(counsellor)
    return chosen


def service_open(policy: Policy, now: datetime) -> bool:
    """Whether the service takes curhats at ``now`` (aware): in hours, no holiday."""
    _require_aware(now)
    if policy.is_holiday(now):
        return False
    hours = policy.service_hours
    return hours is None or hours.is_open(
        minute_of_week(now.astimezone(policy.timezone))
    )


def next_opening(policy: Policy, now: datetime) -> datetime | None:
    """The first moment at or after ``now`` (aware) when the service is open.

    ``now`` itself if it is open, on the policy's clock. ``None`` only if the
    service never opens, which a loaded policy rules out.
    """
    _require_aware(now)
    zone = policy.timezone
    local = now.astimezone(zone)
    hours = policy.service_hours

    # Each turn either skips a whole holiday or moves to the next opening; past
    # as many turns as there are holidays (twice, plus slack) nothing can open.
    for _ in range(2 * len(policy.holidays) + 3):
        last = _holiday_through(local.date(), policy.holidays)
        if last == date.max:
            return None
        if last is not None:
            local = _midnight_after(last, zone)
            continue
        wait = 0 if hours is None else hours.minutes_until_open(minute_of_week(local))
        if wait is None:
            return None
        if wait == 0:
            return local
        start = local.replace(second=0, microsecond=0) + timedelta(minutes=wait)
        local = _real(start, zone)
    return None


def _holiday_through(day: date, holidays: Sequence[DateRange]) -> date | None:
    """The last day of the holidays ``day`` falls in, or ``None`` if none."""
    lasts = [last for first, last in holidays if first <= day <= last]
    return max(lasts, default=None)


def _midnight_after(day: date, zone: ZoneInfo) -> datetime:
    return _real(datetime.combine(day + timedelta(days=1), time(), zone), zone)


def _real(wall: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time as a real instant on ``zone``'s clock.

    Wall-clock arithmetic can land in a daylight-saving gap, a time that never
    happens; the round trip through UTC moves it to one that does.
    """
    return wall.astimezone(UTC).astimezone(zone)


def _require_aware(now: datetime) -> None:
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")


def _available(
    policy: Policy,
    category: Category,
    pref: Preference,
    loads: Mapping[str, Load],
    declined: Set[str],
    timed_out: Set[str],
    duty: _Duty,
) -> tuple[_Group, _Group]:
    """Available counsellors the route reaches, fresh and timed out, in file order.

    Each maps user ID to the counsellor and their open curhats. This is the one
    pass over every counsellor, so each test in it is a lookup.
    """
    # Bound once: this loop runs for every counsellor on every decision.
    load_of = loads.get
    off_duty = duty.off
    # Without overrides (the usual case) a set lookup says it all.
    said = duty.on if duty.overrides else None
    fresh: _Group = {}
    retry: _Group = {}
    for counsellor in _matching(policy, category, pref):
        user_id = counsellor.user_id
        if user_id in declined:
            continue
        load = load_of(user_id, _NO_LOAD)
        if load.pending_offer or load.open_curhats >= counsellor.max_open:
            continue
        if said is None:
            if user_id in off_duty:
                continue
        elif not said(user_id):
            continue
        group = retry if user_id in timed_out else fresh
        group[user_id] = (counsellor, load.open_curhats)
    return fresh, retry


def _matching(
    policy: Policy, category: Category, pref: Preference
) -> tuple[Counsellor, ...]:
    """Counsellors the route reaches who match ``pref``, in file order.

    Worked out once per category and preference for the life of the policy: there
    are only as many preferences as types, genders and religions allow.
    """
    if pref == _ANYONE:
        return policy.reachable(category)
    return policy.derived(
        ("routing.matching", category.key, pref),
        lambda: tuple(c for c in policy.reachable(category) if pref.accepts(c)),
    )


@dataclass(frozen=True)
class _Duty:
    """Who is on duty: the schedules and leave (``off``), then the overrides.

    ``holiday`` puts everybody off duty who did not say otherwise.
    """

    overrides: Mapping[str, bool]
    off: Set[str] = _NOBODY
    holiday: bool = False

    def on(self, user_id: str) -> bool:
        if self.overrides:
            said = self.overrides.get(user_id)
            if said is not None:
                return said
        return not self.holiday and user_id not in self.off


def _off_duty(policy: Policy, now: datetime) -> Set[str]:
    """User IDs of the counsellors off schedule or on leave at ``now``."""
    rosters = policy.derived("routing.rosters", lambda: _rosters(policy.counsellors))
    off: list[Set[str]] = []
    for zone, roster in rosters.items():
        local = now.astimezone(zone)
        off.append(roster.off_at(minute_of_week(local)))
        off.append(roster.on_leave_at(local.date()))

    off = [ids for ids in off if ids]
    if len(off) == 1:
        return off[0]
    return frozenset().union(*off)


@dataclass(frozen=True)
class _Roster:
    """Who is off duty when, for the counsellors on one time zone's clock.

    Reading every schedule on every decision is what made routing slow with a
    thousand counsellors. Schedules only change where one of them opens or closes,
    so the week is cut at those minutes and the counsellors off schedule between
    two cuts are listed once; a decision then bisects instead of reading. Leave is
    cut the same way at the days one starts or ends, not listed day by day: a
    leave "for ever" (up to 9999-12-31) would be millions of days. Built once per
    policy; ``Counsellor.on_duty`` says the same for one counsellor and is what the
    tests compare against.
    """

    cuts: tuple[int, ...]
    off: tuple[frozenset[str], ...]
    leave_cuts: tuple[date, ...]
    on_leave: tuple[frozenset[str], ...]

    @classmethod
    def build(cls, counsellors: Sequence[Counsellor]) -> _Roster:
        hours = [(c.user_id, c.schedule) for c in counsellors if c.schedule is not None]
        edges = {edge for _, week in hours for span in week.spans for edge in span}
        cuts = tuple(sorted(({0} | edges) - {MINUTES_PER_WEEK}))
        off = tuple(
            frozenset(user_id for user_id, week in hours if not week.is_open(cut))
            for cut in cuts
        )
        leave_cuts, on_leave = _leave_periods(counsellors)
        return cls(cuts, off, leave_cuts, on_leave)

    def off_at(self, minute: int) -> frozenset[str]:
        """Counsellors off schedule at ``minute`` of the week on this clock."""
        return self.off[bisect_right(self.cuts, minute) - 1]

    def on_leave_at(self, day: date) -> frozenset[str]:
        """Counsellors on leave on ``day`` on this clock."""
        index = bisect_right(self.leave_cuts, day) - 1
        return self.on_leave[index] if index >= 0 else _NOBODY


def _leave_periods(
    counsellors: Sequence[Counsellor],
) -> tuple[tuple[date, ...], tuple[frozenset[str], ...]]:
    """The days on which who is on leave changes, and who is from each on.

    Before the first day nobody is; a leave up to the last day a date can have
    never ends.
    """
    changes: dict[date, list[tuple[str, int]]] = {}
    for counsellor in counsellors:
        for first, last in counsellor.leave:
            changes.setdefault(first, []).append((counsellor.user_id, 1))
            if last < date.max:
                after = last + timedelta(days=1)
                changes.setdefault(after, []).append((counsellor.user_id, -1))

    # Counted, not a set: two leaves of one counsellor may overlap.
    away: dict[str, int] = {}
    days = tuple(sorted(changes))
    sets = []
    for day in days:
        for user_id, step in changes[day]:
            away[user_id] = away.get(user_id, 0) + step
            if not away[user_id]:
                del away[user_id]
        sets.append(frozenset(away))
    return days, tuple(sets)


def _rosters(counsellors: Sequence[Counsellor]) -> dict[ZoneInfo, _Roster]:
    """A roster per time zone, for the counsellors whose hours matter at all."""
    by_zone: dict[ZoneInfo, list[Counsellor]] = {}
    for counsellor in counsellors:
        if counsellor.schedule is not None or counsellor.leave:
            by_zone.setdefault(counsellor.timezone, []).append(counsellor)
    return {zone: _Roster.build(group) for zone, group in by_zone.items()}


def _language_passes(language: str | None) -> tuple[str | None, ...]:
    if language is None:
        return (None,)
    if language == REFERENCE_LANGUAGE:
        return (language,)
    return (language, REFERENCE_LANGUAGE)


def _speaking(group: _Group, lang: str) -> _Group:
    return {
        user_id: pair for user_id, pair in group.items() if lang in pair[0].languages
    }


@dataclass(frozen=True)
class _Orders:
    """The ``order`` of a step: which of its available counsellors goes first."""

    previous: str | None
    last_offer: Mapping[str, float]

    def pick(
        self, policy: Policy, step: RouteStep, members: _Group
    ) -> Counsellor | None:
        """The counsellor ``step`` picks among the available ``members``."""
        ids = policy.step_ids(step)
        # Walk whichever is smaller: the available or the step's pool. Both are in
        # file order, so ties still go to the counsellor written first.
        if len(members) <= len(ids):
            candidates = [pair for u, pair in members.items() if u in ids]
        else:
            candidates = [
                members[c.user_id]
                for c in policy.step_pool(step)
                if c.user_id in members
            ]
        if not candidates:
            return None

        order = step.order
        if order == "previous" and self.previous in ids and self.previous in members:
            return members[self.previous][0]
        if order == "priority":
            ranks = policy.priority(step)
            return min(candidates, key=lambda pair: ranks[pair[0].user_id])[0]
        if order == "round_robin":
            last = self.last_offer
            return min(
                candidates,
                key=lambda pair: (last.get(pair[0].user_id, _NEVER), pair[1]),
            )[0]
        return min(candidates, key=lambda pair: pair[1])[0]


_NEVER = float("-inf")
