"""Tests for the SQLite store: migrations, dedup, transactions, queue, load, outbox."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sobat_matrix.store import (
    FORGET_REQUESTS_KEY,
    MIGRATIONS,
    PSEUDONYM_HEX,
    Case,
    Store,
    Tx,
    pseudonym,
)

RINA = "@rina:sukabumi.test"
BUDI = "@budi:sukabumi.test"
DM = "!dm:sukabumi.test"
ROOM_A = "!a:sukabumi.test"
ROOM_B = "!b:sukabumi.test"
KEY = b"kunci-pseudonim-untuk-tes-0001"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "sobat.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(db_path, pseudonym_key=KEY)
    yield opened
    await opened.close()


async def add_case(tx: Tx, code: str, warga: str = "@warga:sukabumi.test") -> Case:
    return await tx.add_case(
        code=code,
        warga=warga,
        dm_room=DM,
        category="keluarga",
        pref_type=None,
        pref_gender=None,
    )


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


# -- migrations ------------------------------------------------------------------------


async def test_migrations_set_user_version(db_path: Path) -> None:
    store = await Store.open(db_path)
    await store.close()

    assert user_version(db_path) == len(MIGRATIONS)
    with sqlite3.connect(db_path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert {"meta", "handled_events", "owned_rooms", "cases", "offers"} <= tables
    assert {"dm_rooms", "outbox"} <= tables


async def test_reopening_keeps_data_and_runs_no_migration_twice(
    db_path: Path,
) -> None:
    store = await Store.open(db_path)
    async with store.tx() as tx:
        await tx.set_meta("stats_last_daily", "2026-12-14")
    await store.close()

    store = await Store.open(db_path)
    async with store.tx() as tx:
        value = await tx.get_meta("stats_last_daily")
    await store.close()

    assert value == "2026-12-14"
    assert user_version(db_path) == len(MIGRATIONS)


# -- events and transactions -----------------------------------------------------------


async def test_claim_event_is_true_once(store: Store) -> None:
    async with store.tx() as tx:
        first = await tx.claim_event("$one")
        again = await tx.claim_event("$one")
        other = await tx.claim_event("$two")
    async with store.tx() as tx:
        later = await tx.claim_event("$one")

    assert (first, again, other, later) == (True, False, True, False)


async def test_a_transaction_that_raises_writes_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError, match="crash mid-step"):
        async with store.tx() as tx:
            await tx.set_meta("key", "value")
            await tx.claim_event("$event")
            await add_case(tx, "AAAA")
            await tx.want_room("case:1", "tok")
            await tx.enqueue(ROOM_A, "txn", {"body": "x"}, None)
            raise RuntimeError("crash mid-step")

    async with store.tx() as tx:
        assert await tx.get_meta("key") is None
        assert await tx.claim_event("$event") is True
        assert await tx.all_cases(0) == []
        assert await tx.owned_room("case:1") is None
        assert await tx.outbox() == []


async def test_a_committed_transaction_is_kept(store: Store) -> None:
    async with store.tx() as tx:
        await tx.set_meta("key", "value")

    async with store.tx() as tx:
        assert await tx.get_meta("key") == "value"


# -- owned rooms -----------------------------------------------------------------------


async def test_want_room_keeps_the_first_token(store: Store) -> None:
    async with store.tx() as tx:
        first = await tx.want_room("case:1", "tok-first")
    async with store.tx() as tx:
        await tx.note_room_attempt("case:1")
        second = await tx.want_room("case:1", "tok-second")
        other = await tx.want_room("supervisors", "tok-other")

    assert first.token == "tok-first"
    assert second.token == "tok-first"
    assert second.attempts == 1
    assert second.room_id is None
    assert other.token == "tok-other"


# -- cases -----------------------------------------------------------------------------


async def test_queue_position_follows_request_time(store: Store) -> None:
    async with store.tx() as tx:
        cases = [await add_case(tx, code) for code in ("AAAA", "BBBB", "CCCC", "DDDD")]
        times = {"AAAA": 300.0, "BBBB": 100.0, "CCCC": 200.0, "DDDD": 200.0}
        for case in cases:
            await tx.update_case(case.id, requested_at=times[case.code])
        # Not waiting any more, so not in the queue although it came first.
        served = await add_case(tx, "EEEE")
        await tx.update_case(served.id, requested_at=50.0, status="active")

        positions = {}
        for case in cases:
            fresh = await tx.case(case.id)
            assert fresh is not None
            positions[fresh.code] = await tx.queue_position(fresh)

    # Equal request times go by arrival (id): CCCC was added before DDDD.
    assert positions == {"BBBB": 1, "CCCC": 2, "DDDD": 3, "AAAA": 4}


@pytest.mark.parametrize(
    ("status", "busy"),
    [
        ("waiting", False),
        ("accepted", True),
        ("active", True),
        ("closing", True),
        ("closed", False),
        ("cancelled", False),
    ],
)
async def test_busy_counts_count_only_busy_statuses(
    store: Store, status: str, busy: bool
) -> None:
    async with store.tx() as tx:
        case = await add_case(tx, "AAAA")
        await tx.update_case(case.id, status=status, counsellor=RINA)
        counts = await tx.busy_counts()

    assert counts == ({RINA: 1} if busy else {})


async def test_busy_counts_per_counsellor(store: Store) -> None:
    async with store.tx() as tx:
        rows = [
            ("AAAA", "accepted", RINA),
            ("BBBB", "active", RINA),
            ("CCCC", "closing", RINA),
            ("DDDD", "closed", RINA),
            ("EEEE", "active", BUDI),
            ("FFFF", "accepted", None),
        ]
        for code, status, counsellor in rows:
            case = await add_case(tx, code)
            await tx.update_case(case.id, status=status, counsellor=counsellor)
        counts = await tx.busy_counts()

    assert counts == {RINA: 3, BUDI: 1}


# -- outbox ----------------------------------------------------------------------------


async def test_outbox_keeps_insertion_order(store: Store) -> None:
    async with store.tx() as tx:
        await tx.enqueue(ROOM_B, "txn-3", {"body": "tiga"}, None)
        await tx.enqueue(ROOM_A, "txn-1", {"body": "satu"}, "offer:1")
    async with store.tx() as tx:
        await tx.enqueue(ROOM_A, "txn-2", {"body": "dua"}, None)
        items = await tx.outbox()

    assert [(i.room_id, i.txn_id, i.content, i.ref) for i in items] == [
        (ROOM_B, "txn-3", {"body": "tiga"}, None),
        (ROOM_A, "txn-1", {"body": "satu"}, "offer:1"),
        (ROOM_A, "txn-2", {"body": "dua"}, None),
    ]


async def test_enqueue_twice_with_one_txn_id_stores_one_row(store: Store) -> None:
    async with store.tx() as tx:
        await tx.enqueue(ROOM_A, "txn-1", {"body": "first"}, None)
    async with store.tx() as tx:
        await tx.enqueue(ROOM_A, "txn-1", {"body": "second"}, None)
        items = await tx.outbox()

    assert [(i.txn_id, i.content) for i in items] == [("txn-1", {"body": "first"})]


async def test_sent_removes_only_that_item(store: Store) -> None:
    async with store.tx() as tx:
        await tx.enqueue(ROOM_A, "txn-1", {"body": "satu"}, None)
        await tx.enqueue(ROOM_A, "txn-2", {"body": "dua"}, None)
        first = (await tx.outbox())[0]
        await tx.sent(first.id)
        left = await tx.outbox()

    assert [i.txn_id for i in left] == ["txn-2"]


# -- routing in practice: urgency, availability, history ---------------------------


async def test_urgent_curhats_go_first_in_the_queue(store: Store) -> None:
    async with store.tx() as tx:
        first = await add_case(tx, "AAAA", "@w1:sukabumi.test")
        second = await add_case(tx, "BBBB", "@w2:sukabumi.test")
        urgent = await tx.add_case(
            code="CCCC",
            warga="@w3:sukabumi.test",
            dm_room=DM,
            category="keluarga",
            pref_type=None,
            pref_gender=None,
            urgent=True,
        )
        assert [c.code for c in await tx.open_cases()] == ["CCCC", "AAAA", "BBBB"]
        assert await tx.queue_position(urgent) == 1
        assert await tx.queue_position(first) == 2
        assert await tx.queue_position(second) == 3
        assert await tx.waiting_count() == 3


async def test_a_counsellors_own_availability_is_kept(store: Store) -> None:
    async with store.tx() as tx:
        assert await tx.availability() == {}
        await tx.set_availability(RINA, False)
        await tx.set_availability(BUDI, True)
        assert await tx.availability() == {RINA: False, BUDI: True}
        await tx.set_availability(RINA, None)
        assert await tx.availability() == {BUDI: True}


async def test_previous_counsellor_and_last_offers(store: Store) -> None:
    warga = "@w:sukabumi.test"
    async with store.tx() as tx:
        assert await tx.previous_counsellor(warga) is None
        case = await add_case(tx, "DDDD", warga)
        await tx.add_offer(case.id, BUDI, 0, 60)
        later = await tx.add_offer(case.id, RINA, 0, 60)
        # Declined or never started: no "previous" counsellor yet.
        await tx.update_case(case.id, status="closed", counsellor=RINA, closed_at=1.0)
        assert await tx.previous_counsellor(warga) is None
        await tx.update_case(case.id, started_at=0.5)
        assert await tx.previous_counsellor(warga) == RINA
        times = await tx.last_offer_times()
        assert set(times) == {BUDI, RINA}
        assert times[RINA] == later.offered_at


# -- pseudonyms and forgetting ---------------------------------------------------------


def test_a_pseudonym_is_keyed_stable_and_short() -> None:
    ref = pseudonym(KEY, RINA)

    assert ref == pseudonym(KEY, RINA)
    assert ref != pseudonym(KEY, BUDI)
    assert ref != pseudonym(b"another-key-of-thirty-characters", RINA)
    assert len(ref) == PSEUDONYM_HEX and int(ref, 16) >= 0
    assert "rina" not in ref


async def test_previous_counsellor_is_found_after_the_warga_is_forgotten(
    store: Store,
) -> None:
    async with store.tx() as tx:
        case = await add_case(tx, "EEEE", RINA)
        assert case.warga_ref == pseudonym(KEY, RINA)
        await tx.update_case(
            case.id, status="closed", counsellor=BUDI, started_at=1.0, closed_at=2.0
        )
        forgotten = await tx.forget_before(closed_before=10.0)
        assert forgotten.curhats == 1
        kept = await tx.case(case.id)
        assert kept is not None and kept.warga is None
        assert kept.warga_ref == pseudonym(KEY, RINA)

        assert await tx.previous_counsellor(RINA) == BUDI
        assert await tx.previous_counsellor(BUDI) is None


async def test_forgetting_on_request_unlinks_everything_and_counts(
    store: Store,
) -> None:
    async with store.tx() as tx:
        await tx.add_direct_chat(DM, RINA)
        await tx.update_direct_chat(DM, step="idle", category="keluarga", urgent=1)
        await tx.add_direct_chat(ROOM_A, RINA)
        old = await add_case(tx, "FFFF", RINA)
        await tx.update_case(
            old.id, status="closed", counsellor=BUDI, started_at=1.0, closed_at=2.0
        )
        # Already cut loose by retention: only the pseudonym was left.
        await tx.forget_before(closed_before=10.0)
        recent = await add_case(tx, "GGGG", RINA)
        await tx.update_case(recent.id, status="closed", closed_at=time.time())
        await tx.update_direct_chat(DM, step="rating", rating_case=recent.id)
        await add_case(tx, "HHHH", BUDI)

        forgotten = await tx.forget_warga(RINA)
        again = await tx.forget_warga(BUDI)

        cases = {c.code: c for c in await tx.all_cases(0)}
        chat = await tx.direct_chat(DM)
        count = await tx.get_meta(FORGET_REQUESTS_KEY)

    assert (forgotten.curhats, forgotten.chats) == (2, 2)
    for code in ("FFFF", "GGGG"):
        case = cases[code]
        assert (case.warga, case.warga_ref, case.dm_room) == (None, None, None)
        assert case.category == "keluarga"
    assert cases["GGGG"].status == "closed"
    assert chat is not None and chat.warga is None
    assert (chat.step, chat.category, chat.rating_case, chat.urgent) == (
        "idle",
        None,
        None,
        False,
    )
    assert again.curhats == 1 and cases["HHHH"].warga is None
    assert count == "2"


async def test_the_chosen_language_is_kept_until_the_warga_is_forgotten(
    store: Store,
) -> None:
    async with store.tx() as tx:
        await tx.add_direct_chat(DM, RINA)
        await tx.update_direct_chat(DM, step="requested", pref_language="su")
        case = await tx.add_case(
            code="LLLL",
            warga=RINA,
            dm_room=DM,
            category="keluarga",
            pref_type=None,
            pref_gender=None,
            pref_language="su",
        )
        kept = (await tx.direct_chat(DM), await tx.case(case.id))

        await tx.forget_warga(RINA)
        chat = await tx.direct_chat(DM)

    assert kept[0] is not None and kept[0].pref_language == "su"
    assert kept[1] is not None and kept[1].pref_language == "su"
    assert chat is not None and chat.pref_language is None


async def test_migration_4_keeps_direct_chats_and_fills_pseudonyms(
    db_path: Path,
) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as db:
        for script in MIGRATIONS[:3]:
            db.executescript(script)
        db.execute(
            "INSERT INTO dm_rooms (room_id, warga, step, category, updated_at)"
            " VALUES (?, ?, 'category', 'keluarga', 5.0)",
            (DM, RINA),
        )
        db.execute(
            "INSERT INTO cases (code, warga, dm_room, category, status, requested_at)"
            " VALUES ('JJJJ', ?, ?, 'keluarga', 'waiting', 1.0)",
            (RINA, DM),
        )
        db.execute("PRAGMA user_version = 3")

    store = await Store.open(db_path, pseudonym_key=KEY)
    try:
        async with store.tx() as tx:
            chat = await tx.direct_chat(DM)
            case = await tx.case_by_code("JJJJ")
    finally:
        await store.close()

    assert user_version(db_path) == len(MIGRATIONS)
    assert chat is not None and (chat.warga, chat.step, chat.category) == (
        RINA,
        "category",
        "keluarga",
    )
    assert chat.resume_step is None
    assert case is not None and case.warga_ref == pseudonym(KEY, RINA)


async def test_without_a_key_no_pseudonym_is_written(db_path: Path) -> None:
    store = await Store.open(db_path)
    try:
        async with store.tx() as tx:
            case = await add_case(tx, "KKKK", RINA)
            await tx.update_case(
                case.id, status="closed", counsellor=BUDI, started_at=1.0, closed_at=2.0
            )
            previous = await tx.previous_counsellor(RINA)
    finally:
        await store.close()

    assert case.warga_ref is None
    assert previous == BUDI


async def test_a_task_cancelled_in_its_begin_leaves_the_store_usable(
    store: Store,
) -> None:
    """The watchdog may cancel a sync loop while its transaction is starting."""

    async def one_tx() -> None:
        async with store.tx() as tx:
            await tx.set_meta("k", "v")

    for _ in range(20):
        task = asyncio.create_task(one_tx())
        await asyncio.sleep(0)  # the task is now waiting for its BEGIN
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async with store.tx() as tx:
        await tx.set_meta("after", "ok")
    async with store.tx() as tx:
        assert await tx.get_meta("after") == "ok"
