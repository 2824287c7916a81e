"""A scripted Matrix user with real end-to-end encryption, built on matrix-nio.

Tests and the scripted demo use an :class:`Actor` to play a warga or a counsellor
the way an Element user would: open an encrypted direct chat, type messages, react,
and read what arrives. Everything goes through nio's Olm/Megolm machine, so what
an Actor reads it has really decrypted, and what it sends is really encrypted.

nio's ``room_send`` silently sends plaintext to a room it does not know as
encrypted (MATRIX-NOTES.md); an Actor refuses instead, because a test that passes
on plaintext proves nothing.

Reactions are the one exception, on purpose: Element (matrix-js-sdk, up to at least
43) sends ``m.reaction`` in clear even in encrypted rooms, so the server sees which
emoji reacted to which event. :meth:`Actor.react` does the same by default, and can
send the encrypted form some other clients use.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote
from uuid import uuid4

from nio import (
    Api,
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    MatrixRoom,
    MegolmEvent,
    RoomCreateResponse,
    RoomPreset,
    RoomSendResponse,
    SyncResponse,
    WhoamiResponse,
)

from ..crosssign import CrossSigner

logger = logging.getLogger(__name__)

T = TypeVar("T")

SESSION_FILE = "session.json"
DEVICE_NAME = "sobat actor"
SYNC_TIMEOUT_MS = 10_000
FIRST_SYNC_TIMEOUT_S = 30.0
# How long an action waits for the sync loop to deliver the room it acts in.
ROOM_SYNC_TIMEOUT_S = 30.0
MEGOLM = "m.megolm.v1.aes-sha2"

# Enough that a test never meets a "limited" timeline gap after a short pause.
_SYNC_FILTER = {"room": {"timeline": {"limit": 100}}}

_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 10.0
_TAIL_FOR_ERRORS = 8


class ActorError(RuntimeError):
    """The actor could not do what the script asked, or its sync loop failed."""


@dataclass(frozen=True)
class ReceivedEvent:
    """A timeline event from another user, after decryption if it was encrypted."""

    room_id: str
    event_id: str
    sender: str
    type: str
    body: str | None
    msgtype: str | None
    was_encrypted: bool
    source: dict[str, Any] = field(repr=False)


def _check(response: T, doing: str) -> T:
    """Turn a nio error value into an exception, at the call that got it."""
    if isinstance(response, ErrorResponse):
        raise ActorError(f"{doing} failed: {response.status_code} {response.message}")
    return response


def _client_config() -> AsyncClientConfig:
    # nio retries timeouts forever by default; a test must see a dead server.
    return AsyncClientConfig(
        encryption_enabled=True,
        store_sync_tokens=True,
        max_timeouts=5,
        max_limit_exceeded=20,
    )


def _received_from(room_id: str, event: Any) -> ReceivedEvent:
    source: dict[str, Any] = event.source
    content = source.get("content") or {}
    is_message = source.get("type") == "m.room.message"

    return ReceivedEvent(
        room_id=room_id,
        event_id=str(source.get("event_id", "")),
        sender=str(source.get("sender", "")),
        type=str(source.get("type", "")),
        body=content.get("body") if is_message else None,
        msgtype=content.get("msgtype") if is_message else None,
        was_encrypted=bool(getattr(event, "decrypted", False)),
        source=source,
    )


def _read_session(store_dir: Path) -> dict[str, str] | None:
    try:
        session = json.loads((store_dir / SESSION_FILE).read_text("utf-8"))
    except FileNotFoundError:
        return None
    return session if isinstance(session, dict) else None


def _write_session(store_dir: Path, client: AsyncClient) -> None:
    session = {
        "homeserver": client.homeserver,
        "user_id": client.user_id,
        "device_id": client.device_id,
        "access_token": client.access_token,
    }
    path = store_dir / SESSION_FILE

    # The access token is a password for this device: owner-only file.
    path.touch(mode=0o600)
    path.write_text(json.dumps(session), "utf-8")


def _prepare_store(store_dir: Path) -> tuple[Path, dict[str, str] | None]:
    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    return store_dir, _read_session(store_dir)


async def _restored_client(
    homeserver_url: str, user_id: str, store_dir: Path, session: dict[str, str]
) -> AsyncClient | None:
    """Return a client on the device saved in store_dir, if its token still works."""
    if session.get("homeserver") != homeserver_url or session.get("user_id") != user_id:
        return None

    client = AsyncClient(
        homeserver_url, user_id, store_path=str(store_dir), config=_client_config()
    )
    client.restore_login(user_id, session["device_id"], session["access_token"])

    whoami = await client.whoami()
    if isinstance(whoami, WhoamiResponse) and whoami.device_id == client.device_id:
        return client

    logger.warning("saved device %s is no longer valid", session["device_id"])
    await client.close()
    return None


class Actor:
    """A Matrix user played by a script, with its own device, keys and sync loop.

    Every timeline event from another user is kept, oldest first, in
    :attr:`received`. :meth:`wait_for` hands each one out at most once: to the
    first call whose predicate it matches. So a reply that arrived before the test
    started waiting is still found, and two waits for the same text get two
    different events.
    """

    def __init__(
        self,
        client: AsyncClient,
        *,
        store_dir: Path,
        auto_join: bool,
        restored: bool,
    ) -> None:
        self.client = client
        self.user_id: str = client.user_id
        self.store_dir = store_dir
        self.restored = restored
        self.received: list[ReceivedEvent] = []
        self.undecryptable_event_ids: list[str] = []
        self.errors: list[BaseException] = []

        self.auto_join = auto_join
        """Whether invitations are accepted after each sync; tests may switch it."""
        self._taken: set[int] = set()
        self._invites: list[str] = []
        self._invites_taken = 0
        self._join_attempted: set[str] = set()
        self._join_failures: dict[str, str] = {}
        self._unreported_errors: list[BaseException] = []
        self._keys_lock = asyncio.Lock()
        self._progress = asyncio.Event()
        self._synced_once = False
        self._sync_task: asyncio.Task[None] | None = None

    @classmethod
    async def login(
        cls,
        homeserver_url: str,
        user_id: str,
        password: str,
        store_dir: Path,
        *,
        auto_join: bool = True,
        cross_sign: bool = False,
    ) -> Actor:
        """Log in, upload keys, start syncing, and return after the first sync.

        With ``cross_sign`` the user gets a cross-signing identity (kept in
        ``store_dir``) and the device is signed by it, as Element does at first
        login; clients that exclude "insecure devices" then talk to it.

        ``store_dir`` keeps the device: its Olm account, Megolm sessions, sync
        token and access token. Logging in again with a store that has a device
        for this user on this server reuses that device instead of making a new
        one, as a restarted Element does; the password is only used when there
        is no such device or its token was revoked.
        """
        store_dir, session = _prepare_store(store_dir)

        client = None
        if session is not None:
            client = await _restored_client(homeserver_url, user_id, store_dir, session)
        restored = client is not None

        if client is None:
            client = AsyncClient(
                homeserver_url,
                user_id,
                store_path=str(store_dir),
                config=_client_config(),
            )
            try:
                _check(await client.login(password, device_name=DEVICE_NAME), "login")
            except BaseException:
                await client.close()
                raise
            _write_session(store_dir, client)

        actor = cls(client, store_dir=store_dir, auto_join=auto_join, restored=restored)
        try:
            await actor._start()
            if cross_sign:
                await CrossSigner(
                    actor._raw,
                    actor.user_id,
                    str(client.device_id),
                    store_dir,
                    password=password,
                ).ensure()
        except BaseException:
            await actor.close()
            raise

        return actor

    async def _start(self) -> None:
        if self.client.should_upload_keys:
            _check(await self.client.keys_upload(), "keys upload")

        self._sync_task = asyncio.create_task(
            self._sync_loop(), name=f"actor sync {self.client.device_id}"
        )
        await self._wait_until(
            lambda: True if self._synced_once else None,
            timeout_s=FIRST_SYNC_TIMEOUT_S,
            describe=lambda: "the first sync did not finish",
        )
        logger.info(
            "actor device %s is syncing (restored: %s)",
            self.client.device_id,
            self.restored,
        )

    @property
    def access_token(self) -> str:
        return str(self.client.access_token)

    @property
    def undecryptable(self) -> int:
        """How many events from others nio left encrypted (no key to decrypt)."""
        return len(self.undecryptable_event_ids)

    async def close(self) -> None:
        """Stop syncing and close the HTTP session, keeping the device.

        There is deliberately no logout: it would delete the device and its keys
        on the server, and the store could not be used again.
        """
        if self._sync_task is not None:
            self._sync_task.cancel()
            try:
                await self._sync_task
            except asyncio.CancelledError:
                pass
            self._sync_task = None

        await self.client.close()

    # -- the sync loop ---------------------------------------------------------

    async def _sync_loop(self) -> None:
        """Sync forever, doing what nio's sync_forever does between syncs.

        Our own loop rather than sync_forever, because nio's ends on the first
        exception. Here a failed round is recorded, re-raised by the next wait,
        and retried after a bounded backoff.
        """
        backoff_s = _BACKOFF_FIRST_S

        while True:
            try:
                await self._sync_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                logger.warning(
                    "actor device %s: sync round failed (%s)",
                    self.client.device_id,
                    type(err).__name__,
                )
                self.errors.append(err)
                self._unreported_errors.append(err)
                self._notify()

                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, _BACKOFF_MAX_S)
            else:
                backoff_s = _BACKOFF_FIRST_S

    async def _sync_once(self) -> None:
        first = not self._synced_once

        # nio keeps rooms in memory only: a restored device asks for the full
        # state once, or it would not know its rooms, their members and whether
        # they are encrypted.
        response = await self.client.sync(
            timeout=0 if first else SYNC_TIMEOUT_MS,
            sync_filter=_SYNC_FILTER,
            full_state=True if first and self.restored else None,
        )
        sync = _check(response, "sync")
        assert isinstance(sync, SyncResponse)

        self._collect(sync)
        await self._between_syncs()

        if self.auto_join:
            await self._join_invites()

        self._synced_once = True
        self._notify()

    def _collect(self, sync: SyncResponse) -> None:
        for room_id, info in sync.rooms.join.items():
            for event in info.timeline.events:
                sender = event.source.get("sender")
                if sender is None or sender == self.user_id:
                    continue

                if isinstance(event, MegolmEvent):
                    self.undecryptable_event_ids.append(event.event_id)
                    logger.warning(
                        "actor device %s could not decrypt %s in %s",
                        self.client.device_id,
                        event.event_id,
                        room_id,
                    )
                    continue

                self.received.append(_received_from(room_id, event))

        for room_id in sync.rooms.invite:
            if room_id not in self._invites:
                self._invites.append(room_id)

    async def _between_syncs(self) -> None:
        for answer in await self.client.send_to_device_messages():
            _check(answer, "to-device send")

        async with self._keys_lock:
            if self.client.should_upload_keys:
                _check(await self.client.keys_upload(), "keys upload")
            if self.client.should_query_keys:
                _check(await self.client.keys_query(), "keys query")
            if self.client.should_claim_keys:
                users = self.client.get_users_for_key_claiming()
                _check(await self.client.keys_claim(users), "keys claim")

    async def _join_invites(self) -> None:
        for room_id in list(self.client.invited_rooms):
            if room_id in self._join_attempted:
                continue
            self._join_attempted.add(room_id)

            answer = await self.client.join(room_id)
            if isinstance(answer, ErrorResponse):
                # Not a loop failure: an invite can be withdrawn before we join.
                self._join_failures[room_id] = f"{answer.status_code} {answer.message}"
                logger.warning("actor could not join %s", room_id)

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    # -- waiting -----------------------------------------------------------------

    def _raise_loop_failure(self) -> None:
        if self._unreported_errors:
            err = self._unreported_errors.pop(0)
            raise ActorError(
                f"the sync loop of {self.user_id} failed: {err!r}"
            ) from err
        if self._sync_task is not None and self._sync_task.done():
            raise ActorError(f"the sync loop of {self.user_id} has stopped")

    async def _wait_until(
        self,
        check: Callable[[], T | None],
        *,
        timeout_s: float,
        describe: Callable[[], str],
    ) -> T:
        """Return check()'s first non-None result, re-checking after every sync."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s

        while True:
            self._raise_loop_failure()
            result = check()
            if result is not None:
                return result

            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.user_id}: {describe()} within {timeout_s:g} s"
                )
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except TimeoutError:
                pass

    def _take(
        self, predicate: Callable[[ReceivedEvent], bool], room_id: str | None
    ) -> ReceivedEvent | None:
        for index, event in enumerate(self.received):
            if index in self._taken or room_id not in (None, event.room_id):
                continue
            if predicate(event):
                self._taken.add(index)
                return event
        return None

    def _describe_miss(self, what: str, room_id: str | None) -> str:
        tail = [
            f"{e.sender} {e.type} {e.body!r}" for e in self.received[-_TAIL_FOR_ERRORS:]
        ]
        where = f" in {room_id}" if room_id else ""
        return (
            f"no {what}{where}; last received: {tail}; "
            f"undecryptable: {self.undecryptable}"
        )

    async def wait_for(
        self,
        predicate: Callable[[ReceivedEvent], bool],
        *,
        room_id: str | None = None,
        timeout: float = 30,  # noqa: ASYNC109 (seconds; a deadline, not a cancel scope)
    ) -> ReceivedEvent:
        """Return the oldest event not yet handed out that matches ``predicate``.

        Raises AssertionError on timeout, listing the last events received.
        """
        return await self._wait_until(
            lambda: self._take(predicate, room_id),
            timeout_s=timeout,
            describe=lambda: self._describe_miss("matching event", room_id),
        )

    async def wait_for_text(
        self,
        contains: str,
        *,
        room_id: str | None = None,
        timeout: float = 30,  # noqa: ASYNC109 (seconds)
    ) -> ReceivedEvent:
        """Wait for a message (text or notice) whose body contains ``contains``."""
        return await self._wait_until(
            lambda: self._take(lambda e: contains in (e.body or ""), room_id),
            timeout_s=timeout,
            describe=lambda: self._describe_miss(f"message with {contains!r}", room_id),
        )

    async def wait_invited(self, timeout: float = 30) -> str:  # noqa: ASYNC109
        """Return the ID of the oldest room invite not yet handed out."""

        def next_invite() -> str | None:
            if self._invites_taken >= len(self._invites):
                return None
            self._invites_taken += 1
            return self._invites[self._invites_taken - 1]

        return await self._wait_until(
            next_invite, timeout_s=timeout, describe=lambda: "no new invite"
        )

    async def wait_joined(self, room_id: str, timeout: float = 30) -> None:  # noqa: ASYNC109
        """Wait until the sync loop shows this user joined to the room."""

        def joined() -> bool | None:
            room = self.client.rooms.get(room_id)
            return (
                True if room and self.user_id in self.joined_members(room_id) else None
            )

        await self._wait_until(
            joined,
            timeout_s=timeout,
            describe=lambda: (
                f"join of {room_id} (join failure: {self._join_failures.get(room_id)})"
            ),
        )

    def joined_members(self, room_id: str) -> list[str]:
        """Joined members of the room, as this actor's last sync saw them."""
        room = self.client.rooms.get(room_id)
        if room is None:
            return []
        return sorted(set(room.users) - set(room.invited_users))

    async def _synced_room(self, room_id: str) -> MatrixRoom:
        return await self._wait_until(
            lambda: self.client.rooms.get(room_id),
            timeout_s=ROOM_SYNC_TIMEOUT_S,
            describe=lambda: f"room {room_id} in sync",
        )

    # -- acting ------------------------------------------------------------------

    async def start_direct_chat(self, other_user_id: str) -> str:
        """Open an encrypted direct chat with someone, as Element's "Start chat".

        Returns once this actor's sync knows the room and knows it is encrypted;
        the other user may not have joined yet.
        """
        answer = await self.client.room_create(
            is_direct=True,
            preset=RoomPreset.trusted_private_chat,
            invite=[other_user_id],
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": MEGOLM},
                }
            ],
        )
        created = _check(answer, "createRoom")
        assert isinstance(created, RoomCreateResponse)
        room_id = str(created.room_id)

        await self._mark_direct(other_user_id, room_id)

        await self._wait_until(
            lambda: True if self._is_encrypted(room_id) else None,
            timeout_s=ROOM_SYNC_TIMEOUT_S,
            describe=lambda: f"encrypted room {room_id} in sync",
        )
        logger.info("actor opened direct chat %s", room_id)
        return room_id

    def _is_encrypted(self, room_id: str) -> bool:
        room = self.client.rooms.get(room_id)
        return room is not None and room.encrypted

    async def _raw(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        """One client-server API call with this device's token."""
        headers = {"Authorization": f"Bearer {self.access_token}"}
        data = None if body is None else json.dumps(body)
        async with await self.client.send(method, path, data, headers) as response:
            answer = await response.json(content_type=None)
            return response.status, answer if isinstance(answer, dict) else {}

    async def _mark_direct(self, other_user_id: str, room_id: str) -> None:
        """Record the room in m.direct account data, as Element does after creating."""
        path = (
            f"/_matrix/client/v3/user/{quote(self.user_id, safe='')}"
            "/account_data/m.direct"
        )
        headers = {"Authorization": f"Bearer {self.access_token}"}

        async with await self.client.send("GET", path, headers=headers) as response:
            direct = await response.json() if response.status == 200 else {}
        direct.setdefault(other_user_id, []).append(room_id)

        body = json.dumps(direct)
        async with await self.client.send("PUT", path, body, headers) as response:
            if response.status != 200:
                raise ActorError(f"m.direct update failed: HTTP {response.status}")

    async def send_text(self, room_id: str, body: str) -> str:
        """Send an m.text message, encrypted, and return its event ID.

        Waits for the room to be synced first, and raises ActorError rather than
        send plaintext if the room is not known as encrypted.
        """
        content = {"msgtype": "m.text", "body": body}
        return await self._send_encrypted(room_id, "m.room.message", content)

    async def react(
        self, room_id: str, event_id: str, key: str, *, encrypted: bool = False
    ) -> str:
        """React to an event with an annotation, and return the reaction's event ID.

        By default as Element sends it: a clear ``m.reaction``, even in an encrypted
        room. With ``encrypted=True``, as an ``m.room.encrypted`` event whose
        cleartext still carries the whole relation, key included (nio's encrypt
        copies ``m.relates_to`` out, as the spec asks for relations).
        """
        content = {
            "m.relates_to": {
                "rel_type": "m.annotation",
                "event_id": event_id,
                "key": key,
            }
        }
        if encrypted:
            return await self._send_encrypted(room_id, "m.reaction", content)

        await self._synced_room(room_id)
        answer = await self.client.room_send(
            room_id, "m.reaction", content, ignore_unverified_devices=True
        )
        return str(_check(answer, f"reaction in {room_id}").event_id)

    async def send_event(
        self,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        *,
        encrypted: bool = True,
    ) -> str:
        """Send any content under any event type, as a buggy or hostile client might.

        Nothing is checked or filled in: a missing ``msgtype`` or a ``body`` that is
        a number goes out as given. Encrypted by default (nio encrypts whatever it
        is handed); with ``encrypted=False`` it goes out in clear, even into an
        encrypted room. Returns the event ID.
        """
        if encrypted:
            return await self._send_encrypted(room_id, event_type, content)

        path = (
            f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/send/"
            f"{quote(event_type, safe='')}/{uuid4()}"
        )
        status, answer = await self._raw("PUT", path, content)
        if status != 200:
            raise ActorError(
                f"send {event_type} to {room_id}: HTTP {status} {answer.get('error')}"
            )
        return str(answer["event_id"])

    async def redact(self, room_id: str, event_id: str) -> str:
        """Redact an event (one's own, or any with the power to), as Element does."""
        await self._synced_room(room_id)
        answer = await self.client.room_redact(room_id, event_id)
        return str(_check(answer, f"redaction in {room_id}").event_id)

    async def _send_encrypted(
        self, room_id: str, event_type: str, content: dict[str, Any]
    ) -> str:
        room = await self._synced_room(room_id)
        if not room.encrypted:
            raise ActorError(f"refusing to send to {room_id}: not known as encrypted")

        # A member whose devices are still unknown would get no room key, and
        # could never read this message.
        async with self._keys_lock:
            if self.client.should_query_keys:
                _check(await self.client.keys_query(), "keys query")

        if event_type == "m.reaction":
            event_id = await self._send_encrypted_reaction(room, content)
        else:
            answer = await self.client.room_send(
                room_id, event_type, content, ignore_unverified_devices=True
            )
            event_id = _check(answer, f"send to {room_id}").event_id

        logger.debug("actor sent %s %s to %s", event_type, event_id, room_id)
        return str(event_id)

    async def _send_encrypted_reaction(
        self, room: MatrixRoom, content: dict[str, Any]
    ) -> str:
        """Do room_send's work for a reaction, which nio 0.26 would send in clear."""
        client = self.client

        if not room.members_synced:
            _check(await client.joined_members(room.room_id), "joined members")
        if client.olm.should_share_group_session(room.room_id):
            sharing = client.sharing_session.get(room.room_id)
            if sharing is not None:
                await sharing.wait()
            else:
                await client.share_group_session(
                    room.room_id, ignore_unverified_devices=True
                )

        event_type, encrypted = client.encrypt(room.room_id, "m.reaction", content)
        method, path, data = Api.room_send(
            client.access_token, room.room_id, event_type, encrypted, uuid4()
        )

        # nio's private _send: the public send() neither retries nor parses.
        answer = await client._send(
            RoomSendResponse, method, path, data, (room.room_id,)
        )
        return str(_check(answer, f"reaction in {room.room_id}").event_id)
