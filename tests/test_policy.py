"""Tests for the routing policy loader: the shipped sample and every kind of mistake."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sobat_matrix.errors import ConfigError
from sobat_matrix.policy import (
    DEFAULT_TIMEZONE,
    NEVER,
    Counsellor,
    QueueRules,
    Referral,
    RouteStep,
    Urgent,
    WeeklyHours,
    load_policy,
    minute_of_week,
)

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "policies" / "sukabumi.yaml"

# Line numbers in the expected messages below refer to this text.
BASE = """\
counsellor_types:
  psikolog: {id: Psikolog, en: Psychologist}
  keagamaan: Konselor keagamaan
counsellors:
  - id: "@rina:kota.test"
    name: Ibu Rina
    types: [psikolog]
    gender: perempuan
  - id: "@budi:kota.test"
    name: Pak Budi
    types: [psikolog, keagamaan]
    gender: laki-laki
    languages: [id, su]
    max_open: 2
categories:
  keluarga:
    label: {id: Keluarga, en: Family}
    ask: [type, gender]
    route:
      - types: [psikolog]
        timeout: 10m
      - counsellors: ["@budi:kota.test"]
        timeout: 5m
"""

COUNSELLORS_BLOCK = BASE[BASE.index("counsellors:\n") : BASE.index("categories:")]
ROUTE_BLOCK = BASE[BASE.index("      - types: [psikolog]") :]
DURATION = 'expected a duration like "10m" or "1h30m", got'
LANGUAGE = 'expected a language code of 2 or 3 lowercase letters like "id", got'
KEY = "expected a key of lowercase letters, digits and '_' starting with a letter"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(
    tmp_path: Path,
    text: str,
    *,
    bot_user_id: str | None = None,
    supervisors: Sequence[str] = (),
) -> list[str]:
    """The messages ``load_policy`` gives for ``text``, with the folder cut off."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_policy(path, bot_user_id=bot_user_id, supervisors=supervisors)
    return [str(p).removeprefix(f"{tmp_path}/") for p in caught.value.problems]


def edit(old: str, new: str) -> str:
    assert BASE.count(old) == 1, f"{old!r} must occur exactly once in BASE"
    return BASE.replace(old, new)


def test_base_policy_loads(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, BASE))

    assert [c.user_id for c in policy.counsellors] == [
        "@rina:kota.test",
        "@budi:kota.test",
    ]
    assert policy.counsellors[0] == Counsellor(
        "@rina:kota.test", "Ibu Rina", ("psikolog",), "perempuan", ("id",), 3
    )
    assert policy.counsellors[1].languages == ("id", "su")
    assert policy.counsellors[1].max_open == 2

    keluarga = policy.category("keluarga")
    assert keluarga is not None
    assert keluarga.ask_type and keluarga.ask_gender
    assert keluarga.route == (
        RouteStep(("psikolog",), (), 600.0),
        RouteStep((), ("@budi:kota.test",), 300.0),
    )
    assert keluarga.label("en") == "Family"
    assert keluarga.label("su") == "Keluarga"
    assert keluarga.description("en") is None
    assert policy.type_label("keagamaan", "en") == "Konselor keagamaan"
    assert policy.type_label("psikolog", "en") == "Psychologist"
    assert policy.counsellor("@budi:kota.test") is policy.counsellors[1]
    assert policy.counsellor("@nobody:kota.test") is None
    assert policy.category("ekonomi") is None


def test_step_pool_keeps_file_order(tmp_path: Path) -> None:
    text = edit('["@budi:kota.test"]', '["@budi:kota.test", "@rina:kota.test"]')
    policy = load_policy(write(tmp_path, text))

    step = policy.categories[0].route[1]
    assert [c.name for c in policy.step_pool(step)] == ["Ibu Rina", "Pak Budi"]


def test_sample_policy_loads() -> None:
    policy = load_policy(
        SAMPLE,
        bot_user_id="@sobat:sukabumi.test",
        supervisors=["@pengawas:sukabumi.test"],
    )

    assert [c.key for c in policy.categories] == [
        "keluarga",
        "sosial",
        "ekonomi",
        "pengaduan",
    ]
    assert [c.user_id for c in policy.counsellors] == [
        "@rina:sukabumi.test",
        "@budi:sukabumi.test",
        "@siti:sukabumi.test",
        "@ahmad:sukabumi.test",
    ]
    asks = [(c.ask_type, c.ask_gender, c.ask_language) for c in policy.categories]
    assert asks == [
        (True, True, False),
        (False, True, False),
        (False, False, True),
        (False, False, False),
    ]
    for category in policy.categories:
        assert category.label("id") and category.label("en")
        assert category.description("id") and category.description("en")
        assert all(step.timeout_s >= 60 for step in category.route)


def test_sample_policy_has_urgent_words_a_queue_and_emergency_contacts() -> None:
    policy = load_policy(SAMPLE)

    assert policy.urgent is not None
    assert "bunuh diri" in policy.urgent.words and "suicide" in policy.urgent.words
    assert policy.urgent.on_call == (
        "@rina:sukabumi.test",
        "@siti:sukabumi.test",
        "@ahmad:sukabumi.test",
    )
    assert (policy.urgent.parallel, policy.urgent.timeout_s) == (2, 180.0)
    assert policy.queue == QueueRules(30, 600.0, 2, max_rounds=3)
    assert len(policy.emergency_lines("en")) == 3
    assert any("112" in line for line in policy.emergency_lines("id"))
    assert policy.out_of_hours["id"] and policy.out_of_hours["en"]


def test_sample_policy_shows_hours_holidays_and_skills() -> None:
    policy = load_policy(SAMPLE)
    rina, budi, siti, ahmad = policy.counsellors

    afternoon = (13 * 60, 17 * 60)
    assert budi.schedule == WeeklyHours.from_days(
        {"mon": [afternoon], "thu": [afternoon]}
    )
    assert ahmad.religion == "islam" and "su" in ahmad.languages
    assert siti.schedule is None and siti.leave
    assert rina.schedule is not None and rina.schedule.is_open(5 * 1440 + 23 * 60)
    assert (date(2026, 12, 25), date(2026, 12, 25)) in policy.holidays
    assert policy.service_hours is not None
    assert policy.pools == {"pendamping": (siti.user_id, ahmad.user_id)}
    orders = {c.key: [step.order for step in c.route] for c in policy.categories}
    assert orders == {
        "keluarga": ["previous", "least_loaded"],
        "sosial": ["round_robin", "least_loaded"],
        "ekonomi": ["least_loaded", "least_loaded"],
        "pengaduan": [],
    }


def test_times_pools_and_filters_load(tmp_path: Path) -> None:
    budi_extra = (
        "    skills: [kdrt, duka]\n"
        "    religion: islam\n"
        "    schedule:\n"
        '      mon: ["13:00-17:00"]\n'
        '      thu: ["13:00-17:00", "22:00-02:00"]\n'
        "    timezone: Asia/Jakarta\n"
        '    leave: ["2026-12-24..2026-12-26", 2026-12-31]\n'
    )
    top = (
        "timezone: Asia/Makassar\n"
        'service_hours: {mon: ["07:00-22:00"], sun: ["22:00-02:00"]}\n'
        'holidays: [2027-01-01, "2026-12-25"]\n'
        'pools: {piket: ["@budi:kota.test", "@rina:kota.test"]}\n'
    )
    step = (
        "      - pools: [piket]\n        genders: [laki-laki]\n"
        "        skills: [duka]\n        languages: [su]\n"
        "        order: priority\n        timeout: 5m\n"
    )
    text = edit(BUDI_END, BUDI_END + budi_extra).replace(LAST_STEP, step) + top
    policy = load_policy(write(tmp_path, text))

    rina, budi = policy.counsellors
    assert policy.timezone == ZoneInfo("Asia/Makassar")
    assert rina.timezone == ZoneInfo("Asia/Makassar")
    assert (rina.schedule, rina.leave, rina.skills, rina.religion) == (
        None,
        (),
        (),
        None,
    )
    assert budi.timezone == DEFAULT_TIMEZONE
    assert budi.skills == ("kdrt", "duka")
    assert budi.religion == "islam"
    assert budi.schedule == WeeklyHours(
        (
            (780, 1020),
            (3 * 1440 + 780, 3 * 1440 + 1020),
            (3 * 1440 + 1320, 4 * 1440 + 120),
        )
    )
    assert budi.leave == (
        (date(2026, 12, 24), date(2026, 12, 26)),
        (date(2026, 12, 31), date(2026, 12, 31)),
    )
    assert policy.service_hours == WeeklyHours(((0, 120), (420, 1320), (9960, 10080)))
    assert policy.holidays == (
        (date(2026, 12, 25), date(2026, 12, 25)),
        (date(2027, 1, 1), date(2027, 1, 1)),
    )
    assert policy.pools == {"piket": ("@budi:kota.test", "@rina:kota.test")}

    last = policy.categories[0].route[1]
    assert last == RouteStep(
        (), (), 300.0, ("duka",), ("su",), ("laki-laki",), ("piket",), "priority"
    )
    assert policy.step_pool(last) == (budi,)


def test_priority_follows_the_named_order(tmp_path: Path) -> None:
    step = (
        '      - counsellors: ["@budi:kota.test"]\n        pools: [semua]\n'
        "        order: priority\n        timeout: 5m\n"
    )
    text = edit(LAST_STEP, step) + 'pools: {semua: ["@rina:kota.test"]}\n'
    policy = load_policy(write(tmp_path, text))

    last = policy.categories[0].route[1]
    assert [c.name for c in policy.step_pool(last)] == ["Ibu Rina", "Pak Budi"]
    assert policy.priority(last) == {"@budi:kota.test": 0, "@rina:kota.test": 1}
    first = policy.categories[0].route[0]
    assert policy.priority(first) == {"@rina:kota.test": 0, "@budi:kota.test": 1}


MON = 0
THU = 3 * 1440
SUN = 6 * 1440


@pytest.mark.parametrize(
    ("days", "spans"),
    [
        pytest.param({"mon": [(780, 1020)]}, ((780, 1020),), id="afternoon"),
        pytest.param(
            {"thu": [(1320, 120)]}, ((THU + 1320, THU + 1560),), id="past-midnight"
        ),
        pytest.param(
            {"sun": [(1320, 120)]},
            ((0, 120), (SUN + 1320, SUN + 1440)),
            id="past-sunday-midnight",
        ),
        pytest.param({"mon": [(0, 1440)]}, ((0, 1440),), id="whole-day"),
        pytest.param(
            {"mon": [(480, 720), (600, 900)], "tue": [(0, 60)]},
            ((480, 900), (1440, 1500)),
            id="overlaps-merged",
        ),
        pytest.param(
            {"mon": [(1200, 1440)], "tue": [(0, 60)]},
            ((1200, 1500),),
            id="touching-merged",
        ),
        pytest.param({"mon": []}, (), id="never"),
    ],
)
def test_weekly_hours_from_days(
    days: dict[str, list[tuple[int, int]]], spans: tuple[tuple[int, int], ...]
) -> None:
    assert WeeklyHours.from_days(days).spans == spans


NIGHTS = WeeklyHours.from_days({"thu": [(1320, 120)], "sun": [(1380, 60)]})


@pytest.mark.parametrize(
    ("minute", "is_open", "wait"),
    [
        pytest.param(THU + 1319, False, 1, id="thu-21:59"),
        pytest.param(THU + 1320, True, 0, id="thu-22:00"),
        pytest.param(THU + 1440 + 119, True, 0, id="fri-01:59"),
        pytest.param(THU + 1440 + 120, False, 2 * 1440 - 120 + 1380, id="fri-02:00"),
        pytest.param(SUN + 1439, True, 0, id="sun-23:59"),
        pytest.param(MON, True, 0, id="mon-00:00"),
        pytest.param(MON + 60, False, THU + 1320 - 60, id="mon-01:00"),
    ],
)
def test_weekly_hours_open_and_wait(minute: int, is_open: bool, wait: int) -> None:
    assert NIGHTS.is_open(minute) is is_open
    assert NIGHTS.minutes_until_open(minute) == wait


def test_weekly_hours_that_never_open_have_no_wait() -> None:
    assert WeeklyHours(()).minutes_until_open(0) is None


def test_minute_of_week_reads_the_local_clock() -> None:
    thursday = datetime(2026, 12, 3, 22, 30, tzinfo=ZoneInfo("Asia/Jakarta"))

    assert minute_of_week(thursday) == THU + 1350


@pytest.mark.parametrize(
    ("when", "on_duty"),
    [
        pytest.param(datetime(2026, 12, 7, 13, 0), True, id="mon-13:00"),
        pytest.param(datetime(2026, 12, 7, 17, 0), False, id="mon-17:00"),
        pytest.param(datetime(2026, 12, 8, 14, 0), False, id="tue-14:00"),
        pytest.param(datetime(2026, 12, 24, 14, 0), False, id="thu-on-leave"),
        pytest.param(datetime(2026, 12, 31, 14, 0), True, id="thu-back"),
    ],
)
def test_counsellor_on_duty(when: datetime, on_duty: bool) -> None:
    budi = Counsellor(
        "@budi:kota.test",
        "Pak Budi",
        ("psikolog",),
        "laki-laki",
        schedule=WeeklyHours.from_days({"mon": [(780, 1020)], "thu": [(780, 1020)]}),
        leave=((date(2026, 12, 24), date(2026, 12, 30)),),
    )

    assert budi.on_duty(when.replace(tzinfo=DEFAULT_TIMEZONE)) is on_duty


# Rina's entry from her gender line up to the categories: where when_open() writes.
HOURS_FROM = BASE[BASE.index("    gender: perempuan\n") : BASE.index("  keluarga:")]


def when_open(
    service: str, rina: str, budi: str, *, budi_extra: str = ""
) -> tuple[str, str]:
    """An edit giving the service hours and Rina's and Budi's schedules (one day).

    Each of ``service``, ``rina`` and ``budi`` is one ``day: [ranges]`` line;
    ``budi_extra`` adds lines to Budi's entry. Keluarga is then on line 22, plus
    the lines of ``budi_extra``.
    """
    budi_end = "    max_open: 2\n"
    new = HOURS_FROM.replace(
        "    gender: perempuan\n",
        f"    gender: perempuan\n    schedule:\n      {rina}\n",
    ).replace(budi_end, f"{budi_end}    schedule:\n      {budi}\n{budi_extra}")
    new = new.replace("categories:\n", f"service_hours:\n  {service}\ncategories:\n")
    return HOURS_FROM, new


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "    name: Ibu Rina",
            "\tname: Ibu Rina",
            ["p.yaml:6: tab character; YAML needs spaces here, not tabs"],
            id="tab",
        ),
        pytest.param(
            "    name: Ibu Rina",
            "   name: Ibu Rina",
            ["p.yaml:6: bad indentation"],
            id="indentation",
        ),
        pytest.param(
            "    gender: perempuan\n",
            "    gender: perempuan\n    gender: laki-laki\n",
            ["p.yaml:9: duplicate key 'gender' (first at line 8)"],
            id="duplicate-key",
        ),
        pytest.param(
            "  keagamaan: Konselor keagamaan\n",
            "  keagamaan: Konselor keagamaan\n  psikolog: Psikolog\n",
            ["p.yaml:4: duplicate key 'psikolog' (first at line 2)"],
            id="duplicate-type",
        ),
        pytest.param(
            "        timeout: 5m\n",
            "        timeout: 5m\nextra: 1\n",
            [
                "p.yaml:24: unknown key 'extra' (expected one of: "
                "counsellor_types, counsellors, categories, pools, timezone, "
                "service_hours, holidays, emergency_contacts, out_of_hours, urgent, "
                "queue)"
            ],
            id="unknown-top-key",
        ),
        pytest.param(
            "    name: Ibu Rina",
            "    nama: Ibu Rina",
            [
                "p.yaml:6: counsellors[0]: unknown key 'nama' (expected one of: "
                "id, name, types, gender, languages, max_open, skills, religion, "
                "schedule, timezone, leave)",
                "p.yaml:5: counsellors[0]: missing required key 'name'",
            ],
            id="unknown-counsellor-key",
        ),
        pytest.param(
            "        timeout: 5m",
            "        timout: 5m",
            [
                "p.yaml:23: categories.keluarga.route[1]: unknown key 'timout' "
                "(expected one of: types, counsellors, pools, skills, languages, "
                "genders, order, timeout)",
                "p.yaml:22: categories.keluarga.route[1]: missing required key "
                "'timeout'",
            ],
            id="unknown-step-key",
        ),
        pytest.param(
            "    ask: [type, gender]",
            "    ask: [type, gender]\n    colour: blue",
            [
                "p.yaml:19: categories.keluarga: unknown key 'colour' (expected one "
                "of: label, description, ask, route, referral, preference_fallback)"
            ],
            id="unknown-category-key",
        ),
        pytest.param(
            "categories:\n" + BASE.split("categories:\n")[1],
            "",
            ["p.yaml: missing required key 'categories'"],
            id="missing-categories",
        ),
        pytest.param(
            "    label: {id: Keluarga, en: Family}\n",
            "",
            ["p.yaml:16: categories.keluarga: missing required key 'label'"],
            id="missing-label",
        ),
        pytest.param(
            "    types: [psikolog]\n    gender: perempuan",
            "    types: psikolog\n    gender: perempuan",
            ["p.yaml:7: counsellors[0].types: expected a list, got a string"],
            id="list-as-string",
        ),
        pytest.param(
            "    types: [psikolog]\n    gender: perempuan",
            "    types: []\n    gender: perempuan",
            ["p.yaml:7: counsellors[0].types: must not be empty"],
            id="empty-types",
        ),
        pytest.param(
            COUNSELLORS_BLOCK,
            "counsellors: []\n",
            ["p.yaml:4: counsellors: must not be empty"],
            id="no-counsellors",
        ),
        pytest.param(
            "categories:\n" + BASE.split("categories:\n")[1],
            "categories: [keluarga]\n",
            ["p.yaml:15: categories: expected a mapping, got a list"],
            id="categories-as-list",
        ),
        pytest.param(
            "    name: Ibu Rina",
            '    name: ""',
            ["p.yaml:6: counsellors[0].name: must not be empty"],
            id="empty-name",
        ),
        pytest.param(
            'id: "@rina:kota.test"',
            'id: "@Rina:kota.test"',
            [
                "p.yaml:5: counsellors[0].id: expected a Matrix user ID like "
                '"@rina:example.org", got "@Rina:kota.test"'
            ],
            id="bad-matrix-id",
        ),
        pytest.param(
            'id: "@budi:kota.test"',
            'id: "@rina:kota.test"',
            [
                'p.yaml:9: counsellors[1].id: duplicate counsellor "@rina:kota.test" '
                "(first at line 5)",
                "p.yaml:22: categories.keluarga.route[1].counsellors[0]: "
                '"@budi:kota.test" is not in counsellors',
            ],
            id="duplicate-counsellor",
        ),
        pytest.param(
            "    types: [psikolog]\n    gender: perempuan",
            "    types: [psikologi]\n    gender: perempuan",
            [
                "p.yaml:7: counsellors[0].types[0]: unknown counsellor type "
                '"psikologi" (expected one of: psikolog, keagamaan)'
            ],
            id="unknown-type",
        ),
        pytest.param(
            "    gender: perempuan",
            "    gender: wanita",
            [
                "p.yaml:8: counsellors[0].gender: expected one of: perempuan, "
                'laki-laki; got "wanita"'
            ],
            id="unknown-gender",
        ),
        pytest.param(
            "    languages: [id, su]",
            "    languages: [id, SU]",
            [f'p.yaml:13: counsellors[1].languages[1]: {LANGUAGE} "SU"'],
            id="bad-language",
        ),
        pytest.param(
            "    max_open: 2",
            "    max_open: 0",
            ["p.yaml:14: counsellors[1].max_open: must be at least 1, got 0"],
            id="max-open-zero",
        ),
        pytest.param(
            "    max_open: 2",
            "    max_open: dua",
            ["p.yaml:14: counsellors[1].max_open: expected an integer, got a string"],
            id="max-open-word",
        ),
        pytest.param(
            "        timeout: 10m",
            "        timeout: sepuluh menit",
            [
                "p.yaml:21: categories.keluarga.route[0].timeout: "
                f'{DURATION} "sepuluh menit"'
            ],
            id="duration-words",
        ),
        pytest.param(
            "        timeout: 10m",
            "        timeout: 10",
            [
                "p.yaml:21: categories.keluarga.route[0].timeout: "
                f'{DURATION} "10" without a unit (s, m, h or d)'
            ],
            id="duration-bare-number",
        ),
        pytest.param(
            "        timeout: 10m",
            "        timeout: 0m",
            [
                "p.yaml:21: categories.keluarga.route[0].timeout: expected a "
                'duration longer than zero, got "0m"'
            ],
            id="duration-zero",
        ),
        pytest.param(
            '["@budi:kota.test"]',
            '["@joko:kota.test"]',
            [
                "p.yaml:22: categories.keluarga.route[1].counsellors[0]: "
                '"@joko:kota.test" is not in counsellors'
            ],
            id="route-names-stranger",
        ),
        pytest.param(
            "      - types: [psikolog]\n",
            '      - types: [keagamaan]\n        counsellors: ["@rina:kota.test"]\n',
            [
                "p.yaml:20: categories.keluarga.route[0]: no counsellor matches "
                "this step"
            ],
            id="step-matches-nobody",
        ),
        pytest.param(
            '      - counsellors: ["@budi:kota.test"]\n        timeout: 5m',
            "      - timeout: 5m",
            [
                "p.yaml:22: categories.keluarga.route[1]: a step needs at least "
                "one of: types, counsellors, pools, skills, languages, genders"
            ],
            id="step-without-filter",
        ),
        pytest.param(
            "    types: [psikolog, keagamaan]",
            "    types: [psikolog]",
            [
                "p.yaml:18: categories.keluarga.ask: asks for a type preference "
                "but its route offers only one type"
            ],
            id="ask-type-one-type",
        ),
        pytest.param(
            ROUTE_BLOCK,
            '      - counsellors: ["@budi:kota.test"]\n        timeout: 5m\n',
            [
                "p.yaml:18: categories.keluarga.ask: asks for a gender preference "
                "but its route offers only one gender"
            ],
            id="ask-gender-one-gender",
        ),
        pytest.param(
            "    languages: [id, su]\n    max_open: 2\n"
            "categories:\n  keluarga:\n    label: {id: Keluarga, en: Family}\n"
            "    ask: [type, gender]\n",
            "    languages: [id]\n    max_open: 2\n"
            "categories:\n  keluarga:\n    label: {id: Keluarga, en: Family}\n"
            "    ask: [language]\n",
            [
                "p.yaml:18: categories.keluarga.ask: asks for a language preference "
                "but its route's counsellors speak only one language"
            ],
            id="ask-language-one-language",
        ),
        pytest.param(
            "    ask: [type, gender]",
            "    ask: [type, umur]",
            [
                "p.yaml:18: categories.keluarga.ask[1]: expected one of: type, "
                'gender, religion, language; got "umur"'
            ],
            id="ask-unknown",
        ),
        pytest.param(
            "    label: {id: Keluarga, en: Family}",
            "    label: {en: Family}",
            [
                "p.yaml:17: categories.keluarga.label: missing the 'id' (Bahasa "
                "Indonesia) text"
            ],
            id="label-without-id",
        ),
        pytest.param(
            "    label: {id: Keluarga, en: Family}",
            "    label: {id: Keluarga, EN: Family}",
            [f"p.yaml:17: categories.keluarga.label.EN: {LANGUAGE} 'EN'"],
            id="label-bad-language",
        ),
        pytest.param(
            "  keagamaan: Konselor keagamaan",
            "  keagamaan: [Konselor, keagamaan]",
            [
                "p.yaml:3: counsellor_types.keagamaan: expected a string or a "
                "mapping of language to text, got a list"
            ],
            id="label-as-list",
        ),
        pytest.param(
            *when_open(
                'mon: ["07:00-12:00"]', 'tue: ["07:00-12:00"]', 'mon: ["12:00-17:00"]'
            ),
            [
                "p.yaml:22: categories.keluarga: can never be served: its "
                'counsellors never work during service_hours ("@rina:kota.test", '
                '"@budi:kota.test")'
            ],
            id="never-served-schedules-miss-service-hours",
        ),
        pytest.param(
            *when_open(
                'mon: ["07:00-08:00"]',
                'tue: ["07:00-08:00"]',
                'mon: ["07:00-08:00"]',
                budi_extra="    timezone: Asia/Makassar\n",
            ),
            [
                "p.yaml:23: categories.keluarga: can never be served: its "
                'counsellors never work during service_hours ("@rina:kota.test", '
                '"@budi:kota.test")'
            ],
            id="never-served-time-zone-moves-the-hours-out",
        ),
        pytest.param(
            *when_open(
                'mon: ["07:00-12:00"]',
                'tue: ["07:00-12:00"]',
                'mon: ["07:00-12:00"]',
                budi_extra='    leave: ["2026-01-01..9999-12-31"]\n',
            ),
            [
                "p.yaml:23: categories.keluarga: can never be served: its "
                'counsellors never work during service_hours ("@rina:kota.test") '
                'or are on leave for ever ("@budi:kota.test")'
            ],
            id="never-served-leave-for-ever",
        ),
        pytest.param(
            "  keluarga:",
            "  Keluarga:",
            [f"p.yaml:16: categories.Keluarga: {KEY}, got 'Keluarga'"],
            id="bad-category-key",
        ),
    ],
)
def test_bad_policy(tmp_path: Path, old: str, new: str, expected: list[str]) -> None:
    assert problems_of(tmp_path, edit(old, new)) == expected


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            when_open(
                'mon: ["07:00-08:00"]',
                'tue: ["07:00-08:00"]',
                'mon: ["08:00-09:00"]',
                budi_extra="    timezone: Asia/Makassar\n",
            ),
            id="meets-only-thanks-to-the-time-zone",
        ),
        pytest.param(
            when_open(
                'mon: ["00:00-06:00"]', 'tue: ["07:00-08:00"]', 'sun: ["22:00-02:00"]'
            ),
            id="night-shift-into-monday-meets-early-hours",
        ),
        pytest.param(
            when_open(
                'fri: ["01:00-06:00"]', 'tue: ["07:00-08:00"]', 'thu: ["22:00-02:00"]'
            ),
            id="night-shift-into-friday-meets-early-hours",
        ),
        pytest.param(
            when_open(
                'sun: ["23:00-24:00"]',
                'tue: ["07:00-08:00"]',
                'mon: ["00:00-01:00"]',
                budi_extra="    timezone: Asia/Makassar\n",
            ),
            id="monday-in-makassar-is-sunday-in-jakarta",
        ),
        pytest.param(
            when_open(
                'mon: ["07:00-12:00"]',
                'tue: ["07:00-12:00"]',
                'mon: ["07:00-12:00"]',
                budi_extra='    leave: ["2026-01-01..2099-12-31"]\n',
            ),
            id="a-long-leave-ends",
        ),
    ],
)
def test_a_category_served_at_some_hour_loads(
    tmp_path: Path, change: tuple[str, str]
) -> None:
    policy = load_policy(write(tmp_path, edit(*change)))

    assert [c.key for c in policy.categories] == ["keluarga"]


# Budi's entry ends at line 14, the file at line 23: an added key is on line 15 or
# line 24, and the first line of what it holds is on the line after.
BUDI_END = "    max_open: 2\n"
FILE_END = "        timeout: 5m\n"
LAST_STEP = '      - counsellors: ["@budi:kota.test"]\n        timeout: 5m\n'
NAME = "expected a name of lowercase letters, digits and '_' starting with a letter"
TIME_RANGE = 'expected a time range like "13:00-17:00", got'
DATE = 'expected a date like "2026-12-25" or a range like "2026-12-24..2026-12-26"'
DAYS = "mon, tue, wed, thu, fri, sat, sun"


def budi(extra: str) -> tuple[str, str]:
    """An edit that adds ``extra`` (lines) to Budi's entry, from line 15."""
    return BUDI_END, BUDI_END + extra


def at_end(extra: str) -> tuple[str, str]:
    """An edit that adds top-level ``extra`` (lines) from line 24."""
    return FILE_END, FILE_END + extra


def last_step(step: str) -> tuple[str, str]:
    """An edit that replaces the last route step (line 22) with ``step``."""
    return LAST_STEP, step


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            budi("    skills: [KDRT]\n"),
            [f'p.yaml:15: counsellors[1].skills[0]: {NAME}, got "KDRT"'],
            id="skill-not-a-name",
        ),
        pytest.param(
            budi("    skills: kdrt\n"),
            ["p.yaml:15: counsellors[1].skills: expected a list, got a string"],
            id="skills-as-string",
        ),
        pytest.param(
            budi("    skills: [kdrt, kdrt]\n"),
            ['p.yaml:15: counsellors[1].skills[1]: "kdrt" is listed twice'],
            id="skill-twice",
        ),
        pytest.param(
            budi("    religion: Islam\n"),
            [f'p.yaml:15: counsellors[1].religion: {NAME}, got "Islam"'],
            id="religion-not-a-name",
        ),
        pytest.param(
            budi("    timezone: Asia/Sukabumi\n"),
            ['p.yaml:15: counsellors[1].timezone: unknown time zone "Asia/Sukabumi"'],
            id="unknown-timezone",
        ),
        pytest.param(
            budi('    schedule: ["13:00-17:00"]\n'),
            ["p.yaml:15: counsellors[1].schedule: expected a mapping, got a list"],
            id="schedule-as-list",
        ),
        pytest.param(
            budi('    schedule:\n      monday: ["13:00-17:00"]\n'),
            [
                "p.yaml:16: counsellors[1].schedule: unknown key 'monday' "
                f"(expected one of: {DAYS})",
                "p.yaml:15: counsellors[1].schedule: never opens; give at least "
                "one time range",
            ],
            id="schedule-unknown-day",
        ),
        pytest.param(
            budi('    schedule:\n      mon: "13:00-17:00"\n'),
            ["p.yaml:16: counsellors[1].schedule.mon: expected a list, got a string"],
            id="schedule-day-as-string",
        ),
        pytest.param(
            budi('    schedule:\n      mon: ["13-17"]\n'),
            [f'p.yaml:16: counsellors[1].schedule.mon[0]: {TIME_RANGE} "13-17"'],
            id="time-range-without-minutes",
        ),
        pytest.param(
            budi("    schedule:\n      mon: [1300]\n"),
            [f"p.yaml:16: counsellors[1].schedule.mon[0]: {TIME_RANGE} a number"],
            id="time-range-as-number",
        ),
        pytest.param(
            budi('    schedule:\n      mon: ["13:00-25:00"]\n'),
            ['p.yaml:16: counsellors[1].schedule.mon[0]: no such time of day "25:00"'],
            id="time-past-24",
        ),
        pytest.param(
            budi('    schedule:\n      mon: ["13:60-14:00"]\n'),
            ['p.yaml:16: counsellors[1].schedule.mon[0]: no such time of day "13:60"'],
            id="minute-past-59",
        ),
        pytest.param(
            budi('    schedule:\n      mon: ["24:00-02:00"]\n'),
            ['p.yaml:16: counsellors[1].schedule.mon[0]: no such time of day "24:00"'],
            id="start-at-24",
        ),
        pytest.param(
            budi('    schedule:\n      mon: ["13:00-13:00"]\n'),
            [
                "p.yaml:16: counsellors[1].schedule.mon[0]: the range "
                '"13:00-13:00" starts and ends at the same time'
            ],
            id="empty-time-range",
        ),
        pytest.param(
            budi("    schedule:\n      mon: []\n      sun: []\n"),
            [
                "p.yaml:15: counsellors[1].schedule: never opens; give at least "
                "one time range"
            ],
            id="schedule-never-opens",
        ),
        pytest.param(
            budi("    schedule: {}\n"),
            [
                "p.yaml:15: counsellors[1].schedule: never opens; give at least "
                "one time range"
            ],
            id="schedule-empty",
        ),
        pytest.param(
            budi('    leave: ["24-12-2026"]\n'),
            [f'p.yaml:15: counsellors[1].leave[0]: {DATE}, got "24-12-2026"'],
            id="leave-day-first",
        ),
        pytest.param(
            budi("    leave: [2026-02-30]\n"),
            ['p.yaml:15: counsellors[1].leave[0]: no such date "2026-02-30"'],
            id="leave-no-such-date",
        ),
        pytest.param(
            budi('    leave: ["2026-12-26..2026-12-24"]\n'),
            [
                'p.yaml:15: counsellors[1].leave[0]: the range "2026-12-26..'
                '2026-12-24" ends before it starts'
            ],
            id="leave-backwards",
        ),
        pytest.param(
            budi("    leave: 2026-12-25\n"),
            ["p.yaml:15: counsellors[1].leave: expected a list, got a string"],
            id="leave-as-date",
        ),
        pytest.param(
            budi("    leave: [[2026-12-24, 2026-12-26]]\n"),
            [f"p.yaml:15: counsellors[1].leave[0]: {DATE}, got a list"],
            id="leave-as-pair",
        ),
        pytest.param(
            at_end("timezone: Jakarta\n"),
            ['p.yaml:24: timezone: unknown time zone "Jakarta"'],
            id="policy-timezone",
        ),
        pytest.param(
            at_end("service_hours:\n  sun: []\n"),
            ["p.yaml:24: service_hours: never opens; give at least one time range"],
            id="service-never-opens",
        ),
        pytest.param(
            at_end('service_hours:\n  sun: ["7:00-12:00", "19:00-7:00pm"]\n'),
            [f'p.yaml:25: service_hours.sun[1]: {TIME_RANGE} "19:00-7:00pm"'],
            id="service-hours-am-pm",
        ),
        pytest.param(
            at_end("holidays: [25 Desember]\n"),
            [f'p.yaml:24: holidays[0]: {DATE}, got "25 Desember"'],
            id="holiday-in-words",
        ),
        pytest.param(
            at_end('holidays:\n  - 2026-12-25\n  - "2027-01-01..9999-12-31"\n'),
            ["p.yaml:26: holidays[1]: never ends; the service would never open again"],
            id="holiday-for-ever",
        ),
        pytest.param(
            at_end("holidays:\n  - 2026-12-25\n  - 2026-13-01\n"),
            ['p.yaml:26: holidays[1]: no such date "2026-13-01"'],
            id="holiday-no-such-date",
        ),
        pytest.param(
            at_end('pools:\n  piket: ["@joko:kota.test"]\n'),
            ['p.yaml:25: pools.piket[0]: "@joko:kota.test" is not in counsellors'],
            id="pool-stranger",
        ),
        pytest.param(
            at_end("pools:\n  piket: []\n"),
            ["p.yaml:25: pools.piket: must not be empty"],
            id="pool-empty",
        ),
        pytest.param(
            at_end('pools:\n  Piket: ["@rina:kota.test"]\n'),
            [f"p.yaml:25: pools.Piket: {KEY}, got 'Piket'"],
            id="pool-bad-name",
        ),
        pytest.param(
            last_step("      - pools: [piket]\n        timeout: 5m\n"),
            [
                "p.yaml:22: categories.keluarga.route[1].pools[0]: unknown pool "
                '"piket" (the policy has no pools)'
            ],
            id="step-pool-none-defined",
        ),
        pytest.param(
            last_step("      - skills: [kdrt]\n        timeout: 5m\n"),
            [
                "p.yaml:22: categories.keluarga.route[1].skills[0]: no counsellor "
                'has the skill "kdrt"'
            ],
            id="step-skill-nobody-has",
        ),
        pytest.param(
            last_step("      - languages: [en]\n        timeout: 5m\n"),
            [
                "p.yaml:22: categories.keluarga.route[1].languages[0]: no "
                'counsellor speaks "en"'
            ],
            id="step-language-nobody-speaks",
        ),
        pytest.param(
            last_step("      - languages: [EN]\n        timeout: 5m\n"),
            [f'p.yaml:22: categories.keluarga.route[1].languages[0]: {LANGUAGE} "EN"'],
            id="step-language-code",
        ),
        pytest.param(
            last_step("      - genders: [wanita]\n        timeout: 5m\n"),
            [
                "p.yaml:22: categories.keluarga.route[1].genders[0]: expected one "
                'of: perempuan, laki-laki; got "wanita"'
            ],
            id="step-unknown-gender",
        ),
        pytest.param(
            last_step("      - genders: []\n        timeout: 5m\n"),
            ["p.yaml:22: categories.keluarga.route[1].genders: must not be empty"],
            id="step-empty-filter",
        ),
        pytest.param(
            last_step(
                "      - types: [keagamaan]\n        order: acak\n        timeout: 5m\n"
            ),
            [
                "p.yaml:23: categories.keluarga.route[1].order: expected one of: "
                'least_loaded, round_robin, priority, previous; got "acak"'
            ],
            id="step-unknown-order",
        ),
        pytest.param(
            last_step(
                "      - types: [keagamaan]\n        genders: [perempuan]\n"
                "        timeout: 5m\n"
            ),
            [
                "p.yaml:22: categories.keluarga.route[1]: no counsellor matches "
                "this step"
            ],
            id="step-filters-match-nobody",
        ),
    ],
)
def test_bad_times_pools_and_filters(
    tmp_path: Path, change: tuple[str, str], expected: list[str]
) -> None:
    assert problems_of(tmp_path, edit(*change)) == expected


def test_step_names_an_unknown_pool(tmp_path: Path) -> None:
    text = edit(*last_step("      - pools: [piket]\n        timeout: 5m\n"))
    text += 'pools:\n  senior: ["@budi:kota.test"]\n  relawan: ["@rina:kota.test"]\n'

    assert problems_of(tmp_path, text) == [
        "p.yaml:22: categories.keluarga.route[1].pools[0]: unknown pool "
        '"piket" (expected one of: senior, relawan)'
    ]


def test_a_badly_named_pool_is_reported_once(tmp_path: Path) -> None:
    text = edit(*last_step("      - pools: [piket]\n        timeout: 5m\n"))
    text += 'pools:\n  Piket: ["@budi:kota.test"]\n'

    assert problems_of(tmp_path, text) == [
        f"p.yaml:25: pools.Piket: {KEY}, got 'Piket'"
    ]


def test_a_broken_pool_is_not_reported_again_by_the_steps_naming_it(
    tmp_path: Path,
) -> None:
    text = edit(*last_step("      - pools: [piket]\n        timeout: 5m\n"))
    text += 'pools:\n  piket: ["@joko:kota.test"]\n'

    assert problems_of(tmp_path, text) == [
        'p.yaml:25: pools.piket[0]: "@joko:kota.test" is not in counsellors'
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        BASE.replace("gender: perempuan", "gender: wanita")
        .replace("max_open: 2", "max_open: -1")
        .replace("timeout: 5m", "timeout: lima")
    )

    assert problems_of(tmp_path, text) == [
        "p.yaml:8: counsellors[0].gender: expected one of: perempuan, laki-laki; "
        'got "wanita"',
        "p.yaml:14: counsellors[1].max_open: must be at least 1, got -1",
        f'p.yaml:23: categories.keluarga.route[1].timeout: {DURATION} "lima"',
    ]


def test_the_bot_cannot_be_a_counsellor(tmp_path: Path) -> None:
    assert problems_of(tmp_path, BASE, bot_user_id="@rina:kota.test") == [
        'p.yaml:5: counsellors[0].id: "@rina:kota.test" is the bot itself; the '
        "bot cannot be a counsellor"
    ]


def test_a_counsellor_on_another_server_is_refused(tmp_path: Path) -> None:
    text = BASE.replace('"@budi:kota.test"', '"@budi:lain.test"')

    assert problems_of(tmp_path, text, bot_user_id="@sobat:kota.test") == [
        'p.yaml:9: counsellors[1].id: counsellor "@budi:lain.test" is on another '
        "server (lain.test); the bot only brings in users of its own server"
    ]


def test_a_counsellor_on_another_port_is_on_another_server(tmp_path: Path) -> None:
    text = BASE.replace('"@rina:kota.test"', '"@rina:kota.test:8448"', 1)

    assert problems_of(tmp_path, text, bot_user_id="@sobat:kota.test") == [
        'p.yaml:5: counsellors[0].id: counsellor "@rina:kota.test:8448" is on '
        "another server (kota.test:8448); the bot only brings in users of its own "
        "server"
    ]


def test_without_the_bot_id_any_server_is_accepted(tmp_path: Path) -> None:
    text = BASE.replace('"@budi:kota.test"', '"@budi:lain.test"')

    policy = load_policy(write(tmp_path, text))

    assert [c.user_id for c in policy.counsellors] == [
        "@rina:kota.test",
        "@budi:lain.test",
    ]


def test_a_supervisor_cannot_be_a_counsellor(tmp_path: Path) -> None:
    assert problems_of(tmp_path, BASE, supervisors=["@budi:kota.test"]) == [
        'p.yaml:9: counsellors[1].id: "@budi:kota.test" is a supervisor; a '
        "supervisor cannot also be a counsellor"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["p.yaml: the file is empty"]),
        ("- a\n", ["p.yaml:1: expected a mapping, got a list"]),
        (
            "counsellor_types: {}\ncounsellors: []\ncategories: {}\n",
            [
                "p.yaml:1: counsellor_types: must not be empty",
                "p.yaml:2: counsellors: must not be empty",
                "p.yaml:3: categories: must not be empty",
            ],
        ),
    ],
)
def test_bad_document(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems_of(tmp_path, text) == expected


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_policy(tmp_path / "nope.yaml")

    assert str(caught.value) == (
        f"{tmp_path}/nope.yaml: cannot read: No such file or directory"
    )


# A referral category added after keluarga, from line 24.
REFERRAL = """\
  pengaduan:
    label: {id: Pengaduan, en: Complaints}
    referral:
      link: "https://super.kota.test/lapor"
      message: {id: Lewat SUPER., en: Through SUPER.}
"""
SECTIONS = """\
emergency_contacts:
  - {id: "Darurat: 112", en: "Emergency: 112"}
  - SAPA 129
out_of_hours: {id: Hubungi 112 jika darurat., en: Call 112 in an emergency.}
urgent:
  words: [bunuh diri, ingin mati]
  on_call: ["@budi:kota.test"]
  on_call_pools: [piket]
  parallel: 2
  timeout: 90s
queue: {max_waiting: 30, estimate_per_place: 5m, notify_step: 3}
pools: {piket: ["@rina:kota.test", "@budi:kota.test"]}
"""


def test_referral_urgent_queue_and_emergency_contacts_load(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, BASE + REFERRAL + SECTIONS))

    pengaduan = policy.category("pengaduan")
    assert pengaduan is not None
    assert pengaduan.route == ()
    assert pengaduan.referral == Referral(
        "https://super.kota.test/lapor", {"id": "Lewat SUPER.", "en": "Through SUPER."}
    )
    assert pengaduan.referral.message("en") == "Through SUPER."
    assert pengaduan.referral.message("su") == "Lewat SUPER."
    assert not (pengaduan.ask_type or pengaduan.ask_gender or pengaduan.ask_religion)
    assert policy.reachable(pengaduan) == ()
    assert policy.emergency_lines("en") == ["Emergency: 112", "SAPA 129"]
    assert policy.emergency_lines("id") == ["Darurat: 112", "SAPA 129"]
    assert policy.out_of_hours == {
        "id": "Hubungi 112 jika darurat.",
        "en": "Call 112 in an emergency.",
    }
    # Pools expanded after the named, in written order, each person once.
    assert policy.urgent == Urgent(
        ("bunuh diri", "ingin mati"),
        ("@budi:kota.test", "@rina:kota.test"),
        parallel=2,
        timeout_s=90.0,
    )
    assert policy.queue == QueueRules(30, 300.0, 3)


def test_new_sections_are_optional(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, BASE))

    assert policy.emergency_contacts == ()
    assert policy.emergency_lines("id") == []
    assert policy.out_of_hours == {}
    assert policy.urgent is None
    assert policy.queue == QueueRules(None, 600.0, 2)
    assert policy.categories[0].referral is None
    assert (policy.queue.max_rounds, policy.queue.round_pause_s) == (1, 120.0)
    assert policy.queue.join_timeout_s == 900.0


def test_queue_rounds_load(tmp_path: Path) -> None:
    text = BASE + "queue: {max_rounds: 1, round_pause: 30s}\n"

    policy = load_policy(write(tmp_path, text))

    assert policy.queue == QueueRules(None, 600.0, 2, max_rounds=1, round_pause_s=30.0)


def test_queue_join_timeout_loads(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, BASE + "queue: {join_timeout: 20m}\n"))

    assert policy.queue.join_timeout_s == 1200.0


def test_preference_fallback_defaults_to_never(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, BASE))

    keluarga = policy.categories[0]
    assert keluarga.preference_fallback_s is None
    assert policy.preference_fallback_s(keluarga) == NEVER == math.inf


@pytest.mark.parametrize(
    ("queue", "category", "expected"),
    [
        ("20m", None, 1200.0),
        ("never", None, NEVER),
        ("20m", "never", NEVER),
        ("never", "1h", 3600.0),
        (None, "90s", 90.0),
    ],
)
def test_preference_fallback_loads(
    tmp_path: Path, queue: str | None, category: str | None, expected: float
) -> None:
    text = BASE
    if category is not None:
        text = edit(
            "    ask: [type, gender]",
            f"    ask: [type, gender]\n    preference_fallback: {category}",
        )
    if queue is not None:
        text += f"queue: {{preference_fallback: {queue}}}\n"

    policy = load_policy(write(tmp_path, text))

    assert policy.preference_fallback_s(policy.categories[0]) == expected


def test_urgent_defaults(tmp_path: Path) -> None:
    text = BASE + 'urgent: {words: [bunuh diri], on_call: ["@rina:kota.test"]}\n'

    policy = load_policy(write(tmp_path, text))

    assert policy.urgent == Urgent(("bunuh diri",), ("@rina:kota.test",), 1, 180.0)


def test_ask_religion_with_two_religions(tmp_path: Path) -> None:
    text = (
        edit(*budi("    religion: islam\n"))
        .replace(
            "    gender: perempuan\n", "    gender: perempuan\n    religion: kristen\n"
        )
        .replace("    ask: [type, gender]", "    ask: [type, gender, religion]")
    )

    policy = load_policy(write(tmp_path, text))

    keluarga = policy.categories[0]
    assert keluarga.ask_religion and keluarga.ask_type and keluarga.ask_gender


def test_ask_language_with_two_languages(tmp_path: Path) -> None:
    """Rina speaks the default Bahasa Indonesia, Budi Sundanese too."""
    text = edit("    ask: [type, gender]", "    ask: [type, gender, language]")

    policy = load_policy(write(tmp_path, text))

    keluarga = policy.categories[0]
    assert keluarga.ask_language and keluarga.ask_type and keluarga.ask_gender
    assert not load_policy(write(tmp_path, BASE)).categories[0].ask_language


LINK = 'expected a link starting with "https://" or "http://", got'


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            at_end(REFERRAL.replace('"https://super.kota.test/lapor"', "super.test")),
            [f'p.yaml:27: categories.pengaduan.referral.link: {LINK} "super.test"'],
            id="referral-link-without-scheme",
        ),
        pytest.param(
            at_end(REFERRAL.replace("https://super", "ftp://super")),
            [
                "p.yaml:27: categories.pengaduan.referral.link: "
                f'{LINK} "ftp://super.kota.test/lapor"'
            ],
            id="referral-link-ftp",
        ),
        pytest.param(
            at_end(
                REFERRAL.replace(
                    "      message: {id: Lewat SUPER., en: Through SUPER.}\n", ""
                )
            ),
            [
                "p.yaml:26: categories.pengaduan.referral: missing required key "
                "'message'"
            ],
            id="referral-without-message",
        ),
        pytest.param(
            at_end(REFERRAL + "    preference_fallback: 10m\n"),
            [
                "p.yaml:29: categories.pengaduan.preference_fallback: a referral "
                "category asks no preference to fall back from"
            ],
            id="referral-with-preference-fallback",
        ),
        pytest.param(
            at_end(REFERRAL.replace("{id: Lewat SUPER., en", "{en")),
            [
                "p.yaml:28: categories.pengaduan.referral.message: missing the 'id' "
                "(Bahasa Indonesia) text"
            ],
            id="referral-message-without-id",
        ),
        pytest.param(
            at_end(REFERRAL + "      phone: 129\n"),
            [
                "p.yaml:29: categories.pengaduan.referral: unknown key 'phone' "
                "(expected one of: link, message)"
            ],
            id="referral-unknown-key",
        ),
        pytest.param(
            at_end(
                REFERRAL
                + "    route:\n      - types: [psikolog]\n        timeout: 5m\n"
            ),
            [
                "p.yaml:24: categories.pengaduan: has both a route and a referral; "
                "give only one"
            ],
            id="referral-and-route",
        ),
        pytest.param(
            at_end(REFERRAL + "    ask: [gender]\n"),
            [
                "p.yaml:29: categories.pengaduan.ask: a referral category cannot ask "
                "for a preference"
            ],
            id="referral-with-ask",
        ),
        pytest.param(
            at_end("  pengaduan:\n    label: Pengaduan\n"),
            ["p.yaml:24: categories.pengaduan: needs a route or a referral; give one"],
            id="neither-route-nor-referral",
        ),
        pytest.param(
            at_end("emergency_contacts: []\n"),
            ["p.yaml:24: emergency_contacts: must not be empty"],
            id="emergency-contacts-empty",
        ),
        pytest.param(
            at_end("emergency_contacts: 112\n"),
            ["p.yaml:24: emergency_contacts: expected a list, got a number"],
            id="emergency-contacts-number",
        ),
        pytest.param(
            at_end("emergency_contacts:\n  - {en: 'Emergency: 112'}\n"),
            [
                "p.yaml:25: emergency_contacts[0]: missing the 'id' (Bahasa "
                "Indonesia) text"
            ],
            id="emergency-contact-without-id",
        ),
        pytest.param(
            at_end("out_of_hours: [Hubungi 112]\n"),
            [
                "p.yaml:24: out_of_hours: expected a string or a mapping of language "
                "to text, got a list"
            ],
            id="out-of-hours-list",
        ),
        pytest.param(
            at_end('urgent: {on_call: ["@rina:kota.test"]}\n'),
            ["p.yaml:24: urgent: missing required key 'words'"],
            id="urgent-without-words",
        ),
        pytest.param(
            at_end('urgent: {words: [], on_call: ["@rina:kota.test"]}\n'),
            ["p.yaml:24: urgent.words: must not be empty"],
            id="urgent-words-empty",
        ),
        pytest.param(
            at_end('urgent: {words: [mati, " "], on_call: ["@rina:kota.test"]}\n'),
            ["p.yaml:24: urgent.words[1]: must not be empty"],
            id="urgent-word-blank",
        ),
        pytest.param(
            at_end('urgent: {words: ["!!!"], on_call: ["@rina:kota.test"]}\n'),
            ['p.yaml:24: urgent.words[0]: "!!!" has no letters or digits to look for'],
            id="urgent-word-without-letters",
        ),
        pytest.param(
            at_end('urgent: {words: [mati, mati], on_call: ["@rina:kota.test"]}\n'),
            ['p.yaml:24: urgent.words[1]: "mati" is listed twice'],
            id="urgent-word-twice",
        ),
        pytest.param(
            at_end("urgent: {words: [mati]}\n"),
            [
                "p.yaml:24: urgent: give on_call or on_call_pools: the counsellors "
                "who answer an urgent curhat"
            ],
            id="urgent-without-on-call",
        ),
        pytest.param(
            at_end('urgent:\n  words: [mati]\n  on_call: ["@joko:kota.test"]\n'),
            ['p.yaml:26: urgent.on_call[0]: "@joko:kota.test" is not in counsellors'],
            id="urgent-on-call-stranger",
        ),
        pytest.param(
            at_end("urgent:\n  words: [mati]\n  on_call_pools: [piket]\n"),
            [
                'p.yaml:26: urgent.on_call_pools[0]: unknown pool "piket" (the '
                "policy has no pools)"
            ],
            id="urgent-unknown-pool",
        ),
        pytest.param(
            at_end(
                'urgent:\n  words: [mati]\n  on_call: ["@rina:kota.test"]\n'
                "  parallel: 0\n"
            ),
            ["p.yaml:27: urgent.parallel: must be at least 1, got 0"],
            id="urgent-parallel-zero",
        ),
        pytest.param(
            at_end(
                'urgent:\n  words: [mati]\n  on_call: ["@rina:kota.test"]\n'
                "  timeout: tiga menit\n"
            ),
            [f'p.yaml:27: urgent.timeout: {DURATION} "tiga menit"'],
            id="urgent-timeout-words",
        ),
        pytest.param(
            at_end(
                'urgent:\n  words: [mati]\n  on_call: ["@rina:kota.test"]\n'
                "  paralel: 2\n"
            ),
            [
                "p.yaml:27: urgent: unknown key 'paralel' (expected one of: words, "
                "on_call, on_call_pools, parallel, timeout)"
            ],
            id="urgent-unknown-key",
        ),
        pytest.param(
            at_end("queue: {max_waiting: 0}\n"),
            ["p.yaml:24: queue.max_waiting: must be at least 1, got 0"],
            id="queue-max-waiting-zero",
        ),
        pytest.param(
            at_end("queue: {notify_step: 0}\n"),
            ["p.yaml:24: queue.notify_step: must be at least 1, got 0"],
            id="queue-notify-step-zero",
        ),
        pytest.param(
            at_end("queue: {estimate_per_place: 10}\n"),
            [
                "p.yaml:24: queue.estimate_per_place: "
                f'{DURATION} "10" without a unit (s, m, h or d)'
            ],
            id="queue-estimate-bare-number",
        ),
        pytest.param(
            at_end("queue: {max_rounds: 0}\n"),
            ["p.yaml:24: queue.max_rounds: must be at least 1, got 0"],
            id="queue-max-rounds-zero",
        ),
        pytest.param(
            at_end("queue: {round_pause: 2}\n"),
            [
                "p.yaml:24: queue.round_pause: "
                f'{DURATION} "2" without a unit (s, m, h or d)'
            ],
            id="queue-round-pause-bare-number",
        ),
        pytest.param(
            at_end("queue: {preference_fallback: tidak}\n"),
            [f'p.yaml:24: queue.preference_fallback: {DURATION} "tidak"'],
            id="queue-preference-fallback-word",
        ),
        pytest.param(
            (
                "    ask: [type, gender]",
                "    ask: [type, gender]\n    preference_fallback: 15",
            ),
            [
                "p.yaml:19: categories.keluarga.preference_fallback: "
                f'{DURATION} "15" without a unit (s, m, h or d)'
            ],
            id="category-preference-fallback-bare-number",
        ),
        pytest.param(
            at_end("queue: {join_timeout: lima belas menit}\n"),
            [f'p.yaml:24: queue.join_timeout: {DURATION} "lima belas menit"'],
            id="queue-join-timeout-words",
        ),
        pytest.param(
            at_end("queue: {max_waiting: banyak}\n"),
            ["p.yaml:24: queue.max_waiting: expected an integer, got a string"],
            id="queue-max-waiting-word",
        ),
        pytest.param(
            at_end("queue: {limit: 30}\n"),
            [
                "p.yaml:24: queue: unknown key 'limit' (expected one of: "
                "max_waiting, estimate_per_place, notify_step, max_rounds, "
                "round_pause, join_timeout, preference_fallback)"
            ],
            id="queue-unknown-key",
        ),
        pytest.param(
            ("    ask: [type, gender]", "    ask: [type, gender, religion]"),
            [
                "p.yaml:18: categories.keluarga.ask: asks for a religion preference "
                "but its route offers fewer than two religions"
            ],
            id="ask-religion-none",
        ),
    ],
)
def test_bad_referral_urgent_queue_and_contacts(
    tmp_path: Path, change: tuple[str, str], expected: list[str]
) -> None:
    assert problems_of(tmp_path, edit(*change)) == expected


def test_ask_religion_with_one_religion(tmp_path: Path) -> None:
    text = edit(*budi("    religion: islam\n")).replace(
        "    ask: [type, gender]", "    ask: [type, gender, religion]"
    )

    assert problems_of(tmp_path, text) == [
        "p.yaml:19: categories.keluarga.ask: asks for a religion preference but "
        "its route offers fewer than two religions"
    ]
