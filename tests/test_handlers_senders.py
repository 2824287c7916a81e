"""Notices and the bot's own messages are never read as commands or answers.

``m.notice`` is how bots write in Matrix (this one included: every text it sends is
a notice), so a notice is never taken for what a person typed, whatever it says and
whoever sent it. Each case runs the real handlers on a real store, once with the
event as a notice (or from the bot) and once as a person's ``m.text``, so the test
shows the same words do change something when a person types them.

The bot's own messages are turned away twice: by the sender check at the top of
``Handlers.on_event`` and by each room's check of who may speak there (the bot is
never the warga, the counsellor or a supervisor), so these cases hold with either.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from nio import Event

from sobat_matrix.config import load_config
from sobat_matrix.handlers import Handlers
from sobat_matrix.i18n import Catalog
from sobat_matrix.policy import load_policy
from sobat_matrix.runtime import Runtime
from sobat_matrix.store import SUPERVISORS_PURPOSE, Store, duty_purpose

BOT = "@sobat:kota.test"
WARGA = "@warga:kota.test"
COUNSELLOR = "@ani:kota.test"
SUPERVISOR = "@pengawas:kota.test"
DM = "!dm:kota.test"
CURHAT = "!curhat:kota.test"
DUTY = "!duty:kota.test"
SUPERVISORS = "!pengawas:kota.test"

CONFIG = f"""\
homeserver:
  url: "https://matrix.kota.test"
bot:
  user_id: "{BOT}"
  password: "kata-sandi-untuk-tes"
data_dir: data
policy: policy.yaml
supervisors: ["{SUPERVISOR}"]
"""
POLICY = f"""\
counsellor_types:
  psikolog: {{id: Psikolog, en: Psychologist}}
counsellors:
  - {{id: "{COUNSELLOR}", name: Ibu Ani, types: [psikolog], gender: perempuan}}
categories:
  ekonomi:
    label: {{id: Ekonomi, en: Money}}
    route:
      - types: [psikolog]
        timeout: 5m
"""

_event_numbers = itertools.count(1)


@dataclass
class Bot:
    handlers: Handlers
    store: Store
    case_id: int

    async def outbox_rooms(self) -> list[str]:
        async with self.store.tx() as tx:
            return [item.room_id for item in await tx.outbox()]

    async def case_status(self) -> str:
        async with self.store.tx() as tx:
            case = await tx.case(self.case_id)
        assert case is not None
        return case.status

    async def dm_step(self) -> str:
        async with self.store.tx() as tx:
            chat = await tx.direct_chat(DM)
        assert chat is not None
        return chat.step


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    """Handlers on a store with a direct chat, an active curhat and staff rooms."""
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    (tmp_path / "c.yaml").write_text(CONFIG, encoding="utf-8")
    config = load_config(tmp_path / "c.yaml", environ={})
    policy = load_policy(tmp_path / "policy.yaml", bot_user_id=BOT)
    store = await Store.open(tmp_path / "s.db", pseudonym_key=b"k" * 32)

    async with store.tx() as tx:
        await tx.add_direct_chat(DM, WARGA)
        case = await tx.add_case(
            code="TEST",
            warga=WARGA,
            dm_room=DM,
            category="ekonomi",
            pref_type=None,
            pref_gender=None,
        )
        await tx.update_case(case.id, status="active", counsellor=COUNSELLOR)
        # The warga's curhat is open: in the direct chat only its rating would move
        # the step, so the intake step is left idle for the greeting check below.
        for purpose, room_id in (
            (case.purpose, CURHAT),
            (duty_purpose(COUNSELLOR), DUTY),
            (SUPERVISORS_PURPOSE, SUPERVISORS),
        ):
            await tx.want_room(purpose, f"token-{purpose}")
            await tx.set_room_id(purpose, room_id)

    # Nothing in these paths talks to the homeserver; a lookup of rooms is all.
    matrix = SimpleNamespace(client=SimpleNamespace(rooms={}))
    rt = Runtime(
        config=config,
        policy=policy,
        catalog=Catalog("id"),
        store=store,
        matrix=matrix,  # type: ignore[arg-type]
    )
    yield Bot(Handlers(rt), store, case.id)
    await store.close()


def message(sender: str, body: str, msgtype: str) -> Event:
    number = next(_event_numbers)
    source: dict[str, Any] = {
        "type": "m.room.message",
        "event_id": f"$e{number}",
        "sender": sender,
        # Far apart, so the flood guard never has a say.
        "origin_server_ts": number * 600_000,
        "content": {"msgtype": msgtype, "body": body},
    }
    return Event.parse_event(source)


@pytest.mark.parametrize(
    ("room_id", "sender", "body"),
    [
        pytest.param(DUTY, COUNSELLOR, "!status", id="duty-room"),
        pytest.param(SUPERVISORS, SUPERVISOR, "!antrean", id="supervisors-room"),
        pytest.param(CURHAT, WARGA, "!statistik", id="curhat-room"),
        pytest.param(DM, WARGA, "!bantuan", id="direct-chat"),
    ],
)
async def test_a_notice_is_not_a_command(
    bot: Bot, room_id: str, sender: str, body: str
) -> None:
    await bot.handlers.on_event(room_id, message(sender, body, "m.notice"))
    await bot.handlers.on_event(room_id, message(BOT, body, "m.text"))

    assert await bot.outbox_rooms() == []

    await bot.handlers.on_event(room_id, message(sender, body, "m.text"))

    assert await bot.outbox_rooms() == [room_id]


@pytest.mark.parametrize("sender", [WARGA, COUNSELLOR])
async def test_a_notice_does_not_end_a_curhat(bot: Bot, sender: str) -> None:
    await bot.handlers.on_event(CURHAT, message(sender, "!selesai", "m.notice"))
    await bot.handlers.on_event(CURHAT, message(BOT, "!selesai", "m.text"))

    assert await bot.case_status() == "active"

    await bot.handlers.on_event(CURHAT, message(sender, "!selesai", "m.text"))

    assert await bot.case_status() == "closing"


async def test_a_notice_is_no_answer_in_the_direct_chat(bot: Bot) -> None:
    async with bot.store.tx() as tx:
        await tx.update_case(bot.case_id, status="closed")
        await tx.update_direct_chat(DM, step="idle")

    await bot.handlers.on_event(DM, message(WARGA, "halo", "m.notice"))
    await bot.handlers.on_event(DM, message(BOT, "halo", "m.text"))

    assert (await bot.dm_step(), await bot.outbox_rooms()) == ("idle", [])

    await bot.handlers.on_event(DM, message(WARGA, "halo", "m.text"))

    # The greeting, or the out-of-hours answer: either way the bot answered.
    assert await bot.outbox_rooms() != []
