"""A sync loop that hangs is restarted by the watchdog, and the bot answers again.

The real bot runs against the test Synapse with a short long-poll, so a healthy
loop finishes a sync well within the watchdog's limit; its Matrix sync then hangs
once, for ever, as on a half-open connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nio import SyncResponse

from sobat_matrix.devserver import DevServer
from sobat_matrix.matrix import Matrix
from sobat_matrix.service import Service

from .botkit import BotWorld, make_world

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(synapse: DevServer, tmp_path: Path) -> AsyncIterator[BotWorld]:
    world = await make_world(synapse, tmp_path)
    yield world
    await world.close()


def test_default_limit_is_three_long_polls_with_their_margin(
    world: BotWorld,
) -> None:
    config, policy = world.stage.load()

    assert Service(config, policy).sync_stall_s == 3 * (30 + 15)
    assert Service(config, policy, sync_timeout_ms=1000).sync_stall_s == 3 * 16


async def test_a_hung_sync_is_restarted_and_the_bot_answers(
    world: BotWorld,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_sync = Matrix.sync
    hung = asyncio.Event()

    async def sync_that_hangs_once(
        self: Matrix, since: str | None, *, full_state: bool, timeout_ms: int
    ) -> SyncResponse:
        # The first sync of start() goes through; the first of the loop hangs.
        if not full_state and not hung.is_set():
            hung.set()
            await asyncio.Event().wait()
        return await real_sync(
            self, since, full_state=full_state, timeout_ms=timeout_ms
        )

    monkeypatch.setattr(Matrix, "sync", sync_that_hangs_once)
    config, policy = world.stage.load()
    service = Service(config, policy, sync_timeout_ms=500, sync_stall_s=4.0)
    world.service = service
    await service.start()
    await asyncio.wait_for(hung.wait(), timeout=10)

    warga = world.warga
    dm = await warga.start_direct_chat(world.stage.bot.user_id)
    await warga.wait_for_text("setuju", room_id=dm, timeout=30)

    assert restarts(service) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("sync made no progress for ")
    assert errors[0].endswith(" s; restarting the sync loop")


def restarts(service: Service) -> Any:
    return service.metrics.registry.get_sample_value("sobat_sync_restarts_total")
