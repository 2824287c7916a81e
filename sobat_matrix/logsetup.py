"""Logging configuration, set once at start-up.

The bot logs identifiers and numbers, never content. Two libraries it uses log
content at DEBUG: matrix-nio logs whole responses (every sync body, and the login
response with its access token) and peewee, under nio's store, logs SQL with its
parameters (key material). They are pinned to WARNING whatever level the bot runs at.
"""

from __future__ import annotations

import logging

# Loggers that would write message bodies, tokens, keys or SQL parameters (user
# IDs) at DEBUG or INFO.
PINNED_LOGGERS = ("nio", "peewee", "aiosqlite", "aiohttp.access", "asyncio")
# Loggers that write content even at WARNING and ERROR: nio's event and response
# parsers log the whole event when it fails their schema check ("Error validating
# event"), body included, which anyone can cause by sending an odd event. Silenced.
SILENCED_LOGGERS = ("nio.events", "nio.responses")


def configure(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    pin_noisy_loggers()


def pin_noisy_loggers() -> None:
    for name in PINNED_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in SILENCED_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
