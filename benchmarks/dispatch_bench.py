"""How long one routing pass of the reconciler takes with a long queue.

Run from the repository root::

    .venv/bin/python benchmarks/dispatch_bench.py [--waiting 300] [--passes 20]

The policy and the 10,000 open curhats are those of ``routing_bench.py`` (1,000
counsellors), kept in a real store this time, every counsellor with a duty room.
Then ``--waiting`` curhats wait with varied categories and preferences, half of
them past the policy's ``preference_fallback``. Each pass runs
``Reconciler._dispatch`` on that store, offers and messages included, and is rolled
back, so every pass starts from the same queue. It prints the 50th and 99th
percentile and the slowest pass in milliseconds, of the wall clock and of the
process's CPU time (the store's thread included): on a shared machine the wall
clock mostly measures the others, the CPU time is the figure to compare.

What it shows is the part of a pass that grows with counsellors times waiting
curhats: the loads were once rebuilt for every waiting curhat.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from sobat_matrix.curhat import Reconciler
from sobat_matrix.i18n import Catalog
from sobat_matrix.policy import load_policy
from sobat_matrix.runtime import Runtime
from sobat_matrix.store import Store, duty_purpose

sys.path.insert(0, str(Path(__file__).resolve().parent))
from routing_bench import policy_yaml, spread_loads  # noqa: E402

PREFERENCES = (
    (None, None, None),
    (None, "perempuan", None),
    ("psikolog", None, None),
    ("keagamaan", "laki-laki", None),
    (None, None, "islam"),
)


class _Rollback(Exception):
    """Raised to undo a pass, so the next one starts from the same queue."""


async def fill(store: Store, rt: Runtime, rng: random.Random, waiting: int) -> None:
    """Duty rooms, the open curhats of ``spread_loads`` and the waiting ones."""
    loads = spread_loads(rng, rt.policy)
    keys = [c.key for c in rt.policy.categories]
    now = time.time()
    async with store.tx() as tx:
        for counsellor in rt.policy.counsellors:
            user_id = counsellor.user_id
            await tx.want_room(duty_purpose(user_id), f"t-{user_id}")
            await tx.set_room_id(duty_purpose(user_id), f"!duty-{user_id}")
        number = 0
        for user_id, load in loads.items():
            for _ in range(load.open_curhats):
                number += 1
                case = await tx.add_case(
                    code=f"A{number}",
                    warga=f"@a{number}:kota.test",
                    dm_room=f"!a{number}:kota.test",
                    category=rng.choice(keys),
                    pref_type=None,
                    pref_gender=None,
                )
                await tx.update_case(case.id, status="active", counsellor=user_id)
        for index in range(waiting):
            pref_type, gender, religion = rng.choice(PREFERENCES)
            case = await tx.add_case(
                code=f"W{index}",
                warga=f"@w{index}:kota.test",
                dm_room=f"!w{index}:kota.test",
                category=rng.choice(keys),
                pref_type=pref_type,
                pref_gender=gender,
                pref_religion=religion,
            )
            waited_s = rng.choice((60.0, 3600.0))
            await tx.update_case(case.id, requested_at=now - waited_s - index)


async def run(waiting: int, passes: int, seed: int) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(policy_yaml(rng), encoding="utf-8")
        store = await Store.open(Path(folder) / "bench.db")
        policy = load_policy(path)
        # Every counsellor is in their duty room, as the last sync would show.
        duty_rooms = {
            f"!duty-{c.user_id}": SimpleNamespace(
                users={c.user_id: None}, invited_users={}
            )
            for c in policy.counsellors
        }
        rt = Runtime(
            config=None,  # type: ignore[arg-type]
            policy=policy,
            catalog=Catalog("id"),
            store=store,
            matrix=SimpleNamespace(client=SimpleNamespace(rooms=duty_rooms)),  # type: ignore[arg-type]
        )
        await fill(store, rt, rng, waiting)
        reconciler = Reconciler(rt)
        reconciler._usable = {c.user_id for c in rt.policy.counsellors}

        wall_ms, cpu_ms = [], []
        for _ in range(passes):
            started, started_cpu = time.perf_counter(), time.process_time()
            try:
                async with store.tx() as tx:
                    await reconciler._dispatch(tx)
                    raise _Rollback
            except _Rollback:
                pass
            wall_ms.append((time.perf_counter() - started) * 1000)
            cpu_ms.append((time.process_time() - started_cpu) * 1000)
        await store.close()
    return sorted(wall_ms), sorted(cpu_ms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=300)
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args(argv)

    wall_ms, cpu_ms = asyncio.run(run(args.waiting, args.passes, args.seed))
    for name, timings_ms in (("wall", wall_ms), ("cpu", cpu_ms)):
        cuts = statistics.quantiles(timings_ms, n=100, method="inclusive")
        print(
            f"dispatch, {name}: {args.passes} passes over {args.waiting} waiting "
            f"curhats: p50 {cuts[49]:.1f} ms, p99 {cuts[98]:.1f} ms, "
            f"max {timings_ms[-1]:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
