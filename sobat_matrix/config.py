"""The service config: where the homeserver is, who the bot is, where data lives.

Read once at start-up and validated completely, so a typo is reported with its line
before the bot touches the homeserver. Relative paths (``data_dir``, ``policy``,
``bot.password_file``) are taken from the config file's folder, not the working
directory, so the service starts the same way from anywhere.

The bot's password can come from ``bot.password``, from ``bot.password_file``, or
from the ``SOBAT_BOT_PASSWORD`` environment variable, which overrides both. A
placeholder such as ``CHANGE_ME`` is refused, so the example config cannot be run
unedited. The ``secrets`` section (the key of the E2EE store, the pseudonym secret)
is read the same way, with ``SOBAT_STORE_KEY`` and ``SOBAT_PSEUDONYM_SECRET``. See
``config.yaml.example`` for every key.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import secrets
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
STORE_KEY_ENV = "SOBAT_STORE_KEY"
PSEUDONYM_SECRET_ENV = "SOBAT_PSEUDONYM_SECRET"
SECRET_MIN_LENGTH = 16
STORE_KEY_FILE = "e2ee.key"
# Beside the store: proves on each start that the key is the one it was made with.
STORE_KEY_CHECK_FILE = "e2ee.key-check"
PSEUDONYM_SECRET_FILE = "pseudonym.key"
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
    "secrets",
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
class SecretsConfig:
    """Keys the bot needs besides its password; ``None`` where none was given.

    ``store_key`` encrypts the Olm and Megolm secrets in nio's E2EE store, not the
    rest of it (see docs/threat-model.md); ``pseudonym_secret`` is for keyed
    hashes that stand for a person without naming them. A missing one is made
    once in ``data_dir`` by :func:`with_data_dir_secrets`.
    """

    store_key: Secret | None = None
    pseudonym_secret: Secret | None = None


@dataclass(frozen=True)
class _SecretSpec:
    """Where one secret may be written, and how its problems are worded."""

    inline_key: str
    file_key: str
    env: str
    noun: str
    placeholder_hint: str
    min_length: int = 1


_PASSWORD = _SecretSpec(
    "password",
    "password_file",
    PASSWORD_ENV,
    "password",
    "set the bot's real password",
)
_STORE_KEY = _SecretSpec(
    "store_key",
    "store_key_file",
    STORE_KEY_ENV,
    "store key",
    f"set a random key of at least {SECRET_MIN_LENGTH} characters",
    SECRET_MIN_LENGTH,
)
_PSEUDONYM_SECRET = _SecretSpec(
    "pseudonym_secret",
    "pseudonym_secret_file",
    PSEUDONYM_SECRET_ENV,
    "pseudonym secret",
    f"set a random secret of at least {SECRET_MIN_LENGTH} characters",
    SECRET_MIN_LENGTH,
)


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
    secrets: SecretsConfig = SecretsConfig()

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


def with_data_dir_secrets(config: Config) -> Config:
    """The config with each missing secret taken from a file made once in data_dir.

    This keeps a bot configured before the ``secrets`` section working as it did:
    its store key stays in ``data_dir/e2ee.key``. The operator is warned, once per
    start, to move the keys into the config or secret files, so that a backup of
    the data directory alone no longer holds the key to the store.
    """
    store_key = config.secrets.store_key
    pseudonym_secret = config.secrets.pseudonym_secret
    made: list[str] = []
    if store_key is None:
        store_key = _kept_in_data_dir(config.data_dir, STORE_KEY_FILE)
        made.append(f"secrets.store_key (from {STORE_KEY_FILE})")
    if pseudonym_secret is None:
        pseudonym_secret = _kept_in_data_dir(config.data_dir, PSEUDONYM_SECRET_FILE)
        made.append(f"secrets.pseudonym_secret (from {PSEUDONYM_SECRET_FILE})")

    if made:
        logger.warning(
            "%s kept in the data directory %s; move them into the config or a "
            "secret file (see config.yaml.example)",
            " and ".join(made),
            config.data_dir,
        )
    return dataclasses.replace(
        config, secrets=SecretsConfig(store_key, pseudonym_secret)
    )


def _kept_in_data_dir(data_dir: Path, file_name: str) -> Secret:
    """The secret in ``data_dir/file_name``, made at random (mode 0600) if absent."""
    path = data_dir / file_name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(32))
    return Secret(path.read_text(encoding="utf-8").strip())


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
        secrets_ = self._section(root, "secrets", self._secrets)

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
        assert privacy is not None and secrets_ is not None
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
            secrets=secrets_,
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
        password, given = self._secret(node, _PASSWORD)
        if not given and not self.allow_missing_password:
            self.problems.add_at(
                node.anchor_line,
                node,
                f"missing 'password' or 'password_file' (or set {PASSWORD_ENV})",
            )
        return password

    def _secrets(self, node: Node) -> SecretsConfig | None:
        keys = (
            _STORE_KEY.inline_key,
            _STORE_KEY.file_key,
            _PSEUDONYM_SECRET.inline_key,
            _PSEUDONYM_SECRET.file_key,
        )
        before = len(self.problems)
        if self.problems.mapping(node, keys) is None:
            return None

        store_key, _ = self._secret(node, _STORE_KEY)
        pseudonym_secret, _ = self._secret(node, _PSEUDONYM_SECRET)
        if len(self.problems) != before:
            return None
        return SecretsConfig(store_key, pseudonym_secret)

    def _secret(self, node: Node, spec: _SecretSpec) -> tuple[Secret | None, bool]:
        """One secret from the environment, inline or a file; and whether any was given.

        The environment variable overrides both keys, so a deployment can keep the
        file and still inject the secret.
        """
        inline = file_name = None
        if node.has(spec.inline_key):
            inline = self.problems.string(node.child(spec.inline_key))
        if node.has(spec.file_key):
            file_name = self.problems.string(node.child(spec.file_key))
        if node.has(spec.inline_key) and node.has(spec.file_key):
            second = node.child(spec.file_key)
            self.problems.add_at(
                second.key_line,
                second,
                f"give either '{spec.inline_key}' or '{spec.file_key}', not both",
            )
            return None, True

        from_env = self.env.get(spec.env)
        if from_env is not None:
            return self._usable(Node(None, spec.env), from_env, spec), True
        if inline is not None:
            return self._usable(node.child(spec.inline_key), inline, spec), True
        if file_name is not None:
            file_node = node.child(spec.file_key)
            return self._secret_from_file(file_node, file_name, spec), True
        return None, node.has(spec.inline_key) or node.has(spec.file_key)

    def _secret_from_file(
        self, node: Node, file_name: str, spec: _SecretSpec
    ) -> Secret | None:
        path = self.folder / file_name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if not self.allow_missing_password:
                self.problems.add(node, f"{spec.noun} file not found: {path}")
            return None
        except (OSError, UnicodeDecodeError) as error:
            self.problems.add(
                node, f"cannot read the {spec.noun} file: {type(error).__name__}"
            )
            return None

        # Editors add a final newline; it is never part of the secret.
        return self._usable(node, text.rstrip("\r\n"), spec)

    def _usable(self, node: Node, value: str, spec: _SecretSpec) -> Secret | None:
        """Refuse empty, placeholder and short secrets wherever they came from."""
        if not value:
            self.problems.add(node, f"the {spec.noun} is empty")
            return None
        lowered = value.lower()
        if any(p in lowered for p in _PLACEHOLDERS):
            self.problems.add(
                node, f"is still a placeholder (CHANGE_ME); {spec.placeholder_hint}"
            )
            return None
        if len(value) < spec.min_length:
            self.problems.add(
                node,
                f"the {spec.noun} is too short: at least {spec.min_length} "
                f"characters, got {len(value)}",
            )
            return None
        return Secret(value)

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
