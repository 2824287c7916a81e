"""The routing policy: who the counsellors are and which of them each topic goes to.

A city writes its policy as YAML; the bot reads it once at start-up and refuses to
run on a policy with any problem, listing every one with its line and YAML path.
Format::

    timezone: Asia/Jakarta       # optional, the default; IANA name
    service_hours:               # optional, default always open; a weekly schedule
      mon: ["07:00-22:00"]       # days mon..sun; ranges "HH:MM-HH:MM", local time
      sat: ["08:00-14:00"]
    holidays:                    # optional; the service is closed and nobody is
      - "2026-12-25"             # offered a curhat on these days (city time zone)
      - "2026-12-31..2027-01-01" # a range includes both days
    counsellor_types:            # required; key -> label
      psikolog: {id: Psikolog, en: Psychologist}
      keagamaan: Konselor keagamaan        # a plain string is the "id" text
    counsellors:                 # required, non-empty list
      - id: "@rina:sukabumi.test"   # Matrix user ID, unique
        name: "Ibu Rina"             # name shown to warga
        types: [psikolog]            # non-empty list of counsellor_types keys
        gender: perempuan            # perempuan | laki-laki
        languages: [id, su]          # optional, default [id]; 2-3 lowercase letters
        max_open: 3                  # optional, default 3; open curhats at once
        skills: [kdrt, duka]         # optional; topics, names of our own
        religion: islam              # optional; for a warga who asks for it
        schedule:                    # optional, default always on duty
          mon: ["13:00-17:00"]
          thu: ["13:00-17:00", "22:00-02:00"]   # runs past midnight into friday
        timezone: Asia/Makassar      # optional, default the policy's timezone
        leave: ["2026-12-24..2026-12-26"]       # optional; dates or ranges
    pools:                       # optional; named lists of counsellors for routes
      piket: ["@rina:sukabumi.test"]
    categories:                  # required, non-empty; order is the intake menu order
      keluarga:                  # key: lowercase letters, digits and _
        label: {id: Keluarga, en: Family}    # string or language mapping
        description: {id: "...", en: "..."}  # optional, same shape
        ask: [type, gender]      # optional, default []; also religion, language
        preference_fallback: 20m # optional, default the queue's; see below
        route:                   # a non-empty list of steps, tried in order
          - types: [psikolog]                # eligible types
            skills: [kdrt]                   # ... who have one of these skills
            order: least_loaded              # optional, the default
            timeout: 10m                     # how long one offer waits
          - counsellors: ["@rina:sukabumi.test"]   # named counsellors
            pools: [piket]                   # ... or members of these pools
            timeout: 5m
      pengaduan:                 # a referral instead of a route: no counsellor,
        label: Pengaduan         # the warga is sent elsewhere; no ask
        referral:
          link: "https://super.example.go.id"   # https:// or http://
          message: {id: "...", en: "..."}       # label shape
    emergency_contacts:          # optional, non-empty list of labels
      - {id: "112 (darurat)", en: "112 (emergency)"}
    out_of_hours: {id: "...", en: "..."}   # optional; shown to a warga out of hours
    urgent:                      # optional; curhats whose words signal danger
      words: ["bunuh diri"]      # required, non-empty; phrases, matched loosely
      on_call: ["@rina:sukabumi.test"]   # counsellors offered an urgent curhat
      on_call_pools: [piket]     # ... and members of these pools; one is required
      parallel: 2                # optional, default 1; offered at once
      timeout: 3m                # optional, default 3m; how long they wait
    queue:                       # optional; the waiting line
      max_waiting: 30            # optional, default no limit; at least 1
      estimate_per_place: 10m    # optional, default 10m; wait told per place
      notify_step: 2             # optional, default 2; tell again every n places
      max_rounds: 3              # optional, default 1; rounds of offers before the
                                 # warga is told nobody could take it now; above 1
                                 # a counsellor who let an offer lapse is asked again
      round_pause: 2m            # optional, default 2m; pause between two rounds
      join_timeout: 15m          # optional, default 15m; how long a counsellor who
                                 # accepted, then the warga, have to come in
      preference_fallback: never # optional, default never; or a duration: how long
                                 # a curhat waits for a counsellor matching the
                                 # warga's preference before anyone may take it

A step filters counsellors by ``types``, ``skills``, ``languages`` and ``genders``
(a counsellor must match one value of each filter given) and by who they are:
``counsellors`` and ``pools`` together name the people the step may reach. A step
needs at least one filter. Within a step, ``order`` picks among the available:
``least_loaded`` (fewest open curhats), ``round_robin`` (longest since their last
offer), ``priority`` (the named order: ``counsellors``, then ``pools``, then file
order) or ``previous`` (the counsellor this warga had before, else least loaded);
ties go to file order. There is no ``fallback`` key: when a step has nobody
available, the next step is the fallback, so a route reads top to bottom.

``ask`` may hold ``type``, ``gender``, ``religion`` and ``language``; the route
must reach counsellors with at least two different answers to each (for
``language``: between them, at least two of the ``languages`` they speak), or the
question would be a formality. A ``referral`` category opens no curhat: it has no
route and asks nothing. The language a warga picks is the language of their curhat
with the counsellor: routing offers it first to counsellors who speak it, then to
those who speak Bahasa Indonesia (see :mod:`sobat_matrix.routing`). The bot itself
keeps writing in its configured language.

``preference_fallback`` says what happens when nobody matching the warga's preference
(type, gender, religion) can take the curhat. ``never``, the default, keeps the
promise of the intake question: the curhat waits for a matching counsellor, a woman
who asked for a woman never silently gets a man; if the route reaches nobody who
matches at all (after a move or a reload), the curhat is given up at once, honestly,
instead of waiting for nobody. A duration (``"20m"``) lets it go to any counsellor
the route reaches once it waited that long (a waiting curhat since its request, a
hand-over since it was asked) with nobody matching free; a matching counsellor still
goes first whenever one is free, and the warga is told once, when it first happens,
that their preference could not be met in time and that ``!batal`` still cancels.
Everyone matching having declined gives the curhat up under ``never``; with a
duration it waits for the fallback, and only everyone on the route declining does.
Set on ``queue`` for every category, or on one category to differ. A
counsellor-type hand-over (``!alihkan psikolog``) is the counsellor's decision, not a
preference: it is never relaxed. A language preference is not touched by the
fallback either, because it is only ever a wish: a curhat never waits for a
speaker of the warga's language while someone speaking Bahasa Indonesia is free.

Urgent ``words`` are looked for as :mod:`sobat_matrix.urgent` folds them,
and each needs a letter or digit left after folding.

Weekly schedules name days ``mon`` to ``sun``; a range whose end is not after its
start runs past midnight (``"22:00-02:00"``) and ``24:00`` ends a day. A schedule
that never opens is an error, as is a holiday that never ends (up to
``9999-12-31``) and a category that can never be served: every counsellor its
route reaches works only while the service is closed (each schedule read on its
counsellor's clock, see :mod:`sobat_matrix.servable`) or is on leave for ever (a
leave up to ``9999-12-31``). A label given as a mapping must have the ``id``
(Bahasa Indonesia) text, which is the fallback for every other language.
Durations are one or more ``<int><unit>`` groups, units ``d h m s`` (``"1h30m"``).
"""

from __future__ import annotations

import logging
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sobat_matrix import servable
from sobat_matrix.urgent import fold
from sobat_matrix.yamlsrc import (
    KEY_NAME,
    Node,
    Problems,
    describe,
    load_yaml,
    parse_date_range,
)

logger = logging.getLogger(__name__)

REFERENCE_LANGUAGE = "id"
GENDERS = ("perempuan", "laki-laki")
PREFERENCES = ("type", "gender", "religion", "language")
ORDERS = ("least_loaded", "round_robin", "priority", "previous")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_LANGUAGES = ("id",)
_DEFAULT_LANGUAGES: tuple[str, ...] = DEFAULT_LANGUAGES
DEFAULT_MAX_OPEN = 3
DEFAULT_TIMEZONE = ZoneInfo("Asia/Jakarta")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY

_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")
_LANGUAGE_EXPECTED = 'a language code of 2 or 3 lowercase letters like "id"'
_NAME_EXPECTED = "a name of lowercase letters, digits and '_' starting with a letter"
_STEP_FILTERS = ("types", "counsellors", "pools", "skills", "languages", "genders")
_STEP_KEYS = (*_STEP_FILTERS, "order", "timeout")
_TOP_KEYS = (
    "counsellor_types",
    "counsellors",
    "categories",
    "pools",
    "timezone",
    "service_hours",
    "holidays",
    "emergency_contacts",
    "out_of_hours",
    "urgent",
    "queue",
)
_CATEGORY_KEYS = (
    "label",
    "description",
    "ask",
    "route",
    "referral",
    "preference_fallback",
)
_REFERRAL_KEYS = ("link", "message")
_URGENT_KEYS = ("words", "on_call", "on_call_pools", "parallel", "timeout")
_QUEUE_KEYS = (
    "max_waiting",
    "estimate_per_place",
    "notify_step",
    "max_rounds",
    "round_pause",
    "join_timeout",
    "preference_fallback",
)
_LINK = re.compile(r"https?://\S+")
DEFAULT_URGENT_TIMEOUT_S = 180.0
DEFAULT_ESTIMATE_PER_PLACE_S = 600.0
DEFAULT_NOTIFY_STEP = 2
# One round: nobody is offered the same curhat twice unless the policy says so.
DEFAULT_MAX_ROUNDS = 1
DEFAULT_ROUND_PAUSE_S = 120.0
DEFAULT_JOIN_TIMEOUT_S = 900.0
NEVER = math.inf
"""A ``preference_fallback`` that never comes: the preference is kept for good."""
NEVER_WORD = "never"
_COUNSELLOR_KEYS = (
    "id",
    "name",
    "types",
    "gender",
    "languages",
    "max_open",
    "skills",
    "religion",
    "schedule",
    "timezone",
    "leave",
)

DateRange = tuple[date, date]
"""The first and the last day of a period, both included."""

_NO_NAMES: tuple[str, ...] = ()
_NO_DATES: tuple[DateRange, ...] = ()

_T = TypeVar("_T")


def localized(texts: Mapping[str, str], lang: str) -> str:
    """The text for ``lang``, falling back to Bahasa Indonesia."""
    text = texts.get(lang)
    return text if text is not None else texts[REFERENCE_LANGUAGE]


def minute_of_week(local: datetime) -> int:
    """Minutes since Monday 00:00 of the week ``local`` falls in, on its own clock."""
    return local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute


def within(day: date, ranges: Sequence[DateRange]) -> bool:
    """Whether ``day`` falls in one of ``ranges``."""
    return any(first <= day <= last for first, last in ranges)


@dataclass(frozen=True)
class WeeklyHours:
    """The open hours of a week, repeated every week, on a local clock.

    ``spans`` are sorted, disjoint, half-open ``(start, end)`` minutes since Monday
    00:00. A range that runs past midnight continues on the next day, and one that
    runs past Sunday midnight continues on Monday morning.
    """

    spans: tuple[tuple[int, int], ...]
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(start for start, _ in self.spans))

    @classmethod
    def from_days(cls, days: Mapping[str, Sequence[tuple[int, int]]]) -> WeeklyHours:
        """Hours from ``{"mon": [(start, end), ...]}``, minutes after midnight.

        An end that is not after its start means the range runs past midnight.
        Overlapping ranges are merged.
        """
        pieces: list[tuple[int, int]] = []
        for index, day in enumerate(WEEKDAYS):
            for start, end in days.get(day, ()):
                if end <= start:
                    end += MINUTES_PER_DAY
                start += index * MINUTES_PER_DAY
                end += index * MINUTES_PER_DAY
                if end > MINUTES_PER_WEEK:
                    pieces.append((0, end - MINUTES_PER_WEEK))
                    end = MINUTES_PER_WEEK
                pieces.append((start, end))

        merged: list[tuple[int, int]] = []
        for start, end in sorted(pieces):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return cls(tuple(merged))

    def is_open(self, minute: int) -> bool:
        """Whether the hours include ``minute`` (see :func:`minute_of_week`)."""
        index = bisect_right(self._starts, minute) - 1
        return index >= 0 and minute < self.spans[index][1]

    def minutes_until_open(self, minute: int) -> int | None:
        """Minutes from ``minute`` of the week until the hours are open; 0 if open.

        ``None`` if the hours never open.
        """
        if not self.spans:
            return None
        if self.is_open(minute):
            return 0
        index = bisect_right(self._starts, minute)
        if index < len(self.spans):
            return self.spans[index][0] - minute
        return MINUTES_PER_WEEK - minute + self.spans[0][0]


@dataclass(frozen=True)
class Counsellor:
    """One counsellor; ``types`` are keys of ``Policy.counsellor_types``.

    ``schedule`` ``None`` means always on duty. ``schedule`` and ``leave`` are read
    on the counsellor's own clock, ``timezone``.
    """

    user_id: str
    name: str
    types: tuple[str, ...]
    gender: str
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    max_open: int = DEFAULT_MAX_OPEN
    skills: tuple[str, ...] = ()
    religion: str | None = None
    schedule: WeeklyHours | None = None
    timezone: ZoneInfo = DEFAULT_TIMEZONE
    leave: tuple[DateRange, ...] = ()

    def on_duty(self, now: datetime) -> bool:
        """Whether the counsellor works at ``now`` (aware): on schedule, not on leave.

        Holidays are the policy's business; see ``Policy.is_holiday``. Routing
        answers the same question for everyone at once from a roster.
        """
        local = now.astimezone(self.timezone)
        if self.leave and within(local.date(), self.leave):
            return False
        return self.schedule is None or self.schedule.is_open(minute_of_week(local))


@dataclass(frozen=True)
class RouteStep:
    """One step of a route: who may get the offer, in what order, how long it waits.

    An empty filter means "no filter on that"; the loader makes sure at least one
    is given. ``pools`` names lists in ``Policy.pools``, which :meth:`admits` needs
    to be given to know who is in them.
    """

    types: tuple[str, ...]
    counsellors: tuple[str, ...]
    timeout_s: float
    skills: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    genders: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()
    order: str = "least_loaded"

    def admits(
        self,
        counsellor: Counsellor,
        pools: Mapping[str, Sequence[str]] = MappingProxyType({}),
    ) -> bool:
        """Whether ``counsellor`` is eligible at this step, ignoring preferences."""
        if (self.counsellors or self.pools) and not self.names(counsellor, pools):
            return False
        if self.types and not _overlap(self.types, counsellor.types):
            return False
        if self.skills and not _overlap(self.skills, counsellor.skills):
            return False
        if self.languages and not _overlap(self.languages, counsellor.languages):
            return False
        return not self.genders or counsellor.gender in self.genders

    def names(self, counsellor: Counsellor, pools: Mapping[str, Sequence[str]]) -> bool:
        """Whether ``counsellors`` or one of ``pools`` lists ``counsellor``."""
        user_id = counsellor.user_id
        if user_id in self.counsellors:
            return True
        return any(user_id in pools.get(pool, ()) for pool in self.pools)

    def named_order(self, pools: Mapping[str, Sequence[str]]) -> list[str]:
        """The counsellors this step names, in the order written, without repeats."""
        listed = list(self.counsellors)
        for pool in self.pools:
            listed.extend(pools.get(pool, ()))
        return list(dict.fromkeys(listed))


def _overlap(wanted: Sequence[str], have: Sequence[str]) -> bool:
    return any(value in have for value in wanted)


@dataclass(frozen=True)
class Referral:
    """Where a referral category sends the warga instead of to a counsellor.

    Some topics belong to another service of the city (complaints go to its own
    channel); the bot tells the warga where, and no curhat is opened.
    """

    link: str
    messages: Mapping[str, str]

    def message(self, lang: str) -> str:
        return localized(self.messages, lang)


@dataclass(frozen=True)
class Category:
    """A topic a warga picks at intake, and the route its offers follow.

    A referral category has a ``referral`` and an empty ``route``: nobody is ever
    offered it, and it asks no preference.
    """

    key: str
    labels: Mapping[str, str]
    descriptions: Mapping[str, str]
    ask_type: bool
    ask_gender: bool
    route: tuple[RouteStep, ...]
    ask_religion: bool = False
    referral: Referral | None = None
    ask_language: bool = False
    preference_fallback_s: float | None = None
    """Seconds before the preference may be relaxed; ``None``: the queue's."""

    def label(self, lang: str) -> str:
        return localized(self.labels, lang)

    def description(self, lang: str) -> str | None:
        """The description in ``lang``, or ``None`` if the category has none."""
        return localized(self.descriptions, lang) if self.descriptions else None


@dataclass(frozen=True)
class Urgent:
    """How a curhat whose words signal danger skips the line.

    ``on_call`` holds user IDs, pools already expanded, in written order, without
    repeats; ``parallel`` of them are offered the curhat at once, and each offer
    waits ``timeout_s``.
    """

    words: tuple[str, ...]
    on_call: tuple[str, ...]
    parallel: int = 1
    timeout_s: float = DEFAULT_URGENT_TIMEOUT_S


@dataclass(frozen=True)
class QueueRules:
    """The waiting line: how long it may grow and what warga are told while in it.

    ``max_waiting`` ``None`` means no limit. A warga is told the wait as their
    place times ``estimate_per_place_s``, again each time they move up
    ``notify_step`` places. A curhat whose offers all went unanswered is offered
    again in at most ``max_rounds`` rounds, ``round_pause_s`` apart; then the
    warga is told honestly that nobody could take it now. A counsellor who
    accepted but is not in the room ``join_timeout_s`` later loses the curhat to
    the next one; a warga not in the room that long after the counsellor came
    in finds it closed, so neither holds the other up for good.
    ``preference_fallback_s`` is how long a curhat waits with nobody matching its
    preference before anyone the route reaches may take it (:data:`NEVER`: never),
    for each category that does not say otherwise.
    """

    max_waiting: int | None = None
    estimate_per_place_s: float = DEFAULT_ESTIMATE_PER_PLACE_S
    notify_step: int = DEFAULT_NOTIFY_STEP
    max_rounds: int = DEFAULT_MAX_ROUNDS
    round_pause_s: float = DEFAULT_ROUND_PAUSE_S
    join_timeout_s: float = DEFAULT_JOIN_TIMEOUT_S
    preference_fallback_s: float = NEVER


def _no_pools() -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({})


def _no_texts() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, eq=False)
class Policy:
    """A validated routing policy.

    Compared and hashed by identity, so it can key a cache; a reloaded policy is a
    new object even if the file did not change. ``service_hours`` ``None`` means
    always open; ``holidays`` are days on the policy's ``timezone``.
    ``emergency_contacts`` are labels, one line each; ``out_of_hours`` is empty
    when the city wrote nothing to add out of hours.
    """

    source: Path
    counsellor_types: Mapping[str, Mapping[str, str]]
    counsellors: tuple[Counsellor, ...]
    categories: tuple[Category, ...]
    pools: Mapping[str, tuple[str, ...]] = field(default_factory=_no_pools)
    timezone: ZoneInfo = DEFAULT_TIMEZONE
    service_hours: WeeklyHours | None = None
    holidays: tuple[DateRange, ...] = ()
    emergency_contacts: tuple[Mapping[str, str], ...] = ()
    out_of_hours: Mapping[str, str] = field(default_factory=_no_texts)
    urgent: Urgent | None = None
    queue: QueueRules = QueueRules()
    _by_id: dict[str, Counsellor] = field(init=False, repr=False)
    _by_key: dict[str, Category] = field(init=False, repr=False)
    _step_pools: dict[RouteStep, tuple[Counsellor, ...]] = field(init=False, repr=False)
    _step_ids: dict[RouteStep, frozenset[str]] = field(init=False, repr=False)
    _ranks: dict[RouteStep, dict[str, int]] = field(init=False, repr=False)
    _reach: dict[str, tuple[Category, tuple[Counsellor, ...]]] = field(
        init=False, repr=False
    )
    _derived: dict[Hashable, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Routing runs on every offer; what depends only on the policy is worked
        # out once here, so a decision only looks at loads, preferences and time.
        object.__setattr__(self, "_by_id", {c.user_id: c for c in self.counsellors})
        object.__setattr__(self, "_by_key", {c.key: c for c in self.categories})
        steps = {step for category in self.categories for step in category.route}
        step_pools = {step: self._admitted(step) for step in steps}
        object.__setattr__(self, "_step_pools", step_pools)
        ids = {
            step: frozenset(c.user_id for c in pool)
            for step, pool in step_pools.items()
        }
        object.__setattr__(self, "_step_ids", ids)
        object.__setattr__(self, "_ranks", {step: self._rank(step) for step in steps})
        reach = {
            c.key: (c, _reachable(self.counsellors, c.route, self.pools))
            for c in self.categories
        }
        object.__setattr__(self, "_reach", reach)
        object.__setattr__(self, "_derived", {})

    def _admitted(self, step: RouteStep) -> tuple[Counsellor, ...]:
        return tuple(c for c in self.counsellors if step.admits(c, self.pools))

    def _rank(self, step: RouteStep) -> dict[str, int]:
        named = step.named_order(self.pools)
        first = set(named)
        rest = [c.user_id for c in self.counsellors if c.user_id not in first]
        return {user_id: rank for rank, user_id in enumerate(named + rest)}

    def counsellor(self, user_id: str) -> Counsellor | None:
        return self._by_id.get(user_id)

    def category(self, key: str) -> Category | None:
        return self._by_key.get(key)

    def preference_fallback_s(self, category: Category) -> float:
        """Seconds a curhat of ``category`` keeps its preference; :data:`NEVER`."""
        own = category.preference_fallback_s
        return self.queue.preference_fallback_s if own is None else own

    def emergency_lines(self, lang: str) -> list[str]:
        """The emergency contacts in ``lang``, one line each, in written order."""
        return [localized(contact, lang) for contact in self.emergency_contacts]

    def type_label(self, type_key: str, lang: str) -> str:
        """The name of a counsellor type in ``lang``, falling back to ``id``."""
        return localized(self.counsellor_types[type_key], lang)

    def step_pool(self, step: RouteStep) -> tuple[Counsellor, ...]:
        """Counsellors ``step`` admits, in file order, before preferences and load."""
        pool = self._step_pools.get(step)
        if pool is None:
            pool = self._admitted(step)
        return pool

    def step_ids(self, step: RouteStep) -> frozenset[str]:
        """The user IDs of :meth:`step_pool`, for quick membership tests."""
        ids = self._step_ids.get(step)
        if ids is None:
            ids = frozenset(c.user_id for c in self.step_pool(step))
        return ids

    def priority(self, step: RouteStep) -> Mapping[str, int]:
        """Rank of each counsellor for ``order: priority``; lower goes first."""
        ranks = self._ranks.get(step)
        if ranks is None:
            ranks = self._rank(step)
        return ranks

    def reachable(self, category: Category) -> tuple[Counsellor, ...]:
        """Counsellors any step of the category's route admits, in file order."""
        cached = self._reach.get(category.key)
        if cached is not None and cached[0] is category:
            return cached[1]
        return _reachable(self.counsellors, category.route, self.pools)

    def derived(self, key: Hashable, build: Callable[[], _T]) -> _T:
        """``build()``, worked out once per ``key`` for the life of this policy.

        For callers that derive data from the policy alone, such as routing's
        candidates per preference: the policy never changes, so nothing goes stale.
        ``key`` must stand for a bounded set of values, or the memory grows.
        """
        try:
            value: _T = self._derived[key]
        except KeyError:
            value = self._derived[key] = build()
        return value

    def is_holiday(self, now: datetime) -> bool:
        """Whether ``now`` (aware) falls on a holiday on the policy's clock."""
        return bool(self.holidays) and within(
            now.astimezone(self.timezone).date(), self.holidays
        )


def _reachable(
    counsellors: Sequence[Counsellor],
    route: Sequence[RouteStep],
    pools: Mapping[str, Sequence[str]],
) -> tuple[Counsellor, ...]:
    return tuple(c for c in counsellors if any(s.admits(c, pools) for s in route))


def _server_of(user_id: str | None) -> str | None:
    """The server part of a Matrix user ID (everything after the first colon)."""
    if user_id is None or ":" not in user_id:
        return None
    return user_id.partition(":")[2]


def load_policy(
    path: Path, *, bot_user_id: str | None = None, supervisors: Sequence[str] = ()
) -> Policy:
    """Read and validate a policy file.

    ``bot_user_id`` and ``supervisors`` come from the service config: neither the
    bot nor a supervisor may be a counsellor, and with ``bot_user_id`` every
    counsellor must be on the bot's server (it cannot bring in anyone else).
    Raises :class:`ConfigError` listing every problem in the file.
    """
    root = Node.root(load_yaml(path))
    problems = Problems(path)
    reader = _PolicyReader(problems, bot_user_id, supervisors)
    policy = reader.read(root, path)

    problems.raise_if_any()
    assert policy is not None, "a policy with no problems is always built"
    logger.info(
        "policy %s loaded: %d counsellors, %d categories",
        path.name,
        len(policy.counsellors),
        len(policy.categories),
    )
    return policy


class _PolicyReader:
    """Validates a policy document, recording problems and building the model.

    Each part is checked even when an earlier one failed, so the operator sees
    every problem; cross-checks that would only repeat an earlier problem (such as
    "no counsellor matches this step" when a counsellor entry is broken) are
    skipped.
    """

    def __init__(
        self,
        problems: Problems,
        bot_user_id: str | None,
        supervisors: Sequence[str],
    ) -> None:
        self.problems = problems
        self.bot_user_id = bot_user_id
        self.supervisors = set(supervisors)
        self.timezone = DEFAULT_TIMEZONE
        self.types: dict[str, Mapping[str, str]] | None = None
        self.type_keys: list[str] | None = None
        self.counsellor_ids: set[str] | None = None
        self.counsellors: list[Counsellor] | None = None
        self.pool_names: list[str] | None = []
        self.pools: dict[str, tuple[str, ...]] | None = {}
        # None when service_hours are written but wrong: servability is unknown.
        self.service_spans: tuple[tuple[int, int], ...] | None = ()
        self.always_open = True
        self.shifts: dict[ZoneInfo, frozenset[int]] = {}
        # Why each counsellor can never serve (None: they can), once per policy.
        self.never_serving: dict[str, str | None] = {}
        self.loaded_at = datetime.now(UTC)

    def read(self, root: Node, path: Path) -> Policy | None:
        required = ("counsellor_types", "counsellors", "categories")
        before = len(self.problems)
        if self.problems.mapping(root, _TOP_KEYS, required=required) is None:
            return None

        # The policy's clock is every counsellor's default, so it is read first.
        timezone = self._optional(root, "timezone", self.problems.timezone, None)
        self.timezone = timezone or DEFAULT_TIMEZONE
        service_hours = self._optional(root, "service_hours", self._weekly, None)
        self.always_open = not root.has("service_hours")
        self.service_spans = None if service_hours is None else service_hours.spans
        holidays = self._optional(root, "holidays", self._holidays, _NO_DATES)
        if root.has("counsellor_types"):
            self.types = self._types(root.child("counsellor_types"))
        if root.has("counsellors"):
            self.counsellors = self._counsellors(root.child("counsellors"))
        if root.has("pools"):
            self.pools = self._pools(root.child("pools"))
        categories = None
        if root.has("categories"):
            categories = self._categories(root.child("categories"))
        no_contacts: tuple[Mapping[str, str], ...] = ()
        contacts = self._optional(
            root, "emergency_contacts", self._contacts, no_contacts
        )
        out_of_hours = self._optional(root, "out_of_hours", self._labels, _no_texts())
        urgent = self._optional(root, "urgent", self._urgent, None)
        queue = self._optional(root, "queue", self._queue, QueueRules())

        if len(self.problems) != before:
            return None
        assert self.types is not None and self.counsellors is not None
        assert self.pools is not None and categories is not None
        assert holidays is not None and contacts is not None
        assert out_of_hours is not None and queue is not None
        return Policy(
            source=path,
            counsellor_types=MappingProxyType(self.types),
            counsellors=tuple(self.counsellors),
            categories=tuple(categories),
            pools=MappingProxyType(self.pools),
            timezone=self.timezone,
            service_hours=service_hours,
            holidays=holidays,
            emergency_contacts=contacts,
            out_of_hours=out_of_hours,
            urgent=urgent,
            queue=queue,
        )

    def _optional(
        self, node: Node, key: str, read: Callable[[Node], _T | None], default: _T
    ) -> _T | None:
        """``read`` the value under ``key`` if it is written, else ``default``.

        ``None`` from ``read`` means a problem was recorded.
        """
        return read(node.child(key)) if node.has(key) else default

    def _labels(self, node: Node) -> Mapping[str, str] | None:
        """A label: a string (the ``id`` text) or a language -> text mapping."""
        if isinstance(node.value, str):
            text = self.problems.string(node)
            return None if text is None else MappingProxyType({"id": text})
        if not isinstance(node.value, dict):
            self.problems.add(
                node,
                "expected a string or a mapping of language to text, got "
                f"{describe(node.value)}",
            )
            return None

        texts: dict[str, str] = {}
        ok = True
        for lang, child in node.items():
            if not isinstance(lang, str) or not _LANGUAGE_CODE.fullmatch(lang):
                self.problems.add_at(
                    child.key_line,
                    child,
                    f"expected {_LANGUAGE_EXPECTED}, got {lang!r}",
                )
                ok = False
                continue
            text = self.problems.string(child)
            if text is None:
                ok = False
                continue
            texts[lang] = text

        if REFERENCE_LANGUAGE not in node.value:
            self.problems.add_at(
                node.anchor_line, node, "missing the 'id' (Bahasa Indonesia) text"
            )
            ok = False
        return MappingProxyType(texts) if ok else None

    def _contacts(self, node: Node) -> tuple[Mapping[str, str], ...] | None:
        """Emergency contacts: a non-empty list of labels, one line each."""
        if self.problems.sequence(node, non_empty=True) is None:
            return None

        contacts = [self._labels(item) for item in node.elements()]
        if any(contact is None for contact in contacts):
            return None
        return tuple(contact for contact in contacts if contact is not None)

    def _urgent(self, node: Node) -> Urgent | None:
        """The urgent section: words to notice, and who answers at once."""
        before = len(self.problems)
        if self.problems.mapping(node, _URGENT_KEYS, required=("words",)) is None:
            return None

        if not node.has("on_call") and not node.has("on_call_pools"):
            self.problems.add_at(
                node.anchor_line,
                node,
                "give on_call or on_call_pools: the counsellors who answer an "
                "urgent curhat",
            )
        optional = self._optional
        words = optional(node, "words", self._words, None)
        named = optional(node, "on_call", self._named_list, _NO_NAMES)
        pools = optional(node, "on_call_pools", self._pool_refs, _NO_NAMES)
        parallel = optional(node, "parallel", self._count, 1)
        timeout_s = optional(
            node, "timeout", self.problems.duration, DEFAULT_URGENT_TIMEOUT_S
        )

        if len(self.problems) != before:
            return None
        assert words is not None and named is not None and pools is not None
        assert parallel is not None and timeout_s is not None
        # A pool whose members were wrong was reported already; None means unknown.
        members = [*named]
        for pool in pools:
            members.extend((self.pools or {}).get(pool, ()))
        on_call = tuple(dict.fromkeys(members))
        return Urgent(words, on_call, parallel, timeout_s)

    def _words(self, node: Node) -> tuple[str, ...] | None:
        return _values(
            self.problems.string_list(node, non_empty=True, check=self._word)
        )

    def _word(self, node: Node) -> str | None:
        """An urgent phrase; it must keep some letters once spelling is folded."""
        phrase = self.problems.string(node)
        if phrase is None or fold(phrase):
            return phrase
        self.problems.add(node, f'"{phrase}" has no letters or digits to look for')
        return None

    def _count(self, node: Node) -> int | None:
        return self.problems.integer(node, minimum=1)

    def _queue(self, node: Node) -> QueueRules | None:
        """The waiting line's limit and what warga are told while they wait."""
        before = len(self.problems)
        if self.problems.mapping(node, _QUEUE_KEYS) is None:
            return None

        problems = self.problems
        optional = self._optional
        max_waiting = optional(node, "max_waiting", self._count, None)
        estimate_s = optional(
            node,
            "estimate_per_place",
            problems.duration,
            DEFAULT_ESTIMATE_PER_PLACE_S,
        )
        notify_step = optional(node, "notify_step", self._count, DEFAULT_NOTIFY_STEP)
        max_rounds = optional(node, "max_rounds", self._count, DEFAULT_MAX_ROUNDS)
        pause_s = optional(
            node, "round_pause", problems.duration, DEFAULT_ROUND_PAUSE_S
        )
        join_s = optional(
            node, "join_timeout", problems.duration, DEFAULT_JOIN_TIMEOUT_S
        )
        fallback_s = optional(node, "preference_fallback", self._fallback, NEVER)

        if len(self.problems) != before:
            return None
        assert estimate_s is not None and notify_step is not None
        assert max_rounds is not None and pause_s is not None and join_s is not None
        assert fallback_s is not None
        return QueueRules(
            max_waiting,
            estimate_s,
            notify_step,
            max_rounds,
            pause_s,
            join_s,
            fallback_s,
        )

    def _fallback(self, node: Node) -> float | None:
        """A ``preference_fallback``: ``never`` or a duration, in seconds."""
        if node.value == NEVER_WORD:
            return NEVER
        return self.problems.duration(node)

    def _types(self, node: Node) -> dict[str, Mapping[str, str]] | None:
        entries = self.problems.entries(node)
        if entries is None:
            return None

        # Known even if a label is wrong, so references to the type still get checked.
        self.type_keys = [key for key, _ in entries]
        before = len(self.problems)
        types: dict[str, Mapping[str, str]] = {}
        for key, child in entries:
            labels = self._labels(child)
            if labels is not None:
                types[key] = labels
        return types if len(self.problems) == before else None

    def _type_ref(self, node: Node) -> str | None:
        """A counsellor type named in a list; must be a key of counsellor_types."""
        name = self.problems.string(node)
        if name is None or self.type_keys is None or name in self.type_keys:
            return name
        self.problems.add(
            node,
            f'unknown counsellor type "{name}" (expected one of: '
            f"{', '.join(self.type_keys)})",
        )
        return None

    def _counsellors(self, node: Node) -> list[Counsellor] | None:
        if self.problems.sequence(node, non_empty=True) is None:
            return None

        before = len(self.problems)
        first_lines: dict[str, int | None] = {}
        counsellors: list[Counsellor] = []
        for item in node.elements():
            counsellor = self._counsellor(item, first_lines)
            if counsellor is not None:
                counsellors.append(counsellor)

        self.counsellor_ids = set(first_lines)
        return counsellors if len(self.problems) == before else None

    def _counsellor(
        self, node: Node, first_lines: dict[str, int | None]
    ) -> Counsellor | None:
        required = ("id", "name", "types", "gender")
        before = len(self.problems)
        if self.problems.mapping(node, _COUNSELLOR_KEYS, required=required) is None:
            return None

        problems = self.problems
        optional = self._optional
        user_id = optional(
            node, "id", lambda n: self._counsellor_id(n, first_lines), None
        )
        name = optional(node, "name", problems.string, None)
        types = optional(node, "types", self._types_list, None)
        gender = optional(node, "gender", lambda n: problems.choice(n, GENDERS), None)
        languages = optional(node, "languages", self._languages, _DEFAULT_LANGUAGES)
        max_open = optional(
            node, "max_open", lambda n: problems.integer(n, minimum=1), DEFAULT_MAX_OPEN
        )
        skills = optional(node, "skills", self._skills, _NO_NAMES)
        religion = optional(node, "religion", self._name, None)
        schedule = optional(node, "schedule", self._weekly, None)
        timezone = optional(node, "timezone", problems.timezone, self.timezone)
        leave = optional(node, "leave", self._dates, _NO_DATES)

        if len(self.problems) != before:
            return None
        assert user_id is not None and name is not None and types is not None
        assert gender is not None and languages is not None and max_open is not None
        assert skills is not None and timezone is not None and leave is not None
        return Counsellor(
            user_id,
            name,
            types,
            gender,
            languages,
            max_open,
            skills=skills,
            religion=religion,
            schedule=schedule,
            timezone=timezone,
            leave=leave,
        )

    def _types_list(self, node: Node) -> tuple[str, ...] | None:
        return _values(
            self.problems.string_list(node, non_empty=True, check=self._type_ref)
        )

    def _languages(self, node: Node) -> tuple[str, ...] | None:
        return _values(
            self.problems.string_list(node, non_empty=True, check=self._language)
        )

    def _language(self, node: Node) -> str | None:
        return self.problems.matching(node, _LANGUAGE_CODE, _LANGUAGE_EXPECTED)

    def _skills(self, node: Node) -> tuple[str, ...] | None:
        return _values(self.problems.string_list(node, check=self._name))

    def _name(self, node: Node) -> str | None:
        """A name of our own: a skill, a religion."""
        return self.problems.matching(node, KEY_NAME, _NAME_EXPECTED)

    def _weekly(self, node: Node) -> WeeklyHours | None:
        """A weekly schedule: ``{mon: ["13:00-17:00"], ...}``; it must open."""
        if self.problems.mapping(node, WEEKDAYS) is None:
            return None

        before = len(self.problems)
        days: dict[str, list[tuple[int, int]]] = {}
        for day, child in node.items():
            if day not in WEEKDAYS or self.problems.sequence(child) is None:
                continue
            ranges = [self.problems.time_range(item) for item in child.elements()]
            days[day] = [r for r in ranges if r is not None]
        if len(self.problems) != before:
            return None

        hours = WeeklyHours.from_days(days)
        if not hours.spans:
            self.problems.add_at(
                node.anchor_line, node, "never opens; give at least one time range"
            )
            return None
        return hours

    def _dates(self, node: Node) -> tuple[DateRange, ...] | None:
        """Dates and date ranges, in date order."""
        if self.problems.sequence(node) is None:
            return None

        before = len(self.problems)
        ranges = [self.problems.date_range(item) for item in node.elements()]
        if len(self.problems) != before:
            return None
        return tuple(sorted(r for r in ranges if r is not None))

    def _holidays(self, node: Node) -> tuple[DateRange, ...] | None:
        """Days the service is closed; a holiday that never ends closes it for good."""
        holidays = self._dates(node)
        if holidays is None:
            return None

        for item in node.elements():
            if parse_date_range(item.value)[1] == servable.FOR_EVER:
                self.problems.add(
                    item, "never ends; the service would never open again"
                )
        return holidays

    def _counsellor_id(
        self, node: Node, first_lines: dict[str, int | None]
    ) -> str | None:
        # Remember every ID written, even a bad one, so a route naming it is not
        # reported a second time as "not in counsellors".
        if isinstance(node.value, str) and node.value not in first_lines:
            first_lines[node.value] = node.line
        elif isinstance(node.value, str):
            self.problems.add(
                node,
                f'duplicate counsellor "{node.value}" (first at line '
                f"{first_lines[node.value]})",
            )
            return None

        user_id = self.problems.user_id(node)
        if user_id is None:
            return None
        if user_id == self.bot_user_id:
            self.problems.add(
                node, f'"{user_id}" is the bot itself; the bot cannot be a counsellor'
            )
            return None
        server = _server_of(self.bot_user_id)
        if server is not None and _server_of(user_id) != server:
            self.problems.add(
                node,
                f'counsellor "{user_id}" is on another server ({_server_of(user_id)});'
                " the bot only brings in users of its own server",
            )
            return None
        if user_id in self.supervisors:
            self.problems.add(
                node,
                f'"{user_id}" is a supervisor; a supervisor cannot also be a '
                "counsellor",
            )
            return None
        return user_id

    def _pools(self, node: Node) -> dict[str, tuple[str, ...]] | None:
        before = len(self.problems)
        entries = self.problems.entries(node)
        if entries is None:
            self.pool_names = None
            return None

        # Known even if a member is wrong, so steps naming the pool still get
        # checked; unknown if a name is wrong, so a step naming it is not blamed.
        well_named = len(entries) == len(node.value)
        self.pool_names = [key for key, _ in entries] if well_named else None
        pools: dict[str, tuple[str, ...]] = {}
        for key, child in entries:
            members = _values(
                self.problems.string_list(child, non_empty=True, check=self._named)
            )
            if members is not None:
                pools[key] = members
        return pools if len(self.problems) == before else None

    def _categories(self, node: Node) -> list[Category] | None:
        entries = self.problems.entries(node)
        if entries is None:
            return None

        before = len(self.problems)
        categories = [self._category(key, child) for key, child in entries]
        if len(self.problems) != before:
            return None
        return [c for c in categories if c is not None]

    def _category(self, key: str, node: Node) -> Category | None:
        before = len(self.problems)
        if self.problems.mapping(node, _CATEGORY_KEYS, required=("label",)) is None:
            return None
        if node.has("referral"):
            return self._referral_category(key, node)
        if not node.has("route"):
            self.problems.add_at(
                node.anchor_line, node, "needs a route or a referral; give one"
            )

        labels = self._labels(node.child("label")) if node.has("label") else None
        descriptions: Mapping[str, str] | None = MappingProxyType({})
        if node.has("description"):
            descriptions = self._labels(node.child("description"))
        asks: tuple[str, ...] | None = ()
        if node.has("ask"):
            asks = _values(
                self.problems.string_list(
                    node.child("ask"),
                    check=lambda n: self.problems.choice(n, PREFERENCES),
                )
            )
        route = self._route(node.child("route")) if node.has("route") else None
        fallback_s = self._optional(node, "preference_fallback", self._fallback, None)

        if len(self.problems) != before:
            return None
        assert labels is not None and descriptions is not None
        assert asks is not None and route is not None
        self._check_asks(node.child("ask"), asks, route)
        self._check_servable(node, route)
        return Category(
            key=key,
            labels=labels,
            descriptions=descriptions,
            ask_type="type" in asks,
            ask_gender="gender" in asks,
            route=tuple(route),
            ask_religion="religion" in asks,
            preference_fallback_s=fallback_s,
            ask_language="language" in asks,
        )

    def _referral_category(self, key: str, node: Node) -> Category | None:
        """A category that sends the warga to another service: no route, no ask."""
        before = len(self.problems)
        if node.has("route"):
            self.problems.add_at(
                node.anchor_line,
                node,
                "has both a route and a referral; give only one",
            )
        if node.has("ask"):
            self.problems.add(
                node.child("ask"), "a referral category cannot ask for a preference"
            )
        if node.has("preference_fallback"):
            self.problems.add(
                node.child("preference_fallback"),
                "a referral category asks no preference to fall back from",
            )
        labels = self._labels(node.child("label"))
        descriptions: Mapping[str, str] | None = MappingProxyType({})
        if node.has("description"):
            descriptions = self._labels(node.child("description"))
        referral = self._referral(node.child("referral"))

        if len(self.problems) != before:
            return None
        assert labels is not None and descriptions is not None
        return Category(
            key=key,
            labels=labels,
            descriptions=descriptions,
            ask_type=False,
            ask_gender=False,
            route=(),
            referral=referral,
        )

    def _referral(self, node: Node) -> Referral | None:
        required = _REFERRAL_KEYS
        if self.problems.mapping(node, _REFERRAL_KEYS, required=required) is None:
            return None

        link = self._link(node.child("link")) if node.has("link") else None
        messages = None
        if node.has("message"):
            messages = self._labels(node.child("message"))
        if link is None or messages is None:
            return None
        return Referral(link, messages)

    def _link(self, node: Node) -> str | None:
        return self.problems.matching(
            node, _LINK, 'a link starting with "https://" or "http://"'
        )

    def _check_servable(self, node: Node, route: list[RouteStep]) -> None:
        """A category nobody can ever answer would leave every warga waiting.

        Every counsellor its route reaches is checked across time: whether their
        weekly schedule, on their own clock, ever meets the service hours, and
        whether they are on leave for ever. Finite leave and holidays end, so they
        never make a category unservable for good.
        """
        if self.counsellors is None or self.pools is None:
            return
        if self.service_spans is None and not self.always_open:
            return

        reasons: dict[str, list[str]] = {}
        for counsellor in _reachable(self.counsellors, route, self.pools):
            reason = self._why_never_serving(counsellor)
            if reason is None:
                return
            reasons.setdefault(reason, []).append(counsellor.user_id)
        if not reasons:
            return

        parts = [f"{reason} ({_some(ids)})" for reason, ids in reasons.items()]
        self.problems.add_at(
            node.anchor_line,
            node,
            f"can never be served: its counsellors {' or '.join(parts)}",
        )

    def _why_never_serving(self, counsellor: Counsellor) -> str | None:
        """Why ``counsellor`` can never take a curhat, or ``None`` if they can.

        Worked out once per counsellor: a counsellor is reachable from many
        categories, and a policy can have a thousand counsellors.
        """
        if counsellor.user_id in self.never_serving:
            return self.never_serving[counsellor.user_id]

        reason: str | None = None
        if servable.on_leave_for_ever(counsellor.leave):
            reason = "are on leave for ever"
        elif not self.always_open:
            schedule = counsellor.schedule
            shifts = self._shifts(counsellor.timezone)
            spans = None if schedule is None else schedule.spans
            if not servable.meets(self.service_spans, spans, shifts):
                reason = "never work during service_hours"
        self.never_serving[counsellor.user_id] = reason
        return reason

    def _shifts(self, zone: ZoneInfo) -> frozenset[int]:
        """How far ``zone``'s clock may run ahead of the policy's, in minutes."""
        shifts = self.shifts.get(zone)
        if shifts is None:
            shifts = servable.clock_shifts(self.timezone, zone, self.loaded_at)
            self.shifts[zone] = shifts
        return shifts

    def _check_asks(
        self, node: Node, asks: tuple[str, ...], route: list[RouteStep]
    ) -> None:
        """A preference question with only one possible answer is a policy mistake."""
        if self.counsellors is None or self.pools is None or not asks:
            return

        reachable = _reachable(self.counsellors, route, self.pools)
        offered_types = {t for c in reachable for t in c.types}
        offered_genders = {c.gender for c in reachable}
        offered_religions = {c.religion for c in reachable if c.religion is not None}
        offered_languages = {lang for c in reachable for lang in c.languages}
        if "type" in asks and len(offered_types) < 2:
            self.problems.add(
                node, "asks for a type preference but its route offers only one type"
            )
        if "gender" in asks and len(offered_genders) < 2:
            self.problems.add(
                node,
                "asks for a gender preference but its route offers only one gender",
            )
        if "religion" in asks and len(offered_religions) < 2:
            self.problems.add(
                node,
                "asks for a religion preference but its route offers fewer than "
                "two religions",
            )
        if "language" in asks and len(offered_languages) < 2:
            self.problems.add(
                node,
                "asks for a language preference but its route's counsellors speak "
                "only one language",
            )

    def _route(self, node: Node) -> list[RouteStep] | None:
        if self.problems.sequence(node, non_empty=True) is None:
            return None

        steps = [self._step(item) for item in node.elements()]
        if any(step is None for step in steps):
            return None
        return [step for step in steps if step is not None]

    def _step(self, node: Node) -> RouteStep | None:
        before = len(self.problems)
        if self.problems.mapping(node, _STEP_KEYS, required=("timeout",)) is None:
            return None

        if not any(node.has(key) for key in _STEP_FILTERS):
            self.problems.add(
                node, f"a step needs at least one of: {', '.join(_STEP_FILTERS)}"
            )
        problems = self.problems
        optional = self._optional
        types = optional(node, "types", self._types_list, _NO_NAMES)
        named = optional(node, "counsellors", self._named_list, _NO_NAMES)
        pools = optional(node, "pools", self._pool_refs, _NO_NAMES)
        skills = optional(node, "skills", self._skill_refs, _NO_NAMES)
        languages = optional(node, "languages", self._language_refs, _NO_NAMES)
        genders = optional(node, "genders", self._genders, _NO_NAMES)
        order = optional(
            node, "order", lambda n: problems.choice(n, ORDERS), "least_loaded"
        )
        timeout_s = optional(node, "timeout", problems.duration, None)

        if len(self.problems) != before:
            return None
        assert types is not None and named is not None and pools is not None
        assert skills is not None and languages is not None and genders is not None
        assert order is not None and timeout_s is not None
        step = RouteStep(
            types, named, timeout_s, skills, languages, genders, pools, order
        )
        if not self._anybody(step):
            self.problems.add(node, "no counsellor matches this step")
            return None
        return step

    def _anybody(self, step: RouteStep) -> bool:
        """Whether some counsellor passes ``step``; true if that cannot be known."""
        if self.counsellors is None or self.pools is None:
            return True
        return any(step.admits(c, self.pools) for c in self.counsellors)

    def _named_list(self, node: Node) -> tuple[str, ...] | None:
        return _values(
            self.problems.string_list(node, non_empty=True, check=self._named)
        )

    def _named(self, node: Node) -> str | None:
        """A counsellor named in a route step; must be listed under counsellors."""
        user_id = self.problems.user_id(node)
        if user_id is None or self.counsellor_ids is None:
            return user_id
        if user_id not in self.counsellor_ids:
            self.problems.add(node, f'"{user_id}" is not in counsellors')
            return None
        return user_id

    def _pool_refs(self, node: Node) -> tuple[str, ...] | None:
        return _values(
            self.problems.string_list(node, non_empty=True, check=self._pool_ref)
        )

    def _pool_ref(self, node: Node) -> str | None:
        """A pool named in a route step; must be a key of pools."""
        name = self.problems.string(node)
        if name is None or self.pool_names is None or name in self.pool_names:
            return name
        if self.pool_names:
            known = f"expected one of: {', '.join(self.pool_names)}"
        else:
            known = "the policy has no pools"
        self.problems.add(node, f'unknown pool "{name}" ({known})')
        return None

    def _skill_refs(self, node: Node) -> tuple[str, ...] | None:
        return _values(
            self.problems.string_list(node, non_empty=True, check=self._skill_ref)
        )

    def _skill_ref(self, node: Node) -> str | None:
        """A skill named in a route step; some counsellor must have it."""
        skill = self._name(node)
        if skill is None or self.counsellors is None:
            return skill
        if not any(skill in c.skills for c in self.counsellors):
            self.problems.add(node, f'no counsellor has the skill "{skill}"')
            return None
        return skill

    def _language_refs(self, node: Node) -> tuple[str, ...] | None:
        return _values(
            self.problems.string_list(node, non_empty=True, check=self._language_ref)
        )

    def _language_ref(self, node: Node) -> str | None:
        """A language named in a route step; some counsellor must speak it."""
        lang = self._language(node)
        if lang is None or self.counsellors is None:
            return lang
        if not any(lang in c.languages for c in self.counsellors):
            self.problems.add(node, f'no counsellor speaks "{lang}"')
            return None
        return lang

    def _genders(self, node: Node) -> tuple[str, ...] | None:
        return _values(
            self.problems.string_list(
                node, non_empty=True, check=lambda n: self.problems.choice(n, GENDERS)
            )
        )


def _values(pairs: list[tuple[str, Node]] | None) -> tuple[str, ...] | None:
    """The strings of a checked list, or ``None`` if the list was not usable."""
    return None if pairs is None else tuple(value for value, _ in pairs)


def _some(user_ids: Sequence[str], shown: int = 3) -> str:
    """The first ``shown`` user IDs, quoted, and how many more there are."""
    quoted = ", ".join(f'"{user_id}"' for user_id in user_ids[:shown])
    rest = len(user_ids) - shown
    return quoted if rest <= 0 else f"{quoted} and {rest} more"
