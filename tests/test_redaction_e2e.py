"""Nothing leaks (issue 9): a fake secret in every secret setting, echoed back by hostile input (a CRM file
whose first line holds them all, a webhook receiver that echoes its URL in an error), appears in none of:
the process output (stdout and stderr), any text of any ops table, the Teams payloads, the e-mails.

Real parts: the CLI in a process, the simulator, a loopback webhook receiver, aiosmtpd, DuckDB.
"""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from urllib.parse import quote

import pytest

from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.warehouse import connect

from . import procs
from .alert_servers import PASSWORD, USER, Receiver, Server
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
