"""The running bot: start-up, the sync loop, and an orderly stop.

The sync loop is ours, not nio's ``sync_forever``: the sync token is saved in our
database only after every event of that sync has been recorded, so a crash replays
the sync instead of skipping it (nio would save the token before its callbacks run),
and handled event IDs make the replay harmless. Handlers only write to the database;
the reconciler, the outbox and nio's E2EE chores do the slow work in their own
tasks, so the loop keeps syncing while a room is being created or a send or a key
upload waits out a rate limit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import Any
from urllib.parse import quote

import aiohttp
from nio import Event, MegolmEvent, SyncResponse

from . import gap, invites, outbox, retention, statsjob
from .config import Config, with_data_dir_secrets
from .crosssign import RECOVERY_ENV, CrossSigner
from .curhat import Reconciler
from .handlers import Handlers
from .i18n import Catalog
from .latekeys import LateEvents
from .matrix import Matrix, MatrixError, raw_invite_state
from .metrics import Metrics
from .policy import Policy
from .reload import reload_policy
from .runtime import Runtime
from .store import Store
from .tasks import TaskSet

logger = logging.getLogger(__name__)

SYNC_TOKEN_KEY = "sync_token"
SYNC_TIMEOUT_MS = 30_000
SYNC_BACKOFF_MAX_S = 60.0
# Tries to join a direct chat (with a growing pause) before giving up until restart.
JOIN_ATTEMPTS = 8
# nio gives up on a sync 15 s after the long-poll should have answered.
SYNC_HTTP_MARGIN_S = 15.0
SYNC_STALLS_BEFORE_RESTART = 3


async def reachable(homeserver_url: str) -> None:
    """Raise aiohttp.ClientError if the homeserver's client API does not answer."""
    url = homeserver_url.rstrip("/") + "/_matrix/client/versions"
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.get(url) as resp:
            resp.raise_for_status()


class Service:
    """One bot: owns its store, its connection and all its tasks."""

    def __init__(
        self,
        config: Config,
        policy: Policy,
        *,
        sync_timeout_ms: int = SYNC_TIMEOUT_MS,
        sync_stall_s: float | None = None,
    ) -> None:
        """``sync_stall_s``: how long the sync loop may go without finishing a sync
        before the watchdog restarts it; by default three long-polls and their
        HTTP margin, so only a loop that is stuck, not one that waits, is hit.
        """
        self.config = config
        self.policy = policy
        self.tasks = TaskSet()
        self.rt: Runtime | None = None
        self.reconciler: Reconciler | None = None
        self.handlers: Handlers | None = None
        self.ready = asyncio.Event()
        self.late = LateEvents()
        self.metrics = Metrics()
        self._sighup = False
        # Invites being joined or declined in the background, so as not to twice.
        self._invites: set[str] = set()
        self.sync_timeout_ms = sync_timeout_ms
        if sync_stall_s is None:
            sync_stall_s = SYNC_STALLS_BEFORE_RESTART * (
                sync_timeout_ms / 1000 + SYNC_HTTP_MARGIN_S
            )
        self.sync_stall_s = sync_stall_s
        self._sync_task: asyncio.Task[None] | None = None
        self._sync_beat = time.monotonic()
        self._chores_due = asyncio.Event()

    async def start(self) -> None:
        """Connect, catch up with everything since the last run, start the workers."""
        # Fail fast, before anything is written, if the homeserver is not there.
        await reachable(self.config.homeserver.url)
        self.config = config = with_data_dir_secrets(self.config)
        assert config.secrets.store_key is not None
        assert config.secrets.pseudonym_secret is not None
        store = await Store.open(
            config.data_dir / "sobat.db",
            pseudonym_key=config.secrets.pseudonym_secret.reveal().encode(),
        )
        matrix = Matrix.for_config(config)
        password = config.bot.password.reveal() if config.bot.password else None
        try:
            await matrix.connect(password)
            await CrossSigner(
                lambda method, path, body: matrix.request_status(
                    method, path, body, what="cross-signing"
                ),
                matrix.user_id,
                matrix.device_id,
                config.data_dir,
                password=password,
                recovery_key=os.environ.get(RECOVERY_ENV),
            ).ensure()
        except BaseException:
            # Nothing is running yet; close what is open, or its threads keep the
            # process alive after the error.
            await matrix.close()
            await store.close()
            raise

        rt = Runtime(
            config=config,
            policy=self.policy,
            catalog=Catalog(config.language),
            store=store,
            matrix=matrix,
        )
        self.rt = rt
        rt.reload_policy = lambda: reload_policy(rt)
        rt.room_version = await matrix.default_room_version()
        rt.admin_join = await self._use_admin_join()
        await self._set_profile()

        self.handlers = Handlers(rt)
        self.reconciler = Reconciler(rt)

        if config.metrics.port:
            self.metrics.serve(config.metrics.port)
        await self._reload_late()

        async with store.tx() as tx:
            token = await tx.get_meta(SYNC_TOKEN_KEY)
        # The first sync after a start carries the full state of every room, so the
        # bot knows members and encryption of each room before it acts in it.
        resp = await matrix.sync(token, full_state=True, timeout_ms=0)
        await self.handle_sync(resp, since=token)

        self.tasks.spawn("staff rooms", self.reconciler.ensure_staff_members())
        self.tasks.spawn("e2ee housekeeping", self._housekeeping())
        self._start_sync_loop()
        self.tasks.spawn("sync watchdog", self._watch_sync())
        self.tasks.spawn("reconciler", self.reconciler.run())
        self.tasks.spawn("outbox", outbox.run(rt))
        self.tasks.spawn(
            "daily statistics", statsjob.run_daily(rt, config.statistics.daily_at)
        )
        self.tasks.spawn(
            "retention", retention.run(store, config.privacy.forget_after_days)
        )
        rt.wake_reconciler.set()
        self._watch_sighup()
        self.ready.set()
        logger.info(
            "bot running as device %s (admin join: %s, room version %s)",
            matrix.device_id,
            rt.admin_join,
            rt.room_version,
        )

    def _watch_sighup(self) -> None:
        """SIGHUP reloads the policy, as ``!muat-ulang`` does; supervisors are told."""
        try:
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP,
                lambda: self.tasks.spawn("policy reload", self.reload_and_tell()),
            )
            self._sighup = True
        except (NotImplementedError, RuntimeError, ValueError):
            # Not the main thread, or a platform without SIGHUP.
            logger.info("SIGHUP not watched; use !muat-ulang to reload the policy")

    async def reload_and_tell(self) -> None:
        """Reload the policy file and post the outcome to the supervisors' room."""
        assert self.rt is not None
        text = await reload_policy(self.rt)
        async with self.rt.store.tx() as tx:
            await self.rt.tell_supervisors(tx, text)

    async def stop(self) -> None:
        """Stop every task, then close the store and the connection (no logout)."""
        if self._sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._sighup = False
        await self.tasks.cancel_all()
        if self.handlers is not None:
            await self.handlers.tasks.cancel_all()
        if self.reconciler is not None:
            await self.reconciler.stop()
        if self.rt is not None:
            await self.rt.matrix.close()
            await self.rt.store.close()
        self.metrics.close()
        logger.info("bot stopped")

    async def run_until(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def _use_admin_join(self) -> bool:
        assert self.rt is not None
        mode = self.config.access.admin_join
        if mode == "no":
            return False
        is_admin = await self.rt.matrix.is_server_admin()
        if mode == "yes" and not is_admin:
            logger.warning("admin_join is 'yes' but the bot is not a server admin")
        return is_admin

    async def _set_profile(self) -> None:
        assert self.rt is not None
        if self.config.bot.display_name:
            try:
                await self.rt.matrix.set_display_name(self.config.bot.display_name)
            except MatrixError as exc:
                logger.warning("could not set display name: %s", exc)

    # -- sync ----------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        assert self.rt is not None
        matrix = self.rt.matrix
        failures = 0

        while True:
            async with self.rt.store.tx() as tx:
                token = await tx.get_meta(SYNC_TOKEN_KEY)
            try:
                resp = await matrix.sync(
                    token, full_state=False, timeout_ms=self.sync_timeout_ms
                )
                await self.handle_sync(resp, since=token)
                failures = 0
                self._sync_beat = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must go on
                self.metrics.sync_failures.inc()
                failures += 1
                wait_s = min(2.0**failures, SYNC_BACKOFF_MAX_S)
                logger.warning(
                    "sync failed (%s), retry in %.0f s", type(exc).__name__, wait_s
                )
                # A loop that fails and backs off is alive; restarting it would
                # only reset its backoff.
                self._sync_beat = time.monotonic()
                await asyncio.sleep(wait_s)

    def _start_sync_loop(self) -> None:
        self._sync_beat = time.monotonic()
        self._sync_task = self.tasks.spawn("sync", self._sync_loop())

    async def _watch_sync(self) -> None:
        """Restart the sync loop when it has finished no sync for ``sync_stall_s``.

        A sync that never answers (a half-open connection) or a handler that never
        returns would otherwise leave the bot connected and deaf. The cancelled
        sync's token was not saved, so the new loop replays it, which handled
        event IDs make harmless.
        """
        while True:
            await asyncio.sleep(self.sync_stall_s / 4)
            stalled_s = time.monotonic() - self._sync_beat
            if stalled_s < self.sync_stall_s:
                continue

            logger.error(
                "sync made no progress for %.0f s; restarting the sync loop", stalled_s
            )
            self.metrics.sync_restarts.inc()
            old = self._sync_task
            if old is not None:
                old.cancel()
                _, pending = await asyncio.wait({old}, timeout=5)
                if pending:
                    logger.warning("the stuck sync did not end when cancelled")
            self._start_sync_loop()

    async def handle_sync(self, resp: SyncResponse, *, since: str | None) -> None:
        """Record every event of one sync, the gaps it left included; save its token.

        ``since`` is the token the sync was made from. Without one (the first sync
        of a fresh store) the rooms' history is not handled, only the invites.
        """
        rt = self.rt
        assert rt is not None and self.handlers is not None
        history_only = since is None

        for room_id in resp.rooms.invite:
            await self._fenced(
                self._on_invite, room_id, raw_invite_state(resp, room_id)
            )

        for room_id, info in resp.rooms.join.items():
            timeline = info.timeline
            events = list(timeline.events)
            if (
                since is not None
                and timeline.prev_batch
                and gap.has_gap(timeline.limited, events, rt.bot)
            ):
                events = await self._fetch_gap(room_id, timeline.prev_batch, since)
                events.extend(timeline.events)
            for event in events:
                if history_only:
                    # Not even kept for a late key: history from before this
                    # store is not the bot's to act on, encrypted or not.
                    continue
                if isinstance(event, MegolmEvent):
                    await self._keep_late(room_id, event)
                    continue
                await self._fenced(self.handlers.on_event, room_id, event)

        await self._retry_late()

        async with rt.store.tx() as tx:
            await tx.set_meta(SYNC_TOKEN_KEY, resp.next_batch)
        self._chores_due.set()
        rt.wake_reconciler.set()

    async def _fetch_gap(self, room_id: str, prev_batch: str, since: str) -> list[Any]:
        """The events a limited timeline left out, oldest first (see :mod:`.gap`).

        What cannot be fetched is lost for good, since the sync token is saved
        after this: beyond ``gap.MAX_GAP_EVENTS`` the oldest events of the gap,
        and, when a page fails after its retries, every event older than the
        pages fetched. Both are logged with the room ID and counted.
        """
        assert self.rt is not None

        def beat() -> None:
            self._sync_beat = time.monotonic()

        found = await gap.fetch_gap(
            self.rt.matrix.messages_back,
            room_id,
            prev_batch=prev_batch,
            since=since,
            bot=self.rt.bot,
            on_page=beat,
        )
        self.metrics.sync_gap_events.inc(len(found.events))
        if found.failed:
            self.metrics.sync_gaps_cut.inc()
            logger.error(
                "room %s: could not fetch the whole gap; %d events fetched, "
                "older ones are skipped",
                room_id,
                len(found.events),
            )
        elif found.truncated:
            self.metrics.sync_gaps_cut.inc()
            logger.error(
                "room %s: gap longer than %d events; the older ones are skipped",
                room_id,
                len(found.events),
            )
        else:
            logger.info(
                "room %s: fetched %d events of a gap", room_id, len(found.events)
            )

        for event in found.events:
            # /messages events carry their room, but the late-key retry needs it.
            if isinstance(event, MegolmEvent) and not event.room_id:
                event.room_id = room_id
        return found.events

    async def _housekeeping(self) -> None:
        """nio's E2EE chores after a sync, one run at a time, beside the sync loop.

        They are nio calls, and nio waits out a 429 inside the call (up to
        ``MAX_RATE_LIMIT_RETRIES`` waits of ``MAX_RETRY_WAIT_S``): in the sync loop
        that would keep every room waiting and get the loop restarted by the
        watchdog. Syncs that finish while a run waits are folded into the next run.
        """
        assert self.rt is not None
        while True:
            await self._chores_due.wait()
            self._chores_due.clear()
            try:
                await self.rt.matrix.housekeeping()
            except Exception as exc:  # noqa: BLE001 - tried again after the next sync
                logger.warning("E2EE housekeeping failed (%s)", type(exc).__name__)

    async def _fenced(self, handler: Any, *args: Any) -> None:
        """Run one handler; a failure is logged with IDs and the loop goes on."""
        try:
            await handler(*args)
        except Exception as exc:  # noqa: BLE001
            self.metrics.handler_failures.inc()
            room_id = args[0] if args else "?"
            logger.error(
                "handler %s failed in room %s: %s",
                getattr(handler, "__name__", "?"),
                room_id,
                type(exc).__name__,
                exc_info=exc,
            )

    async def _on_invite(
        self, room_id: str, invite_state: list[dict[str, Any]]
    ) -> None:
        """Decide an invite from its stripped state; join or decline in the background.

        Nothing here waits for the server: a decline or a join that waits out a
        rate limit must not hold up the sync loop, which serves everyone else.
        """
        rt = self.rt
        assert rt is not None
        verdict = invites.decide(
            invite_state, bot=rt.bot, may_open_chat=rt.config.may_open_chat
        )
        if verdict is None or room_id in self._invites:
            return

        self._invites.add(room_id)
        if verdict.join:
            self.tasks.spawn(
                f"join {room_id}", self._accept(room_id, invite_state, verdict.inviter)
            )
        else:
            self.tasks.spawn(
                f"decline {room_id}", self._decline(room_id, verdict.reason)
            )

    async def _accept(
        self, room_id: str, invite_state: list[dict[str, Any]], inviter: str
    ) -> None:
        """Join a direct chat, unless the room turns out to have a crowd in it.

        The chat is recorded before the join; if the bot stops first, the invite
        is still pending on the server and the first sync after the start brings
        it here again.
        """
        rt = self.rt
        assert rt is not None
        try:
            server = inviter.partition(":")[2]
            verdict = invites.decide(
                invite_state,
                bot=rt.bot,
                may_open_chat=rt.config.may_open_chat,
                joined_members=await rt.matrix.joined_count(room_id, server),
            )
            if verdict is None:
                return
            if not verdict.join:
                await self._leave_invite(room_id, verdict.reason)
                return

            async with rt.store.tx() as tx:
                await tx.add_direct_chat(room_id, verdict.inviter)
            await self._join(room_id)
        finally:
            self._invites.discard(room_id)

    async def _decline(self, room_id: str, reason: str) -> None:
        try:
            await self._leave_invite(room_id, reason)
        finally:
            self._invites.discard(room_id)

    async def _leave_invite(self, room_id: str, reason: str) -> None:
        """Decline an invite; the log says which room and why, nothing about it."""
        assert self.rt is not None
        logger.info("declining invite to room %s (%s)", room_id, reason)
        try:
            await self.rt.matrix.request(
                "POST",
                f"/_matrix/client/v3/rooms/{_q(room_id)}/leave",
                {},
                what="decline invite",
            )
        except MatrixError as exc:
            # The invite stays pending; the next start's full sync brings it back.
            logger.warning("could not decline invite to %s: %s", room_id, exc)

    async def _join(self, room_id: str) -> None:
        """Join a direct chat, retrying a server that is busy for up to ~10 minutes."""
        assert self.rt is not None
        for attempt in range(JOIN_ATTEMPTS):
            try:
                await self.rt.matrix.request(
                    "POST",
                    f"/_matrix/client/v3/join/{_q(room_id)}",
                    {},
                    what="join",
                )
            except MatrixError as exc:
                if exc.status in (403, 404) or attempt == JOIN_ATTEMPTS - 1:
                    logger.warning("could not join %s: %s", room_id, exc)
                    return
                await asyncio.sleep(min(2.0 * 2**attempt, 120.0))
                continue
            logger.info("joined direct chat %s", room_id)
            return

    async def _keep_late(self, room_id: str, event: MegolmEvent) -> None:
        """Keep an event whose room key has not arrived, and ask for the key."""
        assert self.rt is not None
        if event.event_id in self.late:
            return
        first_seen = time.time()
        async with self.rt.store.tx() as tx:
            await tx.add_undecrypted(event.event_id, room_id, first_seen)
            for pushed in self.late.add(room_id, event, first_seen):
                await tx.drop_undecrypted(pushed)
                self.metrics.never_decrypted.inc()
        logger.info("event %s in room %s waits for its key", event.event_id, room_id)

        try:
            await self.rt.matrix.client.request_room_key(event)
        except Exception as exc:  # noqa: BLE001 - e.g. already requested
            logger.debug(
                "no key request for %s: %s", event.event_id, type(exc).__name__
            )
        self.metrics.waiting_for_keys.set(len(self.late))

    async def _retry_late(self) -> None:
        """Handle the kept events whose keys arrived; give up on the too old."""
        assert self.rt is not None and self.handlers is not None
        client = self.rt.matrix.client

        for room_id, event in self.late.take_decryptable(client.decrypt_event):
            logger.info("event %s decrypted late", event.event_id)
            self.metrics.decrypted_late.inc()
            await self._fenced(self.handlers.on_event, room_id, event)
            async with self.rt.store.tx() as tx:
                await tx.drop_undecrypted(event.event_id)

        for event_id in self.late.take_expired():
            logger.info("gave up waiting for the key of event %s", event_id)
            self.metrics.never_decrypted.inc()
            async with self.rt.store.tx() as tx:
                await tx.drop_undecrypted(event_id)
        self.metrics.waiting_for_keys.set(len(self.late))

    async def _reload_late(self) -> None:
        """After a restart, fetch the events that were still waiting for keys."""
        assert self.rt is not None
        async with self.rt.store.tx() as tx:
            kept = await tx.all_undecrypted()
        for event_id, room_id, first_seen in kept:
            try:
                raw = await self.rt.matrix.request(
                    "GET",
                    f"/_matrix/client/v3/rooms/{_q(room_id)}/event/{_q(event_id)}",
                    what="fetch event",
                )
            except MatrixError:
                raw = {}
            event = Event.parse_event(raw) if raw else None
            if isinstance(event, MegolmEvent):
                event.room_id = room_id
                self.late.add(room_id, event, first_seen)
            else:
                async with self.rt.store.tx() as tx:
                    await tx.drop_undecrypted(event_id)
        self.metrics.waiting_for_keys.set(len(self.late))


def _q(value: str) -> str:
    return quote(value, safe="")
