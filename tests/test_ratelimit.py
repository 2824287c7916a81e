"""A server that asks for a ten-minute wait holds no call for more than the cap.

A local aiohttp server answers every request with 429 and ``retry_after_ms`` of
600000; ``asyncio.sleep`` is replaced by one that records the wait and returns at
once, so the test measures the waits without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from nio import ErrorResponse
from nio.client import async_client

from sobat_matrix import matrix as matrix_module
from sobat_matrix.matrix import (
    MAX_RATE_LIMIT_RETRIES,
    MAX_RETRY_WAIT_S,
    Matrix,
    MatrixError,
)

TEN_MINUTES_MS = 600_000


@pytest.fixture
async def limited() -> AsyncIterator[tuple[TestServer, list[str]]]:
    """A homeserver that rate-limits everything; and the paths it was asked for."""
    asked: list[str] = []

    async def refuse(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.json_response(
            {
                "errcode": "M_LIMIT_EXCEEDED",
                "error": "Too Many Requests",
                "retry_after_ms": TEN_MINUTES_MS,
            },
            status=429,
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server, asked
    await server.close()


@pytest.fixture
async def bot(
    limited: tuple[TestServer, list[str]], tmp_path: Path
) -> AsyncIterator[Matrix]:
    server, _ = limited
    matrix = Matrix(
        str(server.make_url("")),
        "@sobat:kota.test",
        tmp_path,
        device_name="t",
        pickle_key="k" * 32,
    )
    matrix.client.access_token = "token"
    yield matrix
    await matrix.close()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every non-zero asyncio.sleep, recorded and skipped."""
    real_sleep = asyncio.sleep
    seen: list[float] = []

    async def no_sleep(delay: float, result: object = None) -> object:
        if delay > 0:
            seen.append(delay)
        return await real_sleep(0, result)

    # Both modules call the asyncio module's sleep.
    assert async_client.asyncio is asyncio and matrix_module.asyncio is asyncio
    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    return seen


async def test_a_nio_call_waits_at_most_the_cap_per_retry(
    bot: Matrix, limited: tuple[TestServer, list[str]], waits: list[float]
) -> None:
    _, asked = limited

    resp = await bot.client.room_put_state("!r:kota.test", "m.room.topic", {})

    assert isinstance(resp, ErrorResponse)
    assert resp.status_code == "M_LIMIT_EXCEEDED"
    assert waits == [MAX_RETRY_WAIT_S] * MAX_RATE_LIMIT_RETRIES
    assert len(asked) == MAX_RATE_LIMIT_RETRIES + 1


async def test_a_raw_request_waits_at_most_the_cap_per_retry(
    bot: Matrix, limited: tuple[TestServer, list[str]], waits: list[float]
) -> None:
    _, asked = limited

    with pytest.raises(MatrixError) as caught:
        await bot.request("GET", "/_matrix/client/v3/joined_rooms", what="rooms")

    assert caught.value.status == 429
    assert waits == [MAX_RETRY_WAIT_S] * MAX_RATE_LIMIT_RETRIES
    assert len(asked) == MAX_RATE_LIMIT_RETRIES + 1
