"""``sobat-matrix demo``: the whole service on this machine, on a throwaway Synapse.

Without ``--scripted`` it starts a local Synapse (SQLite, 127.0.0.1 only, no
federation), creates the bot, the counsellors of the policy, a supervisor and a test
warga, and runs the bot until Ctrl-C, printing how to connect Element.

With ``--scripted`` it does the same on a fresh homeserver and then plays one whole
curhat with real end-to-end-encrypted clients, printing each step with its time. It
exits 0 only if every step happened.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from . import logsetup
from .devserver import DevServer, DevServerError, free_port, start_synapse
from .devtools import Actor
from .devtools.stage import Stage
from .service import Service

logger = logging.getLogger(__name__)

SERVER_NAME = "sukabumi.test"
CODE = re.compile(r"#([A-Z0-9]{4})\b")
T = TypeVar("T")


def sample_policy() -> Path:
    """The Sukabumi sample policy, from the working folder or the source tree."""
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        candidate = base / "policies" / "sukabumi.yaml"
        if candidate.exists():
            return candidate
    raise FileNotFoundError("policies/sukabumi.yaml not found; pass --policy")


# Time rules left out of the demo's copy of the sample policy.
TIME_KEYS = ("service_hours", "holidays")
COUNSELLOR_TIME_KEYS = ("schedule", "leave")


def always_open(policy: Path, folder: Path) -> Path:
    """A copy of ``policy`` without hours, holidays, schedules or leave.

    The demo is tried at any hour; with the sample's real hours it would answer
    "closed" at night and on Sundays. Everything else (counsellors, routes,
    urgent words, referrals) stays as written. A policy given with ``--policy``
    is used as it is.
    """
    data = yaml.safe_load(policy.read_text(encoding="utf-8"))
    for key in TIME_KEYS:
        data.pop(key, None)
    for counsellor in data.get("counsellors", []):
        for key in COUNSELLOR_TIME_KEYS:
            counsellor.pop(key, None)
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"{policy.stem}-always-open.yaml"
    header = (
        f"# Made by the demo from {policy.name}: the same policy, open at all hours.\n"
    )
    copy.write_text(
        header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return copy


def _port(wanted: int) -> int:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", wanted))
        except OSError:
            return free_port()
    return wanted


def main(args: argparse.Namespace) -> int:
    logsetup.configure("WARNING" if args.scripted else "INFO")
    if args.scripted:
        # nio warns about every Olm session it sets up, as the first messages
        # between new devices do; the step lines are what the scripted run shows.
        logging.getLogger("nio").setLevel(logging.ERROR)
        # Its recovery key lies in a temporary folder deleted at the end.
        logging.getLogger("sobat_matrix.crosssign").setLevel(logging.ERROR)
    try:
        if args.scripted:
            return asyncio.run(scripted(args.policy))
        return asyncio.run(interactive(args.state_dir, args.policy, args.port))
    except DevServerError as exc:
        print(f"sobat-matrix demo: {exc}", file=sys.stderr)
        return 1


async def _setup(state_dir: Path, policy: Path, port: int) -> tuple[DevServer, Stage]:
    # Relaxed limits: people trying the demo log in from 127.0.0.1 again and again,
    # which Synapse's per-address login limit would soon refuse. A city's own
    # Synapse keeps its limits; only the bot is exempted (as Stage does here too).
    server = await start_synapse(
        state_dir / "synapse",
        server_name=SERVER_NAME,
        port=_port(port),
        relaxed_ratelimits=True,
    )
    try:
        stage = await Stage.prepare(server, state_dir, policy)
    except BaseException:
        await server.stop()
        raise
    return server, stage


async def interactive(state_dir: Path, policy: Path | None, port: int) -> int:
    """Run Synapse and the bot until Ctrl-C or SIGTERM."""
    state_dir = Path.cwd() / state_dir if not state_dir.is_absolute() else state_dir
    if policy is None:
        policy = always_open(sample_policy(), state_dir)
    server, stage = await _setup(state_dir, policy, port)
    config, loaded = stage.load()
    service = Service(config, loaded)
    try:
        await service.start()
        print(_welcome(server, stage))

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await service.stop()
        await server.stop()
    return 0


def _welcome(server: DevServer, stage: Stage) -> str:
    lines = [
        "",
        "Sobat Sukabumi is running on a local Synapse.",
        f"  Homeserver URL: {server.url}   (server name {server.server_name})",
        f"  State folder:   {stage.state_dir}",
        "",
        "Accounts (user ID / password):",
        f"  {'bot':<10}  {stage.bot.user_id}",
    ]
    people = [
        *(("counsellor", a) for a in stage.counsellors.values()),
        *(("supervisor", a) for a in stage.supervisors.values()),
        *(("warga", a) for a in stage.warga.values()),
    ]
    width = max(len(a.user_id) for _, a in people)
    for role, account in people:
        lines.append(f"  {role:<10}  {account.user_id:<{width}}  {account.password}")
    lines += [
        "",
        "Connect Element (Web or Desktop): Sign in > Edit (homeserver) > enter",
        f"  {server.url}   then sign in with one of the accounts above.",
        f"As the warga, start a chat with {stage.bot.user_id} and say anything.",
        "Counsellors find offers in their duty room; supervisors type !statistik.",
        "Ctrl-C stops the bot and the homeserver; the state folder keeps them.",
        "",
    ]
    return "\n".join(lines)


class Steps:
    """Prints each step of the scripted curhat with how long it took."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.count = 0

    async def run(self, name: str, action: Callable[[], Awaitable[T]]) -> T:
        begin = time.monotonic()
        try:
            result = await action()
        except BaseException:
            print(f"[FAIL] {name}", flush=True)
            raise
        self.count += 1
        print(f"[ ok ] {time.monotonic() - begin:6.2f} s  {name}", flush=True)
        return result

    def report(self, name: str, seconds: float) -> None:
        self.count += 1
        print(f"[ ok ] {seconds:6.2f} s  {name}", flush=True)


async def scripted(policy: Path | None) -> int:
    """One whole curhat with real encrypted clients; 0 only if every step happened."""
    with tempfile.TemporaryDirectory(prefix="sobat-scripted-") as tmp:
        state_dir = Path(tmp)
        if policy is None:
            policy = always_open(sample_policy(), state_dir)
        steps = Steps()
        server, stage = await steps.run(
            "start a local Synapse and create the accounts",
            lambda: _setup(state_dir, policy, free_port()),
        )
        service: Service | None = None
        actors: list[Actor] = []
        try:
            people = await _log_in_people(steps, stage, state_dir, actors)
            config, loaded = stage.load()
            service = Service(config, loaded)
            await steps.run("start the bot", service.start)
            await _play(steps, stage, service, people)
        except Exception as exc:  # noqa: BLE001 - reported, then exit code 1
            print(f"scripted curhat failed: {type(exc).__name__}: {exc}", flush=True)
            return 1
        finally:
            for actor in actors:
                await actor.close()
            if service is not None:
                await service.stop()
            await server.stop()
    print(f"all {steps.count} steps happened", flush=True)
    return 0


async def _log_in_people(
    steps: Steps, stage: Stage, state_dir: Path, actors: list[Actor]
) -> tuple[Actor, list[Actor], Actor]:
    """The warga, the counsellors and the supervisor, each on an E2EE device."""
    server = stage.server

    async def login(account: Any) -> Actor:
        store = state_dir / "actors" / account.user_id.strip("@").replace(":", "_")
        actor = await Actor.login(server.url, account.user_id, account.password, store)
        actors.append(actor)
        return actor

    warga = await steps.run(
        "warga logs in (E2EE device)", lambda: login(*stage.warga.values())
    )
    counsellors = [await login(a) for a in stage.counsellors.values()]
    supervisor = await login(*stage.supervisors.values())
    return warga, counsellors, supervisor


async def _play(
    steps: Steps,
    stage: Stage,
    service: Service,
    people: tuple[Actor, list[Actor], Actor],
) -> None:
    server = stage.server
    warga, counsellors, supervisor = people
    bot = stage.bot.user_id
    dm = await steps.run(
        "warga opens an encrypted direct chat with the bot",
        lambda: warga.start_direct_chat(bot),
    )
    await steps.run(
        "bot greets and asks for consent",
        lambda: warga.wait_for_text("selamat datang", room_id=dm, timeout=60),
    )
    await warga.send_text(dm, "ya")
    await steps.run(
        "consent given, bot asks the category",
        lambda: warga.wait_for_text("Tentang apa", room_id=dm),
    )

    ekonomi = service.policy.category("ekonomi")
    asks_language = ekonomi is not None and ekonomi.ask_language
    if asks_language:
        # The sample lets the warga choose the language of this curhat.
        await warga.send_text(dm, "ekonomi")
        await steps.run(
            "category chosen, bot asks the language of the curhat",
            lambda: warga.wait_for_text("Dalam bahasa apa", room_id=dm),
        )
    requested = time.monotonic()
    await warga.send_text(dm, "Basa Sunda" if asks_language else "ekonomi")
    receipt = await steps.run(
        "intake done, bot confirms the request and the queue place",
        lambda: warga.wait_for_text("antrean nomor", room_id=dm),
    )
    code = _code(receipt.body)

    await _until(lambda: _case_field(service, code, "room_ready_at"))
    steps.report("request to curhat room ready", time.monotonic() - requested)

    counsellor, offer = await _first(counsellors, f"#{code}")
    steps.report(
        "request to offer received by the counsellor the policy chose",
        time.monotonic() - requested,
    )
    await counsellor.send_text(offer.room_id, "!terima")
    start = await steps.run(
        "counsellor accepts; counsellor and warga are in the room",
        lambda: warga.wait_for_text("sudah hadir", timeout=60),
    )
    room = start.room_id
    steps.report(
        "offer accepted to counsellor joined", await _joined_after(service, code)
    )

    await warga.send_text(room, "Saya ingin bercerita tentang utang keluarga.")
    got = await steps.run(
        "warga's message arrives encrypted and is decrypted by the counsellor",
        lambda: counsellor.wait_for_text("utang keluarga", room_id=room),
    )
    _require(got.was_encrypted, "the warga's message was not encrypted")
    await counsellor.send_text(room, "Terima kasih, saya mendengarkan.")
    got = await steps.run(
        "counsellor's reply arrives encrypted and is decrypted by the warga",
        lambda: warga.wait_for_text("saya mendengarkan", room_id=room),
    )
    _require(got.was_encrypted, "the counsellor's reply was not encrypted")

    await counsellor.send_text(room, "!selesai")
    await steps.run(
        "counsellor ends the curhat; the room is closed and emptied",
        lambda: _room_emptied(server, stage.admin_token, room),
    )
    await steps.run(
        "warga is asked for a rating in the direct chat",
        lambda: warga.wait_for_text("Seberapa membantu", room_id=dm, timeout=60),
    )
    await warga.send_text(dm, "5")
    await steps.run(
        "rating recorded",
        lambda: warga.wait_for_text("penilaian", room_id=dm),
    )

    welcome = await supervisor.wait_for_text("ruang pengawas", timeout=60)
    await supervisor.send_text(welcome.room_id, "!statistik")
    report = await steps.run(
        "supervisor gets anonymised figures",
        lambda: supervisor.wait_for_text("<5", room_id=welcome.room_id),
    )
    _require(code not in (report.body or ""), "the report names the case")


def _code(body: str | None) -> str:
    match = CODE.search(body or "")
    _require(match is not None, "no case code in the receipt")
    assert match is not None
    return match.group(1)


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


async def _until(check: Callable[[], Awaitable[Any]], timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise TimeoutError("condition not met in time")


async def _case_field(service: Service, code: str, name: str) -> Any:
    assert service.rt is not None
    async with service.rt.store.tx() as tx:
        case = await tx.case_by_code(code)
    return None if case is None else getattr(case, name)


async def _joined_after(service: Service, code: str) -> float:
    """Seconds from the accept to the counsellor's join, as the bot recorded them."""
    assert service.rt is not None
    async with service.rt.store.tx() as tx:
        case = await tx.case_by_code(code)
    _require(
        case is not None and bool(case.accepted_at and case.counsellor_joined_at),
        "the bot recorded no accept or no join",
    )
    assert case and case.accepted_at and case.counsellor_joined_at
    return case.counsellor_joined_at - case.accepted_at


async def _first(actors: list[Actor], text: str) -> tuple[Actor, Any]:
    tasks = {
        asyncio.create_task(actor.wait_for_text(text, timeout=60)): actor
        for actor in actors
    }
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    task = done.pop()
    return tasks[task], task.result()


async def _room_emptied(server: DevServer, token: str, room_id: str) -> None:
    async def emptied() -> bool:
        state = await server.room_state(token, room_id)
        return not any(
            e["type"] == "m.room.member"
            and e["content"].get("membership") in ("join", "invite")
            for e in state
        )

    await _until(emptied)
