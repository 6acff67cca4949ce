"""Hostile peers that echo the request back (issue 24): a loopback HTTP server whose error bodies repeat
the request line, URL, headers and body, in the forms an echoing server gives them (as is, JSON-escaped,
percent-encoded or -decoded, HTML-escaped, cut in the middle of a secret); and an SMTP handler (aiosmtpd)
that refuses every recipient with a reply repeating the login and the AUTH exchange.

One :class:`EchoPeer` serves a webhook (any path but the API's), the usage API (``/v1/usage/daily``) and
the OAuth token endpoint (``/oauth/token``); each route takes its statuses from a script and cycles
through the echo :data:`VARIANTS`, one per request.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote_plus

from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

#: what an echoing server does to the text it repeats
VARIANTS: dict[str, Callable[[str], str]] = {
    "plain": lambda t: t,
    "json-slashes": lambda t: json.dumps(t)[1:-1].replace("/", "\\/"),
    "json-go": lambda t: json.dumps(t)[1:-1].replace("&", "\\u0026"),
    "percent": lambda t: quote(t, safe=""),
    "percent-lower": lambda t: re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(t, safe="")),
    "percent-twice": lambda t: quote(quote(t, safe=""), safe=""),
    "decoded": unquote_plus,
    "html": html.escape,
}


def forms(secret: str) -> set[str]:
    """The forms of ``secret`` a test looks for in every output: those of :data:`VARIANTS`, and its first
    8 characters (what a cut leaves of it: at least that much must never be shown)."""
    return {v(secret) for v in VARIANTS.values()} | {secret[:8]}


def leaks(text: str, secrets: list[str]) -> list[str]:
    """The secrets some form of which occurs in ``text``."""
    return [s for s in secrets if any(f in text for f in forms(s))]


@dataclass
class Route:
    """The statuses a route answers with, in turn (the last one repeats), and what a ``200`` says."""

    statuses: list[int] = field(default_factory=lambda: [400])
    ok_body: bytes = b""
    cuts: list[str] = field(default_factory=list)  # secrets the "cut" variants truncate inside
    requests: int = 0


@dataclass
class EchoPeer:
    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str) -> Route:
        for prefix in ("/v1/usage/daily", "/oauth/token"):
            if path.startswith(prefix):
                return self.routes.setdefault(prefix, Route())
        return self.routes.setdefault("webhook", Route())

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        path = target.split("?", 1)[0]
        with self.lock:
            route = self.route(path)
            n = route.requests
            route.requests += 1
            status = route.statuses[min(n, len(route.statuses) - 1)]
            self.seen.append({"method": method, "target": target, "headers": headers, "body": body})
        if status == 200:
            return 200, route.ok_body
        api = path.startswith(("/v1/", "/oauth/"))
        line = f"{method} {target} HTTP/1.1 " + " ".join(f"{k}: {v}" for k, v in headers.items())
        if api:  # the credential-bearing parts first: the client quotes only the start of "error"
            heard = " ".join(v for k, v in headers.items() if k.lower() in ("x-api-key", "authorization"))
            echo = f"{body.decode(errors='replace')} {heard} {line}"
        else:  # the request line first, as a web server's error page has it
            echo = f"{line} {body.decode(errors='replace')}"
        names = list(VARIANTS)
        cuts = [(s, k) for s in route.cuts for k in (9, 12, 20)]
        k = n % (len(names) + len(cuts))
        if k < len(names):
            text = VARIANTS[names[k]](echo)
        else:  # the peer cuts its echo inside a secret
            secret, keep = cuts[k - len(names)]
            at = echo.find(secret)
            text = (echo[: at + keep] if at >= 0 else echo) + "..."
        if api:
            return status, json.dumps({"error": text, "message": echo}).encode()
        return status, text.encode()


def serve_echo_peer() -> Iterator[EchoPeer]:
    """Start an :class:`EchoPeer` on a free loopback port (a generator: use it as a fixture)."""
    peer = EchoPeer()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, payload = peer.answer(self.command, self.path, dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if payload[:1] == b"{" else "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    peer.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class EchoingMailServer:
    """An aiosmtpd handler: accepts any login, then refuses each recipient with a reply repeating the
    login (user and password, the AUTH PLAIN blob) and the recipient; or, with ``refuse_login``, refuses
    the login itself with such a reply."""

    refuse_login: bool = False
    rcpts: list[str] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    def authenticator(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        if self.refuse_login:
            return AuthResult(success=False, handled=False, message=f"535 5.7.8 {self._echo()}")
        return AuthResult(success=True)

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.rcpts.append(address)
        return f"550 5.7.1 <{address}> refused: {self._echo()}"

    def _echo(self) -> str:
        user, password = self.logins[-1] if self.logins else ("", "")
        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return f"AUTH PLAIN {blob} as {user} {password} ({quote(password, safe='')})"
