"""Helpers for integration tests that run the real bot against the test Synapse."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sobat_matrix.devserver import DevServer
from sobat_matrix.devtools import Actor
from sobat_matrix.devtools.stage import Stage
from sobat_matrix.flood import WINDOW_MS
from sobat_matrix.service import Service

_numbers = itertools.count(1)
CODE = re.compile(r"#([A-Z0-9]{4})\b")


def unique(prefix: str) -> str:
    return f"{prefix}{next(_numbers)}x{secrets.token_hex(2)}"


def policy_text(ids: dict[str, str], *, fast_timeout: str = "3s") -> str:
    """A small policy: two psychologists first, then a religious counsellor."""
    return f"""
counsellor_types:
  psikolog: {{id: Psikolog, en: Psychologist}}
  keagamaan: {{id: Konselor keagamaan, en: Religious counsellor}}
counsellors:
  - id: "{ids["a"]}"
    name: Ibu Ani
    types: [psikolog]
    gender: perempuan
  - id: "{ids["b"]}"
    name: Ibu Bina
    types: [psikolog]
    gender: perempuan
  - id: "{ids["c"]}"
    name: Pak Cecep
    types: [keagamaan]
    gender: laki-laki
categories:
  keluarga:
    label: {{id: Keluarga, en: Family}}
    description: {{id: Masalah keluarga, en: Family matters}}
    ask: [type]
    route:
      - types: [psikolog]
        timeout: {fast_timeout}
      - types: [keagamaan]
        timeout: 5m
  ekonomi:
    label: {{id: Ekonomi, en: Money}}
    route:
      - types: [psikolog, keagamaan]
        timeout: 5m
"""


@dataclass
class BotWorld:
    """A bot with its own accounts, and actors for each person."""

    stage: Stage
    counsellors: dict[str, Actor]
    warga: Actor  # type: ignore[assignment]  # None when nio_warga=False
    supervisor: Actor
    service: Service | None = None
    actors: list[Actor] = field(default_factory=list)
    # Every warga actor, ``warga`` first.
    wargas: list[Actor] = field(default_factory=list)
    policy_path: Path | None = None

    async def start_bot(self) -> Service:
        config, policy = self.stage.load()
        self.service = Service(config, policy)
        await self.service.start()
        return self.service

    async def stop_bot(self) -> None:
        if self.service is not None:
            await self.service.stop()
            self.service = None

    async def close(self) -> None:
        await self.stop_bot()
        for actor in self.actors:
            await actor.close()


async def make_world(
    server: DevServer,
    tmp_path: Path,
    *,
    fast_timeout: str = "3s",
    config_overrides: dict[str, object] | None = None,
    cross_sign: bool = False,
    nio_warga: bool = True,
    policy: Callable[[dict[str, str]], str] | None = None,
    warga_count: int = 1,
) -> BotWorld:
    """Accounts, config and policy for one bot; actors logged in; bot not started.

    ``policy`` writes the policy text from the counsellors' IDs (keys a, b, c);
    by default :func:`policy_text`.
    """
    server_name = server.server_name
    ids = {k: f"@{unique('kons' + k)}:{server_name}" for k in ("a", "b", "c")}
    policy_path = tmp_path / "policy.yaml"
    if policy is None:
        policy_path.write_text(policy_text(ids, fast_timeout=fast_timeout))
    else:
        policy_path.write_text(policy(ids))

    stage = await Stage.prepare(
        server,
        tmp_path / "stage",
        policy_path,
        bot_localpart=unique("sobat"),
        admin_localpart=unique("admin"),
        supervisor_localparts=(unique("pengawas"),),
        warga_localparts=tuple(unique("warga") for _ in range(warga_count)),
        config_overrides=config_overrides,
    )

    actors: list[Actor] = []

    async def login(user_id: str, password: str) -> Actor:
        store = tmp_path / "actors" / user_id.strip("@").replace(":", "_")
        actor = await Actor.login(
            server.url, user_id, password, store, cross_sign=cross_sign
        )
        actors.append(actor)
        return actor

    counsellors = {}
    for key, user_id in ids.items():
        counsellors[key] = await login(user_id, stage.counsellors[user_id].password)
    (supervisor_account,) = stage.supervisors.values()
    # Without a nio warga the account is left for another client (Element's stack).
    wargas = []
    if nio_warga:
        for account in stage.warga.values():
            wargas.append(await login(account.user_id, account.password))
    warga = wargas[0] if wargas else None
    supervisor = await login(supervisor_account.user_id, supervisor_account.password)
    return BotWorld(
        stage,
        counsellors,
        warga,
        supervisor,
        actors=actors,
        wargas=wargas,
        policy_path=policy_path,
    )


async def first_offer(counsellors: Iterable[Actor], code: str) -> tuple[Actor, Any]:
    """The counsellor who got the offer for ``code``, and the offer."""
    tasks = {
        asyncio.create_task(x.wait_for_text(f"#{code}", timeout=60)): x
        for x in counsellors
    }
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    task = done.pop()
    return tasks[task], task.result()


async def server_times(actor: Actor, room_id: str, event_ids: list[str]) -> list[int]:
    """The server's timestamps of events the actor sent: the bot's clock for them."""
    times = []
    for event_id in event_ids:
        path = f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/event/"
        status, event = await actor._raw("GET", path + quote(event_id, safe=""), None)
        assert status == 200, event
        times.append(int(event["origin_server_ts"]))
    return times


def windows(times_ms: list[int]) -> int:
    """How often one question asked at these times is answered: once per window.

    A flood sent within ten seconds is one window; a slow machine that stretches
    it past that gets one more answer per further window, as a person would.
    """
    answered = 0
    last_ms: int | None = None
    for sent_ms in sorted(times_ms):
        if last_ms is None or sent_ms - last_ms >= WINDOW_MS:
            answered += 1
            last_ms = sent_ms
    return answered


class LogCapture(logging.Handler):
    """Every log record of the process, at DEBUG, as the text a log file would hold."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def text(self) -> str:
        return "\n".join(self.lines)
