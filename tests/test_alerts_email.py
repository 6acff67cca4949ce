"""E-mail alerts against a real SMTP server (aiosmtpd) on loopback; the sink factory."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import ssl
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from company_activity.alerts import Alert, AlertDeliveryError, Alerter, DeliveryPolicy, LogSink
from company_activity.alerts.email import EmailSink, build_message, parse_smtp_url
from company_activity.alerts.factory import sinks_from_settings
from company_activity.alerts.teams import TeamsSink
from company_activity.config import load_settings
from company_activity.errors import ConfigError

from .alert_servers import PASSWORD, USER, Server, free_port
from .helpers import exception_texts

PASSWORD_Q = "pA55-w0rd%2Fwith%3Aodd%40chars"  # as written in the URL
USER_Q = "alerts%40example.com"
SENDER = "Company Activity <pipeline@example.com>"
TO = ["ops@example.com", "data-team@example.com"]
DAY = date(2026, 11, 5)
FAST = DeliveryPolicy(max_attempts=3, backoff_initial=0.25, backoff_max=2.0, timeout=5.0)


def _alert(**kw: Any) -> Alert:
    values: dict[str, Any] = {
        "severity": "error",
        "title": "step failure",
        "message": "the API answered 503 for 2026-11-05 <page 3> & gave up",
        "run_id": "20261106T020000Z-abc123",
        "day": DAY,
        "step": "ingest_usage",
        "rerun": "company-activity run --date 2026-11-05",
        "figures": {"attempts": "6"},
    }
    values.update(kw)
    return Alert(**values)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*certificate)
    return ctx


def _client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def _no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert PASSWORD_Q not in text


# == delivery ==============================================================================================
def test_the_delivered_message_has_headers_both_parts_and_every_recipient(smtp_server: Server) -> None:
    box, port = smtp_server()
    sink = EmailSink(f"smtp://127.0.0.1:{port}", sender=SENDER, recipients=TO, policy=FAST)
    sink.send(_alert())

    (envelope,) = box.envelopes
    assert envelope.mail_from == "pipeline@example.com"
    assert envelope.rcpt_tos == TO
    msg = box.message()
    assert msg["Subject"] == "[company-activity] ERROR step failure ingest_usage 2026-11-05"
    assert msg["From"] == SENDER
    assert msg["To"] == "ops@example.com, data-team@example.com"
    assert msg["X-Company-Activity-Run-Id"] == "20261106T020000Z-abc123"
    assert msg["Message-ID"].endswith("@example.com>")
    assert msg["Date"]
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    plain = parts[0].get_content()
    assert "ERROR: step failure" in plain
    assert "the API answered 503 for 2026-11-05 <page 3> & gave up" in plain
    assert "Run:      20261106T020000Z-abc123" in plain
    assert "Day:      2026-11-05" in plain
    assert "Step:     ingest_usage" in plain
    assert "attempts: 6" in plain
    assert "    company-activity run --date 2026-11-05" in plain
    page = parts[1].get_content()
    assert "&lt;page 3&gt; &amp; gave up" in page  # escaped
    assert "<th" in page and "20261106T020000Z-abc123" in page
    assert "<pre" in page and "company-activity run --date 2026-11-05</pre>" in page
    assert box.tls == [False]  # this server offers no STARTTLS
    assert sink.attempts == 1


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_login_with_the_url_credentials(smtp_server: Server, mechanism: str) -> None:
    other = {"LOGIN": "PLAIN", "PLAIN": "LOGIN"}[mechanism]
    box, port = smtp_server(auth=True, auth_require_tls=False, auth_exclude_mechanism=[other])
    sink = EmailSink(
        f"smtp://{USER_Q}:{PASSWORD_Q}@127.0.0.1:{port}", sender=SENDER, recipients=TO[:1], policy=FAST
    )
    sink.send(_alert())
    assert box.logins == [(mechanism, USER, PASSWORD)]  # percent-decoded
    assert len(box.envelopes) == 1
    _no_password(repr(sink), repr(sink.target))


def test_a_refused_login_is_not_retried_and_hides_the_password(
    smtp_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    box, port = smtp_server(auth=True, auth_require_tls=False)
    wrong = "wrong-" + PASSWORD
    sleeps = Sleeps()
    sink = EmailSink(
        parse_smtp_url(f"smtp://{USER_Q}:wrong-{PASSWORD_Q}@127.0.0.1:{port}"),
        sender=SENDER,
        recipients=TO,
        policy=FAST,
        sleep=sleeps,
    )
    with pytest.raises(AlertDeliveryError) as info:
        sink.send(_alert())
    assert sink.attempts == 1 and sleeps == []
    assert "535" in str(info.value)
    assert f"smtp://127.0.0.1:{port}" in str(info.value)
    assert box.envelopes == []
    for text in [*exception_texts(info.value), caplog.text]:
        assert wrong not in text
        _no_password(text)


def test_starttls_is_used_when_offered(smtp_server: Server, certificate: tuple[Path, Path]) -> None:
    # the server refuses mail and login before STARTTLS: delivery proves the upgrade happened
    box, port = smtp_server(
        auth=True, tls_context=_server_tls(certificate), require_starttls=True, auth_require_tls=True
    )
    sink = EmailSink(
        f"smtp://{USER_Q}:{PASSWORD_Q}@127.0.0.1:{port}",
        sender=SENDER,
        recipients=TO,
        policy=FAST,
        ssl_context=_client_tls(certificate),
    )
    sink.send(_alert())
    assert box.tls == [True]
    assert box.logins == [("PLAIN", USER, PASSWORD)]
    assert box.message()["Subject"] == "[company-activity] ERROR step failure ingest_usage 2026-11-05"


def test_implicit_tls_with_smtps(smtp_server: Server, certificate: tuple[Path, Path]) -> None:
    # aiosmtpd offers AUTH over implicit TLS only with auth_require_tls=False (it counts STARTTLS only)
    box, port = smtp_server(auth=True, auth_require_tls=False, ssl_context=_server_tls(certificate))
    sink = EmailSink(
        f"smtps://{USER_Q}:{PASSWORD_Q}@localhost:{port}",
        sender=SENDER,
        recipients=TO,
        policy=FAST,
        ssl_context=_client_tls(certificate),
    )
    sink.send(_alert(severity="warning", title="volume anomaly: usage"))
    assert box.logins == [("PLAIN", USER, PASSWORD)]
    assert (
        box.message()["Subject"] == "[company-activity] WARNING volume anomaly: usage ingest_usage 2026-11-05"
    )


def test_an_untrusted_certificate_fails_at_once(
    smtp_server: Server, certificate: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    box, port = smtp_server(tls_context=_server_tls(certificate), require_starttls=True)
    sleeps = Sleeps()
    sink = EmailSink(
        f"smtp://{USER_Q}:{PASSWORD_Q}@127.0.0.1:{port}",
        sender=SENDER,
        recipients=TO,
        policy=FAST,
        sleep=sleeps,  # the default context: the self-signed certificate is not trusted
    )
    with pytest.raises(AlertDeliveryError) as info:
        sink.send(_alert())
    assert sink.attempts == 1 and sleeps == []
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    assert box.envelopes == []
    _no_password(*exception_texts(info.value), caplog.text)


# == failures and retries ==================================================================================
def test_a_refusing_server_is_retried_then_a_delivery_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sleeps = Sleeps()
    sink = EmailSink(
        f"smtp://{USER_Q}:{PASSWORD_Q}@127.0.0.1:{free_port()}",
        sender=SENDER,
        recipients=TO,
        policy=FAST,
        sleep=sleeps,
    )
    with pytest.raises(AlertDeliveryError) as info:
        sink.send(_alert())
    assert sink.attempts == 3
    assert sleeps == [0.25, 0.5]
    assert "ConnectionRefusedError" in str(info.value)
    assert info.value.__context__ is None
    assert len([r for r in caplog.records if "retrying in" in r.getMessage()]) == 2
    _no_password(*exception_texts(info.value), caplog.text)
    with pytest.raises(AlertDeliveryError, match=r"after 1 attempt\(s\) \(tried once"):
        sink.send(_alert(step="build"))  # still down: one attempt only


def test_a_temporary_4xx_reply_is_retried(smtp_server: Server) -> None:
    box, port = smtp_server()
    box.data_replies = ["451 4.3.0 Mail server temporarily rejected message"]
    sleeps = Sleeps()
    sink = EmailSink(f"smtp://127.0.0.1:{port}", sender=SENDER, recipients=TO, policy=FAST, sleep=sleeps)
    sink.send(_alert())
    assert sink.attempts == 2 and sleeps == [0.25]
    assert len(box.envelopes) == 1


def test_a_permanent_5xx_reply_is_not_retried(smtp_server: Server) -> None:
    box, port = smtp_server()
    box.data_replies = ["554 5.7.1 Message rejected as spam"] * 3
    sink = EmailSink(f"smtp://127.0.0.1:{port}", sender=SENDER, recipients=TO, policy=FAST, sleep=Sleeps())
    with pytest.raises(AlertDeliveryError, match="554") as info:
        sink.send(_alert())
    assert info.value.attempts == 1


def test_alerter_with_email_down_still_records_the_alert(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    sink = EmailSink(
        f"smtp://{USER_Q}:{PASSWORD_Q}@127.0.0.1:{free_port()}",
        sender=SENDER,
        recipients=TO,
        policy=DeliveryPolicy(max_attempts=2, backoff_initial=0),
    )
    alerter = Alerter([LogSink(), sink])
    alerter.send(_alert())
    assert len(alerter.sent) == 1
    assert [f.sink for f in alerter.failures] == ["email"]
    assert "alert delivery to email failed" in caplog.text
    _no_password(caplog.text)


# == the URL ===============================================================================================
def test_parse_smtp_url() -> None:
    t = parse_smtp_url(f"smtp://{USER_Q}:{PASSWORD_Q}@mail.example.com")
    assert (t.host, t.port, t.implicit_tls, t.username, t.password) == (
        "mail.example.com",
        587,
        False,
        USER,
        PASSWORD,
    )
    assert t.where == "smtp://mail.example.com:587"
    _no_password(repr(t))
    s = parse_smtp_url("SMTPS://relay.example.com:2465")
    assert (s.port, s.implicit_tls, s.username, s.password) == (2465, True, None, None)
    assert parse_smtp_url("smtps://relay.example.com").port == 465


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://mail.example.com", "scheme must be smtp"),
        ("smtp://", "no host"),
        (f"smtp://u:{PASSWORD_Q}@mail.example.com:notaport", "bad port"),
        (f"smtp://u:{PASSWORD_Q}@mail.example.com:25/path", "nothing after the port"),
        (f"smtp://:{PASSWORD_Q}@mail.example.com", "a password without a user name"),
    ],
)
def test_bad_smtp_urls_are_config_errors_without_the_password(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        parse_smtp_url(url)
    assert "COMPANY_ACTIVITY_SMTP_URL" in str(info.value)
    _no_password(*exception_texts(info.value))


def test_build_message_for_a_recovery() -> None:
    from company_activity.alerts import recovered_alert

    msg = build_message(recovered_alert("r2", "build", DAY, "gate"), sender=SENDER, recipients=TO[:1])
    assert msg["Subject"] == "[company-activity] RECOVERED build 2026-11-05"
    assert msg["Auto-Submitted"] == "auto-generated"


# == the factory ===========================================================================================
def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    for key, value in env.items():
        monkeypatch.setenv("COMPANY_ACTIVITY_" + key.upper(), value)
    return load_settings()


def test_only_the_log_sink_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    sinks = sinks_from_settings(_settings(monkeypatch))
    assert [type(s) for s in sinks] == [LogSink]


def test_every_sink_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(
        monkeypatch,
        teams_webhook_url="https://prod-01.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/"
        "paths/invoke?api-version=2016-06-01&sig=s3cretSig0000",
        smtp_url=f"smtp://{USER_Q}:{PASSWORD_Q}@mail.example.com:2525",
        alert_email_from=SENDER,
        alert_email_to="ops@example.com, data-team@example.com ,",
        alert_max_attempts="2",
        alert_timeout="3.5",
    )
    log_sink, teams, mail = sinks_from_settings(settings)
    assert isinstance(log_sink, LogSink)
    assert isinstance(teams, TeamsSink) and isinstance(mail, EmailSink)
    assert teams.policy == mail.policy == DeliveryPolicy(max_attempts=2, timeout=3.5)
    assert mail.recipients == TO
    assert (mail.target.host, mail.target.port, mail.target.password) == ("mail.example.com", 2525, PASSWORD)
    assert "s3cretSig0000" not in repr(teams)


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"alert_email_to": "ops@example.com"}, "ALERT_EMAIL_TO is set but COMPANY_ACTIVITY_SMTP_URL is not"),
        ({"smtp_url": "smtp://mail.example.com", "alert_email_to": "ops@example.com"}, "ALERT_EMAIL_FROM"),
        ({"smtp_url": "smtp://mail.example.com", "alert_email_from": "p@example.com"}, "ALERT_EMAIL_TO"),
        (
            {
                "smtp_url": "smtp://m.example.com",
                "alert_email_from": "p@example.com",
                "alert_email_to": "ops",
            },
            "not an e-mail address: ops",
        ),
        ({"smtp_url": f"imap://u:{PASSWORD_Q}@m.example.com"}, "SMTP_URL"),
        ({"teams_webhook_url": "hooks.example.com/abc"}, "TEAMS_WEBHOOK_URL"),
        (
            {
                "smtp_url": "smtp://m.example.com",
                "alert_email_from": "p@example.com",
                "alert_email_to": "o@example.com",
                "smtp_ca_file": "/nonexistent/ca.pem",
            },
            "SMTP_CA_FILE",
        ),
    ],
)
def test_half_configured_alerting_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        sinks_from_settings(_settings(monkeypatch, **env))
    _no_password(str(info.value))


def test_alert_settings_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("alert_max_attempts = 7\nalert_backoff_initial = 0.1\nalert_backoff_max = 2\n")
    settings = load_settings(path)
    assert DeliveryPolicy.from_settings(settings) == DeliveryPolicy(7, 0.1, 2.0, 10.0)
    path.write_text("alert_max_attempts = 0\n")
    with pytest.raises(ConfigError, match="alert_max_attempts"):
        load_settings(path)
