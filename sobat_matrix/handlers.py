"""What the bot does with each event a sync brings, by the kind of room it is in.

A handler records what happened in one transaction, together with the event ID (so a
replayed sync does nothing twice) and the notices it answers with. Slow work, such as
creating rooms, is left to the reconciler. Message bodies are read only to recognise
a command or an intake answer; they are never stored or logged.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import UTC, datetime

from nio import (
    Event,
    ReactionEvent,
    RoomMemberEvent,
    RoomMessage,
    RoomMessageNotice,
    RoomMessageText,
)

from . import commands, duty, statsjob, supervise
from . import intake as intake_steps
from .commands import Command, parse
from .crashpoints import crash_point
from .curhat import new_code
from .flood import FloodGuard, Reply, Verdict, replying
from .flood import current as current_reply
from .intake import Intake
from .routing import Load, choose_on_call, next_opening, service_open
from .runtime import Runtime
from .store import SUPERVISORS_PURPOSE, Case, DirectChat, Tx
from .tasks import TaskSet

logger = logging.getLogger(__name__)

ACCEPT_KEYS = {"✅", "✔️", "✔", "👍", "☑️"}
DECLINE_KEYS = {"❌", "✖️", "✖", "👎", "❎"}
# A message this soon after the greeting was written before it could be read.
CROSSED_S = 5.0
RATING_KEYS = {"1️⃣": 1, "2️⃣": 2, "3️⃣": 3, "4️⃣": 4, "5️⃣": 5}


# Kept for callers of the old name.
parse_command = parse
# The steps of a direct chat in which the warga has not (yet) agreed to go on.
NOT_CONSENTED = ("idle", "joining", "requested", "gone", intake_steps.CONSENT)
# The warga typed !hapus; their next message confirms or cancels.
FORGET_CONFIRM = "forget_confirm"


class Handlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._intake = Intake(rt.policy, rt.catalog, rt.label)
        self.tasks = TaskSet()
        self.flood = FloodGuard()

    @property
    def intake(self) -> Intake:
        """The intake dialogue of the policy running now (it may have been reloaded)."""
        if self._intake.policy is not self.rt.policy:
            self._intake = Intake(self.rt.policy, self.rt.catalog, self.rt.label)
        return self._intake

    async def _refuse_command(self, tx: Tx, room_id: str, command: Command) -> None:
        who = self.rt.text(f"staff.role_{commands.owner(command.name)}")
        await self.rt.say(
            tx, room_id, self.rt.text("staff.refused", command=command.name, who=who)
        )

    async def on_event(self, room_id: str, event: Event) -> None:
        """Handle one timeline event of a joined room, once.

        What the bot answers goes through the flood guard: an answer it just gave
        in the room is not given again, and the guard learns of the answers only
        once the transaction that queued them has committed.
        """
        rt = self.rt
        own_join = (
            isinstance(event, RoomMemberEvent)
            and event.state_key == rt.bot
            and event.membership == "join"
        )
        if event.sender == rt.bot and not own_join:
            return
        # Bots write m.notice (this one does): never a command or an answer, from
        # anyone. A bot that writes m.text cannot be told from a person.
        if isinstance(event, RoomMessageNotice):
            return

        reply = Reply(self.flood, room_id, event.sender, event.server_timestamp)
        with replying(reply):
            async with rt.store.tx() as tx:
                await self._dispatch(tx, room_id, event, own_join)
            reply.commit()

    async def _dispatch(
        self, tx: Tx, room_id: str, event: Event, own_join: bool
    ) -> None:
        if not await tx.claim_event(event.event_id):
            return
        chat = await tx.direct_chat(room_id)
        if chat is not None:
            await self._direct(tx, chat, event, own_join)
            return

        owned = await tx.owned_room_by_id(room_id)
        if owned is None or own_join:
            return
        if owned.purpose.startswith("case:"):
            await self._curhat(tx, int(owned.purpose[5:]), room_id, event)
        elif owned.purpose.startswith("duty:"):
            await self._duty(tx, owned.purpose[5:], room_id, event)
        elif owned.purpose == SUPERVISORS_PURPOSE:
            await self._supervisors(tx, room_id, event)

    async def _flooded(self, tx: Tx, room_id: str, *, urgent: bool = False) -> bool:
        """True if the sender, whose role is now known, is flooding the bot.

        Asked only once the handler knows the sender is someone it answers, so a
        stranger cannot draw the warning and one person's flood silences nobody
        else. The first message past the limit gets the "slow down" notice; the
        rest of the window, nothing. Urgent words always go through.
        """
        reply = current_reply()
        assert reply is not None, "handled outside on_event"
        verdict = reply.admit()
        if verdict is Verdict.WARN and not urgent:
            await self.rt.say(tx, room_id, self.rt.text("flood.slow_down"))
        return verdict is not Verdict.ANSWER and not urgent

    # -- a warga's direct chat -------------------------------------------------------

    async def _direct(
        self, tx: Tx, chat: DirectChat, event: Event, own_join: bool
    ) -> None:
        rt = self.rt
        if own_join:
            if chat.step != "joining":
                return
            room = rt.matrix.client.rooms.get(chat.room_id)
            if room is None or not room.encrypted:
                await self._refuse(tx, chat, "intake.not_encrypted", plaintext=True)
            elif set(room.users) - {rt.bot, chat.warga}:
                await self._refuse(tx, chat, "intake.not_private")
            elif await self._points_to_open_case(tx, chat):
                return
            elif not await self._closed_now(tx, chat):
                await self._greet(tx, chat)
            return
        if chat.warga is None:
            adopted = await self._adopt(tx, chat, event)
            if adopted is None:
                return
            chat = adopted
        if (
            isinstance(event, RoomMemberEvent)
            and event.membership in ("join", "invite")
            and event.state_key not in (rt.bot, chat.warga)
        ):
            # Someone else came into what must stay a private chat.
            await self._refuse(tx, chat, "intake.not_private")
            return
        if event.sender != chat.warga:
            return

        if isinstance(event, RoomMemberEvent) and event.membership in ("leave", "ban"):
            await tx.update_direct_chat(chat.room_id, step="gone")
            return
        # A notice is what bots send, and never a command or an answer.
        if isinstance(event, RoomMessageNotice) or not isinstance(
            event, RoomMessage | ReactionEvent
        ):
            return
        urgent = isinstance(event, RoomMessageText) and rt.is_urgent(event.body)
        if await self._flooded(tx, chat.room_id, urgent=urgent):
            return
        if isinstance(event, ReactionEvent):
            if chat.step == "rating" and event.reacts_to == chat.rating_event_id:
                rating = RATING_KEYS.get(event.key)
                if rating:
                    await self._rate(tx, chat, rating)
            return
        if not isinstance(event, RoomMessageText):
            # A picture, file or voice note: not read, not kept; ask for text.
            await rt.say(tx, chat.room_id, rt.text("intake.text_only"))
            return

        body = event.body
        command = parse(body)
        if command is not None:
            verdict = commands.decide(command.name, commands.WARGA, commands.DIRECT)
            if verdict is commands.Verdict.REFUSE:
                await self._refuse_command(tx, chat.room_id, command)
                return

        if chat.step == FORGET_CONFIRM:
            if await self._on_forget_answer(tx, chat, body) or not rt.is_urgent(body):
                return
            chat = await tx.direct_chat(chat.room_id) or chat
        elif command is not None and command.name == "hapus":
            await self._ask_forget(tx, chat)
            return

        assert chat.warga is not None
        case = await tx.open_case_of(chat.warga)
        if rt.is_urgent(body):
            if await self._urgent(tx, chat, case):
                return
            chat = await tx.direct_chat(chat.room_id) or chat

        if chat.step == "rating":
            await self._on_rating(tx, chat, body)
            return
        if case is not None:
            await self._while_open(tx, chat, case, body)
            return
        if chat.step in ("idle", "joining", "requested", "gone"):
            if not await self._closed_now(tx, chat):
                await self._greet(tx, chat)
            return

        answer = self.intake.answer(
            chat.step,
            body,
            category_key=chat.category,
            pref_type=chat.pref_type,
            pref_gender=chat.pref_gender,
            pref_religion=chat.pref_religion,
        )
        sent_s = getattr(event, "server_timestamp", 0) / 1000
        if (
            chat.step == answer.step == intake_steps.CONSENT
            and sent_s - chat.updated_at < CROSSED_S
        ):
            # A first "halo" written while the greeting was on its way: the
            # greeting already asks, so asking again would only repeat it.
            return
        if chat.urgent and answer.step == intake_steps.CATEGORY:
            # Consent given after urgent words: no more questions, find someone now.
            await tx.update_direct_chat(chat.room_id, step=intake_steps.REQUESTED)
            await self._request(tx, chat)
            return
        await tx.update_direct_chat(chat.room_id, step=answer.step, **answer.updates)
        for text in answer.texts:
            await rt.say(tx, chat.room_id, text)
        if answer.request:
            updated = await tx.direct_chat(chat.room_id)
            assert updated is not None
            await self._request(tx, updated)

    async def _adopt(self, tx: Tx, chat: DirectChat, event: Event) -> DirectChat | None:
        """A direct chat whose warga was forgotten: whoever writes in it is the warga.

        The chat must still hold only the bot and one person. Returns the chat with
        its warga, or None when the event needs no answer.
        """
        room = self.rt.matrix.client.rooms.get(chat.room_id)
        others = set(room.users) - {self.rt.bot} if room is not None else set()
        if len(others) > 1:
            await self._refuse(tx, chat, "intake.not_private")
            return None
        if event.sender not in others or not isinstance(
            event, RoomMessage | ReactionEvent
        ):
            return None

        await tx.update_direct_chat(chat.room_id, warga=event.sender)
        return dataclasses.replace(chat, warga=event.sender)

    async def _ask_forget(self, tx: Tx, chat: DirectChat) -> None:
        """``!hapus``: say what would be deleted and wait for a "ya"."""
        if await self._forget_blocked(tx, chat):
            return
        await tx.update_direct_chat(
            chat.room_id, step=FORGET_CONFIRM, resume_step=chat.step
        )
        await self.rt.say(tx, chat.room_id, self.rt.text("forget.confirm"))

    async def _forget_blocked(self, tx: Tx, chat: DirectChat) -> bool:
        """A curhat in progress or being closed: say so; True if nothing may go."""
        assert chat.warga is not None
        case = await tx.open_case_of(chat.warga, ("accepted", "active", "closing"))
        # A withdrawn request being tidied away never had the warga in its room.
        if case is None or case.closed_by == "cancel":
            return False
        key = "forget.closing" if case.status == "closing" else "forget.open"
        await self.rt.say(tx, chat.room_id, self.rt.text(key))
        return True

    async def _on_forget_answer(self, tx: Tx, chat: DirectChat, body: str) -> bool:
        """The message after ``!hapus``; True if the warga was forgotten."""
        rt = self.rt
        resume = chat.resume_step or "idle"
        if intake_steps.normalise(body) not in self.intake.words(
            "forget.confirm_words"
        ):
            await tx.update_direct_chat(chat.room_id, step=resume, resume_step=None)
            await rt.say(tx, chat.room_id, rt.text("forget.cancelled"))
            return False
        if await self._forget_blocked(tx, chat):
            await tx.update_direct_chat(chat.room_id, step=resume, resume_step=None)
            return True

        assert chat.warga is not None
        waiting = await tx.open_case_of(chat.warga, ("waiting",))
        if waiting is not None:
            await self._cancel_waiting(tx, chat, waiting)
        forgotten = await tx.forget_warga(chat.warga)
        await rt.say(
            tx, chat.room_id, rt.text("forget.done", curhats=forgotten.curhats)
        )
        logger.info(
            "a warga asked to be forgotten: %d curhats unlinked, %d direct chats",
            forgotten.curhats,
            forgotten.chats,
        )
        return True

    async def _urgent(self, tx: Tx, chat: DirectChat, case: Case | None) -> bool:
        """Urgent words in a warga's message: contacts now, and jump the queue.

        Returns True when the message needs no other answer. The words are only
        matched in memory; nothing records which words or that any were written,
        beyond the urgent mark on the curhat.
        """
        rt = self.rt
        if case is not None:
            if case.status != "waiting" or case.urgent:
                return False
            await tx.update_case(case.id, urgent=1, told_no_counsellor=0)
            await rt.say(
                tx,
                chat.room_id,
                rt.text("urgent.waiting", emergency=rt.emergency_lines()),
            )
            await self._alert(tx, case)
            rt.wake_reconciler.set()
            return True

        if chat.urgent:
            return False
        await tx.update_direct_chat(chat.room_id, urgent=1)
        marked = await tx.direct_chat(chat.room_id)
        assert marked is not None
        if chat.step in NOT_CONSENTED:
            # The privacy terms come first, even now: the welcome (unless it was
            # just given), then the numbers, and a "ya" opens the curhat at once.
            if chat.step != intake_steps.CONSENT:
                if await self._closed_now(tx, marked):
                    return True
                await self._greet(tx, marked)
            text = rt.text("urgent.contacts_consent", emergency=rt.emergency_lines())
            await rt.say(tx, chat.room_id, text)
            return True
        await rt.say(
            tx, chat.room_id, rt.text("urgent.contacts", emergency=rt.emergency_lines())
        )
        await tx.update_direct_chat(chat.room_id, step=intake_steps.REQUESTED)
        updated = await tx.direct_chat(chat.room_id)
        assert updated is not None
        await self._request(tx, updated)
        return True

    async def _alert(self, tx: Tx, case: Case) -> None:
        """Tell supervisors of an urgent curhat: its code and category, nothing else."""
        category = self.rt.policy.category(case.category)
        label = self.rt.label(category.labels) if category else case.category
        await self.rt.tell_supervisors(
            tx, self.rt.text("urgent.alert", code=case.code, category=label)
        )
        logger.info("case %s marked urgent", case.code)

    def _on_call_free(self, busy: dict[str, int], available: dict[str, bool]) -> bool:
        """Whether an on-call counsellor could take an urgent curhat right now."""
        loads = {uid: Load(open_curhats=n) for uid, n in busy.items()}
        return bool(
            choose_on_call(
                self.rt.policy,
                loads,
                set(),
                now=datetime.now(UTC),
                available=available,
                count=1,
            )
        )

    async def _closed_now(self, tx: Tx, chat: DirectChat) -> bool:
        """Out of service hours: say when it opens and whom to call now.

        An urgent request is still taken when an on-call counsellor can answer it.
        Returns True when the warga got the out-of-hours answer.
        """
        rt = self.rt
        now = datetime.now(UTC)
        if service_open(rt.policy, now):
            return False
        if chat.urgent and self._on_call_free(
            await tx.busy_counts(), await tx.availability()
        ):
            return False

        opening = next_opening(rt.policy, now)
        if opening is None:
            when = rt.text("hours.not_known")
        else:
            local = opening.astimezone(rt.policy.timezone)
            when = rt.text(
                "hours.opens_at",
                day=rt.text(f"hours.day_{local.strftime('%a').lower()}"),
                date=local.strftime("%d-%m-%Y"),
                time=local.strftime("%H:%M"),
            )
        extra = (
            rt.label(rt.policy.out_of_hours) + "\n" if rt.policy.out_of_hours else ""
        )
        await tx.update_direct_chat(chat.room_id, step="idle", urgent=0)
        await rt.say(
            tx,
            chat.room_id,
            rt.text(
                "hours.closed",
                opens=when,
                emergency=rt.emergency_lines(),
                city=extra,
            ).strip(),
        )
        logger.info("out-of-hours answer given")
        return True

    async def _refuse(
        self, tx: Tx, chat: DirectChat, key: str, *, plaintext: bool = False
    ) -> None:
        """Stop serving a chat that is not private and encrypted, say why, leave."""
        await tx.update_direct_chat(chat.room_id, step="gone")
        self.tasks.spawn(
            f"leave {chat.room_id}", self._say_and_leave(chat.room_id, key, plaintext)
        )

    async def _say_and_leave(self, room_id: str, key: str, plaintext: bool) -> None:
        """Send one fixed text, then leave.

        With ``plaintext`` this is the only plaintext the bot ever sends: a fixed
        text that carries nothing about anyone, into a chat that is not encrypted.
        """
        text = self.rt.text(key)
        try:
            await self.rt.matrix.send(
                room_id,
                {"msgtype": "m.notice", "body": text},
                f"refuse-{room_id}",
                allow_plaintext=plaintext,
            )
        except Exception as exc:  # noqa: BLE001 - leaving matters more than saying
            # A chat found not private after it was found not encrypted (a second
            # refusal) cannot take the encrypted text; the bot leaves all the same.
            logger.warning(
                "could not say why before leaving %s: %s", room_id, type(exc).__name__
            )
        await self.rt.matrix.leave(room_id)
        logger.info("left direct chat %s (%s)", room_id, key)

    async def _greet(self, tx: Tx, chat: DirectChat) -> None:
        answer = self.intake.greeting()
        await tx.update_direct_chat(
            chat.room_id,
            step=answer.step,
            category=None,
            pref_type=None,
            pref_gender=None,
            pref_religion=None,
            pref_language=None,
        )
        for text in answer.texts:
            await self.rt.say(tx, chat.room_id, text)

    async def _request(self, tx: Tx, chat: DirectChat) -> None:
        """Intake is complete: open a curhat and tell the warga what happens next."""
        rt = self.rt
        if await self._closed_now(tx, chat):
            return
        category = chat.category or self._first_category()
        limit = rt.policy.queue.max_waiting
        if not chat.urgent and limit is not None and await tx.waiting_count() >= limit:
            await tx.update_direct_chat(chat.room_id, step="idle")
            await rt.say(
                tx,
                chat.room_id,
                rt.text("queue.full", emergency=rt.emergency_lines()),
            )
            logger.info("request turned away: the queue is full")
            return

        assert chat.warga is not None
        code = new_code()
        while await tx.code_in_use(code):
            code = new_code()
        case = await tx.add_case(
            code=code,
            warga=chat.warga,
            dm_room=chat.room_id,
            category=category,
            pref_type=chat.pref_type,
            pref_gender=chat.pref_gender,
            pref_religion=chat.pref_religion,
            urgent=chat.urgent,
            pref_language=chat.pref_language,
        )
        await tx.update_direct_chat(chat.room_id, urgent=0)
        crash_point("request_uncommitted")
        position = await tx.queue_position(case)
        await tx.update_case(case.id, told_position=position)
        await rt.say(
            tx,
            chat.room_id,
            rt.text(
                "queue.received",
                code=code,
                position=position,
                estimate=(
                    rt.text("queue.estimate_urgent")
                    if case.urgent
                    else rt.wait_estimate(position)
                ),
            ),
        )
        if case.urgent:
            await self._alert(tx, case)
        rt.wake_reconciler.set()
        logger.info("case %s requested in category %s", code, case.category)

    def _first_category(self) -> str:
        """Where an urgent curhat goes when the warga had no time to pick a topic."""
        for category in self.rt.policy.categories:
            if category.referral is None:
                return category.key
        raise AssertionError("a valid policy has a counselling category")

    async def _while_open(
        self, tx: Tx, chat: DirectChat, case: Case, body: str
    ) -> None:
        command = parse(body)
        cancel = (command is not None and command.name == "batal") or (
            intake_steps.normalise(body) in self.intake.words("queue.cancel_words")
        )
        if cancel and case.status == "waiting":
            await self._cancel_waiting(tx, chat, case)
            return

        await self._tell_open_case(tx, chat, case)

    async def _points_to_open_case(self, tx: Tx, chat: DirectChat) -> bool:
        """A new direct chat of a warga who has a curhat open: name it, no intake.

        One open curhat per warga: a welcome here would ask for a second one,
        which could only be refused. Returns True when the warga was told.
        """
        if chat.warga is None:
            return False
        case = await tx.open_case_of(chat.warga)
        if case is None:
            return False
        await self._tell_open_case(tx, chat, case)
        logger.info("case %s: a second direct chat pointed to it", case.code)
        return True

    async def _tell_open_case(self, tx: Tx, chat: DirectChat, case: Case) -> None:
        """Where the warga's open curhat stands, said in ``chat``.

        News of a waiting curhat goes to the chat it was asked for in, so another
        chat is told to look there instead of being promised news here.
        """
        rt = self.rt
        if case.status == "waiting":
            position = await tx.queue_position(case)
            key = (
                "queue.still_waiting"
                if case.dm_room == chat.room_id
                else "queue.waiting_elsewhere"
            )
            text = rt.text(
                key,
                code=case.code,
                position=position,
                estimate=rt.wait_estimate(position),
            )
        else:
            text = rt.text("queue.in_progress", room=f"Curhat #{case.code}")
        await rt.say(tx, chat.room_id, text)

    async def _cancel_waiting(self, tx: Tx, chat: DirectChat, case: Case) -> None:
        """The warga withdraws a curhat still in the queue."""
        rt = self.rt
        await tx.update_case(
            case.id,
            status="closing",
            closed_by="cancel",
            close_requested_at=time.time(),
        )
        await duty.withdraw_offers(rt, tx, case, "offer.withdrawn")
        await tx.update_direct_chat(chat.room_id, step="idle")
        await rt.say(tx, chat.room_id, rt.text("queue.cancelled", code=case.code))
        rt.wake_reconciler.set()

    async def _on_rating(self, tx: Tx, chat: DirectChat, body: str) -> None:
        said = intake_steps.normalise(body)
        number_words = self.intake.words("rating.number_words")
        if said.isdecimal() and 1 <= int(said) <= 5:
            await self._rate(tx, chat, int(said))
        elif said in number_words:
            await self._rate(tx, chat, number_words.index(said) + 1)
        elif said in self.intake.words("rating.skip_words"):
            await tx.update_direct_chat(chat.room_id, step="idle", rating_case=None)
            await self.rt.say(tx, chat.room_id, self.rt.text("rating.skipped"))
        else:
            await self.rt.say(tx, chat.room_id, self.rt.text("rating.again"))

    async def _rate(self, tx: Tx, chat: DirectChat, rating: int) -> None:
        if chat.rating_case is not None:
            await tx.update_case(chat.rating_case, rating=rating)
        await tx.update_direct_chat(
            chat.room_id, step="idle", rating_case=None, rating_event_id=None
        )
        await self.rt.say(tx, chat.room_id, self.rt.text("rating.thanks"))

    # -- a curhat room -----------------------------------------------------------------

    async def _curhat(self, tx: Tx, case_id: int, room_id: str, event: Event) -> None:
        rt = self.rt
        case = await tx.case(case_id)
        if case is None:
            return
        role = (
            "warga"
            if event.sender == case.warga
            else "counsellor"
            if event.sender == case.counsellor
            else None
        )

        if isinstance(event, RoomMemberEvent):
            member = event.state_key
            now = time.time()
            if event.membership == "join":
                if member == case.counsellor and case.counsellor_joined_at is None:
                    await tx.update_case(case.id, counsellor_joined_at=now)
                    logger.info("case %s: counsellor joined", case.code)
                elif member == case.warga and case.warga_joined_at is None:
                    await tx.update_case(case.id, warga_joined_at=now)
                    logger.info("case %s: warga joined", case.code)
                rt.wake_reconciler.set()
            elif (
                event.membership == "leave"
                and member == event.sender
                and role is not None
                and case.status in ("accepted", "active")
            ):
                await self._close(tx, case, role)
            return

        if role is None or not isinstance(event, RoomMessageText):
            return
        command = parse(event.body)
        # People talk freely in a curhat room: only commands draw an answer.
        if command is None or await self._flooded(tx, room_id):
            return
        table_role = commands.WARGA if role == "warga" else commands.COUNSELLOR
        verdict = commands.decide(command.name, table_role, commands.CURHAT)
        if verdict is commands.Verdict.REFUSE:
            await self._refuse_command(tx, room_id, command)
        elif verdict is not commands.Verdict.RUN:
            return
        elif command.name == "selesai" and case.status in ("accepted", "active"):
            await self._close(tx, case, role)
        elif command.name == "alihkan":
            await duty.hand_over(rt, tx, room_id, case, command)

    async def _close(self, tx: Tx, case: Case, role: str) -> None:
        await tx.update_case(
            case.id, status="closing", closed_by=role, close_requested_at=time.time()
        )
        await duty.withdraw_offers(self.rt, tx, case, "offer.void")
        self.rt.wake_reconciler.set()
        logger.info("case %s: close requested by %s", case.code, role)

    # -- a counsellor's duty room ------------------------------------------------

    async def _duty(self, tx: Tx, counsellor: str, room_id: str, event: Event) -> None:
        rt = self.rt
        if (
            isinstance(event, RoomMemberEvent)
            and event.state_key == counsellor
            and event.membership in ("leave", "ban")
        ):
            # Deactivating an account makes it leave every room: the account is
            # looked up again, so an offer waiting for it moves on at once.
            rt.recheck.add(counsellor)
            rt.wake_reconciler.set()
            return
        if event.sender != counsellor or not isinstance(
            event, RoomMessageText | ReactionEvent
        ):
            return
        if await self._flooded(tx, room_id):
            return

        if isinstance(event, ReactionEvent):
            offer = await tx.pending_offer_by_event(event.reacts_to)
            if offer is None or offer.counsellor != counsellor:
                return
            if event.key in ACCEPT_KEYS:
                await duty.answer_offer(rt, tx, room_id, offer, accept=True)
            elif event.key in DECLINE_KEYS:
                await duty.answer_offer(rt, tx, room_id, offer, accept=False)
            return

        command = parse(event.body)
        if command is None:
            return
        verdict = commands.decide(command.name, commands.COUNSELLOR, commands.DUTY)
        if verdict is commands.Verdict.REFUSE:
            await self._refuse_command(tx, room_id, command)
        elif verdict is not commands.Verdict.RUN:
            await rt.say(tx, room_id, await duty.help_text(rt, tx, counsellor))
        elif command.name in ("terima", "tolak"):
            offer = await duty.pending_offer_for(tx, counsellor, command.arg)
            if offer is None:
                await rt.say(tx, room_id, rt.text("duty.no_offer"))
                return
            accept = command.name == "terima"
            await duty.answer_offer(rt, tx, room_id, offer, accept=accept)
        elif command.name in ("siap", "istirahat"):
            ready = command.name == "siap"
            await duty.set_ready(rt, tx, room_id, counsellor, ready)
        elif command.name == "status":
            await duty.status(rt, tx, room_id, counsellor)

    # -- the supervisors' room ---------------------------------------------------

    async def _supervisors(self, tx: Tx, room_id: str, event: Event) -> None:
        rt = self.rt
        # Someone in the room who is not a listed supervisor gets nothing at all.
        if event.sender not in rt.config.supervisors:
            return
        if not isinstance(event, RoomMessageText) or await self._flooded(tx, room_id):
            return
        command = parse(event.body)
        if command is None:
            return
        verdict = commands.decide(
            command.name, commands.SUPERVISOR, commands.SUPERVISORS
        )
        if verdict is commands.Verdict.REFUSE:
            await self._refuse_command(tx, room_id, command)
        elif verdict is not commands.Verdict.RUN:
            await rt.say(tx, room_id, rt.text("staff.supervisors_help"))
        elif command.name == "statistik":
            await statsjob.post_report(rt, tx)
        elif command.name == "antrean":
            await supervise.queue(rt, tx, room_id)
        elif command.name == "konselor":
            await supervise.counsellors(rt, tx, room_id)
        elif command.name == "pindah":
            await supervise.move(rt, tx, room_id, command)
        elif command.name == "muat-ulang":
            await supervise.reload(rt, tx, room_id)
