"""Tests for line-aware YAML loading, durations and the Problems collector."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sobat_matrix.errors import ConfigError
from sobat_matrix.yamlsrc import (
    KEY_NAME,
    Node,
    Problems,
    YamlList,
    YamlMap,
    key_line_of,
    line_of,
    load_yaml,
    parse_duration,
    parse_yaml,
)

DURATION = 'expected a duration like "10m" or "1h30m", got'
NO_UNIT = "without a unit (s, m, h or d)"


def messages(error: ConfigError) -> list[str]:
    return [str(p) for p in error.problems]


def test_mappings_and_lists_remember_lines() -> None:
    data = parse_yaml(
        "a:\n  b: 1\n  c: [x, y]\n  d:\n    - 1\n    - k: v\ne: text\n", "t.yaml"
    )

    assert isinstance(data, YamlMap)
    assert data.line == 1
    assert key_line_of(data, "e") == 7
    assert line_of(data, "e") == 7
    assert line_of(data["a"]) == 2
    assert line_of(data["a"], "c") == 3
    assert isinstance(data["a"]["d"], YamlList)
    assert data["a"]["d"].item_lines == [5, 6]
    assert line_of(data["a"]["d"], 1) == 6
    assert line_of(data["a"]["d"], 9) is None
    assert line_of({"plain": 1}, "plain") is None
    assert data == {"a": {"b": 1, "c": ["x", "y"], "d": [1, {"k": "v"}]}, "e": "text"}


def test_value_on_the_next_line_has_its_own_line() -> None:
    data = parse_yaml("route:\n  - timeout: 10m\n", "t.yaml")

    assert key_line_of(data, "route") == 1
    assert line_of(data, "route") == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v: no", "no"),
        ("v: yes", "yes"),
        ("v: off", "off"),
        ("v: true", True),
        ("v: false", False),
        ("v: 7:30", "7:30"),
        ("v: 010", "010"),
        ("v: 10", 10),
        ("v: -3", -3),
        ("v: 1.5", 1.5),
        ("v: 10m", "10m"),
        ("v: ~", None),
    ],
)
def test_scalars_follow_yaml_1_2_not_1_1(text: str, expected: object) -> None:
    assert parse_yaml(text, "t.yaml")["v"] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a: 1\nb: 2\na: 3\n",
            ["t.yaml:3: duplicate key 'a' (first at line 1)"],
        ),
        (
            "a:\n  x: 1\n  x: 2\nb:\n  - y: 1\n    y: 2\n",
            [
                "t.yaml:3: duplicate key 'x' (first at line 2)",
                "t.yaml:6: duplicate key 'y' (first at line 5)",
            ],
        ),
        ("a:\n\tb: 1\n", ["t.yaml:2: tab character; YAML needs spaces here, not tabs"]),
        ("a:\tb\n", ["t.yaml:1: tab character; YAML needs spaces here, not tabs"]),
        ('x: 1\na: "abc\nb: 2\n', ["t.yaml:2: unclosed quote"]),
        ("x: 1\na: 'abc\nb: 2\n", ["t.yaml:2: unclosed quote"]),
        ("a:\n  b: 1\n c: 2\n", ["t.yaml:3: bad indentation"]),
        (
            "a: 1\n  b: 2\n",
            [
                "t.yaml:2: unexpected ':'; check the indentation, or quote a value "
                "that contains ': '"
            ],
        ),
        (
            "a: 1\n---\nb: 2\n",
            ["t.yaml:2: a second YAML document ('---'); expected only one"],
        ),
        (
            "? [1]\n: 2\n",
            ["t.yaml:1: a key must be a plain value, not a list or a mapping"],
        ),
        (
            "a: [1, 2\nb: 3\n",
            [
                "t.yaml:2: invalid YAML: while parsing a flow sequence, expected "
                "',' or ']', but got ':'"
            ],
        ),
    ],
)
def test_syntax_errors_are_short_and_located(text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, "t.yaml")

    assert messages(caught.value) == expected
    assert "Traceback" not in str(caught.value)


def test_merge_keys_may_override_without_being_duplicates() -> None:
    data = parse_yaml("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  x: 3\n", "t.yaml")

    assert data["m"] == {"x": 3, "y": 2}
    assert key_line_of(data["m"], "x") == 4


def test_load_yaml_reports_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_yaml(missing)
    assert messages(caught.value) == [
        f"{missing}: cannot read: No such file or directory"
    ]

    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml(binary)
    assert messages(caught.value) == [f"{binary}: not UTF-8 text"]


def test_empty_file_loads_as_none(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# only a comment\n", encoding="utf-8")

    assert load_yaml(empty) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s", 93784.0),
        ("90m", 5400.0),
        ("0h5m", 300.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sepuluh menit", f'{DURATION} "sepuluh menit"'),
        ("10", f'{DURATION} "10" {NO_UNIT}'),
        ("-10", f'{DURATION} "-10" {NO_UNIT}'),
        ("1.5", f'{DURATION} "1.5" {NO_UNIT}'),
        ("-10m", f'{DURATION} "-10m"'),
        ("0m", 'expected a duration longer than zero, got "0m"'),
        ("0h0m", 'expected a duration longer than zero, got "0h0m"'),
        ("", f'{DURATION} ""'),
        ("10 m", f'{DURATION} "10 m"'),
        ("10M", f'{DURATION} "10M"'),
        ("30m1h", f'{DURATION} "30m1h"'),
        ("10m10m", f'{DURATION} "10m10m"'),
        ("1.5h", f'{DURATION} "1.5h"'),
    ],
)
def test_parse_duration_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)

    assert str(caught.value) == message


def check(text: str, validate: Callable[[Problems, Node], None]) -> list[str]:
    """Run ``validate(problems, root_node)`` over ``text``; return the messages."""
    problems = Problems("t.yaml")
    validate(problems, Node.root(parse_yaml(text, "t.yaml")))
    return [str(p) for p in problems.items]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\nb: 2\n", []),
        (
            "a: 1\nzzz: 2\n",
            [
                "t.yaml:2: unknown key 'zzz' (expected one of: a, b)",
                "t.yaml: missing required key 'b'",
            ],
        ),
        ("- 1\n", ["t.yaml:1: expected a mapping, got a list"]),
        ("", ["t.yaml: the file is empty"]),
    ],
)
def test_mapping_checks_keys(text: str, expected: list[str]) -> None:
    def validate(problems: Problems, root: Node) -> None:
        problems.mapping(root, ("a", "b"), required=("a", "b"))

    assert check(text, validate) == expected


def test_missing_key_is_reported_at_the_parent_key() -> None:
    def validate(problems: Problems, root: Node) -> None:
        problems.mapping(root.child("outer"), ("inner",), required=("inner",))
        for item in root.child("items").elements():
            problems.mapping(item, ("id",), required=("id",))

    text = "outer:\n  other: 1\nitems:\n  - name: x\n"
    assert check(text, validate) == [
        "t.yaml:2: outer: unknown key 'other' (expected one of: inner)",
        "t.yaml:1: outer: missing required key 'inner'",
        "t.yaml:4: items[0]: unknown key 'name' (expected one of: id)",
        "t.yaml:4: items[0]: missing required key 'id'",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v: [a, b]\n", []),
        ("v: a\n", ["t.yaml:1: v: expected a list, got a string"]),
        ("v: []\n", ["t.yaml:1: v: must not be empty"]),
        (
            "v: [a, 3, a]\n",
            [
                "t.yaml:1: v[1]: expected a string, got a number",
                't.yaml:1: v[2]: "a" is listed twice',
            ],
        ),
        ("v:\n  - a\n  - ''\n", ["t.yaml:3: v[1]: must not be empty"]),
    ],
)
def test_string_list(text: str, expected: list[str]) -> None:
    def validate(problems: Problems, root: Node) -> None:
        problems.string_list(root.child("v"), non_empty=True)

    assert check(text, validate) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v: 3\n", []),
        ("v: 0\n", ["t.yaml:1: v: must be at least 1, got 0"]),
        ("v: '3'\n", ["t.yaml:1: v: expected an integer, got a string"]),
        ("v: true\n", ["t.yaml:1: v: expected an integer, got true/false"]),
        ("v: 1.5\n", ["t.yaml:1: v: expected an integer, got a number"]),
        ("v:\n", ["t.yaml:1: v: expected an integer, got nothing"]),
    ],
)
def test_integer(text: str, expected: list[str]) -> None:
    def validate(problems: Problems, root: Node) -> None:
        problems.integer(root.child("v"), minimum=1)

    assert check(text, validate) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v: 10m\n", []),
        ("v: 10\n", [f't.yaml:1: v: {DURATION} "10" {NO_UNIT}']),
        ("v: [10m]\n", [f"t.yaml:1: v: {DURATION} a list"]),
    ],
)
def test_duration(text: str, expected: list[str]) -> None:
    def validate(problems: Problems, root: Node) -> None:
        problems.duration(root.child("v"))

    assert check(text, validate) == expected


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("@rina:sukabumi.test", True),
        ("@a.b_c=d/e+f-g:example.org:8448", True),
        ("@Rina:sukabumi.test", False),
        ("rina:sukabumi.test", False),
        ("@rina", False),
        ("@rina:", False),
        ("@ri na:example.org", False),
    ],
)
def test_user_id(value: str, ok: bool) -> None:
    problems = Problems("t.yaml")

    result = problems.user_id(Node(value, "id", 1))

    assert (result == value) is ok
    wanted = 'expected a Matrix user ID like "@rina:example.org"'
    expected = [] if ok else [f't.yaml:1: id: {wanted}, got "{value}"']
    assert [str(p) for p in problems.items] == expected


def test_entries_checks_key_names() -> None:
    def validate(problems: Problems, root: Node) -> None:
        problems.entries(root.child("v"))

    assert check("v:\n  good_1: x\n  Bad-Key: y\n", validate) == [
        "t.yaml:3: v.Bad-Key: expected a key of lowercase letters, digits and '_' "
        "starting with a letter, got 'Bad-Key'"
    ]
    assert check("v: {}\n", validate) == ["t.yaml:1: v: must not be empty"]
    assert KEY_NAME.fullmatch("keluarga")


def test_raise_if_any_carries_every_problem() -> None:
    problems = Problems(Path("p.yaml"))
    problems.raise_if_any()
    problems.add(Node(1, "a.b", 3), "first")
    problems.add(Node(2, "c", None), "second")

    with pytest.raises(ConfigError) as caught:
        problems.raise_if_any()

    assert str(caught.value) == "p.yaml:3: a.b: first\np.yaml: c: second"
