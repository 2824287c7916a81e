"""The bot's connection to its homeserver: login, sync, encrypted sends, room admin.

matrix-nio does the end-to-end encryption. This module adds what a long-running
service needs around it:

- the session (access token, device ID) and nio's E2EE store are kept in the data
  directory and reused; the bot never logs out, because logging out deletes the
  device and the keys other people shared with it;
- sends refuse to go out in plaintext to a room that the bot expects to be encrypted
  (nio would silently send plaintext to a room it does not know yet);
- nio results are values: they are checked where a call is made and turned into
  :class:`MatrixError` here, at one boundary;
- calls nio has no method for (createRoom with a full body, Synapse's admin API) go
  through :meth:`Matrix.request`, which retries a 429 a bounded number of times with
  the server's ``retry_after_ms``;
- nio's own calls wait out a 429 the same bounded way (:class:`CappedClient`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import random
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    LoginResponse,
    MessageDirection,
    RoomMessagesResponse,
    RoomSendResponse,
    SyncResponse,
)

from . import devicestore
from .config import STORE_KEY_CHECK_FILE, STORE_KEY_ENV, STORE_KEY_FILE, Config

logger = logging.getLogger(__name__)

MAX_RATE_LIMIT_RETRIES = 5
MAX_RETRY_WAIT_S = 30.0
_RAW_INVITES = "sobat_raw_invite_state"
SYNC_FILTER: dict[str, Any] = {
    "room": {"timeline": {"limit": 100}, "state": {"lazy_load_members": False}},
    "presence": {"not_types": ["*"]},
}


class MatrixError(Exception):
    """The homeserver refused or failed a request."""

    def __init__(self, what: str, status: int | None, errcode: str | None) -> None:
        self.what = what
        self.status = status
        self.errcode = errcode
        super().__init__(f"{what} failed: {status} {errcode}")


class RoomNotReady(Exception):
    """The room is not known from a sync yet, so a send could not be encrypted."""


class NotEncrypted(Exception):
    """The room is not encrypted; the bot refuses to send there in plaintext."""


class StoreMissing(Exception):
    """A saved session exists but its E2EE store is gone."""


class StoreKeyMismatch(StoreMissing):
    """The store key given differs from the one the E2EE store was made with.

    A kind of :class:`StoreMissing` because the effect is the same: nio cannot
    open the store, so the bot must not start (exit 74).
    """


class DeviceUnusable(Exception):
    """The bot's device cannot be used as it is; the bot must not start (exit 74).

    The message is for the operator: what is wrong and the commands that fix it.
    """


class SessionMissing(DeviceUnusable):
    """``session.json`` is gone while the E2EE store of a device is still there."""


class SessionRevoked(DeviceUnusable):
    """The homeserver refused the saved access token: the device was logged out."""


@dataclass(frozen=True)
class Session:
    user_id: str
    device_id: str
    access_token: str

    def __repr__(self) -> str:
        return f"Session(user_id={self.user_id!r}, device_id={self.device_id!r})"


def _q(value: str) -> str:
    return quote(value, safe="")


class CappedClient(AsyncClient):
    """nio's client, with each wait for a rate limit capped at ``MAX_RETRY_WAIT_S``.

    Read in nio 0.26 (``AsyncClient._send``): on a 429 or ``M_LIMIT_EXCEEDED`` nio
    sleeps ``retry_after_ms`` of the error response (5 s if absent) with no upper
    bound, inside the call, and retries up to ``max_limit_exceeded`` times; nio
    has no setting to cap the wait. A server asking for ten minutes would hold a
    ``room_send``, a key upload or a sync for ten minutes per retry. The response
    is capped where nio builds it, before ``_send`` reads it, so a call waits at
    most ``MAX_RATE_LIMIT_RETRIES`` times ``MAX_RETRY_WAIT_S``, then returns the
    error for our own retries (the outbox, the reconciler) to handle.
    """

    async def create_matrix_response(self, *args: Any, **kwargs: Any) -> Any:
        resp = await super().create_matrix_response(*args, **kwargs)
        retry_after_ms = getattr(resp, "retry_after_ms", None)
        cap_ms = int(MAX_RETRY_WAIT_S * 1000)
        if isinstance(retry_after_ms, int | float) and retry_after_ms > cap_ms:
            resp.retry_after_ms = cap_ms
        if isinstance(resp, SyncResponse) and resp.rooms.invite:
            _keep_invite_state(resp, await self.parse_body(resp.transport_response))
        return resp


def _keep_invite_state(resp: SyncResponse, body: dict[str, Any]) -> None:
    """Keep the raw stripped state of each invite on the sync response.

    Read in nio 0.26 (``SyncResponse._get_invite_state``): nio keeps only the
    member, name and alias events of an invite and drops the creation event, the
    join rules and the encryption, which are what tells a direct chat from a
    public room or a space. The body is already read, so parsing it again costs
    no request; it is done only for a sync that has invites.
    """
    rooms = body.get("rooms", {}).get("invite", {}) if isinstance(body, dict) else {}
    kept: dict[str, list[dict[str, Any]]] = {}
    for room_id, room in rooms.items():
        events = room.get("invite_state", {}).get("events", [])
        kept[room_id] = [e for e in events if isinstance(e, dict)]
    setattr(resp, _RAW_INVITES, kept)


def raw_invite_state(resp: SyncResponse, room_id: str) -> list[dict[str, Any]]:
    """The stripped state of an invite in this sync, as the server sent it."""
    kept: dict[str, list[dict[str, Any]]] = getattr(resp, _RAW_INVITES, {})
    return kept.get(room_id, [])


class Matrix:
    """One logged-in bot device."""

    def __init__(
        self,
        homeserver_url: str,
        user_id: str,
        data_dir: Path,
        *,
        device_name: str,
        pickle_key: str,
    ) -> None:
        self.homeserver_url = homeserver_url.rstrip("/")
        self.user_id = user_id
        self.data_dir = data_dir
        self.device_name = device_name
        self.store_dir = data_dir / "e2ee"
        self.session_file = data_dir / "session.json"
        self._store_key = pickle_key
        self.client = CappedClient(
            self.homeserver_url,
            user_id,
            store_path=str(self.store_dir),
            config=AsyncClientConfig(
                encryption_enabled=True,
                store_sync_tokens=False,
                pickle_key=pickle_key,
                max_limit_exceeded=MAX_RATE_LIMIT_RETRIES,
                max_timeouts=3,
            ),
        )
        self._http: aiohttp.ClientSession | None = None
        self._keys_lock = asyncio.Lock()

    @classmethod
    def for_config(cls, config: Config) -> Matrix:
        """The bot's device as the config names it; its secrets must be filled in."""
        assert config.secrets.store_key is not None
        return cls(
            config.homeserver.url,
            config.bot.user_id,
            config.data_dir,
            device_name=config.bot.device_name,
            pickle_key=config.secrets.store_key.reveal(),
        )

    # -- session -------------------------------------------------------------------

    async def connect(self, password: str | None) -> None:
        """Restore the saved session, or log in once with the password."""
        self._check_store_key()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        session = self._load_session()

        if session is not None:
            store_file = self.store_dir / f"{session.user_id}_{session.device_id}.db"
            if not store_file.exists():
                raise StoreMissing(str(store_file))
            self.client.restore_login(
                session.user_id, session.device_id, session.access_token
            )
            await self._check_token(session.device_id)
            logger.info("restored session of device %s", session.device_id)
        else:
            # Logging in now would make a new device and strand the old one's keys.
            self._refuse_orphaned_store()
            if not password:
                raise MatrixError("login (no password configured)", None, None)
            resp = await self.client.login(password, device_name=self.device_name)
            if not isinstance(resp, LoginResponse):
                raise MatrixError("login", _status(resp), _errcode(resp))
            self._save_session(Session(resp.user_id, resp.device_id, resp.access_token))
            logger.info("logged in as new device %s", resp.device_id)

        await self.housekeeping()

    def _refuse_orphaned_store(self) -> None:
        """Raise SessionMissing if the store holds a device but no session names it.

        A device that never published its keys (a first login cut short) is set
        aside instead: nobody can have sent it anything, so nothing is lost.
        """
        devices = []
        for device_id in devicestore.store_devices(self.store_dir, self.user_id):
            if devicestore.keys_published(self.store_dir, self.user_id, device_id):
                devices.append(device_id)
                continue
            devicestore.set_aside(self.store_dir, self.user_id, device_id)
            logger.warning(
                "set aside the store of device %s, which never published its keys",
                device_id,
            )
        if not devices:
            return

        raise SessionMissing(
            f"{self.session_file} is missing, but the E2EE store {self.store_dir} "
            f"holds the keys of device {', '.join(devices)}; logging in with the "
            f"password would make a new device and leave those keys unused, so the "
            f"bot does not start"
        )

    async def _check_token(self, device_id: str) -> None:
        """Raise SessionRevoked if the homeserver no longer knows the saved token."""
        try:
            await self.whoami()
        except MatrixError as exc:
            if exc.status != 401 and exc.errcode != "M_UNKNOWN_TOKEN":
                raise
            # TODO(session): a soft logout (``soft_logout: true``, an expired token)
            # keeps the device, and a login with its device ID would keep its keys;
            # Synapse does that only with refresh tokens, which the bot does not use.
            session = shlex.quote(str(self.session_file))
            store = shlex.quote(str(self.store_dir))
            raise SessionRevoked(
                f"the homeserver refused the access token of device {device_id} "
                f"saved in {self.session_file} ({exc.status} {exc.errcode}): the "
                f"device was logged out or deleted, and the keys people shared with "
                f"it are gone with it, so the bot does not start. To start over as a "
                f"new device: `mv {session} {session}.old && mv {store} {store}.old`, "
                f"then start again: the bot logs in with its password and signs the "
                f"new device with its cross-signing identity"
            ) from exc

    async def restore_session(self, password: str) -> str:
        """Log in again as the device the E2EE store holds; save ``session.json``.

        For a data directory that lost only ``session.json``. A login that names
        an existing device ID keeps that device and the keys the homeserver holds
        for it, so people's clients go on sharing room keys with it. Before the
        session is saved, the identity keys the homeserver serves for the device
        are compared with the store's: a device deleted meanwhile comes back from
        such a login empty, under its old ID, and is logged out again at once (it
        has no keys to lose). Returns the device ID.
        """
        self._check_store_key()
        session = self._load_session()
        if session is not None:
            return session.device_id
        devices = devicestore.store_devices(self.store_dir, self.user_id)
        store = shlex.quote(str(self.store_dir))
        if len(devices) != 1:
            found = ", ".join(devices) or "none"
            raise DeviceUnusable(
                f"the E2EE store {self.store_dir} must hold the keys of exactly one "
                f"device of {self.user_id} to restore its session (found: {found}); "
                f"with none, just start the bot: it logs in as a new device"
            )

        (device_id,) = devices
        self.client.device_id = device_id
        resp = await self.client.login(password, device_name=self.device_name)
        if not isinstance(resp, LoginResponse):
            raise MatrixError("login", _status(resp), _errcode(resp))
        served = await self._served_identity_keys(device_id)
        assert self.client.olm is not None
        kept = self.client.olm.account.identity_keys
        wanted = {f"{alg}:{device_id}": key for alg, key in kept.items()}
        if resp.device_id == device_id and served == wanted:
            self._save_session(Session(resp.user_id, resp.device_id, resp.access_token))
            logger.info("logged in again as device %s, its keys unchanged", device_id)
            return device_id

        if resp.device_id != device_id or not served:
            # The one logout the bot makes: of a device this login has just made,
            # which holds no keys; left behind, it would be an empty "session" in
            # people's device lists.
            await self.request("POST", "/_matrix/client/v3/logout", {}, what="logout")
        raise DeviceUnusable(
            f"device {device_id} no longer exists on the homeserver with the keys "
            f"in {self.store_dir}: it was deleted, and the keys people shared with "
            f"it are gone with it. Start over as a new device with "
            f"`mv {store} {store}.old`, then start the bot"
        )

    async def _served_identity_keys(self, device_id: str) -> dict[str, str]:
        data = await self.request(
            "POST",
            "/_matrix/client/v3/keys/query",
            {"device_keys": {self.user_id: [device_id]}},
            what="keys query",
        )
        device = data.get("device_keys", {}).get(self.user_id, {}).get(device_id, {})
        keys = device.get("keys", {}) if isinstance(device, dict) else {}
        return dict(keys) if isinstance(keys, dict) else {}

    def _check_store_key(self) -> None:
        """Refuse a store key other than the one the E2EE store was made with.

        nio cannot open a store with another key, and the failure it gives is far
        from the cause, so it is caught here. Before the ``secrets`` section the key
        was made at random into ``data_dir/e2ee.key``; it is compared with that.
        Otherwise a check value (an HMAC of a fixed text under the key, which does
        not reveal the key) is kept beside the store the first time and compared on
        every start.
        """
        kept_file = self.data_dir / STORE_KEY_FILE
        check_file = self.data_dir / STORE_KEY_CHECK_FILE
        check = hmac.new(
            self._store_key.encode(), b"sobat-matrix store key", "sha256"
        ).hexdigest()
        if kept_file.exists():
            kept = kept_file.read_text(encoding="utf-8").strip()
            if hmac.compare_digest(kept.encode(), self._store_key.encode()):
                return
            where = kept_file
            fix = f"Give the content of {kept_file} as the store key"
        elif check_file.exists():
            kept = check_file.read_text(encoding="utf-8").strip()
            if hmac.compare_digest(kept, check):
                return
            where = check_file
            fix = "Give the store key the bot was first started with"
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            check_file.write_text(check + "\n", encoding="utf-8")
            return

        logger.error(
            "the store key given (secrets.store_key, its file or %s) is not the key "
            "the E2EE store %s was made with (checked against %s), and the store "
            "cannot be opened with another key. %s; or, to start over as a new "
            "device, delete %s, %s and %s",
            STORE_KEY_ENV,
            self.store_dir,
            where,
            fix,
            where,
            self.store_dir,
            self.session_file,
        )
        raise StoreKeyMismatch(str(where))

    def _load_session(self) -> Session | None:
        if not self.session_file.exists():
            return None
        data = json.loads(self.session_file.read_text(encoding="utf-8"))
        return Session(data["user_id"], data["device_id"], data["access_token"])

    def _save_session(self, session: Session) -> None:
        tmp = self.session_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "user_id": session.user_id,
                    "device_id": session.device_id,
                    "access_token": session.access_token,
                },
                fh,
            )
        os.replace(tmp, self.session_file)

    @property
    def device_id(self) -> str:
        return str(self.client.device_id)

    async def close(self) -> None:
        """Close connections. Deliberately no logout: that would delete the device."""
        await self.client.close()
        if self._http is not None:
            await self._http.close()

    # -- raw requests ----------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        what: str,
    ) -> dict[str, Any]:
        """A client-server or admin API call with bounded 429 retries."""
        status, data = await self.request_status(method, path, body, what=what)
        if status >= 300:
            raise MatrixError(what, status, data.get("errcode"))
        return data

    async def request_status(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        what: str,
    ) -> tuple[int, dict[str, Any]]:
        """Like :meth:`request`, but an error answer is returned, not raised.

        For calls whose error body matters, such as user-interactive auth (401).
        """
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        headers = {"Authorization": f"Bearer {self.client.access_token}"}

        for attempt in range(MAX_RATE_LIMIT_RETRIES + 1):
            async with self._http.request(
                method, self.homeserver_url + path, json=body, headers=headers
            ) as resp:
                try:
                    data = await resp.json(content_type=None)
                except (json.JSONDecodeError, aiohttp.ContentTypeError):
                    data = {}
                if not isinstance(data, dict):
                    data = {}
                if resp.status != 429 or attempt == MAX_RATE_LIMIT_RETRIES:
                    return resp.status, data

            wait_s = _retry_wait_s(data, attempt)
            logger.warning("%s rate-limited; retrying in %.1f s", what, wait_s)
            await asyncio.sleep(wait_s)

        raise AssertionError("unreachable")

    async def whoami(self) -> str:
        data = await self.request(
            "GET", "/_matrix/client/v3/account/whoami", what="whoami"
        )
        return str(data.get("user_id", ""))

    async def is_server_admin(self) -> bool:
        try:
            data = await self.request(
                "GET",
                f"/_synapse/admin/v1/users/{_q(self.user_id)}/admin",
                what="admin check",
            )
        except MatrixError:
            return False
        return bool(data.get("admin"))

    async def default_room_version(self) -> str:
        data = await self.request(
            "GET", "/_matrix/client/v3/capabilities", what="capabilities"
        )
        versions = data.get("capabilities", {}).get("m.room_versions", {})
        return str(versions.get("default", "10"))

    async def set_display_name(self, name: str) -> None:
        await self.request(
            "PUT",
            f"/_matrix/client/v3/profile/{_q(self.user_id)}/displayname",
            {"displayname": name},
            what="set display name",
        )

    # -- rooms -------------------------------------------------------------------

    async def create_room(self, body: dict[str, Any]) -> str:
        data = await self.request(
            "POST", "/_matrix/client/v3/createRoom", body, what="createRoom"
        )
        return str(data["room_id"])

    async def joined_count(self, room_id: str, via: str) -> int | None:
        """How many people have joined a room the bot is only invited to.

        From the room summary (``/_matrix/client/v1/room_summary``, Matrix 1.15),
        which Synapse answers for an invitee; ``via`` is the inviter's server, for
        a room this server is not in. None when the server cannot tell.
        """
        try:
            status, data = await self.request_status(
                "GET",
                f"/_matrix/client/v1/room_summary/{_q(room_id)}?via={_q(via)}",
                what="room summary",
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The join that follows meets the same server and handles its errors.
            logger.info("no room summary for %s: %s", room_id, type(exc).__name__)
            return None
        count = data.get("num_joined_members")
        if status != 200 or not isinstance(count, int):
            logger.info("no room summary for %s (HTTP %s)", room_id, status)
            return None
        return count

    async def joined_rooms(self) -> list[str]:
        data = await self.request(
            "GET", "/_matrix/client/v3/joined_rooms", what="joined_rooms"
        )
        return [str(r) for r in data.get("joined_rooms", [])]

    async def state_event(
        self, room_id: str, event_type: str, state_key: str = ""
    ) -> dict[str, Any]:
        return await self.request(
            "GET",
            f"/_matrix/client/v3/rooms/{_q(room_id)}/state/{_q(event_type)}/"
            f"{_q(state_key)}",
            what=f"get {event_type}",
        )

    async def put_state(
        self,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        state_key: str = "",
    ) -> None:
        await self.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{_q(room_id)}/state/{_q(event_type)}/"
            f"{_q(state_key)}",
            content,
            what=f"set {event_type}",
        )

    async def find_room_by_token(self, token_key: str, token: str) -> str | None:
        """The joined room whose creation event carries ``token``, if any."""
        for room_id in await self.joined_rooms():
            try:
                create = await self.state_event(room_id, "m.room.create")
            except MatrixError:
                continue
            if create.get(token_key) == token:
                return room_id
        return None

    async def invite(self, room_id: str, user_id: str) -> None:
        try:
            await self.request(
                "POST",
                f"/_matrix/client/v3/rooms/{_q(room_id)}/invite",
                {"user_id": user_id},
                what="invite",
            )
        except MatrixError as exc:
            # Inviting someone who is already invited or joined is a 403 on Synapse.
            if exc.status == 403 and await self._is_member(room_id, user_id):
                return
            raise

    async def admin_join(self, room_id: str, user_id: str) -> None:
        """Join a local user to a room through Synapse's admin API.

        Someone already in the room counts as joined: a retry after a crash
        between the join and its record must not fail for ever.
        """
        try:
            await self.request(
                "POST",
                f"/_synapse/admin/v1/join/{_q(room_id)}",
                {"user_id": user_id},
                what="admin join",
            )
        except MatrixError:
            if await self._is_member(room_id, user_id):
                return
            raise

    async def _is_member(self, room_id: str, user_id: str) -> bool:
        try:
            member = await self.state_event(room_id, "m.room.member", user_id)
        except MatrixError:
            return False
        return member.get("membership") in ("invite", "join")

    async def kick(self, room_id: str, user_id: str, reason: str) -> None:
        try:
            await self.request(
                "POST",
                f"/_matrix/client/v3/rooms/{_q(room_id)}/kick",
                {"user_id": user_id, "reason": reason},
                what="kick",
            )
        except MatrixError as exc:
            # Someone who already left cannot be kicked; that is what we wanted.
            if exc.status == 403 and not await self._is_member(room_id, user_id):
                return
            raise

    async def leave(self, room_id: str) -> None:
        await self.request(
            "POST", f"/_matrix/client/v3/rooms/{_q(room_id)}/leave", {}, what="leave"
        )
        await self.request(
            "POST", f"/_matrix/client/v3/rooms/{_q(room_id)}/forget", {}, what="forget"
        )

    # -- messages ------------------------------------------------------------------

    async def send(
        self,
        room_id: str,
        content: dict[str, Any],
        txn_id: str,
        *,
        event_type: str = "m.room.message",
        allow_plaintext: bool = False,
    ) -> str:
        """Send an event, encrypted; raise rather than fall back to plaintext.

        ``txn_id`` makes a retried send idempotent: Synapse answers a repeated
        transaction ID with the event it already created.
        """
        room = self.client.rooms.get(room_id)
        if room is None:
            raise RoomNotReady(room_id)
        if not room.encrypted and not allow_plaintext:
            raise NotEncrypted(room_id)

        await self.ensure_device_keys()
        resp = await self.client.room_send(
            room_id,
            event_type,
            content,
            tx_id=txn_id,
            ignore_unverified_devices=True,
        )
        if not isinstance(resp, RoomSendResponse):
            raise MatrixError("send", _status(resp), _errcode(resp))
        return str(resp.event_id)

    async def ensure_device_keys(self) -> None:
        """Fetch the device lists of new members before a room key is shared.

        Without this a member who joined in the last sync may miss the key of the
        next message, because nio shares only with devices it already knows.
        """
        async with self._keys_lock:
            if self.client.should_query_keys:
                await self.client.keys_query()

    # -- sync ----------------------------------------------------------------------

    async def sync(
        self, since: str | None, *, full_state: bool, timeout_ms: int
    ) -> SyncResponse:
        resp = await self.client.sync(
            timeout=timeout_ms,
            sync_filter=SYNC_FILTER,
            since=since,
            full_state=full_state,
        )
        if not isinstance(resp, SyncResponse):
            raise MatrixError("sync", _status(resp), _errcode(resp))
        return resp

    async def messages_back(
        self, room_id: str, start: str, end: str, limit: int
    ) -> RoomMessagesResponse:
        """One page of a room's events before ``start``, back to ``end``, newest first.

        nio decrypts the Megolm events of the page whose keys it has; the others
        stay :class:`nio.MegolmEvent`.
        """
        resp = await self.client.room_messages(
            room_id, start=start, end=end, direction=MessageDirection.back, limit=limit
        )
        if not isinstance(resp, RoomMessagesResponse):
            raise MatrixError("messages", _status(resp), _errcode(resp))
        return resp

    async def housekeeping(self) -> None:
        """The E2EE chores nio's own sync loop would do between two syncs."""
        client = self.client
        if client.outgoing_to_device_messages:
            await client.send_to_device_messages()
        if client.should_upload_keys:
            await client.keys_upload()
        await self.ensure_device_keys()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())


def _status(resp: Any) -> int | None:
    transport = getattr(resp, "transport_response", None)
    status = getattr(transport, "status", None)
    return int(status) if isinstance(status, int) else None


def _errcode(resp: Any) -> str | None:
    # nio keeps the Matrix errcode (M_FORBIDDEN, ...) in ``status_code``.
    if isinstance(resp, ErrorResponse) and resp.status_code:
        return str(resp.status_code)
    return None


def _retry_wait_s(data: dict[str, Any], attempt: int) -> float:
    retry_after_ms = data.get("retry_after_ms")
    if isinstance(retry_after_ms, int | float) and retry_after_ms > 0:
        wait_s = retry_after_ms / 1000
    else:
        wait_s = 0.5 * 2**attempt + random.uniform(0, 0.25)
    return min(wait_s, MAX_RETRY_WAIT_S)
