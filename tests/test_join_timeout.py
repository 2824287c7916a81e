"""An accepted curhat does not wait for good for someone who never comes in.

Runs the real bot against the test Synapse with invitations (no admin joins), so a
counsellor or a warga can leave an invitation unanswered, as people do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from sobat_matrix.curhat import Reconciler
from sobat_matrix.devserver import DevServer
from sobat_matrix.devtools import Actor
from sobat_matrix.i18n import Catalog
from sobat_matrix.policy import load_policy
from sobat_matrix.runtime import Runtime
from sobat_matrix.store import Case, Store, case_purpose, duty_purpose

from .botkit import CODE, first_offer, make_world, policy_text
from .test_curhat_flow import _wait_membership, wait_members_gone

JOIN_TIMEOUT = "8s"


def short_join_policy(ids: dict[str, str]) -> str:
    return policy_text(ids) + f"queue:\n  join_timeout: {JOIN_TIMEOUT}\n"


# -- the rule, without a server --------------------------------------------------------

IDS = {k: f"@kons{k}:sukabumi.test" for k in "abc"}
A, B = IDS["a"], IDS["b"]
WARGA = "@warga:sukabumi.test"
ROOM = "!curhat:sukabumi.test"


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime whose server is a table of who the last sync shows in ROOM."""
    path = tmp_path / "policy.yaml"
    path.write_text(short_join_policy(IDS))
    store = await Store.open(tmp_path / "sobat.db")
    room = SimpleNamespace(users={}, invited_users={})
    runtime = Runtime(
        config=None,  # type: ignore[arg-type]
        policy=load_policy(path),
        catalog=Catalog("id"),
        store=store,
        matrix=SimpleNamespace(client=SimpleNamespace(rooms={ROOM: room})),  # type: ignore[arg-type]
    )
    async with store.tx() as tx:
        for user_id in (A, B):
            await tx.want_room(duty_purpose(user_id), f"t-{user_id}")
            await tx.set_room_id(duty_purpose(user_id), f"!duty-{user_id}")
    yield runtime
    await store.close()


async def accepted_case(rt: Runtime, counsellor: str, ago_s: float) -> Case:
    """A curhat ``counsellor`` accepted ``ago_s`` seconds ago, its room made."""
    async with rt.store.tx() as tx:
        case = await tx.add_case(
            code="K1",
            warga=WARGA,
            dm_room="!dm:sukabumi.test",
            category="ekonomi",
            pref_type=None,
            pref_gender=None,
        )
        await tx.want_room(case_purpose(case.id), "t-case")
        await tx.set_room_id(case_purpose(case.id), ROOM)
        offer = await tx.add_offer(case.id, counsellor, 0, 300)
        await tx.answer_offer(offer.id, "accepted")
        await tx._run(
            "UPDATE offers SET answered_at = ? WHERE id = ?",
            (time.time() - ago_s, offer.id),
        )
        await tx.update_case(
            case.id,
            status="accepted",
            counsellor=counsellor,
            accepted_at=time.time() - ago_s,
            counsellor_brought=1,
        )
        found = await tx.case(case.id)
    assert found is not None
    return found


async def expire(rt: Runtime, case: Case) -> tuple[Case, list[str], list[str]]:
    """Run the check once: the case after it, its offers' states, what was said."""
    async with rt.store.tx() as tx:
        await Reconciler(rt)._expire_joins(tx)
    async with rt.store.tx() as tx:
        after = await tx.case(case.id)
        offers = [o.status for o in await tx.offers_of_case(case.id)]
        said = [item.content["body"] for item in await tx.outbox()]
    assert after is not None
    return after, offers, said


async def test_within_the_join_timeout_nothing_changes(rt: Runtime) -> None:
    case = await accepted_case(rt, A, ago_s=5)

    after, offers, said = await expire(rt, case)

    assert (after.status, after.counsellor, offers, said) == (
        "accepted",
        A,
        ["accepted"],
        [],
    )


async def test_a_join_the_bot_did_not_see_is_not_a_no_show(rt: Runtime) -> None:
    case = await accepted_case(rt, A, ago_s=60)
    rt.matrix.client.rooms[ROOM].users = {A: object()}

    after, offers, said = await expire(rt, case)

    assert after.status == "accepted" and after.counsellor_joined_at is not None
    assert (offers, said) == (["accepted"], [])


async def test_a_hand_over_nobody_came_in_for_goes_back_to_the_first(
    rt: Runtime,
) -> None:
    case = await accepted_case(rt, B, ago_s=60)
    async with rt.store.tx() as tx:
        # A had the curhat and asked to hand it over; B accepted and never came.
        await tx.update_case(case.id, status="active", handover_from=A)

    after, offers, said = await expire(rt, case)

    assert (after.status, after.counsellor, after.handover_from) == ("active", A, A)
    assert after.counsellor_joined_at is not None
    assert offers == ["no_show"]
    assert said == [
        "Anda menerima curhat #K1, tetapi belum masuk ke ruangnya setelah 8 dtk. "
        "Curhat ini diteruskan ke konselor lain dan undangannya ditarik."
    ]


# -- on the real Synapse ----------------------------------------------------------


async def invited_room(actor: Actor, timeout_s: float = 30) -> str:
    """The one room ``actor`` is invited to and has not joined."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not actor.client.invited_rooms:
        assert asyncio.get_running_loop().time() < deadline, "no invitation came"
        await asyncio.sleep(0.2)
    (room_id,) = actor.client.invited_rooms
    return room_id


async def test_no_show_counsellor_loses_the_curhat_and_absent_warga_frees_the_next(
    synapse: DevServer, tmp_path: Path
) -> None:
    world = await make_world(
        synapse,
        tmp_path,
        config_overrides={"access": {"allowed_servers": [], "admin_join": "no"}},
        policy=short_join_policy,
    )
    try:
        await world.start_bot()
        warga = world.warga
        admin = world.stage.admin_token
        dm = await warga.start_direct_chat(world.stage.bot.user_id)
        await warga.wait_for_text("selamat datang", room_id=dm, timeout=60)
        await warga.send_text(dm, "setuju")
        await warga.wait_for_text("Tentang apa", room_id=dm)
        await warga.send_text(dm, "Ekonomi")
        received = await warga.wait_for_text("antrean nomor 1", room_id=dm)
        match = CODE.search(received.body or "")
        assert match, received.body
        code = match.group(1)

        # A counsellor accepts and then never opens the invitation.
        absent, offer = await first_offer(world.counsellors.values(), code)
        absent.auto_join = False
        await absent.send_text(offer.room_id, "!terima")
        await absent.wait_for_text(
            f'terima undangan ke ruang "Curhat #{code}" dalam 8 dtk',
            room_id=offer.room_id,
        )
        room = await invited_room(absent)

        # The join timeout passes: told, invitation withdrawn, offered to another.
        await absent.wait_for_text(
            f"menerima curhat #{code}, tetapi belum masuk", room_id=offer.room_id
        )
        await _wait_membership(synapse, admin, room, absent.user_id, "leave")
        others = [c for c in world.counsellors.values() if c is not absent]
        present, second = await first_offer(others, code)

        # This one comes in; now the warga leaves the invitation unanswered.
        warga.auto_join = False
        await present.send_text(second.room_id, "!terima")
        await warga.wait_for_text(
            "dalam 8 dtk; setelah itu ruangnya ditutup", room_id=dm
        )
        await warga.wait_for_text(f"#{code} kami tutup", room_id=dm, timeout=30)
        await present.wait_for_text(
            f"Warga belum masuk ke ruang curhat #{code}", room_id=second.room_id
        )
        await wait_members_gone(synapse, admin, room)

        # The warga may start again at once.
        warga.auto_join = True
        await warga.send_text(dm, "halo")
        await warga.wait_for_text("selamat datang", room_id=dm)
    finally:
        await world.close()

    store = await Store.open(world.stage.state_dir / "bot-data" / "sobat.db")
    try:
        async with store.tx() as tx:
            (case,) = [c for c in await tx.all_cases(0) if c.code == code]
            offers = await tx.offers_of_case(case.id)
            busy = await tx.busy_counts()
    finally:
        await store.close()

    assert (case.status, case.closed_by) == ("cancelled", "warga_absent")
    assert [(o.counsellor, o.status) for o in offers] == [
        (absent.user_id, "no_show"),
        (present.user_id, "accepted"),
    ]
    assert offers[0].revoked_at is not None
    # Nobody is counted busy for the curhat that closed.
    assert present.user_id not in busy and absent.user_id not in busy
