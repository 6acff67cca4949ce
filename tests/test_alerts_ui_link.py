"""Alerts link to the run's page in the web UI when COMPANY_ACTIVITY_UI_URL is set (and only then)."""

from __future__ import annotations

from datetime import date

from company_activity.alerts import Alert
from company_activity.alerts.email import EmailSink, build_message
from company_activity.alerts.factory import sinks_from_settings
from company_activity.alerts.teams import TeamsSink, adaptive_card
from company_activity.config import load_settings
from company_activity.web.links import run_url

ALERT = Alert("error", "step failure", "it broke", "20261120T000000Z-abc123", day=date(2026, 11, 20))
URL = "https://activity.example.com/runs/20261120T000000Z-abc123"


def test_run_url() -> None:
    assert run_url("https://activity.example.com/", ALERT.run_id) == URL
    assert run_url("https://host/ui", "a/b c") == "https://host/ui/runs/a%2Fb%20c"
    assert run_url(None, "x") is None and run_url("  ", "x") is None


def test_the_teams_card_gets_a_button() -> None:
    card = adaptive_card(ALERT, run_url=URL)
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open the run", "url": URL}]
    assert "actions" not in adaptive_card(ALERT)


def test_the_email_gets_a_link() -> None:
    msg = build_message(ALERT, sender="a@example.com", recipients=["b@example.com"], run_url=URL)
    plain = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert f"Open the run: {URL}" in plain
    assert f'<a href="{URL}">Open the run</a>' in html
    bare = build_message(ALERT, sender="a@example.com", recipients=["b@example.com"])
    assert "Open the run" not in bare.as_string()


def test_the_setting_reaches_the_sinks() -> None:
    settings = load_settings(
        teams_webhook_url="https://example.com/hook?sig=abcdefghijkl",
        smtp_url="smtp://mail.example.com",
        alert_email_from="a@example.com",
        alert_email_to="b@example.com",
        ui_url="https://activity.example.com",
    )
    sinks = sinks_from_settings(settings)
    teams = [s for s in sinks if isinstance(s, TeamsSink)]
    mail = [s for s in sinks if isinstance(s, EmailSink)]
    assert teams[0].ui_url == mail[0].ui_url == "https://activity.example.com"
