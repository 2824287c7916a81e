"""Integration tests of the test harness itself: the local Synapse and the Actor.

Everything else that talks to Matrix builds on these two, so these tests prove the
properties the others take for granted: the server is really local, users can be
made repeatedly, and what actors exchange is really end-to-end encrypted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from sobat_matrix.devserver import (
    DevServer,
    DevServerError,
    build_config,
    free_port,
    start_synapse,
)
from sobat_matrix.devtools import Actor, ActorError

pytestmark = pytest.mark.integration

# The make_actor fixture (conftest.MakeActor).
MakeActor = Callable[..., Awaitable[Actor]]


async def _get(
    server: DevServer, path: str, token: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + path, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


async def test_synapse_serves_the_client_api_only(synapse: DevServer) -> None:
    status, versions = await _get(synapse, "/_matrix/client/versions")
    assert status == 200
    assert "v1.11" in versions["versions"]

    # No federation listener: the server cannot be reached by, or vouch to, others.
    status, _ = await _get(synapse, "/_matrix/federation/v1/version")
    assert status == 404
    status, _ = await _get(synapse, "/_matrix/key/v2/server")
    assert status == 404

    assert (synapse.base_dir / "homeserver.log").stat().st_size > 0


async def test_default_room_version_is_12(synapse: DevServer, admin_token: str) -> None:
    status, answer = await _get(synapse, "/_matrix/client/v3/capabilities", admin_token)

    assert status == 200
    assert answer["capabilities"]["m.room_versions"]["default"] == "12"


async def test_register_is_idempotent(synapse: DevServer) -> None:
    first = await synapse.register_user("idempotent", "first password")
    second = await synapse.register_user("idempotent", "another password")

    assert first == second == f"@idempotent:{synapse.server_name}"
    assert await synapse.login(first, "first password")


async def test_exempt_from_ratelimits(synapse: DevServer, admin_token: str) -> None:
    bot = await synapse.register_user("ratelimit-bot", "password")

    await synapse.exempt_from_ratelimits(admin_token, bot)

    path = f"/_synapse/admin/v1/users/{bot}/override_ratelimit"
    status, answer = await _get(synapse, path, admin_token)
    assert status == 200
    assert answer == {"messages_per_second": 0, "burst_count": 0}


async def test_restart_reuses_the_directory(tmp_path: Path) -> None:
    first = await start_synapse(tmp_path, server_name="restart.test")
    try:
        user_id = await first.register_user("tetap", "password")
    finally:
        await first.stop()
    signing_key = (tmp_path / "restart.test.signing.key").read_bytes()

    second = await start_synapse(tmp_path, server_name="restart.test")
    try:
        assert second.port == first.port
        assert await second.login(user_id, "password")
    finally:
        await second.stop()
    assert (tmp_path / "restart.test.signing.key").read_bytes() == signing_key


async def test_a_server_that_dies_at_start_shows_its_log(tmp_path: Path) -> None:
    broken = build_config("broken.test", free_port())
    broken["database"] = {"name": "no-such-engine"}
    (tmp_path / "homeserver.yaml").write_text(yaml.safe_dump(broken))

    with pytest.raises(DevServerError, match="exited with code") as failure:
        await start_synapse(tmp_path, server_name="broken.test")
    assert "no-such-engine" in str(failure.value)


async def test_encrypted_direct_chat_both_ways(
    synapse: DevServer, admin_token: str, make_actor: MakeActor
) -> None:
    warga = await make_actor("warga")
    konselor = await make_actor("konselor")

    room_id = await warga.start_direct_chat(konselor.user_id)
    await konselor.wait_joined(room_id)

    sent_id = await warga.send_text(room_id, "halo, saya mau curhat")
    got = await konselor.wait_for_text("mau curhat", room_id=room_id)
    assert (got.event_id, got.sender) == (sent_id, warga.user_id)
    assert (got.body, got.msgtype, got.was_encrypted) == (
        "halo, saya mau curhat",
        "m.text",
        True,
    )

    await konselor.send_text(room_id, "silakan, saya dengarkan")
    reply = await warga.wait_for_text("saya dengarkan", room_id=room_id)
    assert reply.was_encrypted and reply.body == "silakan, saya dengarkan"

    # Element's way first: a clear m.reaction; then the encrypted form.
    await konselor.react(room_id, sent_id, "👍")
    clear = await warga.wait_for(lambda e: e.type == "m.reaction", room_id=room_id)
    assert not clear.was_encrypted
    await konselor.react(room_id, sent_id, "🙏", encrypted=True)
    hidden = await warga.wait_for(lambda e: e.type == "m.reaction", room_id=room_id)
    assert hidden.was_encrypted
    assert hidden.source["content"]["m.relates_to"]["key"] == "🙏"

    assert warga.undecryptable == konselor.undecryptable == 0
    assert sorted(await synapse.room_members(admin_token, room_id)) == sorted(
        [warga.user_id, konselor.user_id]
    )
    await _assert_encrypted_on_the_wire(synapse, admin_token, warga, room_id)


async def _assert_encrypted_on_the_wire(
    synapse: DevServer, admin_token: str, actor: Actor, room_id: str
) -> None:
    state = await synapse.room_state(admin_token, room_id)
    encryption = [e for e in state if e["type"] == "m.room.encryption"]
    assert encryption[0]["content"]["algorithm"] == "m.megolm.v1.aes-sha2"

    raw = await synapse.raw_messages(actor.access_token, room_id)
    timeline_types = [e["type"] for e in raw if "state_key" not in e]
    assert timeline_types == [
        "m.room.encrypted",
        "m.room.encrypted",
        "m.reaction",
        "m.room.encrypted",
    ]
    assert "curhat" not in str(raw) and "dengarkan" not in str(raw)


async def test_send_refuses_a_room_not_known_as_encrypted(
    make_actor: MakeActor,
) -> None:
    actor = await make_actor("plain")
    created = await actor.client.room_create(name="not encrypted")

    with pytest.raises(ActorError, match="not known as encrypted"):
        await actor.send_text(created.room_id, "this must never leave in clear")


async def test_invite_without_auto_join(make_actor: MakeActor) -> None:
    warga = await make_actor("warga")
    konselor = await make_actor("konselor", auto_join=False)

    room_id = await warga.start_direct_chat(konselor.user_id)

    assert await konselor.wait_invited() == room_id
    assert konselor.joined_members(room_id) == []
    with pytest.raises(AssertionError, match="no message with 'never sent'"):
        await konselor.wait_for_text("never sent", timeout=0.5)


async def test_restarted_actor_keeps_its_device_and_decrypts(
    synapse: DevServer, make_actor: MakeActor
) -> None:
    warga = await make_actor("warga")
    konselor = await make_actor("konselor")
    room_id = await warga.start_direct_chat(konselor.user_id)
    await konselor.wait_joined(room_id)
    await warga.send_text(room_id, "pesan pertama")
    await konselor.wait_for_text("pesan pertama")
    device_id = konselor.client.device_id

    await konselor.close()
    await warga.send_text(room_id, "pesan saat konselor offline")

    # A wrong password proves the saved device was reused, not a new login made.
    again = await Actor.login(
        synapse.url, konselor.user_id, "not the password", konselor.store_dir
    )
    try:
        assert again.restored and again.client.device_id == device_id

        offline = await again.wait_for_text("saat konselor offline", room_id=room_id)
        assert offline.was_encrypted

        await warga.send_text(room_id, "pesan setelah restart")
        after = await again.wait_for_text("setelah restart", room_id=room_id)
        assert after.was_encrypted

        await again.send_text(room_id, "konselor kembali")
        back = await warga.wait_for_text("konselor kembali", room_id=room_id)
        assert back.was_encrypted and again.undecryptable == 0
    finally:
        await again.close()
