"""An Element-like Matrix user for tests: matrix-js-sdk with its Rust crypto, in Node.

Element's encryption is matrix-sdk-crypto, which nio does not share: it has
cross-signing, shields and "exclude insecure devices". A :class:`JsClient` runs
``client.mjs`` in a Node.js process, one user per process, and drives it with
one JSON command a line on stdin and one JSON reply a line on stdout.

The npm packages are pinned in ``package-lock.json`` and installed by
:func:`ensure_node_modules`, which :meth:`JsClient.start` calls, so a clean
clone installs them during test set-up. Without node or npm it fails, loudly:
these tests are not optional.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import shutil
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

INTEROP_DIR = Path(__file__).resolve().parent
CLIENT_SCRIPT = "client.mjs"

Isolation = Literal["all", "signed_only"]

LOGIN_TIMEOUT_S = 90.0
COMMAND_TIMEOUT_S = 45.0
STOP_TIMEOUT_S = 10.0
NPM_CI_TIMEOUT_S = 600.0
# Replies can carry whole message bodies: more than asyncio's 64 KiB line limit.
_LINE_LIMIT = 4 * 1024 * 1024
_STDERR_TAIL_LINES = 30

_install_lock = threading.Lock()


class JsClientError(RuntimeError):
    """The Node client failed a command, timed out, or died."""


@dataclass(frozen=True)
class JsMessage:
    """A message the js client received from another user, as Element would see it.

    ``shield_colour`` is ``"NONE"``, ``"GREY"`` or ``"RED"`` and ``shield_reason``
    a name from matrix-js-sdk's ``EventShieldReason`` (``"UNSIGNED_DEVICE"`` is
    Element's "encrypted by a device not verified by its owner"); both are None
    for a message sent in clear. ``sender_device_signed_by_owner`` is None when
    the sending device is not known.
    """

    room_id: str
    event_id: str
    sender: str
    body: str
    msgtype: str | None
    was_encrypted: bool
    decryption_failure: bool
    sender_device_id: str | None
    sender_device_signed_by_owner: bool | None
    shield_colour: str | None
    shield_reason: str | None


@dataclass(frozen=True)
class DeviceStatus:
    """matrix-js-sdk's verification status of one device (all False if unknown)."""

    known: bool
    signed_by_owner: bool
    cross_signing_verified: bool
    locally_verified: bool


@dataclass(frozen=True)
class Undecryptable:
    """An event from another user that the js client could not decrypt.

    ``reason`` is matrix-js-sdk's ``DecryptionFailureCode``, for example
    ``UNSIGNED_SENDER_DEVICE`` when "exclude insecure devices" refused it.
    """

    event_id: str
    room_id: str
    sender: str
    reason: str | None


def _npm_installed_after_lock() -> bool:
    # npm ci writes this file last; git checkout gives the lock file a new mtime.
    marker = INTEROP_DIR / "node_modules" / ".package-lock.json"
    lock = INTEROP_DIR / "package-lock.json"
    return marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise JsClientError(
            f"{name} is not on PATH: the matrix-js-sdk tests need Node.js 20 and npm"
        )
    return path


def ensure_node_modules() -> None:
    """Install the pinned npm packages with ``npm ci`` unless they are up to date.

    Blocking; safe to call from several threads. Raises JsClientError if node
    or npm is missing or the install fails.
    """
    _require_tool("node")
    npm = _require_tool("npm")

    with _install_lock:
        if _npm_installed_after_lock():
            return

        started = time.monotonic()
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=INTEROP_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            tail = "\n".join(done.stderr.splitlines()[-20:])
            raise JsClientError(f"npm ci failed ({done.returncode}):\n{tail}")

        logger.info("npm ci took %.1f s", time.monotonic() - started)


class JsClient:
    """One Matrix user in a Node.js matrix-js-sdk process, driven from Python.

    Received messages are kept by the Node side, oldest first, and each is
    handed out once, to the first :meth:`wait_for` it matches, as
    :class:`~sobat_matrix.devtools.Actor` does. Errors carry the tail of the
    Node process's stderr.
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.user_id = ""
        self.device_id = ""
        self._process = process
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self._stdout_task = asyncio.create_task(
            self._read_replies(), name="jsclient stdout"
        )
        self._stderr_task = asyncio.create_task(
            self._read_stderr(), name="jsclient stderr"
        )

    def __repr__(self) -> str:
        return f"JsClient(device_id={self.device_id!r})"

    @classmethod
    async def start(
        cls,
        homeserver: str,
        user_id: str,
        password: str,
        isolation: Isolation = "all",
    ) -> JsClient:
        """Start a Node process, log the user in on a new device, and sync.

        Returns once the first sync is done and the new device is cross-signed
        by its owner, as Element leaves a first login.
        """
        await asyncio.to_thread(ensure_node_modules)
        node = _require_tool("node")

        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            node,
            CLIENT_SCRIPT,
            cwd=INTEROP_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
        )
        client = cls(process)

        try:
            result = await client._call(
                "login",
                LOGIN_TIMEOUT_S,
                homeserver=homeserver,
                user_id=user_id,
                password=password,
                isolation=isolation,
            )
        except BaseException:
            await client.close()
            raise

        client.user_id = result["user_id"]
        client.device_id = result["device_id"]
        logger.info(
            "js client device %s ready in %.1f s (isolation %s)",
            client.device_id,
            time.monotonic() - started,
            isolation,
        )
        return client

    # -- the line protocol -----------------------------------------------------

    async def _read_replies(self) -> None:
        assert self._process.stdout is not None
        async for line in self._process.stdout:
            try:
                reply = json.loads(line)
                future = self._pending.pop(reply["id"])
            except (ValueError, KeyError, TypeError):
                self._stderr_tail.append(f"(stray stdout line of {len(line)} bytes)")
                continue
            if not future.done():
                future.set_result(reply)

        # stdout closed: the process is gone, and so are the answers.
        await self._process.wait()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(
                    self._error(f"node exited with {self._process.returncode}")
                )
        self._pending.clear()

    async def _read_stderr(self) -> None:
        # Always drained, or a chatty SDK would fill the pipe and block Node.
        assert self._process.stderr is not None
        async for line in self._process.stderr:
            self._stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    def _error(self, what: str) -> JsClientError:
        tail = "\n".join(self._stderr_tail) or "(nothing)"
        who = self.device_id or "js client"
        return JsClientError(f"{who}: {what}\n--- node stderr, last lines ---\n{tail}")

    async def _call(self, cmd: str, timeout_s: float, **args: Any) -> Any:
        if self._process.returncode is not None or self._stdout_task.done():
            raise self._error(f"{cmd}: node is not running")

        command_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future

        assert self._process.stdin is not None
        line = json.dumps({"id": command_id, "cmd": cmd, **args}) + "\n"
        try:
            self._process.stdin.write(line.encode())
            await self._process.stdin.drain()
            reply = await asyncio.wait_for(future, timeout_s)
        except (ConnectionError, TimeoutError) as err:
            self._pending.pop(command_id, None)
            raise self._error(f"{cmd}: no answer ({type(err).__name__})") from err

        if not reply.get("ok"):
            raise self._error(str(reply.get("error")))
        return reply.get("result")

    # -- commands ------------------------------------------------------------------

    async def start_dm(self, user_id: str) -> str:
        """Open an encrypted direct chat as Element's "Start chat"; return the room ID.

        Returns once the room is known here as encrypted; the invitee may not
        have joined yet.
        """
        result = await self._call("start_dm", COMMAND_TIMEOUT_S, user_id=user_id)
        return str(result["room_id"])

    async def send(self, room_id: str, body: str) -> str:
        """Send an encrypted m.text message and return its event ID.

        Waits until the room is joined and known as encrypted, and fails rather
        than send in clear.
        """
        result = await self._call("send", COMMAND_TIMEOUT_S, room_id=room_id, body=body)
        return str(result["event_id"])

    async def react(self, room_id: str, event_id: str, key: str) -> str:
        """React to an event (in clear, as Element does); return the reaction's ID."""
        result = await self._call(
            "react", COMMAND_TIMEOUT_S, room_id=room_id, event_id=event_id, key=key
        )
        return str(result["event_id"])

    async def wait_for(
        self, contains: str, room_id: str | None = None, timeout: float = 30
    ) -> JsMessage:
        """Return the oldest message not yet handed out whose body has ``contains``.

        Only messages from other users that were decrypted (or sent in clear)
        count. Raises JsClientError on timeout, with the undecryptable count.
        """
        result = await self._call(
            "wait_for",
            timeout + COMMAND_TIMEOUT_S,
            contains=contains,
            room_id=room_id,
            timeout_ms=int(timeout * 1000),
        )
        return JsMessage(**result)

    async def wait_joined(self, room_id: str, timeout: float = 30) -> None:
        """Wait until this user has joined the room (auto-join or otherwise)."""
        await self._call(
            "wait_joined",
            timeout + COMMAND_TIMEOUT_S,
            room_id=room_id,
            timeout_ms=int(timeout * 1000),
        )

    async def set_auto_join(self, enabled: bool) -> None:
        """Accept invites as they come (the default), or leave them pending."""
        await self._call("auto_join", COMMAND_TIMEOUT_S, enabled=enabled)

    async def user_devices(self, user_id: str) -> list[str]:
        """The user's device IDs, after downloading their device list."""
        result = await self._call("user_devices", COMMAND_TIMEOUT_S, user_id=user_id)
        return [str(device_id) for device_id in result]

    async def device_status(self, user_id: str, device_id: str) -> DeviceStatus:
        """How this client trusts another device (its owner's signature first)."""
        result = await self._call(
            "device_status", COMMAND_TIMEOUT_S, user_id=user_id, device_id=device_id
        )
        return DeviceStatus(**result)

    async def undecryptable(self) -> list[Undecryptable]:
        """Events from others that are, right now, decryption failures."""
        result = await self._call("undecryptable", COMMAND_TIMEOUT_S)
        return [Undecryptable(**entry) for entry in result]

    async def wait_undecryptable(
        self, event_id: str, timeout: float = 30
    ) -> Undecryptable:
        """Wait until the event is received and fails to decrypt; return why.

        A failure for a missing key may still turn into a success later.
        """
        result = await self._call(
            "wait_undecryptable",
            timeout + COMMAND_TIMEOUT_S,
            event_id=event_id,
            timeout_ms=int(timeout * 1000),
        )
        return Undecryptable(**result)

    async def close(self) -> None:
        """Stop the client and its process; idempotent. The device is not logged out."""
        if self._process.returncode is None:
            try:
                await self._call("stop", STOP_TIMEOUT_S)
            except JsClientError:
                pass

        # Node also stops when its stdin closes, and the pipe must be closed anyway.
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            logger.warning("js client %s did not stop: killing it", self.device_id)
            self._process.kill()
            await self._process.wait()

        await self._stdout_task
        await self._stderr_task
