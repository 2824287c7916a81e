"""The language a warga chose at intake: kept with the curhat, wished for in routing.

Runs the real intake handlers and ``Reconciler._dispatch`` on a real store with no
server, with the helpers of test_preference_fallback.py: each rule is one pass and
its effects are read back from the store. Counsellors who speak Bahasa Indonesia
only come first in file order, so a route that forgot the warga's language would
pick them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sobat_matrix import duty
from sobat_matrix.commands import Command
from sobat_matrix.config import load_config
from sobat_matrix.handlers import Handlers
from sobat_matrix.runtime import Runtime
from sobat_matrix.store import Case, case_purpose
from tests.test_handlers_senders import CONFIG, message
from tests.test_preference_fallback import (
    ANI,
    BUDI,
    CECEP,
    DEWI,
    DM,
    ROOM,
    WARGA,
    away,
    dispatch,
    runtime,
    said,
)

POLICY = f"""
counsellor_types:
  psikolog: {{id: Psikolog, en: Psychologist}}
counsellors:
  - {{id: "{BUDI}", name: Pak Budi, types: [psikolog], gender: laki-laki}}
  - {{id: "{CECEP}", name: Pak Cecep, types: [psikolog], gender: laki-laki}}
  - {{id: "{ANI}", name: Ibu Ani, types: [psikolog], gender: perempuan,
     languages: [id, su]}}
  - {{id: "{DEWI}", name: Ibu Dewi, types: [psikolog], gender: perempuan,
     languages: [su, id]}}
categories:
  umum:
    label: {{id: Umum, en: General}}
    ask: [language]
    route:
      - types: [psikolog]
        timeout: 5m
# A preference kept for good: a language must still not make anyone wait.
queue: {{preference_fallback: never}}
"""


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime_ = await runtime(tmp_path, POLICY)
    yield runtime_
    await runtime_.store.close()


def intake_handlers(rt: Runtime, tmp_path: Path) -> Handlers:
    """The real handlers, with the bot's config the direct chat needs."""
    (tmp_path / "c.yaml").write_text(CONFIG, encoding="utf-8")
    rt.config = load_config(tmp_path / "c.yaml", environ={})
    return Handlers(rt)


async def waiting(rt: Runtime, language: str | None) -> Case:
    """A waiting curhat of a warga who chose ``language`` (``None``: no choice)."""
    async with rt.store.tx() as tx:
        case = await tx.add_case(
            code="L1",
            warga=WARGA,
            dm_room=DM,
            category="umum",
            pref_type=None,
            pref_gender=None,
            pref_language=language,
        )
    return case


# -- intake ------------------------------------------------------------------------


async def test_the_chosen_language_is_stored_with_the_chat_and_the_curhat(
    rt: Runtime, tmp_path: Path
) -> None:
    handlers = intake_handlers(rt, tmp_path)
    async with rt.store.tx() as tx:
        await tx.add_direct_chat(DM, WARGA)
        await tx.update_direct_chat(DM, step="consent")

    for body in ("ya", "umum"):
        await handlers.on_event(DM, message(WARGA, body, "m.text"))
    async with rt.store.tx() as tx:
        chat = await tx.direct_chat(DM)
    assert chat is not None and chat.step == "pref_language"
    assert "2. Basa Sunda" in (await said(rt, DM))[-1]

    await handlers.on_event(DM, message(WARGA, "basa sunda", "m.text"))

    async with rt.store.tx() as tx:
        chat = await tx.direct_chat(DM)
        case = await tx.open_case_of(WARGA)
    assert chat is not None and chat.pref_language == "su"
    assert case is not None and (case.category, case.pref_language) == ("umum", "su")


async def test_a_new_greeting_forgets_the_language_chosen_before(
    rt: Runtime, tmp_path: Path
) -> None:
    handlers = intake_handlers(rt, tmp_path)
    async with rt.store.tx() as tx:
        await tx.add_direct_chat(DM, WARGA)
        await tx.update_direct_chat(DM, step="idle", pref_language="su")

    await handlers.on_event(DM, message(WARGA, "halo", "m.text"))

    async with rt.store.tx() as tx:
        chat = await tx.direct_chat(DM)
    assert chat is not None and chat.step == "consent"
    assert chat.pref_language is None


# -- routing -----------------------------------------------------------------------


async def test_a_warga_who_chose_sundanese_gets_a_sundanese_speaker(
    rt: Runtime,
) -> None:
    case = await waiting(rt, "su")

    offers, _ = await dispatch(rt, case.id)

    # Budi is first in file order and idle: the bot's own language picks him.
    assert offers == [(ANI, "pending")]


async def test_without_a_choice_the_bots_language_decides_as_before(
    rt: Runtime,
) -> None:
    case = await waiting(rt, None)

    offers, _ = await dispatch(rt, case.id)

    assert offers == [(BUDI, "pending")]


async def test_with_no_speaker_free_anyone_gets_it_and_nobody_is_told(
    rt: Runtime,
) -> None:
    """A wish, not a wall: no waiting and no "preference let go of" under never."""
    await away(rt, ANI, DEWI)
    case = await waiting(rt, "su")

    offers, after = await dispatch(rt, case.id)

    assert offers == [(BUDI, "pending")]
    assert after.pref_relaxed_at is None and after.status == "waiting"
    assert await said(rt, DM) == []


async def test_the_offer_names_the_language_for_the_counsellor(rt: Runtime) -> None:
    case = await waiting(rt, "su")

    await dispatch(rt, case.id)

    offer_text = (await said(rt, f"!duty-{ANI}"))[-1]
    assert "Preferensi: Basa Sunda" in offer_text


async def test_a_hand_over_keeps_the_language(rt: Runtime) -> None:
    case = await waiting(rt, "su")
    async with rt.store.tx() as tx:
        await tx.update_case(case.id, requested_at=time.time() - 600)
        await tx.want_room(case_purpose(case.id), "t-case")
        await tx.set_room_id(case_purpose(case.id), ROOM)
        offer = await tx.add_offer(case.id, ANI, 0, 300)
        await tx.answer_offer(offer.id, "accepted")
        await tx.update_case(case.id, status="active", counsellor=ANI)
        active = await tx.case(case.id)
        assert active is not None
        await duty.hand_over(rt, tx, ROOM, active, Command("alihkan", "umum"))

    offers, after = await dispatch(rt, case.id)

    # Ani hands over; Budi and Cecep are idle and first, Dewi speaks Sundanese.
    assert offers == [(ANI, "accepted"), (DEWI, "pending")]
    assert after.pref_language == "su"
