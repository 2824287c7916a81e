"""Who gets the next offer of a curhat: pure decisions over a policy and loads.

Nothing here does I/O or keeps state; the caller passes in the current loads, who
already declined or let an offer time out, and (optionally) the time, so every rule
can be tested with plain values. A warga's preferences narrow the route; they never
widen it.

The rules, in order:

1. A counsellor is available if they are under capacity (``open_curhats <
   max_open``), hold no pending offer, did not decline this curhat and match the
   warga's preference. Given ``now``, they must also be on their schedule and not on
   leave (on their own clock), and ``now`` must not be one of the policy's holidays
   (on the policy's clock): on a holiday nobody is offered anything. Without
   ``now`` the time is ignored, as before schedules existed.
2. Walk the category's route step by step, leaving out those whose offer timed
   out. The first step with anybody available decides; its ``order`` picks one of
   them (``least_loaded``, ``round_robin``, ``priority`` or ``previous``, see
   :mod:`sobat_matrix.policy`), ties going to file order. A step with nobody
   available falls through to the next: that is the route's fallback.
3. Given the warga's ``language``, the route is walked first among counsellors who
   speak it; if nobody is available, again among those who speak Bahasa Indonesia,
   which every warga of the service can read. A language is a wish, not a wall.
4. If nobody is available, start a new round among those whose offer timed out
   (not those who declined): a counsellor who missed an offer may be free now.

Whether to take a curhat at all is a separate question: :func:`service_open` and
:func:`next_opening` answer it from the policy's ``service_hours`` and holidays;
:func:`choose` still offers a waiting curhat to anyone on duty out of hours.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sobat_matrix.policy import (
    GENDERS,
    REFERENCE_LANGUAGE,
    Category,
    Counsellor,
    Policy,
    RouteStep,
    minute_of_week,
    within,
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
    asked again after an earlier offer timed out.
    """

    counsellor: Counsellor
    step_index: int
    timeout_s: float
    new_round: bool


_NO_LOAD = Load()
_ANYONE = Preference()

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


# TODO(routing): curhat.Reconciler._dispatch passes none of now, language, previous
# and round_robin_state yet, so the running bot ignores schedules, leave, holidays
# and service hours, and round_robin and previous act as least_loaded. That keeps
# the demo and the integration tests (which run at any hour on the sample policy)
# working; wiring them in (issue 4) needs a policy for the demo that is always open.
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
) -> Choice | None:
    """The next counsellor to offer a curhat of ``category_key`` to, or ``None``.

    ``loads`` is keyed by counsellor user ID; a counsellor missing from it is idle.
    ``now`` (an aware datetime) turns on schedules, leave and holidays; ``language``
    is the warga's; ``previous`` is the user ID of the counsellor this warga had
    before, for ``order: previous``; ``round_robin_state`` holds each counsellor's
    last offer time (any increasing number, such as a Unix time), for ``order:
    round_robin``. ``None`` means nobody can take it now (all full, busy, off duty
    or declined); the caller tries again when a load or the time changes. Raises
    :class:`KeyError` for a category the policy does not have and
    :class:`ValueError` for a naive ``now``: both are bugs in the caller, not
    routing outcomes.
    """
    category = policy.category(category_key)
    if category is None:
        raise KeyError(category_key)
    if now is not None:
        _require_aware(now)
        if policy.is_holiday(now):
            return None

    fresh, retry = _available(policy, category, pref, loads, declined, timed_out, now)
    orders = _Orders(previous, round_robin_state or {})
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
    holiday_days = sum((last - first).days + 1 for first, last in policy.holidays)

    # Each turn either skips a holiday or moves to the next opening; past as many
    # turns as there are holidays (twice, plus slack) nothing can open any more.
    for _ in range(2 * holiday_days + 3):
        if within(local.date(), policy.holidays):
            local = _midnight_after(local.date(), zone)
            continue
        wait = 0 if hours is None else hours.minutes_until_open(minute_of_week(local))
        if wait is None:
            return None
        if wait == 0:
            return local
        start = local.replace(second=0, microsecond=0) + timedelta(minutes=wait)
        local = _real(start, zone)
    return None


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
    now: datetime | None,
) -> tuple[_Group, _Group]:
    """Available counsellors the route reaches, fresh and timed out, in file order.

    Each maps user ID to the counsellor and their open curhats. This is the one
    pass over every counsellor, so the cheap tests come first and the clock is
    read only for those who passed them.
    """
    # Bound once: this loop runs for every counsellor on every decision.
    accepts = pref.accepts if pref != _ANYONE else None
    on_duty = None if now is None else _Clock(now).on_duty
    load_of = loads.get
    fresh: _Group = {}
    retry: _Group = {}
    for counsellor in policy.reachable(category):
        user_id = counsellor.user_id
        if user_id in declined:
            continue
        load = load_of(user_id, _NO_LOAD)
        if load.pending_offer or load.open_curhats >= counsellor.max_open:
            continue
        if accepts is not None and not accepts(counsellor):
            continue
        if on_duty is not None and not on_duty(counsellor):
            continue
        group = retry if user_id in timed_out else fresh
        group[user_id] = (counsellor, load.open_curhats)
    return fresh, retry


class _Clock:
    """``now`` on each counsellor's clock, worked out once per time zone."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.local: dict[ZoneInfo, tuple[int, date]] = {}

    def on_duty(self, counsellor: Counsellor) -> bool:
        if counsellor.schedule is None and not counsellor.leave:
            return True
        local = self.local.get(counsellor.timezone)
        if local is None:
            moment = self.now.astimezone(counsellor.timezone)
            local = (minute_of_week(moment), moment.date())
            self.local[counsellor.timezone] = local
        return counsellor.on_duty_local(*local)


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
