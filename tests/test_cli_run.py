"""`sobat-matrix run` exits with a distinct code when it cannot start, and exits.

A service manager restarts a bot that exited; one that hangs after an error looks
"running" for ever. Each case runs the real command in a subprocess with a time
limit.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from sobat_matrix.cli import EXIT_STORE, EXIT_UNAVAILABLE
from sobat_matrix.devserver import DevServer, free_port

from .botkit import BotWorld, make_world
from .test_store_key import run_bot_briefly

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, url: str, user_id: str, password: str) -> Path:
    text = (ROOT / "config.yaml.example").read_text(encoding="utf-8")
    text = text.replace('"http://127.0.0.1:8008"', f'"{url}"')
    text = text.replace('"@sobat:sukabumi.test"', f'"{user_id}"')
    text = text.replace('password: "CHANGE_ME"', f'password: "{password}"')
    text = text.replace(
        'policy: "policies/sukabumi.yaml"',
        f'policy: "{ROOT / "policies" / "sukabumi.yaml"}"',
    )
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sobat_matrix", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unreachable_homeserver_exits_69(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run(write_config(tmp_path, url, "@sobat:sukabumi.test", "pw-tests-1"))

    assert result.returncode == EXIT_UNAVAILABLE
    assert "cannot reach the homeserver" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_wrong_password_exits_69(synapse: DevServer, tmp_path: Path) -> None:
    user_id = f"@nobot{secrets.token_hex(3)}:{synapse.server_name}"
    result = run(write_config(tmp_path, synapse.url, user_id, "wrong-password-1"))

    assert result.returncode == EXIT_UNAVAILABLE
    assert "login failed: 403" in result.stderr


@pytest.mark.integration
async def test_lost_e2ee_store_refuses_to_run_half_working(
    synapse: DevServer, tmp_path: Path
) -> None:
    """A kept session whose keys are gone: refuse loudly, say how to fix it."""
    world = await make_world(synapse, tmp_path)
    try:
        await world.start_bot()
        await world.stop_bot()
        shutil.rmtree(world.stage.state_dir / "bot-data" / "e2ee")

        result = await asyncio.to_thread(run, world.stage.config_path)
    finally:
        await world.close()

    assert result.returncode == EXIT_STORE
    assert "E2EE store" in result.stderr and "session.json" in result.stderr


async def bot_devices(synapse: DevServer, world: BotWorld) -> list[str]:
    """The bot's devices, as the homeserver lists them."""
    user = quote(world.stage.bot.user_id, safe="")
    headers = {"Authorization": f"Bearer {world.stage.admin_token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        url = f"{synapse.url}/_synapse/admin/v2/users/{user}/devices"
        async with http.get(url) as resp:
            resp.raise_for_status()
            data = await resp.json()
    return sorted(d["device_id"] for d in data["devices"])


def restore(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sobat_matrix", "restore-session", "--config", config],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.integration
async def test_lost_session_file_refuses_to_start_then_is_restored(
    synapse: DevServer, tmp_path: Path
) -> None:
    """No new device at start; ``restore-session`` brings back the same one."""
    world = await make_world(synapse, tmp_path)
    data_dir = world.stage.state_dir / "bot-data"
    config = world.stage.config_path
    try:
        service = await world.start_bot()
        device = service.rt.matrix.device_id  # type: ignore[union-attr]
        await world.stop_bot()
        (data_dir / "session.json").unlink()
        before = await bot_devices(synapse, world)

        refused = await asyncio.to_thread(run, config)
        after_refusal = await bot_devices(synapse, world)
        restored = await asyncio.to_thread(restore, config)
        again = await asyncio.to_thread(restore, config)
        started = await asyncio.to_thread(run_bot_briefly, config, {})
        after_start = await bot_devices(synapse, world)
    finally:
        await world.close()

    assert refused.returncode == EXIT_STORE
    assert f"{data_dir / 'session.json'} is missing" in refused.stderr
    assert f"holds the keys of device {device};" in refused.stderr
    assert (
        f"`sobat-matrix restore-session --config {config.resolve()}`" in refused.stderr
    )
    assert "Traceback" not in refused.stderr
    assert device in before and after_refusal == before

    assert restored.returncode == 0, restored.stderr
    assert restored.stdout == f"{data_dir / 'session.json'}: device {device}\n"
    assert again.returncode == 0 and again.stdout == restored.stdout
    assert f"restored session of device {device}" in started
    assert f"bot running as device {device}" in started
    assert after_start == before


@pytest.mark.integration
async def test_restoring_a_deleted_device_says_to_start_over(
    synapse: DevServer, tmp_path: Path
) -> None:
    """Both the session and the device are gone: no empty device is left behind."""
    world = await make_world(synapse, tmp_path)
    data_dir = world.stage.state_dir / "bot-data"
    try:
        service = await world.start_bot()
        device = service.rt.matrix.device_id  # type: ignore[union-attr]
        await world.stop_bot()
        await log_out(synapse, data_dir)
        (data_dir / "session.json").unlink()

        result = await asyncio.to_thread(restore, world.stage.config_path)
        devices = await bot_devices(synapse, world)
    finally:
        await world.close()

    store = data_dir / "e2ee"
    assert result.returncode == EXIT_STORE
    assert f"device {device} no longer exists on the homeserver" in result.stderr
    assert f"`mv {store} {store}.old`" in result.stderr
    assert "Traceback" not in result.stderr
    assert device not in devices
    assert not (data_dir / "session.json").exists()


async def log_out(synapse: DevServer, data_dir: Path) -> str:
    """Log the bot's saved session out elsewhere (deleting its device); the token."""
    session = json.loads((data_dir / "session.json").read_text(encoding="utf-8"))
    headers = {"Authorization": f"Bearer {session['access_token']}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        url = f"{synapse.url}/_matrix/client/v3/logout"
        async with http.post(url, json={}) as resp:
            resp.raise_for_status()
    return str(session["access_token"])


@pytest.mark.integration
async def test_a_revoked_token_refuses_to_start_with_the_fix(
    synapse: DevServer, tmp_path: Path
) -> None:
    """The device was logged out elsewhere (or deleted): exit 74 and say what to do."""
    world = await make_world(synapse, tmp_path)
    data_dir = world.stage.state_dir / "bot-data"
    try:
        service = await world.start_bot()
        device = service.rt.matrix.device_id  # type: ignore[union-attr]
        await world.stop_bot()
        token = await log_out(synapse, data_dir)

        result = await asyncio.to_thread(run, world.stage.config_path)
    finally:
        await world.close()

    assert result.returncode == EXIT_STORE
    session_file, store = data_dir / "session.json", data_dir / "e2ee"
    assert (
        f"the homeserver refused the access token of device {device} saved in "
        f"{session_file} (401 M_UNKNOWN_TOKEN)"
    ) in result.stderr
    assert (
        f"`mv {session_file} {session_file}.old && mv {store} {store}.old`"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    assert token not in result.stderr
