"""The intake dialogue in a warga's direct chat: consent, category, preferences.

Pure: given where the dialogue stands and what the warga typed, it says what to answer
and where the dialogue goes next. It keeps only the choices made (a category key, a
counsellor type, a gender, a faith, a language code), never the words typed. A wrong
answer gets the question again, briefly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .i18n import Catalog
from .policy import Category, Policy
from .routing import (
    Preference,
    language_options,
    preference_options,
    religion_options,
    step_candidates,
)

ANY = "*"

# Steps of the dialogue as stored with the direct chat.
CONSENT = "consent"
CATEGORY = "category"
PREF_TYPE = "pref_type"
PREF_GENDER = "pref_gender"
PREF_RELIGION = "pref_religion"
PREF_LANGUAGE = "pref_language"
REQUESTED = "requested"
IDLE = "idle"

# A longer answer is not guessed at: it is probably a story, not a choice.
MAX_LOOSE_WORDS = 3

_SPACES = re.compile(r"\s+")
_TRIM = ".,!?;:()\"'*_~`"


def normalise(text: str) -> str:
    """Lower case, single spaces, no surrounding punctuation."""
    return _SPACES.sub(" ", text).strip().strip(_TRIM).strip().lower()


def language_label(catalog: Catalog, code: str) -> str:
    """A language's name as the catalogs give it; the code for one they do not name.

    A policy may list any language code for its counsellors; the catalogs name the
    few the service is likely to meet, and anything else is shown by its code
    rather than refused.
    """
    key = f"intake.language_{code}"
    if catalog.has(key):
        return catalog.text(key)
    return catalog.text("intake.language_other", code=code)


@dataclass(frozen=True)
class Answer:
    """What the bot says and where the dialogue goes."""

    step: str
    texts: list[str]
    updates: dict[str, Any] = field(default_factory=dict)
    request: bool = False


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    words: tuple[str, ...]


class Intake:
    """The dialogue for one policy and one language."""

    def __init__(
        self, policy: Policy, catalog: Catalog, label: Callable[[Any], str]
    ) -> None:
        self.policy = policy
        self.catalog = catalog
        self.label = label

    def t(self, key: str, **params: Any) -> str:
        return self.catalog.text(key, **params)

    # -- menus ---------------------------------------------------------------------

    def words(self, key: str) -> tuple[str, ...]:
        """A catalog list of words (comma-separated), each normalised."""
        return tuple(normalise(w) for w in self.t(key).split(",") if normalise(w))

    def consent_options(self) -> list[Option]:
        yes, no = self.t("intake.consent_yes"), self.t("intake.consent_no")
        return [
            Option("yes", yes, (normalise(yes), *self.words("intake.yes_words"))),
            Option("no", no, (normalise(no), *self.words("intake.no_words"))),
        ]

    def category_options(self) -> list[Option]:
        options = []
        for category in self.policy.categories:
            label = self.label(category.labels)
            words = {normalise(category.key), normalise(label)}
            words.update(normalise(str(v)) for v in category.labels.values())
            options.append(Option(category.key, label, tuple(sorted(words))))
        return options

    def type_options(self, category: Category) -> list[Option]:
        types, _ = preference_options(self.policy, category)
        options = []
        for type_key in types:
            labels = self.policy.counsellor_types[type_key]
            label = self.label(labels)
            words = {
                normalise(type_key),
                normalise(type_key.replace("_", " ")),
                normalise(label),
            }
            words.update(normalise(str(v)) for v in labels.values())
            options.append(Option(type_key, label, tuple(sorted(words))))
        options.append(
            Option(ANY, self.t("intake.any"), self.words("intake.any_words"))
        )
        return options

    def genders(self, category: Category, pref_type: str | None) -> list[str]:
        """Genders among the counsellors who could serve this type preference."""
        found = {
            counsellor.gender
            for step in category.route
            for counsellor in step_candidates(
                self.policy, category, step, Preference(type=pref_type)
            )
        }
        _, ordered = preference_options(self.policy, category)
        return [g for g in ordered if g in found]

    def gender_options(self, category: Category, pref_type: str | None) -> list[Option]:
        genders = self.genders(category, pref_type)
        options = []
        for gender in genders:
            label = self.t(f"intake.gender_{gender.replace('-', '_')}")
            options.append(Option(gender, label, (normalise(gender), normalise(label))))
        options.append(
            Option(ANY, self.t("intake.any"), self.words("intake.any_words"))
        )
        return options

    def religion_options(
        self, category: Category, pref_type: str | None, pref_gender: str | None
    ) -> list[Option]:
        """Religions of the counsellors who could serve the answers so far.

        A policy names religions by key ("islam", "kristen"); the key, capitalised,
        is the label, as Indonesian writes them.
        """
        given = Preference(type=pref_type, gender=pref_gender)
        options = [
            Option(key, key.replace("_", " ").title(), (normalise(key),))
            for key in religion_options(self.policy, category, given)
        ]
        options.append(
            Option(ANY, self.t("intake.any"), self.words("intake.any_words"))
        )
        return options

    def language_options(self, category: Category, given: Preference) -> list[Option]:
        """Languages spoken by the counsellors who could serve the answers so far."""
        options = []
        for code in language_options(self.policy, category, given):
            label = language_label(self.catalog, code)
            options.append(Option(code, label, (normalise(code), normalise(label))))
        any_label = self.t("intake.language_any")
        any_words = (normalise(any_label), *self.words("intake.any_words"))
        options.append(Option(ANY, any_label, any_words))
        return options

    def _category_menu(self) -> str:
        lines = []
        for number, category in enumerate(self.policy.categories, start=1):
            line = f"{number}. {self.label(category.labels)}"
            if category.descriptions:
                line += f" — {self.label(category.descriptions)}"
            lines.append(line)
        return "\n".join(lines)

    @staticmethod
    def _menu(options: Sequence[Option]) -> str:
        return "\n".join(f"{n}. {o.label}" for n, o in enumerate(options, start=1))

    def pick(self, text: str, options: Sequence[Option]) -> Option | None:
        """The option a warga meant, by number or by word; None if unclear.

        Besides an exact answer ("2", "perempuan"), a short answer that names
        exactly one option among a few everyday words ("perempuan aja", "keluarga
        saya") counts, unless it holds a negation ("bukan perempuan").
        """
        said = normalise(text)
        if said.isdecimal():
            index = int(said) - 1
            return options[index] if 0 <= index < len(options) else None
        for option in options:
            if said in option.words:
                return option

        tokens = said.split()
        if not tokens or len(tokens) > MAX_LOOSE_WORDS:
            return None
        if set(tokens) & set(self.words("intake.negation_words")):
            return None

        # An option whose name stands whole in the answer ("keluarga saya")...
        padded = f" {said} "
        named = [
            option
            for option in options
            if any(word and f" {word} " in padded for word in option.words)
        ]
        if len(named) == 1:
            return named[0]

        # ...or an answer whose every telling word is in one option's name
        # ("ketahanan keluarga", "konselor keluarga aja").
        telling = set(tokens) - set(self.words("intake.filler_words"))
        if not telling:
            return None
        within = [
            option
            for option in options
            if telling <= {t for word in option.words for t in word.split()}
        ]
        return within[0] if len(within) == 1 else None

    # -- questions -------------------------------------------------------------------

    def greeting(self) -> Answer:
        question = self.t(
            "intake.consent_question", menu=self._menu(self.consent_options())
        )
        return Answer(CONSENT, [self.t("intake.welcome"), question])

    def ask_category(self) -> str:
        return self.t("intake.category_question", menu=self._category_menu())

    def ask_type(self, category: Category) -> str:
        return self.t(
            "intake.type_question", menu=self._menu(self.type_options(category))
        )

    def ask_gender(self, category: Category, pref_type: str | None) -> str:
        menu = self._menu(self.gender_options(category, pref_type))
        return self.t("intake.gender_question", menu=menu)

    def _wants_type(self, category: Category) -> bool:
        return (
            category.ask_type and len(preference_options(self.policy, category)[0]) > 1
        )

    def _wants_gender(self, category: Category, pref_type: str | None) -> bool:
        return category.ask_gender and len(self.genders(category, pref_type)) > 1

    def ask_religion(
        self, category: Category, pref_type: str | None, pref_gender: str | None
    ) -> str:
        menu = self._menu(self.religion_options(category, pref_type, pref_gender))
        return self.t("intake.religion_question", menu=menu)

    def _wants_religion(
        self, category: Category, pref_type: str | None, pref_gender: str | None
    ) -> bool:
        # Besides "anyone", at least two faiths: one alone is no choice.
        options = self.religion_options(category, pref_type, pref_gender)
        return category.ask_religion and len(options) > 2

    def ask_language(self, category: Category, given: Preference) -> str:
        menu = self._menu(self.language_options(category, given))
        return self.t("intake.language_question", menu=menu)

    def _wants_language(self, category: Category, given: Preference) -> bool:
        # Besides "any language", at least two: one alone is no choice.
        options = self.language_options(category, given)
        return category.ask_language and len(options) > 2

    # -- the dialogue ------------------------------------------------------------------

    def answer(
        self,
        step: str,
        text: str,
        *,
        category_key: str | None,
        pref_type: str | None,
        pref_gender: str | None = None,
        pref_religion: str | None = None,
    ) -> Answer:
        """Answer a warga's message at ``step``."""
        if step == CONSENT:
            return self._on_consent(text)
        category = self.policy.category(category_key) if category_key else None
        if step == CATEGORY or category is None:
            return self._on_category(text)
        if step == PREF_TYPE:
            return self._on_type(text, category)
        if step == PREF_GENDER:
            return self._on_gender(text, category, pref_type)
        if step == PREF_RELIGION:
            return self._on_religion(text, category, pref_type, pref_gender)
        if step == PREF_LANGUAGE:
            given = Preference(pref_type, pref_gender, pref_religion)
            return self._on_language(text, category, given)
        return self.greeting()

    def _again(self, step: str, question: str) -> Answer:
        return Answer(step, [self.t("intake.again", question=question)])

    def _on_consent(self, text: str) -> Answer:
        option = self.pick(text, self.consent_options())
        if option is None:
            # Often a first "halo" that crossed the greeting: no error, just ask.
            menu = self._menu(self.consent_options())
            return Answer(CONSENT, [self.t("intake.consent_again", menu=menu)])
        if option.value == "no":
            return Answer(IDLE, [self.t("intake.consent_declined")])
        return Answer(CATEGORY, [self.ask_category()])

    def _on_category(self, text: str) -> Answer:
        option = self.pick(text, self.category_options())
        if option is None:
            return self._again(CATEGORY, self.ask_category())
        category = self.policy.category(option.value)
        assert category is not None
        if category.referral is not None:
            # Not counselling: point to the right channel and open nothing.
            text = self.t(
                "intake.referral",
                message=category.referral.message(self.catalog.lang),
                link=category.referral.link,
            )
            return Answer(IDLE, [text], {"category": None})
        updates: dict[str, Any] = {
            "category": category.key,
            "pref_type": None,
            "pref_gender": None,
            "pref_religion": None,
            "pref_language": None,
        }
        return self._next_after(category, updates)

    def _next_after(
        self, category: Category, updates: dict[str, Any], *, asked_type: bool = False
    ) -> Answer:
        if not asked_type and self._wants_type(category):
            return Answer(PREF_TYPE, [self.ask_type(category)], updates)
        pref_type = updates.get("pref_type")
        if self._wants_gender(category, pref_type):
            return Answer(PREF_GENDER, [self.ask_gender(category, pref_type)], updates)
        return self._after_gender(category, pref_type, None, updates)

    def _after_gender(
        self,
        category: Category,
        pref_type: str | None,
        pref_gender: str | None,
        updates: dict[str, Any],
    ) -> Answer:
        if self._wants_religion(category, pref_type, pref_gender):
            question = self.ask_religion(category, pref_type, pref_gender)
            return Answer(PREF_RELIGION, [question], updates)
        given = Preference(pref_type, pref_gender)
        return self._after_religion(category, given, updates)

    def _after_religion(
        self, category: Category, given: Preference, updates: dict[str, Any]
    ) -> Answer:
        if self._wants_language(category, given):
            question = self.ask_language(category, given)
            return Answer(PREF_LANGUAGE, [question], updates)
        return Answer(REQUESTED, [], updates, request=True)

    def _on_type(self, text: str, category: Category) -> Answer:
        option = self.pick(text, self.type_options(category))
        if option is None:
            return self._again(PREF_TYPE, self.ask_type(category))
        value = None if option.value == ANY else option.value
        return self._next_after(category, {"pref_type": value}, asked_type=True)

    def _on_gender(
        self, text: str, category: Category, pref_type: str | None
    ) -> Answer:
        option = self.pick(text, self.gender_options(category, pref_type))
        if option is None:
            return self._again(PREF_GENDER, self.ask_gender(category, pref_type))
        value = None if option.value == ANY else option.value
        return self._after_gender(category, pref_type, value, {"pref_gender": value})

    def _on_religion(
        self,
        text: str,
        category: Category,
        pref_type: str | None,
        pref_gender: str | None,
    ) -> Answer:
        options = self.religion_options(category, pref_type, pref_gender)
        option = self.pick(text, options)
        if option is None:
            question = self.ask_religion(category, pref_type, pref_gender)
            return self._again(PREF_RELIGION, question)
        value = None if option.value == ANY else option.value
        given = Preference(pref_type, pref_gender, value)
        return self._after_religion(category, given, {"pref_religion": value})

    def _on_language(self, text: str, category: Category, given: Preference) -> Answer:
        option = self.pick(text, self.language_options(category, given))
        if option is None:
            return self._again(PREF_LANGUAGE, self.ask_language(category, given))
        value = None if option.value == ANY else option.value
        return Answer(REQUESTED, [], {"pref_language": value}, request=True)
