"""``sobat-matrix`` command line: run the bot, check files, restore a lost session,
run the local demo.

Exit codes tell an operator (or systemd) what kind of failure stopped the bot:
0 success, 78 config or policy invalid, 74 the bot's stored state or its device is
unusable, 69 the homeserver refused or could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import signal
import sys
from pathlib import Path

import aiohttp

from . import logsetup
from .config import PASSWORD_ENV, Config, load_config, with_data_dir_secrets
from .crosssign import CrossSigningError
from .errors import ConfigError
from .matrix import (
    DeviceUnusable,
    Matrix,
    MatrixError,
    SessionMissing,
    StoreKeyMismatch,
    StoreMissing,
)
from .policy import Policy, load_policy

logger = logging.getLogger(__name__)

EXIT_CONFIG = 78
EXIT_STORE = 74
EXIT_UNAVAILABLE = 69
CONFIG_HELP = "service config (default: ./config.yaml)"


def load_all(
    config_path: Path, *, allow_missing_password: bool = False
) -> tuple[Config, Policy]:
    """Config and policy, each validated fully; raises ConfigError with all problems."""
    config = load_config(config_path, allow_missing_password=allow_missing_password)
    policy = load_policy(
        config.policy_path,
        bot_user_id=config.bot.user_id,
        supervisors=config.supervisors,
    )
    return config, policy


def _refused(exc: ConfigError) -> int:
    """Print every problem of the config or the policy, one per line."""
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    return EXIT_CONFIG


def _unavailable(config: Config, exc: Exception) -> int:
    """Say why the homeserver could not be used; the token never appears."""
    if isinstance(exc, MatrixError):
        logger.error("homeserver problem: %s", exc)
    else:
        logger.error(
            "cannot reach the homeserver at %s: %s",
            config.homeserver.url,
            type(exc).__name__,
        )
    return EXIT_UNAVAILABLE


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the config and its policy, or, with ``--policy`` alone, a policy.

    A policy checked without a config is checked without what only the config
    knows (the bot's ID and server, the supervisors): a city's editor may check a
    change to the policy on a machine that holds no config at all.
    """
    try:
        if args.policy is not None and args.config is None:
            policy = load_policy(args.policy)
            print(f"{policy.source}: OK ({_sizes(policy)})")
            return 0
        config_path = args.config or Path("config.yaml")
        config = load_config(config_path, allow_missing_password=True)
        policy = load_policy(
            args.policy or config.policy_path,
            bot_user_id=config.bot.user_id,
            supervisors=config.supervisors,
        )
    except ConfigError as exc:
        return _refused(exc)
    print(f"{config_path}: OK; {policy.source}: OK ({_sizes(policy)})")
    if config.bot.password is None:
        # Allowed here so a machine without the secret can check the files.
        print(
            f"{config_path}: note: no bot password here; `run` needs 'password', "
            f"'password_file' or {PASSWORD_ENV}",
            file=sys.stderr,
        )
    return 0


def _sizes(policy: Policy) -> str:
    return f"{len(policy.counsellors)} counsellors, {len(policy.categories)} categories"


def cmd_run(args: argparse.Namespace) -> int:
    try:
        config, policy = load_all(args.config)
    except ConfigError as exc:
        return _refused(exc)

    logsetup.configure(config.logging.level)
    try:
        asyncio.run(run_service(config, policy))
    except StoreKeyMismatch:
        # Matrix.connect already said which key and how to fix it.
        return EXIT_STORE
    except StoreMissing as exc:
        logger.error(
            "the E2EE store %s is missing; the saved session cannot decrypt anything. "
            "Restore the data directory from backup, or delete %s to log in as a new "
            "device (people will then have to share keys with it again)",
            exc,
            config.data_dir / "session.json",
        )
        return EXIT_STORE
    except SessionMissing as exc:
        logger.error(
            "%s. Restore %s from the backup of the data directory, or log in again "
            "as the same device, keeping its keys: "
            "`sobat-matrix restore-session --config %s`",
            exc,
            config.data_dir / "session.json",
            shlex.quote(str(config.source.resolve())),
        )
        return EXIT_STORE
    except DeviceUnusable as exc:
        logger.error("%s", exc)
        return EXIT_STORE
    except CrossSigningError as exc:
        logger.error("cross-signing: %s", exc)
        return EXIT_STORE
    except (MatrixError, aiohttp.ClientError, TimeoutError) as exc:
        return _unavailable(config, exc)
    return 0


def cmd_restore_session(args: argparse.Namespace) -> int:
    """Log in again as the device whose keys the store holds (session.json lost)."""
    try:
        config, _ = load_all(args.config)
    except ConfigError as exc:
        return _refused(exc)

    logsetup.configure(config.logging.level)
    try:
        device_id = asyncio.run(restore_session(config))
    except StoreKeyMismatch:
        return EXIT_STORE
    except DeviceUnusable as exc:
        logger.error("%s", exc)
        return EXIT_STORE
    except (MatrixError, aiohttp.ClientError, TimeoutError) as exc:
        return _unavailable(config, exc)
    print(f"{config.data_dir / 'session.json'}: device {device_id}")
    return 0


async def restore_session(config: Config) -> str:
    config = with_data_dir_secrets(config)
    assert config.secrets.store_key is not None and config.bot.password is not None
    matrix = Matrix.for_config(config)
    try:
        return await matrix.restore_session(config.bot.password.reveal())
    finally:
        await matrix.close()


async def run_service(config: Config, policy: Policy) -> None:
    """Run the bot until SIGINT or SIGTERM."""
    from .service import Service

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await Service(config, policy).run_until(stop)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    return demo_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sobat-matrix",
        description="Encrypted curhat service for a city, as a Matrix bot.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the bot")
    run.add_argument(
        "--config", type=Path, default=Path("config.yaml"), help=CONFIG_HELP
    )
    run.set_defaults(func=cmd_run)

    restore = sub.add_parser(
        "restore-session",
        help="session.json lost, E2EE store kept: log in again as the same device",
    )
    restore.add_argument(
        "--config", type=Path, default=Path("config.yaml"), help=CONFIG_HELP
    )
    restore.set_defaults(func=cmd_restore_session)

    check = sub.add_parser("check", help="validate the config and the policy")
    check.add_argument(
        "--config",
        type=Path,
        default=None,
        help="service config (default: ./config.yaml, unless --policy is given alone)",
    )
    check.add_argument(
        "--policy",
        type=Path,
        default=None,
        help="policy file to check instead of the one the config names",
    )
    check.set_defaults(func=cmd_check)

    demo = sub.add_parser(
        "demo", help="run everything on a throwaway local Synapse (embedded default)"
    )
    demo.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".sobat-demo"),
        help="where the local homeserver, accounts and bot data live",
    )
    demo.add_argument(
        "--policy",
        type=Path,
        default=None,
        help="policy file (default: a copy of the Sukabumi sample that is always open)",
    )
    demo.add_argument(
        "--port",
        type=int,
        default=8008,
        help=(
            "port of the local homeserver on 127.0.0.1 (at the first run, another "
            "if taken)"
        ),
    )
    demo.add_argument(
        "--scripted",
        action="store_true",
        help=(
            "drive a warga, the counsellors and a supervisor through one curhat, "
            "then exit"
        ),
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
