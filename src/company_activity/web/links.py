"""Links into the web UI, for alerts (no dependency on the ``ui`` extra)."""

from __future__ import annotations

from urllib.parse import quote


def run_url(ui_url: str | None, run_id: str) -> str | None:
    """The page of run ``run_id`` under ``COMPANY_ACTIVITY_UI_URL`` (None when it is not set)."""
    if not ui_url or not ui_url.strip():
        return None
    return f"{ui_url.strip().rstrip('/')}/runs/{quote(run_id, safe='')}"
