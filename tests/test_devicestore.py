"""A device that may have received keys is told from one that never published any.

The stores here are real nio stores, made offline: ``restore_login`` creates the
store and an Olm account that has not been uploaded (``shared`` false), as a first
login killed before its key upload leaves it.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from nio import AsyncClient, AsyncClientConfig

from sobat_matrix import devicestore
from sobat_matrix.devserver import free_port
from sobat_matrix.matrix import Matrix, SessionMissing

USER = "@sobat:kota.test"
KEY = "k" * 32


async def make_store(store_dir: Path, device_id: str, *, shared: bool) -> None:
    store_dir.mkdir(parents=True, exist_ok=True)
    config = AsyncClientConfig(encryption_enabled=True, pickle_key=KEY)
    client = AsyncClient(
        "http://127.0.0.1:1", USER, store_path=str(store_dir), config=config
    )
    try:
        client.restore_login(USER, device_id, "token")
        assert client.olm is not None and client.store is not None
        if shared:
            client.olm.account.shared = True
            client.store.save_account(client.olm.account)
    finally:
        await client.close()


def matrix_in(data_dir: Path) -> Matrix:
    # Nothing listens there: a login attempt fails to connect.
    url = f"http://127.0.0.1:{free_port()}"
    return Matrix(url, USER, data_dir, device_name="t", pickle_key=KEY)


async def test_published_or_not_is_read_from_the_account(tmp_path: Path) -> None:
    await make_store(tmp_path, "FRESH", shared=False)
    await make_store(tmp_path, "USED", shared=True)
    (tmp_path / f"{USER}_BROKEN.db").write_bytes(b"not a database")
    (tmp_path / "@lain:kota.test_OTHER.db").write_bytes(b"")

    assert devicestore.store_devices(tmp_path, USER) == ["BROKEN", "FRESH", "USED"]
    assert not devicestore.keys_published(tmp_path, USER, "FRESH")
    assert devicestore.keys_published(tmp_path, USER, "USED")
    # What cannot be read counts as published: the bot then refuses, not discards.
    assert devicestore.keys_published(tmp_path, USER, "BROKEN")


async def test_a_store_without_its_session_file_is_not_logged_in_again(
    tmp_path: Path,
) -> None:
    """No login is tried: nothing listens at the URL, and the password is given."""
    await make_store(tmp_path / "e2ee", "ABCDEFGHIJ", shared=True)
    matrix = matrix_in(tmp_path)

    try:
        with pytest.raises(SessionMissing) as caught:
            await matrix.connect("a-password")
    finally:
        await matrix.close()

    assert str(caught.value) == (
        f"{tmp_path / 'session.json'} is missing, but the E2EE store "
        f"{tmp_path / 'e2ee'} holds the keys of device ABCDEFGHIJ; logging in with "
        "the password would make a new device and leave those keys unused, so the "
        "bot does not start"
    )
    assert not (tmp_path / "session.json").exists()


async def test_a_first_login_cut_short_is_set_aside_and_logged_in_anew(
    tmp_path: Path,
) -> None:
    store = tmp_path / "e2ee"
    await make_store(store, "CUTSHORT", shared=False)
    matrix = matrix_in(tmp_path)

    try:
        # It goes on to the login, which finds no server here.
        with pytest.raises(aiohttp.ClientConnectionError):
            await matrix.connect("a-password")
    finally:
        await matrix.close()

    assert devicestore.store_devices(store, USER) == []
    assert (store / f"{USER}_CUTSHORT.db.unpublished").exists()
