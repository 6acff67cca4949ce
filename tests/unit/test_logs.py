"""Logging: JSON lines with run id and day on every line, text lines, secrets redacted everywhere."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from company_activity.config import load_settings
from company_activity.logs import (
    JsonFormatter,
    configure,
    configure_from_settings,
    current_context,
    log_context,
    redact,
    register_secret,
    secrets_from_settings,
    silence_url_logging,
)

log = logging.getLogger("company_activity.pipeline")
DAY = date(2026, 11, 5)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the logging tree back as it was: configure() changes process-wide state."""
    names = ["", "company_activity", "httpx", "httpcore", "azure"]
    saved = {}
    for name in names:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.level, logger.propagate, list(logger.filters))
    yield
    for name, (handlers, level, propagate, filters) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.filters[:] = filters


@pytest.fixture
def json_lines(restore_logging: None) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure(level="DEBUG", fmt="json", stream=stream)
    yield stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# == run id and day on every line ==========================================================================
def test_json_lines_carry_run_id_and_day(json_lines: io.StringIO) -> None:
    log.info("before the run")
    with log_context(run_id="20261106T020000Z-abc123"):
        log.info("run started")
        with log_context(day=DAY, step="ingest_usage"):
            log.warning("usage: %d records", 1503)
            assert current_context() == {
                "run_id": "20261106T020000Z-abc123",
                "day": "2026-11-05",
                "step": "ingest_usage",
            }
        with log_context(day="2026-11-06"):
            logging.getLogger("company_activity.alerts").error("boom")
        log.info("run finished")
    log.info("after the run")

    out = lines(json_lines)
    assert [e["message"] for e in out] == [
        "before the run",
        "run started",
        "usage: 1503 records",
        "boom",
        "run finished",
        "after the run",
    ]
    for entry in out:  # the keys are on every line, null outside a run
        assert set(entry) >= {"ts", "level", "logger", "run_id", "day", "message"}
    assert [(e["run_id"], e["day"]) for e in out] == [
        (None, None),
        ("20261106T020000Z-abc123", None),
        ("20261106T020000Z-abc123", "2026-11-05"),
        ("20261106T020000Z-abc123", "2026-11-06"),
        ("20261106T020000Z-abc123", None),
        (None, None),
    ]
    assert out[2]["step"] == "ingest_usage" and "step" not in out[3]
    assert out[2]["level"] == "WARNING" and out[2]["logger"] == "company_activity.pipeline"
    assert out[0]["ts"].endswith("+00:00")


def test_explicit_extra_values_win(json_lines: io.StringIO) -> None:
    with log_context(run_id="r1", day=DAY):
        log.info("built", extra={"day": date(2026, 11, 4)})
    (entry,) = lines(json_lines)
    assert (entry["run_id"], entry["day"]) == ("r1", "2026-11-04")


def test_the_context_is_per_thread(json_lines: io.StringIO) -> None:
    def work() -> None:
        log.info("in another thread")

    with log_context(run_id="r1", day=DAY):
        t = threading.Thread(target=work)
        t.start()
        t.join()
        log.info("in the run's thread")
    by_message = {e["message"]: e for e in lines(json_lines)}
    assert by_message["in another thread"]["run_id"] is None
    assert by_message["in the run's thread"]["run_id"] == "r1"


def test_the_context_ends_even_on_error(json_lines: io.StringIO) -> None:
    with pytest.raises(RuntimeError), log_context(run_id="r1"):
        raise RuntimeError("x")
    assert current_context() == {}


def test_text_lines_show_the_context(restore_logging: None) -> None:
    stream = io.StringIO()
    configure(level="INFO", fmt="text", stream=stream)
    log.debug("not shown at INFO")
    log.info("outside")
    with log_context(run_id="r1", day=DAY):
        log.info("inside")
    first, second = stream.getvalue().splitlines()
    assert first.endswith(" INFO    company_activity.pipeline: outside")
    assert second.endswith(" INFO    company_activity.pipeline [run_id=r1 day=2026-11-05]: inside")


def test_configure_again_replaces_its_handler(restore_logging: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure(fmt="json", stream=first)
    configure(fmt="text", stream=second)
    log.info("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_company_activity", False)]
    assert len(ours) == 1


def test_libraries_log_warnings_only_and_redacted(json_lines: io.StringIO) -> None:
    lib = logging.getLogger("azure.core.pipeline")
    lib.info("request headers: Authorization: Bearer abc.def.ghi")  # below WARNING: not shown
    lib.warning("retrying https://acct.blob.core.windows.net/c?sig=AbCdEfGh123%2B&se=2026")
    (entry,) = lines(json_lines)
    assert entry["logger"] == "azure.core.pipeline"
    assert "AbCdEfGh123" not in entry["message"]
    assert "sig=***" in entry["message"]


def test_exceptions_are_redacted(json_lines: io.StringIO) -> None:
    try:
        raise ConnectionError("cannot reach smtp://alerts:Hunter2-Secret@mail.example.com:587")
    except ConnectionError:
        log.exception("alert delivery failed")
    (entry,) = lines(json_lines)
    assert "Hunter2-Secret" not in json.dumps(entry)
    assert "smtp://alerts:***@mail.example.com:587" in entry["exception"]


def test_the_stderr_handler_follows_sys_stderr(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(fmt="json")
    log.info("to stderr")
    assert json.loads(capsys.readouterr().err)["message"] == "to stderr"


# == redaction =============================================================================================
WEBHOOK = (
    "https://prod-12.westeurope.logic.azure.com:443/workflows/5b0e6c1d/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=kq9ZSecretSignature01"
)


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        (
            f"posting to {WEBHOOK} failed",
            "kq9ZSecretSignature01",
            "prod-12.westeurope.logic.azure.com:443/***",
        ),
        (
            "https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/xyz",
            "IncomingWebhook",
            "contoso.webhook.office.com/***",
        ),
        (
            "smtp://alerts%40example.com:p%40ss-w0rd@mail.example.com:587",
            "p%40ss-w0rd",
            "smtp://alerts%40example.com:***@mail.example.com:587",
        ),
        ("postgresql://etl:S3cr3t/pw@db:5432/dw", "S3cr3t", "postgresql://etl:***@db:5432/dw"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", "eyJhbGci", "Bearer ***"),
        ("Authorization: Basic YWxlcnRzOnBhc3N3b3Jk", "YWxlcnRzOnBhc3N3b3Jk", "Basic ***"),
        ("grant_type=client_credentials&client_id=etl&client_secret=Sh0wMeNot", "Sh0wMeNot", "client_id=etl"),
        ('{"client_secret": "Sh0wMeNot", "client_id": "etl"}', "Sh0wMeNot", '"client_id": "etl"'),
        ("{'password': 'Sh0wMeNot'}", "Sh0wMeNot", "{'password': '***'}"),
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=QmFzZTY0S2V5PT0=;EndpointSuffix=x",
            "QmFzZTY0S2V5PT0",
            "AccountName=acct;AccountKey=***;",
        ),
        ("X-API-Key: k-123456789", "k-123456789", "X-API-Key: ***"),
        ("token=abc123def&date=2026-11-05", "abc123def", "date=2026-11-05"),
    ],
)
def test_redact_patterns(text: str, secret: str, kept: str) -> None:
    out = redact(text)
    assert secret not in out
    assert kept in out


def test_ordinary_text_is_left_alone() -> None:
    text = "usage 2026-11-05: 1503 records, 3 pages; check grain_unique:pass; token endpoint answered 503"
    assert redact(text) == text


def test_registered_secrets_are_redacted_anywhere() -> None:
    register_secret("Pl41n-Value-Without-Markers")
    register_secret("ab")  # too short to register: would blank out ordinary text
    assert redact("server said Pl41n-Value-Without-Markers twice") == "server said *** twice"
    assert redact("Pl41n-Value-Without-Markers".replace("-", "%2D")) != "***"  # only real encodings
    assert redact("a b ab") == "a b ab"
    register_secret("https://hooks.internal.example/flow/77?code=Fn-K3y-Value&x=1")
    assert "Fn-K3y-Value" not in redact("the flow answered: invalid code Fn-K3y-Value")


def test_secrets_from_settings(monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> None:
    monkeypatch.setenv("COMPANY_ACTIVITY_TEAMS_WEBHOOK_URL", WEBHOOK)
    monkeypatch.setenv("COMPANY_ACTIVITY_SMTP_URL", "smtp://u:SmtpPa55word@mail.example.com")
    monkeypatch.setenv("COMPANY_ACTIVITY_API_CLIENT_SECRET", "Cl1entSecretValue")
    monkeypatch.setenv("COMPANY_ACTIVITY_API_KEY", "ApiKeyValue99")
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING", "AccountName=a;AccountKey=Azur3KeyValue==;EndpointSuffix=x"
    )
    settings = load_settings()
    secrets = secrets_from_settings(settings)
    assert WEBHOOK in secrets and "Cl1entSecretValue" in secrets and "Azur3KeyValue==" in secrets
    stream = io.StringIO()
    configure_from_settings(settings, stream=stream)
    log.warning(
        "values: %s %s %s %s %s",
        "SmtpPa55word",
        "Cl1entSecretValue",
        "ApiKeyValue99",
        "Azur3KeyValue==",
        WEBHOOK.split("?")[1],
    )
    text = stream.getvalue()
    for value in ("SmtpPa55word", "Cl1entSecretValue", "ApiKeyValue99", "Azur3KeyValue", "kq9ZSecret"):
        assert value not in text


def test_http_library_lines_are_redacted_at_the_source(
    caplog: pytest.LogCaptureFixture, restore_logging: None
) -> None:
    # httpx logs every request URL at INFO; a test's (or any) handler must not see the webhook's signature
    silence_url_logging()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # configure() (run by other tests) sets it to WARNING
    logging.getLogger("httpx").info('HTTP Request: POST %s "HTTP/1.1 202 Accepted"', WEBHOOK)
    assert "kq9ZSecretSignature01" not in caplog.text
    assert "HTTP Request: POST " in caplog.text and '"HTTP/1.1 202 Accepted"' in caplog.text


def test_json_formatter_on_its_own() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "password=%s", ("Sh0wMeNot",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "password=***"
    assert entry["run_id"] is None and entry["day"] is None
    with log_context(run_id="r9", day=DAY):  # no ContextFilter needed
        entry = json.loads(JsonFormatter().format(record))
    assert (entry["run_id"], entry["day"]) == ("r9", "2026-11-05")
