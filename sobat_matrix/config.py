"""The service config: where the homeserver is, who the bot is, where data lives.

Read once at start-up and validated completely, so a typo is reported with its line
before the bot touches the homeserver. Relative paths (``data_dir``, ``policy``,
``bot.password_file``) are taken from the config file's folder, not the working
directory, so the service starts the same way from anywhere.

The bot's password can come from ``bot.password``, from ``bot.password_file``, or
from the ``SOBAT_BOT_PASSWORD`` environment variable, which overrides both. A
placeholder such as ``CHANGE_ME`` is refused, so the example config cannot be run
unedited. See ``config.yaml.example`` for every key.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sobat_matrix import i18n
from sobat_matrix.yamlsrc import SERVER_NAME, Node, Problems, load_yaml

logger = logging.getLogger(__name__)

T = TypeVar("T")

PASSWORD_ENV = "SOBAT_BOT_PASSWORD"
ADMIN_JOIN_MODES = ("auto", "yes", "no")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_DEVICE_NAME = "sobat-matrix"
DEFAULT_TIMEZONE = "Asia/Jakarta"
DEFAULT_DAILY_AT = time(7, 0)

_TOP_KEYS = (
    "homeserver",
    "bot",
    "data_dir",
    "policy",
    "language",
    "timezone",
    "supervisors",
    "statistics",
    "access",
    "logging",
    "metrics",
    "privacy",
)
_REQUIRED = ("homeserver", "bot", "data_dir", "policy")
_TIME_OF_DAY = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_PLACEHOLDERS = ("change_me", "changeme")


class Secret:
    """A value that must not leak into logs, reprs or tracebacks.

    ``str()`` and ``repr()`` hide it; ``reveal()`` is the one way to read it, so
    every place that uses the secret is easy to find.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class HomeserverConfig:
    url: str


@dataclass(frozen=True)
class BotConfig:
    """The bot's account; ``password`` is ``None`` only if allowed to be missing."""

    user_id: str
    password: Secret | None
    device_name: str = DEFAULT_DEVICE_NAME
    display_name: str | None = None


@dataclass(frozen=True)
class StatisticsConfig:
    daily_at: time = DEFAULT_DAILY_AT


@dataclass(frozen=True)
class AccessConfig:
    """Who may talk to the bot, and how the bot brings people into rooms.

    ``allowed_servers`` lists servers besides the bot's own whose users may open a
    direct chat; the bot's own server is always allowed.
    """

    allowed_servers: tuple[str, ...] = ()
    admin_join: str = "auto"


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"


@dataclass(frozen=True)
class PrivacyConfig:
    """How long the link between a warga and a closed curhat is kept."""

    forget_after_days: int = 30


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus metrics on 127.0.0.1:port; no port, no endpoint."""

    port: int | None = None


@dataclass(frozen=True)
class Config:
    """The whole service config; sections mirror the YAML file."""

    source: Path
    homeserver: HomeserverConfig
    bot: BotConfig
    data_dir: Path
    policy_path: Path
    language: str
    timezone: ZoneInfo
    supervisors: tuple[str, ...]
    statistics: StatisticsConfig
    access: AccessConfig
    logging: LogConfig
    metrics: MetricsConfig = MetricsConfig()
    privacy: PrivacyConfig = PrivacyConfig()

    @property
    def server_name(self) -> str:
        """The bot's homeserver name, from its user ID (``@sobat:x.org`` -> x.org)."""
        return self.bot.user_id.split(":", 1)[1]

    def may_open_chat(self, user_id: str) -> bool:
        """Whether a user of ``user_id``'s server may open a direct chat."""
        _, _, server = user_id.partition(":")
        return server == self.server_name or server in self.access.allowed_servers


def load_config(
    path: Path,
    *,
    allow_missing_password: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read and validate the service config.

    ``allow_missing_password`` lets ``sobat-matrix check`` run on a machine that
    does not hold the secret. ``environ`` defaults to ``os.environ``. Raises
    :class:`ConfigError` listing every problem.
    """
    env = os.environ if environ is None else environ
    root = Node.root(load_yaml(path))
    problems = Problems(path)
    reader = _ConfigReader(problems, path, env, allow_missing_password)
    config = reader.read(root)

    problems.raise_if_any()
    assert config is not None, "a config with no problems is always built"
    logger.info("config %s loaded", path.name)
    return config


def _is_http_url(url: str) -> bool:
    """Whether ``url`` is an http(s) URL with a host and, if any, a valid port."""
    try:
        parts = urlsplit(url)
        port = parts.port  # reading it checks it: ValueError for "x:abc"
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0


class _ConfigReader:
    """Validates a config document section by section, recording every problem."""

    def __init__(
        self,
        problems: Problems,
        path: Path,
        env: Mapping[str, str],
        allow_missing_password: bool,
    ) -> None:
        self.problems = problems
        self.path = path
        self.folder = path.absolute().parent
        self.env = env
        self.allow_missing_password = allow_missing_password

    def read(self, root: Node) -> Config | None:
        if self.problems.mapping(root, _TOP_KEYS, required=_REQUIRED) is None:
            return None

        homeserver = self._key(root, "homeserver", self._homeserver, None)
        bot = self._key(root, "bot", self._bot, None)
        data_dir = self._key(root, "data_dir", self._path, None)
        policy_path = self._key(root, "policy", self._path, None)
        language = self._key(root, "language", self._language, "id")
        timezone = self._key(
            root, "timezone", self._timezone, ZoneInfo(DEFAULT_TIMEZONE)
        )
        no_one: tuple[str, ...] = ()
        supervisors = self._key(root, "supervisors", self._supervisors, no_one)
        statistics = self._section(root, "statistics", self._statistics)
        access = self._section(root, "access", self._access)
        log = self._section(root, "logging", self._logging)
        metrics = self._section(root, "metrics", self._metrics)
        privacy = self._section(root, "privacy", self._privacy)

        if bot is not None and supervisors and bot.user_id in supervisors:
            self.problems.add(
                root.child("supervisors"),
                f'"{bot.user_id}" is the bot itself; the bot cannot be a supervisor',
            )

        # Any problem, including a missing key reported above, means no config.
        if len(self.problems):
            return None
        assert homeserver is not None and bot is not None
        assert data_dir is not None and policy_path is not None
        assert language is not None and timezone is not None
        assert supervisors is not None and statistics is not None
        assert access is not None and log is not None and metrics is not None
        assert privacy is not None
        return Config(
            source=self.path,
            homeserver=homeserver,
            bot=bot,
            data_dir=data_dir,
            policy_path=policy_path,
            language=language,
            timezone=timezone,
            supervisors=supervisors,
            statistics=statistics,
            access=access,
            logging=log,
            metrics=metrics,
            privacy=privacy,
        )

    def _key(
        self, root: Node, key: str, read: Callable[[Node], T | None], default: T | None
    ) -> T | None:
        """Read one top-level key, or take ``default`` if it is absent."""
        return read(root.child(key)) if root.has(key) else default

    def _section(
        self, root: Node, key: str, read: Callable[[Node], T | None]
    ) -> T | None:
        """Read an optional section; an absent one reads as empty (all defaults)."""
        node = root.child(key)
        if not root.has(key):
            node = Node({}, node.path)
        return read(node)

    def _homeserver(self, node: Node) -> HomeserverConfig | None:
        if self.problems.mapping(node, ("url",), required=("url",)) is None:
            return None
        if not node.has("url"):
            return None

        url_node = node.child("url")
        url = self.problems.string(url_node)
        if url is None:
            return None
        if not _is_http_url(url):
            self.problems.add(
                url_node, f'expected an http:// or https:// URL, got "{url}"'
            )
            return None
        return HomeserverConfig(url=url.rstrip("/"))

    def _bot(self, node: Node) -> BotConfig | None:
        keys = ("user_id", "password", "password_file", "device_name", "display_name")
        before = len(self.problems)
        if self.problems.mapping(node, keys, required=("user_id",)) is None:
            return None

        user_id = None
        if node.has("user_id"):
            user_id = self.problems.user_id(node.child("user_id"))
        password = self._password(node)
        device_name: str | None = DEFAULT_DEVICE_NAME
        if node.has("device_name"):
            device_name = self.problems.string(node.child("device_name"))
        display_name = None
        if node.has("display_name"):
            display_name = self.problems.string(node.child("display_name"))

        if len(self.problems) != before:
            return None
        assert user_id is not None and device_name is not None
        return BotConfig(user_id, password, device_name, display_name)

    def _password(self, node: Node) -> Secret | None:
        """The bot's password from the environment, the config or a file."""
        inline = file_name = None
        if node.has("password"):
            inline = self.problems.string(node.child("password"))
        if node.has("password_file"):
            file_name = self.problems.string(node.child("password_file"))
        if node.has("password") and node.has("password_file"):
            second = node.child("password_file")
            self.problems.add_at(
                second.key_line,
                second,
                "give either 'password' or 'password_file', not both",
            )
            return None

        from_env = self.env.get(PASSWORD_ENV)
        if from_env is not None:
            where = Node(None, PASSWORD_ENV)
            return self._usable(where, from_env)
        if inline is not None:
            return self._usable(node.child("password"), inline)
        if file_name is not None:
            return self._password_from_file(node.child("password_file"), file_name)

        if not node.has("password") and not node.has("password_file"):
            if not self.allow_missing_password:
                self.problems.add_at(
                    node.anchor_line,
                    node,
                    f"missing 'password' or 'password_file' (or set {PASSWORD_ENV})",
                )
        return None

    def _password_from_file(self, node: Node, file_name: str) -> Secret | None:
        path = self.folder / file_name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if not self.allow_missing_password:
                self.problems.add(node, f"password file not found: {path}")
            return None
        except (OSError, UnicodeDecodeError) as error:
            self.problems.add(
                node, f"cannot read the password file: {type(error).__name__}"
            )
            return None

        # Editors add a final newline; it is never part of the password.
        return self._usable(node, text.rstrip("\r\n"))

    def _usable(self, node: Node, password: str) -> Secret | None:
        """Refuse empty and placeholder passwords wherever they came from."""
        if not password:
            self.problems.add(node, "the password is empty")
            return None
        lowered = password.lower()
        if any(p in lowered for p in _PLACEHOLDERS):
            self.problems.add(
                node, "is still a placeholder (CHANGE_ME); set the bot's real password"
            )
            return None
        return Secret(password)

    def _path(self, node: Node) -> Path | None:
        text = self.problems.string(node)
        return None if text is None else self.folder / text

    def _language(self, node: Node) -> str | None:
        available = i18n.available_languages()
        lang = self.problems.string(node)
        if lang is None:
            return None
        if lang not in available:
            self.problems.add(
                node,
                f'no message catalog for language "{lang}" (available: '
                f"{', '.join(available)})",
            )
            return None
        return lang

    def _timezone(self, node: Node) -> ZoneInfo | None:
        name = self.problems.string(node)
        if name is None:
            return None
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.problems.add(node, f'unknown time zone "{name}"')
            return None

    def _supervisors(self, node: Node) -> tuple[str, ...] | None:
        checked = self.problems.string_list(node, check=self.problems.user_id)
        return None if checked is None else tuple(uid for uid, _ in checked)

    def _statistics(self, node: Node) -> StatisticsConfig | None:
        if self.problems.mapping(node, ("daily_at",)) is None:
            return None
        if not node.has("daily_at"):
            return StatisticsConfig()

        at = node.child("daily_at")
        text = self.problems.string(at)
        if text is None:
            return None
        match = _TIME_OF_DAY.fullmatch(text)
        if match is None:
            self.problems.add(at, f'expected a time of day like "07:00", got "{text}"')
            return None
        return StatisticsConfig(time(int(match[1]), int(match[2])))

    def _access(self, node: Node) -> AccessConfig | None:
        keys = ("allowed_servers", "admin_join")
        before = len(self.problems)
        if self.problems.mapping(node, keys) is None:
            return None

        servers: tuple[str, ...] = ()
        if node.has("allowed_servers"):
            checked = self.problems.string_list(
                node.child("allowed_servers"),
                check=lambda n: self.problems.matching(
                    n, SERVER_NAME, 'a server name like "example.org"'
                ),
            )
            servers = () if checked is None else tuple(s for s, _ in checked)
        admin_join: str | None = "auto"
        if node.has("admin_join"):
            admin_join = self._admin_join(node.child("admin_join"))

        if len(self.problems) != before or admin_join is None:
            return None
        return AccessConfig(servers, admin_join)

    def _admin_join(self, node: Node) -> str | None:
        # ``true``/``false`` are what people write for yes/no in most YAML files.
        if isinstance(node.value, bool):
            return "yes" if node.value else "no"
        return self.problems.choice(node, ADMIN_JOIN_MODES)

    def _privacy(self, node: Node) -> PrivacyConfig | None:
        if self.problems.mapping(node, ("forget_after_days",)) is None:
            return None
        if not node.has("forget_after_days"):
            return PrivacyConfig()
        days = self.problems.integer(node.child("forget_after_days"), minimum=1)
        return None if days is None else PrivacyConfig(days)

    def _metrics(self, node: Node) -> MetricsConfig | None:
        if self.problems.mapping(node, ("port",)) is None:
            return None
        if not node.has("port"):
            return MetricsConfig()
        port = self.problems.integer(node.child("port"), minimum=1)
        if port is None:
            return None
        if port > 65535:
            self.problems.add(node.child("port"), f"must be at most 65535, got {port}")
            return None
        return MetricsConfig(port)

    def _logging(self, node: Node) -> LogConfig | None:
        if self.problems.mapping(node, ("level",)) is None:
            return None
        if not node.has("level"):
            return LogConfig()

        level_node = node.child("level")
        if isinstance(level_node.value, str):
            level_node = Node(
                level_node.value.upper(),
                level_node.path,
                level_node.line,
                level_node.key_line,
            )
        level = self.problems.choice(level_node, LOG_LEVELS)
        return None if level is None else LogConfig(level)
