"""The routing policy: who the counsellors are and which of them each topic goes to.

A city writes its policy as YAML; the bot reads it once at start-up and refuses to
run on a policy with any problem, listing every one with its line and YAML path.
Format::

    counsellor_types:            # required; key -> label
      psikolog: {id: Psikolog, en: Psychologist}
      keagamaan: Konselor keagamaan        # a plain string is the "id" text
    counsellors:                 # required, non-empty list
      - id: "@rina:sukabumi.test"   # Matrix user ID, unique
        name: "Ibu Rina"             # name shown to warga
        types: [psikolog]            # non-empty list of counsellor_types keys
        gender: perempuan            # perempuan | laki-laki
        languages: [id, su]          # optional, default [id]; 2-3 lowercase letters
        max_open: 3                  # optional, default 3; open curhats at once
    categories:                  # required, non-empty; order is the intake menu order
      keluarga:                  # key: lowercase letters, digits and _
        label: {id: Keluarga, en: Family}    # string or language mapping
        description: {id: "...", en: "..."}  # optional, same shape
        ask: [type, gender]      # optional, default []; asked at intake
        route:                   # required, non-empty list of steps, tried in order
          - types: [psikolog]                # eligible types
            timeout: 10m                     # how long one offer waits
          - counsellors: ["@rina:sukabumi.test"]   # named counsellors
            timeout: 5m

A step needs ``types``, ``counsellors`` or both; with both, a counsellor must be
named and have one of the types. A label given as a mapping must have the ``id``
(Bahasa Indonesia) text, which is the fallback for every other language.
Durations are one or more ``<int><unit>`` groups, units ``d h m s`` (``"1h30m"``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from sobat_matrix.yamlsrc import Node, Problems, describe, load_yaml

logger = logging.getLogger(__name__)

REFERENCE_LANGUAGE = "id"
GENDERS = ("perempuan", "laki-laki")
PREFERENCES = ("type", "gender")
DEFAULT_LANGUAGES = ("id",)
DEFAULT_MAX_OPEN = 3

_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")
_LANGUAGE_EXPECTED = 'a language code of 2 or 3 lowercase letters like "id"'


def localized(texts: Mapping[str, str], lang: str) -> str:
    """The text for ``lang``, falling back to Bahasa Indonesia."""
    text = texts.get(lang)
    return text if text is not None else texts[REFERENCE_LANGUAGE]


@dataclass(frozen=True)
class Counsellor:
    """One counsellor; ``types`` are keys of ``Policy.counsellor_types``."""

    user_id: str
    name: str
    types: tuple[str, ...]
    gender: str
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    max_open: int = DEFAULT_MAX_OPEN


@dataclass(frozen=True)
class RouteStep:
    """One step of a route: who may get the offer, and how long it waits.

    An empty ``types`` or ``counsellors`` means "no filter on that"; the loader
    makes sure at least one of them is given.
    """

    types: tuple[str, ...]
    counsellors: tuple[str, ...]
    timeout_s: float

    def admits(self, counsellor: Counsellor) -> bool:
        """Whether ``counsellor`` is eligible at this step, ignoring preferences."""
        if self.counsellors and counsellor.user_id not in self.counsellors:
            return False
        if self.types and not any(t in counsellor.types for t in self.types):
            return False
        return True


@dataclass(frozen=True)
class Category:
    """A topic a warga picks at intake, and the route its offers follow."""

    key: str
    labels: Mapping[str, str]
    descriptions: Mapping[str, str]
    ask_type: bool
    ask_gender: bool
    route: tuple[RouteStep, ...]

    def label(self, lang: str) -> str:
        return localized(self.labels, lang)

    def description(self, lang: str) -> str | None:
        """The description in ``lang``, or ``None`` if the category has none."""
        return localized(self.descriptions, lang) if self.descriptions else None


@dataclass(frozen=True, eq=False)
class Policy:
    """A validated routing policy.

    Compared and hashed by identity, so it can key a cache; a reloaded policy is a
    new object even if the file did not change.
    """

    source: Path
    counsellor_types: Mapping[str, Mapping[str, str]]
    counsellors: tuple[Counsellor, ...]
    categories: tuple[Category, ...]
    _by_id: dict[str, Counsellor] = field(init=False, repr=False)
    _by_key: dict[str, Category] = field(init=False, repr=False)
    _pools: dict[RouteStep, tuple[Counsellor, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Routing runs on every offer; the per-step pools are worked out once here
        # so a decision only filters by preference and load.
        object.__setattr__(self, "_by_id", {c.user_id: c for c in self.counsellors})
        object.__setattr__(self, "_by_key", {c.key: c for c in self.categories})
        pools = {
            step: tuple(c for c in self.counsellors if step.admits(c))
            for category in self.categories
            for step in category.route
        }
        object.__setattr__(self, "_pools", pools)

    def counsellor(self, user_id: str) -> Counsellor | None:
        return self._by_id.get(user_id)

    def category(self, key: str) -> Category | None:
        return self._by_key.get(key)

    def type_label(self, type_key: str, lang: str) -> str:
        """The name of a counsellor type in ``lang``, falling back to ``id``."""
        return localized(self.counsellor_types[type_key], lang)

    def step_pool(self, step: RouteStep) -> tuple[Counsellor, ...]:
        """Counsellors ``step`` admits, in file order, before preferences and load."""
        pool = self._pools.get(step)
        if pool is None:
            pool = tuple(c for c in self.counsellors if step.admits(c))
        return pool

    def reachable(self, category: Category) -> tuple[Counsellor, ...]:
        """Counsellors any step of the category's route admits, in file order."""
        return _reachable(self.counsellors, category.route)


def _reachable(
    counsellors: Sequence[Counsellor], route: Sequence[RouteStep]
) -> tuple[Counsellor, ...]:
    return tuple(c for c in counsellors if any(step.admits(c) for step in route))


def load_policy(
    path: Path, *, bot_user_id: str | None = None, supervisors: Sequence[str] = ()
) -> Policy:
    """Read and validate a policy file.

    ``bot_user_id`` and ``supervisors`` come from the service config: neither the
    bot nor a supervisor may be a counsellor. Raises :class:`ConfigError` listing
    every problem in the file.
    """
    root = Node.root(load_yaml(path))
    problems = Problems(path)
    reader = _PolicyReader(problems, bot_user_id, supervisors)
    policy = reader.read(root, path)

    problems.raise_if_any()
    assert policy is not None, "a policy with no problems is always built"
    logger.info(
        "policy %s loaded: %d counsellors, %d categories",
        path.name,
        len(policy.counsellors),
        len(policy.categories),
    )
    return policy


class _PolicyReader:
    """Validates a policy document, recording problems and building the model.

    Each part is checked even when an earlier one failed, so the operator sees
    every problem; cross-checks that would only repeat an earlier problem (such as
    "no counsellor matches this step" when a counsellor entry is broken) are
    skipped.
    """

    def __init__(
        self,
        problems: Problems,
        bot_user_id: str | None,
        supervisors: Sequence[str],
    ) -> None:
        self.problems = problems
        self.bot_user_id = bot_user_id
        self.supervisors = set(supervisors)
        self.types: dict[str, Mapping[str, str]] | None = None
        self.type_keys: list[str] | None = None
        self.counsellor_ids: set[str] | None = None
        self.counsellors: list[Counsellor] | None = None

    def read(self, root: Node, path: Path) -> Policy | None:
        keys = ("counsellor_types", "counsellors", "categories")
        if self.problems.mapping(root, keys, required=keys) is None:
            return None

        if root.has("counsellor_types"):
            self.types = self._types(root.child("counsellor_types"))
        if root.has("counsellors"):
            self.counsellors = self._counsellors(root.child("counsellors"))
        categories = None
        if root.has("categories"):
            categories = self._categories(root.child("categories"))

        if self.types is None or self.counsellors is None or categories is None:
            return None
        return Policy(
            source=path,
            counsellor_types=MappingProxyType(self.types),
            counsellors=tuple(self.counsellors),
            categories=tuple(categories),
        )

    def _labels(self, node: Node) -> Mapping[str, str] | None:
        """A label: a string (the ``id`` text) or a language -> text mapping."""
        if isinstance(node.value, str):
            text = self.problems.string(node)
            return None if text is None else MappingProxyType({"id": text})
        if not isinstance(node.value, dict):
            self.problems.add(
                node,
                "expected a string or a mapping of language to text, got "
                f"{describe(node.value)}",
            )
            return None

        texts: dict[str, str] = {}
        ok = True
        for lang, child in node.items():
            if not isinstance(lang, str) or not _LANGUAGE_CODE.fullmatch(lang):
                self.problems.add_at(
                    child.key_line,
                    child,
                    f"expected {_LANGUAGE_EXPECTED}, got {lang!r}",
                )
                ok = False
                continue
            text = self.problems.string(child)
            if text is None:
                ok = False
                continue
            texts[lang] = text

        if REFERENCE_LANGUAGE not in node.value:
            self.problems.add_at(
                node.anchor_line, node, "missing the 'id' (Bahasa Indonesia) text"
            )
            ok = False
        return MappingProxyType(texts) if ok else None

    def _types(self, node: Node) -> dict[str, Mapping[str, str]] | None:
        entries = self.problems.entries(node)
        if entries is None:
            return None

        # Known even if a label is wrong, so references to the type still get checked.
        self.type_keys = [key for key, _ in entries]
        before = len(self.problems)
        types: dict[str, Mapping[str, str]] = {}
        for key, child in entries:
            labels = self._labels(child)
            if labels is not None:
                types[key] = labels
        return types if len(self.problems) == before else None

    def _type_ref(self, node: Node) -> str | None:
        """A counsellor type named in a list; must be a key of counsellor_types."""
        name = self.problems.string(node)
        if name is None or self.type_keys is None or name in self.type_keys:
            return name
        self.problems.add(
            node,
            f'unknown counsellor type "{name}" (expected one of: '
            f"{', '.join(self.type_keys)})",
        )
        return None

    def _counsellors(self, node: Node) -> list[Counsellor] | None:
        if self.problems.sequence(node, non_empty=True) is None:
            return None

        before = len(self.problems)
        first_lines: dict[str, int | None] = {}
        counsellors: list[Counsellor] = []
        for item in node.elements():
            counsellor = self._counsellor(item, first_lines)
            if counsellor is not None:
                counsellors.append(counsellor)

        self.counsellor_ids = set(first_lines)
        return counsellors if len(self.problems) == before else None

    def _counsellor(
        self, node: Node, first_lines: dict[str, int | None]
    ) -> Counsellor | None:
        keys = ("id", "name", "types", "gender", "languages", "max_open")
        required = ("id", "name", "types", "gender")
        before = len(self.problems)
        if self.problems.mapping(node, keys, required=required) is None:
            return None

        user_id = None
        if node.has("id"):
            user_id = self._counsellor_id(node.child("id"), first_lines)
        name = self.problems.string(node.child("name")) if node.has("name") else None
        types = None
        if node.has("types"):
            types = _values(
                self.problems.string_list(
                    node.child("types"), non_empty=True, check=self._type_ref
                )
            )
        gender = None
        if node.has("gender"):
            gender = self.problems.choice(node.child("gender"), GENDERS)
        languages: tuple[str, ...] | None = DEFAULT_LANGUAGES
        if node.has("languages"):
            languages = _values(
                self.problems.string_list(
                    node.child("languages"), non_empty=True, check=self._language
                )
            )
        max_open: int | None = DEFAULT_MAX_OPEN
        if node.has("max_open"):
            max_open = self.problems.integer(node.child("max_open"), minimum=1)

        if len(self.problems) != before:
            return None
        assert user_id is not None and name is not None and types is not None
        assert gender is not None and languages is not None and max_open is not None
        return Counsellor(user_id, name, types, gender, languages, max_open)

    def _language(self, node: Node) -> str | None:
        return self.problems.matching(node, _LANGUAGE_CODE, _LANGUAGE_EXPECTED)

    def _counsellor_id(
        self, node: Node, first_lines: dict[str, int | None]
    ) -> str | None:
        # Remember every ID written, even a bad one, so a route naming it is not
        # reported a second time as "not in counsellors".
        if isinstance(node.value, str) and node.value not in first_lines:
            first_lines[node.value] = node.line
        elif isinstance(node.value, str):
            self.problems.add(
                node,
                f'duplicate counsellor "{node.value}" (first at line '
                f"{first_lines[node.value]})",
            )
            return None

        user_id = self.problems.user_id(node)
        if user_id is None:
            return None
        if user_id == self.bot_user_id:
            self.problems.add(
                node, f'"{user_id}" is the bot itself; the bot cannot be a counsellor'
            )
            return None
        if user_id in self.supervisors:
            self.problems.add(
                node,
                f'"{user_id}" is a supervisor; a supervisor cannot also be a '
                "counsellor",
            )
            return None
        return user_id

    def _categories(self, node: Node) -> list[Category] | None:
        entries = self.problems.entries(node)
        if entries is None:
            return None

        before = len(self.problems)
        categories = [self._category(key, child) for key, child in entries]
        if len(self.problems) != before:
            return None
        return [c for c in categories if c is not None]

    def _category(self, key: str, node: Node) -> Category | None:
        keys = ("label", "description", "ask", "route")
        before = len(self.problems)
        if self.problems.mapping(node, keys, required=("label", "route")) is None:
            return None

        labels = self._labels(node.child("label")) if node.has("label") else None
        descriptions: Mapping[str, str] | None = MappingProxyType({})
        if node.has("description"):
            descriptions = self._labels(node.child("description"))
        asks: tuple[str, ...] | None = ()
        if node.has("ask"):
            asks = _values(
                self.problems.string_list(
                    node.child("ask"),
                    check=lambda n: self.problems.choice(n, PREFERENCES),
                )
            )
        route = self._route(node.child("route")) if node.has("route") else None

        if len(self.problems) != before:
            return None
        assert labels is not None and descriptions is not None
        assert asks is not None and route is not None
        self._check_asks(node.child("ask"), asks, route)
        return Category(
            key=key,
            labels=labels,
            descriptions=descriptions,
            ask_type="type" in asks,
            ask_gender="gender" in asks,
            route=tuple(route),
        )

    def _check_asks(
        self, node: Node, asks: tuple[str, ...], route: list[RouteStep]
    ) -> None:
        """A preference question with only one possible answer is a policy mistake."""
        if self.counsellors is None or not asks:
            return

        reachable = _reachable(self.counsellors, route)
        offered_types = {t for c in reachable for t in c.types}
        offered_genders = {c.gender for c in reachable}
        if "type" in asks and len(offered_types) < 2:
            self.problems.add(
                node, "asks for a type preference but its route offers only one type"
            )
        if "gender" in asks and len(offered_genders) < 2:
            self.problems.add(
                node,
                "asks for a gender preference but its route offers only one gender",
            )

    def _route(self, node: Node) -> list[RouteStep] | None:
        if self.problems.sequence(node, non_empty=True) is None:
            return None

        steps = [self._step(item) for item in node.elements()]
        if any(step is None for step in steps):
            return None
        return [step for step in steps if step is not None]

    def _step(self, node: Node) -> RouteStep | None:
        keys = ("types", "counsellors", "timeout")
        before = len(self.problems)
        if self.problems.mapping(node, keys, required=("timeout",)) is None:
            return None

        if not node.has("types") and not node.has("counsellors"):
            self.problems.add(node, "a step needs 'types', 'counsellors' or both")
        types: tuple[str, ...] | None = ()
        if node.has("types"):
            types = _values(
                self.problems.string_list(
                    node.child("types"), non_empty=True, check=self._type_ref
                )
            )
        named: tuple[str, ...] | None = ()
        if node.has("counsellors"):
            named = _values(
                self.problems.string_list(
                    node.child("counsellors"), non_empty=True, check=self._named
                )
            )
        timeout_s = None
        if node.has("timeout"):
            timeout_s = self.problems.duration(node.child("timeout"))

        if len(self.problems) != before:
            return None
        assert types is not None and named is not None and timeout_s is not None
        step = RouteStep(types, named, timeout_s)
        if self.counsellors is not None and not any(
            step.admits(c) for c in self.counsellors
        ):
            self.problems.add(node, "no counsellor matches this step")
            return None
        return step

    def _named(self, node: Node) -> str | None:
        """A counsellor named in a route step; must be listed under counsellors."""
        user_id = self.problems.user_id(node)
        if user_id is None or self.counsellor_ids is None:
            return user_id
        if user_id not in self.counsellor_ids:
            self.problems.add(node, f'"{user_id}" is not in counsellors')
            return None
        return user_id


def _values(pairs: list[tuple[str, Node]] | None) -> tuple[str, ...] | None:
    """The strings of a checked list, or ``None`` if the list was not usable."""
    return None if pairs is None else tuple(value for value, _ in pairs)
