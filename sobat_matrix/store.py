"""The bot's state in SQLite: curhats, offers, direct chats, rooms it owns, the outbox.

What is kept, and what is not: Matrix IDs of the people in a curhat (needed to bring
them into the room), the choices a warga made at intake (category and preferences),
timestamps, ratings, and the bot's own outgoing notices until they are sent. Never a
message body written by a warga or a counsellor.

A warga's Matrix ID is kept only while it is needed: :meth:`Tx.forget_before` and
:meth:`Tx.forget_warga` remove it. What stays for routing and figures is
``cases.warga_ref``, a keyed hash (:func:`pseudonym`) that stands for the same warga
without naming them.

All access goes through :meth:`Store.tx`, one transaction at a time. The rule for
callers: no Matrix I/O inside a transaction, so a transaction is short and a crash
leaves either all of a step or none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

logger = logging.getLogger(__name__)

# Numbered migrations; the database's user_version says how many have run.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE handled_events (event_id TEXT PRIMARY KEY, handled_at REAL NOT NULL);
    CREATE TABLE owned_rooms (
        purpose TEXT PRIMARY KEY,
        token TEXT NOT NULL UNIQUE,
        room_id TEXT UNIQUE,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL,
        closed INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE dm_rooms (
        room_id TEXT PRIMARY KEY,
        warga TEXT NOT NULL,
        step TEXT NOT NULL,
        category TEXT,
        pref_type TEXT,
        pref_gender TEXT,
        rating_case INTEGER,
        rating_event_id TEXT,
        updated_at REAL NOT NULL
    );
    CREATE TABLE cases (
        id INTEGER PRIMARY KEY,
        code TEXT NOT NULL UNIQUE,
        warga TEXT,
        dm_room TEXT,
        category TEXT NOT NULL,
        pref_type TEXT,
        pref_gender TEXT,
        status TEXT NOT NULL,
        counsellor TEXT,
        requested_at REAL NOT NULL,
        room_ready_at REAL,
        accepted_at REAL,
        counsellor_brought INTEGER NOT NULL DEFAULT 0,
        counsellor_joined_at REAL,
        warga_brought INTEGER NOT NULL DEFAULT 0,
        warga_joined_at REAL,
        started_at REAL,
        close_requested_at REAL,
        closed_by TEXT,
        closed_at REAL,
        rating INTEGER,
        told_no_counsellor INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX cases_status ON cases (status);
    CREATE TABLE offers (
        id INTEGER PRIMARY KEY,
        case_id INTEGER NOT NULL REFERENCES cases (id),
        counsellor TEXT NOT NULL,
        step_index INTEGER NOT NULL,
        status TEXT NOT NULL,
        event_id TEXT,
        offered_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        answered_at REAL
    );
    CREATE INDEX offers_status ON offers (status);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        room_id TEXT NOT NULL,
        txn_id TEXT NOT NULL UNIQUE,
        content TEXT NOT NULL,
        ref TEXT,
        created_at REAL NOT NULL
    );
    """,
    # Events waiting for their room key (IDs only), so a restart keeps waiting.
    """
    CREATE TABLE undecrypted (
        event_id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL,
        first_seen REAL NOT NULL
    );
    """,
    # Routing in practice: urgent curhats, religion preference, queue places told,
    # hand-overs between counsellors, and each counsellor's own "ready"/"away".
    """
    ALTER TABLE cases ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE cases ADD COLUMN pref_religion TEXT;
    ALTER TABLE cases ADD COLUMN told_position INTEGER;
    ALTER TABLE cases ADD COLUMN handover_from TEXT;
    ALTER TABLE cases ADD COLUMN handover_category TEXT;
    ALTER TABLE cases ADD COLUMN handover_type TEXT;
    ALTER TABLE dm_rooms ADD COLUMN pref_religion TEXT;
    ALTER TABLE dm_rooms ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE counsellor_state (
        user_id TEXT PRIMARY KEY,
        available INTEGER,
        changed_at REAL NOT NULL
    );
    """,
    # Privacy: a pseudonym for the warga of each curhat that outlives the Matrix ID;
    # a direct chat whose warga was forgotten keeps its row with no warga in it (the
    # bot is still in the room); the step to go back to when "!hapus" is not confirmed.
    """
    ALTER TABLE cases ADD COLUMN warga_ref TEXT;
    CREATE INDEX cases_warga_ref ON cases (warga_ref);
    CREATE TABLE dm_rooms_new (
        room_id TEXT PRIMARY KEY,
        warga TEXT,
        step TEXT NOT NULL,
        category TEXT,
        pref_type TEXT,
        pref_gender TEXT,
        rating_case INTEGER,
        rating_event_id TEXT,
        updated_at REAL NOT NULL,
        pref_religion TEXT,
        urgent INTEGER NOT NULL DEFAULT 0,
        resume_step TEXT
    );
    INSERT INTO dm_rooms_new (room_id, warga, step, category, pref_type, pref_gender,
        rating_case, rating_event_id, updated_at, pref_religion, urgent)
        SELECT room_id, warga, step, category, pref_type, pref_gender, rating_case,
        rating_event_id, updated_at, pref_religion, urgent FROM dm_rooms;
    DROP TABLE dm_rooms;
    ALTER TABLE dm_rooms_new RENAME TO dm_rooms;
    """,
    # A counsellor who accepted and never came in: when their invitation to the
    # curhat room was withdrawn (NULL while that is still to do).
    """
    ALTER TABLE offers ADD COLUMN revoked_at REAL;
    """,
    # When a room was last asked for and the answer is not known (see ensure_room).
    """
    ALTER TABLE owned_rooms ADD COLUMN attempted_at REAL;
    """,
    # The preference fallback: when a hand-over was asked (its wait starts then, not
    # at the request), and when the warga was told their preference was let go of,
    # so they are told once, across restarts.
    """
    ALTER TABLE cases ADD COLUMN handover_at REAL;
    ALTER TABLE cases ADD COLUMN pref_relaxed_at REAL;
    """,
    # The language a warga chose to tell their curhat in (a code like "su"), for
    # routing to a counsellor who speaks it; NULL: the bot's own language.
    """
    ALTER TABLE cases ADD COLUMN pref_language TEXT;
    ALTER TABLE dm_rooms ADD COLUMN pref_language TEXT;
    """,
]

# A curhat's life. "waiting": no counsellor yet; "accepted": a counsellor said yes
# and is being brought in; "active": both are in and may talk; "closing": someone
# ended it and the room is being closed; "closed" and "cancelled" are final.
OPEN_STATUSES = ("waiting", "accepted", "active", "closing")
# What a warga still has going on; a curhat being closed no longer counts.
WARGA_OPEN_STATUSES = ("waiting", "accepted", "active")
BUSY_STATUSES = ("accepted", "active", "closing")
FINAL_STATUSES = ("closed", "cancelled")


@dataclass(frozen=True)
class Case:
    """One curhat as the store holds it."""

    id: int
    code: str
    warga: str | None
    dm_room: str | None
    category: str
    pref_type: str | None
    pref_gender: str | None
    status: str
    counsellor: str | None
    requested_at: float
    room_ready_at: float | None
    accepted_at: float | None
    counsellor_brought: bool
    counsellor_joined_at: float | None
    warga_brought: bool
    warga_joined_at: float | None
    started_at: float | None
    close_requested_at: float | None
    closed_by: str | None
    closed_at: float | None
    rating: int | None
    told_no_counsellor: bool
    urgent: bool = False
    pref_religion: str | None = None
    told_position: int | None = None
    warga_ref: str | None = None
    # While a counsellor hands the curhat over: who is leaving, and to what.
    handover_from: str | None = None
    handover_category: str | None = None
    handover_type: str | None = None
    handover_at: float | None = None
    # When the warga was told nobody matching their preference could take it in
    # time and anyone may now; cleared when a hand-over starts looking again.
    pref_relaxed_at: float | None = None
    # The language the warga chose at intake; None: the bot's own.
    pref_language: str | None = None

    @property
    def purpose(self) -> str:
        return case_purpose(self.id)

    def search_started_at(self) -> float:
        """Since when a counsellor is being looked for: the request or hand-over."""
        if self.handover_from and self.handover_at is not None:
            return self.handover_at
        return self.requested_at


@dataclass(frozen=True)
class Offer:
    """An offer of one case to one counsellor."""

    id: int
    case_id: int
    counsellor: str
    step_index: int
    status: str
    event_id: str | None
    offered_at: float
    expires_at: float
    answered_at: float | None
    revoked_at: float | None = None


@dataclass(frozen=True)
class DirectChat:
    """A warga's direct chat with the bot and where the intake stands."""

    room_id: str
    # None once the warga was forgotten: the next person to write is taken as warga.
    warga: str | None
    step: str
    category: str | None
    pref_type: str | None
    pref_gender: str | None
    rating_case: int | None
    rating_event_id: str | None
    updated_at: float = 0.0
    pref_religion: str | None = None
    urgent: bool = False
    resume_step: str | None = None
    pref_language: str | None = None


@dataclass(frozen=True)
class OwnedRoom:
    """A room the bot creates: a curhat room, a duty room or the supervisors' room."""

    purpose: str
    token: str
    room_id: str | None
    attempts: int
    closed: bool
    # Set while an attempt to create the room may have reached the homeserver.
    attempted_at: float | None = None


@dataclass(frozen=True)
class OutboxItem:
    id: int
    room_id: str
    txn_id: str
    content: dict[str, Any]
    ref: str | None


def case_purpose(case_id: int) -> str:
    return f"case:{case_id}"


def duty_purpose(counsellor: str) -> str:
    return f"duty:{counsellor}"


SUPERVISORS_PURPOSE = "supervisors"

# How many warga asked with "!hapus" to be forgotten: a count, nothing else.
FORGET_REQUESTS_KEY = "forget_requests"
PSEUDONYM_HEX = 32


def pseudonym(key: bytes, user_id: str) -> str:
    """A keyed hash standing for ``user_id``: the same for the same person and key.

    Without the key it cannot be turned back into the ID, nor checked against a
    guessed ID (HMAC-SHA256, the first 128 bits in hex).
    """
    digest = hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()
    return digest[:PSEUDONYM_HEX]


@dataclass(frozen=True)
class Forgotten:
    """What :meth:`Tx.forget_warga` removed, for telling the warga."""

    curhats: int
    chats: int


def _case(row: aiosqlite.Row) -> Case:
    d = dict(row)
    for flag in ("counsellor_brought", "warga_brought", "told_no_counsellor", "urgent"):
        d[flag] = bool(d[flag])
    return Case(**d)


class Tx:
    """Queries and updates inside one transaction."""

    def __init__(
        self, db: aiosqlite.Connection, pseudonym_of: Callable[[str], str] | None
    ) -> None:
        self._db = db
        self._pseudonym_of = pseudonym_of

    def _ref(self, warga: str) -> str | None:
        return None if self._pseudonym_of is None else self._pseudonym_of(warga)

    async def _one(self, sql: str, args: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async with self._db.execute(sql, tuple(args)) as cur:
            return await cur.fetchone()

    async def _all(self, sql: str, args: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self._db.execute(sql, tuple(args)) as cur:
            return list(await cur.fetchall())

    async def _run(self, sql: str, args: Iterable[Any] = ()) -> int:
        async with self._db.execute(sql, tuple(args)) as cur:
            return cur.lastrowid or 0

    # -- meta and dedup ----------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    async def delete_meta(self, key: str) -> None:
        await self._run("DELETE FROM meta WHERE key = ?", (key,))

    async def set_meta(self, key: str, value: str) -> None:
        await self._run(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def claim_event(self, event_id: str) -> bool:
        """Record an event as handled; False if it was handled before."""
        row = await self._one(
            "SELECT 1 FROM handled_events WHERE event_id = ?", (event_id,)
        )
        if row is not None:
            return False
        await self._run(
            "INSERT INTO handled_events (event_id, handled_at) VALUES (?, ?)",
            (event_id, time.time()),
        )
        return True

    # -- owned rooms -------------------------------------------------------------

    async def owned_room(self, purpose: str) -> OwnedRoom | None:
        row = await self._one("SELECT * FROM owned_rooms WHERE purpose = ?", (purpose,))
        if row is None:
            return None
        return OwnedRoom(
            row["purpose"],
            row["token"],
            row["room_id"],
            row["attempts"],
            bool(row["closed"]),
            row["attempted_at"],
        )

    async def owned_room_by_id(self, room_id: str) -> OwnedRoom | None:
        row = await self._one(
            "SELECT purpose FROM owned_rooms WHERE room_id = ?", (room_id,)
        )
        return None if row is None else await self.owned_room(row["purpose"])

    async def want_room(self, purpose: str, token: str) -> OwnedRoom:
        """Register a room to be created; keeps an existing registration."""
        await self._run(
            "INSERT OR IGNORE INTO owned_rooms (purpose, token) VALUES (?, ?)",
            (purpose, token),
        )
        room = await self.owned_room(purpose)
        assert room is not None
        return room

    async def note_room_attempt(self, purpose: str) -> None:
        await self._run(
            "UPDATE owned_rooms SET attempts = attempts + 1, attempted_at = ?"
            " WHERE purpose = ?",
            (time.time(), purpose),
        )

    async def room_attempt_refused(self, purpose: str) -> None:
        """The homeserver said no: that attempt made no room, none is on its way."""
        await self._run(
            "UPDATE owned_rooms SET attempted_at = NULL WHERE purpose = ?", (purpose,)
        )

    async def set_room_id(self, purpose: str, room_id: str) -> None:
        await self._run(
            "UPDATE owned_rooms SET room_id = ?, created_at = ? WHERE purpose = ?",
            (room_id, time.time(), purpose),
        )

    async def close_owned_room(self, purpose: str) -> None:
        await self._run(
            "UPDATE owned_rooms SET closed = 1 WHERE purpose = ?", (purpose,)
        )

    async def forget_owned_room(self, purpose: str) -> None:
        await self._run("DELETE FROM owned_rooms WHERE purpose = ?", (purpose,))

    async def rooms_wanted(self) -> list[OwnedRoom]:
        rows = await self._all(
            "SELECT purpose FROM owned_rooms WHERE room_id IS NULL AND closed = 0"
        )
        return [r for row in rows if (r := await self.owned_room(row["purpose"]))]

    # -- direct chats ------------------------------------------------------------

    async def direct_chat(self, room_id: str) -> DirectChat | None:
        row = await self._one(
            "SELECT room_id, warga, step, category, pref_type, pref_gender,"
            " rating_case, rating_event_id, updated_at, pref_religion, urgent,"
            " resume_step, pref_language FROM dm_rooms WHERE room_id = ?",
            (room_id,),
        )
        if row is None:
            return None
        return DirectChat(**{**dict(row), "urgent": bool(row["urgent"])})

    async def add_direct_chat(self, room_id: str, warga: str) -> None:
        await self._run(
            "INSERT OR IGNORE INTO dm_rooms (room_id, warga, step, updated_at)"
            " VALUES (?, ?, 'joining', ?)",
            (room_id, warga, time.time()),
        )

    async def update_direct_chat(self, room_id: str, **fields: Any) -> None:
        allowed = {
            "step",
            "category",
            "pref_type",
            "pref_gender",
            "pref_religion",
            "pref_language",
            "urgent",
            "rating_case",
            "rating_event_id",
            "resume_step",
            "warga",
        }
        assert set(fields) <= allowed, fields
        sets = ", ".join(f"{k} = ?" for k in fields)
        await self._run(
            f"UPDATE dm_rooms SET {sets}, updated_at = ? WHERE room_id = ?",
            (*fields.values(), time.time(), room_id),
        )

    async def drop_direct_chat(self, room_id: str) -> None:
        await self._run("DELETE FROM dm_rooms WHERE room_id = ?", (room_id,))

    # -- cases -------------------------------------------------------------------

    async def add_case(
        self,
        *,
        code: str,
        warga: str,
        dm_room: str,
        category: str,
        pref_type: str | None,
        pref_gender: str | None,
        pref_religion: str | None = None,
        urgent: bool = False,
        pref_language: str | None = None,
    ) -> Case:
        case_id = await self._run(
            "INSERT INTO cases (code, warga, warga_ref, dm_room, category, pref_type,"
            " pref_gender, pref_religion, urgent, status, requested_at, pref_language)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'waiting', ?, ?)",
            (
                code,
                warga,
                self._ref(warga),
                dm_room,
                category,
                pref_type,
                pref_gender,
                pref_religion,
                int(urgent),
                time.time(),
                pref_language,
            ),
        )
        case = await self.case(case_id)
        assert case is not None
        return case

    async def code_in_use(self, code: str) -> bool:
        return (
            await self._one("SELECT 1 FROM cases WHERE code = ?", (code,)) is not None
        )

    async def case(self, case_id: int) -> Case | None:
        row = await self._one("SELECT * FROM cases WHERE id = ?", (case_id,))
        return None if row is None else _case(row)

    async def case_by_code(self, code: str) -> Case | None:
        row = await self._one("SELECT * FROM cases WHERE code = ?", (code,))
        return None if row is None else _case(row)

    async def open_case_of(
        self, warga: str, statuses: tuple[str, ...] = WARGA_OPEN_STATUSES
    ) -> Case | None:
        """The warga's latest curhat in one of ``statuses``."""
        marks = ",".join("?" * len(statuses))
        row = await self._one(
            f"SELECT * FROM cases WHERE warga = ? AND status IN ({marks})"
            " ORDER BY id DESC LIMIT 1",
            (warga, *statuses),
        )
        return None if row is None else _case(row)

    async def open_cases(self) -> list[Case]:
        """Open curhats in queue order: urgent ones first, then the oldest."""
        marks = ",".join("?" * len(OPEN_STATUSES))
        rows = await self._all(
            f"SELECT * FROM cases WHERE status IN ({marks})"
            " ORDER BY urgent DESC, requested_at, id",
            OPEN_STATUSES,
        )
        return [_case(r) for r in rows]

    async def update_case(self, case_id: int, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        await self._run(
            f"UPDATE cases SET {sets} WHERE id = ?", (*fields.values(), case_id)
        )

    async def queue_position(self, case: Case) -> int:
        """The case's place among waiting curhats: urgent ones go first."""
        row = await self._one(
            "SELECT COUNT(*) AS n FROM cases WHERE status = 'waiting' AND ("
            " urgent > ? OR (urgent = ? AND (requested_at < ?"
            " OR (requested_at = ? AND id <= ?))))",
            (
                int(case.urgent),
                int(case.urgent),
                case.requested_at,
                case.requested_at,
                case.id,
            ),
        )
        assert row is not None
        return int(row["n"])

    async def waiting_count(self) -> int:
        row = await self._one(
            "SELECT COUNT(*) AS n FROM cases WHERE status = 'waiting'"
        )
        assert row is not None
        return int(row["n"])

    async def previous_counsellor(self, warga: str) -> str | None:
        """The counsellor of this warga's last curhat that really took place.

        Found by pseudonym, so it still works after the Matrix ID was forgotten;
        a store opened without a pseudonym key matches the Matrix ID instead.
        """
        ref = self._ref(warga)
        column = "warga" if ref is None else "warga_ref"
        row = await self._one(
            f"SELECT counsellor FROM cases WHERE {column} = ? AND status = 'closed'"
            " AND started_at IS NOT NULL AND counsellor IS NOT NULL"
            " ORDER BY closed_at DESC LIMIT 1",
            (warga if ref is None else ref,),
        )
        return None if row is None else str(row["counsellor"])

    async def last_offer_times(self) -> dict[str, float]:
        """When each counsellor last got an offer, for ``order: round_robin``."""
        rows = await self._all(
            "SELECT counsellor, MAX(offered_at) AS at FROM offers GROUP BY counsellor"
        )
        return {r["counsellor"]: float(r["at"]) for r in rows}

    # -- counsellors' own availability -------------------------------------------

    async def availability(self) -> dict[str, bool]:
        """Counsellors who said ``!siap`` (True) or ``!istirahat`` (False)."""
        rows = await self._all(
            "SELECT user_id, available FROM counsellor_state"
            " WHERE available IS NOT NULL"
        )
        return {r["user_id"]: bool(r["available"]) for r in rows}

    async def set_availability(self, user_id: str, available: bool | None) -> None:
        await self._run(
            "INSERT INTO counsellor_state (user_id, available, changed_at)"
            " VALUES (?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
            " available = excluded.available, changed_at = excluded.changed_at",
            (user_id, None if available is None else int(available), time.time()),
        )

    async def busy_counts(self) -> dict[str, int]:
        marks = ",".join("?" * len(BUSY_STATUSES))
        rows = await self._all(
            f"SELECT counsellor, COUNT(*) AS n FROM cases WHERE status IN ({marks})"
            " AND counsellor IS NOT NULL GROUP BY counsellor",
            BUSY_STATUSES,
        )
        return {r["counsellor"]: int(r["n"]) for r in rows}

    async def all_cases(self, since: float) -> list[Case]:
        rows = await self._all(
            "SELECT * FROM cases WHERE requested_at >= ? ORDER BY id", (since,)
        )
        return [_case(r) for r in rows]

    # -- offers ------------------------------------------------------------------
    # An offer is "pending", then "accepted", "declined", "timed_out", "withdrawn"
    # (the curhat went elsewhere or ended) or "unusable" (the account cannot be
    # brought in); an accepted one becomes "no_show" when its counsellor never came
    # into the room.

    async def add_offer(
        self, case_id: int, counsellor: str, step_index: int, timeout_s: float
    ) -> Offer:
        now = time.time()
        offer_id = await self._run(
            "INSERT INTO offers (case_id, counsellor, step_index, status,"
            " offered_at, expires_at) VALUES (?, ?, ?, 'pending', ?, ?)",
            (case_id, counsellor, step_index, now, now + timeout_s),
        )
        offer = await self.offer(offer_id)
        assert offer is not None
        return offer

    async def offer(self, offer_id: int) -> Offer | None:
        row = await self._one("SELECT * FROM offers WHERE id = ?", (offer_id,))
        return None if row is None else Offer(**dict(row))

    async def offers_of_case(self, case_id: int) -> list[Offer]:
        rows = await self._all(
            "SELECT * FROM offers WHERE case_id = ? ORDER BY id", (case_id,)
        )
        return [Offer(**dict(r)) for r in rows]

    async def pending_offers(self) -> list[Offer]:
        rows = await self._all(
            "SELECT * FROM offers WHERE status = 'pending' ORDER BY id"
        )
        return [Offer(**dict(r)) for r in rows]

    async def pending_offer_by_event(self, event_id: str) -> Offer | None:
        row = await self._one(
            "SELECT * FROM offers WHERE event_id = ? AND status = 'pending'",
            (event_id,),
        )
        return None if row is None else Offer(**dict(row))

    async def answer_offer(self, offer_id: int, status: str) -> None:
        await self._run(
            "UPDATE offers SET status = ?, answered_at = ? WHERE id = ?",
            (status, time.time(), offer_id),
        )

    async def set_offer_revoked(self, offer_id: int) -> None:
        await self._run(
            "UPDATE offers SET revoked_at = ? WHERE id = ?", (time.time(), offer_id)
        )

    async def set_offer_event(self, offer_id: int, event_id: str) -> None:
        await self._run(
            "UPDATE offers SET event_id = ? WHERE id = ?", (event_id, offer_id)
        )

    # -- forgetting ------------------------------------------------------------------

    async def forget_before(self, closed_before: float) -> Forgotten:
        """Cut the link between warga and what ended or went quiet before the cut-off.

        Curhats that ended before it lose their warga and direct chat; what stays is
        what the figures and routing need: category, times, rating, counts, the
        pseudonym. A direct chat left waiting for a rating of such a curhat stops
        waiting. A direct chat untouched since the cut-off, whose warga has no curhat
        still linked, loses its warga and intake choices; the row stays, so the bot
        still answers there (the next person to write starts afresh), except for a
        chat the warga left, which is deleted.
        """
        marks = ",".join("?" * len(FINAL_STATUSES))
        async with self._db.execute(
            f"UPDATE cases SET warga = NULL, dm_room = NULL"
            f" WHERE status IN ({marks}) AND closed_at < ? AND warga IS NOT NULL",
            (*FINAL_STATUSES, closed_before),
        ) as cur:
            curhats = cur.rowcount

        await self._run(
            "UPDATE dm_rooms SET rating_case = NULL, rating_event_id = NULL,"
            " step = CASE step WHEN 'rating' THEN 'idle' ELSE step END"
            " WHERE rating_case IN (SELECT id FROM cases WHERE warga IS NULL)"
        )
        quiet = (
            " WHERE warga IS NOT NULL AND updated_at < ? AND NOT EXISTS"
            " (SELECT 1 FROM cases WHERE cases.warga = dm_rooms.warga)"
        )
        async with self._db.execute(
            "DELETE FROM dm_rooms" + quiet + " AND step = 'gone'", (closed_before,)
        ) as cur:
            chats = cur.rowcount
        chats += await self._blank_chats(quiet, (closed_before,))

        await self._run(
            "DELETE FROM handled_events WHERE handled_at < ?", (closed_before,)
        )
        return Forgotten(curhats=curhats, chats=chats)

    async def forget_warga(self, warga: str) -> Forgotten:
        """Everything held about one warga who asked for it, and count the request.

        Their curhats stay for the figures with no warga, direct chat or pseudonym;
        their direct chats stay as rows with no warga and no intake choices. The
        caller makes sure no curhat of theirs is still open.
        """
        ref = self._ref(warga)
        async with self._db.execute(
            "UPDATE cases SET warga = NULL, dm_room = NULL, warga_ref = NULL"
            " WHERE warga = ? OR (warga_ref IS NOT NULL AND warga_ref = ?)",
            (warga, ref),
        ) as cur:
            curhats = cur.rowcount
        chats = await self._blank_chats(" WHERE warga = ?", (warga,))

        count = int(await self.get_meta(FORGET_REQUESTS_KEY) or 0)
        await self.set_meta(FORGET_REQUESTS_KEY, str(count + 1))
        return Forgotten(curhats=curhats, chats=chats)

    async def _blank_chats(self, where: str, args: Iterable[Any]) -> int:
        """Direct chats start afresh with nobody's ID and nobody's choices in them."""
        async with self._db.execute(
            "UPDATE dm_rooms SET warga = NULL, step = 'idle', category = NULL,"
            " pref_type = NULL, pref_gender = NULL, pref_religion = NULL,"
            " pref_language = NULL,"
            " rating_case = NULL, rating_event_id = NULL, urgent = 0,"
            " resume_step = NULL, updated_at = ?" + where,
            (time.time(), *args),
        ) as cur:
            return cur.rowcount

    # -- events waiting for keys -------------------------------------------------

    async def add_undecrypted(
        self, event_id: str, room_id: str, first_seen: float
    ) -> None:
        await self._run(
            "INSERT OR IGNORE INTO undecrypted (event_id, room_id, first_seen)"
            " VALUES (?, ?, ?)",
            (event_id, room_id, first_seen),
        )

    async def drop_undecrypted(self, event_id: str) -> None:
        await self._run("DELETE FROM undecrypted WHERE event_id = ?", (event_id,))

    async def all_undecrypted(self) -> list[tuple[str, str, float]]:
        rows = await self._all(
            "SELECT event_id, room_id, first_seen FROM undecrypted ORDER BY first_seen"
        )
        return [(r["event_id"], r["room_id"], r["first_seen"]) for r in rows]

    # -- outbox ------------------------------------------------------------------

    async def enqueue(
        self, room_id: str, txn_id: str, content: dict[str, Any], ref: str | None
    ) -> None:
        await self._run(
            "INSERT OR IGNORE INTO outbox (room_id, txn_id, content, ref, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (room_id, txn_id, json.dumps(content), ref, time.time()),
        )

    async def outbox(self) -> list[OutboxItem]:
        rows = await self._all("SELECT * FROM outbox ORDER BY id")
        return [
            OutboxItem(
                r["id"], r["room_id"], r["txn_id"], json.loads(r["content"]), r["ref"]
            )
            for r in rows
        ]

    async def sent(self, item_id: int) -> None:
        await self._run("DELETE FROM outbox WHERE id = ?", (item_id,))


class Store:
    """The SQLite database, one connection, one transaction at a time."""

    def __init__(
        self, db: aiosqlite.Connection, pseudonym_key: bytes | None = None
    ) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        self._pseudonym_of: Callable[[str], str] | None = None
        if pseudonym_key is not None:
            key = pseudonym_key
            self._pseudonym_of = lambda user_id: pseudonym(key, user_id)

    @classmethod
    async def open(cls, path: Path, *, pseudonym_key: bytes | None = None) -> Store:
        """Open (and migrate) the store.

        The running bot passes ``pseudonym_key`` (the configured pseudonym secret);
        without it no pseudonyms are written, which is for tools and tests that
        only read.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = FULL")
        await db.execute("PRAGMA foreign_keys = ON")
        # What is forgotten is overwritten on disk, not left in free pages.
        await db.execute("PRAGMA secure_delete = ON")
        await _migrate(db)
        store = cls(db, pseudonym_key)
        await store._fill_pseudonyms()
        return store

    async def _fill_pseudonyms(self) -> None:
        """Give curhats made before pseudonyms existed theirs, while the ID is known."""
        if self._pseudonym_of is None:
            return
        async with self.tx() as tx:
            rows = await tx._all(
                "SELECT DISTINCT warga FROM cases"
                " WHERE warga IS NOT NULL AND warga_ref IS NULL"
            )
            for row in rows:
                await tx._run(
                    "UPDATE cases SET warga_ref = ? WHERE warga = ?",
                    (self._pseudonym_of(row["warga"]), row["warga"]),
                )
        if rows:
            logger.info("pseudonyms given to the curhats of %d warga", len(rows))

    async def close(self) -> None:
        await self._db.close()

    async def _begin(self) -> None:
        """BEGIN, undone again if the task is cancelled while it runs.

        aiosqlite runs the BEGIN on its own thread, which a cancelled task does not
        stop: left there, the open transaction would make every later BEGIN fail
        ("cannot start a transaction within a transaction"). The sync watchdog
        cancels a stuck sync loop, which may be just here.
        """
        begin = asyncio.ensure_future(self._db.execute("BEGIN IMMEDIATE"))
        try:
            await asyncio.shield(begin)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await begin
                await self._db.execute("ROLLBACK")
            raise

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[Tx]:
        """One transaction: committed on success, rolled back on any exception."""
        async with self._lock:
            await self._begin()
            try:
                yield Tx(self._db, self._pseudonym_of)
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")


async def _migrate(db: aiosqlite.Connection) -> None:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0

    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        logger.info("applying database migration %d", number)
        await db.executescript(
            f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;"
        )
