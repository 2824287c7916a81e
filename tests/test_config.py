"""Tests for the service config loader: defaults, secrets and every kind of mistake."""

from __future__ import annotations

import logging
import stat
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sobat_matrix import i18n
from sobat_matrix.config import Config, Secret, load_config, with_data_dir_secrets
from sobat_matrix.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "kata-sandi-rahasia"

# Line numbers in the expected messages below refer to this text.
BASE = f"""\
homeserver:
  url: "https://matrix.kota.test"
bot:
  user_id: "@sobat:kota.test"
  password: "{PASSWORD}"
data_dir: data
policy: policies/kota.yaml
supervisors: ["@pengawas:kota.test"]
"""

TOP_KEYS = (
    "homeserver, bot, data_dir, policy, language, timezone, supervisors, "
    "statistics, access, logging, metrics, privacy, secrets"
)
PLACEHOLDER = "is still a placeholder (CHANGE_ME); set the bot's real password"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load(
    tmp_path: Path,
    text: str,
    *,
    environ: dict[str, str] | None = None,
    allow_missing_password: bool = False,
) -> Config:
    """Load ``text`` as a config with an empty environment unless one is given."""
    return load_config(
        write(tmp_path, text),
        environ={} if environ is None else environ,
        allow_missing_password=allow_missing_password,
    )


def problems_of(
    tmp_path: Path,
    text: str,
    *,
    environ: dict[str, str] | None = None,
    allow_missing_password: bool = False,
) -> list[str]:
    """The messages ``load_config`` gives for ``text``, with the folder cut off."""
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            text,
            environ=environ,
            allow_missing_password=allow_missing_password,
        )
    return [str(p).removeprefix(f"{tmp_path}/") for p in caught.value.problems]


def edit(old: str, new: str) -> str:
    assert BASE.count(old) == 1, f"{old!r} must occur exactly once in BASE"
    return BASE.replace(old, new)


def test_base_config_and_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, BASE)

    assert config.homeserver.url == "https://matrix.kota.test"
    assert config.bot.user_id == "@sobat:kota.test"
    assert config.bot.password is not None
    assert config.bot.password.reveal() == PASSWORD
    assert config.bot.device_name == "sobat-matrix"
    assert config.bot.display_name is None
    assert config.data_dir == tmp_path / "data"
    assert config.policy_path == tmp_path / "policies" / "kota.yaml"
    assert config.language == "id"
    assert config.timezone == ZoneInfo("Asia/Jakarta")
    assert config.supervisors == ("@pengawas:kota.test",)
    assert config.statistics.daily_at == time(7, 0)
    assert config.access.allowed_servers == ()
    assert config.access.admin_join == "auto"
    assert config.logging.level == "INFO"
    assert config.server_name == "kota.test"


def test_every_key_is_read(tmp_path: Path) -> None:
    text = BASE + (
        "language: en\n"
        "timezone: Asia/Makassar\n"
        "statistics:\n"
        "  daily_at: 6:30\n"
        "access:\n"
        "  allowed_servers: [kota-lain.test, matrix.example.org:8448]\n"
        "  admin_join: no\n"
        "logging:\n"
        "  level: debug\n"
    )
    text = text.replace(
        '  password: "kata-sandi-rahasia"\n',
        '  password: "kata-sandi-rahasia"\n'
        "  device_name: sobat-test\n"
        "  display_name: Sobat Kota\n",
    )

    config = load(tmp_path, text)

    assert config.bot.device_name == "sobat-test"
    assert config.bot.display_name == "Sobat Kota"
    assert config.language == "en"
    assert config.timezone == ZoneInfo("Asia/Makassar")
    assert config.statistics.daily_at == time(6, 30)
    assert config.access.allowed_servers == (
        "kota-lain.test",
        "matrix.example.org:8448",
    )
    assert config.access.admin_join == "no"
    assert config.logging.level == "DEBUG"
    assert config.may_open_chat("@warga:kota.test")
    assert config.may_open_chat("@warga:kota-lain.test")
    assert not config.may_open_chat("@warga:evil.test")


@pytest.mark.parametrize(("written", "mode"), [("true", "yes"), ("false", "no")])
def test_admin_join_accepts_booleans(tmp_path: Path, written: str, mode: str) -> None:
    config = load(tmp_path, BASE + f"access:\n  admin_join: {written}\n")

    assert config.access.admin_join == mode


def test_password_never_shows_in_repr(tmp_path: Path) -> None:
    config = load(tmp_path, BASE)

    assert PASSWORD not in repr(config)
    assert PASSWORD not in str(config)
    assert repr(config.bot.password) == "Secret('***')"
    assert str(config.bot.password) == "***"
    assert f"{config.bot.password}" == "***"


def test_secret_compares_by_value() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert len({Secret("a"), Secret("a")}) == 1


def test_password_from_file_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "bot").write_text(f"{PASSWORD}\n", encoding="utf-8")
    text = edit(f'  password: "{PASSWORD}"', '  password_file: "secrets/bot"')

    config = load(tmp_path, text)

    assert config.bot.password == Secret(PASSWORD)


@pytest.mark.parametrize(
    "line",
    [
        '  password: "CHANGE_ME"',
        '  password_file: "secrets/missing"',
        "",
    ],
)
def test_environment_password_overrides_the_file(tmp_path: Path, line: str) -> None:
    text = edit(f'  password: "{PASSWORD}"\n', f"{line}\n" if line else "")

    config = load(tmp_path, text, environ={"SOBAT_BOT_PASSWORD": "from-env"})

    assert config.bot.password == Secret("from-env")


@pytest.mark.parametrize(
    "line",
    ["", '  password_file: "secrets/missing"'],
)
def test_missing_password_may_be_allowed(tmp_path: Path, line: str) -> None:
    text = edit(f'  password: "{PASSWORD}"\n', f"{line}\n" if line else "")

    config = load(tmp_path, text, allow_missing_password=True)

    assert config.bot.password is None


def test_placeholder_is_refused_even_when_password_may_be_missing(
    tmp_path: Path,
) -> None:
    text = edit(f'"{PASSWORD}"', '"CHANGE_ME"')

    assert problems_of(tmp_path, text, allow_missing_password=True) == [
        f"c.yaml:5: bot.password: {PLACEHOLDER}"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("CHANGE_ME", PLACEHOLDER),
        ("change_me", PLACEHOLDER),
        ("changeme", PLACEHOLDER),
        ("ChangeMe123", PLACEHOLDER),
        ("xCHANGE_MEx", PLACEHOLDER),
        ("", "the password is empty"),
    ],
)
def test_bad_password_from_environment(
    tmp_path: Path, value: str, expected: str
) -> None:
    environ = {"SOBAT_BOT_PASSWORD": value}

    assert problems_of(tmp_path, BASE, environ=environ) == [
        f"c.yaml: SOBAT_BOT_PASSWORD: {expected}"
    ]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "  url: ",
            "\turl: ",
            ["c.yaml:2: tab character; YAML needs spaces here, not tabs"],
            id="tab",
        ),
        pytest.param(
            "data_dir: data\n",
            "data_dir: data\ndata_dir: other\n",
            ["c.yaml:7: duplicate key 'data_dir' (first at line 6)"],
            id="duplicate-key",
        ),
        pytest.param(
            "data_dir: data\n",
            "data_dir: data\ncolour: red\n",
            [f"c.yaml:7: unknown key 'colour' (expected one of: {TOP_KEYS})"],
            id="unknown-key",
        ),
        pytest.param(
            "data_dir: data\n",
            "",
            ["c.yaml: missing required key 'data_dir'"],
            id="missing-data-dir",
        ),
        pytest.param(
            'homeserver:\n  url: "https://matrix.kota.test"\n',
            "homeserver: {}\n",
            ["c.yaml:1: homeserver: missing required key 'url'"],
            id="missing-url",
        ),
        pytest.param(
            '  url: "https://matrix.kota.test"',
            '  url: "ftp://matrix.kota.test"',
            [
                "c.yaml:2: homeserver.url: expected an http:// or https:// URL, "
                'got "ftp://matrix.kota.test"'
            ],
            id="bad-url",
        ),
        pytest.param(
            '  url: "https://matrix.kota.test"',
            '  url: "matrix.kota.test"',
            [
                "c.yaml:2: homeserver.url: expected an http:// or https:// URL, "
                'got "matrix.kota.test"'
            ],
            id="url-without-scheme",
        ),
        pytest.param(
            '  url: "https://matrix.kota.test"',
            '  url: "https://matrix.kota.test:port"',
            [
                "c.yaml:2: homeserver.url: expected an http:// or https:// URL, "
                'got "https://matrix.kota.test:port"'
            ],
            id="url-bad-port",
        ),
        pytest.param(
            '  user_id: "@sobat:kota.test"',
            '  user_id: "sobat"',
            [
                "c.yaml:4: bot.user_id: expected a Matrix user ID like "
                '"@rina:example.org", got "sobat"'
            ],
            id="bad-bot-id",
        ),
        pytest.param(
            '  user_id: "@sobat:kota.test"',
            '  username: "@sobat:kota.test"',
            [
                "c.yaml:4: bot: unknown key 'username' (expected one of: user_id, "
                "password, password_file, device_name, display_name)",
                "c.yaml:3: bot: missing required key 'user_id'",
            ],
            id="missing-bot-id",
        ),
        pytest.param(
            f'"{PASSWORD}"',
            '"CHANGE_ME"',
            [f"c.yaml:5: bot.password: {PLACEHOLDER}"],
            id="placeholder",
        ),
        pytest.param(
            f'"{PASSWORD}"',
            '"changeme"',
            [f"c.yaml:5: bot.password: {PLACEHOLDER}"],
            id="placeholder-lowercase",
        ),
        pytest.param(
            f'"{PASSWORD}"',
            '""',
            ["c.yaml:5: bot.password: must not be empty"],
            id="empty-password",
        ),
        pytest.param(
            f'  password: "{PASSWORD}"\n',
            "",
            [
                "c.yaml:3: bot: missing 'password' or 'password_file' (or set "
                "SOBAT_BOT_PASSWORD)"
            ],
            id="missing-password",
        ),
        pytest.param(
            f'  password: "{PASSWORD}"\n',
            f'  password: "{PASSWORD}"\n  password_file: secret\n',
            [
                "c.yaml:6: bot.password_file: give either 'password' or "
                "'password_file', not both"
            ],
            id="two-passwords",
        ),
        pytest.param(
            "data_dir: data",
            "data_dir: [data]",
            ["c.yaml:6: data_dir: expected a string, got a list"],
            id="data-dir-list",
        ),
        pytest.param(
            'supervisors: ["@pengawas:kota.test"]',
            'supervisors: "@pengawas:kota.test"',
            ["c.yaml:8: supervisors: expected a list, got a string"],
            id="supervisors-string",
        ),
        pytest.param(
            'supervisors: ["@pengawas:kota.test"]',
            'supervisors: ["@pengawas:kota.test", "@sobat:kota.test"]',
            [
                'c.yaml:8: supervisors: "@sobat:kota.test" is the bot itself; the '
                "bot cannot be a supervisor"
            ],
            id="bot-as-supervisor",
        ),
        pytest.param(
            'supervisors: ["@pengawas:kota.test"]',
            'supervisors: ["@pengawas:kota.test", "@pengawas:kota.test"]',
            ['c.yaml:8: supervisors[1]: "@pengawas:kota.test" is listed twice'],
            id="supervisor-twice",
        ),
        pytest.param(
            "data_dir: data\n",
            "data_dir: data\ntimezone: Asia/Jakrta\n",
            ['c.yaml:7: timezone: unknown time zone "Asia/Jakrta"'],
            id="bad-timezone",
        ),
        pytest.param(
            "data_dir: data\n",
            "data_dir: data\ntimezone: ../../etc/passwd\n",
            ['c.yaml:7: timezone: unknown time zone "../../etc/passwd"'],
            id="timezone-path",
        ),
        pytest.param(
            "data_dir: data\n",
            "data_dir: data\nstatistics:\n  daily_at: 25:00\n",
            [
                'c.yaml:8: statistics.daily_at: expected a time of day like "07:00", '
                'got "25:00"'
            ],
            id="bad-time",
        ),
        pytest.param(
            "data_dir: data\n",
            "data_dir: data\nstatistics:\n  daily_at: 7\n",
            ["c.yaml:8: statistics.daily_at: expected a string, got a number"],
            id="time-as-number",
        ),
        pytest.param(
            "data_dir: data\n",
            "data_dir: data\nstatistics:\n  hourly: true\n",
            ["c.yaml:8: statistics: unknown key 'hourly' (expected one of: daily_at)"],
            id="unknown-statistics-key",
        ),
        pytest.param(
            "data_dir: data\n",
            "data_dir: data\naccess:\n  admin_join: maybe\n",
            [
                "c.yaml:8: access.admin_join: expected one of: auto, yes, no; got "
                '"maybe"'
            ],
            id="bad-admin-join",
        ),
        pytest.param(
            "data_dir: data\n",
            'data_dir: data\naccess:\n  allowed_servers: ["bad server"]\n',
            [
                "c.yaml:8: access.allowed_servers[0]: expected a server name like "
                '"example.org", got "bad server"'
            ],
            id="bad-server",
        ),
        pytest.param(
            "data_dir: data\n",
            "data_dir: data\naccess:\n  allowed_servers: kota-lain.test\n",
            ["c.yaml:8: access.allowed_servers: expected a list, got a string"],
            id="servers-string",
        ),
        pytest.param(
            "data_dir: data\n",
            "data_dir: data\nlogging:\n  level: VERBOSE\n",
            [
                "c.yaml:8: logging.level: expected one of: DEBUG, INFO, WARNING, "
                'ERROR; got "VERBOSE"'
            ],
            id="bad-log-level",
        ),
        pytest.param(
            "data_dir: data\n",
            "data_dir: data\nlogging: INFO\n",
            ["c.yaml:7: logging: expected a mapping, got a string"],
            id="section-as-string",
        ),
    ],
)
def test_bad_config(tmp_path: Path, old: str, new: str, expected: list[str]) -> None:
    assert problems_of(tmp_path, edit(old, new)) == expected


def test_unknown_language(tmp_path: Path) -> None:
    available = ", ".join(i18n.available_languages())

    assert problems_of(tmp_path, BASE + "language: xx\n") == [
        f'c.yaml:9: language: no message catalog for language "xx" (available: '
        f"{available})"
    ]


def test_password_file_not_found(tmp_path: Path) -> None:
    text = edit(f'  password: "{PASSWORD}"', '  password_file: "secrets/bot"')

    assert problems_of(tmp_path, text) == [
        f"c.yaml:5: bot.password_file: password file not found: {tmp_path}/secrets/bot"
    ]


def test_placeholder_in_password_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("CHANGE_ME\n", encoding="utf-8")
    text = edit(f'  password: "{PASSWORD}"', "  password_file: pw")

    assert problems_of(tmp_path, text) == [
        f"c.yaml:5: bot.password_file: {PLACEHOLDER}"
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        BASE.replace("https://", "gopher://")
        .replace(PASSWORD, "CHANGE_ME")
        .replace("data_dir: data\n", "")
    )

    assert problems_of(tmp_path, text) == [
        "c.yaml: missing required key 'data_dir'",
        "c.yaml:2: homeserver.url: expected an http:// or https:// URL, got "
        '"gopher://matrix.kota.test"',
        f"c.yaml:5: bot.password: {PLACEHOLDER}",
    ]


def test_empty_config(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "") == ["c.yaml: the file is empty"]


def test_example_config_is_refused_until_edited() -> None:
    example = REPO / "config.yaml.example"

    with pytest.raises(ConfigError) as caught:
        load_config(example, environ={})

    assert [p.message for p in caught.value.problems] == [PLACEHOLDER]
    assert [p.path for p in caught.value.problems] == ["bot.password"]


def test_example_config_loads_with_a_real_password(tmp_path: Path) -> None:
    example = (REPO / "config.yaml.example").read_text(encoding="utf-8")
    placeholder = 'password: "CHANGE_ME"'
    assert example.count(placeholder) == 1

    config = load(tmp_path, example.replace(placeholder, f'password: "{PASSWORD}"'))

    assert config.bot.user_id == "@sobat:sukabumi.test"
    assert config.bot.password == Secret(PASSWORD)
    assert config.supervisors == ("@pengawas:sukabumi.test",)
    assert config.data_dir == tmp_path / "data"
    assert config.policy_path == tmp_path / "policies" / "sukabumi.yaml"
    assert (REPO / config.policy_path.relative_to(tmp_path)).is_file()
    assert config.server_name == "sukabumi.test"


def test_example_config_loads_from_the_repository() -> None:
    config = load_config(
        REPO / "config.yaml.example", environ={"SOBAT_BOT_PASSWORD": PASSWORD}
    )

    assert config.policy_path == REPO / "policies" / "sukabumi.yaml"
    assert config.policy_path.is_file()


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("metrics: {port: 9464}\n", 9464),
        ("", None),
    ],
)
def test_metrics_port(tmp_path: Path, section: str, expected: int | None) -> None:
    text = (
        (REPO / "config.yaml.example")
        .read_text(encoding="utf-8")
        .replace("CHANGE_ME", "pw-for-tests")
    )
    path = tmp_path / "c.yaml"
    path.write_text(text + section, encoding="utf-8")

    assert load_config(path).metrics.port == expected


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("metrics: {port: 70000}\n", "metrics.port: must be at most 65535, got 70000"),
        ("metrics: {port: nine}\n", "metrics.port: expected an integer, got a string"),
        (
            "metrics: {listen: x}\n",
            "metrics: unknown key 'listen' (expected one of: port)",
        ),
    ],
)
def test_bad_metrics_port(tmp_path: Path, section: str, message: str) -> None:
    text = (
        (REPO / "config.yaml.example")
        .read_text(encoding="utf-8")
        .replace("CHANGE_ME", "pw-for-tests")
    )
    path = tmp_path / "c.yaml"
    path.write_text(text + section, encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(p).split(": ", 1)[1] for p in caught.value.problems] == [message]


STORE_KEY = "kunci-penyimpanan-e2ee-0123"
PSEUDONYM = "rahasia-pseudonim-0123456789"
SECRETS = f"""\
secrets:
  store_key: "{STORE_KEY}"
  pseudonym_secret: "{PSEUDONYM}"
"""


def test_secrets_are_absent_by_default(tmp_path: Path) -> None:
    config = load(tmp_path, BASE)

    assert config.secrets.store_key is None
    assert config.secrets.pseudonym_secret is None


def test_secrets_inline_and_hidden(tmp_path: Path) -> None:
    config = load(tmp_path, BASE + SECRETS)

    assert config.secrets.store_key == Secret(STORE_KEY)
    assert config.secrets.pseudonym_secret == Secret(PSEUDONYM)
    assert STORE_KEY not in repr(config) and PSEUDONYM not in repr(config)


def test_secrets_from_files_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "store").write_text(f"{STORE_KEY}\n", encoding="utf-8")
    (tmp_path / "keys" / "pseudo").write_text(PSEUDONYM, encoding="utf-8")
    text = BASE + (
        "secrets:\n  store_key_file: keys/store\n  pseudonym_secret_file: keys/pseudo\n"
    )

    config = load(tmp_path, text)

    assert config.secrets.store_key == Secret(STORE_KEY)
    assert config.secrets.pseudonym_secret == Secret(PSEUDONYM)


def test_environment_overrides_secrets(tmp_path: Path) -> None:
    environ = {
        "SOBAT_STORE_KEY": "dari-lingkungan-0001",
        "SOBAT_PSEUDONYM_SECRET": "dari-lingkungan-0002",
    }
    text = BASE + "secrets:\n  store_key_file: missing\n  pseudonym_secret: CHANGE_ME\n"

    config = load(tmp_path, text, environ=environ)

    assert config.secrets.store_key == Secret("dari-lingkungan-0001")
    assert config.secrets.pseudonym_secret == Secret("dari-lingkungan-0002")


def test_environment_secrets_without_a_section(tmp_path: Path) -> None:
    config = load(tmp_path, BASE, environ={"SOBAT_STORE_KEY": STORE_KEY})

    assert config.secrets.store_key == Secret(STORE_KEY)
    assert config.secrets.pseudonym_secret is None


STORE_PLACEHOLDER = (
    "is still a placeholder (CHANGE_ME); set a random key of at least 16 characters"
)
PSEUDONYM_PLACEHOLDER = (
    "is still a placeholder (CHANGE_ME); set a random secret of at least 16 characters"
)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        pytest.param(
            'secrets:\n  store_key: "CHANGE_ME"\n',
            [f"c.yaml:10: secrets.store_key: {STORE_PLACEHOLDER}"],
            id="store-placeholder",
        ),
        pytest.param(
            'secrets:\n  pseudonym_secret: "changeme-changeme-123"\n',
            [f"c.yaml:10: secrets.pseudonym_secret: {PSEUDONYM_PLACEHOLDER}"],
            id="pseudonym-placeholder",
        ),
        pytest.param(
            'secrets:\n  store_key: "pendek"\n',
            [
                "c.yaml:10: secrets.store_key: the store key is too short: at least "
                "16 characters, got 6"
            ],
            id="store-short",
        ),
        pytest.param(
            'secrets:\n  pseudonym_secret: "123456789012345"\n',
            [
                "c.yaml:10: secrets.pseudonym_secret: the pseudonym secret is too "
                "short: at least 16 characters, got 15"
            ],
            id="pseudonym-short",
        ),
        pytest.param(
            'secrets:\n  store_key: ""\n',
            ["c.yaml:10: secrets.store_key: must not be empty"],
            id="store-empty",
        ),
        pytest.param(
            f'secrets:\n  store_key: "{STORE_KEY}"\n  store_key_file: k\n',
            [
                "c.yaml:11: secrets.store_key_file: give either 'store_key' or "
                "'store_key_file', not both"
            ],
            id="store-twice",
        ),
        pytest.param(
            "secrets:\n  pseudonym_secret_file: nowhere\n",
            [
                "c.yaml:10: secrets.pseudonym_secret_file: pseudonym secret file not "
                "found: {tmp_path}/nowhere"
            ],
            id="pseudonym-file-missing",
        ),
        pytest.param(
            "secrets:\n  store_key: 1234567890123456\n",
            ["c.yaml:10: secrets.store_key: expected a string, got a number"],
            id="store-number",
        ),
        pytest.param(
            "secrets:\n  key: x\n",
            [
                "c.yaml:10: secrets: unknown key 'key' (expected one of: store_key, "
                "store_key_file, pseudonym_secret, pseudonym_secret_file)"
            ],
            id="unknown-secrets-key",
        ),
    ],
)
def test_bad_secrets(tmp_path: Path, section: str, expected: list[str]) -> None:
    wanted = [e.replace("{tmp_path}", str(tmp_path)) for e in expected]

    assert problems_of(tmp_path, BASE + section) == wanted


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("SOBAT_STORE_KEY", f"c.yaml: SOBAT_STORE_KEY: {STORE_PLACEHOLDER}"),
        (
            "SOBAT_PSEUDONYM_SECRET",
            f"c.yaml: SOBAT_PSEUDONYM_SECRET: {PSEUDONYM_PLACEHOLDER}",
        ),
    ],
)
def test_placeholder_secret_from_environment(
    tmp_path: Path, variable: str, expected: str
) -> None:
    assert problems_of(tmp_path, BASE, environ={variable: "CHANGE_ME"}) == [expected]


def test_missing_secrets_are_made_once_in_data_dir(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load(tmp_path, BASE)

    with caplog.at_level(logging.WARNING, logger="sobat_matrix.config"):
        first = with_data_dir_secrets(config)
    warnings = [r.getMessage() for r in caplog.records]
    again = with_data_dir_secrets(config)

    store_file = tmp_path / "data" / "e2ee.key"
    pseudonym_file = tmp_path / "data" / "pseudonym.key"
    assert first.secrets == again.secrets
    assert first.secrets.store_key == Secret(store_file.read_text(encoding="utf-8"))
    assert first.secrets.pseudonym_secret == Secret(
        pseudonym_file.read_text(encoding="utf-8")
    )
    assert first.secrets.store_key != first.secrets.pseudonym_secret
    assert stat.S_IMODE(store_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(pseudonym_file.stat().st_mode) == 0o600
    assert warnings == [
        "secrets.store_key (from e2ee.key) and secrets.pseudonym_secret (from "
        f"pseudonym.key) kept in the data directory {tmp_path / 'data'}; move them "
        "into the config or a secret file (see config.yaml.example)"
    ]


def test_given_secrets_make_no_files_and_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load(tmp_path, BASE + SECRETS)

    with caplog.at_level(logging.WARNING, logger="sobat_matrix.config"):
        filled = with_data_dir_secrets(config)

    assert filled.secrets == config.secrets
    assert not (tmp_path / "data").exists()
    assert caplog.records == []


def test_example_secrets_load_when_uncommented(tmp_path: Path) -> None:
    example = (REPO / "config.yaml.example").read_text(encoding="utf-8")
    lines = example.replace('password: "CHANGE_ME"', f'password: "{PASSWORD}"')
    uncomment = {
        "# secrets:": "secrets:",
        "#   store_key_file:": "  store_key_file:",
        "#   pseudonym_secret_file:": "  pseudonym_secret_file:",
    }
    for commented, key in uncomment.items():
        assert lines.count(commented) == 1
        lines = lines.replace(commented, key)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "store-key").write_text(STORE_KEY, encoding="utf-8")
    (tmp_path / "secrets" / "pseudonym").write_text(PSEUDONYM, encoding="utf-8")

    config = load(tmp_path, lines)

    assert config.secrets.store_key == Secret(STORE_KEY)
    assert config.secrets.pseudonym_secret == Secret(PSEUDONYM)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("", 30),
        ("privacy: {}\n", 30),
        ("privacy:\n  forget_after_days: 1\n", 1),
        ("privacy:\n  forget_after_days: 365\n", 365),
    ],
    ids=["no-section", "empty-section", "one-day", "a-year"],
)
def test_forget_after_days(tmp_path: Path, section: str, expected: int) -> None:
    config = load(tmp_path, BASE + section)

    assert config.privacy.forget_after_days == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "must be at least 1, got 0"),
        ("-5", "must be at least 1, got -5"),
        ('"30 days"', "expected an integer, got a string"),
        ('"30"', "expected an integer, got a string"),
        ("30.5", "expected an integer, got a number"),
        ("[30]", "expected an integer, got a list"),
        ("true", "expected an integer, got true/false"),
        ("", "expected an integer, got nothing"),
    ],
    ids=[
        "zero",
        "negative",
        "with-unit",
        "quoted",
        "fraction",
        "list",
        "bool",
        "empty",
    ],
)
def test_bad_forget_after_days(tmp_path: Path, value: str, message: str) -> None:
    text = BASE + f"privacy:\n  forget_after_days: {value}\n"

    assert problems_of(tmp_path, text) == [
        f"c.yaml:10: privacy.forget_after_days: {message}"
    ]


def test_unknown_privacy_key(tmp_path: Path) -> None:
    text = BASE + "privacy:\n  forget_after: 30\n"

    assert problems_of(tmp_path, text) == [
        "c.yaml:10: privacy: unknown key 'forget_after' (expected one of: "
        "forget_after_days)"
    ]
