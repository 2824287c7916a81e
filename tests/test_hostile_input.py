"""Malformed, odd and oversized events change nothing: no crash, no echo, no leak.

One bot, three kinds of room (a warga's direct chat during intake, a counsellor's
duty room, an open curhat room), and a table of payloads a buggy or hostile client
could send: wrong-typed or missing fields, unknown message types, 50 KB of text,
control and zero-width characters, reactions to events that do not exist, edits and
replies to the bot's own messages, a redaction. Each payload carries a marker; the
bot must keep answering the next ordinary message in each room, never send the
marker back, never log it, and never fail in a handler.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sobat_matrix import logsetup
from sobat_matrix.devserver import DevServer
from sobat_matrix.devtools import Actor
from sobat_matrix.devtools.actor import ActorError

from .botkit import CODE, BotWorld, LogCapture, first_offer, make_world

pytestmark = pytest.mark.integration

# The flood guard gives a sender ten different answers in ten seconds; a payload
# every 1.2 s stays under it, so every reply the bot gives is a reply to a payload
# (a reply it gave in the room less than ten seconds before is not given again).
PACE_S = 1.2
LONG_BODY_CHARS = 50_000
# Synapse refuses events over 64 KiB; encrypted and base64-encoded, 50 KB of text is
# over it, so Element could not send it either.
LONGEST_ENCRYPTED_CHARS = 45_000
# Replies the bot may give to something it cannot use: fixed texts only.
ALLOWED = {
    "direct chat": (
        "Maaf, di sini bot hanya bisa membaca pesan teks",
        "Maaf, jawaban itu tidak ada dalam pilihan",
        "Perintah !",
    ),
    "duty room": ("Perintah:", "Status Anda", "Tidak ada tawaran", "Perintah !"),
    "curhat room": ("Perintah !",),
}
MAX_REPLY_CHARS = 1_000
# The answers to the ordinary messages sent after the payloads.
FINAL_ANSWERS = ("Terima kasih. Permintaan", "Curhat ini diakhiri", "Curhat #")


@dataclass(frozen=True)
class Payload:
    """One unusual event, its content made from a marker and event IDs to point at.

    The IDs are ``bot`` (a message of the bot in the room), ``own`` (the sender's
    first payload in the room) and ``elsewhere`` (an event of another room).
    """

    name: str
    event_type: str
    content: Callable[[str, dict[str, str]], dict[str, Any]]
    encrypted: bool = True
    # Synapse itself turns these away (with this error); the bot never sees them.
    server_refuses: str | None = None
    # Redact the first payload sent in the room instead of sending an event.
    redact_first: bool = False


def _text(body: Any, **extra: Any) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, **extra}


def _annotation(event_id: str, key: Any, **extra: Any) -> dict[str, Any]:
    relation = {"rel_type": "m.annotation", "event_id": event_id, "key": key}
    return {"m.relates_to": relation, **extra}


PAYLOADS = [
    Payload("no msgtype", "m.room.message", lambda m, ids: {"body": m}),
    Payload("no body", "m.room.message", lambda m, ids: {"msgtype": "m.text", "x": m}),
    Payload("body is a number", "m.room.message", lambda m, ids: _text(12345, x=m)),
    Payload("body is a list", "m.room.message", lambda m, ids: _text([m, "!status"])),
    Payload("body is an object", "m.room.message", lambda m, ids: _text({"t": m})),
    Payload("body is null", "m.room.message", lambda m, ids: _text(None, x=m)),
    Payload(
        "msgtype is a number",
        "m.room.message",
        lambda m, ids: {"msgtype": 7, "body": m},
    ),
    Payload(
        "custom msgtype",
        "m.room.message",
        lambda m, ids: {"msgtype": "m.custom", "body": m},
    ),
    Payload(
        "location",
        "m.room.message",
        lambda m, ids: {
            "msgtype": "m.location",
            "body": m,
            "geo_uri": "geo:-6.9,106.9",
        },
    ),
    Payload(
        "image without a file",
        "m.room.message",
        lambda m, ids: {"msgtype": "m.image", "body": m},
    ),
    Payload(
        "emote", "m.room.message", lambda m, ids: {"msgtype": "m.emote", "body": m}
    ),
    Payload(
        "notice from a person",
        "m.room.message",
        lambda m, ids: {"msgtype": "m.notice", "body": f"!status {m}"},
    ),
    Payload(
        "50 KB of text",
        "m.room.message",
        lambda m, ids: _text(m + "a" * LONG_BODY_CHARS),
        server_refuses="M_TOO_LARGE",
    ),
    Payload(
        "the longest encrypted text the server takes",
        "m.room.message",
        lambda m, ids: _text(m + "a" * LONGEST_ENCRYPTED_CHARS),
    ),
    Payload(
        "50 KB of text in clear",
        "m.room.message",
        lambda m, ids: _text(m + "a" * LONG_BODY_CHARS),
        encrypted=False,
    ),
    Payload(
        "control and zero-width characters",
        "m.room.message",
        lambda m, ids: _text(f"\x00\x01\x1b[31m\u200b\u200e\u202e\ufeff{m}\r\n\t"),
    ),
    Payload(
        "zero-width inside a command",
        "m.room.message",
        lambda m, ids: _text(f"!sta\u200btus {m}"),
    ),
    Payload("unknown command", "m.room.message", lambda m, ids: _text(f"!{m}")),
    Payload(
        "html formatted body",
        "m.room.message",
        lambda m, ids: _text(
            "x",
            format="org.matrix.custom.html",
            formatted_body=f"<script>{m}</script>",
        ),
    ),
    Payload(
        "edit of a bot message",
        "m.room.message",
        lambda m, ids: _text(
            f"* {m}",
            **{
                "m.new_content": _text(m),
                "m.relates_to": {"rel_type": "m.replace", "event_id": ids["bot"]},
            },
        ),
    ),
    Payload(
        "edit with a broken new content",
        "m.room.message",
        lambda m, ids: _text(
            f"* {m}",
            **{
                "m.new_content": [m],
                "m.relates_to": {"rel_type": "m.replace", "event_id": ids["bot"]},
            },
        ),
    ),
    Payload(
        "reply to a bot message",
        "m.room.message",
        lambda m, ids: _text(
            f"> <@sobat> ...\n\n{m}",
            **{"m.relates_to": {"m.in_reply_to": {"event_id": ids["bot"]}}},
        ),
    ),
    Payload(
        "thread on a bot message",
        "m.room.message",
        lambda m, ids: _text(
            m, **{"m.relates_to": {"rel_type": "m.thread", "event_id": ids["bot"]}}
        ),
    ),
    Payload(
        "reaction to an event that does not exist",
        "m.reaction",
        lambda m, ids: _annotation(f"${'A' * 43}", "✅", x=m),
        encrypted=False,
        server_refuses="unknown event",
    ),
    Payload(
        "accepting reaction to the sender's own message",
        "m.reaction",
        lambda m, ids: _annotation(ids["own"], "✅", x=m),
        encrypted=False,
    ),
    Payload(
        "accepting reaction to an event of another room",
        "m.reaction",
        lambda m, ids: _annotation(ids["elsewhere"], "✅", x=m),
        encrypted=False,
        server_refuses="Relations must be in the same room",
    ),
    Payload(
        "encrypted accepting reaction to a bot message that is no offer",
        "m.reaction",
        lambda m, ids: _annotation(ids["bot"], "✅", x=m),
    ),
    Payload(
        "reaction whose key is the marker",
        "m.reaction",
        lambda m, ids: {
            "m.relates_to": {
                "rel_type": "m.annotation",
                "event_id": ids["bot"],
                "key": m,
            }
        },
        encrypted=False,
    ),
    Payload(
        "encrypted reaction without a key",
        "m.reaction",
        lambda m, ids: {
            "m.relates_to": {"rel_type": "m.annotation", "event_id": ids["bot"]},
            "x": m,
        },
        server_refuses="Missing aggregation key",
    ),
    Payload(
        "reaction with a number as key",
        "m.reaction",
        lambda m, ids: {
            "m.relates_to": {
                "rel_type": "m.annotation",
                "event_id": ids["bot"],
                "key": 1,
            },
            "x": m,
        },
        encrypted=False,
        server_refuses="Missing aggregation key",
    ),
    Payload(
        "unknown event type", "org.example.odd", lambda m, ids: {"body": f"!status {m}"}
    ),
    Payload("redaction of an own message", "", lambda m, ids: {}, redact_first=True),
]


def _marker() -> str:
    return f"HOSTILE{secrets.token_hex(5)}"


@pytest.fixture
async def capture() -> AsyncIterator[LogCapture]:
    """All log records at DEBUG, with the bot's logging pins applied."""
    handler = LogCapture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logsetup.pin_noisy_loggers()
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.fixture
async def world(synapse: DevServer, tmp_path: Path) -> AsyncIterator[BotWorld]:
    world = await make_world(synapse, tmp_path, warga_count=2)
    yield world
    await world.close()


async def _send_all(
    actor: Actor, room_id: str, ids: dict[str, str], markers: list[str]
) -> list[str]:
    """Send every payload, paced; return what the server said to each it refused."""
    refused = []
    ids = {**ids, "own": ids["bot"]}
    first_sent: str | None = None
    for payload in PAYLOADS:
        marker = _marker()
        markers.append(marker)
        try:
            if payload.redact_first:
                assert first_sent is not None
                await actor.redact(room_id, first_sent)
            else:
                event_id = await actor.send_event(
                    room_id,
                    payload.event_type,
                    payload.content(marker, ids),
                    encrypted=payload.encrypted,
                )
                if first_sent is None:
                    first_sent = ids["own"] = event_id
        except ActorError as exc:
            refused.append(f"{payload.name}: {exc}")
        else:
            await asyncio.sleep(PACE_S)
    return refused


def _bot_replies(actor: Actor, room_id: str, bot: str, after: int) -> list[str]:
    """The bot's messages in the room since ``after`` (state changes left out)."""
    return [
        e.body or ""
        for e in actor.received[after:]
        if e.room_id == room_id and e.sender == bot and e.type == "m.room.message"
    ]


async def test_odd_events_get_no_echo_no_crash_and_the_next_message_an_answer(
    world: BotWorld, capture: LogCapture
) -> None:
    service = await world.start_bot()
    bot = world.stage.bot.user_id
    warga, other = world.wargas

    # One warga in an open curhat with a counsellor.
    dm = await warga.start_direct_chat(bot)
    await warga.wait_for_text("setuju", room_id=dm, timeout=60)
    await warga.send_text(dm, "ya")
    await warga.wait_for_text("Tentang apa", room_id=dm)
    await warga.send_text(dm, "ekonomi")
    received = await warga.wait_for_text("antrean nomor", room_id=dm)
    code = CODE.search(received.body or "").group(1)  # type: ignore[union-attr]
    counsellor, offer = await first_offer(world.counsellors.values(), code)
    duty = offer.room_id
    await counsellor.send_text(duty, "!terima")
    started = await warga.wait_for_text("sudah hadir", timeout=60)
    curhat = started.room_id
    await counsellor.wait_for_text("sudah hadir", room_id=curhat, timeout=60)

    # Another warga in the middle of the intake: asked for a category.
    dm_other = await other.start_direct_chat(bot)
    await other.wait_for_text("setuju", room_id=dm_other, timeout=60)
    await other.send_text(dm_other, "ya")
    question = await other.wait_for_text("Tentang apa", room_id=dm_other)

    rooms = {
        "direct chat": (other, dm_other, question.event_id),
        "duty room": (counsellor, duty, offer.event_id),
        "curhat room": (warga, curhat, started.event_id),
    }
    before = {name: len(actor.received) for name, (actor, _, _) in rooms.items()}
    markers: list[str] = []
    refused = await asyncio.gather(
        *(
            _send_all(
                actor, room_id, {"bot": ev, "elsewhere": received.event_id}, markers
            )
            for actor, room_id, ev in rooms.values()
        )
    )

    # What Synapse turned away, and nothing else, was not delivered.
    expected = [f"{p.name}: {p.server_refuses}" for p in PAYLOADS if p.server_refuses]
    for answers in refused:
        assert len(answers) == len(expected), answers
        for answer, prefix in zip(answers, expected, strict=True):
            name, _, error = prefix.partition(": ")
            assert answer.startswith(name) and error in answer, answer

    # The next ordinary message in each room is answered as usual.
    await other.send_text(dm_other, "ekonomi")
    await other.wait_for_text("antrean nomor", room_id=dm_other, timeout=30)
    await counsellor.send_text(duty, "!status")
    await counsellor.wait_for_text("Status Anda", room_id=duty, timeout=30)
    await warga.send_text(curhat, "!selesai")
    await warga.wait_for_text("diakhiri oleh warga", room_id=curhat, timeout=30)
    await asyncio.sleep(2)

    for name, (actor, room_id, _) in rooms.items():
        for body in _bot_replies(actor, room_id, bot, before[name]):
            assert len(body) < MAX_REPLY_CHARS, (name, body)
            assert body.startswith(ALLOWED[name] + FINAL_ANSWERS), (name, body)

    # The payloads were read: pictures and odd types got the text-only notice,
    # unusable text the question again.
    in_intake = _bot_replies(other, dm_other, bot, before["direct chat"])
    assert any(body.startswith(ALLOWED["direct chat"][0]) for body in in_intake)
    assert any(body.startswith(ALLOWED["direct chat"][1]) for body in in_intake)

    everything_from_bot = json.dumps(
        [e.source for a in world.actors for e in a.received if e.sender == bot]
    )
    for marker in markers:
        assert marker not in everything_from_bot

    # nio logs the whole content of an event that fails its schema check ("Error
    # validating event: ..." from nio.events.misc); logsetup silences that logger.
    leaking = [line for line in capture.lines if any(m in line for m in markers)]
    assert leaking == []
    failures = service.metrics.registry.get_sample_value("sobat_handler_failures_total")
    assert failures == 0
