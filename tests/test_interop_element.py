"""Element's own encryption stack as the warga, in both of its isolation modes.

The warga is matrix-js-sdk with its Rust crypto (what Element ships), in "all
devices" mode and in "exclude insecure devices" mode, where it neither shares room
keys with, nor decrypts from, a device its owner has not cross-signed. The bot and
the nio counsellors are cross-signed; the warga must go through intake and a whole
curhat without one warning, and every message must be encrypted on the wire.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sobat_matrix.devserver import DevServer

from .botkit import CODE, first_offer, make_world
from .interop.jsclient import JsClient, JsMessage

pytestmark = pytest.mark.integration


def trusted(message: JsMessage) -> JsMessage:
    """What Element would show without any shield or warning."""
    assert message.was_encrypted and not message.decryption_failure, message
    assert message.sender_device_signed_by_owner is True, message
    assert message.shield_colour == "NONE", message
    return message


@pytest.mark.parametrize("isolation", ["all", "signed_only"])
async def test_element_warga_through_a_whole_curhat(
    synapse: DevServer, tmp_path: Path, isolation: str
) -> None:
    world = await make_world(synapse, tmp_path, cross_sign=True, nio_warga=False)
    js: JsClient | None = None
    try:
        service = await world.start_bot()
        assert service.rt is not None
        bot = world.stage.bot.user_id
        bot_device = service.rt.matrix.device_id
        (account,) = world.stage.warga.values()
        js = await JsClient.start(
            synapse.url,
            account.user_id,
            account.password,
            isolation,  # type: ignore[arg-type]
        )

        # Intake in a direct chat opened the way Element opens one (which fetches
        # the bot's devices first); the bot's device is signed by its owner.
        dm = await js.start_dm(bot)
        assert bot_device in await js.user_devices(bot)
        status = await js.device_status(bot, bot_device)
        assert status.known and status.signed_by_owner
        trusted(await js.wait_for("selamat datang", room_id=dm, timeout=60))
        await js.send(dm, "ya")
        trusted(await js.wait_for("Tentang apa", room_id=dm))
        await js.send(dm, "ekonomi")
        receipt = trusted(await js.wait_for("antrean nomor", room_id=dm))
        match = CODE.search(receipt.body)
        assert match
        code = match.group(1)

        # A nio counsellor accepts; the warga is brought in and may talk.
        counsellor, offer = await first_offer(world.counsellors.values(), code)
        await counsellor.send_text(offer.room_id, "!terima")
        start = trusted(await js.wait_for("sudah hadir", timeout=60))
        room = start.room_id

        await js.send(room, "Ini cerita saya dari Element.")
        got = await counsellor.wait_for_text("dari Element", room_id=room)
        assert got.was_encrypted and got.sender == account.user_id
        await counsellor.send_text(room, "Saya mendengarkan.")
        trusted(await js.wait_for("Saya mendengarkan", room_id=room))

        raw = await synapse.raw_messages(counsellor.access_token, room)
        assert {e["type"] for e in raw} >= {"m.room.encrypted"}
        assert "m.room.message" not in {e["type"] for e in raw}

        # The warga closes it and rates it in the direct chat.
        await js.send(room, "!selesai")
        trusted(await js.wait_for("Seberapa membantu", room_id=dm, timeout=60))
        await js.send(dm, "5")
        trusted(await js.wait_for("penilaian", room_id=dm))
        assert await js.undecryptable() == []
    finally:
        if js is not None:
            await js.close()
        await world.close()
