"""Tests for routing decisions: who gets the next offer, and what intake may offer."""

from __future__ import annotations

import time
from pathlib import Path
from types import MappingProxyType

import pytest

from sobat_matrix.policy import Category, Counsellor, Policy, RouteStep, load_policy
from sobat_matrix.routing import (
    Choice,
    Load,
    Preference,
    choose,
    preference_options,
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
    }


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
