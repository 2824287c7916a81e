"""One answer to a flood: repeats are not answered again, and a burst is cut short.

One person sending the same request fifty times in ten seconds, or a script
hammering a command, must not make the bot answer fifty times (each answer is an
encrypted send) nor slow it for everyone else. Two rules, both per window:

- The bot does not repeat, within the window, what it last answered in a room: a
  digest of what it would say (never of what the person wrote) is kept in memory,
  and a repeat is dropped without a word. Replies that differ ("1" for the type,
  then "1" for the gender) are different answers and all go out; so is the same
  answer once the bot has answered something else in between (a request cancelled
  and started again gets the greeting again, seconds after the first).
- Once a sender's messages in a room have drawn ``LIMIT`` different answers, the
  next message gets one short "slow down" notice instead, and the ones after it
  nothing, until the window has moved on; then one notice per window at most.
  Repeats dropped by the first rule do not count towards the limit.

A known limit: only the room's latest answer is remembered, so a script that
alternates two commands (or two people flooding one room with different ones)
gets new answers each time until the per-sender limit stops it: at most
``LIMIT`` answers and one notice per sender and window.

Time is the events' own server timestamps, so a backlog handled at once after a
restart is not taken for a flood. Everything here lives in memory only and is gone
with a restart: at worst, one answer is given again after one.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import Enum

logger = logging.getLogger(__name__)

LIMIT = 10
WINDOW_MS = 10_000


class Verdict(Enum):
    ANSWER = "answer"
    WARN = "warn"
    IGNORE = "ignore"


def digest(text: str, *parts: str | None) -> bytes:
    """What identifies an answer: a hash of its text (and HTML, and reference)."""
    h = hashlib.blake2b(digest_size=16)
    for part in (text, *parts):
        h.update(b"\x00" if part is None else b"\x01" + part.encode() + b"\x00")
    return h.digest()


class FloodGuard:
    """Answers counted per sender and room, and answers given per room, in a window.

    Every method takes the time of the event being handled, in milliseconds: the
    guard has no clock of its own, so tests drive it with plain numbers.
    """

    def __init__(self, limit: int = LIMIT, window_ms: int = WINDOW_MS) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self._answered: dict[tuple[str, str], deque[int]] = {}
        self._warned_ms: dict[tuple[str, str], int] = {}
        # Per room: when the latest answer there was given, and what it held.
        self._last: dict[str, tuple[int, frozenset[bytes]]] = {}
        self._swept_ms = 0

    def admit(self, room_id: str, sender: str, sent_ms: int) -> Verdict:
        """May this sender's message be answered, or is it part of a flood?"""
        self._sweep(sent_ms)
        key = (room_id, sender)
        if len(self._recent(key, sent_ms)) < self.limit:
            return Verdict.ANSWER

        warned_ms = self._warned_ms.get(key)
        if warned_ms is not None and sent_ms - warned_ms < self.window_ms:
            return Verdict.IGNORE
        self._warned_ms[key] = sent_ms
        logger.info("flood in room %s: answering no more for now", room_id)
        return Verdict.WARN

    def count(self, room_id: str, sender: str, sent_ms: int) -> None:
        """This sender's message was answered with something new."""
        self._recent((room_id, sender), sent_ms).append(sent_ms)

    def repeated(self, room_id: str, answer: bytes, sent_ms: int) -> bool:
        """Whether this is what the bot last answered in this room, in the window."""
        last = self._last.get(room_id)
        return (
            last is not None
            and sent_ms - last[0] < self.window_ms
            and answer in last[1]
        )

    def given(self, room_id: str, answers: frozenset[bytes], sent_ms: int) -> None:
        """These answers, or some of them, went (or are about to go) to this room."""
        self._last[room_id] = (sent_ms, answers)

    def _recent(self, key: tuple[str, str], now_ms: int) -> deque[int]:
        times = self._answered.setdefault(key, deque())
        while times and times[0] <= now_ms - self.window_ms:
            times.popleft()
        return times

    def _sweep(self, now_ms: int) -> None:
        """Forget what is older than the window, at most once per window."""
        if now_ms - self._swept_ms < self.window_ms:
            return
        self._swept_ms = now_ms
        old_ms = now_ms - self.window_ms
        self._last = {k: last for k, last in self._last.items() if last[0] > old_ms}
        self._warned_ms = {k: t for k, t in self._warned_ms.items() if t > old_ms}
        self._answered = {
            k: times
            for k, times in self._answered.items()
            if times and times[-1] > old_ms
        }


class Reply:
    """What the bot answers to one event, kept back until its transaction commits.

    ``Runtime.say`` asks :meth:`fresh` for every notice queued while the event is
    handled. The guard learns of the answers only in :meth:`commit`, so a handler
    that fails (and whose notices are rolled back) leaves no trace in it.
    """

    def __init__(self, guard: FloodGuard, room_id: str, sender: str, sent_ms: int):
        self.guard = guard
        self.room_id = room_id
        self.sender = sender
        self.sent_ms = sent_ms
        self._admitted = False
        self._open = True
        # Per room, everything this event is answered with there, and the rooms
        # where some of it is new.
        self._answers: dict[str, list[bytes]] = {}
        self._new_in: set[str] = set()

    def admit(self) -> Verdict:
        """Ask the guard whether the sender, now known, is to be answered."""
        verdict = self.guard.admit(self.room_id, self.sender, self.sent_ms)
        self._admitted = verdict is Verdict.ANSWER
        return verdict

    def fresh(self, room_id: str, answer: bytes) -> bool:
        """True if this answer is to be sent; False for a repeat within the window.

        Once the event is handled, a task it started that speaks later is no longer
        part of its reply: what it says goes out unchecked.
        """
        if not self._open:
            return True
        meant = self._answers.setdefault(room_id, [])
        if answer in meant:
            return False
        meant.append(answer)
        if self.guard.repeated(room_id, answer, self.sent_ms):
            return False
        self._new_in.add(room_id)
        return True

    def commit(self) -> None:
        """The answers were queued for good: remember them, and count the message."""
        for room_id in self._new_in:
            answers = frozenset(self._answers[room_id])
            self.guard.given(room_id, answers, self.sent_ms)
        if self._admitted and self._new_in:
            self.guard.count(self.room_id, self.sender, self.sent_ms)
        self.close()

    def close(self) -> None:
        """The event is handled; nothing more is part of this reply."""
        self._open = False
        self._answers.clear()
        self._new_in.clear()


_current: ContextVar[Reply | None] = ContextVar("sobat_reply", default=None)


@contextmanager
def replying(reply: Reply) -> Iterator[Reply]:
    """Make ``reply`` the one :func:`current` returns while an event is handled.

    A context variable rather than an argument: the handlers reach ``Runtime.say``
    through many helpers (duty, supervise, statsjob), and the reconciler, which
    runs in its own task, must never see an event's reply.
    """
    token = _current.set(reply)
    try:
        yield reply
    finally:
        reply.close()
        _current.reset(token)


def current() -> Reply | None:
    """The reply being built for the event handled in this task, if any."""
    return _current.get()
