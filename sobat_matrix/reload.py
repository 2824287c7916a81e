"""Loading the routing policy again while the bot runs (SIGHUP or ``!muat-ulang``).

The new file is read and validated in full before anything changes; a file with
any problem leaves the running policy exactly as it was, and the answer lists the
problems with their lines. Curhats already open keep going: an accepted or active
curhat does not depend on the route it came by, and a waiting one is routed by the
new policy from the next pass on.
"""

from __future__ import annotations

import logging

from .errors import ConfigError
from .policy import load_policy
from .runtime import Runtime

logger = logging.getLogger(__name__)


async def reload_policy(rt: Runtime) -> str:
    """Swap in the policy file as it is now; returns what to tell supervisors."""
    try:
        policy = load_policy(
            rt.config.policy_path,
            bot_user_id=rt.bot,
            supervisors=rt.config.supervisors,
        )
    except ConfigError as exc:
        logger.error("policy reload failed, the running policy stays:\n%s", exc)
        return rt.text("supervise.reload_failed", problems=str(exc))

    rt.policy = policy
    rt.wake_reconciler.set()
    logger.info("policy reloaded")
    return rt.text(
        "supervise.reloaded",
        counsellors=len(policy.counsellors),
        categories=len(policy.categories),
    )
