"""E-mail alerts over SMTP: ``smtp://`` (STARTTLS whenever the server offers it) or ``smtps://`` (implicit
TLS), login when the URL carries credentials, a multipart/alternative message with text and HTML parts.

``COMPANY_ACTIVITY_SMTP_URL`` is ``smtp://user:password@host:port`` (port 587 by default) or
``smtps://user:password@host:port`` (port 465 by default); user and password are percent-decoded. The
password is registered for redaction (as written and decoded, with ``user:password`` and the base64 the
AUTH PLAIN and LOGIN exchanges carry) and never appears in an exception's text or a log line. A server's
reply is quoted decoded and through :func:`~company_activity.redact.clip`: a server that echoes the login
or the AUTH exchange in a refusal leaks nothing.

Transient failures (connection refused or dropped, timeouts, 4xx replies) are retried; permanent ones
(5xx replies, authentication refused, TLS verification failed) fail at once.
"""

from __future__ import annotations

import base64
import email.policy
import html
import ipaddress
import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from ..redact import clip, redact, register_secret, url_credentials
from ..web.links import run_url as ui_run_url
from . import PRODUCT, Alert, AlertDeliveryError, DeliveryPolicy, describe_error, once_note

log = logging.getLogger("company_activity.alerts.email")

DEFAULT_PORTS = {"smtp": 587, "smtps": 465}
_MAX_REPLY = 300  # characters of a server's reply quoted in a delivery error
# headers up to RFC 5322's 998 characters stay on one line (the stdlib folds a long subject oddly)
_POLICY = email.policy.SMTP.clone(max_line_length=998)


@dataclass(frozen=True)
class SmtpTarget:
    """A parsed ``COMPANY_ACTIVITY_SMTP_URL``."""

    host: str
    port: int
    implicit_tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """``smtps://host:port``: what messages may name (no credentials)."""
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpTarget:
    """Parse ``smtp[s]://[user[:password]@]host[:port]``; ConfigError (without the password) if invalid."""
    name = "COMPANY_ACTIVITY_SMTP_URL"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name}: not a valid smtp:// or smtps:// URL (bad port?)") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ConfigError(f"{name}: the scheme must be smtp:// (STARTTLS when offered) or smtps:// (TLS)")
    if not parts.hostname:
        raise ConfigError(f"{name}: no host in the URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{name}: the URL must be scheme://user:password@host:port, nothing after the port")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    for secret in url_credentials(url):  # the password, user:password, the AUTH base64 forms
        register_secret(secret)
    if password is not None:
        _register_login(username or "", password)
    if password and not username:
        raise ConfigError(f"{name}: a password without a user name")
    return SmtpTarget(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        implicit_tls=scheme == "smtps",
        username=username,
        password=password,
    )


def build_message(
    alert: Alert, *, sender: str, recipients: Sequence[str], run_url: str | None = None
) -> EmailMessage:
    """The alert as a multipart/alternative e-mail: a plain-text part, then an HTML part."""
    msg = EmailMessage(policy=_POLICY)
    msg["Subject"] = alert.subject()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    domain = parseaddr(sender)[1].rpartition("@")[2] or None
    msg["Message-ID"] = make_msgid(idstring=PRODUCT, domain=domain)
    msg["X-Company-Activity-Run-Id"] = alert.run_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(_plain(alert, run_url))
    msg.add_alternative(_html(alert, run_url), subtype="html")
    return msg


def _plain(alert: Alert, run_url: str | None = None) -> str:
    lines = [f"{alert.label}: {alert.title}", "", alert.message, ""]
    width = max(len(k) for k, _ in alert.facts())
    lines += [f"{k + ':':<{width + 1}} {v}" for k, v in alert.facts()]
    if alert.rerun:
        lines += ["", "Rerun with:", f"    {alert.rerun}"]
    if run_url:
        lines += ["", f"Open the run: {run_url}"]
    lines += ["", f"-- {PRODUCT}"]
    return "\n".join(lines) + "\n"


def _html(alert: Alert, run_url: str | None = None) -> str:
    colour = {"error": "#b3261e", "warning": "#8a5a00", "info": "#1f5fa8"}.get(alert.severity, "#333")
    if alert.kind == "recovered":
        colour = "#1e7b34"
    e = html.escape
    rows = "".join(
        f'<tr><th style="text-align:left;padding:2px 12px 2px 0">{e(k)}</th><td>{e(v)}</td></tr>'
        for k, v in alert.facts()
    )
    rerun = (
        f'<p><b>Rerun with</b></p><pre style="background:#f4f4f4;padding:6px">{e(alert.rerun)}</pre>'
        if alert.rerun
        else ""
    )
    link = f'<p><a href="{e(run_url)}">Open the run</a></p>' if run_url else ""  # COMPANY_ACTIVITY_UI_URL
    return (
        '<!DOCTYPE html><html><body style="font-family:sans-serif">'
        f'<h2 style="color:{colour};margin:0 0 8px 0">{e(alert.label)}: {e(alert.title)}</h2>'
        f'<p style="white-space:pre-wrap">{e(alert.message)}</p>'
        f"<table>{rows}</table>{rerun}{link}"
        f'<p style="color:#777;font-size:small">{e(PRODUCT)}</p></body></html>\n'
    )


class _PartialDelivery(Exception):
    pass


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(400 <= c < 500 for c in codes)
    if isinstance(exc, smtplib.SMTPResponseException):  # connect/helo/sender/data/auth replies
        return 400 <= exc.smtp_code < 500 and not isinstance(exc, smtplib.SMTPAuthenticationError)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(exc, smtplib.SMTPException | ssl.SSLError | _PartialDelivery):
        return False  # e.g. AUTH not offered, certificate not trusted
    return isinstance(exc, OSError)  # refused, reset, timed out, name not resolved (yet)


class EmailSink:
    """Sends each alert as an e-mail to ``recipients``.

    ``ssl_context`` verifies the server (default: the system's trusted CAs, host name checked).
    """

    name = "email"

    def __init__(
        self,
        smtp: str | SmtpTarget,
        *,
        sender: str,
        recipients: Sequence[str],
        policy: DeliveryPolicy | None = None,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        require_tls: bool = True,  # smtp:// to a non-loopback host must upgrade with STARTTLS
        ui_url: str | None = None,
    ):
        self._require_tls = require_tls
        self.ui_url = ui_url  # the web UI, linked from each message
        self.target = smtp if isinstance(smtp, SmtpTarget) else parse_smtp_url(smtp)
        if self.target.password:
            _register_login(self.target.username or "", self.target.password)
        if not recipients:
            raise ConfigError("COMPANY_ACTIVITY_ALERT_EMAIL_TO: no recipients")
        self.sender = sender
        self.recipients = list(recipients)
        self.policy = policy or DeliveryPolicy()
        self._context = ssl_context
        self._local_hostname = local_hostname
        self._sleep = sleep
        self.attempts = 0  # of the last send, for reports and tests
        self.failing = False  # the last send failed: the next one is tried once only

    def __repr__(self) -> str:
        return f"EmailSink({self.target.where}, user={self.target.username!r}, to={self.recipients!r})"

    def send(self, alert: Alert) -> None:
        message = build_message(
            alert,
            sender=self.sender,
            recipients=self.recipients,
            run_url=ui_run_url(self.ui_url, alert.run_id),
        )
        once = self.failing
        policy = self.policy.once() if once else self.policy
        retrying = policy.retrying(sink=self.name, retry_if=_transient, sleep=self._sleep)
        self.attempts = 0
        error: str | None = None
        try:
            retrying(self._deliver, message)
        except Exception as exc:
            error = self._safe(_describe(exc))
        self.failing = error is not None
        if error is not None:  # raised outside the handler: nothing chained
            raise AlertDeliveryError(
                self.name,
                f"e-mail delivery via {self.target.where} failed after {self.attempts} attempt(s)"
                f"{once_note(once)}: {error}",
                attempts=self.attempts,
            )
        log.debug(
            "alert %r e-mailed to %d recipient(s) in %d attempt(s)",
            alert.title,
            len(self.recipients),
            self.attempts,
        )

    def _deliver(self, message: EmailMessage) -> None:
        self.attempts += 1
        t = self.target
        context = self._context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if t.implicit_tls:
            smtp = smtplib.SMTP_SSL(
                t.host,
                t.port,
                local_hostname=self._local_hostname,
                timeout=self.policy.timeout,
                context=context,
            )
        else:
            smtp = smtplib.SMTP(
                t.host, t.port, local_hostname=self._local_hostname, timeout=self.policy.timeout
            )
        with smtp:
            smtp.ehlo()
            tls = t.implicit_tls
            if not tls and smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
                tls = True
            if not tls and self._require_tls and not _is_loopback(t.host):  # issue 14 (see tls.py)
                raise smtplib.SMTPNotSupportedError(
                    f"{t.where} does not offer STARTTLS: not sending in plain text "
                    "(use smtps://, or COMPANY_ACTIVITY_ALLOW_INSECURE_HTTP=true on a test network)"
                )
            if t.username:
                if not tls and not _is_loopback(t.host):
                    log.warning("logging in to %s without TLS: the server does not offer STARTTLS", t.where)
                _login(smtp, t.username, t.password or "")
            refused = smtp.send_message(
                message, from_addr=parseaddr(self.sender)[1] or self.sender, to_addrs=self.recipients
            )
        if refused:  # some recipients accepted it: repeating would send them duplicates
            raise _PartialDelivery(
                "refused by the server for " + ", ".join(f"{r} ({c})" for r, (c, _) in refused.items())
            )

    def _safe(self, text: str) -> str:
        if self.target.password:
            text = text.replace(self.target.password, "***")
        return redact(text)


def _register_login(user: str, password: str) -> None:
    """The password and what the AUTH exchanges carry of it (PLAIN: base64 of NUL user NUL password;
    LOGIN: base64 of the password), which an echoing server may repeat."""
    register_secret(password)
    for raw in (f"\0{user}\0{password}", password, f"{user}\0{password}"):
        register_secret(base64.b64encode(raw.encode()).decode())


def _reply(reply: bytes | str) -> str:
    """A server's reply, decoded (never a ``b'…'`` repr, whose escapes would hide a secret), redacted, cut."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return clip(text, _MAX_REPLY)


def _describe(exc: BaseException) -> str:
    """A delivery failure in one line: the SMTP code and the server's reply through :func:`_reply`."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{rcpt}: {code} {_reply(msg)}" for rcpt, (code, msg) in exc.recipients.items())
        return redact(f"{type(exc).__name__}: recipients refused: {refused}")
    if isinstance(exc, smtplib.SMTPResponseException):  # connect, helo, sender, data, auth replies
        return redact(f"{type(exc).__name__}: {exc.smtp_code} {_reply(exc.smtp_error)}")
    return describe_error(exc)


def _login(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """AUTH with one mechanism (PLAIN, else LOGIN, else whatever smtplib supports).

    ``smtplib.SMTP.login`` falls through every offered mechanism after a refusal and reports only the
    last outcome (often a time-out, as servers stop answering): one clear refusal is better.
    """
    if not smtp.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("the server offers no AUTH (login) extension")
    offered = smtp.esmtp_features["auth"].upper().split()
    smtp.user, smtp.password = user, password
    for mechanism, method in (("PLAIN", smtp.auth_plain), ("LOGIN", smtp.auth_login)):
        if mechanism in offered:
            smtp.auth(mechanism, method)
            return
    smtp.login(user, password)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
