"""One answer to a flood: repeats are dropped, a burst of new answers is cut short.

First the guard alone, driven by plain timestamps; then the real handlers on a real
store with no server (what they queue is what the bot would send); then the whole
bot on Synapse.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from nio import Event

from sobat_matrix import intake
from sobat_matrix.devserver import DevServer
from sobat_matrix.flood import FloodGuard, Reply, Verdict, digest
from sobat_matrix.handlers import Handlers
from sobat_matrix.i18n import Catalog
from sobat_matrix.policy import load_policy
from sobat_matrix.runtime import Runtime
from sobat_matrix.store import (
    SUPERVISORS_PURPOSE,
    Store,
    case_purpose,
    duty_purpose,
)

from .botkit import BotWorld, make_world, policy_text, server_times, windows

# -- the guard -------------------------------------------------------------------------

WARN = "slow down"


def run(
    guard: FloodGuard, messages: list[tuple[int, str, str]], room: str = "!r"
) -> list[str | None]:
    """Each (time, sender, answer) handled as the handlers do; what was sent."""
    sent: list[str | None] = []
    for sent_ms, sender, answer in messages:
        reply = Reply(guard, room, sender, sent_ms)
        verdict = reply.admit()
        said = {Verdict.ANSWER: answer, Verdict.WARN: WARN}.get(verdict)
        if said is not None and not reply.fresh(room, digest(said)):
            said = None
        reply.commit()
        sent.append(said)
    return sent


@pytest.mark.parametrize(
    ("limit", "messages", "expected"),
    [
        pytest.param(
            3,
            [(i * 200, "@w", "received") for i in range(50)],
            ["received"] + [None] * 49,
            id="fifty-same-requests-one-answer",
        ),
        pytest.param(
            3,
            [(i, "@w", f"answer{i}") for i in range(6)],
            ["answer0", "answer1", "answer2", WARN, None, None],
            id="new-answers-past-the-limit-one-warning-then-silence",
        ),
        pytest.param(
            3,
            [(i, "@w", a) for i, a in enumerate("aaaaaabbbbbb")],
            ["a"] + [None] * 5 + ["b"] + [None] * 5,
            id="repeats-do-not-count-towards-the-warning",
        ),
        pytest.param(
            3,
            [(i, "@w", a) for i, a in enumerate("abcca")],
            ["a", "b", "c", WARN, None],
            id="past-the-limit-even-a-repeat-is-warned",
        ),
        pytest.param(
            3,
            [(0, "@w", "which type?"), (400, "@w", "which gender?")],
            ["which type?", "which gender?"],
            id="same-words-typed-different-replies",
        ),
        pytest.param(
            3,
            [(0, "@w", "greeting"), (1, "@w", "cancelled"), (2, "@w", "greeting")],
            ["greeting", "cancelled", "greeting"],
            id="the-same-answer-after-another-one",
        ),
        pytest.param(
            3,
            [(0, "@w", "status"), (60_000, "@w", "status")],
            ["status", "status"],
            id="asked-again-a-minute-later",
        ),
        pytest.param(
            3,
            [(0, "@w", "status"), (9_999, "@w", "status"), (10_000, "@w", "status")],
            ["status", None, "status"],
            id="the-window-ends-at-ten-seconds",
        ),
        pytest.param(
            2,
            [(0, "@w", "a"), (1, "@w", "b"), (2, "@w", "c"), (3, "@k", "d")],
            ["a", "b", WARN, "d"],
            id="one-sender-flooding-silences-nobody-else",
        ),
        pytest.param(
            2,
            [(0, "@w", "refused"), (1, "@k", "refused")],
            ["refused", None],
            id="the-room-saw-that-answer-already",
        ),
        pytest.param(
            1,
            [
                (0, "@w", "a"),
                (1, "@w", "b"),
                (2, "@w", "c"),
                (10_000, "@w", "d"),
                (10_001, "@w", "e"),
                (10_002, "@w", "f"),
            ],
            ["a", WARN, None, "d", WARN, None],
            id="one-warning-per-window",
        ),
        pytest.param(
            2,
            [(i * 60_000, "@w", f"answer{i}") for i in range(10)],
            [f"answer{i}" for i in range(10)],
            id="a-backlog-spread-in-time-is-no-flood",
        ),
    ],
)
def test_what_a_sequence_of_messages_gets(
    limit: int, messages: list[tuple[int, str, str]], expected: list[str | None]
) -> None:
    assert run(FloodGuard(limit=limit, window_ms=10_000), messages) == expected


def test_the_same_answer_goes_to_another_room() -> None:
    guard = FloodGuard(limit=3, window_ms=10_000)

    assert run(guard, [(0, "@w", "status")], room="!a") == ["status"]
    assert run(guard, [(1, "@w", "status")], room="!b") == ["status"]
    assert run(guard, [(2, "@w", "status")], room="!a") == [None]


def test_answers_of_a_rolled_back_event_leave_no_trace() -> None:
    guard = FloodGuard(limit=1, window_ms=10_000)
    failed = Reply(guard, "!r", "@w", 0)
    assert failed.admit() is Verdict.ANSWER
    assert failed.fresh("!r", digest("status"))
    failed.close()  # the transaction failed: no commit

    again = Reply(guard, "!r", "@w", 1)

    assert again.admit() is Verdict.ANSWER
    assert again.fresh("!r", digest("status"))


def test_after_the_event_a_reply_checks_nothing() -> None:
    guard = FloodGuard()
    reply = Reply(guard, "!r", "@w", 0)
    assert reply.fresh("!r", digest("x"))
    reply.commit()

    # A task the handler started, speaking later, is not part of the reply.
    assert reply.fresh("!r", digest("x"))


def test_one_event_does_not_say_the_same_thing_twice() -> None:
    reply = Reply(FloodGuard(), "!r", "@w", 0)

    assert reply.fresh("!r", digest("x"))
    assert not reply.fresh("!r", digest("x"))
    assert reply.fresh("!other", digest("x"))


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("a",), ("b",)),
        (("a", None, None), ("a", "<b>a</b>", None)),
        (("a", None, "offer:1"), ("a", None, "offer:2")),
        (("ab", "c"), ("a", "bc")),
        (("a", None), ("a", "")),
    ],
)
def test_a_digest_tells_answers_apart(
    one: tuple[str, ...], other: tuple[str, ...]
) -> None:
    assert digest(*one) != digest(*other)
    assert digest(*one) == digest(*one)


# -- the handlers, on a real store and no server ---------------------------------------

IDS = {k: f"@kons{k}:sukabumi.test" for k in "abc"}
BOT = "@sobat:sukabumi.test"
WARGA, OTHER = "@warga:sukabumi.test", "@lain:sukabumi.test"
SUPERVISOR, OTHER_SUPERVISOR = "@p1:sukabumi.test", "@p2:sukabumi.test"
DM, OTHER_DM = "!dm:sukabumi.test", "!dm2:sukabumi.test"
DUTY, CURHAT = "!duty:sukabumi.test", "!curhat:sukabumi.test"
SUPERVISORS = "!pengawas:sukabumi.test"
# Server time of the first message: 2100-01-01, so that it is always later than
# the store's own clock (a message seconds after the greeting is not taken as one
# written before it was read).
START_MS = 4_102_444_800_000
# Fifty messages in ten seconds.
STEP_MS = 200

_event_ids = itertools.count(1)


def text(sender: str, body: str, sent_ms: int, msgtype: str = "m.text") -> Event:
    return Event.parse_event(
        {
            "type": "m.room.message",
            "event_id": f"$e{next(_event_ids)}",
            "sender": sender,
            "origin_server_ts": sent_ms,
            "content": {"msgtype": msgtype, "body": body},
        }
    )


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Handlers]:
    """Handlers of a bot with two warga mid-intake, a duty room and the supervisors'."""
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(IDS))
    store = await Store.open(tmp_path / "sobat.db")
    rt = Runtime(
        config=SimpleNamespace(  # type: ignore[arg-type]
            bot=SimpleNamespace(user_id=BOT),
            supervisors=(SUPERVISOR, OTHER_SUPERVISOR),
        ),
        policy=load_policy(path),
        catalog=Catalog("id"),
        store=store,
        matrix=SimpleNamespace(client=SimpleNamespace(rooms={})),  # type: ignore[arg-type]
    )
    async with store.tx() as tx:
        await tx.add_direct_chat(DM, WARGA)
        await tx.update_direct_chat(DM, step=intake.CATEGORY)
        await tx.add_direct_chat(OTHER_DM, OTHER)
        await tx.update_direct_chat(OTHER_DM, step=intake.CONSENT)
        for purpose, room_id in (
            (duty_purpose(IDS["a"]), DUTY),
            (SUPERVISORS_PURPOSE, SUPERVISORS),
        ):
            await tx.want_room(purpose, f"t-{purpose}")
            await tx.set_room_id(purpose, room_id)
    yield Handlers(rt)
    await store.close()


async def said(h: Handlers, room_id: str) -> list[str]:
    """The notices queued for ``room_id``."""
    async with h.rt.store.tx() as tx:
        return [i.content["body"] for i in await tx.outbox() if i.room_id == room_id]


async def test_fifty_requests_get_one_curhat_and_two_answers(h: Handlers) -> None:
    for i in range(50):
        await h.on_event(DM, text(WARGA, "ekonomi", START_MS + i * STEP_MS))
        if i == 25:
            # Someone else, meanwhile, is answered as usual.
            await h.on_event(OTHER_DM, text(OTHER, "ya", START_MS + i * STEP_MS))

    answers = await said(h, DM)
    # The request is taken, the first repeat is told it is waiting; then silence,
    # and no warning: the repeats drew no new answer.
    assert len(answers) == 2, answers
    assert answers[0].startswith("Terima kasih. Permintaan curhat Anda")
    assert answers[1].startswith("Curhat #") and "masih menunggu" in answers[1]
    async with h.rt.store.tx() as tx:
        assert len(await tx.all_cases(0)) == 1
    other = await said(h, OTHER_DM)
    assert len(other) == 1 and "Tentang apa" in other[0], other


async def test_the_same_words_in_a_row_answering_different_questions(
    h: Handlers,
) -> None:
    # "1" agrees, "1" picks the first category (keluarga), "1" the first type.
    for i in range(3):
        await h.on_event(OTHER_DM, text(OTHER, "1", START_MS + i * STEP_MS))

    answers = await said(h, OTHER_DM)
    assert len(answers) == 3, answers
    assert "Tentang apa" in answers[0]
    assert answers[1] == h.intake.ask_type(h.rt.policy.categories[0])
    assert answers[2].startswith("Terima kasih. Permintaan curhat Anda")


async def test_a_request_cancelled_and_started_again_is_greeted_again(
    h: Handlers,
) -> None:
    greeting = h.intake.greeting().texts
    for i, body in enumerate(("ya", "ekonomi", "batal", "halo", "ya")):
        await h.on_event(OTHER_DM, text(OTHER, body, START_MS + i * STEP_MS))

    answers = await said(h, OTHER_DM)
    assert len(answers) == 4 + len(greeting), answers
    question, received, cancelled, *again, question_again = answers
    assert "Tentang apa" in question and question_again == question
    assert received.startswith("Terima kasih. Permintaan curhat Anda")
    assert "dibatalkan" in cancelled
    assert again == greeting


async def test_a_status_flood_gets_one_answer_and_a_minute_later_another(
    h: Handlers,
) -> None:
    for i in range(50):
        await h.on_event(DUTY, text(IDS["a"], "!status", START_MS + i * STEP_MS))
    answers = await said(h, DUTY)
    assert len(answers) == 1 and answers[0].startswith("Status Anda"), answers

    await h.on_event(DUTY, text(IDS["a"], "!status", START_MS + 70_000))

    assert len(await said(h, DUTY)) == 2


async def test_new_answers_past_the_limit_get_one_warning_and_others_are_served(
    h: Handlers,
) -> None:
    # A script asks about a different code each time: each answer is new. Someone
    # in the room who is no supervisor does the same, and draws nothing at all.
    for i in range(15):
        command = f"!pindah X{i:03} keluarga"
        await h.on_event(SUPERVISORS, text(OTHER, command, START_MS + i))
        await h.on_event(SUPERVISORS, text(SUPERVISOR, command, START_MS + i))
    await h.on_event(SUPERVISORS, text(OTHER_SUPERVISOR, "!antrean", START_MS + 20))

    answers = await said(h, SUPERVISORS)
    assert answers[:10] == [
        h.rt.text("supervise.move_not_waiting", code=f"X{i:03}") for i in range(10)
    ]
    assert answers[10] == h.rt.text("flood.slow_down")
    assert answers[11:] == [h.rt.text("supervise.queue_empty")]


async def test_commands_flooded_in_a_curhat_room_get_one_answer(h: Handlers) -> None:
    async with h.rt.store.tx() as tx:
        case = await tx.add_case(
            code="K1X9",
            warga=WARGA,
            dm_room=DM,
            category="ekonomi",
            pref_type=None,
            pref_gender=None,
        )
        await tx.want_room(case_purpose(case.id), "t-case")
        await tx.set_room_id(case_purpose(case.id), CURHAT)
        await tx.update_case(case.id, status="active", counsellor=IDS["a"])

    for i in range(30):
        sent_ms = START_MS + i * STEP_MS
        await h.on_event(CURHAT, text(WARGA, "!alihkan keluarga", sent_ms))
        await h.on_event(CURHAT, text(IDS["a"], "!alihkan entah", sent_ms + 1))
        await h.on_event(CURHAT, text(OTHER, "!selesai", sent_ms + 2))

    in_room = await said(h, CURHAT)
    who = h.rt.text("staff.role_counsellor")
    assert in_room == [h.rt.text("staff.refused", command="alihkan", who=who)]
    in_duty = await said(h, DUTY)
    assert len(in_duty) == 1 and "#K1X9" in in_duty[0], in_duty
    async with h.rt.store.tx() as tx:
        after = await tx.case(case.id)
    assert after is not None and after.status == "active"


@pytest.mark.parametrize(
    ("room_id", "sender", "msgtype"),
    [
        pytest.param(DUTY, IDS["a"], "m.notice", id="notice-in-duty-room"),
        pytest.param(SUPERVISORS, SUPERVISOR, "m.notice", id="notice-to-supervisors"),
        pytest.param(DM, WARGA, "m.notice", id="notice-in-direct-chat"),
        pytest.param(DUTY, BOT, "m.text", id="the-bot-itself-in-duty-room"),
        pytest.param(SUPERVISORS, BOT, "m.text", id="the-bot-itself-to-supervisors"),
    ],
)
async def test_notices_and_the_bots_own_messages_are_no_commands(
    h: Handlers, room_id: str, sender: str, msgtype: str
) -> None:
    for i, body in enumerate(("!status", "!antrean", "!siap", "ekonomi")):
        await h.on_event(room_id, text(sender, body, START_MS + i, msgtype=msgtype))

    assert await said(h, room_id) == []
    async with h.rt.store.tx() as tx:
        assert await tx.availability() == {}
        assert await tx.all_cases(0) == []


# -- the whole bot on Synapse ----------------------------------------------------------


@pytest.fixture
async def world(synapse: DevServer, tmp_path: Path) -> AsyncIterator[BotWorld]:
    world = await make_world(synapse, tmp_path)
    yield world
    await world.close()


@pytest.mark.integration
async def test_fifty_requests_in_seconds_make_one_curhat(world: BotWorld) -> None:
    await world.start_bot()
    warga = world.warga
    dm = await warga.start_direct_chat(world.stage.bot.user_id)
    await warga.wait_for_text("setuju", room_id=dm, timeout=60)
    await warga.send_text(dm, "ya")
    await warga.wait_for_text("Tentang apa", room_id=dm)
    before = len(warga.received)

    sent = [await warga.send_text(dm, "ekonomi") for _ in range(50)]
    await warga.wait_for_text("masih menunggu", room_id=dm, timeout=30)

    # The counsellors are not held up by it.
    counsellor = next(iter(world.counsellors.values()))
    offer = await counsellor.wait_for_text("Tawaran curhat baru: #", timeout=30)
    await counsellor.send_text(offer.room_id, "!bantuan")
    await counsellor.wait_for_text("Perintah", room_id=offer.room_id, timeout=30)

    await world.stop_bot()
    # Stopped: whatever the bot queued has been sent or never will be.
    await asyncio.sleep(2)
    bot = world.stage.bot.user_id
    answers = [
        e.body or ""
        for e in warga.received[before:]
        if e.room_id == dm and e.sender == bot and e.msgtype == "m.notice"
    ]
    # The request taken, the first repeat told it waits, and nothing more: two
    # messages when the fifty fit in ten seconds, as they do unless this machine
    # is slow enough to stretch them (then one more "waiting" per window).
    times = await server_times(warga, dm, sent)
    assert len(answers) == 1 + windows(times[1:]), (answers, times)
    assert "sudah kami terima" in answers[0], answers
    assert all("masih menunggu" in body for body in answers[1:]), answers
    store = await Store.open(world.stage.state_dir / "bot-data" / "sobat.db")
    try:
        async with store.tx() as tx:
            cases = await tx.all_cases(0)
    finally:
        await store.close()
    assert len(cases) == 1
