"""Cross-signing for a nio device: an identity of its own, and its device signed by it.

Element shows a red shield on messages from a device that its owner has not signed
with their self-signing key, and in "exclude insecure devices" mode it neither sends
room keys to such a device nor decrypts what it sends. matrix-nio has no
cross-signing, so a nio bot without this is invisible or untrusted for exactly the
people the service is for.

What is made, once: a master key, a self-signing key and a user-signing key
(Ed25519, from ``cryptography``). They are published with
``/keys/device_signing/upload`` and kept in ``cross-signing.json`` in the data
directory; on every start the current device is checked and, if needed, signed with
the self-signing key (``/keys/signatures/upload``), so a new device after a lost
E2EE store is signed too.

The master key's seed is also written once as a *recovery key* to
``RECOVERY-KEY.txt`` for the operator to keep offline. If the data directory is lost
entirely, starting with ``SOBAT_RECOVERY_KEY`` set restores the same identity: new
self-signing and user-signing keys are made and signed by the recovered master key,
so people who trusted the bot go on trusting it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

logger = logging.getLogger(__name__)

# (method, path, body) -> (HTTP status, JSON body)
Request = Callable[
    [str, str, dict[str, Any] | None], Awaitable[tuple[int, dict[str, Any]]]
]

KEYS_FILE = "cross-signing.json"
RECOVERY_FILE = "RECOVERY-KEY.txt"
RECOVERY_ENV = "SOBAT_RECOVERY_KEY"
_RECOVERY_PREFIX = "SOBAT"


class CrossSigningError(Exception):
    """The device cannot be signed; the message says what the operator can do."""


def b64(data: bytes) -> str:
    """Unpadded standard base64, as Matrix uses for keys and signatures."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def canonical_json(value: Any) -> bytes:
    """Matrix canonical JSON: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), sort_keys=True
    ).encode("utf-8")


def seed_of(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def public_of(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return b64(raw)


def signed(obj: dict[str, Any], user_id: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """``obj`` with one more signature by ``key``, over its canonical JSON."""
    unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    signature = b64(key.sign(canonical_json(unsigned)))
    signatures = {u: dict(s) for u, s in obj.get("signatures", {}).items()}
    signatures.setdefault(user_id, {})[f"ed25519:{public_of(key)}"] = signature
    return {**unsigned, "signatures": signatures}


def encode_recovery_key(seed: bytes) -> str:
    """A typeable recovery key: base32 of the seed and a 2-byte checksum, in groups."""
    checksum = hashlib.sha256(seed).digest()[:2]
    text = base64.b32encode(seed + checksum).decode("ascii").rstrip("=")
    groups = [text[i : i + 4] for i in range(0, len(text), 4)]
    return "-".join([_RECOVERY_PREFIX, *groups])


def decode_recovery_key(text: str) -> bytes:
    """The master seed from a recovery key; raises CrossSigningError on a typo."""
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum())
    cleaned = cleaned.removeprefix(_RECOVERY_PREFIX)
    cleaned += "=" * (-len(cleaned) % 8)
    try:
        raw = base64.b32decode(cleaned)
    except ValueError as exc:
        raise CrossSigningError("the recovery key is not valid") from exc
    seed, checksum = raw[:32], raw[32:]
    if len(seed) != 32 or hashlib.sha256(seed).digest()[:2] != checksum:
        raise CrossSigningError("the recovery key is not valid (checksum)")
    return seed


@dataclass(frozen=True)
class Keys:
    """The three cross-signing keys of one user."""

    master: Ed25519PrivateKey
    self_signing: Ed25519PrivateKey
    user_signing: Ed25519PrivateKey

    @classmethod
    def generate(cls, master: Ed25519PrivateKey | None = None) -> Keys:
        return cls(
            master or Ed25519PrivateKey.generate(),
            Ed25519PrivateKey.generate(),
            Ed25519PrivateKey.generate(),
        )

    @classmethod
    def load(cls, path: Path) -> Keys:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            *(
                Ed25519PrivateKey.from_private_bytes(
                    base64.b64decode(data[name] + "==")
                )
                for name in ("master", "self_signing", "user_signing")
            )
        )

    def save(self, path: Path) -> None:
        data = {
            "master": b64(seed_of(self.master)),
            "self_signing": b64(seed_of(self.self_signing)),
            "user_signing": b64(seed_of(self.user_signing)),
        }
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)

    def upload_body(self, user_id: str, *, with_master: bool = True) -> dict[str, Any]:
        """The body of ``/keys/device_signing/upload`` for these keys.

        Without the master key it replaces only the subkeys, under the master key
        already published (Synapse answers 500 to the same master key uploaded
        again).
        """

        def key_object(usage: str, key: Ed25519PrivateKey) -> dict[str, Any]:
            public = public_of(key)
            return {
                "user_id": user_id,
                "usage": [usage],
                "keys": {f"ed25519:{public}": public},
            }

        body = {
            "master_key": key_object("master", self.master),
            "self_signing_key": signed(
                key_object("self_signing", self.self_signing), user_id, self.master
            ),
            "user_signing_key": signed(
                key_object("user_signing", self.user_signing), user_id, self.master
            ),
        }
        if not with_master:
            del body["master_key"]
        return body


def _only_key(key_object: dict[str, Any] | None) -> str | None:
    if not key_object:
        return None
    keys = list(key_object.get("keys", {}).values())
    return str(keys[0]) if len(keys) == 1 else None


class CrossSigner:
    """Makes sure one device of one user is signed by that user's identity."""

    def __init__(
        self,
        request: Request,
        user_id: str,
        device_id: str,
        data_dir: Path,
        *,
        password: str | None,
        recovery_key: str | None = None,
    ) -> None:
        self.request = request
        self.user_id = user_id
        self.device_id = device_id
        self.keys_file = data_dir / KEYS_FILE
        self.recovery_file = data_dir / RECOVERY_FILE
        self.password = password
        self.recovery_key = recovery_key

    async def ensure(self) -> str:
        """Publish the identity if needed and sign the device; says what it did."""
        published = await self._published()
        server_master = _only_key(published["master_keys"].get(self.user_id))

        if self.keys_file.exists():
            keys = Keys.load(self.keys_file)
            if server_master is not None and server_master != public_of(keys.master):
                raise CrossSigningError(
                    "the cross-signing identity on the homeserver is not the one in "
                    f"{self.keys_file}; someone reset it. Move that file away and "
                    f"start with {RECOVERY_ENV} set, or move it away to make a new "
                    "identity (people will see the bot's identity change)"
                )
            outcome = "kept"
            server_ssk = _only_key(published["self_signing_keys"].get(self.user_id))
            if server_master is None:
                await self._upload(keys)
                outcome = "republished"
            elif server_ssk != public_of(keys.self_signing):
                await self._upload(keys, with_master=False)
                outcome = "republished"
        elif server_master is None:
            keys = Keys.generate()
            await self._upload(keys)
            keys.save(self.keys_file)
            self._write_recovery_key(keys)
            outcome = "created"
        else:
            keys = self._recover(server_master)
            await self._upload(keys, with_master=False)
            keys.save(self.keys_file)
            outcome = "recovered"

        device = published["device_keys"].get(self.user_id, {}).get(self.device_id)
        if device is None:
            raise CrossSigningError(f"device {self.device_id} has no published keys")
        if not self._signed_by(device, keys.self_signing):
            await self._sign_device(device, keys)
            outcome += ", device signed"
        logger.info("cross-signing %s for device %s", outcome, self.device_id)
        return outcome

    async def _published(self) -> dict[str, Any]:
        status, data = await self.request(
            "POST", "/_matrix/client/v3/keys/query", {"device_keys": {self.user_id: []}}
        )
        if status != 200:
            raise CrossSigningError(f"keys query failed: HTTP {status}")
        for section in ("master_keys", "self_signing_keys", "device_keys"):
            data.setdefault(section, {})
        return data

    def _recover(self, server_master: str) -> Keys:
        if not self.recovery_key:
            raise CrossSigningError(
                "the bot has a cross-signing identity on the homeserver but its keys "
                f"({self.keys_file}) are gone. Start with {RECOVERY_ENV} set to the "
                "recovery key written when the identity was made"
            )
        master = Ed25519PrivateKey.from_private_bytes(
            decode_recovery_key(self.recovery_key)
        )
        if public_of(master) != server_master:
            raise CrossSigningError(
                "the recovery key does not belong to the identity on the homeserver"
            )
        return Keys.generate(master)

    async def _upload(self, keys: Keys, *, with_master: bool = True) -> None:
        """Publish the keys; answers user-interactive auth with the password."""
        path = "/_matrix/client/v3/keys/device_signing/upload"
        body = keys.upload_body(self.user_id, with_master=with_master)
        status, data = await self.request("POST", path, body)

        if status == 401 and "session" in data:
            if not self.password:
                raise CrossSigningError(
                    "publishing cross-signing keys needs the bot's password"
                )
            body["auth"] = {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": self.user_id},
                "password": self.password,
                "session": data["session"],
            }
            status, data = await self.request("POST", path, body)
        if status != 200:
            raise CrossSigningError(
                f"publishing cross-signing keys failed: HTTP {status} "
                f"{data.get('errcode')}"
            )

    def _signed_by(self, device: dict[str, Any], key: Ed25519PrivateKey) -> bool:
        key_id = f"ed25519:{public_of(key)}"
        return key_id in device.get("signatures", {}).get(self.user_id, {})

    async def _sign_device(self, device: dict[str, Any], keys: Keys) -> None:
        only_ours = {
            k: v for k, v in device.items() if k not in ("signatures", "unsigned")
        }
        signature = signed(only_ours, self.user_id, keys.self_signing)
        status, data = await self.request(
            "POST",
            "/_matrix/client/v3/keys/signatures/upload",
            {self.user_id: {self.device_id: signature}},
        )
        failures = data.get("failures") or {}
        if status != 200 or failures:
            raise CrossSigningError(
                f"signing device {self.device_id} failed: HTTP {status} {failures}"
            )

    def _write_recovery_key(self, keys: Keys) -> None:
        text = (
            "Recovery key of the sobat-matrix bot's cross-signing identity.\n"
            "Keep it offline, then delete this file. With it, a bot whose data\n"
            f"directory was lost keeps its identity: start it with {RECOVERY_ENV}.\n\n"
            f"{encode_recovery_key(seed_of(keys.master))}\n"
        )
        fd = os.open(self.recovery_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        logger.warning(
            "a new cross-signing identity was made; its recovery key is in %s: "
            "keep it offline, then delete the file",
            self.recovery_file,
        )
