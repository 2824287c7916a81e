"""Noticing words of danger in a warga's message, however they are spelt.

A warga in crisis does not type carefully: "bunuhdiri", "ingin matiii", "b.u.n.u.h
diri", "m4t1", a zero-width space pasted from somewhere. :class:`UrgentMatcher`
folds the message and the policy's phrases the same way (see :func:`fold`) and
looks for each phrase where a word starts.

Missing a warga in danger costs more than an on-call counsellor reading a message
that was not urgent after all, so the folding is generous; a phrase still has to
start where a word starts ("mati" is not found in "pematian"), and only phrases of
at least :data:`MIN_SQUASHED` letters are also looked for with the spaces taken
out, where a short one would turn up inside unrelated words.

Pure: nothing here logs, stores or keeps the text it is given.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MIN_SQUASHED = 6
"""Letters a phrase needs to be looked for with the spaces between words removed."""

# Digits and signs that stand for letters in casual writing ("m4t1", "5uicide").
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t"})
_LEET_AT = str.maketrans({"@": "a"})
# Characters that are invisible or do nothing, dropped before anything else so a
# word they split is whole again. Tab, line feed and carriage return are spaces.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\u00ad\u034f\u061c\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]"
)
_NOT_A_LETTER = re.compile(r"[\W_]+")
_REPEATS = re.compile(r"(\w)\1+")


def fold(text: str) -> str:
    """``text`` as lowercase words of plain letters, single-spaced.

    Accents are taken off (``é`` is ``e``), full-width and other compatibility
    forms become plain letters, digits and ``@`` that stand for letters become
    them, a letter repeated is one letter ("matiii" is "mati", "kill" is "kil"),
    and anything else between words is one space. Used on the phrases and on the
    message alike, so both sides read the same.
    """
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
    text = _INVISIBLE.sub("", text)
    text = text.lower().translate(_LEET).translate(_LEET_AT)
    text = _NOT_A_LETTER.sub(" ", text)
    return _REPEATS.sub(r"\1", text).strip()


class UrgentMatcher:
    """Whether a message holds one of the policy's urgent phrases.

    The phrases are folded once here; :meth:`matches` folds the message once and
    searches it, so a long message costs about its length per phrase.
    """

    def __init__(self, phrases: Iterable[str]) -> None:
        spaced: set[str] = set()
        squashed: set[str] = set()
        for phrase in phrases:
            folded = fold(phrase)
            if not folded:
                continue
            spaced.add(" " + folded)
            joined = _squash(folded.split(" "))[0]
            if len(joined) >= MIN_SQUASHED:
                squashed.add(joined)

        # Sorted so the search order, and so its cost, does not depend on hashing.
        self._spaced = tuple(sorted(spaced))
        self._squashed = tuple(sorted(squashed))

    def matches(self, text: str) -> bool:
        """Whether ``text`` holds a phrase starting where one of its words starts."""
        if not self._spaced:
            return False

        spaced = " " + fold(text)
        if any(phrase in spaced for phrase in self._spaced):
            return True
        if not self._squashed:
            return False

        # With the spaces out, "b u n u h diri" and "bunuhdiri" read the same; a
        # phrase found must still start where a word of the message starts.
        squashed, starts = _squash(spaced.split())
        return any(_found_at(squashed, phrase, starts) for phrase in self._squashed)


def _squash(words: list[str]) -> tuple[str, set[int]]:
    """``words`` written together, and where each of them starts.

    A letter that ends one word and starts the next is written once, as
    :func:`fold` does within a word ("ga ada" is "gada", like "gaada").
    """
    pieces: list[str] = []
    starts: set[int] = set()
    length = 0
    last = ""
    for word in words:
        if word[0] == last:
            starts.add(length - 1)
            word = word[1:]
        else:
            starts.add(length)
        if word:
            pieces.append(word)
            length += len(word)
            last = word[-1]
    return "".join(pieces), starts


def _found_at(text: str, phrase: str, starts: set[int]) -> bool:
    """Whether ``phrase`` occurs in ``text`` at one of the positions ``starts``."""
    index = text.find(phrase)
    while index != -1:
        if index in starts:
            return True
        index = text.find(phrase, index + 1)
    return False
