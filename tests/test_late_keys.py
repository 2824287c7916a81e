"""A message whose room key arrives after it: kept, handled late, or given up.

The warga is a real E2EE client; the bot is the real service. To make the key arrive
late, the test holds back the to-device messages (which carry room keys) that the
bot's sync brings, and releases them later: exactly what the bot sees when a sender's
client shares a key late.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sobat_matrix.devserver import DevServer
from sobat_matrix.service import Service

from .botkit import BotWorld, make_world

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(synapse: DevServer, tmp_path: Path) -> AsyncIterator[BotWorld]:
    world = await make_world(synapse, tmp_path)
    yield world
    await world.close()


class KeyHold:
    """Holds back the to-device messages a bot's syncs bring, until released."""

    def __init__(self, service: Service) -> None:
        assert service.rt is not None
        self.client = service.rt.matrix.client
        self.held: list[Any] = []
        self._original = self.client._handle_to_device

        async def hold(response: Any) -> None:
            self.held.extend(response.to_device_events)
            response.to_device_events.clear()

        self.client._handle_to_device = hold  # type: ignore[method-assign]

    def stop(self) -> None:
        self.client._handle_to_device = self._original  # type: ignore[method-assign]

    def release_into(self, service: Service) -> None:
        assert service.rt is not None
        olm = service.rt.matrix.client.olm
        assert olm is not None
        for event in self.held:
            olm.handle_to_device_event(event)
        self.held.clear()


async def until(check: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def new_session(world: BotWorld, room_id: str) -> None:
    """Make the warga's next message use a new room key, shared anew."""
    olm = world.warga.client.olm
    assert olm is not None
    olm.outbound_group_sessions.pop(room_id, None)


async def test_late_key_is_waited_for_across_a_restart(world: BotWorld) -> None:
    service = await world.start_bot()
    warga = world.warga
    dm = await warga.start_direct_chat(world.stage.bot.user_id)
    await warga.wait_for_text("setuju", room_id=dm, timeout=60)

    # The consent answer arrives, its key does not.
    hold = KeyHold(service)
    new_session(world, dm)
    await warga.send_text(dm, "ya")
    await until(lambda: len(service.late) == 1)
    await until(lambda: bool(hold.held))
    hold.stop()
    assert service.metrics.waiting_for_keys._value.get() == 1
    await asyncio.sleep(1.5)
    assert not [e for e in warga.received if "Tentang apa" in (e.body or "")]

    # A restart does not forget it; when the key comes, the answer is handled.
    await world.stop_bot()
    service = await world.start_bot()
    assert len(service.late) == 1
    hold.release_into(service)
    await service._retry_late()
    await warga.wait_for_text("Tentang apa", room_id=dm, timeout=30)
    assert len(service.late) == 0
    assert service.metrics.decrypted_late._value.get() == 1


async def test_a_key_that_never_comes_gets_no_reply_and_is_counted(
    world: BotWorld,
) -> None:
    service = await world.start_bot()
    warga = world.warga
    dm = await warga.start_direct_chat(world.stage.bot.user_id)
    await warga.wait_for_text("setuju", room_id=dm, timeout=60)

    hold = KeyHold(service)
    new_session(world, dm)
    await warga.send_text(dm, "ya")
    await until(lambda: len(service.late) == 1)
    hold.stop()

    service.late.wait_s = 0
    await service._retry_late()

    assert len(service.late) == 0
    assert service.metrics.never_decrypted._value.get() == 1
    await asyncio.sleep(1.5)
    assert not [e for e in warga.received if "Tentang apa" in (e.body or "")]
