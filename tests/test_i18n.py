"""Tests that every message catalog matches the reference one, for every area.

Written generically on purpose: each engineer adds area files under ``locales/``, and
these tests guard all of them without knowing their keys. A translation that misses a
key silently falls back to Bahasa Indonesia; one whose placeholders differ crashes when
the bot tries to say it, possibly to a warga in the middle of a curhat.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import pytest
import yaml

from sobat_matrix.i18n import (
    REFERENCE_LANGUAGE,
    Catalog,
    available_languages,
    placeholders,
)

LANGUAGES = available_languages()
TRANSLATIONS = [lang for lang in LANGUAGES if lang != REFERENCE_LANGUAGE]


class _AnyValue:
    """A dummy parameter that accepts any format spec, like ``{n:02d}``."""

    def __format__(self, spec: str) -> str:
        return "x"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} on line {line}"
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates
)


def _area_files(lang: str) -> dict[str, Traversable]:
    folder = resources.files("sobat_matrix").joinpath("locales", lang)
    return {e.name: e for e in folder.iterdir() if e.name.endswith(".yaml")}


def test_reference_and_english_catalogs_exist() -> None:
    assert REFERENCE_LANGUAGE == "id"
    assert {"id", "en"} <= set(LANGUAGES)
    assert Catalog(REFERENCE_LANGUAGE).keys()


@pytest.mark.parametrize("lang", TRANSLATIONS)
def test_same_area_files_as_reference(lang: str) -> None:
    assert sorted(_area_files(lang)) == sorted(_area_files(REFERENCE_LANGUAGE))


@pytest.mark.parametrize("lang", LANGUAGES)
def test_area_files_are_flat_maps_of_texts(lang: str) -> None:
    """Every value a string, every key once: YAML would turn ``yes`` into True."""
    problems = []
    for name, entry in sorted(_area_files(lang).items()):
        try:
            data = yaml.load(entry.read_text(encoding="utf-8"), Loader=_StrictLoader)
        except yaml.YAMLError as exc:
            problems.append(f"{lang}/{name}: {exc}")
            continue

        if data is None:
            continue
        if not isinstance(data, dict):
            problems.append(f"{lang}/{name}: expected a mapping of texts")
            continue
        for key, text in data.items():
            if not isinstance(key, str) or not isinstance(text, str):
                problems.append(
                    f"{lang}/{name}: {key!r}: expected a text, got {text!r}"
                )

    assert problems == []


@pytest.mark.parametrize("lang", TRANSLATIONS)
def test_same_keys_as_reference(lang: str) -> None:
    keys = Catalog(lang).keys()
    reference = Catalog(REFERENCE_LANGUAGE).keys()

    assert {"missing": sorted(reference - keys), "extra": sorted(keys - reference)} == {
        "missing": [],
        "extra": [],
    }


@pytest.mark.parametrize("lang", TRANSLATIONS)
def test_same_placeholders_as_reference(lang: str) -> None:
    catalog = Catalog(lang)
    reference = Catalog(REFERENCE_LANGUAGE)

    differ = {
        key: (sorted(placeholders(reference.raw(key))), sorted(placeholders(text)))
        for key in sorted(catalog.keys() & reference.keys())
        if placeholders(reference.raw(key)) != placeholders(text := catalog.raw(key))
    }

    assert differ == {}, f"{lang}: key: (reference placeholders, {lang} placeholders)"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_text_formats_with_its_placeholders(lang: str) -> None:
    """Catches ``{}``, ``{0}``, ``{a.b}`` and stray braces before a user meets them."""
    catalog = Catalog(lang)

    failures = {}
    for key in sorted(catalog.keys()):
        params = dict.fromkeys(placeholders(catalog.raw(key)), _AnyValue())
        try:
            catalog.text(key, **params)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            failures[key] = f"{type(exc).__name__}: {exc}"

    assert failures == {}
