"""Tests for the JSON Schema of the policy format, the one editors use to help.

The loader checks more than a schema can (references between keys, schedules that
never open), so these tests only ask that the schema accepts what the loader
accepts, refuses the plain mistakes at the right place, and knows the same keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from sobat_matrix import policy as policy_module
from sobat_matrix.policy import GENDERS, ORDERS, PREFERENCES, WEEKDAYS, load_policy
from sobat_matrix.yamlsrc import parse_yaml

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "policies" / "sukabumi.yaml"
SCHEMA = json.loads(
    (REPO / "sobat_matrix" / "policy.schema.json").read_text(encoding="utf-8")
)
VALIDATOR = Draft202012Validator(SCHEMA)
SAMPLE_TEXT = SAMPLE.read_text(encoding="utf-8")


def error_paths(text: str) -> set[str]:
    """Where the schema finds problems in ``text``, as JSON paths."""
    document = parse_yaml(text, "p.yaml")
    return {error.json_path for error in VALIDATOR.iter_errors(document)}


def sample_with(old: str, new: str) -> str:
    assert SAMPLE_TEXT.count(old) == 1, f"{old!r} must occur exactly once"
    return SAMPLE_TEXT.replace(old, new)


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_sample_policy_is_valid() -> None:
    load_policy(SAMPLE)

    assert error_paths(SAMPLE_TEXT) == set()


def test_a_small_policy_with_every_key_is_valid() -> None:
    text = """\
timezone: Asia/Makassar
service_hours: {mon: ["07:00-22:00"], sun: ["22:00-24:00", "00:00-02:00"]}
holidays: [2026-12-25, "2026-12-31..2027-01-01"]
counsellor_types: {psikolog: Psikolog}
counsellors:
  - {id: "@a:kota.test", name: A, types: [psikolog], gender: perempuan,
     languages: [id, su], max_open: 2, skills: [kdrt], religion: islam,
     schedule: {thu: ["22:00-02:00"]}, timezone: Asia/Jakarta,
     leave: ["2026-12-24..2026-12-26", 2027-02-01]}
pools: {piket: ["@a:kota.test"]}
categories:
  umum:
    label: {id: Umum, en: General}
    description: Apa saja.
    ask: [gender, language]
    preference_fallback: 45m
    route:
      - {types: [psikolog], skills: [kdrt], languages: [su], genders: [perempuan],
         order: round_robin, timeout: 1h30m}
      - {pools: [piket], counsellors: ["@a:kota.test"], order: previous, timeout: 30s}
  pengaduan:
    label: Pengaduan
    referral: {link: "https://super.kota.test", message: {id: Lewat SUPER.}}
emergency_contacts: [{id: "Darurat: 112", en: "Emergency: 112"}, SAPA 129]
out_of_hours: {id: Hubungi 112., en: Call 112.}
urgent:
  words: [bunuh diri, suicide]
  on_call: ["@a:kota.test"]
  on_call_pools: [piket]
  parallel: 2
  timeout: 3m
queue: {max_waiting: 30, estimate_per_place: 10m, notify_step: 2,
        preference_fallback: never}
"""
    assert error_paths(text) == set()


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        pytest.param(
            "\ntimezone: Asia/Jakarta ",
            "\ntimezone: Asia/Jakarta\nzona: WIB ",
            "$",
            id="unknown-top-key",
        ),
        pytest.param(
            "    religion: islam ",
            "    agama: islam ",
            "$.counsellors[3]",
            id="unknown-counsellor-key",
        ),
        pytest.param(
            "    gender: perempuan                 # perempuan | laki-laki\n"
            "    languages: [id, su]               # languages spoken: Indonesian, "
            "Sundanese\n    max_open: 3",
            "    gender: wanita\n    languages: [id, su]\n    max_open: 3",
            "$.counsellors[0].gender",
            id="unknown-gender",
        ),
        pytest.param(
            "    max_open: 2                       # open curhats at once before no "
            "more offers\n    religion",
            "    max_open: 0\n    religion",
            "$.counsellors[3].max_open",
            id="max-open-zero",
        ),
        pytest.param(
            '      thu: ["13:00-17:00"]\n    leave',
            '      thursday: ["13:00-17:00"]\n    leave',
            "$.counsellors[1].schedule",
            id="unknown-day",
        ),
        pytest.param(
            '\n  sun: ["19:00-22:00"]',
            '\n  sun: ["19-22"]',
            "$.service_hours.sun[0]",
            id="time-range-without-minutes",
        ),
        pytest.param(
            '\n  sun: ["19:00-22:00"]',
            '\n  sun: ["19:00-25:00"]',
            "$.service_hours.sun[0]",
            id="time-past-24",
        ),
        pytest.param(
            "  - 2026-12-25 ",
            "  - 25 Desember ",
            "$.holidays[1]",
            id="holiday-in-words",
        ),
        pytest.param(
            "        order: round_robin ",
            "        order: acak ",
            "$.categories.sosial.route[0].order",
            id="unknown-order",
        ),
        pytest.param(
            "      - pools: [pendamping]           # then the companions\n"
            "        timeout: 15m",
            "      - pools: [pendamping]\n        timeout: seperempat jam",
            "$.categories.sosial.route[1].timeout",
            id="duration-in-words",
        ),
        pytest.param(
            "      - pools: [pendamping]           # then the companions\n"
            "        timeout: 15m",
            "      - timeout: 15m",
            "$.categories.sosial.route[1]",
            id="step-without-filter",
        ),
        pytest.param(
            "    label: {id: Sosial, en: Social life}",
            "    label: {en: Social life}",
            "$.categories.sosial.label",
            id="label-without-id",
        ),
        pytest.param(
            "  pendamping: [",
            "  Pendamping: [",
            "$.pools",
            id="pool-name",
        ),
        pytest.param(
            "  parallel: 2 ",
            "  parallel: 0 ",
            "$.urgent.parallel",
            id="urgent-parallel-zero",
        ),
        pytest.param(
            "  words:\n",
            "  kata:\n",
            "$.urgent",
            id="urgent-without-words",
        ),
        pytest.param(
            "  notify_step: 2 ",
            "  notify_step: 0 ",
            "$.queue.notify_step",
            id="queue-notify-step-zero",
        ),
        pytest.param(
            "  max_rounds: 3 ",
            "  max_rounds: 0 ",
            "$.queue.max_rounds",
            id="queue-max-rounds-zero",
        ),
        pytest.param(
            "  estimate_per_place: 10m ",
            "  estimate_per_place: sepuluh menit ",
            "$.queue.estimate_per_place",
            id="queue-estimate-in-words",
        ),
        pytest.param(
            "  preference_fallback: never ",
            "  preference_fallback: tidak pernah ",
            "$.queue.preference_fallback",
            id="queue-preference-fallback-in-words",
        ),
        pytest.param(
            "    ask: [language] ",
            "    ask: [bahasa] ",
            "$.categories.ekonomi.ask[0]",
            id="ask-unknown-preference",
        ),
        pytest.param(
            "    preference_fallback: 30m ",
            "    preference_fallback: 30 ",
            "$.categories.sosial.preference_fallback",
            id="category-preference-fallback-bare-number",
        ),
    ],
)
def test_plain_mistakes_are_refused_where_they_are(
    old: str, new: str, path: str
) -> None:
    assert path in error_paths(sample_with(old, new))


def test_the_schema_knows_the_loaders_keys() -> None:
    defs: dict[str, Any] = SCHEMA["$defs"]

    assert tuple(SCHEMA["properties"]) == policy_module._TOP_KEYS
    assert tuple(defs["counsellor"]["properties"]) == policy_module._COUNSELLOR_KEYS
    assert tuple(defs["step"]["properties"]) == policy_module._STEP_KEYS
    assert tuple(defs["weekly"]["properties"]) == WEEKDAYS
    assert tuple(defs["step"]["properties"]["order"]["enum"]) == ORDERS
    assert tuple(defs["gender"]["enum"]) == GENDERS
    assert tuple(defs["category"]["properties"]["ask"]["items"]["enum"]) == PREFERENCES
    assert tuple(defs["category"]["properties"]) == policy_module._CATEGORY_KEYS
    assert tuple(defs["referral"]["properties"]) == policy_module._REFERRAL_KEYS
    assert tuple(defs["urgent"]["properties"]) == policy_module._URGENT_KEYS
    assert tuple(defs["queue"]["properties"]) == policy_module._QUEUE_KEYS


REFERRAL = """\
categories:
  pengaduan:
    label: Pengaduan
    referral: {link: "https://super.kota.test", message: Lewat SUPER.}
"""


@pytest.mark.parametrize(
    ("extra", "valid"),
    [
        pytest.param("", True, id="referral"),
        pytest.param("    ask: [gender]\n", False, id="referral-with-ask"),
        pytest.param(
            "    route: [{types: [psikolog], timeout: 5m}]\n",
            False,
            id="referral-and-route",
        ),
        pytest.param(
            "    preference_fallback: 10m\n", False, id="referral-with-fallback"
        ),
    ],
)
def test_a_referral_category_has_no_route_and_no_ask(extra: str, valid: bool) -> None:
    paths = error_paths(REFERRAL + extra)

    assert ("$.categories.pengaduan" not in paths) is valid


def test_a_referral_link_needs_a_scheme() -> None:
    link = SCHEMA["$defs"]["referral"]["properties"]["link"]
    validator = Draft202012Validator(link)

    assert validator.is_valid("https://super.kota.test")
    assert not validator.is_valid("super.kota.test")
