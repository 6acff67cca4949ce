"""The health strip, the verdict look and the field labels of the web UI, without a server (issue 23).

Built from plain calendar entries, as ``/api/calendar`` gives them: with a ``verdict`` (and its
``verdict_note``), or with the former ``health`` word only, which maps onto a verdict.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from company_activity.state.verdict import LOOK, ORDER
from company_activity.web.charts import MODEBAR_ROW, TOP_MARGIN, company_figure, overview_figures
from company_activity.web.render import (
    LABELS,
    day_title,
    label,
    render,
    slug,
    strip,
    summary,
    text_colour,
    verdict_css,
    verdict_of,
)


def entry(day: date, verdict: str | None = None, note: str = "", health: str | None = None) -> dict[str, Any]:
    e: dict[str, Any] = {"day": day.isoformat(), "rows": 5, "churn_risk": 1}
    if verdict is not None:
        e |= {"verdict": verdict, "verdict_note": note}
    if health is not None:
        e["health"] = health
    return e


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ({"verdict": "last attempt failed", "health": "built"}, "last attempt failed"),
        ({"verdict": "warning", "health": "built"}, "warning"),
        ({"health": "built"}, "ok"),
        ({"health": "partial"}, "pending"),
        ({"health": "pending"}, "pending"),
        ({"health": "failed"}, "failed"),
        ({"health": "missing"}, "no data"),
        ({"status": "built"}, "ok"),  # the overview's days
        ({"status": "lost"}, "lost"),
        ({}, "no data"),
    ],
)
def test_a_day_shows_its_verdict_or_what_its_health_word_says(given: dict[str, Any], shown: str) -> None:
    assert verdict_of(given) == shown


def test_the_strip_has_one_cell_per_day_with_its_verdict_in_the_title() -> None:
    first = date(2026, 11, 26)  # a Thursday
    verdicts = list(ORDER) + ["ok"] * 3
    days = [entry(first + timedelta(days=k), v, f"note {k}") for k, v in enumerate(verdicts)]
    days[3]["verdict_note"] = "data from run R; the last attempt (run S) failed at ingest_usage"
    s = strip(days, today=date(2026, 11, 29))
    assert [w for w, _ in s.rows] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    cells = {c.day: c for _, row in s.rows for c in row}
    shown = [c for c in cells.values() if c.verdict is not None]
    assert len(shown) == len(days)
    for d in days:
        c = cells[d["day"]]
        assert c.verdict == d["verdict"] and c.css_class == slug(d["verdict"])
        assert c.glyph == LOOK[d["verdict"]].glyph
        assert d["verdict"] in c.title and d["verdict_note"] in c.title and d["day"] in c.title
    assert cells["2026-11-29"].title == (
        "2026-11-29 (Sun, today UTC): last attempt failed — "
        "data from run R; the last attempt (run S) failed at ingest_usage"
    )
    assert [c.day for c in cells.values() if c.today] == ["2026-11-29"] and s.today_shown
    # the weeks' days outside the range: no verdict, said so
    assert cells["2026-11-23"].verdict is None and "outside the range" in cells["2026-11-23"].title
    # one column per ISO week: 26 Nov (Thu) … 5 Dec (Sat) is two weeks
    assert all(len(row) == 2 for _, row in s.rows)


def test_the_strip_labels_each_month_and_the_year() -> None:
    first = date(2026, 11, 20)
    days = [entry(first + timedelta(days=k), "ok") for k in range(70)]  # … 2027-01-28
    s = strip(days, today=date(2030, 1, 1))
    assert [(m.label, m.year) for m in s.months] == [("Nov", 2026), ("Dec", None), ("Jan", 2027)]
    weeks = len(s.rows[0][1])
    assert sum(m.span for m in s.months) == weeks
    # Dec's label starts over the week holding 1 December (30 Nov … 6 Dec), Jan's over 28 Dec … 3 Jan
    assert [m.span for m in s.months] == [2, 4, 5]
    assert not s.today_shown and not any(c.today for _, row in s.rows for c in row)
    assert s.summary == "70 days: 70 ok"


def test_a_days_title_says_day_weekday_verdict_and_why() -> None:
    assert day_title("2026-11-28", "last attempt failed", "data from run R") == (
        "2026-11-28 (Sat): last attempt failed — data from run R"
    )
    assert day_title("2026-11-30", "ok") == "2026-11-30 (Mon): ok"


def test_the_strip_takes_the_former_health_words() -> None:
    day = date(2026, 11, 28)
    s = strip([entry(day, health="built"), entry(day + timedelta(days=1), health="missing")], today=day)
    cells = [c for _, row in s.rows for c in row if c.verdict is not None]
    assert [c.title for c in cells] == ["2026-11-28 (Sat, today UTC): ok", "2026-11-29 (Sun): no data"]


def test_summary_counts_the_verdicts_worst_first() -> None:
    day = date(2026, 11, 1)
    days = [entry(day + timedelta(days=k), v) for k, v in enumerate(["ok", "warning", "ok", "failed"])]
    assert summary(days) == "4 days: 1 failed, 1 warning, 2 ok"
    assert summary([]) == "0 days"


def test_each_verdict_has_its_colour_and_a_readable_text_colour() -> None:
    css = str(verdict_css())
    for v in ORDER:
        assert f".{slug(v)}{{background:{LOOK[v].css};color:{text_colour(LOOK[v].css)}}}" in css
    assert text_colour("#d62728") == "#ffffff"  # red: white text
    assert text_colour("#dddddd") == "#1d1d1f"  # light grey: dark text
    assert text_colour("#e6b800") == "#1d1d1f"  # yellow: dark text


def test_the_legend_lists_the_seven_states_with_glyph_and_meaning() -> None:
    day = date(2026, 11, 28)
    data = {
        "start": day.isoformat(),
        "end": day.isoformat(),
        "country": None,
        "industry": None,
        "countries": [],
        "industries": [],
        "days": [{"day": day.isoformat(), "status": "built", **dict.fromkeys(_DAY_KEYS, 1)}],
        "weeks": [],
        "months": [],
    }
    page = render(
        "overview.html",
        data=data,
        calendar=[entry(day, "warning", "volume <b>dropped</b>")],
        figures=overview_figures(data),
        today=day,
    )
    legend = page[page.index('id="strip-legend"') :]
    for v in ORDER:
        assert (
            f'<li data-state="{v}"><span class="swatch {slug(v)}" aria-hidden="true">{LOOK[v].glyph}'
            in legend
        )
        assert f"<b>{v}</b>: {LOOK[v].meaning.replace(chr(39), '&#39;')}" in legend
    assert 'title="2026-11-28 (Sat, today UTC): warning — volume &lt;b&gt;dropped&lt;/b&gt;"' in page
    assert 'aria-current="date"' in page and 'data-verdict="warning"' in page


_DAY_KEYS = (
    "companies",
    "active_companies",
    "active_users",
    "events",
    "churn_risk",
    "active_users_7d_avg",
    "events_7d_avg",
)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("7d_active_users", "Active users (7-day sum)"),
        ("record_count", "Records loaded"),
        ("last_contact_at", "Last contact (UTC)"),
        ("missing_crm_count", "Companies not in the CRM"),
        ("some_new_column", "Some new column"),
    ],
)
def test_fields_are_labelled_in_words(name: str, words: str) -> None:
    assert label(name) == words


def test_no_label_is_a_column_name() -> None:
    for name, words in LABELS.items():
        assert "_" not in words and words[0].isupper() and words != name, name


def _company(active: list[int | None]) -> dict[str, Any]:
    first = date(2026, 11, 1)
    days = [
        {"activity_date": (first + timedelta(days=k)).isoformat(), "active_users": a, "events": a and a * 3}
        for k, a in enumerate(active)
    ]
    return {
        "first_day": days[0]["activity_date"],
        "last_day": days[-1]["activity_date"],
        "days": days,
        "churn_spells": [],
    }


def test_a_company_without_usage_has_no_chart() -> None:
    assert company_figure(_company([0, 0, None, 0])) is None
    fig = company_figure(_company([0, 2, None, 0]))
    assert fig is not None and fig["data"][0]["y"] == [0, 2, None, 0]


def test_the_title_has_a_row_of_its_own_below_the_modebar() -> None:
    fig = company_figure(_company([1, 2]))
    assert fig is not None
    title = fig["layout"]["title"]
    assert title["yref"] == "container" and title["yanchor"] == "top" and title["y"] == 1
    assert title["pad"]["t"] == MODEBAR_ROW >= 30  # the modebar's buttons are 24-28 px high
    assert fig["layout"]["margin"]["t"] == TOP_MARGIN >= MODEBAR_ROW + 2 * 24  # the title, the legend
