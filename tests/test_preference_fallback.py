"""The reconciler and the preference fallback: who gets the offer, what is said, once.

Runs ``Reconciler._dispatch`` on a real store with no server (duty rooms are rows
in the store), so each rule is one pass and its effects are read back from the
store: the offers and the outbox. The routing decision itself is table-tested in
test_routing.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from sobat_matrix import duty, supervise
from sobat_matrix.commands import Command
from sobat_matrix.curhat import Reconciler
from sobat_matrix.i18n import Catalog
from sobat_matrix.policy import load_policy
from sobat_matrix.runtime import Runtime
from sobat_matrix.store import Case, Store, case_purpose, duty_purpose

ANI, BUDI, CECEP, DEWI = (
    f"@{n}:sukabumi.test" for n in ("ani", "budi", "cecep", "dewi")
)
WARGA = "@warga:sukabumi.test"
DM = "!dm:sukabumi.test"
ROOM = "!curhat:sukabumi.test"
MINUTE = 60.0

# Men first in file order, so a route that forgot the preference would pick them.
POLICY = f"""
counsellor_types:
  psikolog: {{id: Psikolog, en: Psychologist}}
  keagamaan: {{id: Konselor keagamaan, en: Religious counsellor}}
counsellors:
  - {{id: "{BUDI}", name: Pak Budi, types: [psikolog], gender: laki-laki}}
  - {{id: "{CECEP}", name: Pak Cecep, types: [psikolog, keagamaan], gender: laki-laki}}
  - {{id: "{ANI}", name: Ibu Ani, types: [psikolog], gender: perempuan}}
  - {{id: "{DEWI}", name: Ibu Dewi, types: [psikolog], gender: perempuan}}
categories:
  sosial:
    label: {{id: Sosial, en: Social life}}
    ask: [gender]
    route:
      - types: [psikolog]
        timeout: 5m
  ekonomi:
    label: {{id: Ekonomi, en: Money}}
    route:
      - counsellors: ["{BUDI}", "{CECEP}"]
        timeout: 5m
"""
FALLBACK = "queue: {preference_fallback: 10m}\n"
NEVER = "queue: {preference_fallback: never}\n"


async def runtime(tmp_path: Path, policy: str) -> Runtime:
    path = tmp_path / "policy.yaml"
    path.write_text(policy)
    store = await Store.open(tmp_path / "sobat.db")
    duty_rooms = {}
    async with store.tx() as tx:
        for user_id in (ANI, BUDI, CECEP, DEWI):
            # Each counsellor is in their duty room, as the last sync shows.
            duty_rooms[f"!duty-{user_id}"] = SimpleNamespace(
                users={user_id: None}, invited_users={}
            )
            await tx.want_room(duty_purpose(user_id), f"t-{user_id}")
            await tx.set_room_id(duty_purpose(user_id), f"!duty-{user_id}")
    return Runtime(
        config=None,  # type: ignore[arg-type]
        policy=load_policy(path),
        catalog=Catalog("id"),
        store=store,
        matrix=SimpleNamespace(client=SimpleNamespace(rooms=duty_rooms)),  # type: ignore[arg-type]
    )


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime_ = await runtime(tmp_path, POLICY + FALLBACK)
    yield runtime_
    await runtime_.store.close()


@pytest.fixture
async def rt_never(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime_ = await runtime(tmp_path, POLICY + NEVER)
    yield runtime_
    await runtime_.store.close()


async def waiting(
    rt: Runtime,
    *,
    waited_s: float,
    category: str = "sosial",
    gender: str | None = "perempuan",
    code: str = "P1",
) -> Case:
    """A waiting curhat of a warga who asked for ``gender``, ``waited_s`` ago."""
    async with rt.store.tx() as tx:
        case = await tx.add_case(
            code=code,
            warga=WARGA if code == "P1" else f"@warga-{code}:sukabumi.test",
            dm_room=DM if code == "P1" else f"!dm-{code}:sukabumi.test",
            category=category,
            pref_type=None,
            pref_gender=gender,
        )
        await tx.update_case(case.id, requested_at=time.time() - waited_s)
        found = await tx.case(case.id)
    assert found is not None
    return found


async def away(rt: Runtime, *user_ids: str) -> None:
    async with rt.store.tx() as tx:
        for user_id in user_ids:
            await tx.set_availability(user_id, False)


async def dispatch(rt: Runtime, case_id: int) -> tuple[list[tuple[str, str]], Case]:
    """One routing pass by a freshly started reconciler: (offers, the case after).

    A new reconciler each time is a restart: only the store remembers anything.
    """
    reconciler = Reconciler(rt)
    reconciler._usable = {ANI, BUDI, CECEP, DEWI}
    async with rt.store.tx() as tx:
        await reconciler._dispatch(tx)
    async with rt.store.tx() as tx:
        offers = [(o.counsellor, o.status) for o in await tx.offers_of_case(case_id)]
        case = await tx.case(case_id)
    assert case is not None
    return offers, case


async def said(rt: Runtime, room_id: str) -> list[str]:
    async with rt.store.tx() as tx:
        return [i.content["body"] for i in await tx.outbox() if i.room_id == room_id]


RELAXED_TOLD = (
    "Sudah {waited} belum ada konselor Perempuan yang bisa menerima curhat #P1. "
    "Supaya Anda tidak menunggu lebih lama, curhat Anda sekarang juga ditawarkan "
    "kepada konselor lain yang bertugas; konselor Perempuan tetap didahulukan begitu "
    "ada yang bisa.\nJika Anda tidak mau, ketik !batal untuk membatalkan; Anda bisa "
    "menulis lagi kapan saja."
)


async def test_a_matching_counsellor_gets_it_however_long_it_waited(
    rt: Runtime,
) -> None:
    case = await waiting(rt, waited_s=60 * MINUTE)

    offers, after = await dispatch(rt, case.id)

    assert offers == [(ANI, "pending")] and after.pref_relaxed_at is None
    assert await said(rt, DM) == []


async def test_a_counsellor_only_invited_to_the_duty_room_gets_no_offer(
    rt: Runtime,
) -> None:
    # Synapse's admin join invites first; with invitations the counsellor may take
    # days to accept. An offer sent before they joined would stay hidden from them.
    rt.matrix.client.rooms[f"!duty-{ANI}"].invited_users = {ANI: None}
    case = await waiting(rt, waited_s=60 * MINUTE)

    offers, _ = await dispatch(rt, case.id)

    assert offers == [(DEWI, "pending")]


async def test_before_the_fallback_nobody_else_is_offered_it(rt: Runtime) -> None:
    await away(rt, ANI, DEWI)
    case = await waiting(rt, waited_s=9 * MINUTE)

    offers, after = await dispatch(rt, case.id)

    assert offers == [] and after.pref_relaxed_at is None
    assert [t.split(".")[0] for t in await said(rt, DM)] == [
        "Saat ini semua konselor yang sesuai sedang sibuk"
    ]


async def test_after_the_fallback_anyone_and_the_warga_is_told_once(
    rt: Runtime,
) -> None:
    await away(rt, ANI, DEWI)
    case = await waiting(rt, waited_s=11 * MINUTE)

    offers, after = await dispatch(rt, case.id)

    assert offers == [(BUDI, "pending")] and after.pref_relaxed_at is not None
    assert await said(rt, DM) == [RELAXED_TOLD.format(waited="11 mnt")]
    async with rt.store.tx() as tx:
        (budi,) = [o for o in await tx.pending_offers() if o.case_id == case.id]
        await tx.answer_offer(budi.id, "declined")
        duty_said = [i.content["body"] for i in await tx.outbox()]
    assert any(t.startswith("ℹ️ Belum ada konselor sesuai") for t in duty_said)

    # After a restart the next relaxed offer goes out without telling again.
    offers, _ = await dispatch(rt, case.id)

    assert offers == [(BUDI, "declined"), (CECEP, "pending")]
    assert await said(rt, DM) == [RELAXED_TOLD.format(waited="11 mnt")]


async def test_a_matching_counsellor_free_again_goes_first_after_the_fallback(
    rt: Runtime,
) -> None:
    await away(rt, DEWI)
    case = await waiting(rt, waited_s=30 * MINUTE)

    offers, after = await dispatch(rt, case.id)

    assert offers == [(ANI, "pending")] and after.pref_relaxed_at is None


async def test_never_keeps_the_preference(rt_never: Runtime) -> None:
    await away(rt_never, ANI, DEWI)
    case = await waiting(rt_never, waited_s=24 * 60 * MINUTE)

    offers, after = await dispatch(rt_never, case.id)

    assert offers == [] and after.status == "waiting"
    assert after.pref_relaxed_at is None


async def test_never_and_nobody_matching_at_all_is_told_at_once(
    rt_never: Runtime,
) -> None:
    # Only men on the route of ekonomi (after a move, say): nobody could ever match.
    case = await waiting(rt_never, waited_s=0, category="ekonomi")

    offers, after = await dispatch(rt_never, case.id)

    assert offers == []
    assert (after.status, after.closed_by) == ("closing", "unserved")
    (text,) = await said(rt_never, DM)
    assert text.startswith(
        "Mohon maaf, untuk topik ini tidak ada konselor Perempuan sehingga curhat #P1 "
        "tidak bisa dilayani sesuai pilihan Anda."
    )


async def test_when_every_match_declined_it_waits_for_the_fallback(
    rt: Runtime,
) -> None:
    case = await waiting(rt, waited_s=5 * MINUTE)
    async with rt.store.tx() as tx:
        for woman in (ANI, DEWI):
            offer = await tx.add_offer(case.id, woman, 0, 300)
            await tx.answer_offer(offer.id, "declined")

    offers, after = await dispatch(rt, case.id)

    assert after.status == "waiting" and len(offers) == 2
    async with rt.store.tx() as tx:
        await tx.update_case(case.id, requested_at=time.time() - 10 * MINUTE)
    offers, after = await dispatch(rt, case.id)
    assert offers[2:] == [(BUDI, "pending")] and after.pref_relaxed_at is not None


async def test_when_every_match_declined_under_never_it_is_given_up(
    rt_never: Runtime,
) -> None:
    case = await waiting(rt_never, waited_s=5 * MINUTE)
    async with rt_never.store.tx() as tx:
        for woman in (ANI, DEWI):
            offer = await tx.add_offer(case.id, woman, 0, 300)
            await tx.answer_offer(offer.id, "declined")

    _, after = await dispatch(rt_never, case.id)

    assert (after.status, after.closed_by) == ("closing", "unserved")
    (text,) = await said(rt_never, DM)
    assert text.startswith("Mohon maaf, saat ini tidak ada konselor yang bisa")


async def test_nobody_matching_at_all_waits_for_the_fallback(rt: Runtime) -> None:
    early = await waiting(rt, waited_s=0, category="ekonomi")

    offers, after = await dispatch(rt, early.id)

    assert offers == [] and after.status == "waiting"
    async with rt.store.tx() as tx:
        await tx.update_case(early.id, requested_at=time.time() - 10 * MINUTE)
    offers, after = await dispatch(rt, early.id)
    assert offers == [(BUDI, "pending")] and after.pref_relaxed_at is not None


# -- hand-overs keep the warga's preference --------------------------------------------


async def handing_over(rt: Runtime, *, since_s: float, to: str = "") -> Case:
    """An active curhat of Ani's, with a warga who asked for a woman, handed over.

    It was requested an hour ago; the hand-over was asked ``since_s`` ago.
    """
    case = await waiting(rt, waited_s=60 * MINUTE)
    async with rt.store.tx() as tx:
        await tx.want_room(case_purpose(case.id), "t-case")
        await tx.set_room_id(case_purpose(case.id), ROOM)
        offer = await tx.add_offer(case.id, ANI, 0, 300)
        await tx.answer_offer(offer.id, "accepted")
        await tx.update_case(case.id, status="active", counsellor=ANI)
        active = await tx.case(case.id)
        assert active is not None
        await duty.hand_over(rt, tx, ROOM, active, Command("alihkan", to or "sosial"))
        await tx.update_case(case.id, handover_at=time.time() - since_s)
        found = await tx.case(case.id)
    assert found is not None and found.handover_from == ANI
    return found


async def test_a_hand_over_keeps_the_gender_preference(rt: Runtime) -> None:
    case = await handing_over(rt, since_s=0)

    offers, after = await dispatch(rt, case.id)

    # Budi is first in file order and idle: without the preference he got it.
    assert offers == [(ANI, "accepted"), (DEWI, "pending")]
    assert after.pref_relaxed_at is None


async def test_a_hand_over_waits_for_its_own_fallback(rt: Runtime) -> None:
    await away(rt, DEWI)
    case = await handing_over(rt, since_s=9 * MINUTE)

    offers, _ = await dispatch(rt, case.id)

    # The curhat was requested an hour ago; the hand-over's clock started later.
    assert offers == [(ANI, "accepted")]


async def test_a_hand_over_after_its_fallback_tells_the_warga_in_the_room(
    rt: Runtime,
) -> None:
    await away(rt, DEWI)
    case = await handing_over(rt, since_s=11 * MINUTE)

    offers, after = await dispatch(rt, case.id)

    assert offers == [(ANI, "accepted"), (BUDI, "pending")]
    assert after.pref_relaxed_at is not None
    assert (await said(rt, ROOM))[-1] == (
        "Belum ada konselor Perempuan yang bisa melanjutkan curhat ini setelah "
        "11 mnt, jadi pengalihannya sekarang juga ditawarkan kepada konselor lain. "
        "Konselor Anda sekarang tetap di sini sampai penggantinya masuk."
    )


async def test_a_hand_over_to_a_type_never_lets_go_of_the_type(rt: Runtime) -> None:
    # Cecep is the only religious counsellor, and a man: he is the relaxed choice.
    await away(rt, DEWI)
    case = await handing_over(rt, since_s=11 * MINUTE, to="keagamaan")

    offers, _ = await dispatch(rt, case.id)

    assert offers == [(ANI, "accepted"), (CECEP, "pending")]


# -- a supervisor's !pindah ----------------------------------------------------------

SUPERVISORS = "!pengawas:sukabumi.test"


async def move(rt: Runtime, arg: str) -> str:
    """``!pindah <arg>`` in the supervisors' room: what the supervisors were told."""
    async with rt.store.tx() as tx:
        await supervise.move(rt, tx, SUPERVISORS, Command("pindah", arg))
    (answer,) = await said(rt, SUPERVISORS)
    async with rt.store.tx() as tx:
        await tx._run("DELETE FROM outbox WHERE room_id = ?", (SUPERVISORS,))
    return answer


async def test_moving_to_a_category_keeps_gender_and_routes_there(
    rt: Runtime,
) -> None:
    case = await waiting(rt, waited_s=0, category="ekonomi", gender="laki-laki")
    async with rt.store.tx() as tx:
        await tx.update_case(case.id, pref_type="psikolog")
        await tx.add_offer(case.id, BUDI, 0, 300)

    answer = await move(rt, "#p1 Sosial")
    offers, after = await dispatch(rt, case.id)

    assert answer == "Curhat #P1 dipindahkan ke Sosial."
    assert (after.category, after.pref_type, after.pref_gender) == (
        "sosial",
        None,
        "laki-laki",
    )
    # Budi's offer was withdrawn; Cecep is the other man the new route reaches.
    assert offers == [(BUDI, "withdrawn"), (CECEP, "pending")]


async def test_moving_where_nobody_matches_is_refused_under_never(
    rt_never: Runtime,
) -> None:
    case = await waiting(rt_never, waited_s=0)

    answer = await move(rt_never, "P1 ekonomi")

    async with rt_never.store.tx() as tx:
        after = await tx.case(case.id)
    assert after is not None and after.category == "sosial"
    assert answer == (
        "Curhat #P1 tidak dipindahkan: Ekonomi tidak sesuai preferensi warga, dan "
        "kebijakan menjaga preferensi itu selama curhat menunggu "
        "(preference_fallback never)."
    )


async def test_moving_where_nobody_matches_applies_the_fallback(
    rt: Runtime,
) -> None:
    case = await waiting(rt, waited_s=0)

    answer = await move(rt, "P1 ekonomi")
    offers, after = await dispatch(rt, case.id)

    assert answer.startswith("Curhat #P1 dipindahkan ke Ekonomi.\nBelum ada konselor")
    assert "setelah menunggu 10 mnt" in answer
    assert (after.category, after.status, offers) == ("ekonomi", "waiting", [])


async def test_moving_to_a_full_counsellor_is_refused(rt: Runtime) -> None:
    other = await handing_over(rt, since_s=0)  # Ani holds one open curhat
    async with rt.store.tx() as tx:
        await tx.update_case(other.id, code="P0", handover_from=None)
        for n in range(2):
            busy = await tx.add_case(
                code=f"Q{n}",
                warga=f"@w{n}:sukabumi.test",
                dm_room=f"!dm{n}:sukabumi.test",
                category="sosial",
                pref_type=None,
                pref_gender=None,
            )
            await tx.update_case(busy.id, status="active", counsellor=ANI)
    case = await waiting(rt, waited_s=0)

    answer = await move(rt, f"P1 {ANI}")

    assert answer == (
        "Curhat #P1 tidak dipindahkan: Ibu Ani sudah memegang 3/3 curhat terbuka. "
        "Pilih konselor lain atau pindahkan ke kategori."
    )
    async with rt.store.tx() as tx:
        assert await tx.offers_of_case(case.id) == []


@pytest.mark.parametrize(
    ("waited_s", "moved"),
    [
        pytest.param(5 * MINUTE, False, id="before"),
        pytest.param(11 * MINUTE, True, id="after"),
    ],
)
async def test_moving_to_a_counsellor_outside_the_preference(
    rt: Runtime, waited_s: float, moved: bool
) -> None:
    case = await waiting(rt, waited_s=waited_s)

    answer = await move(rt, f"P1 {BUDI}")

    async with rt.store.tx() as tx:
        offers = [(o.counsellor, o.status) for o in await tx.offers_of_case(case.id)]
        after = await tx.case(case.id)
    assert after is not None
    if moved:
        assert answer == "Curhat #P1 dipindahkan ke Pak Budi."
        assert offers == [(BUDI, "pending")] and after.pref_relaxed_at is not None
        assert await said(rt, DM) == [RELAXED_TOLD.format(waited="11 mnt")]
    else:
        assert answer == (
            "Curhat #P1 tidak dipindahkan: Pak Budi tidak sesuai preferensi warga, "
            "dan kebijakan menjaga preferensi itu sampai curhat menunggu 10 mnt "
            "(sekarang 5 mnt)."
        )
        assert offers == [] and await said(rt, DM) == []


# -- one pass, many curhats ------------------------------------------------------------


async def test_one_pass_gives_each_counsellor_one_offer(rt: Runtime) -> None:
    # The loads are worked out once per pass: each offer must still count in them.
    first = await waiting(rt, waited_s=2, category="ekonomi", gender=None, code="E1")
    second = await waiting(rt, waited_s=1, category="ekonomi", gender=None, code="E2")
    third = await waiting(rt, waited_s=0, category="ekonomi", gender=None, code="E3")

    offers = [(await dispatch(rt, first.id))[0]]
    for case in (second, third):
        async with rt.store.tx() as tx:
            offers.append(
                [(o.counsellor, o.status) for o in await tx.offers_of_case(case.id)]
            )

    assert offers == [[(BUDI, "pending")], [(CECEP, "pending")], []]
