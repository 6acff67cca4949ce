"""The ``status`` rendering: a calendar and table for the terminal, JSON for machines."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import click
import pytest

from company_activity.status_view import (
    checks_level,
    day_level,
    render_calendar,
    render_json,
    status_level,
    step_levels,
)


def row(day: date, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "day": day,
        "crm_status": "loaded",
        "crm_rows": 1950,
        "crm_rejected": 0,
        "usage_status": "complete",
        "usage_records": 1496,
        "build_status": "built",
        "build_rows": 1950,
        "churn_risk": 10,
        "last_error": None,
        "checks": "ok",
    }
    base.update(values)
    return base


LONG_ERROR = "CRM snapshot for 2026-11-04 is missing: file:///lake/crm/crm_daily_2026-11-04.csv " + "x" * 300
ROWS = [  # newest first, as Pipeline.status() returns them
    row(
        date(2026, 11, 5),
        usage_status="pending",
        usage_records=None,
        build_status=None,
        build_rows=None,
        churn_risk=None,
        last_error="usage for 2026-11-05 is not final yet (409 date_not_final)",
    ),
    row(
        date(2026, 11, 4),
        crm_status="missing",
        crm_rows=None,
        crm_rejected=None,
        usage_records=1503,
        churn_risk=12,
        last_error=LONG_ERROR,
        checks="missing_from_crm:warn",
    ),
    row(date(2026, 11, 3), crm_rejected=3, usage_records=1020, churn_risk=11, checks="volume_usage:warn"),
    row(
        date(2026, 11, 2),
        usage_records=1511,
        build_status="failed",
        build_rows=None,
        churn_risk=None,
        last_error="quality check failed: grain_unique: 3 duplicate\nkeys",
        checks="grain_unique:fail, missing_from_crm:warn",
    ),
    row(
        date(2026, 10, 30),
        usage_status="lost",
        usage_records=None,
        build_status=None,
        build_rows=None,
        churn_risk=None,
        last_error="usage lost: 404 date_not_available",
    ),
    row(date(2026, 10, 29)),
]


def plain(**kw: Any) -> str:
    return render_calendar(ROWS, color=False, **kw)


def line_of(text: str, day: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(day)]
    return line


# == levels ================================================================================================
def test_levels() -> None:
    assert [
        status_level(s) for s in ("loaded", "complete", "built", "pending", "lost", "failed", "missing")
    ] == [
        "ok",
        "ok",
        "ok",
        "pending",
        "lost",
        "failed",
        "failed",
    ]
    assert status_level(None) == "no data" and status_level("something new") == "warning"
    assert checks_level("ok") == "ok" and checks_level(None) == "no data"
    assert checks_level("a:warn, b:pass") == "warning" and checks_level("a:warn, b:fail") == "failed"
    assert step_levels(ROWS[2]) == {"crm": "warning", "usage": "ok", "build": "ok", "checks": "warning"}
    assert [day_level(r) for r in ROWS] == ["pending", "failed", "warning", "failed", "lost", "ok"]


# == the calendar ==========================================================================================
def test_the_header_counts_the_days() -> None:
    first, second = plain(start=date(2026, 10, 23), end=date(2026, 11, 5)).splitlines()[:2]
    assert first == "company-activity status 2026-10-23 … 2026-11-05"
    assert second == "14 days: 1 ok, 1 warning, 1 pending, 2 failed, 1 lost, 8 no data"


def test_the_week_grid() -> None:
    lines = plain(start=date(2026, 10, 23), end=date(2026, 11, 5)).splitlines()
    assert lines[3] == "           Mon  Tue  Wed  Thu  Fri  Sat  Sun"
    assert lines[4] == "2026-W43                      23·  24·  25·"
    assert lines[5] == "2026-W44  26·  27·  28·  29✓  30⊘  31·   1·"
    assert lines[6] == "2026-W45   2✗   3!   4✗   5…"
    assert lines[7] == "✓ ok  ! warning  ↻ last attempt failed  … pending  ✗ failed  ⊘ lost  · no data"


def test_by_default_the_calendar_spans_the_rows() -> None:
    lines = plain().splitlines()
    assert lines[0] == "company-activity status 2026-10-29 … 2026-11-05"
    assert lines[1].startswith("8 days: 1 ok,")
    assert lines[4] == "2026-W44                 29✓  30⊘  31·   1·"


def test_the_table_rows() -> None:
    text = plain(width=200)
    assert (
        "day           crm          rows  usage       records  build       rows churn  last run (UTC)   steps"
        in text
    )
    # each line starts with the day's level: the same symbol as the calendar
    assert line_of(text, "2026-10-29") == (
        "2026-10-29 ✓  ✓ loaded     1950  ✓ complete     1496  ✓ built     1950    10"
    )
    assert line_of(text, "2026-11-05") == (
        "2026-11-05 …  ✓ loaded     1950  … pending         -  · -            -     -"
    )
    lines = text.splitlines()
    shown = {r["day"].isoformat() for r in ROWS}
    below = {ln[:10]: nxt for ln, nxt in zip(lines, [*lines[1:], ""], strict=True) if ln[:10] in shown}
    assert below["2026-11-05"] == "              usage for 2026-11-05 is not final yet (409 date_not_final)"
    assert below["2026-11-03"] == "              checks volume_usage:warn; 3 CRM rows rejected"
    assert line_of(text, "2026-11-03").startswith("2026-11-03 !  ! loaded")
    two = line_of(text, "2026-11-02")
    assert two.startswith("2026-11-02 ✗") and "✗ failed" in two
    assert below["2026-11-02"] == (
        "              checks grain_unique:fail, missing_from_crm:warn; quality check failed: grain_unique: "
        "3 duplicate keys"
    )
    assert line_of(text, "2026-10-30").startswith("2026-10-30 ⊘") and "⊘ lost" in line_of(text, "2026-10-30")
    assert "✗ missing       -" in line_of(text, "2026-11-04")
    # newest first
    days = [ln[:10] for ln in lines if ln[:4] == "2026" and ln[4] == "-" and ln[7] == "-"]
    assert days == ["2026-11-05", "2026-11-04", "2026-11-03", "2026-11-02", "2026-10-30", "2026-10-29"]


def test_a_day_whose_steps_are_ok_but_a_check_failed_says_so_on_its_line() -> None:
    """The calendar's ✗ and the row agree: the row carries the day's level and names what failed."""
    rows = [row(date(2026, 11, 6), checks="grain_unique:fail", failed_step="build", last_error="kept out")]
    text = render_calendar(rows, color=False, width=120)
    assert "   6✗" in text
    assert line_of(text, "2026-11-06").startswith("2026-11-06 ✗")
    assert "failed at build; checks grain_unique:fail; kept out" in text


def test_the_last_run_and_its_duration() -> None:
    rows = [
        row(date(2026, 11, 6), last_run_at=datetime(2026, 11, 7, 0, 0, 3), steps_s=4.25),
        row(date(2026, 11, 5), last_run_at=datetime(2026, 11, 6, 0, 0, 1), steps_s=None),
        row(date(2026, 11, 4), last_run_at=datetime(2026, 11, 5, 0, 0, 1), steps_s=3725.0),
    ]
    wide = render_calendar(rows, color=False, width=120)
    assert line_of(wide, "2026-11-06").endswith("11-07 00:00:03    4.2s")
    assert line_of(wide, "2026-11-05").endswith("11-06 00:00:01 running")
    assert line_of(wide, "2026-11-04").endswith("11-05 00:00:01   1h02m")
    narrow = render_calendar(rows, color=False, width=80).splitlines()
    assert all(len(ln) <= 80 for ln in narrow)
    i = narrow.index(line_of("\n".join(narrow), "2026-11-06"))
    assert narrow[i + 1] == "              last run 11-07 00:00:03 4.2s"


@pytest.mark.parametrize("width", [80, 100, 120])
def test_long_errors_wrap_to_the_width_and_point_to_the_day(width: int) -> None:
    text = plain(width=width)
    lines = text.splitlines()
    i = lines.index(line_of(text, "2026-11-04"))
    notes = lines[i + 1 : i + 4]
    assert all(ln.startswith(" " * 14) for ln in notes)
    assert notes[0].strip().startswith("checks missing_from_crm:warn; CRM snapshot")
    assert notes[-1].endswith("… (company-activity status --day 2026-11-04)")
    assert not lines[i + 4].startswith(" ")  # three lines at most
    assert all(len(ln) <= width for ln in lines)
    assert "file:///lake/crm/crm" in " ".join(notes)  # wrapped, not cut at the first line


def test_an_ok_day_has_no_notes_line() -> None:
    lines = plain(width=80).splitlines()
    ok_line = lines.index(line_of("\n".join(lines), "2026-10-29"))
    assert ok_line == len(lines) - 1


def test_ascii_only() -> None:
    text = plain(unicode=False, width=300)
    assert text.isascii()
    assert "2026-W45   2x   3!   4x   5~" in text
    assert "+ ok  ! warning  r last attempt failed  ~ pending  x failed  L lost  . no data" in text


def test_colours_are_click_styles_over_the_same_text() -> None:
    coloured = render_calendar(ROWS, width=120)
    assert "\x1b[" in coloured
    assert click.unstyle(coloured) == plain(width=120)
    assert click.style("✗", fg="red", bold=True) in coloured
    assert click.style("✓", fg="green") in coloured


def test_no_rows() -> None:
    assert render_calendar([], width=100) == "no runs recorded yet\n"
    empty_window = render_calendar([], start=date(2026, 11, 2), end=date(2026, 11, 4), color=False)
    assert "\n3 days: 3 no data\n" in empty_window


def test_rows_from_json_and_unknown_keys() -> None:
    text = render_calendar([{"day": "2026-11-05", "usage_status": "complete"}], color=False)
    assert "2026-11-05 ✓  · -             -  ✓ complete        -  · -            -     -\n" in text


# == JSON ==================================================================================================
def test_render_json() -> None:
    data = json.loads(render_json([*ROWS, row(date(2026, 10, 28), crm_rows=Decimal(1950))]))
    assert len(data) == 7
    first = data[0]
    assert first["day"] == "2026-11-05"
    assert first["usage_status"] == "pending" and first["usage_records"] is None
    assert first["verdict"] == "pending" and first["check_problems"] == []
    assert data[3]["check_problems"] == ["grain_unique:fail", "missing_from_crm:warn"]
    assert data[3]["verdict"] == "failed"
    assert data[-1]["crm_rows"] == 1950 and isinstance(data[-1]["crm_rows"], int)
    assert set(first) == set(ROWS[0]) | {"verdict", "check_problems"}
