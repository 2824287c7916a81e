"""Anonymised statistics for supervisors: figures about curhats, never about people.

The input is :class:`CurhatFacts`, which by construction carries no identifier of any
kind (no Matrix ID, room ID, case code or message), so no report built here can name
anyone. What a report could still do is single someone out through a small number
("one curhat about violence today"), so every figure computed from fewer than
:data:`MIN_GROUP` curhats is shown only as ``<5``.

Hiding small cells is not enough when the table also shows totals: a reader can take
the shown cells away from the total and get the hidden one back. :func:`compute`
therefore also withholds, as ``*``, extra figures until no small figure can be worked
out from the rest of the report (what statistics offices call secondary or
complementary suppression).

The module is pure: no I/O, no clock, no logging. The caller passes ``now``.
"""

from __future__ import annotations

import html
import math
import re
import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sobat_matrix.i18n import Catalog

MIN_GROUP = 5
WINDOW_DAYS = 7
OTHER = "_other"

SUPPRESSED = f"<{MIN_GROUP}"
WITHHELD = "*"

# A label that looks like a user, room or alias ID must never reach a report, even if
# an operator typed one into the category labels by mistake.
_MATRIX_ID = re.compile(r"[@!#+$][^\s:]+:\S+")

_TODAY, _WEEK = 0, 1

# A cell of the category table: (column, row); row None is the column's total.
_Cell = tuple[int, int | None]
_Known = dict[_Cell, tuple[float, float]]


@dataclass(frozen=True)
class CurhatFacts:
    """What statistics may know about one curhat: times, category, rating, counts.

    Deliberately nothing else: no IDs, no case code, no text, so that nothing built
    from these facts can point at a person.
    """

    category: str
    requested_at: datetime
    counsellor_joined_at: datetime | None
    closed_at: datetime | None
    rating: int | None
    offers_declined: int
    offers_timed_out: int
    unserved: bool = False
    """Closed because no counsellor could take it (all declined, or no answer)."""

    def __post_init__(self) -> None:
        """Refuse facts that would silently skew every figure."""
        for name in ("requested_at", "counsellor_joined_at", "closed_at"):
            moment = getattr(self, name)
            if moment is not None and moment.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware")

        if self.rating is not None and not 1 <= self.rating <= 5:
            raise ValueError(f"rating must be 1 to 5, got {self.rating}")
        if self.offers_declined < 0 or self.offers_timed_out < 0:
            raise ValueError("offer counts cannot be negative")


def _count_text(value: float) -> str:
    return str(round(value))


@dataclass(frozen=True)
class Figure:
    """One number of a report, with how many curhats it was computed from.

    The exact value is kept (tests and the suppression logic need it); only
    :meth:`shown` decides what a reader may see, so the rule lives in one place.
    """

    value: float
    count: int
    withheld: bool = False
    """Hidden although ``count`` is large enough, to protect a small figure nearby."""

    @property
    def hidden(self) -> bool:
        return self.count < MIN_GROUP or self.withheld

    def shown(self, fmt: Callable[[float], str] = _count_text) -> str:
        """The figure as a reader may see it: ``<5``, ``*`` or ``fmt(value)``."""
        if self.count < MIN_GROUP:
            return SUPPRESSED
        if self.withheld:
            return WITHHELD
        return fmt(self.value)


def _tally(count: int) -> Figure:
    """A count of curhats: the figure is its own group size."""
    return Figure(value=count, count=count)


@dataclass(frozen=True)
class CategoryRow:
    """Curhats requested in one category: today and over the window."""

    category: str
    today: Figure
    week: Figure


@dataclass(frozen=True)
class Report:
    """Every figure of one statistics report, exact, with its group size."""

    generated_at: datetime
    """``now`` in the report's time zone; the title shows its date and time."""
    first_day: date
    last_day: date
    rows: tuple[CategoryRow, ...]
    total_today: Figure
    total_week: Figure
    wait_median_s: Figure
    session_median_s: Figure
    offers_declined: Figure
    offers_timed_out: Figure
    rating_average: Figure
    unserved: Figure = Figure(0, 0)
    """Curhats no counsellor could take, in the window: a count, so ``<5`` below 5."""

    def figures(self) -> Iterator[Figure]:
        """Every figure, for checks that must hold for all of them."""
        for row in self.rows:
            yield row.today
            yield row.week
        yield from (self.total_today, self.total_week, *self.overall())

    def overall(self) -> tuple[Figure, ...]:
        return (
            self.wait_median_s,
            self.session_median_s,
            self.offers_declined,
            self.offers_timed_out,
            self.rating_average,
            self.unserved,
        )

    @property
    def any_withheld(self) -> bool:
        return any(f.shown() == WITHHELD for f in self.figures())


def compute(
    facts: Iterable[CurhatFacts],
    *,
    now: datetime,
    tz: ZoneInfo,
    categories: Sequence[str],
) -> Report:
    """Build the report for the calendar day of ``now`` in ``tz`` and the 6 before.

    Curhats count on the local day they were requested. Categories not in
    ``categories`` are counted under :data:`OTHER`, so a stale or mistyped category
    neither disappears nor reaches the output as raw text.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    order = _category_order(categories)
    local_now = now.astimezone(tz)
    today = local_now.date()
    first_day = today - timedelta(days=WINDOW_DAYS - 1)

    index = {category: i for i, category in enumerate(order)}
    today_counts = [0] * len(order)
    week_counts = [0] * len(order)
    in_window: list[CurhatFacts] = []
    for fact in facts:
        day = fact.requested_at.astimezone(tz).date()
        if not first_day <= day <= today:
            continue
        row = index.get(fact.category, index[OTHER])
        week_counts[row] += 1
        if day == today:
            today_counts[row] += 1
        in_window.append(fact)

    table = _protected_table(today_counts, week_counts)
    rows = tuple(
        CategoryRow(category, table[(_TODAY, i)], table[(_WEEK, i)])
        for i, category in enumerate(order)
    )
    return Report(
        generated_at=local_now,
        first_day=first_day,
        last_day=today,
        rows=rows,
        total_today=table[(_TODAY, None)],
        total_week=table[(_WEEK, None)],
        **_overall(in_window),
    )


def _category_order(categories: Sequence[str]) -> list[str]:
    """Configured categories once each, in order, then the catch-all row."""
    if OTHER in categories:
        raise ValueError(f"{OTHER!r} is reserved for categories not configured")
    return [*dict.fromkeys(categories), OTHER]


def _overall(in_window: list[CurhatFacts]) -> dict[str, Figure]:
    """The window's figures over all categories together."""
    waits = [
        _seconds(f.requested_at, f.counsellor_joined_at)
        for f in in_window
        if f.counsellor_joined_at is not None
    ]
    sessions = [
        _seconds(f.counsellor_joined_at, f.closed_at)
        for f in in_window
        if f.counsellor_joined_at is not None and f.closed_at is not None
    ]
    ratings = [f.rating for f in in_window if f.rating is not None]

    return {
        "wait_median_s": _median(waits),
        "session_median_s": _median(sessions),
        "offers_declined": Figure(
            sum(f.offers_declined for f in in_window), len(in_window)
        ),
        "offers_timed_out": Figure(
            sum(f.offers_timed_out for f in in_window), len(in_window)
        ),
        "rating_average": Figure(
            statistics.fmean(ratings) if ratings else 0.0, len(ratings)
        ),
        "unserved": _tally(sum(f.unserved for f in in_window)),
    }


def _seconds(start: datetime, end: datetime) -> float:
    # Timestamps come from different servers' clocks; a join stamped a moment before
    # the request is a skew, not a negative wait.
    return max(0.0, (end - start).total_seconds())


def _median(values: list[float]) -> Figure:
    return Figure(statistics.median(values) if values else 0.0, len(values))


# --- Complementary suppression ------------------------------------------------------


def _protected_table(today: list[int], week: list[int]) -> dict[_Cell, Figure]:
    """The category table as figures, with the extra cells to withhold marked."""
    values: dict[_Cell, int] = {}
    for column, counts in ((_TODAY, today), (_WEEK, week)):
        for row, count in enumerate(counts):
            values[(column, row)] = count
        values[(column, None)] = sum(counts)

    withheld = _cells_to_withhold(values, rows=len(today))
    return {
        cell: Figure(value, value, withheld=cell in withheld)
        for cell, value in values.items()
    }


def _cells_to_withhold(values: dict[_Cell, int], *, rows: int) -> set[_Cell]:
    """Shown cells to hide so that no hidden small figure can be worked out.

    Greedy: while a reader could pin a small figure down, hide the shown cell that
    leaves the fewest pinned, then the smallest; totals only when no cell is left.
    Tables are small, so trying every cell each round costs nothing.

    This guards against a reader doing arithmetic on one report. It does not guard
    against one who re-runs this algorithm on guessed tables to learn why a ``*``
    sits where it does, nor against comparing successive reports (today's column at
    09:00 and at 10:00 differ by the curhats of that hour).
    """
    # TODO(stats): closing both gaps needs the caller's schedule (one report per
    # closed day) or added noise, not more suppression.
    withheld: set[_Cell] = set()
    pinned = _pinned_cells(values, withheld, rows)
    while pinned:
        shown = [c for c in values if values[c] >= MIN_GROUP and c not in withheld]
        candidates = [c for c in shown if c[1] is not None] or shown
        if not candidates:
            # Everything is hidden already; nothing shown is left to give it away.
            break

        trials = {c: _pinned_cells(values, withheld | {c}, rows) for c in candidates}
        best = min(candidates, key=lambda c: (len(trials[c]), values[c], _order(c)))
        withheld.add(best)
        pinned = trials[best]
    return withheld


def _order(cell: _Cell) -> tuple[int, int]:
    column, row = cell
    return (column, -1 if row is None else row)


def _pinned_cells(
    values: dict[_Cell, int], withheld: set[_Cell], rows: int
) -> set[_Cell]:
    """Hidden small cells a reader could work out, with ``withheld`` hidden too."""
    hidden = {c for c, v in values.items() if v < MIN_GROUP} | withheld
    known = _reader_knowledge(values, hidden)
    return {c for c in hidden if values[c] < MIN_GROUP and _pinned(known, c, rows)}


def _reader_knowledge(values: dict[_Cell, int], hidden: set[_Cell]) -> _Known:
    """The range a reader knows each cell to lie in, from what it shows."""
    known: _Known = {}
    for cell, value in values.items():
        if cell not in hidden:
            known[cell] = (value, value)
        elif value < MIN_GROUP:
            known[cell] = (0, MIN_GROUP - 1)
        else:
            known[cell] = (MIN_GROUP, math.inf)
    return known


def _pinned(known: _Known, cell: _Cell, rows: int) -> bool:
    """Whether the reader can tell which of 0 to 4 a hidden small cell is."""
    possible = 0
    for value in range(MIN_GROUP):
        if _consistent({**known, cell: (value, value)}, rows):
            possible += 1
    return possible <= 1


def _consistent(known: _Known, rows: int) -> bool:
    """Whether some table of whole numbers fits every range a reader knows.

    Besides the ranges, a reader knows that each column adds up to its total and that
    today's curhats are among the week's. Each row, read as the pairs (today, week)
    it allows, is a lattice polygon whose sides face only six directions; so is the
    totals row. In the plane, a sum of lattice polygons holds exactly the sums of their
    lattice points, so a fitting table exists exactly when the six summed support
    values say the polygons can add up to the totals. Exact, and linear in the rows;
    per-cell interval narrowing was tried first and missed joint constraints.
    """
    supports = [
        _support(known[(_TODAY, row)], known[(_WEEK, row)]) for row in range(rows)
    ]
    totals = _support(known[(_TODAY, None)], known[(_WEEK, None)])
    if totals is None or any(s is None for s in supports):
        return False

    # The rows minus the totals must be able to reach zero: negating a polygon swaps
    # each direction with its opposite.
    negated = (totals[1], totals[0], totals[3], totals[2], totals[5], totals[4])
    return all(
        sum(s[k] for s in supports if s is not None) + negated[k] >= 0 for k in range(6)
    )


def _support(
    today: tuple[float, float], week: tuple[float, float]
) -> tuple[float, ...] | None:
    """Support values of {(t, w): t in today, w in week, t <= w}, None if empty.

    Directions, in order: +t, -t, +w, -w, +(w - t), +(t - w). Lower bounds are
    finite, so no infinity is ever subtracted from another.
    """
    t_low, t_high = today
    w_low, w_high = week
    if t_low > t_high or w_low > w_high or t_low > w_high:
        return None

    t_max = min(t_high, w_high)
    w_min = max(w_low, t_low)
    return (
        t_max,
        -t_low,
        w_high,
        -w_min,
        w_high - t_low,
        -max(0, w_min - t_max),
    )


# --- Rendering ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Texts:
    """Everything a report says, already in the catalog's language, unescaped."""

    title: str
    header: tuple[str, str, str]
    rows: tuple[tuple[str, str, str], ...]
    total: tuple[str, str, str]
    overall_heading: str
    overall: tuple[str, ...]
    legend: str


def render(
    report: Report, catalog: Catalog, category_labels: Mapping[str, str]
) -> tuple[str, str]:
    """The report as Matrix ``body`` (plain text) and ``formatted_body`` (HTML).

    ``category_labels`` maps configured category keys to what supervisors read; a
    missing label falls back to the key. A label that looks like a Matrix ID is
    refused, so the promise of "figures, never people" holds even for config typos.
    """
    texts = _texts(report, catalog, category_labels)
    return _plain(texts), _html(texts)


def _texts(
    report: Report, catalog: Catalog, category_labels: Mapping[str, str]
) -> _Texts:
    """Turn every figure and label into the words of the catalog's language."""
    count = _count_formatter(catalog)
    days = WINDOW_DAYS

    rows = tuple(
        (
            _label(row.category, catalog, category_labels),
            row.today.shown(count),
            row.week.shown(count),
        )
        for row in report.rows
    )
    title = catalog.text(
        "stats.title",
        date=_date_text(report.generated_at.date(), catalog),
        time=catalog.text(
            "stats.time",
            hour=f"{report.generated_at.hour:02d}",
            minute=f"{report.generated_at.minute:02d}",
        ),
        zone=report.generated_at.tzname() or "",
    )

    legend = catalog.text("stats.legend", suppressed=SUPPRESSED, min_group=MIN_GROUP)
    if report.any_withheld:
        legend += " " + catalog.text("stats.legend_withheld", withheld=WITHHELD)

    return _Texts(
        title=title,
        header=(
            catalog.text("stats.column_category"),
            catalog.text("stats.column_today"),
            catalog.text("stats.column_week", days=days),
        ),
        rows=rows,
        total=(
            catalog.text("stats.total"),
            report.total_today.shown(count),
            report.total_week.shown(count),
        ),
        overall_heading=catalog.text(
            "stats.overall_heading",
            days=days,
            first=_date_text(report.first_day, catalog, with_year=False),
            last=_date_text(report.last_day, catalog),
        ),
        overall=_overall_lines(report, catalog),
        legend=legend,
    )


def _overall_lines(report: Report, catalog: Catalog) -> tuple[str, ...]:
    count = _count_formatter(catalog)
    duration = _duration_formatter(catalog)
    mark = catalog.text("stats.decimal_mark")

    def rating(value: float) -> str:
        return f"{value:.1f}".replace(".", mark)

    return (
        catalog.text("stats.wait_median", value=report.wait_median_s.shown(duration)),
        catalog.text(
            "stats.session_median", value=report.session_median_s.shown(duration)
        ),
        catalog.text(
            "stats.offers_declined", value=report.offers_declined.shown(count)
        ),
        catalog.text(
            "stats.offers_timed_out", value=report.offers_timed_out.shown(count)
        ),
        catalog.text("stats.rating_average", value=report.rating_average.shown(rating)),
        catalog.text("stats.unserved", value=report.unserved.shown(count)),
    )


def _label(category: str, catalog: Catalog, labels: Mapping[str, str]) -> str:
    if category == OTHER:
        return catalog.text("stats.category_other")

    label = labels.get(category, category)
    if _MATRIX_ID.search(label):
        raise ValueError(f"the label of category {category!r} looks like a Matrix ID")
    return label


def _date_text(day: date, catalog: Catalog, *, with_year: bool = True) -> str:
    month = catalog.text(f"stats.month_{day.month}")
    if with_year:
        return catalog.text("stats.date", day=day.day, month=month, year=day.year)
    return catalog.text("stats.date_short", day=day.day, month=month)


def _count_formatter(catalog: Catalog) -> Callable[[float], str]:
    mark = catalog.text("stats.thousands_mark")

    def count(value: float) -> str:
        return f"{round(value):,}".replace(",", mark)

    return count


def _duration_formatter(catalog: Catalog) -> Callable[[float], str]:
    """Seconds as a supervisor says them: "45 dtk", "4 mnt", "1 j 20 mnt"."""

    def duration(value: float) -> str:
        seconds = round(value)
        if seconds < 60:
            return catalog.text("stats.duration_seconds", seconds=seconds)

        minutes = (seconds + 30) // 60
        if minutes < 60:
            return catalog.text("stats.duration_minutes", minutes=minutes)

        hours, minutes = divmod(minutes, 60)
        if minutes == 0:
            return catalog.text("stats.duration_hours", hours=hours)
        return catalog.text(
            "stats.duration_hours_minutes", hours=hours, minutes=minutes
        )

    return duration


def _plain(texts: _Texts) -> str:
    """Plain text with the table's columns aligned for monospaced clients."""
    table = [texts.header, *texts.rows, texts.total]
    label_width = max(len(r[0]) for r in table)
    widths = [max(len(r[i]) for r in table) for i in (1, 2)]
    lines = [
        f"{r[0]:<{label_width}}  {r[1]:>{widths[0]}}  {r[2]:>{widths[1]}}".rstrip()
        for r in table
    ]

    return "\n".join(
        [
            texts.title,
            "",
            *lines,
            "",
            texts.overall_heading,
            *(f"- {line}" for line in texts.overall),
            "",
            texts.legend,
        ]
    )


def _html(texts: _Texts) -> str:
    """HTML limited to tags the Matrix spec allows, every text escaped.

    ``quote=False`` because no text goes into an attribute, and it keeps apostrophes
    readable instead of turning them into character references.
    """

    def esc(text: str) -> str:
        return html.escape(text, quote=False)

    def cells(tag: str, row: tuple[str, str, str]) -> str:
        return "".join(f"<{tag}>{esc(text)}</{tag}>" for text in row)

    body_rows = "".join(f"<tr>{cells('td', r)}</tr>" for r in texts.rows)
    total = "".join(f"<td><strong>{esc(text)}</strong></td>" for text in texts.total)
    overall = "<br>".join(esc(line) for line in texts.overall)

    return (
        f"<h4>{esc(texts.title)}</h4>"
        f"<table><thead><tr>{cells('th', texts.header)}</tr></thead>"
        f"<tbody>{body_rows}<tr>{total}</tr></tbody></table>"
        f"<p>{esc(texts.overall_heading)}<br>{overall}</p>"
        f"<p><em>{esc(texts.legend)}</em></p>"
    )
