"""A whole curhat on a real Synapse with real E2EE clients, and a restart in the middle.

The warga, the three counsellors and the supervisor are nio clients with their own
devices and keys; the bot is the real service started from a config file. Nothing is
mocked: what the test sees is what Element users would see.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nio import JoinError, RoomInviteError, RoomPutStateError

from sobat_matrix import logsetup
from sobat_matrix.devserver import DevServer
from sobat_matrix.store import Store

from .botkit import CODE, BotWorld, LogCapture, first_offer, make_world

pytestmark = pytest.mark.integration

BOT_LOGGERS = ("sobat_matrix", "nio", "peewee", "aiosqlite")
MATRIX_ID = re.compile(r"[@!#$][^\s:]+:[A-Za-z0-9.-]+")
BOT_EXCLUDED = ("sobat_matrix.devtools", "sobat_matrix.devserver")


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
    world = await make_world(synapse, tmp_path)
    yield world
    await world.close()


async def intake(world: BotWorld, answers: list[str]) -> tuple[str, str]:
    """Open a direct chat with the bot and answer the intake; (room, case code)."""
    warga = world.warga
    dm = await warga.start_direct_chat(world.stage.bot.user_id)
    await warga.wait_for_text("selamat datang", room_id=dm, timeout=60)
    for answer in answers:
        await warga.send_text(dm, answer)
    received = await warga.wait_for_text("antrean nomor", room_id=dm, timeout=30)
    match = CODE.search(received.body)
    assert match, received.body
    return dm, match.group(1)


def state_of(state: list[dict], event_type: str, key: str = "") -> dict:
    for event in state:
        if event["type"] == event_type and event.get("state_key", "") == key:
            return event["content"]
    raise AssertionError(f"no {event_type} in room state")


async def wait_members_gone(
    server: DevServer, token: str, room_id: str, timeout_s: float = 30
) -> list[dict]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        state = await server.room_state(token, room_id)
        joined = [
            e
            for e in state
            if e["type"] == "m.room.member"
            and e["content"].get("membership") in ("join", "invite")
        ]
        if not joined:
            return state
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still members: {[e['state_key'] for e in joined]}")
        await asyncio.sleep(0.5)


async def test_whole_curhat_encrypted_end_to_end(
    synapse: DevServer, world: BotWorld, capture: LogCapture
) -> None:
    await world.start_bot()
    bot = world.stage.bot.user_id
    warga = world.warga
    a, b, c = (world.counsellors[k] for k in ("a", "b", "c"))
    supervisor = world.supervisor
    admin = world.stage.admin_token

    # Consent (after one wrong answer), category by word, preference by number.
    dm = await warga.start_direct_chat(bot)
    greeting = await warga.wait_for_text("selamat datang", room_id=dm, timeout=60)
    assert greeting.was_encrypted and greeting.msgtype == "m.notice"
    await warga.wait_for_text("setuju", room_id=dm)
    # A first message that crossed the greeting gets no second consent question.
    await warga.send_text(dm, "mungkin nanti")
    await warga.send_text(dm, "Ya")
    await warga.wait_for_text("Tentang apa", room_id=dm)
    assert not [e for e in warga.received if "mohon jawab dulu" in (e.body or "")]
    await warga.send_text(dm, "keuangan")
    await warga.wait_for_text("tidak ada dalam pilihan", room_id=dm)
    await warga.send_text(dm, "keluarga")
    menu = await warga.wait_for_text("konselor yang mana", room_id=dm)
    assert "1. Psikolog" in menu.body and "3. Siapa saja" in menu.body
    await warga.send_text(dm, "3")
    received = await warga.wait_for_text("antrean nomor 1", room_id=dm)
    code = CODE.search(received.body).group(1)  # type: ignore[union-attr]

    # First offer: counsellor A (least loaded, first listed) declines.
    offer_a = await a.wait_for_text(f"#{code}", timeout=30)
    assert "Keluarga" in offer_a.body and warga.user_id not in offer_a.body
    await a.send_text(offer_a.room_id, "!tolak")
    await a.wait_for_text("diteruskan", room_id=offer_a.room_id)

    # Second offer: counsellor B does not answer; after 3 s it moves on.
    offer_b = await b.wait_for_text(f"#{code}", timeout=30)
    await b.wait_for_text("kedaluwarsa", room_id=offer_b.room_id, timeout=30)

    # Next step of the route: counsellor C accepts by reacting.
    offer_c = await c.wait_for_text(f"#{code}", timeout=30)
    await c.react(offer_c.room_id, offer_c.event_id, "✅")
    await c.wait_for_text("menerima", room_id=offer_c.room_id)

    start_c = await c.wait_for_text("sudah hadir", timeout=60)
    room = start_c.room_id
    start_w = await warga.wait_for_text("sudah hadir", room_id=room, timeout=60)
    assert start_c.was_encrypted and start_w.was_encrypted
    assert "Pak Cecep" in start_w.body

    # They talk; each side decrypts the other.
    marker = f"RAHASIA{secrets.token_hex(4)}"
    await warga.send_text(room, f"{marker} ini cerita saya")
    got = await c.wait_for_text(marker, room_id=room)
    assert got.was_encrypted and got.sender == warga.user_id
    await c.send_text(room, "Terima kasih sudah bercerita, saya mendengarkan.")
    got = await warga.wait_for_text("saya mendengarkan", room_id=room)
    assert got.was_encrypted and got.sender == c.user_id

    # On the wire, every message in the room is encrypted.
    raw = await synapse.raw_messages(c.access_token, room)
    types = {e["type"] for e in raw}
    assert "m.room.message" not in types
    encrypted_senders = {e["sender"] for e in raw if e["type"] == "m.room.encrypted"}
    assert {warga.user_id, c.user_id, bot} <= encrypted_senders

    # The room's state.
    state = await synapse.room_state(admin, room)
    assert state_of(state, "m.room.encryption")["algorithm"] == "m.megolm.v1.aes-sha2"
    assert state_of(state, "m.room.join_rules")["join_rule"] == "invite"
    assert state_of(state, "m.room.guest_access")["guest_access"] == "forbidden"
    assert (
        state_of(state, "m.room.history_visibility")["history_visibility"] == "joined"
    )
    assert state_of(state, "m.room.create")["m.federate"] is False
    assert state_of(state, "m.room.name")["name"] == f"Curhat #{code}"
    assert not any(e["type"] == "m.room.topic" for e in state)
    power = state_of(state, "m.room.power_levels")
    assert power["invite"] == power["kick"] == power["state_default"] == 100
    assert power["events_default"] == 0
    assert all(level < 100 for user, level in power["users"].items() if user != bot)

    # Neither of them can change the room or bring anyone else into it.
    renamed = await warga.client.room_put_state(room, "m.room.name", {"name": "x"})
    assert isinstance(renamed, RoomPutStateError)
    opened = await c.client.room_put_state(
        room, "m.room.join_rules", {"join_rule": "public"}
    )
    assert isinstance(opened, RoomPutStateError)
    assert isinstance(await c.client.room_invite(room, a.user_id), RoomInviteError)

    # Neither the counsellor who declined nor the one who timed out ever was a member.
    ever = {e["state_key"] for e in state if e["type"] == "m.room.member"}
    assert a.user_id not in ever and b.user_id not in ever
    assert {warga.user_id, c.user_id, bot} <= ever

    # The warga ends it; the room is closed for good; the rating is asked privately.
    await warga.send_text(room, "!selesai")
    await warga.wait_for_text("diakhiri oleh warga", room_id=room, timeout=30)
    await warga.wait_for_text("Seberapa membantu", room_id=dm, timeout=30)
    await wait_members_gone(synapse, admin, room)
    assert isinstance(await warga.client.join(room), JoinError)
    await c.wait_for_text(f"#{code} sudah selesai", room_id=offer_c.room_id)
    await warga.send_text(dm, "lima")
    await warga.wait_for_text("Terima kasih atas penilaian", room_id=dm)

    # Figures for supervisors: no identities, small numbers hidden.
    welcome = await supervisor.wait_for_text("ruang pengawas", timeout=60)
    await supervisor.send_text(welcome.room_id, "!statistik")
    report = await supervisor.wait_for_text("<5", room_id=welcome.room_id, timeout=30)
    assert report.was_encrypted
    for forbidden in ("@", "!", code, marker, "Cecep"):
        assert forbidden not in report.body
    in_room = [
        e.body or "" for e in supervisor.received if e.room_id == welcome.room_id
    ]
    assert len(in_room) >= 2
    for body in in_room:
        assert not MATRIX_ID.search(body), body
        assert code not in body and marker not in body

    # Nothing logged the message text, and the bot never logged the warga's ID.
    assert marker not in capture.text()
    bot_lines = [
        line
        for line in capture.lines
        if line.startswith(BOT_LOGGERS) and not line.startswith(BOT_EXCLUDED)
    ]
    assert bot_lines, "the capture saw no bot log line at all"
    assert not [line for line in bot_lines if warga.user_id in line]


async def device_keys(world: BotWorld) -> tuple[str, dict[str, str], dict[str, str]]:
    """The running bot's device ID, its identity keys, and those the server serves."""
    service = world.service
    assert service is not None and service.rt is not None
    matrix = service.rt.matrix
    olm = matrix.client.olm
    assert olm is not None
    status, data = await world.warga._raw(
        "POST",
        "/_matrix/client/v3/keys/query",
        {"device_keys": {matrix.user_id: [matrix.device_id]}},
    )
    assert status == 200, data
    served = data["device_keys"][matrix.user_id][matrix.device_id]["keys"]
    return matrix.device_id, dict(olm.account.identity_keys), served


def mount_afresh(data_dir: Path) -> None:
    """Put the data directory back from a copy, as a re-created container would."""
    copy = data_dir.with_name(data_dir.name + ".copy")
    shutil.copytree(data_dir, copy)
    shutil.rmtree(data_dir)
    copy.rename(data_dir)


async def test_restart_loses_nothing_and_duplicates_nothing(
    synapse: DevServer, world: BotWorld
) -> None:
    """Also: the same device and keys after each restart, never a new device."""
    await world.start_bot()
    first = await device_keys(world)
    warga = world.warga
    counsellors = world.counsellors

    # The warga's last intake answer arrives while the bot is down.
    dm = await warga.start_direct_chat(world.stage.bot.user_id)
    await warga.wait_for_text("selamat datang", room_id=dm, timeout=60)
    await warga.send_text(dm, "1")
    await warga.wait_for_text("Tentang apa", room_id=dm)
    await world.stop_bot()
    await warga.send_text(dm, "2")  # ekonomi: no preference asked
    await world.start_bot()
    # Sent while it was down, encrypted for its device: read after the restart.
    received = await warga.wait_for_text("antrean nomor", room_id=dm, timeout=60)
    assert await device_keys(world) == first
    code = CODE.search(received.body).group(1)  # type: ignore[union-attr]

    offer = await first_offer(counsellors.values(), code)
    counsellor = next(x for x in counsellors.values() if x.user_id == offer[0].user_id)
    await counsellor.send_text(offer[1].room_id, f"!terima {code}")
    start = await warga.wait_for_text("sudah hadir", timeout=60)
    room = start.room_id

    # Restart in the middle of the curhat; they go on talking meanwhile.
    await world.stop_bot()
    await warga.send_text(room, "cerita saat bot mati")
    await counsellor.wait_for_text("cerita saat bot mati", room_id=room)
    await counsellor.send_text(room, "!selesai")
    mount_afresh(world.stage.state_dir / "bot-data")
    await world.start_bot()

    await warga.wait_for_text("diakhiri oleh konselor", room_id=room, timeout=60)
    ask = await warga.wait_for_text("Seberapa membantu", room_id=dm, timeout=60)
    # Sent after the restart, encrypted, with a room key shared before it.
    await warga.react(dm, ask.event_id, "4️⃣", encrypted=True)
    await warga.wait_for_text("Terima kasih atas penilaian", room_id=dm)
    assert await device_keys(world) == first
    await wait_members_gone(synapse, world.stage.admin_token, room)
    await counsellor.wait_for_text(f"#{code} sudah selesai", room_id=offer[1].room_id)

    # Exactly one case and one room; the greeting and the receipt were sent once.
    await world.stop_bot()
    store = await Store.open(world.stage.state_dir / "bot-data" / "sobat.db")
    try:
        async with store.tx() as tx:
            cases = await tx.all_cases(0)
            case_rooms = await tx._all(
                "SELECT room_id FROM owned_rooms WHERE purpose LIKE 'case:%'"
            )
            outbox = await tx.outbox()
    finally:
        await store.close()
    assert [(x.code, x.status, x.rating) for x in cases] == [(code, "closed", 4)]
    assert [r["room_id"] for r in case_rooms] == [room]
    assert outbox == []
    greetings = [e for e in warga.received if "selamat datang" in (e.body or "")]
    receipts = [e for e in warga.received if "antrean nomor" in (e.body or "")]
    assert len(greetings) == 1 and len(receipts) == 1


@pytest.fixture
async def invite_world(synapse: DevServer, tmp_path: Path) -> AsyncIterator[BotWorld]:
    """A bot that invites people instead of joining them through the admin API."""
    world = await make_world(
        synapse,
        tmp_path,
        config_overrides={"access": {"allowed_servers": [], "admin_join": "no"}},
    )
    yield world
    await world.close()


async def test_cancel_then_invited_curhat(
    synapse: DevServer, invite_world: BotWorld
) -> None:
    world = invite_world
    await world.start_bot()
    warga = world.warga

    # A request, then "batal" before anyone accepted: the offer is withdrawn.
    dm, first_code = await intake(world, ["1", "2"])
    holder, offer = await first_offer(world.counsellors.values(), first_code)
    await warga.send_text(dm, "Batal")
    await warga.wait_for_text("sudah dibatalkan", room_id=dm)
    await holder.wait_for_text(f"#{first_code} dibatalkan", room_id=offer.room_id)

    # Any message starts again; this time a counsellor accepts.
    await warga.send_text(dm, "halo")
    await warga.wait_for_text("selamat datang", room_id=dm)
    await warga.send_text(dm, "setuju")
    await warga.wait_for_text("Tentang apa", room_id=dm)
    await warga.send_text(dm, "Ekonomi!")
    received = await warga.wait_for_text("antrean nomor 1", room_id=dm)
    code = CODE.search(received.body).group(1)  # type: ignore[union-attr]
    assert code != first_code

    counsellor, offer = await first_offer(world.counsellors.values(), code)
    await counsellor.send_text(offer.room_id, "!terima")
    await counsellor.wait_for_text("terima undangan", room_id=offer.room_id)
    await warga.wait_for_text("terima undangan", room_id=dm, timeout=60)
    start = await warga.wait_for_text("sudah hadir", timeout=60)
    room = start.room_id

    # Both came in by invitation (the bot is not a server admin here).
    state = await synapse.room_state(world.stage.admin_token, room)
    assert state_of(state, "m.room.member", warga.user_id)["membership"] == "join"

    await counsellor.send_text(room, "!selesai")
    await warga.wait_for_text("Seberapa membantu", room_id=dm, timeout=60)
    await warga.send_text(dm, "lewati")
    await warga.wait_for_text("Kapan pun", room_id=dm)
    await wait_members_gone(synapse, world.stage.admin_token, room)

    await world.stop_bot()
    store = await Store.open(world.stage.state_dir / "bot-data" / "sobat.db")
    try:
        async with store.tx() as tx:
            statuses = {c.code: (c.status, c.rating) for c in await tx.all_cases(0)}
    finally:
        await store.close()
    assert statuses == {first_code: ("cancelled", None), code: ("closed", None)}


async def test_bot_serves_only_private_direct_chats(
    synapse: DevServer, world: BotWorld
) -> None:
    await world.start_bot()
    bot = world.stage.bot.user_id
    warga, other = world.warga, world.supervisor
    admin = world.stage.admin_token

    # A "direct" chat with a third person in it: the bot says why and leaves.
    resp = await warga.client.room_create(
        is_direct=True,
        invite=[bot, other.user_id],
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ],
    )
    group = resp.room_id  # type: ignore[union-attr]
    await warga.wait_for_text("obrolan pribadi berdua", room_id=group, timeout=60)
    await _wait_membership(synapse, admin, group, bot, "leave")

    # An invite that is not a direct chat is declined without a word.
    resp = await warga.client.room_create(invite=[bot])
    plain_room = resp.room_id  # type: ignore[union-attr]
    await _wait_membership(synapse, admin, plain_room, bot, "leave")
    said = [
        e
        for e in warga.received
        if e.room_id == plain_room and e.type in ("m.room.message", "m.room.encrypted")
    ]
    assert said == []


async def _wait_membership(
    server: DevServer, token: str, room_id: str, user_id: str, membership: str
) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        state = await server.room_state(token, room_id)
        member = [
            e
            for e in state
            if e["type"] == "m.room.member" and e["state_key"] == user_id
        ]
        if member and member[0]["content"]["membership"] == membership:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"{user_id} did not reach {membership} in {room_id}")
