"""``!alihkan batal``: a hand-over is called off only while nobody has accepted it.

The whole hand-over, with a counsellor away and the call-off, runs against the real
Synapse in test_routing_live.py; here are the answers that need no server.
"""

from __future__ import annotations

from sobat_matrix import duty
from sobat_matrix.commands import Command
from sobat_matrix.runtime import Runtime

from .test_join_timeout import ROOM, A, B, accepted_case, rt

__all__ = ["rt"]  # the fixture, shared with test_join_timeout


async def call_off(rt: Runtime, case_id: int) -> tuple[list[str], list[str]]:
    """``!alihkan batal`` in the curhat room: (offer states, what was said)."""
    async with rt.store.tx() as tx:
        case = await tx.case(case_id)
        assert case is not None
        await duty.hand_over(rt, tx, ROOM, case, Command("alihkan", " Batal "))
    async with rt.store.tx() as tx:
        offers = [o.status for o in await tx.offers_of_case(case_id)]
        said = [item.content["body"] for item in await tx.outbox()]
    return offers, said


async def test_calling_off_a_hand_over_nobody_accepted(rt: Runtime) -> None:
    case = await accepted_case(rt, A, ago_s=0)
    async with rt.store.tx() as tx:
        await tx.update_case(case.id, status="active", handover_from=A)
        await tx.add_offer(case.id, B, 0, 300)
        await tx.set_meta(duty.handover_told_key(case.id), "1")

    offers, said = await call_off(rt, case.id)

    async with rt.store.tx() as tx:
        after = await tx.case(case.id)
        told = await tx.get_meta(duty.handover_told_key(case.id))
    assert after is not None
    assert (after.status, after.counsellor, after.handover_from) == ("active", A, None)
    assert offers == ["accepted", "withdrawn"] and told is None
    assert said == [
        "Tawaran #K1 dibatalkan: konselor yang mengalihkan tetap mendampingi warga.",
        "Pengalihan dibatalkan. Konselor Anda tetap mendampingi di ruang ini.",
        "Pengalihan curhat #K1 dibatalkan; curhat tetap bersama Anda.",
    ]


async def test_no_hand_over_to_call_off(rt: Runtime) -> None:
    case = await accepted_case(rt, A, ago_s=0)
    async with rt.store.tx() as tx:
        await tx.update_case(case.id, status="active")

    offers, said = await call_off(rt, case.id)

    assert (offers, said) == (["accepted"], ["Curhat #K1 sedang tidak dialihkan."])


async def test_too_late_once_the_new_counsellor_accepted(rt: Runtime) -> None:
    # A handed over to B, and B has accepted: B is on the curhat, A still in the room.
    case = await accepted_case(rt, B, ago_s=0)
    async with rt.store.tx() as tx:
        await tx.update_case(case.id, status="active", handover_from=A)

    offers, said = await call_off(rt, case.id)

    async with rt.store.tx() as tx:
        after = await tx.case(case.id)
    assert after is not None and (after.counsellor, after.handover_from) == (B, A)
    assert offers == ["accepted"]
    assert said == [
        "Pengalihan curhat #K1 sudah diterima konselor lain yang sedang masuk; "
        "pengalihan tidak bisa dibatalkan lagi."
    ]
