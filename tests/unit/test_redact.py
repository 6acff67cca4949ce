"""The one redaction and the failure texts (issue 9): unit level."""

from __future__ import annotations

import base64
import errno
import html
import json
import re
from urllib.parse import quote, unquote_plus

from company_activity.config import Settings
from company_activity.failures import MAX_MESSAGE, as_storage_error, describe
from company_activity.redact import (
    clip,
    excerpt,
    redact,
    register_secret,
    secrets_from_settings,
    url_credentials,
    url_secret_parts,
)


def test_a_webhook_url_is_secret_as_a_whole() -> None:
    url = "https://hooks.internal.example/flow/Fl0w-Id-Secret-881/run?Unnamed-Q-Secret-77"
    for piece in url_secret_parts(url):
        register_secret(piece)
    for echoed in (url, "/flow/Fl0w-Id-Secret-881/run", "Unnamed-Q-Secret-77", "flow/Fl0w-Id-Secret-881/run"):
        text = redact(f"receiver said: {echoed} is unknown")
        assert "Fl0w-Id-Secret-881" not in text and "Unnamed-Q-Secret-77" not in text, text


def test_an_excerpt_is_short_escaped_and_redacted() -> None:
    register_secret("Exc3rpt-Secret-Value")
    shown = excerpt("a\r\nb\x00 Exc3rpt-Secret-Value " + "x" * 200)
    assert shown.startswith("'a\\r\\nb\\x00 ***") and shown.endswith("…") and len(shown) < 60, shown


def test_describe_is_one_bounded_redacted_line() -> None:
    register_secret("D3scribe-Secret-Value")
    text = describe(ValueError("line one\nD3scribe-Secret-Value\n" + "y" * 5000))
    assert "\n" not in text and "D3scribe-Secret-Value" not in text and len(text) <= MAX_MESSAGE
    err = as_storage_error(OSError(errno.ENOSPC, "No space left on device", "/data/lake/x.json"), "lake")
    assert str(err) == "lake /data/lake/x.json: no space left on device" and err.path == "/data/lake/x.json"


# == issue 24: every part of a configured value that can carry a secret, in every echoed form ==========
def test_every_form_an_echoing_peer_gives_a_secret_is_redacted() -> None:
    secret = "Echo/Form+Secret&5821=="
    register_secret(secret)
    echoed = {
        "plain": secret,
        "percent": quote(secret, safe=""),
        "percent-lower": re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), quote(secret, safe="")),
        "percent-keeps-slash": quote(secret),
        "twice": quote(quote(secret, safe=""), safe=""),
        "json-slashes": json.dumps(secret)[1:-1].replace("/", "\\/"),
        "json-go": json.dumps(secret)[1:-1].replace("&", "\\u0026"),
        "html": html.escape(secret),
        "decoded-plus": unquote_plus(secret),
    }
    assert len(set(echoed.values())) == len(echoed)  # each a different text
    for name, form in echoed.items():
        text = redact(f"peer said: {form} is unknown")
        assert text == "peer said: *** is unknown", (name, text)


def test_a_url_registers_its_credentials_not_its_plain_parts() -> None:
    pg = "postgresql://pipe:Pg%2FPass-4410@db.internal:5432/wh?sslmode=require&password=Pg-Q-Pass-51"
    parts = url_credentials(pg)
    assert {"Pg%2FPass-4410", "Pg/Pass-4410", "pipe:Pg/Pass-4410", "Pg-Q-Pass-51"} <= set(parts)
    assert base64.b64encode(b"pipe:Pg/Pass-4410").decode() in parts  # what HTTP Basic would send
    assert not {"pipe", "require", "db.internal"} & set(parts)
    assert url_credentials("https://ghp_T0kenUser88@api.example.com/v1")[:2] == ["ghp_T0kenUser88"] * 2
    assert url_credentials("abfss://container@acct.dfs.core.windows.net/x") == []  # a container, no secret
    sas = url_credentials(
        "https://acct.blob.core.windows.net/?sv=2022-11-02&se=2026-12-31T00:00:00Z&sig=Ab%2Bc123XyZ"
    )
    assert set(sas) == {"Ab%2Bc123XyZ", "Ab+c123XyZ"}  # dates and versions are no secret


def test_a_webhook_on_any_host_registers_path_segments_and_query_values() -> None:
    url = "https://hooks.corp.example:8443/api/Fl0wId-3390-Secret/trigger/run?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sig=Wh%2BSig-7741"
    parts = set(url_secret_parts(url))
    assert {
        "Fl0wId-3390-Secret",
        "Wh%2BSig-7741",
        "Wh+Sig-7741",
        "/api/Fl0wId-3390-Secret/trigger/run",
    } <= parts
    assert not {"api", "trigger", "run", "2016-06-01", "/triggers/manual/run"} & parts
    for piece in parts:
        register_secret(piece)
    text = redact("POST /api/Fl0wId-3390-Secret/ answered, sig Wh+Sig-7741, on day 2016-06-01 trigger run")
    assert text == "POST /api/***/ answered, sig ***, on day 2016-06-01 trigger run", text


def test_secrets_from_settings_covers_every_configured_credential() -> None:
    settings = Settings(
        warehouse="postgresql://pipe:Wh-Pass-2288@db.example.com/wh",
        api_url="https://apiuser:Api-Url-Pass-6612@api.example.com",
        api_client_id="pipeline",
        api_client_secret="Api-Client-Secret-9921",
        teams_webhook_url="https://flows.example.com/wf/Hook-Seg-Secret-1177/run?Hook-Bare-Secret-6630",
        smtp_url="smtps://alerts:Smtp-Pass-7735@mail.example.com",
        alert_email_from="pipeline@example.com",
        alert_email_to="oncall@example.com",
        lake_endpoint="https://acct.blob.core.windows.net/?sv=2022-11-02&sig=Lake-Ep-Sig-5514",
        lake_sas_token="sv=2022-11-02&ss=b&sig=Lake-Sas-Sig-4403",
        azure_storage_connection_string=(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=Conn-Key-Secret-8812;"
            "SharedAccessSignature=sv=2022-11-02&sig=Conn-Sas-Sig-3321"
        ),
    )
    values = set(secrets_from_settings(settings))
    for secret in (
        "Wh-Pass-2288",
        "Api-Url-Pass-6612",
        "Api-Client-Secret-9921",
        "Hook-Seg-Secret-1177",
        "Hook-Bare-Secret-6630",
        "Smtp-Pass-7735",
        base64.b64encode(b"\0alerts\0Smtp-Pass-7735").decode(),  # SMTP AUTH PLAIN
        "Lake-Ep-Sig-5514",
        "Lake-Sas-Sig-4403",
        "Conn-Key-Secret-8812",
        "Conn-Sas-Sig-3321",
    ):
        assert secret in values, secret
    assert not {"pipe", "db.example.com", "2022-11-02", "api.example.com"} & values


def test_a_secret_cut_at_the_end_of_a_quoted_answer_is_blanked() -> None:
    register_secret("CutMe-Secret-Value-3319")
    for peer_text in ("error: CutMe-Secret-Val", "error: CutMe-Se...", 'error: "CutMe-Secre"}'):
        shown = clip(peer_text, 200)
        assert "CutMe-Se" not in shown and shown.startswith(("error: ***", 'error: "***')), shown
    shown = clip("x" * 30 + " CutMe-Secret-Value-3319 and more", 40)  # cut by us: redacted first
    assert shown == "x" * 30 + " *** and …", shown  # 39 characters of the redacted text, then …
    assert clip("error: CutMe-S", 200) == "error: CutMe-S"  # 7 characters: too few to tell
    assert clip("POST /a b\n\tc", 200) == "POST /a b c"  # one line
    assert excerpt("CutMe-Secret-Value-3319", 12) == "'***'"  # redacted before the cut


def test_short_lived_secrets_are_kept_only_while_recent() -> None:
    register_secret("Trans1ent-Token-0001", transient=True)
    assert redact("Bearer-less Trans1ent-Token-0001") == "Bearer-less ***"
    for k in range(200):
        register_secret(f"Trans1ent-Token-{k + 2:04d}-x", transient=True)
    assert redact("Trans1ent-Token-0001") == "Trans1ent-Token-0001"  # pushed out by newer ones
    assert redact("Trans1ent-Token-0201-x") == "***"
