"""Fixtures for ``az://`` lakes: Azurite (the Azure Storage emulator) started on a free loopback port.

Use them from a test module by assigning them to module globals (``azurite = az.azurite``).

Azurite comes from npm into the repository's ``node_modules`` (``npm ci``, as ``.ci/run`` does), or from
``azurite-blob`` on the PATH. It serves blobs only, in memory, for the test session. Alternatively
``COMPANY_ACTIVITY_TEST_AZURITE_CONNECTION_STRING`` names an emulator (or account) that is already running.
When neither is there the tests skip saying what to install; with ``COMPANY_ACTIVITY_TEST_AZURITE=required``
(as ``.ci/run`` sets) they fail instead.

``secure_azurite`` is a second Azurite over HTTPS (a throw-away CA from :mod:`tests.certs`) with OAuth in
its ``basic`` mode, for the credential modes; ``managed_identity_endpoint`` stands in for the managed
identity endpoint of App Service / Container Apps, so that azure-identity's real DefaultAzureCredential
gets tokens Azurite accepts.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from .certs import TlsFiles, make_tls_files
from .pg import missing

REQUIRED_ENV = "COMPANY_ACTIVITY_TEST_AZURITE"
CONNECTION_ENV = "COMPANY_ACTIVITY_TEST_AZURITE_CONNECTION_STRING"
REPO = Path(__file__).resolve().parent.parent

# Azurite's well-known development account (public, documented by Microsoft; not a secret)
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    connection_string: str

    def filesystem(self) -> object:
        import adlfs

        return adlfs.AzureBlobFileSystem(connection_string=self.connection_string, skip_instance_cache=True)

    def new_container(self) -> str:
        name = f"lake-{secrets.token_hex(4)}"
        fs = self.filesystem()
        fs.mkdir(name)  # type: ignore[attr-defined]
        return name


def connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
    )


def _executable() -> str | None:
    local = REPO / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    return shutil.which("azurite-blob")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@contextmanager
def _running(exe: str, *extra: str) -> Iterator[int]:
    """Azurite's blob service on a free loopback port (its port), stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="azurite-") as workdir:
        log_path = Path(workdir) / "azurite.log"
        for _attempt in range(3):
            port = _free_port()
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    [
                        exe,
                        "--blobHost",
                        "127.0.0.1",
                        "--blobPort",
                        str(port),
                        "--inMemoryPersistence",
                        "--skipApiVersionCheck",
                        "--loose",
                        "--silent",
                        "--disableTelemetry",
                        *extra,
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=workdir,
                )
            deadline = time.monotonic() + 30
            while proc.poll() is None and not _listening(port) and time.monotonic() < deadline:
                time.sleep(0.1)
            if proc.poll() is None and _listening(port):
                break
            proc.kill()
            proc.wait()
        else:
            tail = log_path.read_text(errors="replace")[-2000:]
            missing(REQUIRED_ENV, f"Azurite ({exe}) did not start: {tail}")
        try:
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _require_azurite() -> str:
    try:
        import adlfs  # noqa: F401
    except ImportError:
        missing(REQUIRED_ENV, "adlfs is not installed: pip install -e '.[dev]' (or '.[azure]')")
    exe = _executable()
    if exe is None:
        missing(
            REQUIRED_ENV,
            "Azurite is not installed: run `npm ci` in the repository (it installs the azurite package "
            f"into node_modules), or set {CONNECTION_ENV}",
        )
    return exe


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    given = os.environ.get(CONNECTION_ENV)
    if given:
        yield Azurite(given)
        return
    with _running(_require_azurite()) as port:
        yield Azurite(connection_string(port))


@dataclass(frozen=True)
class SecureAzurite:
    """Azurite over HTTPS (a self-signed CA) with OAuth in its ``basic`` mode (token claims checked)."""

    endpoint: str  # https://127.0.0.1:PORT/devstoreaccount1
    tls: TlsFiles

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=https;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint={self.endpoint};"
        )

    def new_container(self) -> str:
        from azure.storage.blob import BlobServiceClient

        name = f"lake-{secrets.token_hex(4)}"
        with BlobServiceClient.from_connection_string(
            self.connection_string, connection_verify=str(self.tls.ca)
        ) as service:
            service.create_container(name)
        return name

    def container_sas(self, container: str, *, permission: str = "racwdl", hours: float = 1) -> str:
        """A SAS token for ``container`` alone, signed with the account key (as the Azure portal makes)."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        return generate_container_sas(
            DEV_ACCOUNT,
            container,
            account_key=DEV_KEY,
            permission=ContainerSasPermissions.from_string(permission),
            expiry=datetime.now(UTC) + timedelta(hours=hours),
        )


@pytest.fixture(scope="session")
def secure_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureAzurite]:
    exe = _require_azurite()
    tls = make_tls_files(tmp_path_factory.mktemp("azurite-tls"))
    with _running(exe, "--cert", str(tls.cert), "--key", str(tls.key), "--oauth", "basic") as port:
        yield SecureAzurite(f"https://127.0.0.1:{port}/{DEV_ACCOUNT}", tls)


def fake_entra_token(*, lifetime: int = 3600, audience: str = "https://storage.azure.com") -> tuple[str, int]:
    """A JWT with the claims Azurite's ``--oauth basic`` checks (issuer, audience, lifetime); unsigned,
    as Azurite does not check signatures. Returns the token and its expiry (epoch seconds)."""
    now = int(time.time())
    claims = {
        "aud": audience,
        "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + lifetime,
        "oid": "11111111-1111-1111-1111-111111111111",
        "tid": "00000000-0000-0000-0000-000000000000",
    }

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl", now + lifetime


@pytest.fixture
def az_lake_url(azurite: Azurite) -> str:
    """``az://<new container>/lake``: a lake of its own for this test."""
    return f"az://{azurite.new_container()}/lake"


class _IdentityHandler(http.server.BaseHTTPRequestHandler):
    server: _IdentityServer

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        self.server.requests.append({"header": self.headers.get("X-IDENTITY-HEADER"), **query})
        if self.headers.get("X-IDENTITY-HEADER") != self.server.secret:
            self.send_response(401)
            self.end_headers()
            return
        token, expires = fake_entra_token(audience=self.server.audience)
        body = json.dumps(
            {
                "access_token": token,
                "expires_on": str(expires),
                "resource": query.get("resource", [""])[0],
                "token_type": "Bearer",
                "client_id": "22222222-2222-2222-2222-222222222222",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _IdentityServer(http.server.ThreadingHTTPServer):
    def __init__(self, audience: str):
        super().__init__(("127.0.0.1", 0), _IdentityHandler)
        self.secret = secrets.token_hex(8)
        self.audience = audience
        self.requests: list[dict[str, object]] = []


@contextmanager
def managed_identity_endpoint(
    monkeypatch: pytest.MonkeyPatch, *, audience: str = "https://storage.azure.com"
) -> Iterator[_IdentityServer]:
    """A loopback stand-in for the managed-identity endpoint of App Service / Container Apps.

    ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` point azure-identity's real ``DefaultAzureCredential`` at
    it (as Azure sets them in a container with a managed identity); it hands out tokens Azurite accepts.
    """
    server = _IdentityServer(audience)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", server.secret)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
