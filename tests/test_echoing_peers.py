"""Peers that echo the request back (issue 24), one part at a time: the Teams sink, the usage API client
(API key with a user-info URL; OAuth at the token endpoint and the data endpoint) and the e-mail sink,
each against a real loopback peer whose error answers repeat the request in every echo variant. The
failure stays visible (sink or endpoint, status) and no secret, in any form, is in what they raise or log.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import date
from urllib.parse import quote, quote_plus

import pytest
from aiosmtpd.controller import Controller

from company_activity.alerts import Alert, AlertDeliveryError, DeliveryPolicy
from company_activity.alerts.email import EmailSink
from company_activity.alerts.teams import TeamsSink
from company_activity.errors import ApiUnavailable, CredentialsRejected, InvalidRequest, PipelineError
from company_activity.sources.usage.client import UsageApiClient
from company_activity.sources.usage.retry import RetryPolicy

from .alert_servers import free_port
from .echo_peers import VARIANTS, EchoingMailServer, EchoPeer, Route, leaks, serve_echo_peer

DAY = date(2026, 11, 10)
HOOK_SEGMENT = "Fl0wSeg-8841-Secret"
HOOK_SIG = "Sig%2BEcho%2FSecret0042%3D"  # percent-encoded base64, as a SAS signature is
HOOK_BARE = "BareQ-Echo-Secret-7306"
API_KEY = "ApiK/Echo+Secret=6620"
URL_PASSWORD = "UrlPw/Echo&Secret-3171"
CLIENT_SECRET = "ClSe/Echo+Secret&9105"
TOKEN = "AccT/Echo+Token-5508="
SMTP_PASSWORD = "SmPw-Echo/Secret:5512"
N = len(VARIANTS) + 6  # every variant, then the peer's cuts inside a secret


@pytest.fixture
def peer() -> Iterator[EchoPeer]:
    yield from serve_echo_peer()


def hook_url(peer: EchoPeer) -> str:
    return peer.url(f"/flows/{HOOK_SEGMENT}/run?api-version=2016-06-01&sig={HOOK_SIG}&{HOOK_BARE}")


def alert() -> Alert:
    return Alert("error", "usage failed", "ingest_usage failed for 2026-11-10", "run-1", day=DAY)


def test_an_echoing_webhook_on_any_host_gets_no_secret_out(
    peer: EchoPeer, caplog: pytest.LogCaptureFixture
) -> None:
    peer.routes["webhook"] = Route(statuses=[500] * (N - 1) + [400], cuts=[HOOK_SIG, HOOK_SEGMENT])
    policy = DeliveryPolicy(max_attempts=N, backoff_initial=0.0, backoff_max=0.01, timeout=5)
    sink = TeamsSink(hook_url(peer), policy=policy)
    with caplog.at_level(logging.DEBUG), pytest.raises(AlertDeliveryError) as failed:
        sink.send(alert())
    text = str(failed.value)
    assert text.startswith(f"Teams webhook delivery failed after {N} attempt(s)") and "HTTP 400" in text
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == N - 1 and all("HTTP 500" in r for r in retries), retries
    assert sum("***" in r for r in retries) >= len(VARIANTS), retries  # the echoes were there, redacted
    outputs = "\n".join([text, *retries, caplog.text])
    assert leaks(outputs, [HOOK_SEGMENT, HOOK_SIG, HOOK_SIG.replace("%2B", "+"), HOOK_BARE]) == []


def usage_client(peer: EchoPeer, *, oauth: bool, attempts: int) -> UsageApiClient:
    userinfo = f"pipeline:{quote(URL_PASSWORD, safe='')}@"
    base = peer.url() if oauth else peer.url().replace("//", f"//{userinfo}", 1)
    return UsageApiClient(
        base,
        client_id="pipeline" if oauth else None,
        client_secret=CLIENT_SECRET if oauth else None,
        api_key=None if oauth else API_KEY,
        retry=RetryPolicy(max_attempts=attempts, backoff_initial=0.0, backoff_max=0.01),
        rate_limit=None,
    )


@pytest.mark.parametrize("k", range(N))
def test_an_echoing_usage_api_gets_no_key_nor_url_password_out(peer: EchoPeer, k: int) -> None:
    peer.routes["/v1/usage/daily"] = Route(statuses=[400], cuts=[API_KEY, URL_PASSWORD])
    peer.routes["/v1/usage/daily"].requests = k  # this case's echo variant
    with usage_client(peer, oauth=False, attempts=1) as client, pytest.raises(InvalidRequest) as failed:
        list(client.fetch_day(DAY))
    text = str(failed.value)
    assert "product-usage API rejected the request for 2026-11-10" in text and "HTTP 400 " in text, text
    assert peer.seen[0]["headers"]["X-API-Key"] == API_KEY  # the peer did get the secrets to echo
    basic = base64.b64encode(f"pipeline:{URL_PASSWORD}".encode()).decode()
    assert peer.seen[0]["headers"]["Authorization"] == f"Basic {basic}"
    assert leaks(text, [API_KEY, URL_PASSWORD, basic]) == [], text


@pytest.mark.parametrize("k", range(N))
def test_an_echoing_token_endpoint_gets_no_client_secret_out(peer: EchoPeer, k: int) -> None:
    peer.routes["/oauth/token"] = Route(statuses=[401], cuts=[CLIENT_SECRET])
    peer.routes["/oauth/token"].requests = k
    with usage_client(peer, oauth=True, attempts=1) as client, pytest.raises(CredentialsRejected) as failed:
        list(client.fetch_day(DAY))
    text = str(failed.value)
    assert (
        text.startswith("credentials rejected by the product-usage API token endpoint") and "HTTP 401" in text
    )
    assert "client_secret=" + quote_plus(CLIENT_SECRET) in peer.seen[0]["body"].decode()
    assert leaks(text, [CLIENT_SECRET]) == [], text


def test_an_echoing_data_endpoint_gets_no_access_token_out(
    peer: EchoPeer, caplog: pytest.LogCaptureFixture
) -> None:
    peer.routes["/oauth/token"] = Route(
        statuses=[200], ok_body=json.dumps({"access_token": TOKEN, "expires_in": 3600}).encode()
    )
    peer.routes["/v1/usage/daily"] = Route(statuses=[503], cuts=[TOKEN])
    with (
        usage_client(peer, oauth=True, attempts=N) as client,
        caplog.at_level(logging.WARNING),
        pytest.raises(ApiUnavailable) as failed,
    ):
        list(client.fetch_day(DAY))
    text = str(failed.value)
    assert "product-usage API unavailable for 2026-11-10" in text and "HTTP 503" in text, text
    assert peer.seen[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == N - 1, retries
    assert leaks("\n".join([text, *retries]), [TOKEN]) == [], retries


@pytest.mark.parametrize("refuse_login", [False, True], ids=["rcpt-refused", "login-refused"])
def test_an_echoing_smtp_server_gets_no_password_out(refuse_login: bool) -> None:
    handler = EchoingMailServer(refuse_login=refuse_login)
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=handler.authenticator,
        auth_require_tls=False,
        ready_timeout=5,
    )
    controller.start()
    try:
        sink = EmailSink(
            f"smtp://alerts%40example.com:{SMTP_PASSWORD.replace('/', '%2F').replace(':', '%3A')}"
            f"@127.0.0.1:{port}",
            sender="pipeline@example.com",
            recipients=["oncall@example.com"],
            policy=DeliveryPolicy(max_attempts=1, timeout=5),
        )
        with pytest.raises(AlertDeliveryError) as failed:
            sink.send(alert())
    finally:
        controller.stop()
    text = str(failed.value)
    assert handler.logins == [("alerts@example.com", SMTP_PASSWORD)]
    assert f"e-mail delivery via smtp://127.0.0.1:{port} failed" in text
    assert ("535" if refuse_login else "550") in text, text
    if not refuse_login:
        assert "oncall@example.com" in text, text  # the refused recipient is named
    blob = base64.b64encode(f"\0alerts@example.com\0{SMTP_PASSWORD}".encode()).decode()
    assert leaks(text, [SMTP_PASSWORD, blob, blob[12:]]) == [], text
    assert isinstance(failed.value, PipelineError)
