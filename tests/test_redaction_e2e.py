"""Nothing leaks (issue 9): a fake secret in every secret setting, echoed back by hostile input (a CRM file
whose first line holds them all, a webhook receiver that echoes its URL in an error), appears in none of:
the process output (stdout and stderr), any text of any ops table, the Teams payloads, the e-mails.

Issue 24: peers that echo the request back (the webhook on a loopback host, the usage API, its token
endpoint, the SMTP server), in every form an echoing server gives it (:mod:`tests.echo_peers`): no secret
in any form, nor its first 8 characters, in any of those outputs; the failure still names sink and status.

Real parts: the CLI in a process, the simulator, a loopback webhook receiver, aiosmtpd, DuckDB.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote

import pytest
from aiosmtpd.controller import Controller

from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.warehouse import connect

from . import procs
from .alert_servers import PASSWORD, USER, Mailbox, Receiver, Server, free_port
from .echo_peers import VARIANTS, EchoingMailServer, EchoPeer, Route, leaks, serve_echo_peer
from .helpers import days

TODAY = date(2026, 11, 12)
FOUR = days(date(2026, 11, 8), date(2026, 11, 11))
D1, D2, D4 = FOUR[0], FOUR[1], FOUR[-1]

CLIENT_SECRET = "Api-Cl1ent-Secret-7781"
API_KEY = "Api-K3y-Secret-5531"
HOOK_PATH = "/hooks/Wh00k-Path-Secret-991/invoke"
HOOK_QUERY = "Wh00k-Unnamed-Query-Secret-4421"  # an unnamed query parameter: secret too
ACCOUNT_KEY = "QXp1cmUtS2V5LVNlY3JldC0xMjM0NTY3ODkw"


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    options = SimulatorOptions(
        seed=9, companies=40, today=TODAY, client_secret=CLIENT_SECRET, api_key=API_KEY
    )
    with SimulatorServer(options) as server:
        yield server


def test_no_secret_leaves_the_process(
    tmp_path: Path,
    sim: SimulatorServer,
    receiver: Receiver,
    smtp_server: Server,
) -> None:
    box, port = smtp_server(auth=True, auth_require_tls=False)
    webhook = f"http://127.0.0.1:{receiver.port}{HOOK_PATH}?{HOOK_QUERY}"
    receiver.script = [(400, {}, f"bad request: {webhook} is not a flow")]  # echoes its URL
    secrets = [CLIENT_SECRET, API_KEY, HOOK_PATH.strip("/"), HOOK_QUERY, PASSWORD, ACCOUNT_KEY]

    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, [d for d in FOUR if d != D2])
    crm = lake / "crm" / f"crm_daily_{D2.isoformat()}.csv"
    crm.write_text(" ".join(secrets) + " " + webhook + "\nx,y\n1,2\n")  # first line is not a header

    wh = str(tmp_path / "wh.duckdb")
    env = procs.cli_env(wh, lake, sim, start=D1, today=TODAY) | {
        "COMPANY_ACTIVITY_API_CLIENT_SECRET": CLIENT_SECRET,
        "COMPANY_ACTIVITY_API_KEY": API_KEY,
        "COMPANY_ACTIVITY_TEAMS_WEBHOOK_URL": webhook,
        "COMPANY_ACTIVITY_SMTP_URL": f"smtp://{quote(USER, safe='')}:{quote(PASSWORD, safe='')}"
        f"@127.0.0.1:{port}",
        "COMPANY_ACTIVITY_ALERT_EMAIL_FROM": "pipeline@example.com",
        "COMPANY_ACTIVITY_ALERT_EMAIL_TO": "oncall@example.com",
        "COMPANY_ACTIVITY_ALERT_MAX_ATTEMPTS": "1",
        "COMPANY_ACTIVITY_ALERT_TIMEOUT": "5",
        "AZURE_STORAGE_CONNECTION_STRING": (
            f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ACCOUNT_KEY};"
            "EndpointSuffix=core.windows.net"
        ),
        "COMPANY_ACTIVITY_LOG_LEVEL": "DEBUG",
    }
    code, output = procs.run(
        env, "backfill", "--start", D1.isoformat(), "--end", D4.isoformat(), tmp=tmp_path
    )

    assert code == 1, output
    assert "ingest_crm    failed" in output, output
    texts = {"output": output}
    with connect(wh) as w:
        tables = [
            r[0]
            for r in w.execute("select table_name from information_schema.tables where table_schema = 'ops'")
        ]
        for name in tables:
            texts[f"ops.{name}"] = repr(w.execute(f"select * from ops.{name}"))  # noqa: S608
        # the failure was recorded: there is something to leak
        assert "crm" in texts["ops.run_steps"]
    assert receiver.requests, "no Teams alert was sent"
    texts["teams"] = "\n".join(json.dumps(r["json"], ensure_ascii=False) for r in receiver.requests)
    assert box.envelopes, "no e-mail was sent"
    for k, envelope in enumerate(box.envelopes):
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = [p.get_content() for p in message.walk() if p.get_content_maintype() == "text"]
        texts[f"mail {k}"] = raw.decode(errors="replace") + "\n".join(parts) + str(message["Subject"])
    for where, text in texts.items():
        for secret in secrets:
            for form in (secret, quote(secret, safe="")):
                assert form not in text, f"{secret!r} leaked into {where}"


# == issue 24: peers that echo the request back =========================================================
ECHO_SEGMENT = "Fl0wSeg-E2E-Secret-4417"
ECHO_SIG = "E2eSig%2FEcho%2BSecret0815%3D"  # percent-encoded base64, as a SAS signature is
ECHO_BARE = "E2eBare-Echo-Secret-2290"
ECHO_CLIENT_SECRET = "E2eCl/Echo+Secret&3364"
ECHO_TOKEN = "E2eTok/Echo+Token-7719="
SEVEN = days(date(2026, 11, 4), date(2026, 11, 11))
ATTEMPTS = len(VARIANTS) + 3  # every echo variant, then cuts inside a secret


@pytest.fixture
def peer() -> Iterator[EchoPeer]:
    yield from serve_echo_peer()


def _ops_texts(wh: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    with connect(wh) as w:
        names = [
            r[0]
            for r in w.execute("select table_name from information_schema.tables where table_schema = 'ops'")
        ]
        for name in names:
            texts[f"ops.{name}"] = repr(w.execute(f"select * from ops.{name}"))  # noqa: S608
    return texts


def _mail_texts(box: Mailbox) -> dict[str, str]:
    texts = {}
    for k, envelope in enumerate(box.envelopes):
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = [p.get_content() for p in message.walk() if p.get_content_maintype() == "text"]
        texts[f"mail {k}"] = raw.decode(errors="replace") + "\n".join(parts) + str(message["Subject"])
    return texts


def _assert_no_leak(texts: dict[str, str], secrets: list[str]) -> None:
    for where, text in texts.items():
        assert leaks(text, secrets) == [], f"{leaks(text, secrets)} leaked into {where}"


def test_an_echoing_webhook_on_a_loopback_host_leaks_nothing(
    tmp_path: Path, sim: SimulatorServer, peer: EchoPeer, smtp_server: Server
) -> None:
    """(a) the Teams/Workflows webhook (not a Microsoft host) answers 500s, then a 400, each echoing the
    request (a secret in a path segment, a query value and a bare query item) in another form."""
    peer.routes["webhook"] = Route(statuses=[500] * (ATTEMPTS - 1) + [400], cuts=[ECHO_SIG, ECHO_SEGMENT])
    box, port = smtp_server(auth=True, auth_require_tls=False)
    webhook = peer.url(f"/wf/{ECHO_SEGMENT}/invoke?api-version=2016-06-01&sig={ECHO_SIG}&{ECHO_BARE}")
    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, [d for d in FOUR if d != D2])
    (lake / "crm" / f"crm_daily_{D2.isoformat()}.csv").write_text("x,y\n1,2\n")  # a CRM day fails: alerts
    wh = str(tmp_path / "wh.duckdb")
    env = procs.cli_env(wh, lake, sim, start=D1, today=TODAY) | {
        "COMPANY_ACTIVITY_API_CLIENT_SECRET": CLIENT_SECRET,
        "COMPANY_ACTIVITY_TEAMS_WEBHOOK_URL": webhook,
        "COMPANY_ACTIVITY_SMTP_URL": f"smtp://{quote(USER, safe='')}:{quote(PASSWORD, safe='')}"
        f"@127.0.0.1:{port}",
        "COMPANY_ACTIVITY_ALERT_EMAIL_FROM": "pipeline@example.com",
        "COMPANY_ACTIVITY_ALERT_EMAIL_TO": "oncall@example.com",
        "COMPANY_ACTIVITY_ALERT_MAX_ATTEMPTS": str(ATTEMPTS),
        "COMPANY_ACTIVITY_ALERT_BACKOFF_INITIAL": "0",
        "COMPANY_ACTIVITY_ALERT_BACKOFF_MAX": "0.01",
        "COMPANY_ACTIVITY_ALERT_TIMEOUT": "5",
        "COMPANY_ACTIVITY_LOG_LEVEL": "DEBUG",
    }
    code, output = procs.run(
        env, "backfill", "--start", D1.isoformat(), "--end", D4.isoformat(), tmp=tmp_path
    )

    assert code == 1, output
    assert peer.routes["webhook"].requests >= ATTEMPTS  # every variant was echoed back
    # the failure stays visible: which sink, which status, each attempt
    assert "alert delivery to teams failed" in output and "HTTP 400" in output, output
    assert output.count("alert delivery to teams failed (attempt") == ATTEMPTS - 1, output
    assert "HTTP 500: POST *** HTTP/1.1" in output, output  # the echo was quoted, redacted
    assert box.envelopes, "the e-mail sink received nothing"
    texts = {"output": output} | _ops_texts(wh) | _mail_texts(box)
    assert "ingest_crm" in texts["ops.run_steps"]
    secrets = [ECHO_SEGMENT, ECHO_SIG, unquote(ECHO_SIG), ECHO_BARE, CLIENT_SECRET, PASSWORD]
    _assert_no_leak(texts, secrets)


def test_an_echoing_api_token_endpoint_and_mail_server_leak_nothing(
    tmp_path: Path, sim: SimulatorServer, peer: EchoPeer, receiver: Receiver
) -> None:
    """(b) the usage API and (c) its OAuth token endpoint answer 503s (retried), then the token a 200 and
    the data endpoint 400s, every error echoing the request (form body with the client secret, bearer
    token) in another form; the SMTP server refuses the recipient echoing the login. Teams receives."""
    token = json.dumps({"access_token": ECHO_TOKEN, "expires_in": 3600}).encode()
    peer.routes["/oauth/token"] = Route(
        statuses=[503] * (ATTEMPTS - 1) + [200], ok_body=token, cuts=[quote_plus(ECHO_CLIENT_SECRET)]
    )
    peer.routes["/v1/usage/daily"] = Route(statuses=[503] * (ATTEMPTS - 1) + [400], cuts=[ECHO_TOKEN])
    mail = EchoingMailServer()
    mail_port = free_port()
    controller = Controller(
        mail,
        hostname="127.0.0.1",
        port=mail_port,
        authenticator=mail.authenticator,
        auth_require_tls=False,
        ready_timeout=5,
    )
    controller.start()
    lake = tmp_path / "lake"
    procs.write_crm(sim, lake, SEVEN)
    wh = str(tmp_path / "wh.duckdb")
    env = procs.cli_env(wh, lake, sim, start=SEVEN[0], today=TODAY) | {
        "COMPANY_ACTIVITY_API_URL": peer.url(),
        "COMPANY_ACTIVITY_API_CLIENT_SECRET": ECHO_CLIENT_SECRET,
        "COMPANY_ACTIVITY_API_MAX_ATTEMPTS": str(ATTEMPTS),
        "COMPANY_ACTIVITY_API_BACKOFF_INITIAL": "0",
        "COMPANY_ACTIVITY_API_BACKOFF_MAX": "0.01",
        "COMPANY_ACTIVITY_API_CONCURRENCY": "1",
        "COMPANY_ACTIVITY_TEAMS_WEBHOOK_URL": receiver.url,
        "COMPANY_ACTIVITY_SMTP_URL": f"smtp://{quote(USER, safe='')}:{quote(PASSWORD, safe='')}"
        f"@127.0.0.1:{mail_port}",
        "COMPANY_ACTIVITY_ALERT_EMAIL_FROM": "pipeline@example.com",
        "COMPANY_ACTIVITY_ALERT_EMAIL_TO": "oncall@example.com",
        "COMPANY_ACTIVITY_ALERT_MAX_ATTEMPTS": "1",
        "COMPANY_ACTIVITY_ALERT_TIMEOUT": "5",
        "COMPANY_ACTIVITY_LOG_LEVEL": "DEBUG",
    }
    try:
        code, output = procs.run(
            env, "backfill", "--start", SEVEN[0].isoformat(), "--end", SEVEN[-1].isoformat(), tmp=tmp_path
        )
    finally:
        controller.stop()

    assert code == 1, output
    assert peer.routes["/oauth/token"].requests == ATTEMPTS, output
    assert peer.routes["/v1/usage/daily"].requests >= ATTEMPTS + len(SEVEN) - 1, output
    seen = peer.seen[ATTEMPTS - 1]
    assert quote_plus(ECHO_CLIENT_SECRET) in seen["body"].decode()  # the peers had the secrets to echo
    assert peer.seen[-1]["headers"]["Authorization"] == f"Bearer {ECHO_TOKEN}"
    assert mail.rcpts and set(mail.rcpts) == {"oncall@example.com"}
    assert set(mail.logins) == {(USER, PASSWORD)}
    # the failures stay visible: the endpoint and status, per day; the refusing mail server
    assert "token endpoint HTTP 503" in output and "retrying" in output, output
    assert "product-usage API rejected the request for" in output and "HTTP 400 Bearer ***" in output, output
    assert "alert delivery to email failed" in output and "550" in output, output
    texts = {"output": output} | _ops_texts(wh)
    assert "HTTP 400" in texts["ops.usage_days"], texts["ops.usage_days"]
    assert receiver.requests, "the Teams sink received nothing"
    teams = "\n".join(json.dumps(r["json"], ensure_ascii=False) for r in receiver.requests)
    assert "HTTP 400" in teams, teams
    texts["teams"] = teams
    blob = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    _assert_no_leak(texts, [ECHO_CLIENT_SECRET, ECHO_TOKEN, PASSWORD, blob])
