"""`sobat-matrix run` exits with a distinct code when it cannot start, and exits.

A service manager restarts a bot that exited; one that hangs after an error looks
"running" for ever. Each case runs the real command in a subprocess with a time
limit.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sobat_matrix.cli import EXIT_STORE, EXIT_UNAVAILABLE
from sobat_matrix.devserver import DevServer, free_port

from .botkit import make_world

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
