"""The run's progress display: bars for ingestion and build on a terminal, log lines above, nothing else."""

from __future__ import annotations

import io
import logging
import re
import sys
from datetime import date, timedelta

from company_activity.logs import configure
from company_activity.progress_view import RunProgress

DAYS = [date(2026, 11, 1) + timedelta(days=k) for k in range(3)]


def test_without_a_terminal_it_draws_nothing() -> None:
    out = io.StringIO()
    with RunProgress(3, file=out) as progress:
        assert not progress.enabled
        progress("ingested", DAYS[0])
        progress("built", DAYS[0])
    assert out.getvalue() == ""
    assert (progress.ingested, progress.built) == (1, 1)


def test_on_a_terminal_log_lines_print_above_both_bars(monkeypatch: object) -> None:
    screen = io.StringIO()
    handler = configure(level="INFO", stream=None)
    try:
        original = sys.stderr
        with RunProgress(3, file=screen, force_terminal=True) as progress:
            assert progress.enabled and sys.stderr is not original  # stderr goes above the bars
            for day in DAYS:
                logging.getLogger("company_activity.test").info("fetched %s", day.isoformat())
                progress("ingested", day)
            for day in DAYS:
                progress("built", day)
        assert sys.stderr is original
    finally:
        logging.getLogger().removeHandler(handler)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    final = text.replace("\r", "\n").splitlines()
    logs = [ln for ln in final if "fetched" in ln]
    # each log line whole, on a line of its own: never cut by a bar
    assert [ln.split("company_activity.test: ")[-1] for ln in logs[:3]] == [
        f"fetched {d.isoformat()}" for d in DAYS
    ]
    assert all("━" not in ln for ln in logs)
    bars = [ln for ln in final if ln.startswith(("ingesting", "building"))]
    assert any(ln.startswith("ingesting") and "3/3" in ln and DAYS[-1].isoformat() in ln for ln in bars)
    assert any(ln.startswith("building") and "3/3" in ln for ln in bars)
