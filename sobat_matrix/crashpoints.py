"""Named places where the fault-injection tests make the bot die.

The crash-safety promise (a curhat survives a SIGKILL anywhere) is only as good as
the windows it was tried in. Random kills rarely land between two particular steps,
so the steps that matter most carry a named point: with ``SOBAT_CRASH_AT`` set to
that name the process kills itself there with SIGKILL, the way an OOM killer or a
pulled plug would, once: ``SOBAT_CRASH_MARK`` names a file made just before, and a
process that finds it carries on. Without ``SOBAT_CRASH_AT`` a point costs one
environment lookup.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

logger = logging.getLogger(__name__)

# Every point the code has, so a test cannot name one that does not exist.
POINTS = (
    "request_uncommitted",  # the curhat is written, the transaction not committed
    "room_create",  # a curhat room's attempt is noted, the room not asked for yet
    "room_created",  # the curhat room exists, its ID is not recorded yet
    "counsellor_to_bring",  # the accept is recorded, nobody brought in yet
    "counsellor_brought",  # brought in, not recorded as brought in yet
    "closing",  # the room is locked, nobody removed from it yet
)


def crash_point(name: str) -> None:
    """Die here with SIGKILL if the environment asks for this point."""
    if os.environ.get("SOBAT_CRASH_AT") != name:
        return
    assert name in POINTS, name
    mark = os.environ.get("SOBAT_CRASH_MARK")
    if mark:
        if Path(mark).exists():
            return
        Path(mark).write_text(name)
    logger.warning("crash point %s reached: the process kills itself", name)
    os.kill(os.getpid(), signal.SIGKILL)
