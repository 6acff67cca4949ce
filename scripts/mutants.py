#!/usr/bin/env python3
"""A mutation check run by hand: does each targeted small bug make at least one test fail?

Each mutant is one textual replacement in one file under ``src/``. For each, the tree (``src`` and
``tests`` and ``pyproject.toml``) is copied to a temporary folder, the replacement applied there (the
worktree is never touched), and the tests named for it run against the copy (``PYTHONPATH`` puts the
mutated ``src`` first, also for the processes the tests start). Outcome per mutant:

- ``killed``: at least one test failed (what we want);
- ``SURVIVED``: every test passed (a gap in the tests, or an equivalent mutant: say which in docs/testing.md);
- ``stale``: the text to replace is not in the file any more (the code changed: update the mutant);
- ``error``: pytest could not run (exit status other than 0 or 1).

First the same tests run once against an unmutated copy (the baseline): they must all pass, or the check
stops (a missing PostgreSQL server, say, would otherwise pass for a killed mutant). Set
``COMPANY_ACTIVITY_TEST_POSTGRES=required`` so that the PostgreSQL variants run rather than skip.

Usage (from the repository root, after ``make .venv/.installed``; the PostgreSQL tests need the server)::

    .venv/bin/python scripts/mutants.py                 # every mutant (~5 minutes on 2 cores)
    .venv/bin/python scripts/mutants.py --list
    .venv/bin/python scripts/mutants.py publish-events gate-d6
    .venv/bin/python scripts/mutants.py --markdown      # the table for docs/testing.md

The tests run with ``CI=true`` (the derandomized Hypothesis profile of tests/conftest.py), so a result is
the same on every run. Exit status: 0 when every mutant was killed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQL = "src/company_activity/sql/populate_company_daily_activity.sql"
FIELDS = "tests/test_single_field_changes.py"
#: the build's snapshot dates: those of its days and the last one before (`snapshot-floor` drops the latter)
_FLOOR = (
    "snapshots as (\n"
    "    select distinct c.snapshot_date\n"
    "    from stg.crm_daily as c\n"
    "    where c.snapshot_date <= (select last_day from build_range)\n"
    "        and c.snapshot_date >= coalesce(\n"
    "            (\n"
    "                select max(p.snapshot_date)\n"
    "                from stg.crm_daily as p\n"
    "                where p.snapshot_date <= (select first_day from build_range)\n"
    "            ),\n"
    "            (select first_day from build_range)\n"
    "        )"
)
_NO_FLOOR = (
    "snapshots as (\n"
    "    select distinct c.snapshot_date\n"
    "    from stg.crm_daily as c\n"
    "    where c.snapshot_date <= (select last_day from build_range)\n"
    "        and c.snapshot_date >= (select first_day from build_range)"
)


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    what: str
    more: tuple[tuple[str, str, str], ...] = ()  # further (file, old, new) replacements of the same mutant

    @property
    def edits(self) -> tuple[tuple[str, str, str], ...]:
        return ((self.file, self.old, self.new), *self.more)


def _publish(column_test: str, what: str, name: str) -> Mutant:
    return Mutant(name, SQL, f"            and {column_test}\n", "", (FIELDS,), what)


PLAN = "src/company_activity/run/plan.py"
BUILD_STEP = "src/company_activity/steps/build.py"
STALE_NET = "stale = (affected or set()) | context.state.stale_built_days()"
STALE_NET_OFF = "stale = affected or set()"

MUTANTS: list[Mutant] = [
    # -- the publish step: each comparison of a candidate row with the published one -------------------------
    _publish("c.events = t.events", "publish ignores a change of events", "publish-events"),
    _publish(
        "c.company_name is not distinct from t.company_name",
        "publish ignores a change of company_name",
        "publish-company-name",
    ),
    _publish(
        "c.country is not distinct from t.country", "publish ignores a change of country", "publish-country"
    ),
    _publish(
        "c.industry_tag is not distinct from t.industry_tag",
        "publish ignores a change of industry_tag",
        "publish-industry-tag",
    ),
    _publish(
        "c.last_contact_at is not distinct from t.last_contact_at",
        "publish ignores a change of last_contact_at",
        "publish-last-contact",
    ),
    _publish("c.active_users = t.active_users", "publish ignores a change of active_users", "publish-users"),
    _publish(
        'c."7d_active_users" = t."7d_active_users"', "publish ignores a change of the 7-day sum", "publish-7d"
    ),
    _publish(
        "c.is_churn_risk = t.is_churn_risk", "publish ignores a change of is_churn_risk", "publish-churn"
    ),
    # -- the build gate and the nightly (candidate_short) formulation ----------------------------------------
    Mutant(
        "gate-d6",
        PLAN,
        "needed = [day - timedelta(days=k) for k in range(WINDOW_DAYS - 1, -1, -1)]",
        "needed = [day - timedelta(days=k) for k in range(WINDOW_DAYS - 2, -1, -1)]",
        ("tests/test_nightly.py",),
        "the build gate stops at D-5 (D-6 incomplete no longer blocks D)",
    ),
    Mutant(
        "gate-d7",
        PLAN,
        "needed = [day - timedelta(days=k) for k in range(WINDOW_DAYS - 1, -1, -1)]",
        "needed = [day - timedelta(days=k) for k in range(WINDOW_DAYS, -1, -1)]",
        ("tests/test_nightly.py",),
        "the build gate reaches D-7",
    ),
    Mutant(
        "nightly-window",
        SQL,
        "on u.activity_date between o.activity_date - 6 and o.activity_date",
        "on u.activity_date between o.activity_date - 5 and o.activity_date",
        ("tests/test_nightly.py",),
        "the nightly formulation sums 6 days, not 7",
    ),
    Mutant(
        "nightly-churn-d6",
        SQL,
        "on earlier.activity_date = cd.activity_date - 6",
        "on earlier.activity_date = cd.activity_date - 5",
        ("tests/test_nightly.py",),
        "the nightly formulation looks for the row of D-5, not D-6",
    ),
    Mutant(
        "range-churn-d6",
        SQL,
        "and earliest_row_in_window = activity_date - 6",
        "and earliest_row_in_window = activity_date - 5",
        ("tests/test_build.py",),
        "the range (window) formulation looks for a row on D-5, not D-6",
    ),
    Mutant(
        "carry-forward",
        SQL,
        "from build_days as d\n    inner join snapshots as s\n        on s.snapshot_date <= d.activity_date",
        "from build_days as d\n    inner join snapshots as s\n        on s.snapshot_date < d.activity_date",
        ("tests/test_build.py",),
        "the range formulation uses the snapshot before the day's own",
    ),
    # -- reruns rebuild what changed -------------------------------------------------------------------------
    Mutant(
        "usage-rebuild-range",
        PLAN,
        "return set(days(day, day + timedelta(days=WINDOW_DAYS - 1)))",
        "return set(days(day, day + timedelta(days=WINDOW_DAYS - 2)))",
        (FIELDS,),
        "re-ingested usage rebuilds D … D+5, not D … D+6 (and no stale-day safety net)",
        more=((BUILD_STEP, STALE_NET, STALE_NET_OFF),),
    ),
    Mutant(
        "crm-rebuild-range",
        PLAN,
        "return set(days(day, last + timedelta(days=WINDOW_DAYS - 1)))",
        "return set(days(day, last))",
        (FIELDS,),
        "a late CRM snapshot does not rebuild the churn flags six days on (and no stale-day safety net)",
        more=((BUILD_STEP, STALE_NET, STALE_NET_OFF),),
    ),
    Mutant(
        "no-stale-net",
        BUILD_STEP,
        STALE_NET,
        STALE_NET_OFF,
        ("tests/test_crash.py", "tests/test_usage_crash.py"),
        "built days whose inputs were loaded after their build (a run killed in between) are not rebuilt",
    ),
    # -- the API client --------------------------------------------------------------------------------------
    Mutant(
        "usage-401-reset",
        "src/company_activity/sources/usage/client.py",
        "                continue\n            auth.refreshed = False\n",
        "                continue\n",
        ("tests/test_usage_api.py",),
        "the 'token already refreshed' flag is not reset by a non-401 answer (401 -> 503 -> 401 fails)",
    ),
    Mutant(
        "snapshot-floor",
        SQL,
        "(as in `candidate`: a scan of every snapshot would grow with the history)\n" + _FLOOR,
        "(as in `candidate`: a scan of every snapshot would grow with the history)\n" + _NO_FLOOR,
        ("tests/test_build.py", "tests/test_nightly.py"),
        "the snapshot in effect is looked for within the build's days only (none carried in from before)",
        more=(
            (
                SQL,
                "in staging: that scan would grow with the history)\n" + _FLOOR,
                "in staging: that scan would grow with the history)\n" + _NO_FLOOR,
            ),
        ),
    ),
    # -- marts -----------------------------------------------------------------------------------------------
    Mutant(
        "marts-every-build",
        "src/company_activity/warehouse/build.py",
        "            if stale:\n                marts.refresh(wh, stale[0], stale[-1], built_at=loaded_at)",
        "            marts.refresh(wh, chunk_start, chunk_end, built_at=loaded_at)",
        ("tests/test_marts.py",),
        "the marts are rewritten by every build, also one that changes no row (built_at moves)",
    ),
    Mutant(
        "marts-never-filled",
        "src/company_activity/marts.py",
        "set(changed) | (set(with_rows) - summarised)",
        "set(changed)",
        ("tests/test_marts.py",),
        "days with rows the marts have no figures for are not refreshed (a migrated warehouse stays empty)",
    ),
    # -- monitoring ------------------------------------------------------------------------------------------
    Mutant(
        "volume-zero-week",
        "src/company_activity/steps/checks.py",
        "anomalous = prev is not None and prev > t and (week is None or week > t)",
        "anomalous = prev is not None and prev > t and (week_ago_count is None or (week or 0) > t)",
        ("tests/test_monitoring.py",),
        "a week-old count of 0 is taken as a figure (no drop against it)",
    ),
]


def copy_tree(dest: Path) -> None:
    for name in ("src", "tests"):
        shutil.copytree(
            ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
        )
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


def run_mutant(
    m: Mutant | None, python: str, timeout: float, tests: tuple[str, ...] = ()
) -> tuple[str, float, str]:
    """Run ``m``'s tests against a mutated copy (``m`` None: ``tests`` against an unmutated copy)."""
    with tempfile.TemporaryDirectory(prefix=f"mutant-{m.name if m else 'baseline'}-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        if m is not None:
            tests = m.tests
            for file, old, new in m.edits:
                target = tree / file
                text = target.read_text()
                if text.count(old) != 1:
                    return "stale", 0.0, f"{file}: the text to replace occurs {text.count(old)} times"
                target.write_text(text.replace(old, new))
        env = os.environ | {"PYTHONPATH": str(tree / "src"), "CI": "true", "PYTHONDONTWRITEBYTECODE": "1"}
        check = subprocess.run(
            [python, "-c", "import company_activity; print(company_activity.__file__)"],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
        )
        if not check.stdout.strip().startswith(str(tree)):
            return "error", 0.0, f"the copy is not the one imported: {check.stdout.strip()} {check.stderr}"
        started = time.monotonic()
        try:
            proc = subprocess.run(
                [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return "killed", time.monotonic() - started, "timed out (counts as killed: the suite noticed)"
        elapsed = time.monotonic() - started
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED") or ln.startswith("ERROR")]
        summary = (proc.stdout.strip().splitlines() or [""])[-1]
        if proc.returncode == 0:
            return "SURVIVED", elapsed, summary
        if proc.returncode == 1:
            return "killed", elapsed, (lines[0] if lines else summary)
        return "error", elapsed, f"pytest exit {proc.returncode}: {summary} {proc.stderr[-300:]}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="mutants to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--markdown", action="store_true", help="print the result as a Markdown table")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant's test run")
    ap.add_argument("--python", default=sys.executable, help="the interpreter with the dev extras")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the same tests")
    args = ap.parse_args()
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:<22} {m.file}: {m.what}  [{' '.join(m.tests)}]")
        return 0
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        ap.error(f"unknown mutant(s): {', '.join(sorted(unknown))}")
    if not args.no_baseline:
        tests = tuple(sorted({t for m in chosen for t in m.tests}))
        outcome, seconds, detail = run_mutant(None, args.python, args.timeout, tests)
        print(f"baseline (no mutant) {seconds:6.1f} s  {detail}", flush=True)
        if outcome != "SURVIVED":  # unmutated, every test must pass, or a "killed" would mean nothing
            print("the tests fail without a mutant: fix that first", file=sys.stderr)
            return 2
    results = []
    for m in chosen:
        outcome, seconds, detail = run_mutant(m, args.python, args.timeout)
        results.append((m, outcome, seconds, detail))
        print(f"{outcome:<8} {m.name:<22} {seconds:6.1f} s  {detail}", flush=True)
    killed = sum(1 for _, o, _, _ in results if o == "killed")
    print(f"\n{killed} of {len(results)} mutants killed")
    if args.markdown:
        print("\n| mutant | change | tests run | outcome | first failing test |")
        print("| --- | --- | --- | --- | --- |")
        for m, outcome, _, detail in results:
            first = detail.removeprefix("FAILED ").split(" - ")[0] if outcome == "killed" else detail
            print(f"| `{m.name}` | {m.what} | {', '.join(m.tests)} | {outcome} | {first} |")
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
