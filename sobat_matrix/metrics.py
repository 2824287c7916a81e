"""Technical counters for Prometheus: numbers only, never who or what.

Nothing here counts curhats, offers or closes: a scrape every few seconds would tell
when each curhat came and ended, which the daily figures are careful not to.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

logger = logging.getLogger(__name__)


class Metrics:
    """One registry per bot, so tests can run several bots in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.waiting_for_keys = Gauge(
            "sobat_events_waiting_for_keys",
            "Encrypted events received whose room key has not arrived yet",
            registry=self.registry,
        )
        self.decrypted_late = Counter(
            "sobat_events_decrypted_late",
            "Encrypted events decrypted only after their room key arrived later",
            registry=self.registry,
        )
        self.never_decrypted = Counter(
            "sobat_events_never_decrypted",
            "Encrypted events given up on because their room key never arrived",
            registry=self.registry,
        )
        self.handler_failures = Counter(
            "sobat_handler_failures",
            "Events whose handling raised an exception",
            registry=self.registry,
        )
        self.sync_failures = Counter(
            "sobat_sync_failures",
            "Sync requests that failed and were retried",
            registry=self.registry,
        )
        self.sync_restarts = Counter(
            "sobat_sync_restarts",
            "Times the sync loop made no progress for too long and was restarted",
            registry=self.registry,
        )
        self.sync_gap_events = Counter(
            "sobat_sync_gap_events",
            "Events a limited sync left out, fetched afterwards with /messages",
            registry=self.registry,
        )
        self.sync_gaps_cut = Counter(
            "sobat_sync_gaps_cut",
            "Room gaps fetched only in part (over the bound, or a fetch failed)",
            registry=self.registry,
        )
        self._server: Any = None

    def serve(self, port: int) -> None:
        """Serve /metrics on 127.0.0.1 only; a reverse proxy may expose it."""
        self._server, _ = start_http_server(
            port, addr="127.0.0.1", registry=self.registry
        )
        logger.info("metrics on 127.0.0.1:%d", port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
