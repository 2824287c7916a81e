"""After a whole curhat on a real Synapse, no file the bot keeps holds what was said.

The warga writes sentences with a marker to the bot during intake, while waiting,
after the rating, and to the counsellor in the curhat room; the counsellor answers
with another marker. Then every file under the bot's data directory (its database
with the write-ahead log and shared memory, nio's E2EE store and trust files, the
session and cross-signing JSON, and a DEBUG log written there as an operator might)
is read as bytes and searched for the markers, case-insensitively: while the bot
runs and after it stopped. At the end, once the retention days have passed, the
rows the figures are made of name no warga, only their keyed pseudonym.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sobat_matrix import logsetup
from sobat_matrix.devserver import DevServer
from sobat_matrix.retention import DAY_S, forget_old
from sobat_matrix.store import Store, pseudonym

from .botkit import CODE, BotWorld, first_offer, make_world
from .test_retention import store_traces

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(synapse: DevServer, tmp_path: Path) -> AsyncIterator[BotWorld]:
    world = await make_world(synapse, tmp_path)
    yield world
    await world.close()


@pytest.fixture
def data_dir(world: BotWorld) -> Path:
    return world.stage.state_dir / "bot-data"


@pytest.fixture
def log_in_data_dir(data_dir: Path) -> Iterator[Path]:
    """Every log record of the process at DEBUG, with the bot's pins, in data_dir."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = data_dir / "sobat.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logsetup.pin_noisy_loggers()
    yield log_file
    root.removeHandler(handler)
    handler.close()
    root.setLevel(old_level)


def files_holding(folder: Path, needles: list[str]) -> dict[str, list[str]]:
    """Each file under ``folder`` whose bytes hold a needle (utf-8, any case)."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes().lower()
        hits = [n for n in needles if n.lower().encode() in data]
        if hits:
            found[str(path.relative_to(folder))] = hits
    return found


def names_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


async def test_no_message_text_in_any_file_of_the_data_dir(
    world: BotWorld, data_dir: Path, log_in_data_dir: Path
) -> None:
    said_to_bot = f"RahasiaBot{secrets.token_hex(4)}"
    said_to_counsellor = f"RahasiaWarga{secrets.token_hex(4)}"
    answered = f"RahasiaKonselor{secrets.token_hex(4)}"
    markers = [said_to_bot, said_to_counsellor, answered]
    await world.start_bot()
    warga = world.warga

    # Intake, with the marker in what the bot reads and does not keep.
    dm = await warga.start_direct_chat(world.stage.bot.user_id)
    await warga.wait_for_text("setuju", room_id=dm, timeout=60)
    await warga.send_text(dm, "ya")
    await warga.wait_for_text("Tentang apa", room_id=dm)
    await warga.send_text(dm, f"Suami saya {said_to_bot} setiap malam")
    await warga.wait_for_text("tidak ada dalam pilihan", room_id=dm)
    await warga.send_text(dm, "ekonomi")
    queued = await warga.wait_for_text("antrean nomor", room_id=dm)
    code = CODE.search(queued.body or "").group(1)  # type: ignore[union-attr]
    await warga.send_text(dm, f"Tolong cepat, {said_to_bot.upper()} lagi")

    # The curhat itself.
    counsellor, offer = await first_offer(world.counsellors.values(), code)
    await counsellor.send_text(offer.room_id, "!terima")
    started = await warga.wait_for_text("sudah hadir", timeout=60)
    room = started.room_id
    await warga.send_text(room, f"Saya ingin bercerita: {said_to_counsellor}.")
    await counsellor.wait_for_text(said_to_counsellor, room_id=room)
    await counsellor.send_text(room, f"Saya dengar. {answered}, lanjutkan.")
    await warga.wait_for_text(answered, room_id=room)

    # The end, the rating, and one more message that starts afresh.
    await warga.send_text(room, "!selesai")
    await warga.wait_for_text("Seberapa membantu", room_id=dm, timeout=30)
    await warga.send_text(dm, "5")
    await warga.wait_for_text("Terima kasih atas penilaian", room_id=dm)
    await warga.send_text(dm, f"Terima kasih, {said_to_bot.lower()}")
    await warga.wait_for_text("setuju", room_id=dm, timeout=30)

    # While it runs the database has its -wal and -shm beside it.
    running = names_in(data_dir)
    assert {"sobat.db", "sobat.db-wal", "sobat.db-shm", "sobat.log"} <= running
    assert any(name.startswith("e2ee/") and name.endswith(".db") for name in running)
    assert files_holding(data_dir, markers) == {}

    await world.stop_bot()
    # The log was written: a scan of an empty file would prove nothing.
    assert code in log_in_data_dir.read_text(encoding="utf-8")
    assert files_holding(data_dir, markers) == {}

    # The retention days pass: only the pseudonym is left where the figures read.
    secret = (world.stage.state_dir / "pseudonym-secret").read_text(encoding="utf-8")
    db_path = data_dir / "sobat.db"
    store = await Store.open(db_path, pseudonym_key=secret.encode())
    try:
        forgotten = await forget_old(store, 30, now=time.time() + 31 * DAY_S)
        async with store.tx() as tx:
            (case,) = [c for c in await tx.all_cases(0) if c.code == code]
    finally:
        await store.close()

    assert forgotten.curhats == 1
    assert (case.status, case.category, case.rating) == ("closed", "ekonomi", 5)
    assert case.warga is None and case.dm_room is None
    # Keyed with the configured secret: not the bare hash anyone could recompute.
    assert case.warga_ref == pseudonym(secret.encode(), warga.user_id)
    unkeyed = hashlib.sha256(warga.user_id.encode()).hexdigest()
    assert case.warga_ref is not None and case.warga_ref not in unkeyed
    assert store_traces(db_path, (warga.user_id, warga.user_id.split(":")[0])) == []
    with sqlite3.connect(db_path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert warga.user_id.lower().encode() not in db_path.read_bytes().lower()
