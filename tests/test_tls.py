"""TLS that cannot be skipped by accident: the plain-text rule, the API's extra CA, proxies, SMTP STARTTLS.

Real servers on loopback: the API simulator behind TLS with a throw-away CA, a CONNECT proxy, an SMTP
server. "Not loopback" hosts are names that resolve to this machine but are not loopback as written
(the rule judges names as written, never by resolving them).
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from click.testing import CliRunner

from company_activity.alerts import Alert, AlertDeliveryError, DeliveryPolicy
from company_activity.alerts.email import EmailSink
from company_activity.cli import main
from company_activity.config import load_settings
from company_activity.errors import ConfigError
from company_activity.simulator import SimulatorOptions, SimulatorServer
from company_activity.tls import is_loopback_host, plain_targets
from company_activity.warehouse import connect

from . import procs
from .certs import TlsFiles, make_tls_files
from .helpers import days, table

TODAY = date(2026, 11, 12)
D1, D2 = date(2026, 11, 10), date(2026, 11, 11)
TWO = days(D1, D2)
SECRET = "demo-secret"


def _remote_name_for_loopback() -> str:
    """A host name that is not loopback as written but reaches this machine (the machine's own name)."""
    for name in (socket.gethostname(), "127.1"):
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET)}
        except OSError:
            continue
        if addresses and all(a.startswith("127.") for a in addresses) and not is_loopback_host(name):
            return name
    pytest.skip("no host name here resolves to loopback without being loopback as written")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_sim(tls: TlsFiles) -> Iterator[SimulatorServer]:
    """The API simulator serving HTTPS with a certificate of the test CA."""
    sim = SimulatorServer(SimulatorOptions(seed=3, companies=20, today=TODAY))
    httpd = sim._bind()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    sim.url = sim.url.replace("http://", "https://")
    with sim:
        yield sim


def _env(tmp_path: Path, sim: SimulatorServer, **extra: str) -> dict[str, str]:
    env = procs.cli_env(str(tmp_path / "wh.duckdb"), tmp_path / "lake", sim, start=D1, today=TODAY)
    env["COMPANY_ACTIVITY_API_MAX_ATTEMPTS"] = "2"
    env["COMPANY_ACTIVITY_API_BACKOFF_INITIAL"] = "0"
    return env | extra


def _lake(tmp_path: Path, sim: SimulatorServer) -> None:
    from company_activity.storage import Lake

    sim.data.write_crm_snapshots(Lake(str(tmp_path / "lake")), TWO)


# -- the API over HTTPS --------------------------------------------------------------------------------
def test_the_api_behind_a_private_ca_is_trusted_through_api_ca_file(
    https_sim: SimulatorServer, tls: TlsFiles, tmp_path: Path
) -> None:
    _lake(tmp_path, https_sim)
    env = _env(tmp_path, https_sim, COMPANY_ACTIVITY_API_CA_FILE=str(tls.ca))
    result = CliRunner().invoke(main, ["run"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2 day(s) built" in result.output
    with connect(env["COMPANY_ACTIVITY_WAREHOUSE"]) as w:
        assert table(w) == procs.ground_truth(https_sim, TWO, TWO)


def test_an_untrusted_certificate_is_a_terminal_error_naming_the_host(
    https_sim: SimulatorServer, tmp_path: Path
) -> None:
    _lake(tmp_path, https_sim)
    env = _env(tmp_path, https_sim, COMPANY_ACTIVITY_LOG_LEVEL="INFO")
    result = CliRunner().invoke(main, ["run"], env=env, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    host = f"127.0.0.1:{https_sim.port}"
    assert f"the certificate of {host} could not be verified" in result.output
    assert "COMPANY_ACTIVITY_API_CA_FILE" in result.output
    assert "retrying" not in result.output  # terminal: not retried
    assert https_sim.stats.requests == 0  # nothing was sent: the handshake failed first
    assert SECRET not in result.output


def test_an_unreadable_api_ca_file_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="COMPANY_ACTIVITY_API_CA_FILE"):
        load_settings(api_ca_file=str(tmp_path / "nope.pem"))


class _ConnectProxy(threading.Thread):
    """A forward proxy that tunnels ``CONNECT host:port`` (what HTTPS_PROXY clients send); counts tunnels."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.tunnels: list[str] = []
        self._stop = threading.Event()

    def run(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target = head.split(b" ", 2)[:2]
            if method != b"CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host, port = target.decode().rsplit(":", 1)
            self.tunnels.append(target.decode())
            with socket.create_connection((host, int(port)), timeout=10) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                for sock in (client, upstream):
                    sock.settimeout(30)
                while True:
                    ready, _, _ = select.select([client, upstream], [], [], 30)
                    if not ready:
                        return
                    for sock in ready:
                        data = sock.recv(65536)
                        if not data:
                            return
                        (upstream if sock is client else client).sendall(data)

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()


def test_https_proxy_from_the_environment_is_used(
    https_sim: SimulatorServer, tls: TlsFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = _ConnectProxy()
    proxy.start()
    try:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        _lake(tmp_path, https_sim)
        env = _env(tmp_path, https_sim, COMPANY_ACTIVITY_API_CA_FILE=str(tls.ca))
        result = CliRunner().invoke(main, ["run"], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert proxy.tunnels and set(proxy.tunnels) == {f"127.0.0.1:{https_sim.port}"}
        # NO_PROXY exempts the host: no further tunnel
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        before = len(proxy.tunnels)
        result = CliRunner().invoke(main, ["run", "--date", D1.isoformat()], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert len(proxy.tunnels) == before
    finally:
        proxy.stop()


# -- plain text ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("api.localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("example.com", False),
        ("localhost.example.com", False),
        ("127.0.0.1.nip.io", False),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("", False),
    ],
)
def test_loopback_is_judged_as_written(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


PLAIN = [
    ("COMPANY_ACTIVITY_API_URL", "http://api.example.com"),
    ("COMPANY_ACTIVITY_TEAMS_WEBHOOK_URL", "http://hooks.example.com/webhookb2/sig=TeamsSig123"),
    ("COMPANY_ACTIVITY_LAKE_ENDPOINT", "http://acct.blob.example.com"),
]


def test_plain_http_to_a_remote_host_exits_2_through_the_real_entry_point(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANY_ACTIVITY_")}
    env |= {
        "COMPANY_ACTIVITY_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "COMPANY_ACTIVITY_LAKE": str(tmp_path / "lake"),
        "COMPANY_ACTIVITY_API_URL": "http://usage.example.com/api",
        "COMPANY_ACTIVITY_API_CLIENT_ID": "etl",
        "COMPANY_ACTIVITY_API_CLIENT_SECRET": SECRET,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "company_activity", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "COMPANY_ACTIVITY_API_URL is http://usage.example.com" in proc.stderr
    assert "COMPANY_ACTIVITY_ALLOW_INSECURE_HTTP" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert not (tmp_path / "wh.duckdb").exists()  # refused before anything was opened


@pytest.mark.parametrize(("setting", "url"), PLAIN)
def test_every_plain_http_target_is_refused_and_loopback_is_not(
    setting: str, url: str, tmp_path: Path
) -> None:
    env = {"COMPANY_ACTIVITY_WAREHOUSE": str(tmp_path / "wh.duckdb"), setting: url}
    result = CliRunner().invoke(main, ["status"], env=env, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert setting in result.output and "plain http" in result.output
    assert "TeamsSig123" not in result.output
    # the same URL on loopback is fine, and so is https
    for ok in (url.replace("example.com", "localhost"), url.replace("http://", "https://")):
        settings = load_settings(**{setting.removeprefix("COMPANY_ACTIVITY_").lower(): ok})
        assert plain_targets(settings) == []


def test_insecure_http_allowed_by_the_flag_warns_on_every_run(tmp_path: Path) -> None:
    name = _remote_name_for_loopback()
    with SimulatorServer(SimulatorOptions(seed=3, companies=20, today=TODAY)) as sim:
        _lake(tmp_path, sim)
        url = sim.url.replace("127.0.0.1", name)
        env = _env(tmp_path, sim, COMPANY_ACTIVITY_API_URL=url, COMPANY_ACTIVITY_ALLOW_INSECURE_HTTP="true")
        for args in (["run"], ["run", "--date", D1.isoformat()]):
            result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            assert "COMPANY_ACTIVITY_ALLOW_INSECURE_HTTP=true" in result.output
            assert f"COMPANY_ACTIVITY_API_URL (http://{name}:{sim.port}): plain http" in result.output
        assert sim.stats.requests > 0
        env.pop("COMPANY_ACTIVITY_ALLOW_INSECURE_HTTP")
        result = CliRunner().invoke(main, ["run"], env=env, catch_exceptions=False)
        assert result.exit_code == 2 and "plain http" in result.output


# -- SMTP: STARTTLS required off loopback ------------------------------------------------------------------
class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def plain_smtp() -> Iterator[tuple[int, _Inbox]]:
    """An SMTP server on loopback that offers no STARTTLS."""
    inbox = _Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def _alert() -> Alert:
    return Alert("error", "pipeline failure", "the build of 2026-11-11 failed", "run-1")


def test_smtp_without_starttls_is_refused_off_loopback_unless_allowed(plain_smtp: tuple[int, _Inbox]) -> None:
    port, inbox = plain_smtp
    name = _remote_name_for_loopback()
    policy = DeliveryPolicy(max_attempts=3, backoff_initial=0, backoff_max=0.01, timeout=5)
    strict = EmailSink(
        f"smtp://{name}:{port}", sender="p@example.com", recipients=["o@example.com"], policy=policy
    )
    with pytest.raises(AlertDeliveryError, match=f"smtp://{name}:{port} does not offer STARTTLS") as info:
        strict.send(_alert())
    assert "1 attempt" in str(info.value) and inbox.messages == []  # permanent: not retried
    # loopback as written: allowed (a local relay); and anywhere with the flag
    EmailSink(f"smtp://127.0.0.1:{port}", sender="p@example.com", recipients=["o@example.com"]).send(_alert())
    EmailSink(
        f"smtp://{name}:{port}", sender="p@example.com", recipients=["o@example.com"], require_tls=False
    ).send(_alert())
    assert len(inbox.messages) == 2


def test_the_flag_reaches_the_email_sink_from_the_settings() -> None:
    from company_activity.alerts.factory import sinks_from_settings

    base = {"smtp_url": "smtp://mail.example.com", "alert_email_from": "p@example.com"}
    base["alert_email_to"] = "o@example.com"
    strict = [s for s in sinks_from_settings(load_settings(**base)) if isinstance(s, EmailSink)]
    lax = [
        s
        for s in sinks_from_settings(load_settings(**base, allow_insecure_http=True))
        if isinstance(s, EmailSink)
    ]
    assert strict[0]._require_tls and not lax[0]._require_tls
