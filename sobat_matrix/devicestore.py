"""What nio's E2EE store directory holds, read without opening it through nio.

nio keeps one SQLite file per device, ``<user_id>_<device_id>.db``, with the Olm
account in its ``accounts`` table and a ``shared`` flag set once the device's keys
were uploaded (read in nio 0.26, ``store/models.py``). The bot reads this at start,
before any login, to tell a device people may have sent keys to from one that
never published any.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path

logger = logging.getLogger(__name__)

UNPUBLISHED_SUFFIX = ".unpublished"


def store_devices(store_dir: Path, user_id: str) -> list[str]:
    """The IDs of the user's devices whose stores are in ``store_dir``."""
    prefix = f"{user_id}_"
    return sorted(
        path.name[len(prefix) : -len(".db")]
        for path in store_dir.glob("*.db")
        if path.name.startswith(prefix)
    )


def keys_published(store_dir: Path, user_id: str, device_id: str) -> bool:
    """Whether the device's keys may have been uploaded; True when it cannot tell.

    A first login cut short (killed after nio made the store, before the keys
    were uploaded) leaves a store whose device nobody can have sent anything to.
    """
    path = store_dir / f"{user_id}_{device_id}.db"
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        ) as db:
            row = db.execute(
                "SELECT shared FROM accounts WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            ).fetchone()
    except sqlite3.Error as exc:
        logger.warning(
            "cannot read the store of device %s: %s", device_id, type(exc).__name__
        )
        return True
    return row is not None and bool(row[0])


def set_aside(store_dir: Path, user_id: str, device_id: str) -> None:
    """Rename a device's store (and SQLite's side files) out of nio's way."""
    base = store_dir / f"{user_id}_{device_id}.db"
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = base.with_name(base.name + suffix)
        if path.exists():
            path.rename(path.with_name(path.name + UNPUBLISHED_SUFFIX))
