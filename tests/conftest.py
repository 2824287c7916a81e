"""Shared fixtures: one local Synapse per test session, and scripted Matrix users.

The Synapse starts on first use only, so unit tests that need no server do not
pay for it. It runs with relaxed rate limits: every test registers and logs in
fresh users, which Synapse's defaults would throttle within a few tests.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator
from typing import Protocol

import pytest

from sobat_matrix.devserver import DevServer, start_synapse
from sobat_matrix.devtools import Actor

_actor_numbers = itertools.count(1)


class MakeActor(Protocol):
    """Register a new user and log it in as an :class:`Actor`."""

    async def __call__(
        self, prefix: str = "user", *, auto_join: bool = True
    ) -> Actor: ...


@pytest.fixture(scope="session")
async def synapse(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    """A Synapse on 127.0.0.1 for the whole session, stopped at its end."""
    server = await start_synapse(
        tmp_path_factory.mktemp("synapse"), relaxed_ratelimits=True
    )
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def admin_token(synapse: DevServer) -> str:
    """An access token of a server admin, for the admin API."""
    password = secrets.token_urlsafe(16)
    user_id = await synapse.register_user("admin", password, admin=True)
    return await synapse.login(user_id, password)


@pytest.fixture
async def make_actor(
    synapse: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MakeActor]:
    """A factory of fresh users, each with its own device store; closed at test end.

    Localparts are the prefix, a counter and a random suffix, so that tests never
    share a user, even across reruns against a reused server directory.
    """
    actors: list[Actor] = []

    async def make(prefix: str = "user", *, auto_join: bool = True) -> Actor:
        localpart = f"{prefix}{next(_actor_numbers)}-{secrets.token_hex(3)}"
        password = secrets.token_urlsafe(16)
        user_id = await synapse.register_user(localpart, password)

        store_dir = tmp_path_factory.mktemp(f"store-{localpart}")
        actor = await Actor.login(
            synapse.url, user_id, password, store_dir, auto_join=auto_join
        )
        actors.append(actor)
        return actor

    yield make

    for actor in actors:
        await actor.close()
