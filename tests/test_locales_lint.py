"""Catalog files must not lose text to YAML comments.

In a plain (unquoted) YAML scalar, `` #`` starts a comment: ``declined: offer #{code}
goes on`` silently becomes ``offer``. Texts with a ``#`` must be quoted or block
scalars; this check reads the raw files, since the parsed text no longer shows it.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest

PLAIN_WITH_COMMENT = re.compile(r"^[\w.]+:\s+(?![|>\"'#]).*\s#")


def catalog_files() -> list[str]:
    root = resources.files("sobat_matrix").joinpath("locales")
    return sorted(
        f"{lang.name}/{f.name}"
        for lang in root.iterdir()
        if lang.is_dir()
        for f in lang.iterdir()
        if f.name.endswith(".yaml")
    )


@pytest.mark.parametrize("name", catalog_files())
def test_no_text_cut_by_a_comment(name: str) -> None:
    path = resources.files("sobat_matrix").joinpath("locales", *name.split("/"))
    bad = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if PLAIN_WITH_COMMENT.match(line)
    ]
    assert bad == []


def test_the_check_catches_a_cut_text() -> None:
    assert PLAIN_WITH_COMMENT.match("declined: Baik, tawaran #{code} diteruskan.")
    assert not PLAIN_WITH_COMMENT.match("declined: |-")
    assert not PLAIN_WITH_COMMENT.match('declined: "tawaran #{code}"')
