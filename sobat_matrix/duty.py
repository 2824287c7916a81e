"""A counsellor's commands: answers to offers, ready or away, status, hand-overs.

Each function runs inside the handler's transaction and answers with notices through
the outbox; none does Matrix I/O itself. A counsellor sees codes, categories and
states of their own curhats only, never who a warga is.
"""

from __future__ import annotations

import logging
import time

from .commands import Command
from .intake import normalise
from .runtime import Runtime
from .store import Case, Offer, Tx, duty_purpose

logger = logging.getLogger(__name__)

# ``!alihkan batal`` calls a hand-over off (checked before category names).
CANCEL_WORD = "batal"


async def answer_offer(
    rt: Runtime, tx: Tx, room_id: str, offer: Offer, accept: bool
) -> None:
    """Record a counsellor's yes or no to an offer; a yes takes the curhat."""
    case = await tx.case(offer.case_id)
    assert case is not None
    if not accept:
        await tx.answer_offer(offer.id, "declined")
        await rt.say(tx, room_id, rt.text("offer.declined", code=case.code))
        logger.info("offer %d declined", offer.id)
        rt.wake_reconciler.set()
        return

    await tx.answer_offer(offer.id, "accepted")
    if case.status == "active" and case.handover_from:
        # A hand-over: the new counsellor is brought in; the old one leaves later.
        await tx.update_case(
            case.id,
            counsellor=offer.counsellor,
            counsellor_brought=0,
            counsellor_joined_at=None,
        )
    else:
        await tx.update_case(
            case.id,
            status="accepted",
            counsellor=offer.counsellor,
            accepted_at=time.time(),
        )
    await rt.say(tx, room_id, rt.text("offer.accepted", code=case.code))

    # Urgent curhats go to several counsellors at once: the others are told.
    for other in await tx.offers_of_case(case.id):
        if other.status == "pending":
            await tx.answer_offer(other.id, "withdrawn")
            await tell_duty(rt, tx, other.counsellor, "offer.taken", code=case.code)
    logger.info("offer %d accepted", offer.id)
    rt.wake_reconciler.set()


async def withdraw_offers(rt: Runtime, tx: Tx, case: Case, key: str) -> None:
    """Withdraw every pending offer of ``case`` and tell each counsellor why."""
    for offer in await tx.offers_of_case(case.id):
        if offer.status == "pending":
            await tx.answer_offer(offer.id, "withdrawn")
            await tell_duty(rt, tx, offer.counsellor, key, code=case.code)


async def tell_duty(
    rt: Runtime, tx: Tx, counsellor: str, key: str, **params: str
) -> None:
    duty = await tx.owned_room(duty_purpose(counsellor))
    if duty and duty.room_id:
        await rt.say(tx, duty.room_id, rt.text(key, **params))


async def pending_offer_for(tx: Tx, counsellor: str, code: str) -> Offer | None:
    """The counsellor's pending offer with ``code``, or their latest one."""
    mine = [o for o in await tx.pending_offers() if o.counsellor == counsellor]
    if code:
        case = await tx.case_by_code(code.lstrip("#").upper())
        mine = [o for o in mine if case is not None and o.case_id == case.id]
    return mine[-1] if mine else None


async def set_ready(
    rt: Runtime, tx: Tx, room_id: str, counsellor: str, ready: bool
) -> None:
    """``!siap`` / ``!istirahat``: override the schedule until said otherwise.

    Going away hands back the offers still waiting for an answer, so a warga does
    not wait for an offer's timeout; the counsellor may be offered them again later.
    """
    await tx.set_availability(counsellor, ready)
    if ready:
        await rt.say(tx, room_id, rt.text("duty.ready"))
    else:
        handed_back = 0
        for offer in await tx.pending_offers():
            if offer.counsellor == counsellor:
                await tx.answer_offer(offer.id, "withdrawn")
                handed_back += 1
        await rt.say(tx, room_id, rt.text("duty.away", offers=handed_back))
    logger.info("a counsellor is now %s", "ready" if ready else "away")
    rt.wake_reconciler.set()


async def status(rt: Runtime, tx: Tx, room_id: str, counsellor: str) -> None:
    """``!status``: this counsellor's open curhats, offers and availability."""
    override = (await tx.availability()).get(counsellor)
    if override is None:
        state = rt.text("duty.state_schedule")
    else:
        state = rt.text("duty.state_ready" if override else "duty.state_away")

    curhats = [
        f"#{c.code} ({rt.text('duty.case_' + c.status)})"
        for c in await tx.open_cases()
        if c.counsellor == counsellor or c.handover_from == counsellor
    ]
    offers = []
    for offer in await tx.pending_offers():
        case = await tx.case(offer.case_id)
        if offer.counsellor == counsellor and case is not None:
            offers.append(f"#{case.code}")
    none = rt.text("duty.none")
    await rt.say(
        tx,
        room_id,
        rt.text(
            "duty.status",
            state=state,
            curhats=", ".join(curhats) or none,
            offers=", ".join(offers) or none,
        ),
    )


async def help_text(rt: Runtime, tx: Tx, counsellor: str) -> str:
    """The commands, and the offers waiting for this counsellor's answer.

    Listing them again helps a counsellor on a new device, which cannot decrypt
    offers sent before it existed.
    """
    codes = []
    for offer in await tx.pending_offers():
        case = await tx.case(offer.case_id)
        if offer.counsellor == counsellor and case is not None:
            codes.append(f"#{case.code}")
    text = rt.text("duty.help")
    if codes:
        text += "\n" + rt.text("duty.waiting", codes=", ".join(codes))
    return text


def handover_target(rt: Runtime, arg: str) -> tuple[str | None, str | None] | None:
    """What ``!alihkan <arg>`` names: (category, counsellor type), or None.

    A category is named by its key or label, a counsellor type likewise; a type
    keeps the curhat's own category and asks for that type within it.
    """
    said = normalise(arg).replace("_", " ")
    if not said:
        return None
    policy = rt.policy
    for category in policy.categories:
        names = {category.key.replace("_", " "), *map(str, category.labels.values())}
        if category.referral is None and said in {normalise(n) for n in names}:
            return category.key, None
    for type_key, labels in policy.counsellor_types.items():
        names = {type_key.replace("_", " "), *map(str, labels.values())}
        if said in {normalise(n) for n in names}:
            return None, type_key
    return None


async def cancel_hand_over(rt: Runtime, tx: Tx, room_id: str, case: Case) -> None:
    """``!alihkan batal``: the counsellor keeps the curhat after all."""
    counsellor = case.counsellor or ""
    if case.handover_from is None:
        await tell_duty(rt, tx, counsellor, "duty.handover_none", code=case.code)
        return
    if case.counsellor != case.handover_from:
        # Someone accepted and is being brought in: the warga was told already.
        await tell_duty(rt, tx, counsellor, "duty.handover_too_late", code=case.code)
        return

    await withdraw_offers(rt, tx, case, "offer.handover_cancelled")
    await tx.update_case(
        case.id,
        handover_from=None,
        handover_category=None,
        handover_type=None,
        handover_at=None,
    )
    await tx.delete_meta(handover_told_key(case.id))
    await rt.say(tx, room_id, rt.text("case.handover_cancelled"))
    await tell_duty(rt, tx, counsellor, "duty.handover_cancelled", code=case.code)
    logger.info("case %s: hand-over called off", case.code)


def handover_told_key(case_id: int) -> str:
    """Meta key: the counsellor handing over was told nobody can take it yet."""
    return f"handover_told:{case_id}"


async def hand_over(
    rt: Runtime, tx: Tx, room_id: str, case: Case, command: Command
) -> None:
    """``!alihkan``: start handing an active curhat to another counsellor.

    The new counsellor gets an offer; the one handing over stays until the new one
    is in the room, so the warga is never left alone. ``!alihkan batal`` calls a
    hand-over off while nobody has accepted it yet.
    """
    counsellor = case.counsellor or ""
    if normalise(command.arg) == CANCEL_WORD:
        await cancel_hand_over(rt, tx, room_id, case)
        return
    if case.status != "active" or case.handover_from:
        await tell_duty(rt, tx, counsellor, "duty.handover_not_now", code=case.code)
        return
    target = handover_target(rt, command.arg)
    if target is None:
        options = [
            rt.label(c.labels) for c in rt.policy.categories if c.referral is None
        ] + [rt.label(labels) for labels in rt.policy.counsellor_types.values()]
        await tell_duty(
            rt,
            tx,
            counsellor,
            "duty.handover_unknown",
            code=case.code,
            options=", ".join(options),
        )
        return

    category, type_key = target
    await tx.update_case(
        case.id,
        handover_from=counsellor,
        handover_category=category or case.category,
        handover_type=type_key,
        # The new search keeps the warga's preference and has its own fallback
        # clock, and the warga is told again if it is let go of this time.
        handover_at=time.time(),
        pref_relaxed_at=None,
    )
    await rt.say(tx, room_id, rt.text("case.handover_started"))
    await tell_duty(rt, tx, counsellor, "duty.handover_pending", code=case.code)
    logger.info("case %s: hand-over asked", case.code)
    rt.wake_reconciler.set()
