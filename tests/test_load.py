"""Load: floods of commands and requests, messages that are no commands, rate limits.

The flood tests run on the session's Synapse with the bot exempt from rate limits,
as an operator runs it. The rate-limit tests start their own Synapse whose limits on
room creation, joins, invites and messages bind the bot, and measure how long twenty
curhats take from the first request to the last room, with and without the bot's
exemption.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sobat_matrix.devserver import DevServer, start_synapse
from sobat_matrix.devtools import Actor
from sobat_matrix.devtools.stage import Stage
from sobat_matrix.service import Service
from sobat_matrix.store import Store

from .botkit import (
    CODE,
    BotWorld,
    make_world,
    policy_text,
    server_times,
    unique,
    windows,
)

pytestmark = pytest.mark.integration

logger = logging.getLogger(__name__)

FLOOD_COUNT = 50
# Fifty in ten seconds: sent on a schedule over eight, so that they usually fall
# within one of the bot's ten-second windows.
FLOOD_SPAN_S = 8.0
# "Promptly", for someone else while a flood runs.
PROMPT_S = 5.0


@pytest.fixture
async def world(synapse: DevServer, tmp_path: Path) -> AsyncIterator[BotWorld]:
    world = await make_world(synapse, tmp_path, warga_count=2)
    yield world
    await world.close()


async def _flood(actor: Actor, room_id: str, text: str) -> list[str]:
    """Send ``text`` FLOOD_COUNT times over FLOOD_SPAN_S; the event IDs."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = []
    for i in range(FLOOD_COUNT):
        await asyncio.sleep(
            max(0.0, start + i * FLOOD_SPAN_S / FLOOD_COUNT - loop.time())
        )
        sent.append(await actor.send_text(room_id, text))
    return sent


async def _answered_within(actor: Actor, room_id: str, text: str, reply: str) -> float:
    start = time.monotonic()
    await actor.send_text(room_id, text)
    await actor.wait_for_text(reply, room_id=room_id, timeout=30)
    return time.monotonic() - start


def _from_bot(actor: Actor, room_id: str, bot: str, after: int = 0) -> list[str]:
    """The bot's notices (not what someone typed on the bot's account)."""
    return [
        e.body or ""
        for e in actor.received[after:]
        if e.room_id == room_id and e.sender == bot and e.msgtype == "m.notice"
    ]


async def _consented(world: BotWorld, warga: Actor) -> str:
    dm = await warga.start_direct_chat(world.stage.bot.user_id)
    await warga.wait_for_text("setuju", room_id=dm, timeout=60)
    await warga.send_text(dm, "ya")
    await warga.wait_for_text("Tentang apa", room_id=dm)
    return dm


async def test_floods_of_status_and_requests_leave_others_served(
    world: BotWorld,
) -> None:
    await world.start_bot()
    bot = world.stage.bot.user_id
    flooder, calm = world.counsellors["a"], world.counsellors["b"]
    duty = (await flooder.wait_for_text("ruang tugas", timeout=60)).room_id
    calm_duty = (await calm.wait_for_text("ruang tugas", timeout=60)).room_id
    # Away, so that no offer changes the flooder's status in the middle: each of
    # its fifty !status then asks for exactly the same answer.
    await flooder.send_text(duty, "!istirahat")
    await flooder.wait_for_text("tercatat sedang istirahat", room_id=duty, timeout=30)
    warga, other = world.wargas
    dm = await _consented(world, warga)
    other_dm = await other.start_direct_chat(bot)
    await other.wait_for_text("setuju", room_id=other_dm, timeout=60)
    before_duty = len(flooder.received)
    before_dm = len(warga.received)

    # A script floods !status in a duty room while a warga sends the request
    # fifty times; another counsellor and another warga go on as usual.
    floods = asyncio.gather(
        _flood(flooder, duty, "!status"), _flood(warga, dm, "ekonomi")
    )
    await asyncio.sleep(FLOOD_SPAN_S / 2)
    calm_s = await _answered_within(calm, calm_duty, "!status", "Status Anda")
    other_s = await _answered_within(other, other_dm, "ya", "Tentang apa")
    status_ids, request_ids = await floods
    await flooder.wait_for_text("Status Anda", room_id=duty, timeout=30)
    await warga.wait_for_text("masih menunggu", room_id=dm, timeout=30)
    # Time for anything more the bot would (wrongly) send to arrive.
    await asyncio.sleep(5)

    assert calm_s < PROMPT_S and other_s < PROMPT_S, (calm_s, other_s)
    # One answer to fifty !status (one per ten seconds of the flood, should this
    # machine have stretched it), and no warning: the repeats drew nothing new.
    in_duty = _from_bot(flooder, duty, bot, before_duty)
    status_times = await server_times(flooder, duty, status_ids)
    assert len(in_duty) == windows(status_times), (in_duty, status_times)
    assert all(body.startswith("Status Anda") for body in in_duty), in_duty
    # The request taken, the first repeat told it waits, and nothing more.
    in_dm = _from_bot(warga, dm, bot, before_dm)
    request_times = await server_times(warga, dm, request_ids)
    assert len(in_dm) == 1 + windows(request_times[1:]), (in_dm, request_times)
    assert "sudah kami terima" in in_dm[0], in_dm
    assert all("masih menunggu" in body for body in in_dm[1:]), in_dm

    # The supervisors see one waiting curhat; the store holds exactly one.
    room = (await world.supervisor.wait_for_text("ruang pengawas", timeout=60)).room_id
    await world.supervisor.send_text(room, "!antrean")
    queue = await world.supervisor.wait_for_text("Antrean:", room_id=room)
    assert "Antrean: 1 curhat menunggu" in (queue.body or "")
    await world.stop_bot()
    store = await Store.open(world.stage.state_dir / "bot-data" / "sobat.db")
    try:
        async with store.tx() as tx:
            cases = await tx.all_cases(0)
    finally:
        await store.close()
    assert [case.warga for case in cases] == [warga.user_id]


async def test_commands_from_the_bot_itself_or_a_stranger_are_ignored(
    world: BotWorld, synapse: DevServer, tmp_path: Path
) -> None:
    await world.start_bot()
    bot = world.stage.bot
    counsellor = world.counsellors["a"]
    duty = (await counsellor.wait_for_text("ruang tugas", timeout=60)).room_id

    # The bot's account on a second device (an operator in Element) types commands.
    bot_device = await Actor.login(
        synapse.url, bot.user_id, bot.password, tmp_path / "bot-device"
    )
    world.actors.append(bot_device)
    before = len(counsellor.received)
    await bot_device.send_text(duty, "!status")
    await bot_device.send_text(duty, "!siap")
    await counsellor.send_text(duty, "!status")
    await counsellor.wait_for_text("Status Anda", room_id=duty)
    await asyncio.sleep(2)
    replies = _from_bot(counsellor, duty, bot.user_id, before)
    # Only the counsellor's own !status was answered, and it still follows the
    # schedule: the bot's !siap changed nothing.
    assert len(replies) == 1 and "mengikuti jadwal" in replies[0], replies

    # An open curhat; another account is brought into its room and types commands.
    warga = world.warga
    dm = await _consented(world, warga)
    await warga.send_text(dm, "ekonomi")
    code = CODE.search((await warga.wait_for_text("antrean nomor")).body or "")
    assert code
    offered = await counsellor.wait_for_text(f"#{code.group(1)}", room_id=duty)
    assert offered
    await counsellor.send_text(duty, "!terima")
    curhat = (await warga.wait_for_text("sudah hadir", timeout=60)).room_id

    password = secrets.token_urlsafe(12)
    stranger_id = await synapse.register_user(unique("botlain"), password)
    stranger = await Actor.login(
        synapse.url, stranger_id, password, tmp_path / "stranger"
    )
    world.actors.append(stranger)
    # Not a member: the server refuses the message itself.
    status, _ = await stranger._raw(
        "PUT",
        f"/_matrix/client/v3/rooms/{curhat}/send/m.room.message/{secrets.token_hex(4)}",
        {"msgtype": "m.text", "body": "!selesai"},
    )
    assert status == 403
    # Made a member by a server admin (the bot's account is one), it is ignored.
    status, answer = await bot_device._raw(
        "POST", f"/_synapse/admin/v1/join/{curhat}", {"user_id": stranger_id}
    )
    assert status == 200, answer
    await stranger.wait_joined(curhat)
    before = len(warga.received)
    for command in ("!selesai", "!alihkan keluarga", "!status"):
        await stranger.send_text(curhat, command)
    await warga.send_text(curhat, "!selesai")
    closing = await warga.wait_for_text("diakhiri oleh", room_id=curhat, timeout=30)
    assert "diakhiri oleh warga" in (closing.body or "")
    first = _from_bot(warga, curhat, bot.user_id, before)
    assert first and first[0] == closing.body, first


# -- rate limits -------------------------------------------------------------------

WARGA_COUNT = 20
# Requests spread over this span ("twenty warga within a minute").
ARRIVAL_SPAN_S = 40.0
ROOMS_TIMEOUT_S = 900.0

# Synapse's own defaults (None) for joins and for invites per room and per issuer.
# Invites per *recipient* are relaxed: Synapse keys that limit on the invitee but
# applies the inviter's exemption, so the bot, invited to every warga's direct chat,
# would let only 5 warga in and then one every 5.5 minutes whatever the bot's own
# exemption (an operator must raise rc_invites.per_user). Room creation: the
# default (burst 10, then one a minute) would make 24 rooms (20 curhats, 3 duty
# rooms, the supervisors' room) take about 14 minutes; one every 5 s after a burst
# of 3 still binds (twenty requests come faster than that). Messages: the default
# (0.2/s) would make the bot's ~120 notices take 10 minutes; one a second after a
# burst of 10 still binds. Logins and registrations stay relaxed: they are the
# test's, not the bot's.
LIMITS: dict[str, Any] = {
    "rc_joins": None,
    "rc_joins_per_room": None,
    "rc_invites": {"per_user": {"per_second": 10_000, "burst_count": 100_000}},
    "rc_room_creation": {"per_second": 0.2, "burst_count": 3},
    "rc_message": {"per_second": 1, "burst_count": 10},
}


@pytest.fixture(scope="module")
async def limited(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[DevServer]:
    """A Synapse whose limits bind the bot unless it is exempt."""
    server = await start_synapse(
        tmp_path_factory.mktemp("synapse-limited"),
        relaxed_ratelimits=True,
        rate_limits=LIMITS,
    )
    yield server
    await server.stop()


async def _one_request(
    warga: Actor, bot: str, delay_s: float, sent: dict[str, float]
) -> tuple[str, int]:
    """Open a chat after ``delay_s``, ask for a curhat; (user, place told)."""
    await asyncio.sleep(delay_s)
    dm = await warga.start_direct_chat(bot)
    await warga.wait_for_text("setuju", room_id=dm, timeout=ROOMS_TIMEOUT_S)
    await warga.send_text(dm, "ya")
    await warga.wait_for_text("Tentang apa", room_id=dm, timeout=ROOMS_TIMEOUT_S)
    sent[warga.user_id] = time.monotonic()
    await warga.send_text(dm, "ekonomi")
    received = await warga.wait_for_text(
        "antrean nomor", room_id=dm, timeout=ROOMS_TIMEOUT_S
    )
    place = (received.body or "").split("antrean nomor ")[1].split()[0]
    return warga.user_id, int(place)


async def _twenty_curhats(
    server: DevServer, tmp_path: Path, *, exempt_bot: bool
) -> dict[str, Any]:
    ids = {k: f"@{unique('kons' + k)}:{server.server_name}" for k in ("a", "b", "c")}
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(policy_text(ids))
    stage = await Stage.prepare(
        server,
        tmp_path / "stage",
        policy_path,
        bot_localpart=unique("sobat"),
        admin_localpart=unique("admin"),
        supervisor_localparts=(unique("pengawas"),),
        warga_localparts=tuple(unique("warga") for _ in range(WARGA_COUNT)),
        exempt_bot=exempt_bot,
    )
    wargas = await asyncio.gather(
        *(
            Actor.login(server.url, a.user_id, a.password, tmp_path / a.user_id)
            for a in stage.warga.values()
        )
    )
    config, policy = stage.load()
    service = Service(config, policy)
    await service.start()
    assert service.rt is not None
    try:
        sent: dict[str, float] = {}
        step_s = ARRIVAL_SPAN_S / WARGA_COUNT
        told = await asyncio.gather(
            *(
                _one_request(w, stage.bot.user_id, i * step_s, sent)
                for i, w in enumerate(wargas)
            )
        )
        ready = await _rooms_ready(service, WARGA_COUNT)
    finally:
        await service.stop()
        for warga in wargas:
            await warga.close()

    return {"sent": sent, "told": dict(told), "ready": ready}


async def _rooms_ready(service: Service, count: int) -> list[Any]:
    """The curhats, once every one of ``count`` has its room, oldest request first."""
    assert service.rt is not None
    deadline = time.monotonic() + ROOMS_TIMEOUT_S
    while True:
        async with service.rt.store.tx() as tx:
            cases = await tx.open_cases()
        if len(cases) == count and all(c.room_ready_at for c in cases):
            return sorted(cases, key=lambda c: c.requested_at)
        assert time.monotonic() < deadline, [c.room_ready_at for c in cases]
        await asyncio.sleep(1)


def _check_and_measure(result: dict[str, Any], mode: str) -> float:
    cases = result["ready"]
    # None dropped: every warga has exactly one curhat, and it has a room.
    assert sorted(c.warga for c in cases) == sorted(result["told"])
    # Honest places: each was told its place in the order the requests came.
    assert [result["told"][c.warga] for c in cases] == list(range(1, WARGA_COUNT + 1))
    first = min(c.requested_at for c in cases)
    last = max(c.room_ready_at for c in cases)
    in_order = [c.room_ready_at for c in cases] == sorted(
        c.room_ready_at for c in cases
    )
    logger.warning(
        "%s: %d curhats, first request to last room %.1f s, rooms in request order: %s",
        mode,
        len(cases),
        last - first,
        in_order,
    )
    # In order, limits or not: a later request never gets its room first.
    assert in_order
    return float(last - first)


@pytest.mark.timeout(1200)
async def test_twenty_requests_all_get_a_room_with_the_bot_under_rate_limits(
    limited: DevServer, tmp_path: Path
) -> None:
    result = await _twenty_curhats(limited, tmp_path, exempt_bot=False)
    _check_and_measure(result, "not exempt")


@pytest.mark.timeout(1200)
async def test_twenty_requests_all_get_a_room_with_the_bot_exempt(
    limited: DevServer, tmp_path: Path
) -> None:
    result = await _twenty_curhats(limited, tmp_path, exempt_bot=True)
    _check_and_measure(result, "exempt")
