"""Real alert receivers on loopback, shared by the alert tests: a Teams-style webhook receiver and an
SMTP server (aiosmtpd). The fixtures ``receiver`` and ``smtp_server`` are registered for every test by
``conftest.py`` (``pytest_plugins``); import the classes and constants from here.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

SIG = "Zq9sEcReTsIgNaTuRe0123456789abcdefXYZ"
PATH = "/workflows/0f1e2d3c4b5a/triggers/manual/paths/invoke"
QUERY = f"api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}"
PASSWORD = "pA55-w0rd/with:odd@chars"
USER = "alerts@example.com"


# == a real webhook receiver ===============================================================================
@dataclass
class Receiver:
    """A webhook receiver: answers with the scripted statuses in turn (then 202), records what it got."""

    port: int
    script: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}?{QUERY}"

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r["json"] for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(port=0)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                state.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers.items()),
                        "json": json.loads(body),
                    }
                )
                status, headers, text = state.script.pop(0) if state.script else (202, {}, "")
            payload = text.encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# == a real SMTP server ====================================================================================
@dataclass
class Mailbox:
    """What the server received, and a script of DATA replies to give first (then 250)."""

    envelopes: list[Envelope] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    logins: list[tuple[str, str, str]] = field(default_factory=list)  # mechanism, user, password
    tls: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.tls.append(session.ssl is not None)
        if self.data_replies:
            return self.data_replies.pop(0)
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticator(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((mechanism, user, password))
        ok = user == USER and password == PASSWORD
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 235 or 535

    def message(self, k: int = 0) -> EmailMessage:
        content = self.envelopes[k].original_content
        assert content is not None
        msg = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Server = Callable[..., tuple[Mailbox, int]]


@pytest.fixture
def smtp_server() -> Iterator[Server]:
    """Start aiosmtpd on a free loopback port: ``smtp_server(**controller_kwargs) -> (mailbox, port)``."""
    controllers: list[Controller] = []

    def start(**kwargs: Any) -> tuple[Mailbox, int]:
        box = Mailbox()
        if kwargs.pop("auth", False):
            kwargs["authenticator"] = box.authenticator
        port = free_port()
        controller = Controller(box, hostname="127.0.0.1", port=port, ready_timeout=5, **kwargs)
        controller.start()
        controllers.append(controller)
        return box, port

    yield start
    for c in controllers:
        c.stop()
