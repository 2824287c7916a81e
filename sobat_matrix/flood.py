"""Answers to a flood: a few, then one warning, then silence until it stops.

One person sending the same request fifty times in ten seconds, or a script
hammering a command, must not make the bot answer fifty times (each answer is an
encrypted send) nor slow it for everyone else. Time is the events' own server
timestamps, so a backlog handled at once after a restart is not taken for a flood.
"""

from __future__ import annotations

import logging
from collections import deque
from enum import Enum

logger = logging.getLogger(__name__)

LIMIT = 10
WINDOW_MS = 10_000


class Verdict(Enum):
    ANSWER = "answer"
    WARN = "warn"
    IGNORE = "ignore"


class FloodGuard:
    """Counts messages per sender and room over a sliding window."""

    def __init__(self, limit: int = LIMIT, window_ms: int = WINDOW_MS) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self._seen: dict[tuple[str, str], deque[int]] = {}
        self._warned: set[tuple[str, str]] = set()

    def check(self, room_id: str, sender: str, sent_ms: int) -> Verdict:
        key = (room_id, sender)
        times = self._seen.setdefault(key, deque())
        while times and times[0] <= sent_ms - self.window_ms:
            times.popleft()
        times.append(sent_ms)

        if len(times) <= self.limit:
            self._warned.discard(key)
            return Verdict.ANSWER
        if key in self._warned:
            return Verdict.IGNORE
        self._warned.add(key)
        logger.info("flood in room %s: answering no more for now", room_id)
        return Verdict.WARN
