"""Control characters in a CRM snapshot (issue 24): NUL, CR and the rest, on DuckDB and PostgreSQL.

The policy is ``docs/crm-input.md``: a NUL in a used column quarantines its line (no warehouse text can
hold it), a CR outside quotes that does not end the line quarantines its record (its boundaries are in
doubt), every other control character is data. The load tests run ``warehouse.crm_load`` against both
engines; the pipeline tests run the real CLI against the simulator with the warehouse on each engine.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from company_activity.cli import main
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.sources.crm import parse_crm_csv
from company_activity.storage import Lake, open_lake
from company_activity.warehouse import Warehouse, connect

from . import pg
from .helpers import days
from .test_crm_hostile import QUARANTINE, load, quarantined, staged, write_csv

pg_server = pg.pg_server
pg_databases = pg.pg_databases
new_warehouse_url = pg.new_warehouse_url
engine = pg.engine
wh_url = pg.wh_url
any_wh = pg.any_wh

NUL_REASON = "holds a NUL character (\\x00), which the warehouse cannot store"
BARE_CR_REASON = (
    "a carriage return (\\r) outside quotes that does not end the line "
    "(a value holding a CR must be quoted; line ends are LF or CRLF)"
)
HEADER = ["company_id", "name", "country", "industry_tag", "last_contact_at"]
#: every control character but NUL, and the Unicode line and paragraph separators, BOM, non-characters
CONTROLS = [
    *map(chr, range(0x01, 0x20)),
    "\x7f",
    *map(chr, range(0x80, 0xA0)),
    "\u2028",
    "\u2029",
    "\ufeff",
    "\ufffe",
    "\uffff",
]


def filler(n: int) -> list[list[str]]:
    return [[f"OK{i:02d}", f"Company {i}", "DE", "saas", "2026-01-01"] for i in range(n)]


def test_every_control_character_but_nul_inside_quotes_is_stored_as_written(
    any_wh: Warehouse, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    records = [[f"X{ord(c):04X}", f"a{c}b", f"{c}c", f"d{c}", ""] for c in CONTROLS]
    summary = load(any_wh, lake, write_csv([HEADER, *records]))
    assert (summary.rows, summary.bad) == (len(CONTROLS), 0)
    got = {r[0]: r[1:4] for r in staged(any_wh)}
    assert got == {cid: (n, c.strip() or None, t.strip() or None) for cid, n, c, t, _ in records}
    assert got["X000D"] == ("a\rb", "c", "d")  # a quoted CR is data, both engines keep it
    assert got["X001B"] == ("a\x1bb", "\x1bc", "d\x1b")
    assert not lake.exists(QUARANTINE)


@pytest.mark.parametrize("column", ["company_id", "name", "country", "industry_tag", "last_contact_at"])
def test_a_nul_in_a_quoted_used_field_quarantines_only_its_line(
    any_wh: Warehouse, tmp_path: Path, column: str
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    rows = filler(40)
    rows[3][1] = "spans\r\ntwo lines"  # so the NUL's record is not at line index + 2
    hostile = ["NUL1", "Nul Ltd", "FR", "retail", "2026-01-02"]
    hostile[HEADER.index(column)] = "2026-01-02\x00" if column == "last_contact_at" else "a\x00b"
    data = write_csv([HEADER, *rows[:10], hostile, *rows[10:]])
    summary = load(any_wh, lake, data)
    assert (summary.rows, summary.bad, summary.total) == (40, 1, 41)
    assert [r[0] for r in staged(any_wh)] == [r[0] for r in rows]
    line = 13  # header, 10 records (one of them two lines long), then the NUL's record
    assert quarantined(lake)[1:] == [[str(line), f"{column} {NUL_REASON}", data.split(b"\r\n")[12].decode()]]
    parsed = parse_crm_csv(data, source="s")
    assert [(r.line, r.reason) for r in parsed.rejected] == [(line, f"{column} {NUL_REASON}")]


@pytest.mark.parametrize(
    "record",
    [b"CR1,a\rb,DE,,", b'CR1,"a"\rb,DE,,', b"CR1,a\rCR2,b,DE,,"],
    ids=["in an unquoted value", "after a closing quote", "a CR-only line end"],
)
def test_a_cr_outside_quotes_quarantines_its_record_with_a_plain_reason(
    any_wh: Warehouse, tmp_path: Path, record: bytes
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    good = write_csv(filler(30), terminator="\n")
    data = b",".join(h.encode() for h in HEADER) + b"\n" + record + b"\n" + good
    summary = load(any_wh, lake, data)
    assert (summary.rows, summary.bad) == (30, 1)
    assert quarantined(lake)[1:] == [["2", f"malformed CSV (line 2): {BARE_CR_REASON}", record.decode()]]
    assert len(staged(any_wh)) == 30


# -- through the pipeline, on both engines ----------------------------------------------------------------

TODAY = date(2026, 11, 12)
RUN_DAY = date(2026, 11, 5)


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(
        SimulatorOptions(seed=5, companies=40, today=TODAY, epoch=date(2026, 10, 20))
    ) as server:
        yield server


@pytest.fixture
def env(
    tmp_path: Path, sim: SimulatorServer, engine: str, new_warehouse_url: Callable[[str], str]
) -> dict[str, str]:
    lake = tmp_path / "lake"
    sim.data.write_crm_snapshots(open_lake(str(lake)), days(RUN_DAY, RUN_DAY))
    return {
        "COMPANY_ACTIVITY_WAREHOUSE": new_warehouse_url(engine),
        "COMPANY_ACTIVITY_LAKE": str(lake),
        "COMPANY_ACTIVITY_API_URL": sim.url,
        "COMPANY_ACTIVITY_API_CLIENT_ID": "demo-client",
        "COMPANY_ACTIVITY_API_CLIENT_SECRET": "demo-secret",
        "COMPANY_ACTIVITY_START_DATE": RUN_DAY.isoformat(),
        "COMPANY_ACTIVITY_TODAY": TODAY.isoformat(),
        "COMPANY_ACTIVITY_API_RATE_LIMIT": "500",
    }


def poison(env: dict[str, str], indexes: Sequence[int]) -> tuple[list[str], list[int]]:
    """Put a NUL into the quoted name of the snapshot's records at ``indexes``; their ids and lines."""
    path = Path(env["COMPANY_ACTIVITY_LAKE"]) / "crm" / f"crm_daily_{RUN_DAY.isoformat()}.csv"
    header, *records = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    lines = []
    for i, record in enumerate(records):
        if i in indexes:
            lines.append(out.getvalue().count("\n") + 1)
            record[header.index("name")] = f"Nul\x00{record[header.index('name')]}"
        writer.writerow(record)
    path.write_bytes(out.getvalue().encode("utf-8"))
    return [r[0] for r in records], lines


def status_of(env: dict[str, str]) -> dict[str, object]:
    result = CliRunner().invoke(main, ["status", "--json", "--day", RUN_DAY.isoformat()], env=env)
    assert result.exit_code == 0, result.output
    day: dict[str, object] = json.loads(result.output)
    return day


def stored(env: dict[str, str], sql: str) -> list[tuple[object, ...]]:
    wh = connect(env["COMPANY_ACTIVITY_WAREHOUSE"])
    try:
        return wh.execute(sql, {"d": RUN_DAY})
    finally:
        wh.close()


def quarantine_of(env: dict[str, str]) -> list[list[str]]:
    [path] = (Path(env["COMPANY_ACTIVITY_LAKE"]) / "quarantine" / "crm").glob("date=*/rejected-*.csv")
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def test_a_nul_in_a_quoted_field_quarantines_its_line_and_loads_the_rest(env: dict[str, str]) -> None:
    ids, [line] = poison(env, [6])
    result = CliRunner().invoke(main, ["run", "--date", RUN_DAY.isoformat()], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "1 bad row(s) quarantined" in result.output
    loaded = stored(env, "select company_id from stg.crm_daily where snapshot_date = :d order by source_line")
    assert [r[0] for r in loaded] == ids[:6] + ids[7:]
    assert [r[:2] for r in quarantine_of(env)[1:]] == [[str(line), f"name {NUL_REASON}"]]
    day = status_of(env)
    crm = day["crm"]
    assert isinstance(crm, dict)
    assert (crm["status"], crm["rows"], crm["rejected"], crm["last_error"]) == (
        "loaded",
        len(ids) - 1,
        1,
        None,
    )
    steps = day["steps"]
    assert isinstance(steps, list)
    assert {s["step"]: s["status"] for s in steps}["ingest_crm"] == "warning"
    assert stored(env, "select count(*) from analytics.company_daily_activity where activity_date = :d")[0][0]


def test_nul_in_more_than_five_percent_of_the_lines_fails_the_crm_day(env: dict[str, str]) -> None:
    ids, lines = poison(env, [2, 9, 20])
    assert 3 / len(ids) > 0.05
    result = CliRunner().invoke(main, ["run", "--date", RUN_DAY.isoformat()], env=env, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert f"3 of {len(ids)} rows are bad" in result.output
    assert stored(env, "select count(*) from stg.crm_daily where snapshot_date = :d") == [(0,)]
    assert stored(env, "select count(*) from stg.product_usage_daily where activity_date = :d") != [(0,)]
    # the rejected file's bad lines are still kept for inspection, each with its line and reason
    assert [r[:2] for r in quarantine_of(env)[1:]] == [[str(n), f"name {NUL_REASON}"] for n in lines]
    crm = status_of(env)["crm"]
    assert isinstance(crm, dict)
    assert crm["status"] == "failed"
    assert f"line {lines[0]}: name {NUL_REASON}" in str(crm["last_error"])
