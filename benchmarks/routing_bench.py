"""How long one routing decision takes with 1,000 counsellors and 10,000 open curhats.

Run from the repository root::

    .venv/bin/python benchmarks/routing_bench.py [--calls 20000] [--seed 4]

The script writes a policy of 1,000 counsellors (varied types, skills, languages,
time zones, weekly schedules, leave) and five categories whose routes use every
filter and every order, loads it with the real validator, spreads 10,000 open
curhats over the counsellors, then times ``routing.choose`` on varied inputs:
category, preference, the warga's language, the time of the week, a previous
counsellor, declines and timeouts. It prints the 50th and 99th percentile and the
slowest call in microseconds, then the same calls again with nobody busy (the
slowest case for the pass over every counsellor), and once more with every curhat
past its ``preference_fallback``, so a call that finds nobody matching the
preference routes again without it. Issue 4 asks for p99 under 1 ms.

The first decision with a time builds the duty rosters of the policy, once; it is
timed on its own line. The slowest call of a run is usually the garbage collector
or another process taking the CPU; p99 is the figure to compare.

Nothing here is secret, so ``random`` with a fixed seed is fine: the same seed
gives the same policy and the same calls.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sobat_matrix.policy import Policy, load_policy
from sobat_matrix.routing import Load, Preference, choose

COUNSELLORS = 1000
OPEN_CURHATS = 10_000
TYPES = ("psikolog", "ketahanan_keluarga", "keagamaan", "pekerja_sosial")
SKILLS = ("kdrt", "duka", "perundungan", "kecemasan", "utang", "pengasuhan")
LANGUAGES = ("su", "en", "jv")
RELIGIONS = ("islam", "kristen", "katolik", "hindu", "buddha")
ZONES = ("Asia/Jakarta",) * 8 + ("Asia/Makassar", "Asia/Jayapura")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SHIFTS = ("08:00-12:00", "13:00-17:00", "17:00-22:00", "22:00-02:00", "07:00-15:00")
GENDERS = ("perempuan", "laki-laki")
ORDERS = ("least_loaded", "round_robin", "priority", "previous")


def counsellor_yaml(rng: random.Random, index: int) -> str:
    """One counsellor entry; about a third have no schedule (always on duty)."""
    types = rng.sample(TYPES, rng.choice((1, 1, 2)))
    languages = ["id", *rng.sample(LANGUAGES, rng.choice((0, 0, 1, 2)))]
    lines = [
        f'  - id: "@k{index}:kota.test"',
        f"    name: Konselor {index}",
        f"    types: [{', '.join(types)}]",
        f"    gender: {rng.choice(GENDERS)}",
        f"    languages: [{', '.join(languages)}]",
        f"    max_open: {rng.randint(8, 20)}",
        f"    skills: [{', '.join(rng.sample(SKILLS, rng.randint(0, 3)))}]",
    ]
    if rng.random() < 0.3:
        lines.append(f"    religion: {rng.choice(RELIGIONS)}")
    if rng.random() < 0.66:
        lines.append(f"    timezone: {rng.choice(ZONES)}")
        lines.append("    schedule:")
        for day in rng.sample(DAYS, rng.randint(2, 6)):
            shifts = rng.sample(SHIFTS, rng.choice((1, 1, 2)))
            lines.append(f"      {day}: [{', '.join(f'{s!r}' for s in shifts)}]")
    if rng.random() < 0.1:
        first = rng.randint(1, 20)
        lines.append(f'    leave: ["2026-12-{first:02}..2026-12-{first + 5:02}"]')
    return "\n".join(lines)


def policy_yaml(rng: random.Random) -> str:
    """A whole policy: five categories whose routes use every filter and order."""
    head = [
        "timezone: Asia/Jakarta",
        "service_hours: {" + ", ".join(f'{d}: ["07:00-23:00"]' for d in DAYS) + "}",
        "holidays: [2026-12-25, 2027-01-01]",
        "queue: {preference_fallback: 10m}",
        "counsellor_types:",
        *(f"  {t}: {t.replace('_', ' ').title()}" for t in TYPES),
        "counsellors:",
        *(counsellor_yaml(rng, i) for i in range(COUNSELLORS)),
        "pools:",
        "  senior: [" + ", ".join(f'"@k{i}:kota.test"' for i in range(0, 200, 4)) + "]",
        "  piket: [" + ", ".join(f'"@k{i}:kota.test"' for i in range(1, 1000, 9)) + "]",
        "categories:",
    ]
    routes = {
        "keluarga": [
            "{types: [ketahanan_keluarga], skills: [kdrt, pengasuhan], order: previous",
            "{types: [ketahanan_keluarga, psikolog], order: least_loaded",
            "{pools: [piket], order: round_robin",
        ],
        "sosial": [
            "{types: [psikolog], languages: [su], order: round_robin",
            "{types: [psikolog, pekerja_sosial]",
        ],
        "ekonomi": [
            "{skills: [utang], order: priority",
            "{types: [pekerja_sosial]",
            "{pools: [senior, piket], order: priority",
        ],
        "iman": [
            "{types: [keagamaan], genders: [perempuan]",
            "{types: [keagamaan]",
        ],
        "umum": [
            '{counsellors: ["@k3:kota.test", "@k7:kota.test"], order: priority',
            "{types: [psikolog, pekerja_sosial, ketahanan_keluarga, keagamaan]",
        ],
    }
    body = []
    for key, steps in routes.items():
        body += [f"  {key}:", f"    label: {key.title()}", "    route:"]
        body += [f"      - {step}, timeout: 10m}}" for step in steps]
    return "\n".join(head + body) + "\n"


def spread_loads(rng: random.Random, policy: Policy) -> dict[str, Load]:
    """10,000 open curhats over the counsellors, none above capacity."""
    open_by_id = dict.fromkeys((c.user_id for c in policy.counsellors), 0)
    room = {c.user_id: c.max_open for c in policy.counsellors}
    for _ in range(OPEN_CURHATS):
        user_id = rng.choice([u for u, left in room.items() if left > 0])
        open_by_id[user_id] += 1
        room[user_id] -= 1
        if room[user_id] == 0:
            del room[user_id]
    return {
        user_id: Load(open_curhats=n, pending_offer=rng.random() < 0.05)
        for user_id, n in open_by_id.items()
    }


Call = tuple[str, Preference, frozenset[str], frozenset[str], dict[str, Any]]


def varied_calls(rng: random.Random, policy: Policy, count: int) -> list[Call]:
    """Arguments for ``choose``: half with a time in a fortnight, half without."""
    ids = [c.user_id for c in policy.counsellors]
    keys = [c.key for c in policy.categories]
    prefs = [
        Preference(),
        Preference(gender="perempuan"),
        Preference(type="psikolog"),
        Preference(type="keagamaan", gender="laki-laki"),
        Preference(religion="islam"),
    ]
    monday = datetime(2026, 12, 7, tzinfo=UTC)
    last_offer = {u: rng.uniform(0, 1e6) for u in rng.sample(ids, 600)}

    calls = []
    for _ in range(count):
        tried = rng.sample(ids, rng.choice((0, 0, 1, 3, 10)))
        cut = len(tried) // 2
        now = monday + timedelta(minutes=rng.randrange(14 * 1440))
        options = {
            "now": rng.choice((None, now)),
            "language": rng.choice((None, "id", "su", "en")),
            "previous": rng.choice((None, rng.choice(ids))),
            "round_robin_state": last_offer,
        }
        key, pref = rng.choice(keys), rng.choice(prefs)
        calls.append(
            (key, pref, frozenset(tried[:cut]), frozenset(tried[cut:]), options)
        )
    return calls


def time_calls(
    policy: Policy, loads: Mapping[str, Load], calls: list[Call]
) -> tuple[list[float], int]:
    """Microseconds each call took, sorted, and how many found nobody."""
    timings_us = []
    nobody = 0
    for key, pref, declined, timed_out, options in calls:
        started_ns = time.perf_counter_ns()
        choice = choose(policy, key, pref, loads, declined, timed_out, **options)
        timings_us.append((time.perf_counter_ns() - started_ns) / 1000)
        nobody += choice is None
    return sorted(timings_us), nobody


def report(name: str, timings_us: list[float], nobody: int) -> None:
    cuts = statistics.quantiles(timings_us, n=100, method="inclusive")
    print(
        f"{name}: {len(timings_us)} calls ({nobody} found nobody): "
        f"p50 {cuts[49]:.0f} us, p99 {cuts[98]:.0f} us, max {timings_us[-1]:.0f} us"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(policy_yaml(rng), encoding="utf-8")
        started = time.perf_counter()
        policy = load_policy(path)
        load_ms = (time.perf_counter() - started) * 1000
    loads = spread_loads(rng, policy)
    calls = varied_calls(rng, policy, args.calls)
    started = time.perf_counter()
    choose(
        policy, calls[0][0], Preference(), loads, set(), set(), now=datetime.now(UTC)
    )
    first_ms = (time.perf_counter() - started) * 1000

    full = sum(
        1 for c in policy.counsellors if loads[c.user_id].open_curhats >= c.max_open
    )
    print(
        f"policy: {len(policy.counsellors)} counsellors, {len(policy.categories)} "
        f"categories, read and validated in {load_ms:.0f} ms"
    )
    print(
        f"loads: {sum(load.open_curhats for load in loads.values())} open curhats, "
        f"{full} counsellors full"
    )
    print(f"first decision with a time (builds the rosters): {first_ms:.1f} ms")
    report("choose", *time_calls(policy, loads, calls))
    # Nobody busy is the slowest case for the first pass: every counsellor passes
    # the cheap tests, so every schedule is read.
    report("choose, nobody busy", *time_calls(policy, {}, calls))
    # Past the preference fallback a call that finds nobody matching runs routing a
    # second time without the preference: the worst case for those calls.
    due = [(*call[:4], {**call[4], "waited_s": 3600.0}) for call in calls]
    report("choose, fallback due", *time_calls(policy, loads, due))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
