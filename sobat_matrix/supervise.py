"""Supervisors' commands: the queue, the counsellors on duty, moving a waiting case.

Supervisors see counts, waits, case codes and counsellors (who are staff), never a
warga's identity or words. Each function runs inside the handler's transaction and
answers through the outbox.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from datetime import UTC, datetime

from . import duty
from .commands import Command
from .curhat import tell_relaxed, waited
from .intake import normalise
from .routing import Preference, fallback_due, matching_ids, service_open
from .runtime import Runtime
from .store import Case, Tx, duty_purpose

logger = logging.getLogger(__name__)


async def queue(rt: Runtime, tx: Tx, room_id: str) -> None:
    """``!antrean``: how many wait, the longest wait, and how many per category."""
    waiting = [c for c in await tx.open_cases() if c.status == "waiting"]
    if not waiting:
        await rt.say(tx, room_id, rt.text("supervise.queue_empty"))
        return

    now = time.time()
    longest = max(now - c.requested_at for c in waiting)
    per_category = Counter(c.category for c in waiting)
    lines = []
    for category in rt.policy.categories:
        if per_category[category.key]:
            lines.append(f"• {rt.label(category.labels)}: {per_category[category.key]}")
    gone = sum(n for key, n in per_category.items() if rt.policy.category(key) is None)
    if gone:
        lines.append(f"• {rt.text('supervise.no_category')}: {gone}")
    await rt.say(
        tx,
        room_id,
        rt.text(
            "supervise.queue",
            count=len(waiting),
            urgent=sum(c.urgent for c in waiting),
            longest=waited(longest),
            categories="\n".join(lines),
        ),
    )


async def counsellors(rt: Runtime, tx: Tx, room_id: str) -> None:
    """``!konselor``: who is on duty now and how loaded each one is."""
    now = datetime.now(UTC)
    busy = await tx.busy_counts()
    overrides = await tx.availability()
    offers = Counter(o.counsellor for o in await tx.pending_offers())
    holiday = rt.policy.is_holiday(now)
    lines = []
    for c in rt.policy.counsellors:
        override = overrides.get(c.user_id)
        if override is not None:
            state = rt.text("supervise.ready" if override else "supervise.away")
        elif c.on_duty(now) and not holiday:
            state = rt.text("supervise.on_schedule")
        else:
            state = rt.text("supervise.off_schedule")
        lines.append(
            rt.text(
                "supervise.counsellor_line",
                name=c.name,
                user=c.user_id,
                state=state,
                open=busy.get(c.user_id, 0),
                max=c.max_open,
                offers=offers[c.user_id],
            )
        )
    header = rt.text(
        "supervise.service_open"
        if service_open(rt.policy, now)
        else "supervise.service_closed"
    )
    await rt.say(tx, room_id, header + "\n" + "\n".join(lines))


async def move(rt: Runtime, tx: Tx, room_id: str, command: Command) -> None:
    """``!pindah <code> <category or @counsellor>``: re-route a waiting curhat.

    To a category: its pending offer is withdrawn and routing starts again on the
    new category's route, with the warga's gender and religion preference (the
    type answered the old category's question and is dropped). If nobody there
    matches it, the policy's ``preference_fallback`` decides: with ``never`` the
    move is refused (the curhat could only be given up), with a duration it is
    made and the supervisor told when anyone may take it. To a counsellor: they
    get an offer at once, whatever the route says, if they have a duty room, are
    not away and are under ``max_open`` (a supervisor does not overload anyone;
    they are told who is full instead). A counsellor who does not match the
    warga's preference is refused until the fallback is due, as routing would;
    then the warga is told once, as when routing lets go of it.
    """
    parts = command.arg.split()
    if len(parts) != 2:
        await rt.say(tx, room_id, rt.text("supervise.move_usage"))
        return
    code, target = parts[0].lstrip("#").upper(), parts[1]
    case = await tx.case_by_code(code)
    if case is None or case.status != "waiting":
        await rt.say(tx, room_id, rt.text("supervise.move_not_waiting", code=code))
        return

    if target.startswith("@"):
        await _move_to_counsellor(rt, tx, room_id, case.id, target)
        return
    said = normalise(target).replace("_", " ")
    for category in rt.policy.categories:
        names = {category.key.replace("_", " "), *map(str, category.labels.values())}
        if category.referral is None and said in {normalise(n) for n in names}:
            to = rt.label(category.labels)
            kept = Preference(gender=case.pref_gender, religion=case.pref_religion)
            unmatched = kept != Preference() and not matching_ids(
                rt.policy, category, kept
            )
            fallback_s = rt.policy.preference_fallback_s(category)
            if unmatched and math.isinf(fallback_s):
                await _refuse_unmatched(rt, tx, room_id, case, to, fallback_s)
                return
            await duty.withdraw_offers(rt, tx, case, "offer.moved")
            await tx.update_case(
                case.id,
                category=category.key,
                pref_type=None,
                told_no_counsellor=0,
            )
            text = rt.text("supervise.moved", code=case.code, to=to)
            if unmatched:
                text += "\n" + rt.text(
                    "supervise.moved_unmatched", fallback=waited(fallback_s)
                )
            await rt.say(tx, room_id, text)
            logger.info("case %s moved to category %s", case.code, category.key)
            rt.wake_reconciler.set()
            return
    await rt.say(tx, room_id, rt.text("supervise.move_unknown", target=target))


async def _move_to_counsellor(
    rt: Runtime, tx: Tx, room_id: str, case_id: int, user_id: str
) -> None:
    counsellor = rt.policy.counsellor(user_id)
    duty_room = await tx.owned_room(duty_purpose(user_id))
    away = (await tx.availability()).get(user_id) is False
    if counsellor is None or duty_room is None or not duty_room.room_id or away:
        await rt.say(tx, room_id, rt.text("supervise.move_unknown", target=user_id))
        return
    case = await tx.case(case_id)
    assert case is not None
    open_curhats = (await tx.busy_counts()).get(user_id, 0)
    if open_curhats >= counsellor.max_open:
        text = rt.text(
            "supervise.move_full",
            code=case.code,
            name=counsellor.name,
            open=open_curhats,
            max=counsellor.max_open,
        )
        await rt.say(tx, room_id, text)
        return
    category = rt.policy.category(case.category)
    pref = Preference(case.pref_type, case.pref_gender, case.pref_religion)
    waited_s = time.time() - case.requested_at
    relaxed = not pref.accepts(counsellor)
    if relaxed and (
        category is None or not fallback_due(rt.policy, category, waited_s)
    ):
        fallback_s = (
            math.inf if category is None else rt.policy.preference_fallback_s(category)
        )
        await _refuse_unmatched(rt, tx, room_id, case, counsellor.name, fallback_s)
        return

    await duty.withdraw_offers(rt, tx, case, "offer.moved")
    timeout_s = category.route[0].timeout_s if category and category.route else 600.0
    offer = await tx.add_offer(case.id, user_id, 0, timeout_s)
    await tx.update_case(case.id, told_no_counsellor=0)
    text = rt.text("offer.moved_to_you", code=case.code, timeout=waited(timeout_s))
    if relaxed:
        text = rt.text("offer.relaxed_prefix") + "\n" + text
        await tell_relaxed(rt, tx, case, False, waited_s)
    await rt.say(tx, duty_room.room_id, text, ref=f"offer:{offer.id}")
    await rt.say(
        tx, room_id, rt.text("supervise.moved", code=case.code, to=counsellor.name)
    )
    logger.info("case %s offered to %s by a supervisor", case.code, user_id)
    rt.wake_reconciler.set()


async def _refuse_unmatched(
    rt: Runtime, tx: Tx, room_id: str, case: Case, to: str, fallback_s: float
) -> None:
    """Say why a move that would break the warga's preference is not made."""
    if math.isinf(fallback_s):
        until = rt.text("supervise.pref_kept_never")
    else:
        until = rt.text(
            "supervise.pref_kept_until",
            fallback=waited(fallback_s),
            waited=waited(time.time() - case.requested_at),
        )
    await rt.say(
        tx,
        room_id,
        rt.text("supervise.move_pref_kept", code=case.code, to=to, until=until),
    )


async def reload(rt: Runtime, tx: Tx, room_id: str) -> None:
    """``!muat-ulang``: load the policy file again; a broken file changes nothing."""
    assert rt.reload_policy is not None
    await rt.say(tx, room_id, await rt.reload_policy())
