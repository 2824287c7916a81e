"""What the bot does with each event a sync brings, by the kind of room it is in.

A handler records what happened in one transaction, together with the event ID (so a
replayed sync does nothing twice) and the notices it answers with. Slow work, such as
creating rooms, is left to the reconciler. Message bodies are read only to recognise
a command or an intake answer; they are never stored or logged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from nio import (
    Event,
    ReactionEvent,
    RoomMemberEvent,
    RoomMessage,
    RoomMessageNotice,
    RoomMessageText,
)

from . import intake as intake_steps
from . import statsjob
from .curhat import new_code
from .flood import FloodGuard, Verdict
from .intake import Intake
from .runtime import Runtime
from .store import SUPERVISORS_PURPOSE, DirectChat, Offer, Tx, duty_purpose
from .tasks import TaskSet

logger = logging.getLogger(__name__)

ACCEPT_KEYS = {"✅", "✔️", "✔", "👍", "☑️"}
DECLINE_KEYS = {"❌", "✖️", "✖", "👎", "❎"}
# A message this soon after the greeting was written before it could be read.
CROSSED_S = 5.0
RATING_KEYS = {"1️⃣": 1, "2️⃣": 2, "3️⃣": 3, "4️⃣": 4, "5️⃣": 5}


@dataclass(frozen=True)
class Command:
    name: str
    arg: str


def parse_command(body: str) -> Command | None:
    """``!name [arg]`` at the start of a message, else None."""
    words = body.split(maxsplit=1)
    if not words or not words[0].startswith("!") or len(words[0]) == 1:
        return None
    arg = words[1].strip() if len(words) > 1 else ""
    return Command(words[0][1:].lower(), arg)


class Handlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.intake = Intake(rt.policy, rt.catalog, rt.label)
        self.tasks = TaskSet()
        self.flood = FloodGuard()

    async def on_event(self, room_id: str, event: Event) -> None:
        """Handle one timeline event of a joined room, once."""
        rt = self.rt
        own_join = (
            isinstance(event, RoomMemberEvent)
            and event.state_key == rt.bot
            and event.membership == "join"
        )
        if event.sender == rt.bot and not own_join:
            return

        async with rt.store.tx() as tx:
            if not await tx.claim_event(event.event_id):
                return
            chat = await tx.direct_chat(room_id)
            if chat is not None:
                if await self._flooded(tx, room_id, event):
                    return
                await self._direct(tx, chat, event, own_join)
                return
            owned = await tx.owned_room_by_id(room_id)
            if owned is None or own_join:
                return
            # People talk freely in a curhat room; elsewhere they talk to the bot.
            if not owned.purpose.startswith("case:") and await self._flooded(
                tx, room_id, event
            ):
                return
            if owned.purpose.startswith("case:"):
                await self._curhat(tx, int(owned.purpose[5:]), room_id, event)
            elif owned.purpose.startswith("duty:"):
                await self._duty(tx, owned.purpose[5:], room_id, event)
            elif owned.purpose == SUPERVISORS_PURPOSE:
                await self._supervisors(tx, room_id, event)

    async def _flooded(self, tx: Tx, room_id: str, event: Event) -> bool:
        """True if this message is part of a flood the bot no longer answers."""
        if not isinstance(event, RoomMessageText | ReactionEvent):
            return False
        verdict = self.flood.check(room_id, event.sender, event.server_timestamp)
        if verdict is Verdict.WARN:
            await self.rt.say(tx, room_id, self.rt.text("flood.slow_down"))
        return verdict is not Verdict.ANSWER

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
            else:
                await self._greet(tx, chat)
            return
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
        if isinstance(event, ReactionEvent):
            if chat.step == "rating" and event.reacts_to == chat.rating_event_id:
                rating = RATING_KEYS.get(event.key)
                if rating:
                    await self._rate(tx, chat, rating)
            return
        if not isinstance(event, RoomMessageText):
            if isinstance(event, RoomMessage) and not isinstance(
                event, RoomMessageNotice
            ):
                # A picture, file or voice note: not read, not kept; ask for text.
                await rt.say(tx, chat.room_id, rt.text("intake.text_only"))
            return

        body = event.body
        if chat.step == "rating":
            await self._on_rating(tx, chat, body)
            return

        case = await tx.open_case_of(chat.warga)
        if case is not None:
            await self._while_open(tx, chat, case, body)
            return
        if chat.step in ("idle", "joining", "requested", "gone"):
            await self._greet(tx, chat)
            return

        answer = self.intake.answer(
            chat.step, body, category_key=chat.category, pref_type=chat.pref_type
        )
        sent_s = getattr(event, "server_timestamp", 0) / 1000
        if (
            chat.step == answer.step == intake_steps.CONSENT
            and sent_s - chat.updated_at < CROSSED_S
        ):
            # A first "halo" written while the greeting was on its way: the
            # greeting already asks, so asking again would only repeat it.
            return
        await tx.update_direct_chat(chat.room_id, step=answer.step, **answer.updates)
        for text in answer.texts:
            await rt.say(tx, chat.room_id, text)
        if answer.request:
            updated = await tx.direct_chat(chat.room_id)
            assert updated is not None
            await self._request(tx, updated)

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
        await self.rt.matrix.send(
            room_id,
            {"msgtype": "m.notice", "body": text},
            f"refuse-{room_id}",
            allow_plaintext=plaintext,
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
        )
        for text in answer.texts:
            await self.rt.say(tx, chat.room_id, text)

    async def _request(self, tx: Tx, chat: DirectChat) -> None:
        """Intake is complete: open a curhat and tell the warga what happens next."""
        rt = self.rt
        assert chat.category is not None
        code = new_code()
        while await tx.code_in_use(code):
            code = new_code()

        case = await tx.add_case(
            code=code,
            warga=chat.warga,
            dm_room=chat.room_id,
            category=chat.category,
            pref_type=chat.pref_type,
            pref_gender=chat.pref_gender,
        )
        position = await tx.queue_position(case)
        await rt.say(
            tx, chat.room_id, rt.text("queue.received", code=code, position=position)
        )
        rt.wake_reconciler.set()
        logger.info("case %s requested in category %s", code, case.category)

    async def _while_open(self, tx: Tx, chat: DirectChat, case, body: str) -> None:  # type: ignore[no-untyped-def]
        rt = self.rt
        command = parse_command(body)
        cancel = (command is not None and command.name == "batal") or (
            intake_steps.normalise(body) in self.intake.words("queue.cancel_words")
        )
        if cancel and case.status == "waiting":
            await tx.update_case(
                case.id,
                status="closing",
                closed_by="cancel",
                close_requested_at=time.time(),
            )
            for offer in await tx.offers_of_case(case.id):
                if offer.status == "pending":
                    await tx.answer_offer(offer.id, "withdrawn")
                    await self._tell_duty(tx, offer, "offer.withdrawn", case.code)
            await tx.update_direct_chat(chat.room_id, step="idle")
            await rt.say(tx, chat.room_id, rt.text("queue.cancelled", code=case.code))
            rt.wake_reconciler.set()
            return

        if case.status == "waiting":
            position = await tx.queue_position(case)
            text = rt.text("queue.still_waiting", code=case.code, position=position)
        else:
            text = rt.text("queue.in_progress", room=f"Curhat #{case.code}")
        await rt.say(tx, chat.room_id, text)

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
        command = parse_command(event.body)
        if (
            command
            and command.name == "selesai"
            and case.status in ("accepted", "active")
        ):
            await self._close(tx, case, role)

    async def _close(self, tx: Tx, case, role: str) -> None:  # type: ignore[no-untyped-def]
        await tx.update_case(
            case.id, status="closing", closed_by=role, close_requested_at=time.time()
        )
        self.rt.wake_reconciler.set()
        logger.info("case %s: close requested by %s", case.code, role)

    # -- a counsellor's duty room ------------------------------------------------

    async def _duty(self, tx: Tx, counsellor: str, room_id: str, event: Event) -> None:
        rt = self.rt
        if event.sender != counsellor:
            return

        if isinstance(event, ReactionEvent):
            offer = await tx.pending_offer_by_event(event.reacts_to)
            if offer is None or offer.counsellor != counsellor:
                return
            if event.key in ACCEPT_KEYS:
                await self._answer(tx, room_id, offer, accept=True)
            elif event.key in DECLINE_KEYS:
                await self._answer(tx, room_id, offer, accept=False)
            return

        if not isinstance(event, RoomMessageText):
            return
        command = parse_command(event.body)
        if command is None:
            return
        if command.name not in ("terima", "tolak"):
            await rt.say(tx, room_id, await self._duty_help(tx, counsellor))
            return

        offer = await self._pending_offer_for(tx, counsellor, command.arg)
        if offer is None:
            await rt.say(tx, room_id, rt.text("duty.no_offer"))
            return
        await self._answer(tx, room_id, offer, accept=command.name == "terima")

    async def _duty_help(self, tx: Tx, counsellor: str) -> str:
        """The commands, and the offers waiting for this counsellor's answer.

        Listing them again helps a counsellor on a new device, which cannot
        decrypt offers sent before it existed.
        """
        codes = []
        for offer in await tx.pending_offers():
            case = await tx.case(offer.case_id)
            if offer.counsellor == counsellor and case is not None:
                codes.append(f"#{case.code}")
        text = self.rt.text("duty.help")
        if codes:
            text += "\n" + self.rt.text("duty.waiting", codes=", ".join(codes))
        return text

    async def _pending_offer_for(
        self, tx: Tx, counsellor: str, code: str
    ) -> Offer | None:
        mine = [o for o in await tx.pending_offers() if o.counsellor == counsellor]
        if code:
            case = await tx.case_by_code(code.lstrip("#").upper())
            mine = [o for o in mine if case is not None and o.case_id == case.id]
        return mine[-1] if mine else None

    async def _answer(
        self, tx: Tx, room_id: str, offer: Offer, *, accept: bool
    ) -> None:
        rt = self.rt
        case = await tx.case(offer.case_id)
        assert case is not None
        if accept:
            await tx.answer_offer(offer.id, "accepted")
            await tx.update_case(
                case.id,
                status="accepted",
                counsellor=offer.counsellor,
                accepted_at=time.time(),
            )
            await rt.say(tx, room_id, rt.text("offer.accepted", code=case.code))
        else:
            await tx.answer_offer(offer.id, "declined")
            await rt.say(tx, room_id, rt.text("offer.declined", code=case.code))
        logger.info("offer %d %s", offer.id, "accepted" if accept else "declined")
        rt.wake_reconciler.set()

    async def _tell_duty(self, tx: Tx, offer: Offer, key: str, code: str) -> None:
        duty = await tx.owned_room(duty_purpose(offer.counsellor))
        if duty and duty.room_id:
            await self.rt.say(tx, duty.room_id, self.rt.text(key, code=code))

    # -- the supervisors' room ---------------------------------------------------

    async def _supervisors(self, tx: Tx, room_id: str, event: Event) -> None:
        if event.sender not in self.rt.config.supervisors:
            return
        if not isinstance(event, RoomMessageText):
            return
        command = parse_command(event.body)
        if command is None:
            return
        if command.name == "statistik":
            await statsjob.post_report(self.rt, tx)
        else:
            await self.rt.say(tx, room_id, self.rt.text("staff.supervisors_help"))
