"""A flood gets a few answers, one warning, then silence until it slows down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sobat_matrix.devserver import DevServer
from sobat_matrix.flood import FloodGuard, Verdict
from sobat_matrix.store import Store

from .botkit import BotWorld, make_world


def test_a_burst_gets_limit_answers_one_warning_then_silence() -> None:
    guard = FloodGuard(limit=3, window_ms=10_000)

    verdicts = [guard.check("!r", "@w", 1000 + i) for i in range(6)]

    assert verdicts == [Verdict.ANSWER] * 3 + [Verdict.WARN] + [Verdict.IGNORE] * 2


def test_the_window_slides_and_others_are_unaffected() -> None:
    guard = FloodGuard(limit=2, window_ms=10_000)
    for i in range(4):
        guard.check("!r", "@w", i)

    assert guard.check("!r", "@other", 5) is Verdict.ANSWER
    assert guard.check("!other", "@w", 5) is Verdict.ANSWER
    assert guard.check("!r", "@w", 20_000) is Verdict.ANSWER


def test_a_backlog_spread_in_time_is_no_flood() -> None:
    guard = FloodGuard(limit=2, window_ms=10_000)

    # Handled at once after a restart, but sent a minute apart each.
    assert {guard.check("!r", "@w", i * 60_000) for i in range(10)} == {Verdict.ANSWER}


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
    before = len([e for e in warga.received if e.room_id == dm])

    for _ in range(50):
        await warga.send_text(dm, "ekonomi")
    await warga.wait_for_text("terlalu banyak", room_id=dm, timeout=30)
    await asyncio.sleep(3)

    answers = [e for e in warga.received if e.room_id == dm][before:]
    assert 1 < len(answers) <= 11  # at most ten answers and one warning

    # The counsellors are not held up by it.
    counsellor = next(iter(world.counsellors.values()))
    offer = await counsellor.wait_for_text("Tawaran curhat baru: #", timeout=30)
    await counsellor.send_text(offer.room_id, "!bantuan")
    await counsellor.wait_for_text("Perintah", room_id=offer.room_id, timeout=30)

    await world.stop_bot()
    store = await Store.open(world.stage.state_dir / "bot-data" / "sobat.db")
    try:
        async with store.tx() as tx:
            cases = await tx.all_cases(0)
    finally:
        await store.close()
    assert len(cases) == 1
