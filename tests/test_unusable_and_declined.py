"""Counsellors the bot cannot bring in, and curhats nobody takes (issue 5, items 8, 9).

The unit tests drive the pure pieces: :class:`Rounds` read from offers,
:func:`next_step`, and the account lookup against a fake homeserver. The
integration tests run the real bot on the test Synapse.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from sobat_matrix.curhat import (
    DEACTIVATED,
    NOT_FOUND,
    REMOTE,
    THE_BOT,
    WAIT,
    NextStep,
    Reconciler,
    Rounds,
    next_step,
)
from sobat_matrix.devserver import DevServer
from sobat_matrix.devtools import Actor
from sobat_matrix.matrix import MatrixError
from sobat_matrix.policy import Policy, QueueRules, load_policy
from sobat_matrix.routing import Choice, Preference, choose
from sobat_matrix.store import Offer, Store

from .botkit import BotWorld, first_offer, make_world
from .test_routing_live import duty_room, request, supervisors_room

A, B, C = "@a:kota.test", "@b:kota.test", "@c:kota.test"
RULES = QueueRules(max_rounds=3, round_pause_s=120.0)
T0 = 1_000_000.0


def offer(n: int, who: str, status: str, answered_at: float | None = None) -> Offer:
    return Offer(
        id=n,
        case_id=1,
        counsellor=who,
        step_index=0,
        status=status,
        event_id=None,
        offered_at=T0 + n,
        expires_at=T0 + n + 60,
        answered_at=answered_at,
    )


POLICY = f"""\
counsellor_types:
  psikolog: Psikolog
counsellors:
  - {{id: "{A}", name: Ani, types: [psikolog], gender: perempuan}}
  - {{id: "{B}", name: Bina, types: [psikolog], gender: perempuan}}
  - {{id: "{C}", name: Cecep, types: [psikolog], gender: laki-laki}}
categories:
  keluarga:
    label: Keluarga
    route:
      - counsellors: ["{A}", "{B}"]
        timeout: 1m
"""


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY + "queue: {max_rounds: 3, round_pause: 2m}\n")
    return load_policy(path)


# -- Rounds --------------------------------------------------------------------------


def test_no_offers_is_round_one_with_nobody_asked() -> None:
    assert Rounds.of([]) == Rounds()


def test_a_second_offer_to_the_same_counsellor_starts_a_new_round() -> None:
    rounds = Rounds.of(
        [
            offer(1, A, "timed_out", T0 + 60),
            offer(2, B, "timed_out", T0 + 120),
            offer(3, A, "pending"),
        ]
    )

    assert rounds == Rounds(
        number=2,
        asked=frozenset({A}),
        declined=frozenset(),
        timed_out=frozenset({A, B}),
        pending=True,
        ended_at=None,
    )


def test_declined_and_unusable_count_as_never_again() -> None:
    rounds = Rounds.of(
        [offer(1, A, "declined", T0 + 5), offer(2, B, "unusable", T0 + 9)]
    )

    assert (rounds.number, rounds.declined, rounds.ended_at) == (
        1,
        frozenset({A, B}),
        T0 + 9,
    )


# -- next_step -----------------------------------------------------------------------


def choice_of(policy: Policy, user_id: str, new_round: bool = False) -> Choice:
    counsellor = policy.counsellor(user_id)
    assert counsellor is not None
    return Choice(counsellor, 0, 60.0, new_round)


def step(rounds: Rounds, **kw: Any) -> NextStep:
    args: dict[str, Any] = {
        "reachable": {A, B},
        "never": rounds.declined,
        "within": None,
        "again": None,
        "now": T0 + 1000,
        "rules": RULES,
    }
    args.update(kw)
    return next_step(rounds, **args)


def test_everybody_reachable_declined_is_unserved_at_once(policy: Policy) -> None:
    rounds = Rounds.of([offer(1, A, "declined", T0), offer(2, B, "declined", T0)])

    assert step(rounds) == NextStep(unserved=True)


def test_one_declined_and_one_unusable_is_unserved(policy: Policy) -> None:
    rounds = Rounds.of([offer(1, A, "declined", T0)])

    assert step(rounds, never={A, B}) == NextStep(unserved=True)


def test_a_fresh_counsellor_in_the_round_gets_it(policy: Policy) -> None:
    rounds = Rounds.of([offer(1, A, "timed_out", T0 + 60)])
    within = choice_of(policy, B)

    assert step(rounds, within=within) == NextStep(within)


def test_nobody_asked_yet_and_nobody_free_waits() -> None:
    assert step(Rounds()) == WAIT


def test_a_pending_offer_waits(policy: Policy) -> None:
    rounds = Rounds.of([offer(1, A, "pending")])

    assert step(rounds, within=choice_of(policy, B)) == WAIT


def test_a_new_round_waits_for_the_pause(policy: Policy) -> None:
    rounds = Rounds.of([offer(1, A, "timed_out", T0), offer(2, B, "timed_out", T0)])
    again = choice_of(policy, A, new_round=True)

    assert step(rounds, again=again, now=T0 + 119) == WAIT
    assert step(rounds, again=again, now=T0 + 120) == NextStep(again)


def test_after_the_last_round_it_is_unserved(policy: Policy) -> None:
    offers = [
        offer(n, who, "timed_out", T0 + 200 * n)
        for n, who in enumerate([A, B, A, B, A, B], start=1)
    ]
    rounds = Rounds.of(offers)

    assert rounds.number == 3
    assert step(rounds, again=choice_of(policy, A, True)) == NextStep(unserved=True)


def test_busy_counsellors_do_not_use_up_rounds(policy: Policy) -> None:
    # Round 2 is over and everyone who could take it is busy: wait in the queue.
    rounds = Rounds.of([offer(1, A, "timed_out", T0), offer(2, A, "timed_out", T0)])

    assert rounds.number == 2
    assert step(rounds, again=None) == WAIT


def test_the_last_round_waits_for_those_not_asked_in_it(policy: Policy) -> None:
    # One round only: A let it lapse, B is busy and was never asked.
    rounds = Rounds.of([offer(1, A, "timed_out", T0)])
    one = QueueRules(max_rounds=1, round_pause_s=120.0)

    assert step(rounds, rules=one) == WAIT
    assert step(rounds, rules=one, reachable={A}) == NextStep(unserved=True)


def test_rounds_played_out_with_real_routing(policy: Policy) -> None:
    """Nobody answers: A, B; pause; A, B; pause; A, B; then the warga is told."""
    offers: list[Offer] = []
    now = T0
    given: list[tuple[str, bool]] = []
    offered_at: list[float] = []
    for _ in range(20):
        rounds = Rounds.of(offers)
        declined = set(rounds.declined)

        def route(never: set[str], lapsed: set[str]) -> Choice | None:
            return choose(policy, "keluarga", Preference(), {}, never, lapsed)

        within = route(declined | rounds.asked, set(rounds.timed_out - rounds.asked))
        again = None if within else route(declined, set(rounds.timed_out))
        decided = next_step(
            rounds,
            reachable={A, B},
            never=declined,
            within=within,
            again=again,
            now=now,
            rules=RULES,
        )
        if decided.unserved:
            break
        if decided.choice is None:
            now += 30
            continue
        who = decided.choice.counsellor.user_id
        given.append((who, decided.choice.new_round))
        offered_at.append(now)
        now += 60
        offers.append(offer(len(offers) + 1, who, "timed_out", now))

    assert decided.unserved
    assert [who for who, _ in given] == [A, B, A, B, A, B]
    # C is not on the route: never asked.
    assert C not in {who for who, _ in given}
    # The pause held: the third offer came at least two minutes after the second.
    assert offered_at[2] - offered_at[1] >= 60 + 120
    assert offered_at[4] - offered_at[3] >= 60 + 120
    # Within a round, the next counsellor is asked as soon as an offer lapses.
    assert offered_at[1] - offered_at[0] == 60
    assert [new for _, new in given] == [False, False, True, True, True, True]


# -- looking counsellors up ----------------------------------------------------------


class FakeMatrix:
    """Answers lookups from a table of paths: a dict, or a status to fail with."""

    def __init__(self, answers: dict[str, dict[str, Any] | int]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def request(
        self, method: str, path: str, body: Any = None, *, what: str
    ) -> dict[str, Any]:
        self.asked.append(path)
        answer = self.answers.get(path, 404)
        if isinstance(answer, int):
            raise MatrixError(what, answer, "M_NOT_FOUND")
        return answer


ADMIN = "/_synapse/admin/v2/users/%40a%3Akota.test"
PROFILE = "/_matrix/client/v3/profile/%40a%3Akota.test"


def reconciler(answers: dict[str, Any], *, admin: bool) -> Reconciler:
    rt = SimpleNamespace(
        bot="@sobat:kota.test", admin_join=admin, matrix=FakeMatrix(answers)
    )
    return Reconciler(rt)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("user_id", "answers", "admin", "expected"),
    [
        pytest.param(A, {ADMIN: {"deactivated": False}}, True, None, id="live"),
        pytest.param(A, {ADMIN: {"deactivated": True}}, True, DEACTIVATED, id="deact"),
        pytest.param(A, {}, True, NOT_FOUND, id="admin-404"),
        pytest.param(A, {PROFILE: {"displayname": "A"}}, False, None, id="profile"),
        pytest.param(A, {}, False, NOT_FOUND, id="profile-404"),
        pytest.param(A, {PROFILE: 403}, False, None, id="profile-hidden"),
        pytest.param(A, {ADMIN: 403, PROFILE: {}}, True, None, id="not-admin"),
        pytest.param("@a:lain.test", {}, True, REMOTE, id="remote"),
        pytest.param("@sobat:kota.test", {}, True, THE_BOT, id="bot"),
    ],
)
async def test_why_a_counsellor_is_unusable(
    user_id: str, answers: dict[str, Any], admin: bool, expected: str | None
) -> None:
    assert await reconciler(answers, admin=admin)._why_unusable(user_id) == expected


async def test_a_server_error_is_raised_for_a_retry() -> None:
    with pytest.raises(MatrixError):
        await reconciler({ADMIN: 502}, admin=True)._why_unusable(A)


# -- on a real Synapse ----------------------------------------------------------------


def two_step_policy(ids: dict[str, str], route: str) -> str:
    """A, B psychologists, C religious; ``keluarga`` goes by ``route``."""
    return f"""
emergency_contacts:
  - {{id: "Layanan sehat jiwa SEJIWA: 119 ext 8", en: "SEJIWA: 119 ext 8"}}
  - {{id: "Panggilan darurat: 112", en: "Emergency: 112"}}
counsellor_types:
  psikolog: {{id: Psikolog, en: Psychologist}}
  keagamaan: {{id: Konselor keagamaan, en: Religious counsellor}}
counsellors:
  - {{id: "{ids["a"]}", name: Ibu Ani, types: [psikolog], gender: perempuan}}
  - {{id: "{ids["b"]}", name: Pak Budi, types: [psikolog], gender: laki-laki}}
  - {{id: "{ids["c"]}", name: Pak Cecep, types: [keagamaan], gender: laki-laki}}
categories:
  keluarga:
    label: Keluarga
    route:
{route}
"""


@pytest.fixture
async def worlds() -> AsyncIterator[list[BotWorld]]:
    made: list[BotWorld] = []
    yield made
    for world in made:
        await world.close()


async def deactivate(server: DevServer, admin_token: str, user_id: str) -> None:
    url = f"{server.url}/_synapse/admin/v1/deactivate/{quote(user_id, safe='')}"
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"erase": False}, headers=headers) as resp:
            assert resp.status == 200, await resp.text()


@pytest.mark.integration
async def test_missing_and_deactivated_counsellors_are_reported_and_skipped(
    synapse: DevServer, tmp_path: Path, worlds: list[BotWorld]
) -> None:
    world = await make_world(
        synapse,
        tmp_path,
        policy=lambda ids: two_step_policy(
            ids, "      - types: [psikolog]\n        timeout: 5m"
        ),
    )
    worlds.append(world)
    assert world.policy_path is not None
    server = synapse.server_name
    ghost = f"@hantu{secrets.token_hex(3)}:{server}"
    gone_local = f"pergi{secrets.token_hex(3)}"
    gone = await synapse.register_user(gone_local, secrets.token_urlsafe(12))
    await deactivate(synapse, world.stage.admin_token, gone)
    # Both come first, by priority: an offer to either would wait 5 minutes.
    a_id = world.counsellors["a"].user_id
    text = world.policy_path.read_text().replace(
        "categories:",
        f'  - {{id: "{ghost}", name: Hantu, types: [psikolog], gender: laki-laki}}\n'
        f'  - {{id: "{gone}", name: Pergi, types: [psikolog], gender: laki-laki}}\n'
        "categories:",
    )
    text = text.replace(
        "      - types: [psikolog]\n        timeout: 5m",
        f'      - counsellors: ["{ghost}", "{gone}", "{a_id}"]\n'
        "        order: priority\n        timeout: 5m",
    )
    world.policy_path.write_text(text)
    await world.start_bot()

    sup = world.supervisor
    sup_room = await supervisors_room(world)
    missing = await sup.wait_for_text(ghost, room_id=sup_room, timeout=60)
    deactivated = await sup.wait_for_text(gone, room_id=sup_room, timeout=60)
    assert "tidak ditemukan di server" in (missing.body or "")
    assert "akun dinonaktifkan" in (deactivated.body or "")

    a = world.counsellors["a"]
    a_duty = await duty_room(a)
    started = asyncio.get_running_loop().time()
    _, code = await request(world, world.warga, "Keluarga")
    await a.wait_for_text(f"#{code}", room_id=a_duty, timeout=30)
    # Offered at once, not after the 5 minutes an offer to the others would wait.
    assert asyncio.get_running_loop().time() - started < 60

    # Each is told once, even after a restart.
    await world.stop_bot()
    await world.start_bot()
    await asyncio.sleep(3)
    notices = [e.body or "" for e in sup.received if e.room_id == sup_room]
    assert sum(ghost in body for body in notices) == 1
    assert sum(gone in body for body in notices) == 1


@pytest.mark.integration
async def test_everybody_declined_closes_the_curhat_with_the_contacts(
    synapse: DevServer, tmp_path: Path, worlds: list[BotWorld]
) -> None:
    world = await make_world(
        synapse,
        tmp_path,
        policy=lambda ids: two_step_policy(
            ids,
            f'      - counsellors: ["{ids["a"]}", "{ids["b"]}"]\n        timeout: 5m',
        ),
    )
    worlds.append(world)
    await world.start_bot()
    a, b = world.counsellors["a"], world.counsellors["b"]
    duties = {a: await duty_room(a), b: await duty_room(b)}

    dm, code = await request(world, world.warga, "Keluarga")
    first, _ = await first_offer([a, b], code)
    await first.send_text(duties[first], "!tolak")
    second = b if first is a else a
    await second.wait_for_text(f"#{code}", room_id=duties[second], timeout=30)
    await second.send_text(duties[second], "!tolak")

    told = await world.warga.wait_for_text(
        "tidak ada konselor yang bisa", room_id=dm, timeout=30
    )
    body = told.body or ""
    assert f"#{code}" in body
    assert "Panggilan darurat: 112" in body
    assert "SEJIWA: 119 ext 8" in body
    assert "menulis lagi kapan saja" in body

    # The request is over: writing again starts a new one.
    await world.warga.send_text(dm, "halo")
    await world.warga.wait_for_text("setuju", room_id=dm, timeout=30)


async def a_then_b(
    synapse: DevServer, tmp_path: Path, worlds: list[BotWorld], timeout: str
) -> tuple[BotWorld, Actor, Actor, str, str]:
    """A running bot whose ``keluarga`` goes to A, then B, each offer ``timeout``."""
    world = await make_world(
        synapse,
        tmp_path,
        policy=lambda ids: two_step_policy(
            ids,
            f'      - counsellors: ["{ids["a"]}", "{ids["b"]}"]\n'
            f"        order: priority\n        timeout: {timeout}",
        ),
    )
    worlds.append(world)
    await world.start_bot()
    a, b = world.counsellors["a"], world.counsellors["b"]
    return world, a, b, await duty_room(a), await duty_room(b)


@pytest.mark.integration
async def test_a_counsellor_deactivated_while_holding_an_offer_loses_it_at_once(
    synapse: DevServer, tmp_path: Path, worlds: list[BotWorld]
) -> None:
    """Checked at the start, A is usable; deactivated later, A's offer moves on."""
    world, a, b, a_duty, b_duty = await a_then_b(synapse, tmp_path, worlds, "30m")
    sup_room = await supervisors_room(world)

    _, code = await request(world, world.warga, "Keluarga")
    await a.wait_for_text(f"#{code}", room_id=a_duty, timeout=30)
    await a.close()
    await deactivate(synapse, world.stage.admin_token, a.user_id)

    # Without the look-up again, B would wait the 30 minutes of A's offer.
    await b.wait_for_text(f"#{code}", room_id=b_duty, timeout=60)
    told = await world.supervisor.wait_for_text(a.user_id, room_id=sup_room, timeout=60)
    assert "akun dinonaktifkan" in (told.body or "")


async def test_a_timed_out_offer_has_its_counsellor_looked_up_again(
    tmp_path: Path,
) -> None:
    """An account gone since the start is found by the next unanswered offer."""
    store = await Store.open(tmp_path / "bot.db")
    try:
        rec = reconciler({ADMIN: {"deactivated": True}}, admin=True)
        rec.rt.store = store
        rec.rt.text = lambda key, **kw: key
        rec.rt.say = _no_say
        rec.rt.wake_reconciler = asyncio.Event()
        rec._usable.add(A)
        async with store.tx() as tx:
            case = await tx.add_case(
                code="K1",
                warga="@w:kota.test",
                dm_room="!dm:kota.test",
                category="keluarga",
                pref_type=None,
                pref_gender=None,
            )
            await tx.add_offer(case.id, A, 0, -1)
        async with store.tx() as tx:
            await rec._expire_offers(tx)

        assert A not in rec._usable
        assert await rec._check_counsellor(A) is False
        assert rec.unusable == {A: DEACTIVATED}
    finally:
        await store.close()


async def _no_say(*args: Any, **kwargs: Any) -> None:
    return None


@pytest.mark.integration
async def test_unanswered_offers_move_on_and_nobody_is_asked_twice(
    synapse: DevServer, tmp_path: Path, worlds: list[BotWorld]
) -> None:
    """A's offer lapses and goes to B; B's lapses too: with the default one round
    the curhat is given up honestly instead of going back to A."""
    world, a, b, a_duty, b_duty = await a_then_b(synapse, tmp_path, worlds, "3s")

    dm, code = await request(world, world.warga, "Keluarga")
    await a.wait_for_text(f"#{code}", room_id=a_duty, timeout=30)
    await a.wait_for_text("kedaluwarsa", room_id=a_duty, timeout=30)
    await b.wait_for_text(f"#{code}", room_id=b_duty, timeout=30)
    await b.wait_for_text("kedaluwarsa", room_id=b_duty, timeout=30)

    told = await world.warga.wait_for_text(
        "tidak ada konselor yang bisa", room_id=dm, timeout=30
    )
    assert "Panggilan darurat: 112" in (told.body or "")
    await asyncio.sleep(2)
    offers_to_a = [
        e.body or ""
        for e in a.received
        if e.room_id == a_duty and f"#{code}" in (e.body or "")
    ]
    assert len(offers_to_a) == 2, offers_to_a  # one offer, one "kedaluwarsa"
    assert sum("kedaluwarsa" in body for body in offers_to_a) == 1


async def test_supervisors_invited_but_not_joined_are_not_told_yet(
    tmp_path: Path,
) -> None:
    """Synapse's admin join invites first: a notice sent then is hidden from them."""
    store = await Store.open(tmp_path / "bot.db")
    try:
        room = SimpleNamespace(
            encrypted=True,
            users={"@sobat:kota.test": None, "@pengawas:kota.test": None},
            invited_users={"@pengawas:kota.test": None},
        )
        told: list[str] = []

        async def tell_supervisors(tx: Any, text: str) -> bool:
            told.append(text)
            return True

        rec = reconciler({}, admin=True)
        rec.rt.store = store
        rec.rt.text = lambda key, **kw: f"{key} {kw.get('counsellor', '')}"
        rec.rt.config = SimpleNamespace(supervisors=("@pengawas:kota.test",))
        rec.rt.matrix.client = SimpleNamespace(rooms={"!sup:kota.test": room})
        rec.rt.tell_supervisors = tell_supervisors
        rec.unusable[A] = NOT_FOUND
        rec._to_tell.add(A)
        async with store.tx() as tx:
            await tx.want_room("supervisors", "tok")
            await tx.set_room_id("supervisors", "!sup:kota.test")

        async with store.tx() as tx:
            await rec._tell_unusable(tx)
        assert told == []

        room.invited_users = {}
        async with store.tx() as tx:
            await rec._tell_unusable(tx)
        assert len(told) == 1 and A in told[0]
    finally:
        await store.close()
