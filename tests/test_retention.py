"""After the configured days, the bot no longer knows who the warga of a curhat was."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sobat_matrix.retention import DAY_S, forget_old
from sobat_matrix.store import Store, pseudonym

WARGA = "@warga:sukabumi.test"
COUNSELLOR = "@rina:sukabumi.test"
DM = "!dm:sukabumi.test"
KEY = b"kunci-pseudonim-untuk-tes-0001"


def store_traces(db_path: Path, needles: tuple[str, ...]) -> list[str]:
    """Every ``table.column`` of the store holding one of ``needles``, read by SQL.

    Walks ``sqlite_master``, so a table or column added later is scanned too.
    """
    found = []
    with sqlite3.connect(db_path) as db:
        tables = [
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            columns = [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]
            for column in columns:
                for (value,) in db.execute(f'SELECT "{column}" FROM "{table}"'):
                    text = (
                        value.decode("utf-8", "replace")
                        if isinstance(value, bytes)
                        else str(value)
                    )
                    if any(needle in text for needle in needles):
                        found.append(f"{table}.{column}")
    return found


async def test_old_closed_curhats_lose_their_warga_and_keep_their_figures(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "s.db", pseudonym_key=KEY)
    now = time.time()
    try:
        async with store.tx() as tx:
            ids = {}
            for code, status, closed_days_ago in [
                ("OLD1", "closed", 31),
                ("OLD2", "cancelled", 40),
                ("NEW1", "closed", 29),
                ("OPEN", "active", None),
            ]:
                case = await tx.add_case(
                    code=code,
                    warga=WARGA,
                    dm_room=DM,
                    category="keluarga",
                    pref_type=None,
                    pref_gender=None,
                )
                closed_at = (
                    None if closed_days_ago is None else now - closed_days_ago * DAY_S
                )
                await tx.update_case(
                    case.id, status=status, closed_at=closed_at, rating=4
                )
                ids[code] = case.id

        assert (await forget_old(store, 30, now=now)).curhats == 2
        assert (await forget_old(store, 30, now=now)).curhats == 0

        async with store.tx() as tx:
            cases = {c.code: c for c in await tx.all_cases(0)}
    finally:
        await store.close()

    for code in ("OLD1", "OLD2"):
        assert cases[code].warga is None and cases[code].dm_room is None
        assert cases[code].category == "keluarga" and cases[code].rating == 4
        assert cases[code].warga_ref == pseudonym(KEY, WARGA)
    for code in ("NEW1", "OPEN"):
        assert cases[code].warga == WARGA


async def test_an_unrated_curhat_stops_waiting_for_its_rating(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.db", pseudonym_key=KEY)
    now = time.time()
    try:
        async with store.tx() as tx:
            await tx.add_direct_chat(DM, WARGA)
            case = await tx.add_case(
                code="RATE",
                warga=WARGA,
                dm_room=DM,
                category="keluarga",
                pref_type=None,
                pref_gender=None,
            )
            await tx.update_case(case.id, status="closed", closed_at=now - 31 * DAY_S)
            await tx.update_direct_chat(
                DM, step="rating", rating_case=case.id, rating_event_id="$ask"
            )

        forgotten = await forget_old(store, 30, now=now)
        async with store.tx() as tx:
            young = await tx.direct_chat(DM)
        # The chat was written to just now: it keeps its warga, not the old curhat.
        assert forgotten.curhats == 1 and forgotten.chats == 0
        assert young is not None and young.warga == WARGA
        assert (young.step, young.rating_case, young.rating_event_id) == (
            "idle",
            None,
            None,
        )

        later = await forget_old(store, 30, now=now + 31 * DAY_S)
        async with store.tx() as tx:
            quiet = await tx.direct_chat(DM)
    finally:
        await store.close()

    assert later.chats == 1
    assert quiet is not None and quiet.warga is None and quiet.step == "idle"


async def test_quiet_direct_chats_are_forgotten_and_left_ones_deleted(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "s.db", pseudonym_key=KEY)
    now = time.time()
    chats = {
        "!intake:s": ("@a:s", "category"),
        "!gone:s": ("@b:s", "gone"),
        "!open:s": ("@c:s", "requested"),
    }
    try:
        async with store.tx() as tx:
            for room_id, (warga, step) in chats.items():
                await tx.add_direct_chat(room_id, warga)
                await tx.update_direct_chat(room_id, step=step, category="keluarga")
            await tx.add_case(
                code="WAIT",
                warga="@c:s",
                dm_room="!open:s",
                category="keluarga",
                pref_type=None,
                pref_gender=None,
            )

        forgotten = await forget_old(store, 30, now=now + 31 * DAY_S)
        async with store.tx() as tx:
            after = {room_id: await tx.direct_chat(room_id) for room_id in chats}
    finally:
        await store.close()

    assert forgotten.chats == 2
    intake = after["!intake:s"]
    assert intake is not None and (intake.warga, intake.category) == (None, None)
    assert after["!gone:s"] is None
    # A curhat still waits: that chat is still needed as it is.
    still = after["!open:s"]
    assert still is not None and still.warga == "@c:s"


async def test_after_a_whole_curhat_and_the_retention_days_no_trace_of_the_warga(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "s.db"
    store = await Store.open(db_path, pseudonym_key=KEY)
    now = time.time()
    try:
        async with store.tx() as tx:
            await tx.claim_event("$invite")
            await tx.add_direct_chat(DM, WARGA)
            await tx.update_direct_chat(
                DM, step="requested", category="keluarga", pref_type="psikolog"
            )
            case = await tx.add_case(
                code="LIFE",
                warga=WARGA,
                dm_room=DM,
                category="keluarga",
                pref_type="psikolog",
                pref_gender="perempuan",
                urgent=True,
            )
            offer = await tx.add_offer(case.id, COUNSELLOR, 0, 300)
            await tx.set_offer_event(offer.id, "$offer")
            await tx.answer_offer(offer.id, "accepted")
            await tx.want_room(case.purpose, "token")
            await tx.set_room_id(case.purpose, "!curhat:sukabumi.test")
            await tx.update_case(
                case.id,
                status="closed",
                counsellor=COUNSELLOR,
                started_at=now - 3600,
                closed_by="warga",
                closed_at=now,
                warga_brought=1,
            )
            await tx.close_owned_room(case.purpose)
            await tx.update_direct_chat(DM, step="rating", rating_case=case.id)
            await tx.enqueue(DM, "txn-rating", {"body": "Seberapa membantu?"}, None)
            (item,) = await tx.outbox()
            await tx.sent(item.id)
            await tx.add_undecrypted("$late", DM, now)

        assert store_traces(db_path, (WARGA,)) != []
        await forget_old(store, 30, now=now + 31 * DAY_S)
    finally:
        await store.close()

    assert store_traces(db_path, (WARGA, "warga:sukabumi")) == []
    # Nor on disk: deleted values are overwritten, not left in free pages.
    assert b"warga:sukabumi" not in db_path.read_bytes()
