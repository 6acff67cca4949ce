"""Fixtures for ``az://`` lakes: Azurite (the Azure Storage emulator) started on a free loopback port.

Use them from a test module by assigning them to module globals (``azurite = az.azurite``).

Azurite comes from npm into the repository's ``node_modules`` (``npm ci``, as ``.ci/run`` does), or from
``azurite-blob`` on the PATH. It serves blobs only, in memory, for the test session. Alternatively
``COMPANY_ACTIVITY_TEST_AZURITE_CONNECTION_STRING`` names an emulator (or account) that is already running.
When neither is there the tests skip saying what to install; with ``COMPANY_ACTIVITY_TEST_AZURITE=required``
(as ``.ci/run`` sets) they fail instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    try:
        import adlfs  # noqa: F401
    except ImportError:
        missing(REQUIRED_ENV, "adlfs is not installed: pip install -e '.[dev]' (or '.[azure]')")
    given = os.environ.get(CONNECTION_ENV)
    if given:
        yield Azurite(given)
        return
    exe = _executable()
    if exe is None:
        missing(
            REQUIRED_ENV,
            "Azurite is not installed: run `npm ci` in the repository (it installs the azurite package "
            f"into node_modules), or set {CONNECTION_ENV}",
        )
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
            yield Azurite(connection_string(port))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def az_lake_url(azurite: Azurite) -> str:
    """``az://<new container>/lake``: a lake of its own for this test."""
    return f"az://{azurite.new_container()}/lake"
