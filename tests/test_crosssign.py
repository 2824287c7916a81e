"""Cross-signing, against the real homeserver: made once, kept, recovered.

The signatures are checked with Ed25519 here, over canonical JSON, exactly as a
client (Element's Rust crypto) checks them.
"""

from __future__ import annotations

import base64
import secrets
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sobat_matrix.crosssign import (
    KEYS_FILE,
    RECOVERY_FILE,
    CrossSigner,
    CrossSigningError,
    Keys,
    canonical_json,
    decode_recovery_key,
    encode_recovery_key,
    public_of,
    seed_of,
    signed,
)
from sobat_matrix.devserver import DevServer
from sobat_matrix.devtools import Actor


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def verify(obj: dict[str, Any], user_id: str, public: str) -> None:
    """Raise unless ``obj`` carries a valid signature by ``public``."""
    signature = obj["signatures"][user_id][f"ed25519:{public}"]
    unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    Ed25519PublicKey.from_public_bytes(_unb64(public)).verify(
        _unb64(signature), canonical_json(unsigned)
    )


# -- pure parts ------------------------------------------------------------------


def test_recovery_key_round_trip_and_typo() -> None:
    seed = secrets.token_bytes(32)
    key = encode_recovery_key(seed)

    assert key.startswith("SOBAT-")
    assert decode_recovery_key(key) == seed
    assert decode_recovery_key(key.lower().replace("-", " ")) == seed
    # A typo in the first group (the last one may hold only padding bits).
    first = key[6]
    typo = key[:6] + ("A" if first != "A" else "B") + key[7:]
    with pytest.raises(CrossSigningError):
        decode_recovery_key(typo)


def test_signed_objects_verify_and_keep_other_signatures() -> None:
    keys = Keys.generate()
    obj = {"a": 1, "signatures": {"@x:y": {"ed25519:OTHER": "sig"}}, "unsigned": {}}

    result = signed(obj, "@bot:y", keys.self_signing)

    verify(result, "@bot:y", public_of(keys.self_signing))
    assert result["signatures"]["@x:y"] == {"ed25519:OTHER": "sig"}
    assert "unsigned" not in result


def test_upload_body_signs_the_subkeys_with_the_master_key() -> None:
    keys = Keys.generate()
    body = keys.upload_body("@bot:y")
    master = public_of(keys.master)

    assert body["master_key"]["keys"] == {f"ed25519:{master}": master}
    verify(body["self_signing_key"], "@bot:y", master)
    verify(body["user_signing_key"], "@bot:y", master)


def test_keys_file_round_trip(tmp_path: Path) -> None:
    keys = Keys.generate()
    keys.save(tmp_path / KEYS_FILE)
    loaded = Keys.load(tmp_path / KEYS_FILE)

    assert [seed_of(k) for k in (loaded.master, loaded.self_signing)] == [
        seed_of(keys.master),
        seed_of(keys.self_signing),
    ]
    assert (tmp_path / KEYS_FILE).stat().st_mode & 0o777 == 0o600


# -- against Synapse ---------------------------------------------------------------


class Device:
    """A logged-in device with raw HTTP, as the bot's Matrix connection gives."""

    def __init__(self, server: DevServer, user_id: str, token: str) -> None:
        self.server = server
        self.user_id = user_id
        self.token = token

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as http:
            async with http.request(
                method,
                self.server.url + path,
                json=body,
                headers={"Authorization": f"Bearer {self.token}"},
            ) as resp:
                return resp.status, await resp.json(content_type=None)

    async def device_id(self) -> str:
        _, data = await self.request("GET", "/_matrix/client/v3/account/whoami", None)
        return str(data["device_id"])


async def new_device(
    server: DevServer, user_id: str, password: str, store: Path
) -> Device:
    """A real nio device (keys uploaded at login), as the bot's would be."""
    actor = await Actor.login(server.url, user_id, password, store)
    device = Device(server, user_id, actor.access_token)
    await actor.close()
    return device


async def published(device: Device, user_id: str) -> dict[str, Any]:
    status, data = await device.request(
        "POST", "/_matrix/client/v3/keys/query", {"device_keys": {user_id: []}}
    )
    assert status == 200
    return data


def signer(device: Device, device_id: str, data_dir: Path, **kw: Any) -> CrossSigner:
    return CrossSigner(
        device.request, device.user_id, device_id, data_dir, password=kw.pop("pw"), **kw
    )


@pytest.mark.integration
async def test_identity_made_once_kept_and_recovered(
    synapse: DevServer, tmp_path: Path
) -> None:
    password = secrets.token_urlsafe(12)
    user_id = await synapse.register_user(f"xs{secrets.token_hex(3)}", password)
    data_dir = tmp_path / "data"
    data_dir.mkdir()

    # First start: the identity is made and published, the device signed.
    first = await new_device(synapse, user_id, password, tmp_path / "d1")
    first_id = await first.device_id()
    assert await signer(first, first_id, data_dir, pw=password).ensure() == (
        "created, device signed"
    )
    assert (data_dir / RECOVERY_FILE).exists()
    keys = published_keys = await published(first, user_id)
    master = next(iter(keys["master_keys"][user_id]["keys"].values()))
    ssk = next(iter(keys["self_signing_keys"][user_id]["keys"].values()))
    verify(keys["self_signing_keys"][user_id], user_id, master)
    verify(keys["device_keys"][user_id][first_id], user_id, ssk)

    # A restart changes nothing.
    assert await signer(first, first_id, data_dir, pw=password).ensure() == "kept"

    # A new device (E2EE store lost, keys file kept) is signed by the same key.
    second = await new_device(synapse, user_id, password, tmp_path / "d2")
    second_id = await second.device_id()
    assert await signer(second, second_id, data_dir, pw=password).ensure() == (
        "kept, device signed"
    )
    verify(
        (await published(second, user_id))["device_keys"][user_id][second_id],
        user_id,
        ssk,
    )

    # The whole data directory lost: without the recovery key the bot refuses...
    recovery = (data_dir / RECOVERY_FILE).read_text().strip().splitlines()[-1]
    shutil.rmtree(data_dir)
    data_dir.mkdir()
    third = await new_device(synapse, user_id, password, tmp_path / "d3")
    third_id = await third.device_id()
    with pytest.raises(CrossSigningError, match="SOBAT_RECOVERY_KEY"):
        await signer(third, third_id, data_dir, pw=password).ensure()

    # ...and with it keeps the same identity, with new subkeys.
    outcome = await signer(
        third, third_id, data_dir, pw=password, recovery_key=recovery
    ).ensure()
    assert outcome == "recovered, device signed"
    keys = await published(third, user_id)
    assert next(iter(keys["master_keys"][user_id]["keys"].values())) == master
    new_ssk = next(iter(keys["self_signing_keys"][user_id]["keys"].values()))
    assert new_ssk != ssk
    verify(keys["self_signing_keys"][user_id], user_id, master)
    verify(keys["device_keys"][user_id][third_id], user_id, new_ssk)
    del published_keys


@pytest.mark.integration
async def test_an_actor_can_be_cross_signed_like_an_element_user(
    synapse: DevServer, tmp_path: Path
) -> None:
    password = secrets.token_urlsafe(12)
    user_id = await synapse.register_user(f"xa{secrets.token_hex(3)}", password)
    actor = await Actor.login(
        synapse.url, user_id, password, tmp_path / "store", cross_sign=True
    )
    try:
        device = Device(synapse, user_id, actor.access_token)
        keys = await published(device, user_id)
    finally:
        await actor.close()

    ssk = next(iter(keys["self_signing_keys"][user_id]["keys"].values()))
    verify(keys["device_keys"][user_id][str(actor.client.device_id)], user_id, ssk)
