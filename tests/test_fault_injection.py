"""The bot is killed with SIGKILL at random moments over 50 curhats.

The bot runs as the real ``sobat-matrix run`` process. Five warga each go through
ten curhats while three counsellors accept whatever they are offered; meanwhile the
bot is killed (SIGKILL, no clean-up) every few seconds and started again. Nobody
waits for anything the bot would have lost: every step must come through, and at
the end the invariants of a crash-safe bot must hold:

- every request made exactly one curhat, and every curhat exactly one room;
- the bot created no room that no curhat owns;
- nothing is pending: no offer, no counsellor counted busy, no unsent notice.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sobat_matrix.crashpoints import POINTS
from sobat_matrix.devserver import DevServer
from sobat_matrix.devtools import Actor
from sobat_matrix.devtools.stage import Stage
from sobat_matrix.store import Store

from .botkit import CODE, policy_text, unique

pytestmark = pytest.mark.integration

WARGA = int(os.environ.get("SOBAT_FAULT_WARGA", "5"))
CURHATS_EACH = int(os.environ.get("SOBAT_FAULT_CURHATS", "10"))
STEP_TIMEOUT_S = 90


class BotProcess:
    """``sobat-matrix run`` as a child process that can be killed outright."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.crashes = 0

    def start(self, env: dict[str, str] | None = None) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sobat_matrix",
                    "run",
                    "--config",
                    str(self.config),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


@pytest.fixture
async def stage(synapse: DevServer, tmp_path: Path) -> Stage:
    server_name = synapse.server_name
    ids = {k: f"@{unique('fk' + k)}:{server_name}" for k in ("a", "b", "c")}
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text(ids, fast_timeout="30s"))
    return await Stage.prepare(
        synapse,
        tmp_path / "stage",
        policy,
        bot_localpart=unique("sobatfk"),
        admin_localpart=unique("adminfk"),
        supervisor_localparts=(unique("pengawasfk"),),
        warga_localparts=tuple(unique("wargafk") for _ in range(WARGA)),
    )


@pytest.fixture
def bot(stage: Stage, tmp_path: Path) -> Iterator[BotProcess]:
    """The bot process, killed at teardown whatever happened (timeouts included)."""
    process = BotProcess(stage.config_path, tmp_path / "bot.log")
    yield process
    if process.proc is not None and process.proc.poll() is None:
        process.proc.kill()
        process.proc.wait()


@pytest.fixture
async def actors(stage: Stage, tmp_path: Path) -> AsyncIterator[dict[str, Actor]]:
    logged_in: dict[str, Actor] = {}
    for account in [*stage.counsellors.values(), *stage.warga.values()]:
        store = tmp_path / "actors" / account.user_id.strip("@").replace(":", "_")
        logged_in[account.user_id] = await Actor.login(
            stage.server.url, account.user_id, account.password, store
        )
    yield logged_in
    for actor in logged_in.values():
        await actor.close()


async def warga_loop(warga: Actor, bot: str, codes: list[str]) -> None:
    dm = await warga.start_direct_chat(bot)
    await warga.wait_for_text("setuju", room_id=dm, timeout=STEP_TIMEOUT_S)
    for _ in range(CURHATS_EACH):
        codes.append(await one_curhat(warga, dm))
        # Any message starts the next curhat.
        await warga.send_text(dm, "halo lagi")
        await warga.wait_for_text("setuju", room_id=dm, timeout=STEP_TIMEOUT_S)


async def one_curhat(warga: Actor, dm: str) -> str:
    """From consent to the rating; returns the case code."""
    await warga.send_text(dm, "ya")
    await warga.wait_for_text("Tentang apa", room_id=dm, timeout=STEP_TIMEOUT_S)
    await warga.send_text(dm, "ekonomi")
    receipt = await warga.wait_for_text(
        "antrean nomor", room_id=dm, timeout=STEP_TIMEOUT_S
    )
    match = CODE.search(receipt.body or "")
    assert match, receipt.body

    start = await warga.wait_for_text("sudah hadir", timeout=STEP_TIMEOUT_S)
    await warga.send_text(start.room_id, "!selesai")
    await warga.wait_for_text("Seberapa membantu", room_id=dm, timeout=STEP_TIMEOUT_S)
    await warga.send_text(dm, "5")
    await warga.wait_for_text("penilaian", room_id=dm, timeout=STEP_TIMEOUT_S)
    return match.group(1)


async def counsellor_loop(counsellor: Actor) -> None:
    """Accept every offer; an offer that expired meanwhile just gets "no offer"."""
    while True:
        # "Tawaran curhat baru: #CODE"; the duty room's welcome mentions offers too.
        offer = await counsellor.wait_for_text("Tawaran curhat baru: #", timeout=3600)
        match = CODE.search(offer.body or "")
        assert match, offer.body
        await counsellor.send_text(offer.room_id, f"!terima {match.group(1)}")


async def killer(bot: BotProcess, stop: asyncio.Event, rng: random.Random) -> None:
    if os.environ.get("SOBAT_FAULT_NO_KILL"):
        return
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=rng.uniform(2.0, 8.0))
        except TimeoutError:
            bot.kill()
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            bot.start()


@pytest.mark.timeout(900)
async def test_sigkill_at_random_points_over_50_curhats(
    stage: Stage, actors: dict[str, Actor], bot: BotProcess
) -> None:
    rng = random.Random(os.environ.get("SOBAT_FAULT_SEED", "sobat"))
    bot.start()
    stop = asyncio.Event()
    codes: list[str] = []
    counsellor_tasks = [
        asyncio.create_task(counsellor_loop(actors[c])) for c in stage.counsellors
    ]
    kill_task = asyncio.create_task(killer(bot, stop, rng))
    warga_tasks: list[asyncio.Task[None]] = []
    try:
        warga_tasks += [
            asyncio.create_task(warga_loop(actors[w], stage.bot.user_id, codes))
            for w in stage.warga
        ]
        # Counsellor loops never end by themselves: one that ends has failed.
        waiting = set(warga_tasks)
        while waiting:
            done, _ = await asyncio.wait(
                [*waiting, *counsellor_tasks], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                task.result()  # re-raises the first failure, a counsellor's included
            waiting -= done
    finally:
        stop.set()
        await kill_task
        for task in [*counsellor_tasks, *warga_tasks]:
            task.cancel()
        await asyncio.gather(*counsellor_tasks, *warga_tasks, return_exceptions=True)
        bot.stop()

    assert bot.kills >= 5, "the bot was hardly killed; the test proved little"
    assert len(codes) == WARGA * CURHATS_EACH == len(set(codes))
    # Notices still queued at the last stop go out at the next start: one more
    # start, without kills, must empty the outbox.
    bot.start()
    await outbox_drained(stage.state_dir / "bot-data" / "sobat.db")
    bot.stop()

    await assert_consistent(stage, codes, {w: CURHATS_EACH for w in stage.warga})


async def assert_consistent(
    stage: Stage, codes: list[str], per_warga: dict[str, int]
) -> None:
    """The invariants of case 2, read from the stopped bot's store and the server."""
    store = await Store.open(stage.state_dir / "bot-data" / "sobat.db")
    try:
        async with store.tx() as tx:
            cases = await tx.all_cases(0)
            rooms = await tx._all(
                "SELECT purpose, room_id FROM owned_rooms WHERE purpose LIKE 'case:%'"
            )
            staff = await tx._all(
                "SELECT room_id FROM owned_rooms WHERE purpose NOT LIKE 'case:%'"
            )
            pending = await tx.pending_offers()
            busy = await tx.busy_counts()
            outbox = await tx.outbox()
    finally:
        await store.close()

    assert sorted(c.code for c in cases) == sorted(codes)
    assert Counter(c.warga for c in cases) == per_warga
    assert {c.status for c in cases} == {"closed"} and {c.rating for c in cases} == {5}
    room_ids = [r["room_id"] for r in rooms]
    assert len(room_ids) == len(cases) == len(set(room_ids)) and None not in room_ids
    assert pending == [] and busy == {}

    # The homeserver agrees: the bot created one room per curhat, plus the duty
    # rooms and the supervisors' room, and not one more.
    created = await rooms_created_by(stage, stage.bot.user_id)
    staff_ids = [r["room_id"] for r in staff]
    assert len(staff_ids) == len(stage.counsellors) + 1
    assert sorted(created) == sorted(room_ids + staff_ids)
    assert outbox == []


async def outbox_drained(db: Path, timeout_s: float = 60.0) -> None:
    """Wait until the running bot has sent every queued notice."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            (left,) = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()
        if left == 0:
            return
        assert loop.time() < deadline, f"{left} notices never sent"
        await asyncio.sleep(0.5)


async def rooms_created_by(stage: Stage, creator: str) -> list[str]:
    found: list[str] = []
    offset = 0
    while True:
        page = await stage.server._request(
            "GET",
            f"/_synapse/admin/v1/rooms?limit=500&from={offset}",
            token=stage.admin_token,
        )
        for room in page["rooms"]:
            if room.get("creator") == creator:
                found.append(room["room_id"])
        if "next_batch" not in page:
            return found
        offset = int(page["next_batch"])


async def restart_after_crash(bot: BotProcess) -> None:
    """Start the bot again once it killed itself, as a supervisor would."""
    while True:
        assert bot.proc is not None
        code = bot.proc.poll()
        if code is not None:
            assert code == -signal.SIGKILL, f"the bot ended with {code}"
            bot.crashes += 1
            bot.start()
        await asyncio.sleep(0.2)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("point", POINTS)
async def test_killed_at_a_named_point_the_curhat_still_ends_well(
    stage: Stage, actors: dict[str, Actor], bot: BotProcess, tmp_path: Path, point: str
) -> None:
    """One SIGKILL exactly at ``point``; the curhat goes on as if nothing happened."""
    mark = tmp_path / "crashed"
    bot.start(env={"SOBAT_CRASH_AT": point, "SOBAT_CRASH_MARK": str(mark)})
    counsellor_tasks = [
        asyncio.create_task(counsellor_loop(actors[c])) for c in stage.counsellors
    ]
    restarter = asyncio.create_task(restart_after_crash(bot))
    warga = actors[next(iter(stage.warga))]
    try:
        dm = await warga.start_direct_chat(stage.bot.user_id)
        await warga.wait_for_text("setuju", room_id=dm, timeout=STEP_TIMEOUT_S)
        code = await one_curhat(warga, dm)
        await outbox_drained(stage.state_dir / "bot-data" / "sobat.db")
    finally:
        restarter.cancel()
        for task in counsellor_tasks:
            task.cancel()
        await asyncio.gather(restarter, *counsellor_tasks, return_exceptions=True)
        bot.stop()

    assert mark.read_text() == point and bot.crashes == 1
    await assert_consistent(stage, [code], {warga.user_id: 1})
