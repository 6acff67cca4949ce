"""The ``status`` rendering: a calendar and table for the terminal, JSON for machines."""

from __future__ import annotations

import json
from datetime import date
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
    assert status_level(None) == "none" and status_level("something new") == "warning"
    assert checks_level("ok") == "ok" and checks_level(None) == "none"
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
    assert lines[7] == "✓ ok  ! warning  … pending  ✗ failed  ⊘ lost  · no data"


def test_by_default_the_calendar_spans_the_rows() -> None:
    lines = plain().splitlines()
    assert lines[0] == "company-activity status 2026-10-29 … 2026-11-05"
    assert lines[1].startswith("8 days: 1 ok,")
    assert lines[4] == "2026-W44                 29✓  30⊘  31·   1·"


def test_the_table_rows() -> None:
    text = plain(width=200)
    assert (
        "day         crm          rows  usage       records  build       rows churn  checks / last error"
        in text
    )
    assert line_of(text, "2026-10-29") == (
        "2026-10-29  ✓ loaded     1950  ✓ complete     1496  ✓ built     1950    10  ok"
    )
    assert line_of(text, "2026-11-05") == (
        "2026-11-05  ✓ loaded     1950  … pending         -  · -            -     -  "
        "usage for 2026-11-05 is not final yet (409 date_not_final)"
    )
    assert line_of(text, "2026-11-03").endswith("volume_usage:warn; 3 CRM rows rejected")
    assert line_of(text, "2026-11-03").startswith("2026-11-03  ! loaded")
    two = line_of(text, "2026-11-02")
    assert "✗ failed" in two
    assert two.endswith(
        "grain_unique:fail, missing_from_crm:warn; quality check failed: grain_unique: 3 duplicate keys"
    )
    assert "⊘ lost" in line_of(text, "2026-10-30")
    assert "✗ missing       -" in line_of(text, "2026-11-04")
    # newest first
    days = [ln[:10] for ln in text.splitlines() if ln[:4] == "2026" and ln[4] == "-" and ln[7] == "-"]
    assert days == ["2026-11-05", "2026-11-04", "2026-11-03", "2026-11-02", "2026-10-30", "2026-10-29"]


@pytest.mark.parametrize("width", [100, 120])
def test_long_errors_are_truncated_to_the_width(width: int) -> None:
    text = plain(width=width)
    line = line_of(text, "2026-11-04")
    assert len(line) == width
    assert line.endswith("…")
    assert line.startswith("2026-11-04  ✗ missing       -  ✓ complete     1503  ✓ built     1950    12  ")
    assert "  missing_from_crm:warn; " in line
    assert all(len(ln) <= width for ln in text.splitlines())


def test_a_narrow_terminal_puts_the_notes_on_their_own_line() -> None:
    lines = plain(width=80).splitlines()
    i = lines.index(line_of("\n".join(lines), "2026-11-04"))
    assert lines[i + 1].startswith("            missing_from_crm:warn; CRM snapshot")
    assert all(len(ln) <= 80 for ln in lines)
    assert "checks / last error" not in "\n".join(lines)
    ok_line = lines.index(line_of("\n".join(lines), "2026-10-29"))
    assert ok_line == len(lines) - 1  # an ok day has no notes line


def test_ascii_only() -> None:
    text = plain(unicode=False, width=300)
    assert text.isascii()
    assert "2026-W45   2x   3!   4x   5~" in text
    assert "+ ok  ! warning  ~ pending  x failed  L lost  . no data" in text


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
    assert "2026-11-05  · -             -  ✓ complete        -  · -            -     -  ok" in text


# == JSON ==================================================================================================
def test_render_json() -> None:
    data = json.loads(render_json([*ROWS, row(date(2026, 10, 28), crm_rows=Decimal(1950))]))
    assert len(data) == 7
    first = data[0]
    assert first["day"] == "2026-11-05"
    assert first["usage_status"] == "pending" and first["usage_records"] is None
    assert first["overall"] == "pending" and first["check_problems"] == []
    assert data[3]["check_problems"] == ["grain_unique:fail", "missing_from_crm:warn"]
    assert data[3]["overall"] == "failed"
    assert data[-1]["crm_rows"] == 1950 and isinstance(data[-1]["crm_rows"], int)
    assert set(first) == set(ROWS[0]) | {"overall", "check_problems"}
