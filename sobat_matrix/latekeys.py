"""Encrypted events whose room key has not arrived yet, kept until it does.

A room key can arrive after the message it opens (the sender's client was slow to
share it, or shared it only after a key request). Such an event is kept, a key
request is sent, and it is handled as soon as it can be decrypted, instead of being
answered with an error or dropped. After ``wait_s`` it is given up silently (a
command whose key never arrives gets no reply) and counted.

The event IDs are also kept in the database by the service, so a restart neither
forgets them nor handles one twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from nio import Event, MegolmEvent

logger = logging.getLogger(__name__)

KEY_WAIT_S = 15 * 60
MAX_WAITING = 1000


@dataclass
class Waiting:
    room_id: str
    event: MegolmEvent
    first_seen: float


class LateEvents:
    """Events waiting for keys, oldest first."""

    def __init__(self, wait_s: float = KEY_WAIT_S, limit: int = MAX_WAITING) -> None:
        self.wait_s = wait_s
        self.limit = limit
        self._waiting: dict[str, Waiting] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._waiting

    def add(
        self, room_id: str, event: MegolmEvent, first_seen: float | None = None
    ) -> list[str]:
        """Keep an event; returns the IDs pushed out because the list is full."""
        if event.event_id in self._waiting:
            return []
        self._waiting[event.event_id] = Waiting(
            room_id, event, time.time() if first_seen is None else first_seen
        )
        pushed = []
        while len(self._waiting) > self.limit:
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            pushed.append(oldest)
        return pushed

    def take_decryptable(
        self, decrypt: Callable[[MegolmEvent], Event]
    ) -> list[tuple[str, Event]]:
        """The events that can be decrypted now, removed from the list."""
        ready = []
        for event_id, waiting in list(self._waiting.items()):
            try:
                decrypted = decrypt(waiting.event)
            except Exception:  # noqa: BLE001 - nio raises EncryptionError and others
                continue
            if isinstance(decrypted, MegolmEvent):
                continue
            del self._waiting[event_id]
            ready.append((waiting.room_id, decrypted))
        return ready

    def take_expired(self, now: float | None = None) -> list[str]:
        """The IDs of events that waited longer than ``wait_s``, removed."""
        now = time.time() if now is None else now
        expired = [
            event_id
            for event_id, waiting in self._waiting.items()
            if now - waiting.first_seen >= self.wait_s
        ]
        for event_id in expired:
            del self._waiting[event_id]
        return expired
