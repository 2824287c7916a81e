"""The E2EE store key comes from the config, and a key that cannot open the store
is refused before nio tries.

Before the ``secrets`` section the key was made at random into ``data_dir/e2ee.key``;
a bot set up that way keeps working, and a different key given later is refused
with the way out, not left to fail deep inside nio.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sobat_matrix.cli import EXIT_STORE
from sobat_matrix.devserver import DevServer, free_port
from sobat_matrix.matrix import Matrix, MatrixError, StoreKeyMismatch, StoreMissing

from .botkit import LogCapture, make_world

STORE_KEY = "kunci-toko-dari-konfigurasi-01"
OTHER_KEY = "kunci-lain-yang-tidak-cocok-02"


def matrix_in(data_dir: Path, key: str) -> Matrix:
    # Nothing listens there: the key check must come before any request.
    url = f"http://127.0.0.1:{free_port()}"
    return Matrix(url, "@sobat:kota.test", data_dir, device_name="t", pickle_key=key)


async def test_a_key_other_than_the_kept_one_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "e2ee.key").write_text(OTHER_KEY, encoding="utf-8")
    matrix = matrix_in(tmp_path, STORE_KEY)

    try:
        with pytest.raises(StoreKeyMismatch) as caught:
            await matrix.connect("a-password")
    finally:
        await matrix.close()

    # cli.py exits 74 on every StoreMissing.
    assert isinstance(caught.value, StoreMissing)
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = record.getMessage()
    assert message.startswith(
        "the store key given (secrets.store_key, its file or SOBAT_STORE_KEY) is not "
        f"the key the E2EE store {tmp_path / 'e2ee'} was made with (checked against "
        f"{tmp_path / 'e2ee.key'})"
    )
    assert "Give the content of" in message and "start over as a new device" in message
    assert STORE_KEY not in message and OTHER_KEY not in message
    assert not (tmp_path / "e2ee").exists()


async def test_the_kept_key_itself_passes_the_check(tmp_path: Path) -> None:
    (tmp_path / "e2ee.key").write_text(f"{STORE_KEY}\n", encoding="utf-8")
    matrix = matrix_in(tmp_path, STORE_KEY)

    try:
        # No session and no password: it gets past the key check to the login.
        with pytest.raises(MatrixError, match="no password configured"):
            await matrix.connect(None)
    finally:
        await matrix.close()


def run_bot(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sobat_matrix", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


@pytest.mark.integration
async def test_store_key_from_config_opens_the_store(
    synapse: DevServer, tmp_path: Path
) -> None:
    secrets = {"store_key": STORE_KEY, "pseudonym_secret": OTHER_KEY}
    world = await make_world(synapse, tmp_path, config_overrides={"secrets": secrets})
    data_dir = world.stage.state_dir / "bot-data"
    capture = LogCapture()
    ours = logging.getLogger("sobat_matrix")
    old_level = ours.level
    ours.addHandler(capture)
    ours.setLevel(logging.INFO)
    try:
        service = await world.start_bot()
        used = service.rt.matrix.client.config.pickle_key  # type: ignore[union-attr]
        await world.stop_bot()

        # A restart opens the same store with the same key from the config.
        await world.start_bot()
        await world.stop_bot()
    finally:
        ours.removeHandler(capture)
        ours.setLevel(old_level)
        await world.close()

    assert used == STORE_KEY
    assert not (data_dir / "e2ee.key").exists()
    assert not (data_dir / "pseudonym.key").exists()
    assert "restored session of device" in capture.text()
    assert "kept in the data directory" not in capture.text()


@pytest.mark.integration
async def test_a_bot_given_another_key_exits_74(
    synapse: DevServer, tmp_path: Path
) -> None:
    """The key comes from the config's key file; a different one is refused.

    No ``e2ee.key`` exists here: the check value kept beside the store is what
    tells the keys apart.
    """
    world = await make_world(synapse, tmp_path)
    data_dir = world.stage.state_dir / "bot-data"
    try:
        await world.start_bot()
        await world.stop_bot()
        assert not (data_dir / "e2ee.key").exists()
        check = (data_dir / "e2ee.key-check").read_text(encoding="utf-8")
        kept = (world.stage.state_dir / "store-key").read_text(encoding="utf-8")

        refused = await asyncio.to_thread(
            run_bot, world.stage.config_path, {"SOBAT_STORE_KEY": OTHER_KEY}
        )
        # The right key, from the environment this time: it starts again.
        moved = await asyncio.to_thread(
            run_bot_briefly, world.stage.config_path, {"SOBAT_STORE_KEY": kept}
        )
    finally:
        await world.close()

    assert refused.returncode == EXIT_STORE
    assert "is not the key" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert OTHER_KEY not in refused.stderr and kept not in refused.stderr
    assert kept not in check
    assert "bot running as device" in moved


def run_bot_briefly(config: Path, env: dict[str, str]) -> str:
    """Start the bot, wait until it runs (or 60 s), stop it; its log output."""
    lines = []
    with subprocess.Popen(
        [sys.executable, "-m", "sobat_matrix", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    ) as proc:
        assert proc.stderr is not None
        try:
            for line in proc.stderr:
                lines.append(line)
                if "bot running as device" in line:
                    break
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return "".join(lines)
