"""Tests for the anonymised statistics: day boundaries, figures, suppression, text."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sobat_matrix import stats
from sobat_matrix.i18n import Catalog
from sobat_matrix.stats import (
    MIN_GROUP,
    OTHER,
    CurhatFacts,
    Figure,
    Report,
    compute,
    render,
)

JAKARTA = ZoneInfo("Asia/Jakarta")
CATEGORIES = ("keluarga", "pekerjaan")
LABELS = {"keluarga": "Keluarga", "pekerjaan": "Pekerjaan"}

# Monday 14 December 2026, 12:00 in Jakarta (UTC+7).
NOW = datetime(2026, 12, 14, 12, 0, tzinfo=JAKARTA).astimezone(UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of December 2026 on Jakarta's clock, stored in UTC like the store."""
    return datetime(2026, 12, day, hour, minute, tzinfo=JAKARTA).astimezone(UTC)


def fact(
    requested_at: datetime = NOW - timedelta(hours=1),
    category: str = "keluarga",
    *,
    wait_s: float | None = None,
    session_s: float | None = None,
    rating: int | None = None,
    declined: int = 0,
    timed_out: int = 0,
) -> CurhatFacts:
    joined = None if wait_s is None else requested_at + timedelta(seconds=wait_s)
    closed = None
    if joined is not None and session_s is not None:
        closed = joined + timedelta(seconds=session_s)
    return CurhatFacts(
        category=category,
        requested_at=requested_at,
        counsellor_joined_at=joined,
        closed_at=closed,
        rating=rating,
        offers_declined=declined,
        offers_timed_out=timed_out,
    )


def unserved(requested_at: datetime = NOW - timedelta(hours=1)) -> CurhatFacts:
    """A curhat closed because no counsellor could take it."""
    base = fact(requested_at, declined=2)
    return CurhatFacts(**{**base.__dict__, "unserved": True})


def test_not_served_counts_the_window_only() -> None:
    facts = [unserved() for _ in range(6)] + [
        unserved(NOW - timedelta(days=7)),
        fact(wait_s=60),
    ]

    report = report_of(facts)

    assert report.unserved == Figure(6, 6)
    plain, html = render(report, Catalog("en"), LABELS)
    assert "Curhats not served (no counsellor could take them): 6" in plain
    assert "Curhats not served (no counsellor could take them): 6" in html


def report_of(facts: list[CurhatFacts], now: datetime = NOW) -> Report:
    return compute(facts, now=now, tz=JAKARTA, categories=CATEGORIES)


# --- Days and window --------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "requested_at", "today", "week"),
    [
        # 00:30 in Jakarta is still the previous day in UTC: it counts as today.
        (NOW, at(14, 0, 30), 1, 1),
        # 23:30 the evening before is yesterday, though UTC says the same date.
        (NOW, at(13, 23, 30), 0, 1),
        (NOW, at(14, 0, 0), 1, 1),
        (NOW, at(13, 23, 59), 0, 1),
        # Just after local midnight "today" has begun although UTC is still on the
        # 13th, so a curhat of 23:30 the evening before is not today's.
        (at(14, 0, 10), at(13, 23, 30), 0, 1),
        (at(14, 0, 10), at(14, 0, 5), 1, 1),
        (at(13, 23, 50), at(13, 23, 30), 1, 1),
        # The window is today and the 6 days before: 8 to 14 December.
        (NOW, at(8, 0, 0), 0, 1),
        (NOW, at(7, 23, 59), 0, 0),
        (NOW, at(15, 0, 0), 0, 0),
    ],
)
def test_curhats_count_on_their_local_day(
    now: datetime, requested_at: datetime, today: int, week: int
) -> None:
    report = report_of([fact(requested_at)], now=now)

    assert report.rows[0].today.value == today
    assert report.rows[0].week.value == week
    assert report.total_today.value == today
    assert report.total_week.value == week


@pytest.mark.parametrize(("days_ago", "in_window"), [(d, d < 7) for d in range(9)])
def test_window_is_seven_calendar_days(days_ago: int, in_window: bool) -> None:
    requested_at = NOW - timedelta(days=days_ago)

    report = report_of([fact(requested_at, wait_s=60, declined=2)])

    assert report.total_week.value == int(in_window)
    assert report.wait_median_s.count == int(in_window)
    assert report.offers_declined.value == 2 * in_window


def test_report_dates_are_local() -> None:
    report = report_of([], now=at(14, 0, 10))

    assert report.generated_at.tzinfo == JAKARTA
    assert (report.first_day.isoformat(), report.last_day.isoformat()) == (
        "2026-12-08",
        "2026-12-14",
    )


# --- Figures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("waits_s", "median_s"),
    [
        ([300, 60, 180, 120, 240], 180),
        ([300, 60, 180, 120, 240, 600], 210),
        ([10, 10, 10, 10, 1000], 10),
        ([0, 0, 0, 0, 0, 0, 7200], 0),
    ],
)
def test_medians_odd_and_even(waits_s: list[int], median_s: float) -> None:
    facts = [fact(wait_s=w, session_s=2 * w) for w in waits_s]

    report = report_of(facts)

    assert report.wait_median_s == Figure(median_s, len(waits_s))
    assert report.session_median_s == Figure(2 * median_s, len(waits_s))


def test_session_length_counts_only_closed_curhats() -> None:
    facts = [fact(wait_s=60, session_s=600) for _ in range(5)]
    facts += [fact(wait_s=60) for _ in range(3)]  # joined, still open
    facts += [fact() for _ in range(2)]  # nobody joined yet

    report = report_of(facts)

    assert report.wait_median_s == Figure(60, 8)
    assert report.session_median_s == Figure(600, 5)


def test_clock_skew_is_no_negative_wait() -> None:
    facts = [fact(wait_s=-5, session_s=-1) for _ in range(5)]

    report = report_of(facts)

    assert report.wait_median_s.value == 0
    assert report.session_median_s.value == 0


@pytest.mark.parametrize(
    ("ratings", "average", "id_text", "en_text"),
    [
        ([5, 4, 4, 3, 5], 4.2, "4,2", "4.2"),
        ([5, 5, 5, 5, 4, 4], 14 / 3, "4,7", "4.7"),
        ([1, 1, 1, 1, 1, None, None], 1.0, "1,0", "1.0"),
    ],
)
def test_rating_average(
    ratings: list[int | None], average: float, id_text: str, en_text: str
) -> None:
    report = report_of([fact(rating=r) for r in ratings])

    assert report.rating_average.value == pytest.approx(average)
    assert report.rating_average.count == sum(r is not None for r in ratings)
    assert f"(skala 1–5): {id_text}" in render(report, Catalog("id"), LABELS)[0]
    assert f"(scale 1–5): {en_text}" in render(report, Catalog("en"), LABELS)[0]


def test_offer_sums_cover_the_window_only() -> None:
    facts = [
        fact(declined=2, timed_out=0),
        fact(declined=0, timed_out=3),
        fact(NOW - timedelta(days=6), declined=1, timed_out=1),
        fact(declined=0, timed_out=0),
        fact(category="hapus", declined=4, timed_out=0),
        fact(NOW - timedelta(days=7), declined=50, timed_out=50),
    ]

    report = report_of(facts)

    assert report.offers_declined == Figure(7, 5)
    assert report.offers_timed_out == Figure(4, 5)


def test_unknown_categories_are_grouped_under_other() -> None:
    facts = [fact(category=c) for c in ["keluarga", "hapus", "", "Keluarga"]]
    facts.append(fact(category="@mallory:evil.example"))

    report = report_of(facts)

    assert [row.category for row in report.rows] == ["keluarga", "pekerjaan", OTHER]
    assert [row.week.value for row in report.rows] == [1, 0, 4]
    for lang in ("id", "en"):
        plain, html = render(report, Catalog(lang), LABELS)
        assert "hapus" not in plain + html
        assert "mallory" not in plain + html


def test_categories_keep_their_order_and_appear_once() -> None:
    report = compute(
        [], now=NOW, tz=JAKARTA, categories=["pekerjaan", "keluarga", "pekerjaan"]
    )

    assert [row.category for row in report.rows] == ["pekerjaan", "keluarga", OTHER]


# --- Suppression ------------------------------------------------------------------


def _split(n: int, requested_at: datetime) -> list[CurhatFacts]:
    """n curhats spread over both categories, so no single cell gives a total away."""
    return [fact(requested_at, CATEGORIES[i % 2]) for i in range(n)]


def _padded(n: int, requested_at: datetime) -> list[CurhatFacts]:
    """n curhats in "keluarga" next to big groups, so only that cell is small."""
    padding = [fact(category=c) for c in ("pekerjaan", "lain") for _ in range(10)]
    return [fact(requested_at) for _ in range(n)] + padding


_SUPPRESSION_CASES: dict[
    str, tuple[Callable[[int], list[CurhatFacts]], Callable[[Report], Figure]]
] = {
    "category today": (lambda n: _padded(n, NOW), lambda r: r.rows[0].today),
    "category week": (
        lambda n: _padded(n, NOW - timedelta(days=3)),
        lambda r: r.rows[0].week,
    ),
    "total today": (lambda n: _split(n, NOW), lambda r: r.total_today),
    "total week": (
        lambda n: _split(n, NOW - timedelta(days=3)),
        lambda r: r.total_week,
    ),
    "wait median": (
        lambda n: [fact(wait_s=120) for _ in range(n)] + [fact()] * 10,
        lambda r: r.wait_median_s,
    ),
    "session median": (
        lambda n: (
            [fact(wait_s=60, session_s=900) for _ in range(n)] + [fact(wait_s=60)] * 10
        ),
        lambda r: r.session_median_s,
    ),
    "offers declined": (
        lambda n: [fact(declined=1) for _ in range(n)],
        lambda r: r.offers_declined,
    ),
    "offers timed out": (
        lambda n: [fact(timed_out=1) for _ in range(n)],
        lambda r: r.offers_timed_out,
    ),
    "rating average": (
        lambda n: [fact(rating=4) for _ in range(n)] + [fact()] * 10,
        lambda r: r.rating_average,
    ),
    "not served": (
        lambda n: [unserved() for _ in range(n)] + [fact()] * 10,
        lambda r: r.unserved,
    ),
}


@pytest.mark.parametrize("n", range(MIN_GROUP + 1))
@pytest.mark.parametrize("case", _SUPPRESSION_CASES)
def test_every_figure_is_suppressed_below_five(case: str, n: int) -> None:
    build, pick = _SUPPRESSION_CASES[case]

    figure = pick(report_of(build(n)))

    assert figure.count == n
    if n < MIN_GROUP:
        assert figure.shown() == "<5"
    else:
        assert figure.shown() == str(round(figure.value))


def test_a_single_small_cell_is_not_given_away_by_the_total() -> None:
    # Today: keluarga 2, pekerjaan 10, other 11, total 23. Showing 10, 11 and 23
    # would give keluarga's 2 away, so the smallest other cell is withheld too.
    facts = [fact() for _ in range(2)]
    facts += [fact(category="pekerjaan") for _ in range(10)]
    facts += [fact(category="lain") for _ in range(11)]

    report = report_of(facts)

    shown = [(row.today.shown(), row.week.shown()) for row in report.rows]
    assert shown == [("<5", "<5"), ("*", "*"), ("11", "11")]
    assert report.total_today.shown() == "23"
    plain = render(report, Catalog("id"), LABELS)[0]
    assert "* = disembunyikan" in plain


def test_no_extra_withholding_when_small_cells_hide_each_other() -> None:
    # Keluarga 2 and pekerjaan 1 today: the reader only learns they add up to 3.
    facts = [fact() for _ in range(2)] + [fact(category="pekerjaan")]
    facts += [fact(category="lain") for _ in range(10)]

    report = report_of(facts)

    assert not report.any_withheld
    assert report.total_today.shown() == "13"
    assert "*" not in render(report, Catalog("id"), LABELS)[0]


@pytest.mark.parametrize(
    ("today", "week"),
    [
        # Week 0 and 1 in the first rows bound today's first two to 1 together, which
        # with the shown total 5 would pin today's third row at 4.
        ([0, 1, 4], [0, 1, 5]),
        ([0, 0, 5], [0, 0, 5]),
        ([4, 4, 0], [4, 4, 0]),
        ([0, 3, 9], [1, 3, 9]),
    ],
)
def test_known_tricky_tables_leave_small_cells_ambiguous(
    today: list[int], week: list[int]
) -> None:
    table = stats._protected_table(today, week)

    pinned = _pinned_by_arithmetic(table, max_value=sum(week) + MIN_GROUP)

    assert pinned == []


def test_the_leak_check_finds_leaks_in_an_unprotected_table() -> None:
    values = {(0, 0): 0, (0, 1): 1, (0, 2): 4, (0, None): 5}
    values |= {(1, 0): 0, (1, 1): 1, (1, 2): 5, (1, None): 6}
    unprotected = {cell: Figure(v, v) for cell, v in values.items()}

    assert _pinned_by_arithmetic(unprotected, max_value=11) == [(0, 2)]


def test_no_small_cell_can_be_worked_out_from_any_small_table() -> None:
    """Every table of two rows up to 10: a reader doing arithmetic learns no <5 cell.

    Checked by enumeration, independently of how the module reasons: for each way
    of showing a table, collect every table that would look the same, and require
    each cell shown as <5 to take at least two values among them.
    """
    rows, max_value = 2, 10
    universe = [_with_totals(v, rows) for v in _tables(rows, max_value)]
    published = {values: _shown(values, rows) for values in universe}

    leaks = []
    for pattern in {_withheld(shown) for shown in published.values()}:
        looks_alike: dict[tuple[object, ...], set[tuple[int, ...]]] = defaultdict(set)
        for values in universe:
            looks_alike[_seen(values, pattern)].add(values)

        for values, shown in published.items():
            # Near the edge of the enumeration, its own bound would help a guess.
            if _withheld(shown) != pattern or max(values) > max_value - MIN_GROUP:
                continue
            alike = looks_alike[_seen(values, pattern)]
            for i, value in enumerate(values):
                if value < MIN_GROUP and len({v[i] for v in alike}) == 1:
                    leaks.append((shown, i))

    assert leaks == []


def _tables(rows: int, max_value: int) -> list[tuple[int, ...]]:
    """All (today..., week...) count tables with today <= week per row."""
    pairs = [(t, w) for w in range(max_value + 1) for t in range(w + 1)]
    return [
        tuple(p[0] for p in combo) + tuple(p[1] for p in combo)
        for combo in itertools.product(pairs, repeat=rows)
    ]


def _with_totals(values: tuple[int, ...], rows: int) -> tuple[int, ...]:
    """(today..., today's total, week..., week's total), the order of _cells."""
    today, week = values[:rows], values[rows:]
    return (*today, sum(today), *week, sum(week))


def _cells(rows: int) -> list[tuple[int, int | None]]:
    return [(column, row) for column in (0, 1) for row in [*range(rows), None]]


def _shown(values: tuple[int, ...], rows: int) -> tuple[str, ...]:
    """What the module shows for a table, in the order of _cells."""
    table = stats._protected_table(list(values[:rows]), list(values[rows + 1 : -1]))
    return tuple(table[cell].shown() for cell in _cells(rows))


def _withheld(shown: tuple[str, ...]) -> frozenset[int]:
    return frozenset(i for i, text in enumerate(shown) if text == "*")


def _seen(values: tuple[int, ...], withheld: frozenset[int]) -> tuple[object, ...]:
    """What a reader would see of a table if the cells ``withheld`` were withheld."""
    return tuple(
        "<5" if value < MIN_GROUP else "*" if i in withheld else value
        for i, value in enumerate(values)
    )


def _pinned_by_arithmetic(table: dict, max_value: int) -> list:
    """Cells shown as <5 on which every table that looks the same agrees."""
    rows = len(table) // 2 - 1
    cells = _cells(rows)
    shown = {cell: table[cell].shown() for cell in cells}

    def choices(cell: tuple[int, int | None]) -> range:
        text = shown[cell]
        if text == "<5":
            return range(MIN_GROUP)
        if text == "*":
            return range(MIN_GROUP, max_value + 1)
        return range(int(text), int(text) + 1)

    per_row = [
        [(t, w) for t in choices((0, row)) for w in choices((1, row)) if t <= w]
        for row in range(rows)
    ]
    candidates = []
    for combo in itertools.product(*per_row):
        values = _with_totals(
            tuple(p[0] for p in combo) + tuple(p[1] for p in combo), rows
        )
        if all(v in choices(cell) for v, cell in zip(values, cells, strict=True)):
            candidates.append(values)

    return [
        cell
        for i, cell in enumerate(cells)
        if shown[cell] == "<5" and len({c[i] for c in candidates}) == 1
    ]


# --- Rendering --------------------------------------------------------------------


def _sample() -> list[CurhatFacts]:
    """A week with one busy category, one quiet one and an unknown one."""
    facts = [
        fact(NOW - timedelta(hours=h), wait_s=w, session_s=s, rating=r, declined=d)
        for h, w, s, r, d in [
            (1, 240, 4800, 5, 1),
            (2, 300, 3600, 4, 0),
            (3, 200, 5000, 4, 0),
            (4, 120, 4000, 5, 0),
            (5, 600, 9000, 3, 2),
            (6, 250, None, None, 0),
        ]
    ]
    facts += [fact(NOW - timedelta(days=d), "pekerjaan", wait_s=300) for d in range(6)]
    facts.append(fact(NOW - timedelta(days=2), "pendidikan", timed_out=1))
    return facts


def test_indonesian_report_reads_as_written() -> None:
    # Keluarga's week is withheld: with 6 and 13 shown, Lainnya's 1 would follow.
    plain, _ = render(report_of(_sample()), Catalog("id"), LABELS)

    assert plain == (
        "Statistik layanan curhat, 14 Desember 2026 pukul 12.00 WIB\n"
        "\n"
        "Kategori   Hari ini  7 hari\n"
        "Keluarga          6       *\n"
        "Pekerjaan        <5       6\n"
        "Lainnya          <5      <5\n"
        "Jumlah            7      13\n"
        "\n"
        "7 hari terakhir (8 Desember s.d. 14 Desember 2026), semua kategori:\n"
        "- Waktu tunggu sampai konselor bergabung (median): 5 mnt\n"
        "- Lama sesi (median): 1 j 20 mnt\n"
        "- Tawaran curhat yang ditolak konselor: 3\n"
        "- Tawaran curhat yang tidak dijawab konselor sampai batas waktu: 1\n"
        "- Rata-rata penilaian dari warga (skala 1–5): 4,2\n"
        "- Curhat tidak terlayani (tidak ada konselor yang bisa menerima): <5\n"
        "\n"
        "<5 = dihitung dari kurang dari 5 curhat; angka persisnya tidak ditampilkan"
        " agar tidak ada warga yang dapat dikenali. * = disembunyikan agar angka"
        " kecil tidak dapat dihitung balik dari jumlahnya."
    )


@pytest.mark.parametrize("lang", ["id", "en"])
def test_both_languages_render_without_identifiers(lang: str) -> None:
    report = report_of(_sample())

    plain, html = render(report, Catalog(lang), LABELS)

    assert "<5" in plain
    assert "&lt;5" in html and "<5" not in html
    assert html.startswith("<h4>") and "<table>" in html
    for text in (plain, html):
        assert not {"@", "!", "#"} & set(text)
        assert "Keluarga" in text
    assert plain.count("\n") > 10


@pytest.mark.parametrize(
    ("lang", "title", "other"),
    [
        ("id", "Statistik layanan curhat, 14 Desember 2026", "Lainnya"),
        ("en", "Curhat service statistics, 14 December 2026", "Other"),
    ],
)
def test_text_follows_the_catalog_language(lang: str, title: str, other: str) -> None:
    plain, html = render(report_of([]), Catalog(lang), LABELS)

    assert plain.startswith(title)
    assert other in plain and other in html


def test_html_escapes_labels() -> None:
    labels = {"keluarga": "Keluarga <b>& rumah</b>", "pekerjaan": "Kerja"}

    _, html = render(report_of([]), Catalog("id"), labels)

    assert "Keluarga &lt;b&gt;&amp; rumah&lt;/b&gt;" in html
    assert "<b>" not in html


def test_missing_label_falls_back_to_the_key() -> None:
    plain, _ = render(report_of([]), Catalog("id"), {"keluarga": "Keluarga"})

    assert "\npekerjaan " in plain


@pytest.mark.parametrize(
    "label", ["@alice:example.org", "Tim !abc:example.org", "#konseling:kota.go.id"]
)
def test_labels_that_look_like_matrix_ids_are_refused(label: str) -> None:
    with pytest.raises(ValueError, match="'keluarga' looks like a Matrix ID"):
        render(report_of([]), Catalog("id"), {"keluarga": label})


@pytest.mark.parametrize(
    ("seconds", "id_text", "en_text"),
    [
        (0, "0 dtk", "0 s"),
        (45, "45 dtk", "45 s"),
        (59.4, "59 dtk", "59 s"),
        (89, "1 mnt", "1 min"),
        (90, "2 mnt", "2 min"),
        (240, "4 mnt", "4 min"),
        (3569, "59 mnt", "59 min"),
        (3570, "1 j", "1 h"),
        (4800, "1 j 20 mnt", "1 h 20 min"),
        (26 * 3600 + 5 * 60, "26 j 5 mnt", "26 h 5 min"),
    ],
)
def test_durations_read_naturally(seconds: float, id_text: str, en_text: str) -> None:
    assert stats._duration_formatter(Catalog("id"))(seconds) == id_text
    assert stats._duration_formatter(Catalog("en"))(seconds) == en_text


def test_large_counts_use_the_language_thousands_mark() -> None:
    assert stats._count_formatter(Catalog("id"))(12345) == "12.345"
    assert stats._count_formatter(Catalog("en"))(12345) == "12,345"


# --- Input checks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"requested_at": datetime(2026, 12, 14, 9, 0)}, "requested_at must be"),
        ({"closed_at": datetime(2026, 12, 14, 9, 0)}, "closed_at must be"),
        ({"rating": 0}, "rating must be 1 to 5, got 0"),
        ({"rating": 6}, "rating must be 1 to 5, got 6"),
        ({"offers_declined": -1}, "offer counts cannot be negative"),
    ],
)
def test_facts_refuse_values_that_would_skew_figures(
    changes: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {
        "category": "keluarga",
        "requested_at": NOW,
        "counsellor_joined_at": None,
        "closed_at": None,
        "rating": None,
        "offers_declined": 0,
        "offers_timed_out": 0,
    }

    with pytest.raises(ValueError, match=message):
        CurhatFacts(**{**fields, **changes})  # type: ignore[arg-type]


def test_compute_refuses_a_naive_now_and_the_reserved_category() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        compute([], now=datetime(2026, 12, 14), tz=JAKARTA, categories=CATEGORIES)
    with pytest.raises(ValueError, match="reserved"):
        compute([], now=NOW, tz=JAKARTA, categories=["keluarga", OTHER])
