"""Tests for the intake dialogue, walked against the shipped Sukabumi sample policy."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from sobat_matrix.i18n import Catalog
from sobat_matrix.intake import (
    ANY,
    CATEGORY,
    CONSENT,
    IDLE,
    PREF_GENDER,
    PREF_LANGUAGE,
    PREF_TYPE,
    REQUESTED,
    Answer,
    Intake,
    normalise,
)
from sobat_matrix.policy import (
    GENDERS,
    Category,
    Counsellor,
    Policy,
    RouteStep,
    load_policy,
    localized,
)

REPO = Path(__file__).resolve().parent.parent
POLICY = load_policy(REPO / "policies" / "sukabumi.yaml")
CATALOG = Catalog("id")


def label_in(lang: str) -> Callable[[Mapping[str, str] | str], str]:
    """The bot's label function: a plain string as is, else the text in ``lang``."""

    def label(labels: Mapping[str, str] | str) -> str:
        return labels if isinstance(labels, str) else localized(labels, lang)

    return label


INTAKE = Intake(POLICY, CATALOG, label_in("id"))


def policy_category(key: str) -> Category:
    found = POLICY.category(key)
    assert found is not None
    return found


AGAIN = CATALOG.text("intake.again", question="").strip()
CONSENT_QUESTION = "Apakah Anda setuju untuk melanjutkan?"
CATEGORY_QUESTION = "Tentang apa yang ingin Anda ceritakan?"
TYPE_QUESTION = "Anda ingin berbicara dengan konselor yang mana?"
GENDER_QUESTION = "Apakah Anda ingin konselor perempuan atau laki-laki?"
LANGUAGE_QUESTION = "Dalam bahasa apa Anda ingin bercerita kepada konselor?"

# The only values intake may ever store: keys from the policy and "no preference".
OPTION_KEYS = {
    *(c.key for c in POLICY.categories),
    *POLICY.counsellor_types,
    *GENDERS,
    *(lang for c in POLICY.counsellors for lang in c.languages),
}
UPDATE_FIELDS = {
    "category",
    "pref_type",
    "pref_gender",
    "pref_religion",
    "pref_language",
}


@dataclass
class Chat:
    """A direct chat as the handler keeps it: the step and the merged updates."""

    step: str = CONSENT
    state: dict[str, Any] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)

    def say(self, text: str, intake: Intake = INTAKE) -> Answer:
        answer = intake.answer(
            self.step,
            text,
            category_key=self.state.get("category"),
            pref_type=self.state.get("pref_type"),
            pref_gender=self.state.get("pref_gender"),
            pref_religion=self.state.get("pref_religion"),
        )
        self.step = answer.step
        self.state.update(answer.updates)
        self.answers.append(answer)
        return answer


def walk(*messages: str) -> Chat:
    chat = Chat()
    for text in messages:
        chat.say(text)
    return chat


def at_step(
    step: str, category: str | None = None, pref_type: str | None = None
) -> Chat:
    return Chat(step, {"category": category, "pref_type": pref_type})


def assert_asked_again(answer: Answer, step: str, question: str) -> None:
    assert answer.step == step
    assert answer.updates == {}
    assert answer.request is False
    assert len(answer.texts) == 1
    assert answer.texts[0].startswith(AGAIN)
    assert question in answer.texts[0]


# -- consent ---------------------------------------------------------------------------


def test_greeting_asks_for_consent_with_a_numbered_menu() -> None:
    answer = INTAKE.greeting()

    assert answer.step == CONSENT
    assert answer.texts[0] == CATALOG.text("intake.welcome")
    assert CONSENT_QUESTION in answer.texts[1]
    assert "1. Ya, saya setuju\n2. Tidak" in answer.texts[1]
    assert answer.updates == {} and answer.request is False


@pytest.mark.parametrize(
    "text", ["1", "ya", "Iya!", "setuju", "  OKE  ", "Boleh.", "ya saya setuju"]
)
def test_consent_given_asks_for_the_category(text: str) -> None:
    answer = at_step(CONSENT).say(text)

    assert answer.step == CATEGORY
    assert len(answer.texts) == 1
    assert CATEGORY_QUESTION in answer.texts[0]
    assert "1. Keluarga — " in answer.texts[0]
    assert "3. Ekonomi — " in answer.texts[0]
    assert answer.updates == {} and answer.request is False


@pytest.mark.parametrize("text", ["2", "tidak", "Tidak.", "nggak", "TIDAK SETUJU"])
def test_consent_refused_ends_the_dialogue(text: str) -> None:
    answer = at_step(CONSENT).say(text)

    assert answer.step == IDLE
    assert answer.texts == [CATALOG.text("intake.consent_declined")]
    assert answer.updates == {} and answer.request is False


@pytest.mark.parametrize(
    "text", ["", "0", "3", "-1", "mungkin", "ya tidak", "1 2", "halo, selamat malam"]
)
def test_unclear_consent_asks_again_without_an_error(text: str) -> None:
    """Often a first "halo" that crossed the greeting: asked again, kindly."""
    answer = at_step(CONSENT).say(text)

    assert answer.step == CONSENT and answer.updates == {} and not answer.request
    assert answer.texts == [
        CATALOG.text("intake.consent_again", menu="1. Ya, saya setuju\n2. Tidak")
    ]
    assert not answer.texts[0].startswith(AGAIN)


# -- category --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("1", "keluarga"),
        ("2", "sosial"),
        ("3", "ekonomi"),
        (" 3. ", "ekonomi"),
        ("keluarga", "keluarga"),
        ("KELUARGA!", "keluarga"),
        ("Keluarga", "keluarga"),
        ("Family", "keluarga"),
        ("family?", "keluarga"),
        ("Sosial", "sosial"),
        ("social life", "sosial"),
        ("  Social   LIFE!! ", "sosial"),
        ("ekonomi", "ekonomi"),
        ('"Money worries"', "ekonomi"),
        ("keluarga saya", "keluarga"),
        ("soal ekonomi", "ekonomi"),
    ],
)
def test_category_by_number_key_or_label(text: str, key: str) -> None:
    answer = at_step(CATEGORY).say(text)

    assert answer.updates["category"] == key
    assert answer.step != CATEGORY


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "5",
        "keuangan",
        "sosial ekonomi",
        "bukan keluarga",
        "keluarga atau ekonomi",
    ],
)
def test_unknown_category_repeats_the_question(text: str) -> None:
    answer = at_step(CATEGORY).say(text)

    assert_asked_again(answer, CATEGORY, CATEGORY_QUESTION)
    assert "2. Sosial — " in answer.texts[0]


def test_choosing_a_category_clears_earlier_preferences() -> None:
    answer = at_step(CATEGORY).say("ekonomi")

    assert answer.updates == {
        "category": "ekonomi",
        "pref_type": None,
        "pref_gender": None,
        "pref_religion": None,
        "pref_language": None,
    }


@pytest.mark.parametrize(
    ("text", "step", "question"),
    [
        pytest.param("keluarga", PREF_TYPE, TYPE_QUESTION, id="keluarga-type"),
        pytest.param("sosial", PREF_GENDER, GENDER_QUESTION, id="sosial-gender"),
        pytest.param(
            "ekonomi", PREF_LANGUAGE, LANGUAGE_QUESTION, id="ekonomi-language"
        ),
    ],
)
def test_category_leads_to_its_first_question(
    text: str, step: str, question: str
) -> None:
    answer = at_step(CATEGORY).say(text)

    assert answer.step == step
    assert answer.request is False
    assert len(answer.texts) == 1
    assert question in answer.texts[0]


def test_category_without_questions_requests_right_away() -> None:
    ekonomi = replace(policy_category("ekonomi"), ask_language=False)
    policy = Policy(
        Path("asks-nothing.yaml"),
        POLICY.counsellor_types,
        POLICY.counsellors,
        (ekonomi,),
    )
    intake = Intake(policy, CATALOG, label_in("id"))

    answer = at_step(CATEGORY).say("ekonomi", intake)

    assert answer.step == REQUESTED
    assert answer.request is True
    assert answer.texts == []


# -- whole dialogues -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "steps", "final"),
    [
        pytest.param(
            ("ya", "keluarga", "1", "1"),
            (CATEGORY, PREF_TYPE, PREF_GENDER, REQUESTED),
            ("keluarga", "psikolog", "perempuan"),
            id="keluarga-by-numbers",
        ),
        pytest.param(
            ("Iya!", "Family", "Psikolog", "laki-laki"),
            (CATEGORY, PREF_TYPE, PREF_GENDER, REQUESTED),
            ("keluarga", "psikolog", "laki-laki"),
            id="keluarga-by-words",
        ),
        pytest.param(
            ("1", "1", "siapa saja", "Siapa saja!"),
            (CATEGORY, PREF_TYPE, PREF_GENDER, REQUESTED),
            ("keluarga", None, None),
            id="keluarga-no-preference-by-words",
        ),
        pytest.param(
            ("1", "1", "4", "3"),
            (CATEGORY, PREF_TYPE, PREF_GENDER, REQUESTED),
            ("keluarga", None, None),
            id="keluarga-no-preference-by-last-number",
        ),
        pytest.param(
            ("ya", "keluarga", "ketahanan_keluarga"),
            (CATEGORY, PREF_TYPE, REQUESTED),
            ("keluarga", "ketahanan_keluarga", None),
            id="keluarga-type-with-one-gender-skips-gender",
        ),
        pytest.param(
            ("ya", "keluarga", "Konselor keagamaan"),
            (CATEGORY, PREF_TYPE, REQUESTED),
            ("keluarga", "keagamaan", None),
            id="keluarga-type-label",
        ),
        pytest.param(
            ("ya", "keluarga", "religious counsellor"),
            (CATEGORY, PREF_TYPE, REQUESTED),
            ("keluarga", "keagamaan", None),
            id="keluarga-type-label-in-english",
        ),
        pytest.param(
            ("setuju", "sosial", "perempuan"),
            (CATEGORY, PREF_GENDER, REQUESTED),
            ("sosial", None, "perempuan"),
            id="sosial-gender-only",
        ),
        pytest.param(
            ("setuju", "2", "3"),
            (CATEGORY, PREF_GENDER, REQUESTED),
            ("sosial", None, None),
            id="sosial-no-preference",
        ),
        pytest.param(
            ("ya", "ekonomi", "bebas"),
            (CATEGORY, PREF_LANGUAGE, REQUESTED),
            ("ekonomi", None, None),
            id="ekonomi-any-language",
        ),
        pytest.param(
            ("hmm", "ya", "uang", "keluarga", "dokter", "1", "pria", "bebas"),
            (
                CONSENT,
                CATEGORY,
                CATEGORY,
                PREF_TYPE,
                PREF_TYPE,
                PREF_GENDER,
                PREF_GENDER,
                REQUESTED,
            ),
            ("keluarga", "psikolog", None),
            id="wrong-answers-in-between",
        ),
    ],
)
def test_dialogue(
    messages: tuple[str, ...],
    steps: tuple[str, ...],
    final: tuple[str, str | None, str | None],
) -> None:
    chat = walk(*messages)

    assert tuple(a.step for a in chat.answers) == steps
    assert [a.request for a in chat.answers] == [False] * (len(steps) - 1) + [True]
    category, pref_type, pref_gender = final
    assert chat.state == {
        "category": category,
        "pref_type": pref_type,
        "pref_gender": pref_gender,
        "pref_religion": None,
        "pref_language": None,
    }

    last = chat.answers[-1]
    assert last.updates
    assert set(last.updates) <= UPDATE_FIELDS
    assert all(chat.state[k] == v for k, v in last.updates.items())


def test_type_menu_lists_reachable_types_then_anyone() -> None:
    options = INTAKE.type_options(policy_category("keluarga"))

    assert [o.value for o in options] == [
        "psikolog",
        "ketahanan_keluarga",
        "keagamaan",
        ANY,
    ]
    menu = INTAKE.ask_type(policy_category("keluarga"))
    assert "1. Psikolog\n2. Konselor ketahanan keluarga" in menu
    assert "4. Siapa saja" in menu


@pytest.mark.parametrize(
    ("key", "pref_type", "genders"),
    [
        pytest.param("keluarga", None, ["perempuan", "laki-laki"], id="any-type"),
        pytest.param("keluarga", "psikolog", ["perempuan", "laki-laki"], id="psi"),
        pytest.param("keluarga", "ketahanan_keluarga", ["perempuan"], id="family"),
        pytest.param("keluarga", "keagamaan", ["laki-laki"], id="religious"),
        pytest.param("sosial", None, ["perempuan", "laki-laki"], id="sosial"),
        pytest.param("ekonomi", None, ["perempuan", "laki-laki"], id="ekonomi"),
    ],
)
def test_gender_menu_offers_only_genders_of_the_chosen_type(
    key: str, pref_type: str | None, genders: list[str]
) -> None:
    found = policy_category(key)

    options = INTAKE.gender_options(found, pref_type)

    assert [o.value for o in options] == [*genders, ANY]
    menu = INTAKE.ask_gender(found, pref_type)
    assert ("Laki-laki" in menu) is ("laki-laki" in genders)
    assert ("Perempuan" in menu) is ("perempuan" in genders)


def labels(text: str) -> MappingProxyType[str, str]:
    return MappingProxyType({"id": text})


def counsellor(localpart: str) -> Counsellor:
    found = POLICY.counsellor(f"@{localpart}:sukabumi.test")
    assert found is not None
    return found


def test_gender_menu_counts_only_counsellors_the_route_reaches() -> None:
    """Budi is a psikolog too, but this route never reaches him."""
    rina, budi, ahmad = (counsellor(n) for n in ("rina", "budi", "ahmad"))
    route = (
        RouteStep(("psikolog",), (rina.user_id,), 600.0),
        RouteStep(("keagamaan",), (), 600.0),
    )
    category = Category("k", labels("K"), labels(""), True, True, route)
    # Another category that does reach Budi, to be sure routes are not mixed up.
    wide_route = (RouteStep(("psikolog",), (), 600.0),)
    wide = Category("wide", labels("W"), labels(""), True, True, wide_route)
    policy = Policy(
        Path("narrow.yaml"),
        POLICY.counsellor_types,
        (rina, budi, ahmad),
        (wide, category),
    )
    intake = Intake(policy, CATALOG, label_in("id"))

    assert [o.value for o in intake.gender_options(category, "psikolog")] == [
        "perempuan",
        ANY,
    ]
    assert [o.value for o in intake.gender_options(wide, "psikolog")] == [
        "perempuan",
        "laki-laki",
        ANY,
    ]
    chat = Chat(CATEGORY)
    chat.say("k", intake)
    answer = chat.say("psikolog", intake)
    assert answer.request is True
    assert chat.state == {
        "category": "k",
        "pref_type": "psikolog",
        "pref_gender": None,
        "pref_religion": None,
        "pref_language": None,
    }


@pytest.mark.parametrize("text", ["", "0", "5", "psikiater", "dokter keluarga"])
def test_unknown_type_repeats_the_question(text: str) -> None:
    answer = at_step(PREF_TYPE, "keluarga").say(text)

    assert_asked_again(answer, PREF_TYPE, TYPE_QUESTION)
    assert "4. Siapa saja" in answer.texts[0]


@pytest.mark.parametrize("text", ["", "0", "4", "pria", "wanita", "laki"])
def test_unknown_gender_repeats_the_question(text: str) -> None:
    answer = at_step(PREF_GENDER, "keluarga", "psikolog").say(text)

    assert_asked_again(answer, PREF_GENDER, GENDER_QUESTION)
    assert "1. Perempuan\n2. Laki-laki\n3. Siapa saja" in answer.texts[0]


@pytest.mark.parametrize("step", [REQUESTED, IDLE, "joining"])
def test_other_steps_start_over_with_the_greeting(step: str) -> None:
    answer = at_step(step, "keluarga").say("keluarga")

    assert answer == INTAKE.greeting()


def test_a_preference_step_without_category_asks_for_the_category() -> None:
    answer = at_step(PREF_TYPE).say("sosial")

    assert answer.updates["category"] == "sosial"


# -- what intake keeps -----------------------------------------------------------------

MARKER = "rahasia-7c1e9b"


@pytest.mark.parametrize(
    ("step", "category", "pref_type"),
    [
        (CONSENT, None, None),
        (CATEGORY, None, None),
        (PREF_TYPE, "keluarga", None),
        (PREF_GENDER, "keluarga", "psikolog"),
        (PREF_GENDER, "sosial", None),
        (PREF_LANGUAGE, "ekonomi", None),
    ],
)
@pytest.mark.parametrize(
    "text",
    [
        MARKER,
        f"1 {MARKER}",
        f"keluarga {MARKER}",
        f"Suami saya {MARKER} setiap malam",
        f"{MARKER}!",
    ],
)
def test_typed_words_are_never_kept_or_echoed(
    step: str, category: str | None, pref_type: str | None, text: str
) -> None:
    answer = at_step(step, category, pref_type).say(text)

    assert all(MARKER not in str(v) for v in answer.updates.values())
    assert all(MARKER not in k for k in answer.updates)
    assert all(MARKER not in t for t in answer.texts)


@pytest.mark.parametrize(
    "messages",
    [
        ("IYA!", "  Keluarga?? ", "Psikolog.", "LAKI-LAKI"),
        ("ya", "Social Life", "Perempuan!"),
        ("1", "family", "Religious Counsellor"),
        ("1", "1", "terserah", "semua"),
        ("ya", "ekonomi", "Basa Sunda"),
    ],
)
def test_only_option_keys_are_kept(messages: tuple[str, ...]) -> None:
    chat = walk(*messages)

    assert chat.answers[-1].request is True
    for answer in chat.answers:
        assert set(answer.updates) <= UPDATE_FIELDS
        for value in answer.updates.values():
            assert value is None or value in OPTION_KEYS
    typed = {m for m in messages if m not in OPTION_KEYS}
    assert not typed & {str(v) for v in chat.state.values()}


# -- normalise -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ya", "ya"),
        ("  Iya!  ", "iya"),
        ("KELUARGA", "keluarga"),
        ("social \t  life", "social life"),
        ("ya\n", "ya"),
        ("(ya)", "ya"),
        ('"setuju"', "setuju"),
        ("*bebas*", "bebas"),
        ("?! siapa  saja !?", "siapa saja"),
        ("laki-laki", "laki-laki"),
        ("Ya, saya setuju", "ya, saya setuju"),
        ("!!!", ""),
        ("", ""),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


# -- gaps found once, fixed, and kept fixed -----------------------------------------


@pytest.mark.parametrize("text", ["²", "①"])
def test_digit_like_characters_repeat_the_question(text: str) -> None:
    answer = at_step(CATEGORY).say(text)

    assert_asked_again(answer, CATEGORY, CATEGORY_QUESTION)


@pytest.mark.parametrize(
    ("text", "gender"), [("Female", "perempuan"), ("Male", "laki-laki")]
)
def test_english_gender_label_is_understood(text: str, gender: str) -> None:
    intake = Intake(POLICY, Catalog("en"), label_in("en"))

    answer = at_step(PREF_GENDER, "sosial").say(text, intake)

    assert answer.updates == {"pref_gender": gender}


@pytest.mark.parametrize(
    ("lang", "text"), [("id", "Ya, saya setuju"), ("en", "Yes, I agree")]
)
def test_consent_label_typed_back_is_understood(lang: str, text: str) -> None:
    intake = Intake(POLICY, Catalog(lang), label_in(lang))

    answer = at_step(CONSENT).say(text, intake)

    assert answer.step == CATEGORY


@pytest.mark.parametrize(
    ("text", "gender"),
    [
        ("perempuan aja", "perempuan"),
        ("yang perempuan", "perempuan"),
        ("laki-laki saja", "laki-laki"),
    ],
)
def test_short_everyday_answers_name_one_option(text: str, gender: str) -> None:
    answer = at_step(PREF_GENDER, "sosial").say(text)

    assert answer.updates == {"pref_gender": gender} and answer.request


@pytest.mark.parametrize(
    "text",
    [
        "bukan perempuan",
        "jangan laki-laki",
        "perempuan atau laki-laki",
        "saya mau konselor perempuan kalau ada",
    ],
)
def test_negated_ambiguous_or_long_answers_are_not_guessed(text: str) -> None:
    answer = at_step(PREF_GENDER, "sosial").say(text)

    assert_asked_again(answer, PREF_GENDER, GENDER_QUESTION)


@pytest.mark.parametrize(
    ("text", "pref_type"),
    [
        ("ketahanan keluarga", "ketahanan_keluarga"),
        ("yang ketahanan keluarga", "ketahanan_keluarga"),
        ("konselor keluarga aja", "ketahanan_keluarga"),
        ("psikolog aja", "psikolog"),
        ("siapa aja", None),
    ],
)
def test_type_by_part_of_its_name(text: str, pref_type: str | None) -> None:
    answer = at_step(PREF_TYPE, "keluarga").say(text)

    assert answer.step != PREF_TYPE
    assert answer.updates["pref_type"] == pref_type


def test_a_word_shared_by_two_options_is_not_guessed() -> None:
    answer = at_step(PREF_TYPE, "keluarga").say("konselor")

    assert_asked_again(answer, PREF_TYPE, TYPE_QUESTION)


@pytest.mark.parametrize("text", ["4", "pengaduan", "Pengaduan layanan pemerintah"])
def test_a_referral_category_answers_with_its_link_and_opens_nothing(text: str) -> None:
    answer = INTAKE.answer(CATEGORY, text, category_key=None, pref_type=None)

    assert answer.step == IDLE
    assert not answer.request
    assert answer.updates == {"category": None}
    (reply,) = answer.texts
    assert "https://super.sukabumikota.go.id" in reply
    assert "SUPER (Sukabumi Participated Responder)" in reply


RELIGION_POLICY = """
counsellor_types:
  keagamaan: {id: Konselor keagamaan}
counsellors:
  - {id: "@ahmad:kota.test", name: Ustaz Ahmad, types: [keagamaan],
     gender: laki-laki, religion: islam}
  - {id: "@maria:kota.test", name: Ibu Maria, types: [keagamaan],
     gender: perempuan, religion: kristen}
categories:
  rohani:
    label: {id: Rohani}
    ask: [religion]
    route:
      - {types: [keagamaan], timeout: 5m}
"""


def test_a_warga_may_ask_for_a_counsellor_of_a_faith(tmp_path: Path) -> None:
    path = tmp_path / "faith.yaml"
    path.write_text(RELIGION_POLICY)
    intake = Intake(load_policy(path), CATALOG, label_in("id"))
    chat = Chat(CATEGORY)

    asked = chat.say("rohani", intake)
    assert asked.step == "pref_religion"
    assert "1. Islam\n2. Kristen\n3. Siapa saja" in asked.texts[0]
    assert chat.say("katolik", intake).step == "pref_religion"
    done = chat.say("Kristen", intake)

    assert done.request
    assert chat.state["pref_religion"] == "kristen"


# -- the language of the curhat ------------------------------------------------------


def test_the_language_menu_lists_what_the_route_speaks_then_any() -> None:
    """Ekonomi reaches Rina and Siti (id, su) and Budi (id): two languages."""
    answer = at_step(CATEGORY).say("ekonomi")

    (question,) = answer.texts
    assert LANGUAGE_QUESTION in question
    assert "1. Bahasa Indonesia\n2. Basa Sunda\n3. Bahasa apa saja" in question
    assert "Pesan dari bot ini tetap dalam Bahasa Indonesia." in question


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("2", "su"),
        ("Basa Sunda", "su"),
        ("sunda", "su"),
        ("bahasa sunda aja", "su"),
        ("su", "su"),
        ("1", "id"),
        ("Bahasa Indonesia", "id"),
        ("indonesia", "id"),
        ("3", None),
        ("bebas", None),
        ("tidak ada", None),
        ("Bahasa apa saja", None),
    ],
)
def test_the_chosen_language_is_kept_and_requests(
    text: str, language: str | None
) -> None:
    answer = at_step(PREF_LANGUAGE, "ekonomi").say(text)

    assert answer.updates == {"pref_language": language}
    assert answer.step == REQUESTED and answer.request and answer.texts == []


@pytest.mark.parametrize("text", ["", "0", "4", "English", "jawa", "bukan sunda"])
def test_an_unknown_language_repeats_the_question(text: str) -> None:
    answer = at_step(PREF_LANGUAGE, "ekonomi").say(text)

    assert_asked_again(answer, PREF_LANGUAGE, LANGUAGE_QUESTION)


def test_a_category_that_does_not_ask_never_asks_the_language() -> None:
    """Keluarga's route speaks id, su and ar, but the category does not ask."""
    chat = walk("ya", "keluarga", "psikolog", "perempuan")

    assert chat.answers[-1].request
    assert all(a.step != PREF_LANGUAGE for a in chat.answers)
    assert chat.state["pref_language"] is None


LANGUAGE_POLICY = """
counsellor_types:
  psikolog: {id: Psikolog}
counsellors:
  - {id: "@euis:kota.test", name: Ibu Euis, types: [psikolog],
     gender: perempuan, languages: [id, su, jv]}
  - {id: "@asep:kota.test", name: Pak Asep, types: [psikolog], gender: laki-laki}
categories:
  umum:
    label: {id: Umum}
    ask: [gender, language]
    route:
      - {types: [psikolog], timeout: 5m}
"""


def language_intake(tmp_path: Path, lang: str = "id") -> Intake:
    path = tmp_path / "languages.yaml"
    path.write_text(LANGUAGE_POLICY)
    return Intake(load_policy(path), Catalog(lang), label_in(lang))


def test_the_language_is_asked_only_among_the_earlier_answers(
    tmp_path: Path,
) -> None:
    """After "laki-laki" only Asep is left, who speaks Bahasa Indonesia alone."""
    intake = language_intake(tmp_path)
    chat = Chat(CATEGORY)
    chat.say("umum", intake)

    done = chat.say("laki-laki", intake)

    assert done.step == REQUESTED and done.request
    assert chat.state["pref_language"] is None


def test_a_language_the_catalogs_do_not_name_is_shown_by_its_code(
    tmp_path: Path,
) -> None:
    intake = language_intake(tmp_path)
    chat = Chat(CATEGORY)
    chat.say("umum", intake)

    asked = chat.say("perempuan", intake)

    assert asked.step == PREF_LANGUAGE
    assert (
        '1. Bahasa Indonesia\n2. Basa Sunda\n3. Bahasa "jv"\n4. Bahasa apa saja'
        in asked.texts[0]
    )
    assert chat.say("jv", intake).updates == {"pref_language": "jv"}


def test_the_language_question_in_english(tmp_path: Path) -> None:
    intake = language_intake(tmp_path, "en")
    chat = Chat(CATEGORY)
    chat.say("umum", intake)

    asked = chat.say("Female", intake)

    assert (
        "In which language would you like to talk to the counsellor?"
        in (asked.texts[0])
    )
    assert "This bot's own messages stay in English." in asked.texts[0]
    assert '3. Language "jv"\n4. Any language' in asked.texts[0]
    assert chat.say("any language", intake).updates == {"pref_language": None}
