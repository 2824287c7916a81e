"""Tests for the routing policy loader: the shipped sample and every kind of mistake."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from sobat_matrix.errors import ConfigError
from sobat_matrix.policy import Counsellor, RouteStep, load_policy

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

    assert [c.key for c in policy.categories] == ["keluarga", "sosial", "ekonomi"]
    assert [c.user_id for c in policy.counsellors] == [
        "@rina:sukabumi.test",
        "@budi:sukabumi.test",
        "@siti:sukabumi.test",
        "@ahmad:sukabumi.test",
    ]
    asks = [(c.ask_type, c.ask_gender) for c in policy.categories]
    assert asks == [(True, True), (False, True), (False, False)]
    for category in policy.categories:
        assert category.label("id") and category.label("en")
        assert category.description("id") and category.description("en")
        assert all(step.timeout_s >= 60 for step in category.route)


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
                "counsellor_types, counsellors, categories)"
            ],
            id="unknown-top-key",
        ),
        pytest.param(
            "    name: Ibu Rina",
            "    nama: Ibu Rina",
            [
                "p.yaml:6: counsellors[0]: unknown key 'nama' (expected one of: "
                "id, name, types, gender, languages, max_open)",
                "p.yaml:5: counsellors[0]: missing required key 'name'",
            ],
            id="unknown-counsellor-key",
        ),
        pytest.param(
            "        timeout: 5m",
            "        timout: 5m",
            [
                "p.yaml:23: categories.keluarga.route[1]: unknown key 'timout' "
                "(expected one of: types, counsellors, timeout)",
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
                "of: label, description, ask, route)"
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
                "p.yaml:22: categories.keluarga.route[1]: a step needs 'types', "
                "'counsellors' or both"
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
            "    ask: [type, gender]",
            "    ask: [type, umur]",
            [
                "p.yaml:18: categories.keluarga.ask[1]: expected one of: type, "
                'gender; got "umur"'
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
            "  keluarga:",
            "  Keluarga:",
            [f"p.yaml:16: categories.Keluarga: {KEY}, got 'Keluarga'"],
            id="bad-category-key",
        ),
    ],
)
def test_bad_policy(tmp_path: Path, old: str, new: str, expected: list[str]) -> None:
    assert problems_of(tmp_path, edit(old, new)) == expected


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
