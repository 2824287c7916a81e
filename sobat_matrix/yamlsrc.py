"""YAML that remembers where each value came from, and the helpers to validate it.

Operators edit the policy and the config by hand, so every problem we report names
the file, the line and the YAML path of the offending key or value. PyYAML's plain
loaders forget lines once they build Python objects, so this module builds
:class:`YamlMap` and :class:`YamlList` instead: ordinary ``dict`` and ``list``
subclasses that also carry the 1-based line of the container, of each key and of
each value.

The loader departs from PyYAML's YAML 1.1 defaults in two places, both on purpose:

* Only ``true`` and ``false`` are booleans. In YAML 1.1 ``no``, ``yes``, ``on`` and
  ``off`` are booleans too, which silently turns ``admin_join: no`` or a language
  list such as ``[id, no]`` into ``False``.
* Integers are plain decimals. YAML 1.1 reads ``7:30`` as the sexagesimal number 450
  and ``010`` as octal 8; a time of day or a padded number must not change meaning.
* Dates stay strings. PyYAML turns ``2026-12-25`` into a date but fails on
  ``2026-02-30`` with a bare ``ValueError`` that names no line; validators parse
  dates themselves (:func:`parse_date_range`) and report bad ones like any value.

Duplicate keys, which PyYAML accepts silently (the last one wins), are reported.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from sobat_matrix.errors import ConfigError, Problem

logger = logging.getLogger(__name__)

MATRIX_USER_ID = re.compile(r"@[a-z0-9._=/+-]+:[A-Za-z0-9.-]+(:\d+)?")
SERVER_NAME = re.compile(r"[A-Za-z0-9.-]+(:\d+)?")
KEY_NAME = re.compile(r"[a-z][a-z0-9_]*")

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_BARE_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_UNIT_SECONDS = (86400, 3600, 60, 1)
_TIME_RANGE = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")
_DATE_RANGE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:\.\.(\d{4}-\d{2}-\d{2}))?")


class YamlMap(dict[Any, Any]):
    """A YAML mapping, in file order, with the line of itself, its keys and values."""

    def __init__(self, line: int | None = None) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}
        self.value_lines: dict[Any, int] = {}


class YamlList(list[Any]):
    """A YAML sequence with the line of itself and of each item."""

    def __init__(self, line: int | None = None) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


def line_of(container: Any, key_or_index: Hashable | None = None) -> int | None:
    """The line of a value: the container itself, or one of its values or items.

    Returns ``None`` for anything that did not come from :func:`load_yaml`, so
    validators can use it on defaults without a special case.
    """
    if key_or_index is None:
        return getattr(container, "line", None)
    if isinstance(container, YamlMap):
        return container.value_lines.get(key_or_index)
    if isinstance(container, YamlList) and isinstance(key_or_index, int):
        if 0 <= key_or_index < len(container.item_lines):
            return container.item_lines[key_or_index]
    return None


def key_line_of(mapping: Any, key: Hashable) -> int | None:
    """The line where ``key`` is written in ``mapping``, or ``None``."""
    if isinstance(mapping, YamlMap):
        return mapping.key_lines.get(key)
    return None


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader building :class:`YamlMap` and :class:`YamlList`."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, str]] = []


def _construct_map(loader: _Loader, node: MappingNode) -> Iterator[YamlMap]:
    data = YamlMap(_line(node))

    # Yield first, then fill: this is how PyYAML lets an anchor refer to a
    # container that is still being built.
    yield data

    # Duplicates are checked on the keys as written, before merge keys (<<) pull in
    # the keys of another mapping, which a mapping may legitimately override.
    first_lines: dict[Any, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag.endswith(":merge"):
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in first_lines:
            loader.duplicates.append(
                (
                    _line(key_node),
                    f"duplicate key {key!r} (first at line {first_lines[key]})",
                )
            )
        else:
            first_lines[key] = _line(key_node)

    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "found unhashable key", key_node.start_mark
            )
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = _line(key_node)
        data.value_lines[key] = _line(value_node)


def _construct_list(loader: _Loader, node: SequenceNode) -> Iterator[YamlList]:
    data = YamlList(_line(node))
    yield data
    for item_node in node.value:
        data.append(loader.construct_object(item_node, deep=True))
        data.item_lines.append(_line(item_node))


def _resolvers_without(*tags: str) -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    """SafeLoader's implicit resolvers minus the ones for ``tags``."""
    kept: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items():
        kept[first] = [(tag, regex) for tag, regex in resolvers if tag not in tags]
    return kept


_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"

_Loader.yaml_implicit_resolvers = _resolvers_without(
    _BOOL_TAG, _INT_TAG, _FLOAT_TAG, _TIMESTAMP_TAG
)
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    _INT_TAG, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_list)


def _syntax_problem(file: str, error: yaml.MarkedYAMLError) -> Problem:
    """Turn PyYAML's parser wording into one short line an operator can act on."""
    problem = error.problem or ""
    context = error.context or ""
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark is not None else None

    if "'\\t'" in problem:
        message = "tab character; YAML needs spaces here, not tabs"
    elif context.startswith("while scanning a quoted scalar"):
        # The scanner fails where the file ends; the quote that was never closed
        # is where the operator has to look.
        if error.context_mark is not None:
            line = error.context_mark.line + 1
        message = "unclosed quote"
    elif problem.startswith("expected <block end>"):
        message = "bad indentation"
    elif problem == "mapping values are not allowed here":
        message = (
            "unexpected ':'; check the indentation, or quote a value that contains ': '"
        )
    elif context.startswith("expected a single document"):
        message = "a second YAML document ('---'); expected only one"
    elif problem == "found unhashable key":
        message = "a key must be a plain value, not a list or a mapping"
    elif context:
        message = f"invalid YAML: {context}, {problem}"
    else:
        message = f"invalid YAML: {problem}"
    return Problem(file, line, "", message)


def parse_yaml(text: str, file: str) -> Any:
    """Parse ``text`` into :class:`YamlMap`, :class:`YamlList` and scalars.

    ``file`` is only used to name the source in problems. Raises
    :class:`ConfigError` for syntax errors and duplicate keys.
    """
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        raise ConfigError([_syntax_problem(file, error)]) from error
    except yaml.YAMLError as error:
        raise ConfigError(
            [Problem(file, None, "", f"invalid YAML: {error}")]
        ) from error
    finally:
        loader.dispose()

    if loader.duplicates:
        raise ConfigError([Problem(file, ln, "", msg) for ln, msg in loader.duplicates])
    return data


def load_yaml(path: Path) -> Any:
    """Read and parse one YAML file; every failure is a :class:`ConfigError`."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError([Problem(file, None, "", "not UTF-8 text")]) from error
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(
            [Problem(file, None, "", f"cannot read: {reason}")]
        ) from error
    return parse_yaml(text, file)


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``"30s"``, ``"10m"`` or ``"1h30m"``.

    Units are ``d``, ``h``, ``m`` and ``s``, largest first, each at most once. A bare
    number is refused because nobody can tell whether ``10`` meant seconds or minutes.
    Raises :class:`ValueError` with a message fit for an operator.
    """
    if _BARE_NUMBER.fullmatch(text):
        raise ValueError(
            f'expected a duration like "10m" or "1h30m", got "{text}" without a '
            "unit (s, m, h or d)"
        )

    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f'expected a duration like "10m" or "1h30m", got "{text}"')

    seconds = sum(
        int(amount) * unit
        for amount, unit in zip(match.groups(), _UNIT_SECONDS, strict=True)
        if amount is not None
    )
    if seconds <= 0:
        raise ValueError(f'expected a duration longer than zero, got "{text}"')
    return float(seconds)


def parse_time_range(text: str) -> tuple[int, int]:
    """Minutes after midnight at which ``"HH:MM-HH:MM"`` starts and ends.

    The end may be ``24:00``. An end earlier than the start means the range runs
    past midnight into the next day; the caller decides what that means. Raises
    :class:`ValueError` with a message fit for an operator.
    """
    match = _TIME_RANGE.fullmatch(text)
    if match is None:
        raise ValueError(f'expected a time range like "13:00-17:00", got "{text}"')

    start_h, start_m, end_h, end_m = (int(group) for group in match.groups())
    for hour, minute, latest in ((start_h, start_m, 23), (end_h, end_m, 24)):
        if hour > latest or minute > 59 or (hour == 24 and minute):
            raise ValueError(f'no such time of day "{hour:02}:{minute:02}"')

    start = start_h * 60 + start_m
    end = end_h * 60 + end_m
    if start == end:
        raise ValueError(f'the range "{text}" starts and ends at the same time')
    return start, end


def parse_date_range(text: str) -> tuple[date, date]:
    """The first and last day of ``"2026-12-25"`` or ``"2026-12-24..2026-12-26"``.

    Both days are included; a single date is a range of one day. Raises
    :class:`ValueError` with a message fit for an operator.
    """
    match = _DATE_RANGE.fullmatch(text)
    if match is None:
        raise ValueError(
            'expected a date like "2026-12-25" or a range like '
            f'"2026-12-24..2026-12-26", got "{text}"'
        )

    days = []
    for written in match.groups():
        if written is None:
            continue
        try:
            days.append(date.fromisoformat(written))
        except ValueError:
            raise ValueError(f'no such date "{written}"') from None
    first, last = days[0], days[-1]
    if last < first:
        raise ValueError(f'the range "{text}" ends before it starts')
    return first, last


def describe(value: Any) -> str:
    """What kind of value this is, in words, for "expected X, got Y" messages."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, date):
        return "a date"
    return type(value).__name__


def join_path(parent: str, key: Hashable) -> str:
    """The YAML path of a child: ``a.b`` for a key, ``a[0]`` for an item."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


@dataclass(frozen=True)
class Node:
    """A value from a YAML file together with where it is.

    ``line`` is the line of the value; ``key_line`` is the line of the key that
    holds it (``None`` for list items and the document), which is where a missing
    key is reported.
    """

    value: Any
    path: str = ""
    line: int | None = None
    key_line: int | None = None

    @classmethod
    def root(cls, data: Any) -> Node:
        return cls(data, "", line_of(data))

    def child(self, key: Hashable) -> Node:
        """The value under ``key`` (or list index); its value is ``None`` if absent."""
        container = self.value
        if isinstance(container, dict):
            value = container.get(key)
        elif isinstance(container, list) and isinstance(key, int):
            value = container[key] if 0 <= key < len(container) else None
        else:
            value = None
        return Node(
            value,
            join_path(self.path, key),
            line_of(container, key) or self.line,
            key_line_of(container, key),
        )

    def has(self, key: Hashable) -> bool:
        return isinstance(self.value, dict) and key in self.value

    def items(self) -> Iterator[tuple[Any, Node]]:
        """Keys and child nodes of a mapping, in file order."""
        for key in self.value:
            yield key, self.child(key)

    def elements(self) -> Iterator[Node]:
        """Child nodes of a list, in file order."""
        for index in range(len(self.value)):
            yield self.child(index)

    @property
    def anchor_line(self) -> int | None:
        """Where to report something missing inside this value."""
        if self.key_line is not None:
            return self.key_line
        return self.line if self.path else None


class Problems:
    """Collects every problem in one file, so the operator sees them all at once.

    The typed getters check one value, record a problem and return ``None`` when it
    is wrong, so a validator can carry on and find the next problem.
    """

    def __init__(self, file: str | Path) -> None:
        self.file = str(file)
        self.items: list[Problem] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, node: Node, message: str) -> None:
        """Record a problem with the value of ``node``, at the value's line."""
        self.items.append(Problem(self.file, node.line, node.path, message))

    def add_at(self, line: int | None, node: Node, message: str) -> None:
        """Record a problem with ``node`` at another line (its key, its parent)."""
        self.items.append(Problem(self.file, line, node.path, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items)

    def mapping(
        self, node: Node, keys: Sequence[str], *, required: Collection[str] = ()
    ) -> dict[Any, Any] | None:
        """Check ``node`` is a mapping with all ``required`` keys and only ``keys``."""
        if not isinstance(node.value, dict):
            self._not_a(node, "a mapping")
            return None

        for key in node.value:
            if key not in keys:
                self.add_at(
                    key_line_of(node.value, key),
                    node,
                    f"unknown key {key!r} (expected one of: {', '.join(keys)})",
                )
        for key in required:
            if key not in node.value:
                self.add_at(node.anchor_line, node, f"missing required key {key!r}")
        return node.value

    def entries(
        self, node: Node, *, key_pattern: re.Pattern[str] = KEY_NAME
    ) -> list[tuple[str, Node]] | None:
        """Check ``node`` is a non-empty mapping whose keys are names of our own.

        Used where the operator chooses the keys (category keys, counsellor types);
        returns the well-named entries in file order.
        """
        if not isinstance(node.value, dict):
            self._not_a(node, "a mapping")
            return None
        if not node.value:
            self.add(node, "must not be empty")
            return None

        good: list[tuple[str, Node]] = []
        for key, child in node.items():
            if not isinstance(key, str) or not key_pattern.fullmatch(key):
                self.add_at(
                    child.key_line,
                    child,
                    "expected a key of lowercase letters, digits and '_' starting "
                    f"with a letter, got {key!r}",
                )
                continue
            good.append((key, child))
        return good

    def _not_a(self, node: Node, expected: str) -> None:
        if node.value is None and not node.path:
            self.add(node, "the file is empty")
        else:
            self.add(node, f"expected {expected}, got {describe(node.value)}")

    def sequence(self, node: Node, *, non_empty: bool = False) -> list[Any] | None:
        """Check ``node`` is a list, optionally with at least one item."""
        if not isinstance(node.value, list):
            self.add(node, f"expected a list, got {describe(node.value)}")
            return None
        if non_empty and not node.value:
            self.add(node, "must not be empty")
            return None
        return node.value

    def string(self, node: Node) -> str | None:
        """Check ``node`` is a non-blank string."""
        if not isinstance(node.value, str):
            self.add(node, f"expected a string, got {describe(node.value)}")
            return None
        if not node.value.strip():
            self.add(node, "must not be empty")
            return None
        return node.value

    def integer(self, node: Node, *, minimum: int | None = None) -> int | None:
        """Check ``node`` is an integer (not a boolean), at least ``minimum``."""
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(node, f"expected an integer, got {describe(value)}")
            return None
        if minimum is not None and value < minimum:
            self.add(node, f"must be at least {minimum}, got {value}")
            return None
        return value

    def choice(self, node: Node, options: Collection[str]) -> str | None:
        """Check ``node`` is one of ``options``."""
        value = self.string(node)
        if value is None:
            return None
        if value not in options:
            self.add(node, f'expected one of: {", ".join(options)}; got "{value}"')
            return None
        return value

    def matching(
        self, node: Node, pattern: re.Pattern[str], expected: str
    ) -> str | None:
        """Check ``node`` is a string matching ``pattern``; ``expected`` says how."""
        value = self.string(node)
        if value is None:
            return None
        if not pattern.fullmatch(value):
            self.add(node, f'expected {expected}, got "{value}"')
            return None
        return value

    def user_id(self, node: Node) -> str | None:
        """Check ``node`` is a Matrix user ID with a lowercase localpart."""
        return self.matching(
            node, MATRIX_USER_ID, 'a Matrix user ID like "@rina:example.org"'
        )

    def duration(self, node: Node) -> float | None:
        """Check ``node`` is a duration and return it in seconds."""
        value = node.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            self.add(
                node,
                f'expected a duration like "10m" or "1h30m", got {describe(value)}',
            )
            return None
        try:
            return parse_duration(value)
        except ValueError as error:
            self.add(node, str(error))
            return None

    def timezone(self, node: Node) -> ZoneInfo | None:
        """Check ``node`` names an IANA time zone such as ``Asia/Jakarta``."""
        name = self.string(node)
        if name is None:
            return None
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.add(node, f'unknown time zone "{name}"')
            return None

    def time_range(self, node: Node) -> tuple[int, int] | None:
        """Check ``node`` is ``"HH:MM-HH:MM"``; see :func:`parse_time_range`."""
        return self._parsed(node, parse_time_range, 'a time range like "13:00-17:00"')

    def date_range(self, node: Node) -> tuple[date, date] | None:
        """Check ``node`` is a date or a date range; see :func:`parse_date_range`."""
        return self._parsed(
            node,
            parse_date_range,
            'a date like "2026-12-25" or a range like "2026-12-24..2026-12-26"',
        )

    def _parsed(
        self, node: Node, parse: Callable[[str], Any], expected: str
    ) -> Any | None:
        if not isinstance(node.value, str):
            self.add(node, f"expected {expected}, got {describe(node.value)}")
            return None
        try:
            return parse(node.value)
        except ValueError as error:
            self.add(node, str(error))
            return None

    def string_list(
        self,
        node: Node,
        *,
        non_empty: bool = False,
        check: Callable[[Node], str | None] | None = None,
    ) -> list[tuple[str, Node]] | None:
        """Check ``node`` is a list of distinct strings; return them with their nodes.

        ``check``, if given, is called as ``check(item_node)`` to validate each item
        further and returns the value or ``None``. Items that fail are left out.
        Returns ``None`` only if ``node`` itself is not a usable list.
        """
        items = self.sequence(node, non_empty=non_empty)
        if items is None:
            return None

        good: list[tuple[str, Node]] = []
        seen: set[str] = set()
        for item in node.elements():
            value = self.string(item) if check is None else check(item)
            if value is None:
                continue
            if value in seen:
                self.add(item, f'"{value}" is listed twice')
                continue
            seen.add(value)
            good.append((value, item))
        return good
