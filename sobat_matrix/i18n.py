"""Message catalogs: everything the bot says to people, per language.

Texts live in ``locales/<lang>/<area>.yaml`` so translators (English now, Sundanese
next) work on data, not code. A key is ``<area>.<name>``; placeholders use
``str.format`` syntax. Bahasa Indonesia (``id``) is the reference catalog: a key missing
in another language falls back to it, and a test checks that every catalog has the same
keys and placeholders.
"""

from __future__ import annotations

import logging
import string
from functools import cache
from importlib import resources
from typing import Any

import yaml

logger = logging.getLogger(__name__)

REFERENCE_LANGUAGE = "id"


def _load_language(lang: str) -> dict[str, str]:
    """Read every area file of one language into a flat ``area.name`` map."""
    texts: dict[str, str] = {}
    folder = resources.files("sobat_matrix").joinpath("locales", lang)
    if not folder.is_dir():
        raise LookupError(f"no message catalog for language {lang!r}")

    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        area = entry.name.removesuffix(".yaml")
        data = yaml.safe_load(entry.read_text(encoding="utf-8")) or {}
        for name, text in data.items():
            texts[f"{area}.{name}"] = str(text).rstrip("\n")
    return texts


def available_languages() -> list[str]:
    """Languages that have a catalog folder."""
    root = resources.files("sobat_matrix").joinpath("locales")
    return sorted(e.name for e in root.iterdir() if e.is_dir())


def placeholders(text: str) -> set[str]:
    """The ``{name}`` fields a text expects."""
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


class Catalog:
    """The texts of one language, with the reference language as fallback."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._texts = _cached_language(lang)
        self._fallback = _cached_language(REFERENCE_LANGUAGE)

    def has(self, key: str) -> bool:
        return key in self._texts or key in self._fallback

    def text(self, key: str, **params: Any) -> str:
        """The text for ``key`` with ``params`` filled in."""
        template = self._texts.get(key)
        if template is None:
            template = self._fallback[key]
        return template.format(**params)

    def keys(self) -> set[str]:
        return set(self._texts)

    def raw(self, key: str) -> str:
        return self._texts[key]


@cache
def _cached_language(lang: str) -> dict[str, str]:
    return _load_language(lang)
