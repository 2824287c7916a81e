"""A throwaway Synapse on 127.0.0.1 for the embedded demo and the integration tests.

Everything the server needs lives in one directory: its config, SQLite database,
signing key, media store and logs. Starting again on the same directory reuses all
of it (the same port, users, rooms and keys), which is what lets a demo be stopped
and restarted without the warga and counsellor accounts losing their history.

The server never talks to anything but 127.0.0.1: it has no federation listener,
federates with no domain, trusts no key server and reports no statistics.

The small admin and client helpers on :class:`DevServer` exist for tests and demo
scripts. They are deliberately not built on nio: they show what the server holds,
independently of the client library under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import signal
import socket
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import yaml

logger = logging.getLogger(__name__)

CONFIG_FILE = "homeserver.yaml"
LOG_CONFIG_FILE = "log.config"
LOG_FILE = "homeserver.log"
# Synapse's own stdout and stderr: tracebacks from before logging is set up land here.
OUTPUT_FILE = "synapse.out"

START_TIMEOUT_S = 90.0
STOP_GRACE_S = 15.0
_POLL_INTERVAL_S = 0.2
_LOG_TAIL_LINES = 40

# High enough that no test or demo script is ever throttled, low enough to stay a
# valid float for Synapse's token buckets.
_UNLIMITED = {"per_second": 10_000, "burst_count": 100_000}

_RELAXED_RATELIMITS: dict[str, Any] = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_login": {
        "address": _UNLIMITED,
        "account": _UNLIMITED,
        "failed_attempts": _UNLIMITED,
    },
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_joins_per_room": _UNLIMITED,
    "rc_invites": {
        "per_room": _UNLIMITED,
        "per_user": _UNLIMITED,
        "per_issuer": _UNLIMITED,
    },
    "rc_room_creation": _UNLIMITED,
    "rc_key_requests": _UNLIMITED,
}

# Synapse logs to a file in the server directory, never to the console, so that the
# demo's and pytest's output stays readable.
_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "formatters": {
        "precise": {
            "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s"
            " - %(request)s - %(message)s"
        }
    },
    "handlers": {
        "file": {
            "class": "logging.FileHandler",
            "formatter": "precise",
            "filename": LOG_FILE,
            "encoding": "utf8",
        }
    },
    # At DEBUG this logger prints access tokens.
    "loggers": {"synapse.storage.SQL": {"level": "INFO"}},
    "root": {"level": "INFO", "handlers": ["file"]},
    "disable_existing_loggers": False,
}


class DevServerError(RuntimeError):
    """The local Synapse could not be started, or refused a request."""


class MatrixHTTPError(DevServerError):
    """Synapse answered a request with an HTTP error."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.errcode = body.get("errcode") if isinstance(body, dict) else None
        error = body.get("error") if isinstance(body, dict) else None
        super().__init__(f"{method} {path}: HTTP {status} {self.errcode}: {error}")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now.

    Another process may take it before Synapse binds it; that race is accepted for
    a development server, and shows up as a start failure naming the port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Synapse (Twisted) does, so that connections of a stopped server that
        # linger in TIME_WAIT do not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def build_config(
    server_name: str,
    port: int,
    *,
    relaxed_ratelimits: bool = False,
    rate_limits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the homeserver.yaml content for a new development server.

    Paths are relative: Synapse runs with the server directory as its working
    directory, so the directory can be moved without breaking its config.
    ``rate_limits`` are ``rc_*`` settings applied last; a None value removes the
    setting, so that Synapse's default applies (a test of the bot under limits).
    """
    config: dict[str, Any] = {
        "server_name": server_name,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": "homeserver.pid",
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": "homeserver.db"}},
        "log_config": LOG_CONFIG_FILE,
        "media_store_path": "media_store",
        "signing_key_path": f"{server_name}.signing.key",
        "registration_shared_secret": secrets.token_urlsafe(32),
        "macaroon_secret_key": secrets.token_urlsafe(32),
        "form_secret": secrets.token_urlsafe(32),
        "enable_registration": False,
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "allow_public_rooms_over_federation": False,
    }

    if relaxed_ratelimits:
        config.update(_RELAXED_RATELIMITS)
    for key, value in (rate_limits or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value

    return config


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except FileNotFoundError:
        return f"({path.name} does not exist)\n"


def _start_failure(base_dir: Path, reason: str) -> DevServerError:
    return DevServerError(
        f"Synapse in {base_dir} {reason}\n"
        f"--- last lines of {OUTPUT_FILE} ---\n{_tail(base_dir / OUTPUT_FILE)}"
        f"--- last lines of {LOG_FILE} ---\n{_tail(base_dir / LOG_FILE)}"
    )


def _write_new_config(
    config_path: Path,
    server_name: str,
    port: int,
    relaxed_ratelimits: bool,
    rate_limits: dict[str, Any] | None = None,
) -> None:
    base_dir = config_path.parent
    config = build_config(
        server_name,
        port,
        relaxed_ratelimits=relaxed_ratelimits,
        rate_limits=rate_limits,
    )

    (base_dir / LOG_CONFIG_FILE).write_text(yaml.safe_dump(_LOG_CONFIG), "utf-8")
    (base_dir / "media_store").mkdir(exist_ok=True)

    # The file holds the registration secret: readable by its owner only.
    config_path.touch(mode=0o600)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")


def _read_config(config_path: Path) -> dict[str, Any]:
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise DevServerError(f"{config_path}: not a YAML mapping")
    return config


def _prepare_config(
    base_dir: Path,
    server_name: str,
    port: int | None,
    relaxed_ratelimits: bool,
    rate_limits: dict[str, Any] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Return the absolute server directory and its config, written if missing.

    No signing key is made here: Synapse's default mode (generate missing files,
    then run) creates it on the first start, which saves a second 2 s start-up
    of the Synapse code that ``--generate-keys`` would cost.
    """
    base_dir = Path(base_dir).absolute()
    base_dir.mkdir(parents=True, exist_ok=True)
    config_path = base_dir / CONFIG_FILE

    if not config_path.exists():
        port = port or free_port()
        _write_new_config(
            config_path, server_name, port, relaxed_ratelimits, rate_limits
        )
        logger.info("wrote a new Synapse config in %s for port %d", base_dir, port)

    return base_dir, _read_config(config_path)


def _client_port(config_path: Path, config: dict[str, Any]) -> int:
    for listener in config.get("listeners") or []:
        names = {n for r in listener.get("resources", []) for n in r.get("names", [])}
        if "client" in names:
            return int(listener["port"])
    raise DevServerError(f"{config_path}: no listener serves the client API")


async def start_synapse(
    base_dir: Path,
    *,
    server_name: str = "sukabumi.test",
    port: int | None = None,
    relaxed_ratelimits: bool = False,
    rate_limits: dict[str, Any] | None = None,
) -> DevServer:
    """Start a Synapse that keeps all its state in ``base_dir``, and wait for it.

    A new directory gets a new config, signing key and database. A directory that
    already has a ``homeserver.yaml`` is reused as it is: its server name, port,
    secrets and rate limits win over the arguments, which only apply to new
    directories (a warning says when they disagree).

    Raises :class:`DevServerError`, with the tail of Synapse's logs, when the server
    exits early or does not answer within :data:`START_TIMEOUT_S`.
    """
    base_dir, config = _prepare_config(
        base_dir, server_name, port, relaxed_ratelimits, rate_limits
    )
    config_path = base_dir / CONFIG_FILE

    actual_port = _client_port(config_path, config)
    if config["server_name"] != server_name or port not in (None, actual_port):
        logger.warning(
            "keeping server name %s and port %d of the existing %s",
            config["server_name"],
            actual_port,
            config_path,
        )
    if relaxed_ratelimits and "rc_message" not in config:
        logger.warning("reusing %s: it has Synapse's default rate limits", config_path)

    if not _port_is_free(actual_port):
        raise DevServerError(
            f"port {actual_port} of {config_path} is in use: "
            "is a Synapse from this directory still running? Stop what holds the "
            f"port, or delete {base_dir.parent} to start afresh on a free port"
        )

    return await DevServer._launch(
        base_dir,
        server_name=config["server_name"],
        port=actual_port,
        shared_secret=config["registration_shared_secret"],
    )


class DevServer:
    """A running local Synapse, and the admin calls tests and demos need.

    The instance owns the Synapse process: whoever starts it calls :meth:`stop`.
    Users are created with the shared-secret registration API, since open
    registration is off.
    """

    def __init__(
        self,
        *,
        base_dir: Path,
        server_name: str,
        port: int,
        shared_secret: str,
        process: asyncio.subprocess.Process,
        http: aiohttp.ClientSession,
    ) -> None:
        self.base_dir = base_dir
        self.server_name = server_name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._shared_secret = shared_secret
        self._process = process
        self._http = http

    def __repr__(self) -> str:
        return f"DevServer(url={self.url!r}, server_name={self.server_name!r})"

    @classmethod
    async def _launch(
        cls, base_dir: Path, *, server_name: str, port: int, shared_secret: str
    ) -> DevServer:
        started = time.monotonic()

        with (base_dir / OUTPUT_FILE).open("ab") as output:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                "-c",
                CONFIG_FILE,
                cwd=base_dir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
            )

        server = cls(
            base_dir=base_dir,
            server_name=server_name,
            port=port,
            shared_secret=shared_secret,
            process=process,
            http=aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)),
        )
        try:
            await server._wait_until_ready(started + START_TIMEOUT_S)
        except BaseException:
            await server.stop()
            raise

        logger.info(
            "Synapse %s answers on port %d after %.1f s",
            server_name,
            port,
            time.monotonic() - started,
        )
        return server

    async def _wait_until_ready(self, deadline: float) -> None:
        versions_url = f"{self.url}/_matrix/client/versions"
        probe_timeout = aiohttp.ClientTimeout(total=5)

        while True:
            if self._process.returncode is not None:
                raise _start_failure(
                    self.base_dir, f"exited with code {self._process.returncode}"
                )
            if time.monotonic() > deadline:
                raise _start_failure(
                    self.base_dir, f"did not answer within {START_TIMEOUT_S:.0f} s"
                )

            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._http.get(versions_url, timeout=probe_timeout) as resp:
                    if resp.status == 200:
                        return

            await asyncio.sleep(_POLL_INTERVAL_S)

    async def stop(self) -> None:
        """Stop Synapse: SIGTERM, then SIGKILL if it is still up after 15 s.

        Safe to call twice. The database and keys stay in ``base_dir``.
        """
        if self._process.returncode is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._process.wait(), STOP_GRACE_S)
            except TimeoutError:
                logger.warning("Synapse on port %d ignored SIGTERM: killing", self.port)
                self._process.kill()
                await self._process.wait()

        if not self._http.closed:
            await self._http.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}

        async with self._http.request(
            method, self.url + path, json=body, headers=headers
        ) as resp:
            try:
                payload = await resp.json(content_type=None)
            except ValueError:
                payload = None
            if resp.status >= 400:
                raise MatrixHTTPError(method, path, resp.status, payload)

        if not isinstance(payload, dict):
            raise DevServerError(f"{method} {path}: answer is not a JSON object")
        return payload

    async def register_user(
        self,
        localpart: str,
        password: str,
        *,
        admin: bool = False,
        displayname: str | None = None,
    ) -> str:
        """Create a user with the shared-secret admin API and return its user ID.

        Idempotent, so that a restarted demo can run its set-up again: if the
        localpart is taken, the existing user's ID is returned and nothing about
        that user (password, admin flag, display name) is checked or changed.
        """
        nonce = (await self._request("GET", "/_synapse/admin/v1/register"))["nonce"]
        admin_flag = "admin" if admin else "notadmin"
        mac = hmac.new(self._shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(f"{nonce}\0{localpart}\0{password}\0{admin_flag}".encode())

        body: dict[str, Any] = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        if displayname is not None:
            body["displayname"] = displayname

        try:
            answer = await self._request(
                "POST", "/_synapse/admin/v1/register", body=body
            )
        except MatrixHTTPError as err:
            if err.errcode != "M_USER_IN_USE":
                raise
            return f"@{localpart}:{self.server_name}"

        return str(answer["user_id"])

    async def login(
        self, user_id: str, password: str, *, device_name: str = "sobat devserver"
    ) -> str:
        """Log in with a password and return the new device's access token."""
        answer = await self._request(
            "POST",
            "/_matrix/client/v3/login",
            body={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user_id},
                "password": password,
                "initial_device_display_name": device_name,
            },
        )
        return str(answer["access_token"])

    async def exempt_from_ratelimits(self, admin_token: str, user_id: str) -> None:
        """Lift Synapse's message rate limits for one user, as a bot operator must."""
        await self._request(
            "POST",
            f"/_synapse/admin/v1/users/{_q(user_id)}/override_ratelimit",
            token=admin_token,
            body={"messages_per_second": 0, "burst_count": 0},
        )

    async def room_state(self, admin_token: str, room_id: str) -> list[dict[str, Any]]:
        """Return the room's current state events, as the server holds them."""
        answer = await self._request(
            "GET", f"/_synapse/admin/v1/rooms/{_q(room_id)}/state", token=admin_token
        )
        return list(answer["state"])

    async def room_members(self, admin_token: str, room_id: str) -> list[str]:
        """Return the user IDs currently joined to the room, according to the server."""
        answer = await self._request(
            "GET", f"/_synapse/admin/v1/rooms/{_q(room_id)}/members", token=admin_token
        )
        return [str(member) for member in answer["members"]]

    async def raw_messages(
        self, access_token: str, room_id: str, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Return up to ``limit`` of the room's latest events, oldest first.

        These are the events as the server stores and serves them, never decrypted:
        the way to prove that what a client sent is ``m.room.encrypted`` on the
        wire. The access token's user must be able to see the room's history.
        """
        events: list[dict[str, Any]] = []
        from_token: str | None = None

        while len(events) < limit:
            path = (
                f"/_matrix/client/v3/rooms/{_q(room_id)}/messages"
                f"?dir=b&limit={min(limit - len(events), 1000)}"
            )
            if from_token:
                path += f"&from={_q(from_token)}"

            answer = await self._request("GET", path, token=access_token)
            events.extend(answer.get("chunk", []))

            from_token = answer.get("end")
            if not answer.get("chunk") or not from_token:
                break

        events.reverse()
        return events


def _q(value: str) -> str:
    """Quote a Matrix ID for use as one path segment."""
    return quote(value, safe="")
