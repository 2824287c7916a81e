"""What the parts of a running bot share: config, policy, texts, store, connection."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import flood
from .config import Config
from .i18n import Catalog
from .matrix import Matrix
from .policy import Policy, localized
from .store import SUPERVISORS_PURPOSE, Store, Tx
from .urgent import UrgentMatcher

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    policy: Policy
    catalog: Catalog
    store: Store
    matrix: Matrix
    admin_join: bool = False
    room_version: str = "12"
    wake_outbox: asyncio.Event = field(default_factory=asyncio.Event)
    wake_reconciler: asyncio.Event = field(default_factory=asyncio.Event)
    # Counsellors to look up again on the homeserver: one who left their duty room
    # may have been deactivated since the start (the reconciler drains this).
    recheck: set[str] = field(default_factory=set)
    # Set by the service: loads the policy file again (see reload.py).
    reload_policy: Callable[[], Awaitable[str]] | None = None
    _matcher: tuple[Policy, UrgentMatcher] | None = field(default=None, repr=False)

    @property
    def bot(self) -> str:
        return self.config.bot.user_id

    def text(self, key: str, **params: Any) -> str:
        return self.catalog.text(key, **params)

    async def say(
        self,
        tx: Tx,
        room_id: str,
        text: str,
        *,
        ref: str | None = None,
        html: str | None = None,
    ) -> None:
        """Queue a notice in the same transaction as the change it reports.

        The outbox sends it once the transaction has committed; a crash in between
        sends it after the restart, with the same transaction ID. While an event is
        handled, an answer the bot just gave in the same room is dropped instead
        (see flood.py).
        """
        reply = flood.current()
        if reply is not None and not reply.fresh(
            room_id, flood.digest(text, html, ref)
        ):
            logger.debug("repeated answer to room %s not sent", room_id)
            return

        content: dict[str, Any] = {"msgtype": "m.notice", "body": text}
        if html is not None:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = html
        await tx.enqueue(room_id, f"sobat-{uuid.uuid4().hex}", content, ref)
        self.wake_outbox.set()

    def label(self, labels: Any) -> str:
        """A label in the bot's language, falling back to Bahasa Indonesia."""
        if isinstance(labels, str):
            return labels
        return localized(labels, self.catalog.lang)

    def is_urgent(self, text: str) -> bool:
        """Whether a warga's message has one of the policy's urgent words.

        Matched in memory only; neither the text nor which word matched is kept.
        """
        urgent = self.policy.urgent
        if urgent is None:
            return False
        if self._matcher is None or self._matcher[0] is not self.policy:
            self._matcher = (self.policy, UrgentMatcher(urgent.words))
        return self._matcher[1].matches(text)

    def emergency_lines(self) -> str:
        """The policy's emergency contacts, one per line, in the bot's language."""
        lines = self.policy.emergency_lines(self.catalog.lang)
        if not lines:
            return self.text("queue.emergency_default")
        return "\n".join(f"• {line}" for line in lines)

    def wait_estimate(self, position: int) -> str:
        """A rough, honest wait for a place in the queue, from the policy's figure."""
        minutes = math.ceil(position * self.policy.queue.estimate_per_place_s / 60)
        return self.text("queue.estimate", minutes=max(minutes, 1))

    async def tell_supervisors(self, tx: Tx, text: str) -> bool:
        """Post to the supervisors' room if there is one; False if there is not."""
        room = await tx.owned_room(SUPERVISORS_PURPOSE)
        if room is None or room.room_id is None or room.closed:
            return False
        await self.say(tx, room.room_id, text)
        return True
