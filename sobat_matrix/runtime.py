"""What the parts of a running bot share: config, policy, texts, store, connection."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from .config import Config
from .i18n import Catalog
from .matrix import Matrix
from .policy import Policy, localized
from .store import Store, Tx


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
        sends it after the restart, with the same transaction ID.
        """
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
