"""A command followed by more than a sync's worth of messages while the bot is down.

The sync filter lets a room's timeline carry 100 events; beyond that the sync comes
back "limited" and the older events are left for ``/messages``. Here a counsellor
ends a curhat while the bot is stopped, and the warga, who has not seen it, goes on
writing 110 messages; the bot, started again, must still act on the ``!selesai``.
Real Synapse, real E2EE clients: every one of those events is encrypted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sobat_matrix.devserver import DevServer

from .botkit import CODE, BotWorld, first_offer, make_world

pytestmark = pytest.mark.integration

# More than the sync filter's timeline limit of 100.
FILLER_MESSAGES = 110


@pytest.fixture
async def world(synapse: DevServer, tmp_path: Path) -> AsyncIterator[BotWorld]:
    world = await make_world(synapse, tmp_path)
    yield world
    await world.close()


@pytest.mark.timeout(600)
async def test_command_before_a_long_gap_is_acted_on(world: BotWorld) -> None:
    await world.start_bot()
    warga = world.warga

    dm = await warga.start_direct_chat(world.stage.bot.user_id)
    await warga.wait_for_text("selamat datang", room_id=dm, timeout=60)
    await warga.send_text(dm, "1")
    await warga.wait_for_text("Tentang apa", room_id=dm)
    await warga.send_text(dm, "2")  # ekonomi: no preference asked
    received = await warga.wait_for_text("antrean nomor", room_id=dm, timeout=60)
    code = CODE.search(received.body).group(1)  # type: ignore[union-attr]
    counsellor, offer = await first_offer(world.counsellors.values(), code)
    await counsellor.send_text(offer.room_id, f"!terima {code}")
    start = await warga.wait_for_text("sudah hadir", timeout=60)
    room = start.room_id

    # The counsellor's command is the oldest of 111 events the bot has not seen.
    await world.stop_bot()
    await counsellor.send_text(room, "!selesai")
    for number in range(FILLER_MESSAGES):
        await warga.send_text(room, f"pesan {number}")
    await counsellor.wait_for_text(f"pesan {FILLER_MESSAGES - 1}", room_id=room)
    await world.start_bot()

    await warga.wait_for_text("diakhiri oleh konselor", room_id=room, timeout=60)
    await warga.wait_for_text("Seberapa membantu", room_id=dm, timeout=60)

    # It came through the gap: at least the command and ten messages were fetched.
    assert world.service is not None
    registry = world.service.metrics.registry
    assert registry.get_sample_value("sobat_sync_gap_events_total") >= 11
    assert registry.get_sample_value("sobat_sync_gaps_cut_total") == 0
