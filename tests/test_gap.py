"""Paging back through a sync gap: where it stops, the bound, and failing pages.

The homeserver is a fake that serves one room's history newest first, in pages,
with ``end`` tokens the way Synapse gives them (none once nothing is left).
"""

from __future__ import annotations

from typing import Any

import pytest
from nio import Event, RoomMessagesResponse

from sobat_matrix import gap
from sobat_matrix.matrix import MatrixError

BOT = "@sobat:example.org"
ROOM = "!room:example.org"


def message(number: int) -> Event:
    return Event.parse_event(
        {
            "type": "m.room.message",
            "event_id": f"$m{number}",
            "sender": "@warga:example.org",
            "origin_server_ts": number,
            "content": {"msgtype": "m.text", "body": f"pesan {number}"},
        }
    )


def member(event_id: str, membership: str, prev: str | None) -> Event:
    raw: dict[str, Any] = {
        "type": "m.room.member",
        "event_id": event_id,
        "sender": BOT,
        "state_key": BOT,
        "origin_server_ts": 0,
        "content": {"membership": membership},
    }
    if prev is not None:
        raw["unsigned"] = {"prev_content": {"membership": prev}}
    return Event.parse_event(raw)


class FakeHistory:
    """A room's events before ``prev_batch``, served newest first."""

    def __init__(self, oldest_first: list[Event], failures: int = 0) -> None:
        self.newest_first = oldest_first[::-1]
        self.failures = failures
        self.calls: list[tuple[str, str, int]] = []

    async def __call__(
        self, room_id: str, start: str, end: str, limit: int
    ) -> RoomMessagesResponse:
        self.calls.append((start, end, limit))
        if self.failures:
            self.failures -= 1
            raise MatrixError("messages", 502, None)

        offset = 0 if start == "prev" else int(start[1:])
        chunk = self.newest_first[offset : offset + limit]
        more = offset + limit < len(self.newest_first)
        return RoomMessagesResponse(
            room_id, chunk, start, f"t{offset + limit}" if more else None
        )


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(gap.asyncio, "sleep", sleep)
    return waits


async def fetch(history: FakeHistory, **kwargs: Any) -> gap.Gap:
    return await gap.fetch_gap(
        history, ROOM, prev_batch="prev", since="since", bot=BOT, **kwargs
    )


def ids(events: list[Event]) -> list[str]:
    return [e.event_id for e in events]


async def test_pages_back_to_the_previous_token_and_gives_oldest_first() -> None:
    history = FakeHistory([message(n) for n in range(250)])

    found = await fetch(history)

    assert ids(found.events) == [f"$m{n}" for n in range(250)]
    assert not found.truncated and not found.failed
    assert history.calls == [
        ("prev", "since", 100),
        ("t100", "since", 100),
        ("t200", "since", 100),
    ]


async def test_stops_at_the_bots_own_join() -> None:
    join = member("$join", "join", "invite")
    history = FakeHistory([message(1), join, message(2), message(3)])

    found = await fetch(history)

    assert ids(found.events) == ["$join", "$m2", "$m3"]
    assert not found.truncated


async def test_a_profile_change_is_no_join() -> None:
    rename = member("$rename", "join", "join")
    history = FakeHistory([message(1), rename, message(2)])

    found = await fetch(history)

    assert ids(found.events) == ["$m1", "$rename", "$m2"]


@pytest.mark.parametrize(
    ("in_gap", "truncated", "kept"),
    [
        (8, True, ["$m3", "$m4", "$m5", "$m6", "$m7"]),
        (5, False, ["$m0", "$m1", "$m2", "$m3", "$m4"]),
        (4, False, ["$m0", "$m1", "$m2", "$m3"]),
    ],
)
async def test_the_bound_keeps_the_newest_and_says_it_cut(
    in_gap: int, truncated: bool, kept: list[str]
) -> None:
    history = FakeHistory([message(n) for n in range(in_gap)])

    found = await fetch(history, max_events=5)

    assert ids(found.events) == kept
    assert found.truncated is truncated and not found.failed
    # One event beyond the bound is asked for, to tell a cut from an end.
    assert sum(limit for _, _, limit in history.calls) <= 6


async def test_a_failing_page_is_tried_again(no_backoff: list[float]) -> None:
    history = FakeHistory([message(n) for n in range(3)], failures=2)

    found = await fetch(history)

    assert ids(found.events) == ["$m0", "$m1", "$m2"]
    assert not found.failed
    assert no_backoff == [1.0, 2.0]


async def test_a_page_that_keeps_failing_gives_up_with_what_it_has(
    no_backoff: list[float],
) -> None:
    history = FakeHistory([message(n) for n in range(150)])
    real = history.__call__
    pages = 0

    async def second_page_fails(*args: Any) -> RoomMessagesResponse:
        nonlocal pages
        pages += 1
        if pages > 1:
            raise TimeoutError
        return await real(*args)

    found = await gap.fetch_gap(
        second_page_fails, ROOM, prev_batch="prev", since="since", bot=BOT
    )

    assert ids(found.events) == [f"$m{n}" for n in range(50, 150)]
    assert found.failed and found.truncated
    assert pages == 1 + gap.FETCH_ATTEMPTS
    assert len(no_backoff) == gap.FETCH_ATTEMPTS - 1


@pytest.mark.parametrize(
    ("limited", "timeline", "expected"),
    [
        (False, [message(1)], False),
        (True, [message(1)], True),
        (True, [member("$join", "join", None), message(1)], False),
        (True, [member("$rename", "join", "join"), message(1)], True),
    ],
)
def test_which_limited_timelines_have_a_gap(
    limited: bool, timeline: list[Event], expected: bool
) -> None:
    assert gap.has_gap(limited, timeline, BOT) is expected
