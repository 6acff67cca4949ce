"""Teams alerts against a real HTTP receiver on loopback; the Alerter's delivery semantics."""

from __future__ import annotations

import json
import logging
import socket
from datetime import date
from typing import Any

import httpx
import pytest

from company_activity.alerts import (
    Alert,
    AlertDeliveryError,
    Alerter,
    DeliveryPolicy,
    LogSink,
    recovered_alert,
)
from company_activity.alerts.teams import CARD_CONTENT_TYPE, TeamsSink, adaptive_card, teams_payload

from .alert_servers import PATH, QUERY, SIG, Receiver
from .helpers import exception_texts

DAY = date(2026, 11, 5)
FAST = DeliveryPolicy(max_attempts=3, backoff_initial=0.5, backoff_max=4.0, timeout=2.0)


def _alert(**kw: Any) -> Alert:
    values: dict[str, Any] = {
        "severity": "error",
        "title": "check failure",
        "message": "quality check failed: grain_unique: 3 duplicate (activity_date, company_id) keys",
        "run_id": "20261106T020000Z-abc123",
        "day": DAY,
        "step": "build",
        "rerun": "company-activity run --date 2026-11-05",
        "figures": {"observed": "3", "threshold": "0"},
    }
    values.update(kw)
    return Alert(**values)


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert SIG not in text
        assert PATH not in text


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# == the card ==============================================================================================
def test_card_is_delivered_in_the_workflows_format(receiver: Receiver) -> None:
    sink = TeamsSink(receiver.url, policy=FAST, sleep=Sleeps())
    sink.send(_alert())

    assert len(receiver.requests) == 1
    req = receiver.requests[0]
    assert req["path"] == f"{PATH}?{QUERY}"
    assert req["headers"]["Content-Type"] == "application/json"
    body = req["json"]
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == CARD_CONTENT_TYPE == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    texts = [b["text"] for b in card["body"] if b["type"] == "TextBlock"]
    assert texts[0] == "company-activity — ERROR: check failure"
    assert card["body"][0]["color"] == "Attention"
    assert "build · 2026-11-05" in texts
    assert "quality check failed: grain_unique: 3 duplicate (activity_date, company_id) keys" in texts
    assert "company-activity run --date 2026-11-05" in texts
    rerun = next(b for b in card["body"] if b.get("text") == "company-activity run --date 2026-11-05")
    assert rerun["fontType"] == "Monospace"
    (facts,) = [b["facts"] for b in card["body"] if b["type"] == "FactSet"]
    assert {f["title"]: f["value"] for f in facts} == {
        "Run": "20261106T020000Z-abc123",
        "Day": "2026-11-05",
        "Step": "build",
        "Severity": "error",
        "observed": "3",
        "threshold": "0",
    }
    assert sink.attempts == 1


def test_card_colours_and_optional_parts() -> None:
    warning = adaptive_card(_alert(severity="warning", rerun=None, day=None, step=None, figures={}))
    assert warning["body"][0]["color"] == "Warning"
    assert all("Rerun" not in str(b.get("text")) for b in warning["body"])
    facts = next(b["facts"] for b in warning["body"] if b["type"] == "FactSet")
    assert [f["title"] for f in facts] == ["Run", "Severity"]
    recovered = adaptive_card(recovered_alert("r1", "ingest_usage", DAY, "API unavailable"))
    assert recovered["body"][0]["color"] == "Good"
    assert recovered["body"][0]["text"] == "company-activity — RECOVERED: recovered"


def test_a_huge_message_is_truncated() -> None:
    payload = teams_payload(_alert(message="x" * 100_000))
    assert len(json.dumps(payload)) < 10_000


# == retries ===============================================================================================
def test_500_twice_then_200_is_delivered_on_the_third_attempt(receiver: Receiver) -> None:
    receiver.script = [(500, {}, "boom"), (502, {}, "bad gateway"), (200, {}, "")]
    sleeps = Sleeps()
    sink = TeamsSink(receiver.url, policy=FAST, sleep=sleeps)
    sink.send(_alert())
    assert len(receiver.requests) == 3
    assert receiver.bodies[0] == receiver.bodies[2]  # the same card each time
    assert sink.attempts == 3
    assert sleeps == [0.5, 1.0]  # doubling backoff


def test_429_honours_retry_after_up_to_the_cap(receiver: Receiver) -> None:
    receiver.script = [(429, {"Retry-After": "3"}, ""), (429, {"Retry-After": "120"}, ""), (200, {}, "")]
    sleeps = Sleeps()
    TeamsSink(receiver.url, policy=FAST, sleep=sleeps).send(_alert())
    assert len(receiver.requests) == 3
    assert sleeps == [3.0, 4.0]  # Retry-After, then capped by backoff_max


def test_a_4xx_answer_is_not_retried(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.script = [(400, {}, "Bad Request: invalid card")]
    sink = TeamsSink(receiver.url, policy=FAST, sleep=Sleeps())
    with pytest.raises(AlertDeliveryError) as info:
        sink.send(_alert())
    assert len(receiver.requests) == 1
    assert "after 1 attempt(s): " in str(info.value)
    assert "HTTP 400: Bad Request: invalid card" in str(info.value)
    assert info.value.sink == "teams" and info.value.attempts == 1
    _no_secret(*exception_texts(info.value), caplog.text)


def test_persistent_5xx_gives_a_delivery_error_without_the_url(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx's request lines included
    # a misbehaving server that echoes the URL it was called with
    receiver.script = [(503, {}, f"unavailable: POST {PATH}?{QUERY}")] * 3
    sleeps = Sleeps()
    with pytest.raises(AlertDeliveryError) as info:
        TeamsSink(receiver.url, policy=FAST, sleep=sleeps).send(_alert())
    assert len(receiver.requests) == 3
    assert len(sleeps) == 2
    assert "failed after 3 attempt(s): " in str(info.value)
    assert "HTTP 503" in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2
    _no_secret(*exception_texts(info.value), caplog.text)


def test_receiver_down_is_retried_then_a_delivery_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    sink = TeamsSink(f"http://127.0.0.1:{port}{PATH}?{QUERY}", policy=FAST, sleep=sleeps)
    with pytest.raises(AlertDeliveryError) as info:
        sink.send(_alert())
    assert sink.attempts == 3
    assert sleeps == [0.5, 1.0]
    assert "ConnectError" in str(info.value)
    _no_secret(*exception_texts(info.value), caplog.text, repr(sink))
    # while it stays down, each further alert costs one attempt, not another round of retries
    with pytest.raises(AlertDeliveryError, match=r"after 1 attempt\(s\) \(tried once: its previous delivery"):
        sink.send(_alert(day=date(2026, 11, 6)))
    assert sink.attempts == 1 and sleeps == [0.5, 1.0]


def test_after_a_failure_one_attempt_then_full_retries_again_once_it_works(receiver: Receiver) -> None:
    receiver.script = [(status, {}, "") for status in (500, 500, 500, 500, 200, 500, 200)]
    sink = TeamsSink(receiver.url, policy=FAST, sleep=Sleeps())
    with pytest.raises(AlertDeliveryError):
        sink.send(_alert())  # three attempts
    assert sink.failing
    with pytest.raises(AlertDeliveryError):
        sink.send(_alert())  # one attempt
    sink.send(_alert())  # one attempt, delivered
    assert not sink.failing
    sink.send(_alert())  # 500 then 200: retried again
    assert sink.attempts == 2
    assert len(receiver.requests) == 3 + 1 + 1 + 2


def test_an_injected_client_is_used_and_left_open() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        TeamsSink(f"https://example.invalid{PATH}?{QUERY}", client=client).send(_alert())
        assert not client.is_closed
    assert len(seen) == 1
    assert json.loads(seen[0].content)["type"] == "message"


def test_the_webhook_must_be_http() -> None:
    with pytest.raises(ValueError, match="https://"):
        TeamsSink("ftp://example.com/hook")


# == the Alerter ===========================================================================================
def test_alerter_sends_each_failure_once_per_run(receiver: Receiver) -> None:
    alerter = Alerter([LogSink(), TeamsSink(receiver.url, policy=FAST, sleep=Sleeps())])
    assert alerter.send(_alert()) is True
    assert alerter.send(_alert(message="the same failure, worded again")) is False
    assert alerter.send(_alert(day=date(2026, 11, 6))) is True  # another day: another failure
    assert len(receiver.requests) == 2
    assert [a.day for a in alerter.sent] == [DAY, date(2026, 11, 6)]
    assert not alerter.delivery_failed


def test_a_failed_delivery_is_logged_and_never_replaces_the_alert(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    class Exploding:
        name = "broken"

        def send(self, alert: Alert) -> None:
            raise RuntimeError("sink bug")

    delivered: list[Alert] = []

    class Recording:
        name = "recording"

        def send(self, alert: Alert) -> None:
            delivered.append(alert)

    teams = TeamsSink(f"http://127.0.0.1:{port}{PATH}?{QUERY}", policy=FAST, sleep=Sleeps())
    alerter = Alerter([LogSink(), teams, Exploding(), Recording()])
    alert = _alert()
    alerter.send(alert)  # does not raise

    assert alerter.sent == [alert]
    assert delivered == [alert]  # sinks after the failing ones still got it
    assert [f.sink for f in alerter.failures] == ["teams", "broken"]
    assert "failed after 3 attempt(s)" in alerter.failures[0].error
    assert alerter.failures[1].error == "RuntimeError: sink bug"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(m.startswith("ALERT [ERROR] check failure") for m in errors)  # the log sink
    assert any("alert delivery to teams failed; the alert was: [ERROR] check failure" in m for m in errors)
    assert any("alert delivery to broken failed" in m for m in errors)
    _no_secret(caplog.text, *(f.error for f in alerter.failures))


def test_recovered_alert() -> None:
    alert = recovered_alert(
        "run-2", "ingest_usage", DAY, "API unavailable: 503 after 6 attempts\nretry later"
    )
    assert alert.severity == "info" and alert.kind == "recovered" and alert.title == "recovered"
    assert alert.key == ("recovered", "2026-11-05", "ingest_usage")
    assert alert.subject() == "[company-activity] RECOVERED ingest_usage 2026-11-05"
    assert "succeeded after failing earlier" in alert.message
    assert "API unavailable: 503 after 6 attempts retry later" in alert.message  # one line
    assert alert.text().startswith("[RECOVERED] recovered | day 2026-11-05 | step ingest_usage | run run-2")
    long = recovered_alert("r", "build", DAY, "e" * 5000)
    assert len(long.message) < 700


def test_alert_subject() -> None:
    alert = _alert(title="step failure", step="ingest_usage")
    assert alert.subject() == "[company-activity] ERROR step failure ingest_usage 2026-11-05"
    assert _alert(step=None, day=None, title="pipeline failure").subject() == (
        "[company-activity] ERROR pipeline failure"
    )


def test_delivery_policy_waits() -> None:
    policy = DeliveryPolicy(max_attempts=5, backoff_initial=1.0, backoff_max=5.0)
    assert [policy.wait_before(n) for n in range(1, 5)] == [1.0, 2.0, 4.0, 5.0]
    assert policy.wait_before(1, retry_after=3.0) == 3.0
    assert policy.wait_before(1, retry_after=60.0) == 5.0
    with pytest.raises(ValueError):
        DeliveryPolicy(max_attempts=0)
