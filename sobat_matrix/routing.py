"""Who gets the next offer of a curhat: pure decisions over a policy and loads.

Nothing here does I/O or keeps state; the caller passes in the current loads and
who already declined or let an offer time out, so every rule can be tested with
plain values. A warga's preferences narrow the route; they never widen it.

The rules, in order:

1. Walk the category's route step by step. In a step, drop counsellors who do not
   match the preference, who declined this curhat, or whose offer timed out, and
   those who are full (``open_curhats >= max_open``) or already hold an offer.
2. Of those left, the least busy wins; ties go to file order. The first step with
   anybody left decides.
3. If nobody is left, start a new round among those whose offer timed out (not
   those who declined): a counsellor who missed an offer may be free now.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from sobat_matrix.policy import GENDERS, Category, Counsellor, Policy, RouteStep

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preference:
    """What the warga asked for at intake; ``None`` means no preference."""

    type: str | None = None
    gender: str | None = None

    def accepts(self, counsellor: Counsellor) -> bool:
        if self.type is not None and self.type not in counsellor.types:
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


def choose(
    policy: Policy,
    category_key: str,
    pref: Preference,
    loads: Mapping[str, Load],
    declined: Set[str],
    timed_out: Set[str],
) -> Choice | None:
    """The next counsellor to offer a curhat of ``category_key`` to, or ``None``.

    ``loads`` is keyed by counsellor user ID; a counsellor missing from it is idle.
    ``None`` means nobody can take it now (all full, busy or declined); the caller
    tries again when a load changes. Raises :class:`KeyError` for a category the
    policy does not have, which is a bug in the caller, not a routing outcome.
    """
    category = policy.category(category_key)
    if category is None:
        raise KeyError(category_key)

    for index, step in enumerate(category.route):
        pool = (
            c
            for c in policy.step_pool(step)
            if c.user_id not in declined and c.user_id not in timed_out
        )
        best = _least_busy(pool, pref, loads)
        if best is not None:
            return Choice(best, index, step.timeout_s, new_round=False)

    if not timed_out:
        return None
    for index, step in enumerate(category.route):
        pool = (
            c
            for c in policy.step_pool(step)
            if c.user_id in timed_out and c.user_id not in declined
        )
        best = _least_busy(pool, pref, loads)
        if best is not None:
            return Choice(best, index, step.timeout_s, new_round=True)
    return None


def _least_busy(
    pool: Iterable[Counsellor], pref: Preference, loads: Mapping[str, Load]
) -> Counsellor | None:
    """The available counsellor with the fewest open curhats; first one on ties."""
    best: Counsellor | None = None
    best_open = 0
    for counsellor in pool:
        if not pref.accepts(counsellor):
            continue
        load = loads.get(counsellor.user_id, _NO_LOAD)
        if load.pending_offer or load.open_curhats >= counsellor.max_open:
            continue
        if best is None or load.open_curhats < best_open:
            best = counsellor
            best_open = load.open_curhats
            if best_open == 0:
                # Nobody can beat an idle counsellor, and the earliest one wins ties.
                break
    return best
