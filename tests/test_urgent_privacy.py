"""Urgent words are matched in memory: never logged, never written to the bot's disk.

A whole urgent curhat runs on the test Synapse with every logger at DEBUG; the
warga's messages hold an urgent phrase of the sample policy and a marker word
nobody else writes. Afterwards no log record and no byte under the bot's
``data_dir`` (SQLite database with its -wal, JSON, the E2EE store, whose pickles
are encrypted with the store key) may hold either, in any case.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import pytest

from sobat_matrix import logsetup
from sobat_matrix.devserver import DevServer

from .botkit import CODE, make_world
from .test_routing_live import live_policy

pytestmark = pytest.mark.integration

# In policies/sukabumi.yaml and in the live test policy.
PHRASE = "ingin mati"


def files_holding(data_dir: Path, needles: list[str]) -> list[str]:
    """Files under ``data_dir`` that hold one of ``needles``, ignoring case."""
    wanted = [needle.lower().encode() for needle in needles]
    found = []
    for path in sorted(data_dir.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes().lower()
        found.extend(f"{path.name}: {n.decode()}" for n in wanted if n in data)
    return found


async def test_urgent_words_reach_no_log_and_no_file(
    synapse: DevServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Every logger at DEBUG, even those the bot's start-up pins higher (see
    # logsetup): whatever they would log must not hold the words either. An
    # earlier test in this process may have pinned them; caplog restores them.
    caplog.set_level(logging.DEBUG)
    for name in (*logsetup.PINNED_LOGGERS, *logsetup.SILENCED_LOGGERS):
        caplog.set_level(logging.DEBUG, logger=name)
    world = await make_world(synapse, tmp_path, policy=live_policy)
    try:
        await world.start_bot()
        config, _ = world.stage.load()
        marker = f"Sekar{secrets.token_hex(4)}"
        warga, c = world.warga, world.counsellors["c"]
        c_duty = (await c.wait_for_text("ruang tugas", timeout=60)).room_id

        # The urgent words come where the topic is asked, as people in distress do.
        dm = await warga.start_direct_chat(world.stage.bot.user_id)
        await warga.wait_for_text("setuju", room_id=dm, timeout=60)
        await warga.send_text(dm, "ya")
        await warga.wait_for_text("Tentang apa", room_id=dm, timeout=30)
        await warga.send_text(dm, f"saya {marker}, rasanya INGIN MATI saja")
        contacts = await warga.wait_for_text("Kami mendengar", room_id=dm, timeout=30)
        assert "112" in (contacts.body or "")
        received = await warga.wait_for_text("antrean nomor 1", room_id=dm, timeout=30)
        code = CODE.search(received.body or "").group(1)  # type: ignore[union-attr]

        # An on-call counsellor takes it; the warga writes the words again there.
        offer = await c.wait_for_text(f"#{code}", room_id=c_duty, timeout=30)
        assert "MENDESAK" in (offer.body or "")
        await c.send_text(c_duty, f"!terima {code}")
        room = (await c.wait_for_text("sudah hadir", timeout=60)).room_id
        await warga.wait_for_text("sudah hadir", room_id=room, timeout=60)
        await warga.send_text(room, f"{marker} di sini: aku ingin  mati")
        got = await c.wait_for_text(marker, room_id=room, timeout=30)
        assert got.was_encrypted
        await warga.send_text(room, "!selesai")
        await warga.wait_for_text("diakhiri oleh warga", room_id=room, timeout=30)

        # While the bot runs, the -wal file holds what is not yet in the database.
        assert (config.data_dir / "sobat.db-wal").exists()
        assert files_holding(config.data_dir, [PHRASE, marker]) == []
        await world.stop_bot()
        assert files_holding(config.data_dir, [PHRASE, marker]) == []
    finally:
        await world.close()

    # Formatted as a log file would hold them: arguments, exceptions and all.
    lines = [caplog.handler.format(record) for record in caplog.records]
    assert [line for line in lines if f"case {code} marked urgent" in line]
    leaks = [line for line in lines if PHRASE in line.lower()]
    assert leaks + [line for line in lines if marker.lower() in line.lower()] == []
