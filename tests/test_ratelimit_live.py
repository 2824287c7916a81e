"""A send held by a 429 holds nobody else: the bot goes on syncing and serving.

The bot talks to the test Synapse through a small proxy that forwards everything,
except the sends into one warga's direct chat: those get 429 with a ten-minute
``retry_after_ms``, as a rate limit in front of Synapse (nginx ``limit_req``, or
Synapse's own per-user limit) would answer. nio waits out each 429 inside the call
(at most ``MAX_RETRY_WAIT_S`` each, see tests/test_ratelimit.py), so that send is
held for minutes. Meanwhile another warga opens a chat, goes through intake, and
gets a curhat room with a counsellor in it.

The E2EE chores after each sync (``Matrix.housekeeping``: to-device messages, key
upload, query and claim) are nio calls too, and wait out a 429 the same way; the
second test holds them and checks the sync loop does not wait for them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from sobat_matrix.devserver import DevServer
from sobat_matrix.devtools import Actor
from sobat_matrix.matrix import Matrix
from sobat_matrix.service import Service

from .botkit import CODE, BotWorld, first_offer, make_world

pytestmark = pytest.mark.integration

TEN_MINUTES_MS = 600_000
SEND = re.compile(r"/_matrix/client/v3/rooms/([^/]+)/send/")
JOIN = re.compile(r"/_matrix/client/v3/join/([^/]+)$")
HOP_HEADERS = ("Authorization", "Content-Type")


class LimitingProxy:
    """Forwards the bot's requests to Synapse; refuses sends into chosen rooms.

    ``limit_next_join`` makes the next room the bot joins a limited one, so the
    first notice the bot sends there (its greeting) is already refused.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.limited: set[str] = set()
        self.refused: list[str] = []
        self.refused_again = asyncio.Event()
        self._limit_next_join = False
        self._http: aiohttp.ClientSession | None = None
        self._server: TestServer | None = None

    def limit_next_join(self) -> None:
        self._limit_next_join = True

    async def start(self) -> str:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return str(self._server.make_url("")).rstrip("/")

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
        if self._http is not None:
            await self._http.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        join = JOIN.match(path)
        if join and request.method == "POST" and self._limit_next_join:
            self._limit_next_join = False
            self.limited.add(unquote(join.group(1)))
        send = SEND.match(path)
        if send and unquote(send.group(1)) in self.limited:
            self.refused.append(unquote(send.group(1)))
            self.refused_again.set()
            return web.json_response(
                {
                    "errcode": "M_LIMIT_EXCEEDED",
                    "error": "Too Many Requests",
                    "retry_after_ms": TEN_MINUTES_MS,
                },
                status=429,
            )

        assert self._http is not None
        headers = {k: request.headers[k] for k in HOP_HEADERS if k in request.headers}
        body = await request.read()
        async with self._http.request(
            request.method,
            URL(self.upstream + request.raw_path, encoded=True),
            data=body or None,
            headers=headers,
        ) as upstream:
            data = await upstream.read()
            content_type = upstream.headers.get("Content-Type", "application/json")
            return web.Response(
                body=data,
                status=upstream.status,
                headers={"Content-Type": content_type},
            )


@pytest.fixture
async def proxy(synapse: DevServer) -> AsyncIterator[LimitingProxy]:
    proxy = LimitingProxy(synapse.url)
    yield proxy
    await proxy.close()


@pytest.fixture
async def world(
    synapse: DevServer, tmp_path: Path, proxy: LimitingProxy
) -> AsyncIterator[BotWorld]:
    url = await proxy.start()
    world = await make_world(
        synapse, tmp_path, warga_count=2, config_overrides={"homeserver": {"url": url}}
    )
    yield world
    await world.close()


def sync_restarts(service: Service) -> Any:
    return service.metrics.registry.get_sample_value("sobat_sync_restarts_total")


async def served_meanwhile(world: BotWorld, warga: Actor) -> str:
    """A whole intake for ``warga`` up to the counsellor in the room; the room ID."""
    dm = await warga.start_direct_chat(world.stage.bot.user_id)
    await warga.wait_for_text("setuju", room_id=dm, timeout=30)
    await warga.send_text(dm, "ya")
    await warga.wait_for_text("Tentang apa", room_id=dm)
    await warga.send_text(dm, "ekonomi")
    queued = await warga.wait_for_text("antrean nomor", room_id=dm)
    code = CODE.search(queued.body or "").group(1)  # type: ignore[union-attr]
    counsellor, offer = await first_offer(world.counsellors.values(), code)
    await counsellor.send_text(offer.room_id, "!terima")
    started = await warga.wait_for_text("sudah hadir", timeout=60)
    return started.room_id


async def test_a_send_held_by_a_429_holds_no_other_warga(
    world: BotWorld, proxy: LimitingProxy
) -> None:
    held, other = world.wargas
    service = await world.start_bot()

    proxy.limit_next_join()
    held_dm = await held.start_direct_chat(world.stage.bot.user_id)
    await asyncio.wait_for(proxy.refused_again.wait(), timeout=30)
    assert proxy.limited == {held_dm}

    room = await served_meanwhile(world, other)

    # All that while the held send was still waiting: nothing reached that warga.
    assert room != held_dm
    assert proxy.refused and set(proxy.refused) == {held_dm}
    assert not [e for e in held.received if e.room_id == held_dm and e.body]
    async with service.rt.store.tx() as tx:  # type: ignore[union-attr]
        waiting = [item.room_id for item in await tx.outbox()]
    assert held_dm in waiting
    assert sync_restarts(service) == 0


async def test_e2ee_chores_held_by_a_429_do_not_hold_the_sync_loop(
    world: BotWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_housekeeping = Matrix.housekeeping
    held = asyncio.Event()
    holding = False

    async def housekeeping_held(self: Matrix) -> None:
        # Stands for a chore waiting out 429s: up to five waits of 30 s per call.
        if holding:
            held.set()
            await asyncio.Event().wait()
        await real_housekeeping(self)

    monkeypatch.setattr(Matrix, "housekeeping", housekeeping_held)
    config, policy = world.stage.load()
    # A stalled loop would be restarted within seconds, and the test would see it.
    service = Service(config, policy, sync_timeout_ms=500, sync_stall_s=4.0)
    world.service = service
    await service.start()
    holding = True
    await asyncio.wait_for(held.wait(), timeout=10)

    warga = world.warga
    dm = await warga.start_direct_chat(world.stage.bot.user_id)
    await warga.wait_for_text("setuju", room_id=dm, timeout=30)
    await warga.send_text(dm, "ya")
    await warga.wait_for_text("Tentang apa", room_id=dm)

    assert sync_restarts(service) == 0
