"""``!hapus`` on a real Synapse: a warga asks the bot to forget them, and it does.

The warga has a whole curhat with a counsellor, leaves the rating unanswered, asks
to be forgotten, changes their mind once, then confirms. Afterwards no table of the
bot's store holds their Matrix ID or anything they wrote, and the same chat still
works, starting from the beginning.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sobat_matrix.devserver import DevServer
from sobat_matrix.store import FORGET_REQUESTS_KEY

from .botkit import CODE, BotWorld, first_offer, make_world
from .test_retention import store_traces

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(synapse: DevServer, tmp_path: Path) -> AsyncIterator[BotWorld]:
    world = await make_world(synapse, tmp_path)
    await world.start_bot()
    yield world
    await world.close()


def meta(db_path: Path, key: str) -> str | None:
    with sqlite3.connect(db_path) as db:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def warga_of_chat(db_path: Path, room_id: str) -> str | None:
    with sqlite3.connect(db_path) as db:
        row = db.execute(
            "SELECT warga FROM dm_rooms WHERE room_id = ?", (room_id,)
        ).fetchone()
    assert row is not None
    return None if row[0] is None else str(row[0])


async def test_a_warga_is_forgotten_on_request(world: BotWorld) -> None:
    warga = world.warga
    db_path = world.stage.state_dir / "bot-data" / "sobat.db"
    marker = f"RAHASIA{secrets.token_hex(4)}"

    dm = await warga.start_direct_chat(world.stage.bot.user_id)
    welcome = await warga.wait_for_text("selamat datang", room_id=dm, timeout=60)
    assert "!hapus" in welcome.body
    await warga.send_text(dm, "ya")
    await warga.wait_for_text("Tentang apa", room_id=dm)
    await warga.send_text(dm, "ekonomi")
    queued = await warga.wait_for_text("antrean nomor", room_id=dm)
    code = CODE.search(queued.body).group(1)  # type: ignore[union-attr]

    counsellor, offer = await first_offer(world.counsellors.values(), code)
    await counsellor.send_text(offer.room_id, "!terima")
    started = await warga.wait_for_text("sudah hadir", timeout=60)
    room = started.room_id
    await warga.send_text(room, f"{marker} ini cerita saya")
    await counsellor.wait_for_text(marker, room_id=room)

    # While the curhat goes on, nothing is deleted.
    await warga.send_text(dm, "!hapus")
    await warga.wait_for_text("masih berlangsung", room_id=dm)

    await warga.send_text(room, "!selesai")
    await warga.wait_for_text("Seberapa membantu", room_id=dm, timeout=30)
    assert store_traces(db_path, (warga.user_id,)) != []

    # Anything but "ya" cancels; then the warga asks again and confirms.
    await warga.send_text(dm, "!hapus")
    await warga.wait_for_text('Balas "ya"', room_id=dm)
    await warga.send_text(dm, "nanti saja")
    await warga.wait_for_text("tidak ada yang dihapus", room_id=dm)
    await warga.send_text(dm, "!hapus")
    await warga.wait_for_text('Balas "ya"', room_id=dm)
    await warga.send_text(dm, "Ya")
    done = await warga.wait_for_text("sudah dihapus", room_id=dm)
    assert "1 catatan curhat" in done.body

    assert store_traces(db_path, (warga.user_id, marker)) == []
    assert meta(db_path, FORGET_REQUESTS_KEY) == "1"
    with sqlite3.connect(db_path) as db:
        (kept,) = db.execute(
            "SELECT COUNT(*) FROM cases WHERE code = ? AND status = 'closed'", (code,)
        ).fetchone()
    assert kept == 1

    # The same chat goes on, from the beginning, for whoever writes in it.
    await warga.send_text(dm, "halo lagi")
    await warga.wait_for_text("selamat datang", room_id=dm, timeout=30)
    assert warga_of_chat(db_path, dm) == warga.user_id


async def test_a_waiting_curhat_is_withdrawn_before_forgetting(
    world: BotWorld,
) -> None:
    warga = world.warga
    db_path = world.stage.state_dir / "bot-data" / "sobat.db"

    dm = await warga.start_direct_chat(world.stage.bot.user_id)
    await warga.wait_for_text("setuju", room_id=dm, timeout=60)
    await warga.send_text(dm, "ya")
    await warga.wait_for_text("Tentang apa", room_id=dm)
    await warga.send_text(dm, "ekonomi")
    queued = await warga.wait_for_text("antrean nomor", room_id=dm)
    code = CODE.search(queued.body).group(1)  # type: ignore[union-attr]
    counsellor, offer = await first_offer(world.counsellors.values(), code)

    await warga.send_text(dm, "!hapus")
    await warga.wait_for_text("akan dibatalkan", room_id=dm)
    await warga.send_text(dm, "hapus")
    await warga.wait_for_text(f"#{code} sudah dibatalkan", room_id=dm)
    done = await warga.wait_for_text("sudah dihapus", room_id=dm)
    assert "1 catatan curhat" in done.body
    await counsellor.wait_for_text(
        f"Tawaran #{code} dibatalkan", room_id=offer.room_id, timeout=30
    )

    assert store_traces(db_path, (warga.user_id,)) == []
