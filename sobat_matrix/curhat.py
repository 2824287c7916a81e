"""Moves every curhat forward from what the store says, after events and after restarts.

Event handlers only record what happened. This reconciler then does the slow work
(creating rooms, bringing people in, closing rooms) from the recorded state, each step
idempotent and recorded once done, so a crash at any point is finished by the next
pass after the restart, and never done twice: a room is found again by its creation
token before another is created.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import quote

from . import rooms
from .crashpoints import crash_point
from .duty import handover_told_key, tell_duty
from .intake import language_label
from .matrix import MatrixError
from .policy import QueueRules
from .routing import (
    Choice,
    Load,
    Preference,
    choose,
    choose_on_call,
    matching_ids,
)
from .runtime import Runtime
from .store import (
    SUPERVISORS_PURPOSE,
    Case,
    Offer,
    Tx,
    case_purpose,
    duty_purpose,
)
from .tasks import TaskSet

logger = logging.getLogger(__name__)

TICK_S = 1.0
# After a failed step a case waits this long (doubling, capped) before the next try.
RETRY_BASE_S = 2.0
RETRY_MAX_S = 120.0
# How long a request to create a room may still be running on the homeserver after
# the bot lost its answer (a crash, a cut connection). Synapse creates a room in
# well under a second here; thirty seconds leaves room for a loaded server. A
# request slower than that can still end in a second room.
CREATE_GRACE_S = 30.0
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
# Offers that mean "not this counsellor again for this curhat".
DECLINED = ("declined", "unusable", "no_show")
# Why a counsellor of the policy cannot be brought in; each has a staff.unusable_* text.
NOT_FOUND, DEACTIVATED, REMOTE, THE_BOT = "not_found", "deactivated", "remote", "bot"
# Told to the supervisors once per counsellor and reason, across restarts.
UNUSABLE_TOLD_KEY = "unusable_told:"


def new_code() -> str:
    """A short case code without look-alike characters (0/O, 1/I)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(4))


def new_token() -> str:
    return secrets.token_urlsafe(16)


def waited(seconds: float) -> str:
    seconds = max(0.0, seconds)
    minutes = int(seconds // 60)
    return f"{minutes} mnt" if minutes else f"{int(seconds)} dtk"


def server_of(user_id: str) -> str:
    """The server part of a Matrix user ID."""
    return user_id.partition(":")[2]


@dataclass(frozen=True)
class Rounds:
    """Where the offers of one curhat stand, read from its offers in order.

    A round offers the curhat to each counsellor at most once; the first offer to
    someone already asked in the current round starts the next one. So the count
    needs nothing stored besides the offers themselves.
    """

    number: int = 1
    asked: frozenset[str] = frozenset()
    """Asked in this round, whatever they answered."""
    declined: frozenset[str] = frozenset()
    """Said no (or could not be reached) in any round: never asked again."""
    timed_out: frozenset[str] = frozenset()
    """Let an offer lapse in any round: may be asked again in a later round."""
    pending: bool = False
    ended_at: float | None = None
    """When the last answered offer of this round was answered (or lapsed)."""

    @classmethod
    def of(cls, offers: Sequence[Offer]) -> Rounds:
        number = 1
        asked: set[str] = set()
        declined: set[str] = set()
        timed_out: set[str] = set()
        pending = False
        ended_at: float | None = None
        for offer in offers:
            if offer.counsellor in asked:
                number += 1
                asked = set()
                ended_at = None
            asked.add(offer.counsellor)
            if offer.status in DECLINED:
                declined.add(offer.counsellor)
            elif offer.status == "timed_out":
                timed_out.add(offer.counsellor)
            elif offer.status == "pending":
                pending = True
            if offer.answered_at is not None:
                ended_at = max(ended_at or 0.0, offer.answered_at)
        return cls(
            number,
            frozenset(asked),
            frozenset(declined),
            frozenset(timed_out),
            pending,
            ended_at,
        )


@dataclass(frozen=True)
class NextStep:
    """What to do with a waiting curhat: offer it, wait, or give up honestly."""

    choice: Choice | None = None
    unserved: bool = False


WAIT = NextStep()


def next_step(
    rounds: Rounds,
    *,
    reachable: Set[str],
    unmatchable: bool = False,
    never: Set[str],
    within: Choice | None,
    again: Choice | None,
    now: float,
    rules: QueueRules,
) -> NextStep:
    """Decide the next step of a waiting curhat; pure, for the tests.

    ``reachable`` are the counsellors its route reaches who match the warga's
    preference; ``never`` those it must not go to again (declined, or not usable
    at all). ``within`` is routing's choice among those not yet asked in this
    round, ``again`` its choice if a new round started now. The curhat is given up
    when everybody reachable is in ``never``, or when the last round ended with no
    answer, that is when everybody reachable was asked in it; between rounds it
    waits ``rules.round_pause_s``. Counsellors who are only busy do not end a
    round: the curhat waits in the queue for them.
    ``unmatchable`` means the warga's preference matches nobody the route reaches
    and the policy will never let go of it: the curhat is given up at once.
    """
    if unmatchable:
        return NextStep(unserved=True)
    if reachable and reachable <= never:
        return NextStep(unserved=True)
    if rounds.pending:
        return WAIT
    if within is not None:
        return NextStep(within)
    if not rounds.asked:
        return WAIT
    if rounds.number >= rules.max_rounds:
        if reachable - never - rounds.asked:
            # Someone it may go to was not asked in this round yet (busy, away,
            # or waiting for the preference fallback): the round is not over.
            return WAIT
        return NextStep(unserved=True)
    if again is None:
        return WAIT
    if rounds.ended_at is not None and now - rounds.ended_at < rules.round_pause_s:
        return WAIT
    return NextStep(again)


class RoomMayBeComing(Exception):
    """An earlier request for this room may still be running on the homeserver."""

    def __init__(self, purpose: str, wait_s: float) -> None:
        super().__init__(f"{purpose.split(':')[0]} room may still be coming")
        self.wait_s = wait_s


def preference_words(rt: Runtime, case: Case, *, with_type: bool = True) -> str:
    """The warga's preference in words, or ``""`` without one."""
    prefs = []
    type_labels = rt.policy.counsellor_types.get(case.pref_type or "")
    if with_type and type_labels is not None:
        prefs.append(rt.label(type_labels))
    if case.pref_gender:
        prefs.append(rt.text(f"intake.gender_{case.pref_gender.replace('-', '_')}"))
    if case.pref_religion:
        prefs.append(case.pref_religion)
    return ", ".join(prefs)


async def tell_relaxed(
    rt: Runtime, tx: Tx, case: Case, handover: bool, waited_s: float
) -> None:
    """Tell the warga, once, that their preference was let go of, and why.

    Recorded on the case in the same transaction as the offer, so a restart
    neither repeats it nor loses it. In a hand-over the warga is in the curhat
    room with their counsellor, so it is said there; otherwise in the direct
    chat, where ``!batal`` still cancels.
    """
    # TODO(routing): the warga is told as the first relaxed offer goes out, not
    # asked before it: a counsellor may accept before they read it. They can still
    # !batal while it waits, or leave the room; asking first needs an intake step.
    if case.pref_relaxed_at is not None:
        return
    await tx.update_case(case.id, pref_relaxed_at=time.time())
    logger.info("case %s: preference relaxed after the fallback", case.code)
    if handover:
        room = await tx.owned_room(case.purpose)
        if room is None or not room.room_id:
            return
        text = rt.text(
            "case.handover_preference_relaxed",
            preference=preference_words(rt, case, with_type=False),
            waited=waited(waited_s),
        )
        await rt.say(tx, room.room_id, text)
        return
    if case.dm_room:
        text = rt.text(
            "queue.preference_relaxed",
            code=case.code,
            preference=preference_words(rt, case),
            waited=waited(waited_s),
        )
        await rt.say(tx, case.dm_room, text)


def _holds_offer(loads: dict[str, Load], user_id: str) -> None:
    """Mark in ``loads`` that ``user_id`` now holds an offer, for the rest of a pass."""
    load = loads.get(user_id, Load())
    loads[user_id] = Load(load.open_curhats, pending_offer=True)


class Reconciler:
    """One pass at a time; each room or case handled in its own task."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.tasks = TaskSet()
        self._inflight: set[str] = set()
        self._retry_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        # Counsellors of the policy checked on the homeserver since the start: the
        # usable ones, and why the others cannot be brought in.
        self._usable: set[str] = set()
        self.unusable: dict[str, str] = {}
        self._to_tell: set[str] = set()

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(TICK_S):
                    await self.rt.wake_reconciler.wait()
            except TimeoutError:
                pass
            self.rt.wake_reconciler.clear()

            try:
                await self.one_pass()
            except Exception as exc:  # noqa: BLE001 - the loop must survive
                logger.error(
                    "reconciler pass failed: %s", type(exc).__name__, exc_info=exc
                )

    async def stop(self) -> None:
        await self.tasks.cancel_all()

    async def one_pass(self) -> None:
        # Looked up again below, and left out of routing until then.
        self._usable -= self.rt.recheck
        self.rt.recheck.clear()
        await self._register_staff_rooms()
        async with self.rt.store.tx() as tx:
            await self._expire_offers(tx)
            await self._expire_joins(tx)
            await self._tell_unusable(tx)
            await self._dispatch(tx)
            await self._tell_places(tx)
            wanted = await tx.rooms_wanted()
            cases = await tx.open_cases()

        for counsellor in self.rt.policy.counsellors:
            user_id = counsellor.user_id
            if user_id not in self._usable and user_id not in self.unusable:
                self._start(f"check:{user_id}", self._check_counsellor(user_id))
        for room in wanted:
            if room.purpose.removeprefix("duty:") in self.unusable:
                continue
            if not room.purpose.startswith("case:"):
                self._start(room.purpose, self._ensure_staff_room(room.purpose))
        # Curhat rooms are created one at a time, in queue order: under the
        # homeserver's room-creation limit each would otherwise retry on its own
        # clock, and a later request could get its room first.
        creating = False
        for case in cases:
            if case.room_ready_at is None and case.status != "closing":
                if creating:
                    continue
                creating = True
            self._start(case.purpose, self._advance(case.id))

    def _start(self, key: str, coro: Any) -> None:
        now = time.monotonic()
        if key in self._inflight or self._retry_at.get(key, 0) > now:
            coro.close()
            return
        self._inflight.add(key)
        self.tasks.spawn(f"reconcile {key}", self._guarded(key, coro))

    async def _guarded(self, key: str, coro: Any) -> None:
        try:
            await coro
            self._failures.pop(key, None)
            self._retry_at.pop(key, None)
        except RoomMayBeComing as exc:
            self._retry_at[key] = time.monotonic() + exc.wait_s
            logger.info("%s; looking again in %.0f s", exc, exc.wait_s)
        except Exception as exc:  # noqa: BLE001 - retried with backoff
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = min(RETRY_BASE_S * 2 ** (failures - 1), RETRY_MAX_S)
            self._retry_at[key] = time.monotonic() + delay
            logger.warning(
                "step for %s failed (%s), retry in %.0f s",
                key,
                exc if isinstance(exc, MatrixError) else type(exc).__name__,
                delay,
            )
        finally:
            self._inflight.discard(key)

    # -- rooms the bot owns ------------------------------------------------------------

    def _staff_purposes(self) -> list[str]:
        purposes = [duty_purpose(c.user_id) for c in self.rt.policy.counsellors]
        if self.rt.config.supervisors:
            purposes.append(SUPERVISORS_PURPOSE)
        return purposes

    def _staff_members(self, purpose: str) -> list[str]:
        if purpose == SUPERVISORS_PURPOSE:
            return list(self.rt.config.supervisors)
        return [purpose.removeprefix("duty:")]

    async def _register_staff_rooms(self) -> None:
        async with self.rt.store.tx() as tx:
            for purpose in self._staff_purposes():
                await tx.want_room(purpose, new_token())

    async def ensure_staff_members(self) -> None:
        """Every listed person is in their staff room, and nobody else is.

        Run after a start: it brings in a supervisor added to the config, removes
        one taken off it, and finishes a room whose members were never brought in
        because the bot stopped right after creating it.
        """
        rt = self.rt
        async with rt.store.tx() as tx:
            rooms_by_purpose = {
                p: await tx.owned_room(p) for p in self._staff_purposes()
            }

        for purpose, room in rooms_by_purpose.items():
            if room is None or room.room_id is None:
                continue
            local = rt.matrix.client.rooms.get(room.room_id)
            if local is None:
                continue
            wanted = set(self._staff_members(purpose)) - set(self.unusable)
            present = set(local.users)
            for user_id in sorted(wanted - present):
                try:
                    await self._bring_user(room.room_id, user_id)
                except MatrixError as exc:
                    # One person who cannot be brought in must not stop the others.
                    logger.warning(
                        "could not bring %s into %s: %s",
                        user_id,
                        purpose.split(":")[0],
                        exc,
                    )
            for user_id in sorted(present - wanted - {rt.bot}):
                await rt.matrix.kick(
                    room.room_id, user_id, rt.text("staff.removed_reason")
                )
                logger.info("removed a former member from %s", purpose.split(":")[0])

    async def _bring_user(self, room_id: str, user_id: str) -> None:
        if self.rt.admin_join:
            await self.rt.matrix.admin_join(room_id, user_id)
        else:
            await self.rt.matrix.invite(room_id, user_id)

    async def ensure_room(
        self, purpose: str, body: Callable[[str], dict[str, Any]]
    ) -> str:
        """The room for ``purpose``: found again by its token, or created once."""
        async with self.rt.store.tx() as tx:
            room = await tx.want_room(purpose, new_token())
        if room.room_id:
            return room.room_id

        room_id = None
        if room.attempts:
            room_id = await self.rt.matrix.find_room_by_token(
                rooms.TOKEN_KEY, room.token
            )
        if room_id is None and room.attempted_at is not None:
            # The bot may have died while the homeserver was still creating the
            # room (Synapse finishes a request whose client went away): asking
            # again at once could make a second room. Look again until the
            # earlier request must have ended one way or the other.
            since = time.time() - room.attempted_at
            if 0 <= since < CREATE_GRACE_S:
                raise RoomMayBeComing(purpose, CREATE_GRACE_S - since)
        if room_id is None:
            async with self.rt.store.tx() as tx:
                await tx.note_room_attempt(purpose)
            curhat = purpose.startswith("case:")
            if curhat:
                crash_point("room_create")
            try:
                room_id = await self.rt.matrix.create_room(body(room.token))
            except MatrixError as exc:
                if exc.status is not None and 400 <= exc.status < 500:
                    # Refused outright (429 included): no room is on its way.
                    async with self.rt.store.tx() as tx:
                        await tx.room_attempt_refused(purpose)
                raise
            if curhat:
                crash_point("room_created")

        async with self.rt.store.tx() as tx:
            await tx.set_room_id(purpose, room_id)
        logger.info("room %s ready for %s", room_id, purpose.split(":")[0])
        return room_id

    async def _ensure_staff_room(self, purpose: str) -> None:
        rt = self.rt
        members = self._staff_members(purpose)
        if purpose == SUPERVISORS_PURPOSE:
            name = rt.text("staff.supervisors_room_name")
        else:
            name = rt.text("staff.duty_room_name")

        def body(token: str) -> dict[str, Any]:
            return rooms.staff_room(
                name=name,
                token=token,
                bot_user_id=rt.bot,
                room_version=rt.room_version,
                members=members,
                invite=not rt.admin_join,
            )

        if purpose != SUPERVISORS_PURPOSE:
            # Inviting a user who does not exist succeeds on Synapse: look first.
            counsellor = members[0]
            if not await self._check_counsellor(counsellor):
                return

        room_id = await self.ensure_room(purpose, body)
        if rt.admin_join:
            for member in members:
                try:
                    await rt.matrix.admin_join(room_id, member)
                except MatrixError as exc:
                    if purpose == SUPERVISORS_PURPOSE or exc.status not in (
                        400,
                        403,
                        404,
                    ):
                        raise
                    reason = await self._why_unusable(member)
                    if reason is None:
                        raise
                    await self._mark_unusable(member, reason)
                    return
        async with rt.store.tx() as tx:
            if purpose == SUPERVISORS_PURPOSE:
                await rt.say(tx, room_id, rt.text("staff.supervisors_welcome"))
            else:
                await rt.say(tx, room_id, rt.text("staff.duty_welcome"))

    # -- counsellors who cannot be brought in --------------------------------------

    async def _check_counsellor(self, user_id: str) -> bool:
        """Whether the counsellor can be brought in.

        Checked once per start, and again after one of their offers timed out or
        they left their duty room (both what a deactivated account looks like).
        """
        if user_id in self._usable:
            return True
        if user_id in self.unusable:
            return False
        reason = await self._why_unusable(user_id)
        if reason is None:
            self._usable.add(user_id)
            self.rt.wake_reconciler.set()
            return True
        await self._mark_unusable(user_id, reason)
        return False

    async def _why_unusable(self, user_id: str) -> str | None:
        """Why ``user_id`` cannot be brought into a room, or None if it can.

        Synapse accepts an invite of a local user who does not exist or is
        deactivated, and the admin API joins a deactivated user, so the answer to
        bringing someone in proves nothing: the account is looked up instead,
        through the admin API when the bot is a server admin, else through the
        profile (which cannot tell a deactivated account from a live one).
        """
        rt = self.rt
        if user_id == rt.bot:
            return THE_BOT
        if server_of(user_id) != server_of(rt.bot):
            return REMOTE
        user = quote(user_id, safe="")
        if rt.admin_join:
            try:
                data = await rt.matrix.request(
                    "GET", f"/_synapse/admin/v2/users/{user}", what="user lookup"
                )
            except MatrixError as exc:
                if exc.status == 404:
                    return NOT_FOUND
                if exc.status != 403:
                    raise
            else:
                return DEACTIVATED if data.get("deactivated") else None
        try:
            await rt.matrix.request(
                "GET", f"/_matrix/client/v3/profile/{user}", what="profile lookup"
            )
        except MatrixError as exc:
            if exc.status == 404:
                return NOT_FOUND
            if exc.status is None or exc.status >= 500:
                raise
            # TODO(routing): a server that hides profiles (403) leaves us unable
            # to tell; such a counsellor is treated as usable.
        return None

    async def _mark_unusable(self, user_id: str, reason: str) -> None:
        """Never offer anything to ``user_id`` again; move their offers on now."""
        if self.unusable.get(user_id) == reason:
            return
        self.unusable[user_id] = reason
        self._usable.discard(user_id)
        logger.warning("counsellor %s cannot be brought in (%s)", user_id, reason)
        async with self.rt.store.tx() as tx:
            for offer in await tx.pending_offers():
                if offer.counsellor == user_id:
                    await tx.answer_offer(offer.id, "unusable")
                    logger.info("offer %d moved on: counsellor unusable", offer.id)
        self._to_tell.add(user_id)
        self.rt.wake_reconciler.set()

    async def _tell_unusable(self, tx: Tx) -> None:
        """Tell the supervisors once per counsellor and reason, when there is a room."""
        rt = self.rt
        if not self._to_tell:
            return
        room = await tx.owned_room(SUPERVISORS_PURPOSE)
        local = (
            rt.matrix.client.rooms.get(room.room_id) if room and room.room_id else None
        )
        if local is None or not local.encrypted:
            # Not synced as encrypted yet: the outbox would refuse the notice.
            return
        if not set(rt.config.supervisors) <= self._joined_members(room.room_id):
            # Sent before they are in, it is hidden from them ("joined" history).
            # Invited is not in: the admin join API invites before it joins.
            return
        for user_id in sorted(self._to_tell):
            reason = self.unusable.get(user_id)
            key = UNUSABLE_TOLD_KEY + user_id
            if reason is None or await tx.get_meta(key) == reason:
                self._to_tell.discard(user_id)
                continue
            text = rt.text(
                "staff.counsellor_unusable",
                counsellor=user_id,
                reason=rt.text(f"staff.unusable_{reason}"),
            )
            if await rt.tell_supervisors(tx, text):
                await tx.set_meta(key, reason)
                self._to_tell.discard(user_id)

    # -- offers -----------------------------------------------------------------------

    async def _expire_offers(self, tx: Tx) -> None:
        now = time.time()
        for offer in await tx.pending_offers():
            if offer.expires_at > now:
                continue
            await tx.answer_offer(offer.id, "timed_out")
            # An account deactivated or deleted since it was checked is only seen
            # by looking it up again; one unanswered offer is reason enough.
            self._usable.discard(offer.counsellor)
            case = await tx.case(offer.case_id)
            duty = await tx.owned_room(duty_purpose(offer.counsellor))
            logger.info("offer %d timed out", offer.id)
            if case and duty and duty.room_id:
                await self.rt.say(
                    tx, duty.room_id, self.rt.text("offer.expired", code=case.code)
                )

    async def _expire_joins(self, tx: Tx) -> None:
        """Free curhats held by someone who was brought in but never came.

        A counsellor who accepted and is not in the room the policy's join timeout
        later loses the curhat to the next counsellor (never to be asked again for
        it); a warga not in the room that long after the counsellor came in finds
        the curhat closed, so the counsellor is free again. Only invitations can
        go unanswered like this: a join through the admin API cannot.
        """
        rt = self.rt
        limit = rt.policy.queue.join_timeout_s
        now = time.time()
        for case in await tx.open_cases():
            if case.counsellor is None:
                continue
            room = await tx.owned_room(case.purpose)
            members = self._joined_members(room.room_id if room else None)
            handing_over = (
                case.status == "active"
                and case.handover_from is not None
                and case.counsellor != case.handover_from
            )

            if case.counsellor_joined_at is None and (
                case.status == "accepted" or handing_over
            ):
                if case.counsellor in members:
                    # In the room, though the join was not seen: nothing is late.
                    await tx.update_case(case.id, counsellor_joined_at=now)
                    continue
                accepted = [
                    o
                    for o in await tx.offers_of_case(case.id)
                    if o.counsellor == case.counsellor and o.status == "accepted"
                ]
                since = accepted[-1].answered_at if accepted else case.accepted_at
                if since is not None and now - since > limit:
                    await self._counsellor_absent(tx, case, accepted, handing_over)

            elif (
                case.status == "accepted"
                and case.counsellor_joined_at is not None
                and case.warga_joined_at is None
                and now - case.counsellor_joined_at > limit
            ):
                if case.warga in members:
                    await tx.update_case(case.id, warga_joined_at=now)
                    continue
                await self._warga_absent(tx, case)

    def _joined_members(self, room_id: str | None) -> set[str]:
        """Who the last sync shows joined in ``room_id``; no request is made."""
        room = self.rt.matrix.client.rooms.get(room_id or "")
        if room is None:
            return set()
        return set(room.users) - set(room.invited_users)

    async def _counsellor_absent(
        self, tx: Tx, case: Case, accepted: list[Offer], handing_over: bool
    ) -> None:
        rt = self.rt
        absent = case.counsellor
        assert absent is not None
        for offer in accepted:
            # The invitation is withdrawn by _advance, which can call the server.
            await tx.answer_offer(offer.id, "no_show")

        if handing_over:
            # The one handing over is still in the room: the hand-over starts again.
            await tx.update_case(
                case.id,
                counsellor=case.handover_from,
                counsellor_brought=1,
                counsellor_joined_at=time.time(),
            )
        else:
            await tx.update_case(
                case.id,
                status="waiting",
                counsellor=None,
                accepted_at=None,
                counsellor_brought=0,
            )
        duty = await tx.owned_room(duty_purpose(absent))
        if duty and duty.room_id:
            await rt.say(
                tx,
                duty.room_id,
                rt.text(
                    "offer.no_show",
                    code=case.code,
                    timeout=waited(rt.policy.queue.join_timeout_s),
                ),
            )
        logger.info("case %s: counsellor did not come in; offered again", case.code)
        rt.wake_reconciler.set()

    async def _warga_absent(self, tx: Tx, case: Case) -> None:
        rt = self.rt
        await tx.update_case(
            case.id,
            status="closing",
            closed_by="warga_absent",
            close_requested_at=time.time(),
        )
        timeout = waited(rt.policy.queue.join_timeout_s)
        if case.dm_room and await tx.direct_chat(case.dm_room):
            await tx.update_direct_chat(case.dm_room, step="idle")
            await rt.say(
                tx,
                case.dm_room,
                rt.text("case.warga_absent", code=case.code, timeout=timeout),
            )
        duty = await tx.owned_room(duty_purpose(case.counsellor or ""))
        if duty and duty.room_id:
            await rt.say(
                tx,
                duty.room_id,
                rt.text("case.warga_absent_staff", code=case.code, timeout=timeout),
            )
        logger.info("case %s: warga did not come in; closing", case.code)
        rt.wake_reconciler.set()

    async def _dispatch(self, tx: Tx) -> None:
        """Offer waiting curhats to the counsellors the policy picks, in queue order.

        Urgent curhats come first and go to the on-call counsellors, several at
        once if the policy says so; the others wait for one offer at a time. A
        curhat being handed over by its counsellor is routed like a waiting one,
        with the warga's gender and religion preference. Past the policy's
        ``preference_fallback`` a preference nobody matching can meet is let go of,
        and the warga told once (see :func:`tell_relaxed`).
        """
        rt = self.rt
        policy = rt.policy
        now = datetime.now(UTC)
        pending = await tx.pending_offers()
        busy = await tx.busy_counts()
        available = await tx.availability()
        last_offers = await tx.last_offer_times()
        holding = {o.counsellor for o in pending}
        offers_pending: dict[int, set[str]] = {}
        for offer in pending:
            offers_pending.setdefault(offer.case_id, set()).add(offer.counsellor)
        duty_rooms: dict[str, str] = {}
        for counsellor in policy.counsellors:
            if counsellor.user_id not in self._usable:
                # Not checked yet, or cannot be brought in: no offer can reach them.
                continue
            duty = await tx.owned_room(duty_purpose(counsellor.user_id))
            if (
                duty
                and duty.room_id
                and not duty.closed
                # An offer sent before they joined would be hidden from them.
                and counsellor.user_id in self._joined_members(duty.room_id)
            ):
                duty_rooms[counsellor.user_id] = duty.room_id
        unusable = set(self.unusable)
        # Until every counsellor was looked up, "nobody is free" may not be true.
        checking = any(
            c.user_id not in self._usable and c.user_id not in unusable
            for c in policy.counsellors
        )
        # Worked out once per pass and kept true as offers go out below: rebuilding
        # it for every waiting curhat made a pass cost counsellors x curhats.
        loads = {
            c.user_id: Load(
                open_curhats=busy.get(c.user_id, 0),
                # No duty room yet: the counsellor cannot receive an offer.
                pending_offer=c.user_id in holding or c.user_id not in duty_rooms,
            )
            for c in policy.counsellors
        }
        # Without a duty room a counsellor cannot receive an urgent offer.
        no_room = {c.user_id for c in policy.counsellors} - set(duty_rooms)

        for case in await tx.open_cases():
            handover = case.status == "active" and case.handover_from == case.counsellor
            if case.status != "waiting" and not handover:
                continue
            if policy.category(case.category) is None:
                # The category left the policy in a reload; supervisors can move it.
                continue
            asked = offers_pending.get(case.id, set())
            offers = await tx.offers_of_case(case.id)
            rounds = Rounds.of(offers)
            declined = {o.counsellor for o in offers if o.status in DECLINED}
            declined |= unusable
            timed_out = {o.counsellor for o in offers if o.status == "timed_out"}
            if case.handover_from:
                declined.add(case.handover_from)

            if case.urgent and not handover and policy.urgent is not None:
                wanted = policy.urgent.parallel - len(asked)
                on_call = choose_on_call(
                    policy,
                    loads,
                    declined | timed_out | asked | no_room,
                    now=now,
                    available=available,
                    count=max(wanted, 0),
                )
                for counsellor in on_call:
                    await self._offer(
                        tx,
                        case,
                        counsellor.user_id,
                        0,
                        policy.urgent.timeout_s,
                        duty_rooms,
                    )
                    _holds_offer(loads, counsellor.user_id)
                    asked.add(counsellor.user_id)
                if asked:
                    continue
            elif asked:
                continue

            category = case.handover_category or case.category
            routed = policy.category(category)
            if routed is None:
                continue
            # A hand-over keeps the warga's gender, religion and language: they
            # asked for them, whoever takes the curhat over. Its counsellor type is
            # the counsellor's decision, so the fallback never lets go of it; the
            # warga's own type answered a question of the first category only. The
            # language is no part of the preference: it is only ever a wish.
            pref = Preference(
                type=case.handover_type if handover else case.pref_type,
                gender=case.pref_gender,
                religion=case.pref_religion,
            )
            relaxed = Preference(type=case.handover_type if handover else None)
            waited_s = time.time() - case.search_started_at()
            previous = (
                None
                if case.warga is None or handover
                else await tx.previous_counsellor(case.warga)
            )

            route = partial(
                choose,
                policy,
                category,
                pref,
                loads,
                now=now,
                # The warga's own wish, else the bot's language, as it writes.
                language=case.pref_language or rt.catalog.lang,
                previous=previous,
                round_robin_state=last_offers,
                available=available,
                waited_s=waited_s,
                relaxed=relaxed,
            )

            if handover:
                # A hand-over keeps its curhat going whatever happens: no rounds.
                choice = route(declined, timed_out)
                if choice is None:
                    if not checking:
                        await self._tell_handover_waiting(tx, case)
                    continue
            else:
                # Nobody twice in one round; those who let it lapse wait for the next.
                within = route(declined | rounds.asked, timed_out - rounds.asked)
                # Given up when everyone who may ever get it declined: with a
                # fallback to come, that is everyone the route reaches.
                keeps = math.isinf(policy.preference_fallback_s(routed))
                matching = matching_ids(policy, routed, pref if keeps else relaxed)
                unmatchable = keeps and not matching and pref != relaxed
                step = next_step(
                    rounds,
                    reachable=matching,
                    unmatchable=unmatchable,
                    never=declined,
                    within=within,
                    again=None if within else route(declined, timed_out),
                    now=time.time(),
                    rules=policy.queue,
                )
                if step.unserved:
                    await self._give_up(tx, case, rounds, unmatchable=unmatchable)
                    continue
                if step.choice is None:
                    if not checking:
                        await self._tell_nobody_free(tx, case)
                    continue
                choice = step.choice

            chosen = choice.counsellor.user_id
            await self._offer(
                tx,
                case,
                chosen,
                choice.step_index,
                choice.timeout_s,
                duty_rooms,
                relaxed=choice.relaxed,
            )
            _holds_offer(loads, chosen)
            last_offers[chosen] = time.time()
            if choice.relaxed:
                await tell_relaxed(self.rt, tx, case, handover, waited_s)

    async def _offer(
        self,
        tx: Tx,
        case: Case,
        counsellor: str,
        step_index: int,
        timeout_s: float,
        duty_rooms: dict[str, str],
        *,
        relaxed: bool = False,
    ) -> None:
        offer = await tx.add_offer(case.id, counsellor, step_index, timeout_s)
        logger.info(
            "case %s offered to %s (step %d, offer %d%s%s)",
            case.code,
            counsellor,
            step_index,
            offer.id,
            ", urgent" if case.urgent else "",
            ", preference relaxed" if relaxed else "",
        )
        text = self._offer_text(case, timeout_s)
        if relaxed:
            text = self.rt.text("offer.relaxed_prefix") + "\n" + text
        await self.rt.say(tx, duty_rooms[counsellor], text, ref=f"offer:{offer.id}")

    def _offer_text(self, case: Case, timeout_s: float) -> str:
        rt = self.rt
        category = rt.policy.category(case.handover_category or case.category)
        prefs = preference_words(self.rt, case)
        if case.pref_language:
            # Only for the counsellor: a language is a wish, never "not met".
            language = language_label(rt.catalog, case.pref_language)
            prefs = ", ".join(p for p in (prefs, language) if p)
        text = rt.text(
            "offer.new",
            code=case.code,
            category=rt.label(category.labels) if category else case.category,
            preference=prefs or rt.text("offer.no_preference"),
            waited=waited(time.time() - case.requested_at),
            timeout=waited(timeout_s),
        )
        if case.handover_from:
            text = rt.text("offer.handover_prefix") + "\n" + text
        elif case.urgent:
            text = rt.text("offer.urgent_prefix") + "\n" + text
        return text

    async def _give_up(
        self, tx: Tx, case: Case, rounds: Rounds, *, unmatchable: bool = False
    ) -> None:
        """Nobody could take the curhat: close it and tell the warga honestly.

        Closed as ``unserved`` (final status ``cancelled``), so the warga can write
        again at any time and supervisors see it counted in the figures.
        ``unmatchable``: nobody of its route matches the warga's preference at all,
        which the warga is told as such.
        """
        rt = self.rt
        await tx.update_case(
            case.id,
            status="closing",
            closed_by="unserved",
            close_requested_at=time.time(),
        )
        if case.dm_room:
            if await tx.direct_chat(case.dm_room):
                await tx.update_direct_chat(case.dm_room, step="idle")
            if unmatchable:
                text = rt.text(
                    "queue.unmatchable",
                    code=case.code,
                    preference=preference_words(self.rt, case),
                    emergency=rt.emergency_lines(),
                )
            else:
                text = rt.text(
                    "queue.unserved", code=case.code, emergency=rt.emergency_lines()
                )
            await rt.say(tx, case.dm_room, text)
        logger.info(
            "case %s unserved after %d round(s), %d declined",
            case.code,
            rounds.number,
            len(rounds.declined),
        )
        rt.wake_reconciler.set()

    async def _tell_nobody_free(self, tx: Tx, case: Case) -> None:
        if case.told_no_counsellor or not case.dm_room:
            return
        position = await tx.queue_position(case)
        await tx.update_case(case.id, told_no_counsellor=1, told_position=position)
        await self.rt.say(
            tx,
            case.dm_room,
            self.rt.text(
                "queue.nobody_free",
                position=position,
                emergency=self.rt.emergency_lines(),
            ),
        )

    async def _tell_handover_waiting(self, tx: Tx, case: Case) -> None:
        """Tell the counsellor handing over, once, that nobody can take it yet."""
        key = handover_told_key(case.id)
        if await tx.get_meta(key):
            return
        await tx.set_meta(key, "1")
        await tell_duty(
            self.rt, tx, case.counsellor or "", "duty.handover_waiting", code=case.code
        )

    async def _tell_places(self, tx: Tx) -> None:
        """Tell each waiting warga their new place once it moved enough to matter.

        "Enough" is the policy's ``queue.notify_step`` places, or reaching the
        front of the queue; small shuffles are not worth a message each.
        """
        rt = self.rt
        step = rt.policy.queue.notify_step
        for case in await tx.open_cases():
            if case.status != "waiting" or not case.dm_room:
                continue
            position = await tx.queue_position(case)
            told = case.told_position
            if told is None:
                await tx.update_case(case.id, told_position=position)
                continue
            if position == told:
                continue
            if abs(position - told) < step and not (position == 1 < told):
                continue
            await tx.update_case(case.id, told_position=position)
            await rt.say(
                tx,
                case.dm_room,
                rt.text(
                    "queue.moved",
                    code=case.code,
                    position=position,
                    estimate=rt.wait_estimate(position),
                ),
            )

    # -- one curhat -------------------------------------------------------------------

    async def _advance(self, case_id: int) -> None:
        """Do the next due steps of one curhat."""
        rt = self.rt
        async with rt.store.tx() as tx:
            case = await tx.case(case_id)
        if case is None:
            return

        room_id = await self._case_room(case)
        async with rt.store.tx() as tx:
            case = await tx.case(case_id)
            offers = await tx.offers_of_case(case_id)
        assert case is not None

        # Whoever lost the curhat by not coming in must not be able to come in later.
        for offer in offers:
            if offer.status == "no_show" and offer.revoked_at is None:
                await rt.matrix.kick(
                    room_id, offer.counsellor, rt.text("case.no_show_reason")
                )
                async with rt.store.tx() as tx:
                    await tx.set_offer_revoked(offer.id)
                logger.info("case %s: invitation withdrawn", case.code)

        # A join seen in the room also proves the person was brought in (the bot
        # may have stopped between bringing them and recording it).
        counsellor_in = case.counsellor_brought or case.counsellor_joined_at
        warga_in = case.warga_brought or case.warga_joined_at
        handing_over = (
            case.status == "active"
            and case.handover_from is not None
            and case.counsellor != case.handover_from
        )
        if handing_over and not counsellor_in:
            await self._bring(room_id, case, "counsellor")
        elif handing_over and case.counsellor_joined_at:
            await self._finish_handover(room_id, case)
        elif case.status == "accepted" and not counsellor_in:
            await self._bring(room_id, case, "counsellor")
        elif case.status == "accepted" and case.counsellor_joined_at and not warga_in:
            await self._bring(room_id, case, "warga")
        elif (
            case.status == "accepted"
            and case.counsellor_joined_at
            and case.warga_joined_at
        ):
            await self._open(room_id, case)
        elif case.status == "closing":
            await self._close(room_id, case)
        else:
            return
        # One step done; the next one, if due, starts right away.
        rt.wake_reconciler.set()

    async def _case_room(self, case: Case) -> str:
        rt = self.rt
        room_id = await self.ensure_room(
            case.purpose,
            lambda token: rooms.curhat_room(
                code=case.code,
                token=token,
                bot_user_id=rt.bot,
                room_version=rt.room_version,
            ),
        )
        if case.room_ready_at is None:
            async with rt.store.tx() as tx:
                await tx.update_case(case.id, room_ready_at=time.time())
        return room_id

    async def _bring(self, room_id: str, case: Case, who: str) -> None:
        """Bring the counsellor or the warga into the curhat room."""
        rt = self.rt
        user_id = case.counsellor if who == "counsellor" else case.warga
        assert user_id is not None
        if who == "counsellor":
            crash_point("counsellor_to_bring")
        await self._bring_user(room_id, user_id)
        if who == "counsellor":
            crash_point("counsellor_brought")

        async with rt.store.tx() as tx:
            room_name = f"Curhat #{case.code}"
            how = "joined" if rt.admin_join else "invited"
            if who == "counsellor":
                await tx.update_case(case.id, counsellor_brought=1)
                duty = await tx.owned_room(duty_purpose(user_id))
                # In a hand-over the warga is in the room already.
                key = "handover_" if case.handover_from else ""
                if duty and duty.room_id:
                    text = rt.text(
                        f"case.{key}counsellor_{how}",
                        room=room_name,
                        timeout=waited(rt.policy.queue.join_timeout_s),
                    )
                    await rt.say(tx, duty.room_id, text)
            else:
                await tx.update_case(case.id, warga_brought=1)
                if case.dm_room:
                    text = rt.text(
                        f"case.warga_{how}",
                        room=room_name,
                        timeout=waited(rt.policy.queue.join_timeout_s),
                    )
                    await rt.say(tx, case.dm_room, text)
        logger.info("case %s: %s brought in (%s)", case.code, who, how)

    async def _open(self, room_id: str, case: Case) -> None:
        """Both are in: let them talk and say so."""
        rt = self.rt
        power = await rt.matrix.state_event(room_id, "m.room.power_levels")
        await rt.matrix.put_state(
            room_id, "m.room.power_levels", rooms.opened_power_levels(power)
        )

        counsellor = rt.policy.counsellor(case.counsellor or "")
        name = counsellor.name if counsellor else rt.text("case.the_counsellor")
        async with rt.store.tx() as tx:
            await tx.update_case(case.id, status="active", started_at=time.time())
            await rt.say(tx, room_id, rt.text("case.start", counsellor=name))
        logger.info("case %s active", case.code)

    async def _finish_handover(self, room_id: str, case: Case) -> None:
        """The new counsellor is in: the one handing over leaves; the warga is told."""
        rt = self.rt
        old = case.handover_from
        assert old is not None
        await rt.matrix.kick(room_id, old, rt.text("case.handover_reason"))

        counsellor = rt.policy.counsellor(case.counsellor or "")
        name = counsellor.name if counsellor else rt.text("case.the_counsellor")
        async with rt.store.tx() as tx:
            await tx.update_case(
                case.id,
                handover_from=None,
                handover_category=None,
                handover_type=None,
                handover_at=None,
            )
            await tx.delete_meta(handover_told_key(case.id))
            await rt.say(tx, room_id, rt.text("case.handed_over", counsellor=name))
            duty = await tx.owned_room(duty_purpose(old))
            if duty and duty.room_id:
                await rt.say(
                    tx, duty.room_id, rt.text("case.handover_done", code=case.code)
                )
        logger.info("case %s handed over", case.code)

    async def _close(self, room_id: str, case: Case) -> None:
        """Close the room for good, then ask the warga for a rating in private."""
        rt = self.rt
        if case.closed_by in ("cancel", "unserved", "warga_absent"):
            await self._lock_and_empty(room_id, case)
            async with rt.store.tx() as tx:
                await tx.close_owned_room(case_purpose(case.id))
                await tx.update_case(case.id, status="cancelled", closed_at=time.time())
            logger.info("case %s cancelled", case.code)
            return

        closer = rt.text(f"case.closed_by_{case.closed_by or 'bot'}")
        room = rt.matrix.client.rooms.get(room_id)
        if room is not None and room.encrypted:
            try:
                await rt.matrix.send(
                    room_id,
                    {"msgtype": "m.notice", "body": rt.text("case.closing", by=closer)},
                    f"close-{case.code}",
                )
            except MatrixError as exc:
                logger.warning("case %s: closing notice failed: %s", case.code, exc)

        await self._lock_and_empty(room_id, case)

        async with rt.store.tx() as tx:
            await tx.close_owned_room(case_purpose(case.id))
            await tx.update_case(case.id, status="closed", closed_at=time.time())
            if case.dm_room and await tx.direct_chat(case.dm_room):
                await tx.update_direct_chat(
                    case.dm_room, step="rating", rating_case=case.id
                )
                await rt.say(
                    tx,
                    case.dm_room,
                    rt.text("rating.ask"),
                    ref=f"rating:{case.dm_room}",
                )
            duty = await tx.owned_room(duty_purpose(case.counsellor or ""))
            if duty and duty.room_id:
                await rt.say(tx, duty.room_id, rt.text("case.closed", code=case.code))
        logger.info("case %s closed", case.code)

    async def _lock_and_empty(self, room_id: str, case: Case) -> None:
        rt = self.rt
        if room_id not in await rt.matrix.joined_rooms():
            return
        power = await rt.matrix.state_event(room_id, "m.room.power_levels")
        await rt.matrix.put_state(
            room_id, "m.room.power_levels", rooms.closed_power_levels(power)
        )
        crash_point("closing")
        reason = rt.text("case.kick_reason")
        for user_id in (case.warga, case.counsellor, case.handover_from):
            if user_id:
                await rt.matrix.kick(room_id, user_id, reason)
        await rt.matrix.leave(room_id)
