"""A complete local set-up on a throwaway Synapse: accounts, config, the bot.

Used by ``sobat-matrix demo`` and by the integration tests, so both run the service
exactly as an operator would: from a config file and a policy file, against a real
homeserver, with the bot exempt from rate limits through the admin API.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..config import Config, load_config
from ..devserver import DevServer
from ..policy import Policy, load_policy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Account:
    user_id: str
    password: str

    def __repr__(self) -> str:
        return f"Account({self.user_id!r})"


def localpart(user_id: str) -> str:
    return user_id[1:].partition(":")[0]


@dataclass
class Stage:
    """Accounts and a config file for one bot on one local homeserver."""

    server: DevServer
    state_dir: Path
    config_path: Path
    admin_token: str
    bot: Account
    counsellors: dict[str, Account]
    supervisors: dict[str, Account]
    warga: dict[str, Account]

    @classmethod
    async def prepare(
        cls,
        server: DevServer,
        state_dir: Path,
        policy_path: Path,
        *,
        bot_localpart: str = "sobat",
        admin_localpart: str = "sobat-admin",
        supervisor_localparts: tuple[str, ...] = ("pengawas",),
        warga_localparts: tuple[str, ...] = ("warga",),
        config_overrides: dict[str, object] | None = None,
        exempt_bot: bool = True,
    ) -> Stage:
        """Register every account (reusing passwords kept in ``state_dir``).

        ``exempt_bot=False`` leaves the bot under the server's rate limits, as an
        operator who skipped that step would (tests of the bot under limits).
        """
        state_dir.mkdir(parents=True, exist_ok=True)
        passwords_file = state_dir / "accounts.json"
        passwords: dict[str, str] = (
            json.loads(passwords_file.read_text()) if passwords_file.exists() else {}
        )

        async def account(local: str, *, admin: bool = False) -> Account:
            password = passwords.setdefault(local, secrets.token_urlsafe(12))
            user_id = await server.register_user(local, password, admin=admin)
            return Account(user_id, password)

        admin = await account(admin_localpart, admin=True)
        admin_token = await server.login(admin.user_id, admin.password)
        bot = await account(bot_localpart, admin=True)
        if exempt_bot:
            await server.exempt_from_ratelimits(admin_token, bot.user_id)

        policy_ids = _policy_counsellors(policy_path)
        counsellors = {uid: await account(localpart(uid)) for uid in policy_ids}
        supervisors = {
            a.user_id: a for a in [await account(lp) for lp in supervisor_localparts]
        }
        warga = {a.user_id: a for a in [await account(lp) for lp in warga_localparts]}

        passwords_file.write_text(json.dumps(passwords, indent=2))
        passwords_file.chmod(0o600)

        config_path = state_dir / "config.yaml"
        data_dir = state_dir / "bot-data"
        store_key_file = _secret_file(
            state_dir / "store-key", kept_from=data_dir / "e2ee.key"
        )
        pseudonym_file = _secret_file(
            state_dir / "pseudonym-secret", kept_from=data_dir / "pseudonym.key"
        )
        password_file = state_dir / "bot-password"
        password_file.write_text(bot.password)
        password_file.chmod(0o600)
        config: dict[str, object] = {
            "homeserver": {"url": server.url},
            "bot": {
                "user_id": bot.user_id,
                "password_file": str(password_file),
                "display_name": "Sobat Sukabumi",
            },
            "data_dir": str(data_dir),
            "secrets": {
                "store_key_file": str(store_key_file),
                "pseudonym_secret_file": str(pseudonym_file),
            },
            "policy": str(policy_path.resolve()),
            "language": "id",
            "timezone": "Asia/Jakarta",
            "supervisors": list(supervisors),
            "statistics": {"daily_at": "07:00"},
            "access": {"allowed_servers": [], "admin_join": "auto"},
            "logging": {"level": "INFO"},
        }
        for key, value in (config_overrides or {}).items():
            config[key] = value
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))

        return cls(
            server=server,
            state_dir=state_dir,
            config_path=config_path,
            admin_token=admin_token,
            bot=bot,
            counsellors=counsellors,
            supervisors=supervisors,
            warga=warga,
        )

    def load(self) -> tuple[Config, Policy]:
        """The config and policy, validated as ``sobat-matrix run`` does."""
        config = load_config(self.config_path)
        policy = load_policy(
            config.policy_path,
            bot_user_id=config.bot.user_id,
            supervisors=config.supervisors,
        )
        return config, policy


def _secret_file(path: Path, *, kept_from: Path) -> Path:
    """A secret kept in ``path``, made once (or taken over from an older state).

    A state folder made before secrets moved into the config has the key in the
    data directory; it is taken over, since the E2EE store opens with no other.
    """
    if not path.exists():
        old = kept_from.read_text().strip() if kept_from.exists() else ""
        path.write_text(old or secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path


def _policy_counsellors(policy_path: Path) -> list[str]:
    data = yaml.safe_load(policy_path.read_text(encoding="utf-8"))
    return [str(c["id"]) for c in data.get("counsellors", [])]
