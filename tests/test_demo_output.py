"""What `company-activity demo` prints (issue 23): a normal fortnight raises no volume warning, and each
number of its table has one name, the one `status` gives the same number."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

from tests.test_demo_carry_on import company_activity

HEADER = "day         CRM rows  records  rows  active companies  active users  churn risk  not in CRM"
ROW = re.compile(r"^(\d{4}-\d\d-\d\d)" + r" +(\d+|-)" * 7 + "$", re.MULTILINE)


def _field(day: dict[str, object], *names: str) -> object:
    """A day's figure from `status --json` under the first of ``names`` it has."""
    for name in names:
        if name in day:
            return day[name]
    raise AssertionError(f"status --json has none of {names}: {sorted(day)}")


def test_the_demo_warns_of_nothing_and_its_table_agrees_with_status(tmp_path: Path) -> None:
    demo = company_activity(tmp_path, "demo")  # the real demo: 200 companies, 14 days, two weekends
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout + demo.stderr
    assert "volume anomaly" not in out and "WARNING" not in out, out
    assert HEADER in demo.stdout.splitlines()
    table = {m[0]: m[1:] for m in ROW.findall(demo.stdout)}
    assert len(table) == 14

    status = company_activity(
        tmp_path, "--config", "data/demo/company-activity.toml", "status", "--days", "20", "--json"
    )
    assert status.returncode == 0, status.stderr
    days = {d["day"]: d for d in json.loads(status.stdout) if d["day"] in table}
    assert sorted(days) == sorted(table)
    for day, (crm, records, rows, active, _users, churn, missing) in table.items():
        shown = days[day]
        assert int(crm) == _field(shown, "crm_rows"), day
        assert int(records) == _field(shown, "records", "usage_records"), day
        assert int(rows) == _field(shown, "rows", "build_rows"), day
        assert int(churn) == _field(shown, "churn_risk", "churn"), day
        assert int(rows) == int(crm) + int(missing), day  # one row per company: the CRM's and the rest
        assert int(active) <= int(records), day  # a record can have 0 active users
        assert _field(shown, "verdict") == "ok", (day, shown)

    # the weekday seasonality is there, in the active users, not in the records
    by_day = {date.fromisoformat(d): v for d, v in table.items()}
    for sat in (d for d in by_day if d.weekday() == 5):
        fri = by_day[date.fromordinal(sat.toordinal() - 1)]
        assert int(by_day[sat][4]) < 0.5 * int(fri[4]), sat
        assert int(by_day[sat][1]) > 0.9 * int(fri[1]), sat
