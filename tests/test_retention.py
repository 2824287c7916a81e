"""After the configured days, the bot no longer knows who the warga of a curhat was."""

from __future__ import annotations

import time
from pathlib import Path

from sobat_matrix.retention import DAY_S, forget_old
from sobat_matrix.store import Store


async def test_old_closed_curhats_lose_their_warga_and_keep_their_figures(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "s.db")
    now = time.time()
    try:
        async with store.tx() as tx:
            ids = {}
            for code, status, closed_days_ago in [
                ("OLD1", "closed", 31),
                ("OLD2", "cancelled", 40),
                ("NEW1", "closed", 29),
                ("OPEN", "active", None),
            ]:
                case = await tx.add_case(
                    code=code,
                    warga="@warga:sukabumi.test",
                    dm_room="!dm:sukabumi.test",
                    category="keluarga",
                    pref_type=None,
                    pref_gender=None,
                )
                closed_at = (
                    None if closed_days_ago is None else now - closed_days_ago * DAY_S
                )
                await tx.update_case(
                    case.id, status=status, closed_at=closed_at, rating=4
                )
                ids[code] = case.id

        assert await forget_old(store, 30, now=now) == 2
        assert await forget_old(store, 30, now=now) == 0

        async with store.tx() as tx:
            cases = {c.code: c for c in await tx.all_cases(0)}
    finally:
        await store.close()

    for code in ("OLD1", "OLD2"):
        assert cases[code].warga is None and cases[code].dm_room is None
        assert cases[code].category == "keluarga" and cases[code].rating == 4
    for code in ("NEW1", "OPEN"):
        assert cases[code].warga == "@warga:sukabumi.test"
