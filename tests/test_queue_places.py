"""A waiting warga hears their new place only when it moved by ``queue.notify_step``.

Runs the reconciler's telling step on a real store, without a server: cases ahead
of the warga's are served one by one and the store is closed and opened again
between two passes, as a restart would, so the last place told must come from the
store and not from memory.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from sobat_matrix.curhat import Reconciler
from sobat_matrix.i18n import Catalog
from sobat_matrix.policy import load_policy
from sobat_matrix.runtime import Runtime
from sobat_matrix.store import Case, Store

from .botkit import policy_text

IDS = {k: f"@kons{k}:sukabumi.test" for k in "abc"}
OURS = "!dm-ours:sukabumi.test"


async def runtime(tmp_path: Path, notify_step: int) -> Runtime:
    """A bot's runtime on the store in ``tmp_path``, opened afresh each call."""
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(IDS) + f"queue:\n  notify_step: {notify_step}\n")
    return Runtime(
        config=None,  # type: ignore[arg-type]
        policy=load_policy(path),
        catalog=Catalog("id"),
        store=await Store.open(tmp_path / "sobat.db"),
        matrix=SimpleNamespace(),  # type: ignore[arg-type]
    )


async def queue_up(
    rt: Runtime, count: int, *, urgent: bool = False, first: int = 0
) -> list[Case]:
    """``count`` waiting curhats of other warga, each told its place as intake does.

    ``first`` numbers them on from an earlier call with the same ``urgent``.
    """
    cases = []
    async with rt.store.tx() as tx:
        for index in range(first, first + count):
            case = await tx.add_case(
                code=f"A{index}{int(urgent)}",
                warga=f"@warga{index}{int(urgent)}:sukabumi.test",
                dm_room=f"!dm-{index}-{int(urgent)}:sukabumi.test",
                category="ekonomi",
                pref_type=None,
                pref_gender=None,
                urgent=urgent,
            )
            await tx.update_case(case.id, told_position=await tx.queue_position(case))
            cases.append(case)
    return cases


async def our_case(rt: Runtime) -> Case:
    async with rt.store.tx() as tx:
        case = await tx.add_case(
            code="K1",
            warga="@warga:sukabumi.test",
            dm_room=OURS,
            category="ekonomi",
            pref_type=None,
            pref_gender=None,
        )
        await tx.update_case(case.id, told_position=await tx.queue_position(case))
        return case


async def tell_after_restart(tmp_path: Path, notify_step: int) -> list[str]:
    """Open the store again, run the telling step once; what our warga was told."""
    rt = await runtime(tmp_path, notify_step)
    try:
        async with rt.store.tx() as tx:
            await Reconciler(rt)._tell_places(tx)
        async with rt.store.tx() as tx:
            said = [i.content["body"] for i in await tx.outbox() if i.room_id == OURS]
            for item in await tx.outbox():
                await tx.sent(item.id)
    finally:
        await rt.store.close()
    return said


def places(said: list[str]) -> list[int]:
    """The places told in ``said``, in order."""
    found = (re.search(r"sekarang Anda di nomor (\d+) ", body) for body in said)
    return [int(match[1]) if match else -1 for match in found]


@pytest.mark.parametrize(
    ("notify_step", "told"),
    [
        # From place 6 to 1, one place a pass; the front is told however small
        # the move, because that is the news a warga waits for.
        pytest.param(2, [[], [4], [], [2], [1]], id="step-2"),
        pytest.param(3, [[], [], [3], [], [1]], id="step-3"),
    ],
)
async def test_a_new_place_is_told_once_it_moved_notify_step_places(
    tmp_path: Path, notify_step: int, told: list[list[int]]
) -> None:
    rt = await runtime(tmp_path, notify_step)
    ahead = await queue_up(rt, 5)
    ours = await our_case(rt)
    async with rt.store.tx() as tx:
        assert await tx.queue_position(ours) == 6
    await rt.store.close()

    seen: list[list[int]] = []
    for served in ahead:
        rt = await runtime(tmp_path, notify_step)
        async with rt.store.tx() as tx:
            await tx.update_case(served.id, status="accepted")
        await rt.store.close()
        seen.append(places(await tell_after_restart(tmp_path, notify_step)))

    assert seen == told


async def test_moving_back_is_told_by_the_same_rule(tmp_path: Path) -> None:
    rt = await runtime(tmp_path, 2)
    await queue_up(rt, 2)
    await our_case(rt)
    await queue_up(rt, 1, urgent=True)
    await rt.store.close()

    # An urgent curhat went ahead: place 3 to 4, too small a move to tell.
    assert await tell_after_restart(tmp_path, 2) == []

    rt = await runtime(tmp_path, 2)
    await queue_up(rt, 1, urgent=True, first=1)
    await rt.store.close()

    # Another one: place 5, two from the place last told.
    assert places(await tell_after_restart(tmp_path, 2)) == [5]
