"""The one redaction of company-activity: every text that leaves the process passes through :func:`redact`.

That is the stdout report, the ``ops.*`` rows (step messages, last errors, check details, run summaries),
alert payloads (Teams, e-mail, log), log lines and the text of exceptions the CLI prints.

* Known secrets: every value registered with :func:`register_secret` (the settings' secrets, see
  :func:`secrets_from_settings`). A URL registers the parts that can carry a credential: its user-info
  (the password, ``user:password``, the HTTP Basic and SMTP AUTH base64 forms; a lone user name of an
  ``http(s)`` URL is a token), its query values (any value under a credential-like name such as ``sig``,
  ``code``, ``key``; any other value that does not look like a date, a version or a plain word); a
  webhook URL (:func:`url_secret_parts`, whatever its host) is secret as a whole: also its path, its
  query, and each path segment that is not a plain word. A query string (a SAS token) and a connection
  string register their parts the same way.
* Every secret in each form an echoing peer may give it (:func:`secret_forms`): percent-decoded,
  percent-encoded (upper or lower case escapes, ``+`` for spaces, once or twice), JSON-escaped (``\\/``,
  ``\\u0026``), HTML-escaped (``&amp;``).
* Generic patterns: ``password=…``, ``Bearer …``, ``user:pass@`` in URLs, webhook URLs of known hosts, JSON
  ``"token": "…"``, ``x-api-key: …``, SAS ``sig=…``.

:func:`clip` is how a message quotes a peer's answer (an error body, an SMTP reply): one line, redacted,
cut, redacted again, and a secret cut at the end (its first 8 characters or more) blanked too.
:func:`excerpt` is how a message quotes input data: a short escaped (repr-like) excerpt, the same way.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from collections import deque
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

if TYPE_CHECKING:
    from .config import Settings

__all__ = [
    "clip",
    "excerpt",
    "redact",
    "register_secret",
    "secret_forms",
    "secrets_from_settings",
    "url_credentials",
    "url_secret_parts",
]

_KEYS = (
    r"client_secret|access_token|refresh_token|id_token|api_key|apikey|password|passwd|pwd|secret|token"
    r"|accountkey|sharedaccesskey|sharedaccesssignature|sig|signature"
)
_REDACT: list[tuple[re.Pattern[str], str]] = [
    # Teams / Power Automate / Slack webhook URLs: the path and query are the credential
    (
        re.compile(
            r"(?i)(https?://[^\s/\"'<>]*(?:webhook\.office\.com|logic\.azure\.com|\.powerplatform\.com|"
            r"\.powerautomate\.com|hooks\.slack\.com)(?::\d+)?)/[^\s\"'<>]*"
        ),
        r"\1/***",
    ),
    # user:password@ in any URL (smtp://, postgresql://, https://, …)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@\"']+:)[^@\s\"']+@"), r"\1***@"),
    # key=value (query strings, connection strings, form bodies)
    (re.compile(rf"(?i)\b({_KEYS})=([^&\s;,\"']+)"), r"\1=***"),
    # "key": "value" and 'key': 'value' (JSON bodies, dict reprs)
    (re.compile(rf"(?i)([\"'](?:{_KEYS}|authorization)[\"']\s*:\s*[\"'])[^\"']*"), r"\1***"),
    # Authorization headers
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?basic\s+)[A-Za-z0-9+/=]+"), r"\1***"),
    (re.compile(r"(?i)(x-api-key['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+"), r"\1***"),
]

_SECRET_PARAM = re.compile(rf"(?i){_KEYS}|code|key|auth|credential|private|pass|session")
#: unnamed values that carry no credential: dates, times, versions, numbers; and plain words (when short)
_NUMBERISH = re.compile(r"v?[0-9][0-9:.TZtz+\-]*")
_WORDS = re.compile(r"[-_./~]?[a-z]+([-_./~][a-z]+)*[-_./~]?")
_QUERY = re.compile(r"\??[\w.~%+-]+=[^\s&]*(&[\w.~%+-]+(=[^\s&]*)?)*")  # a query string (a SAS token)
_MIN_SECRET = 4  # shorter values would blank out ordinary text
_MIN_PIECE = 8  # an unnamed query value or a path segment shorter than this is not taken for a secret
_MIN_PREFIX = 8  # a secret cut at the end of a quoted text is blanked from this many characters on
_TRANSIENT = 64  # short-lived secrets (access tokens) kept: the most recent ones

_lock = threading.Lock()
_secrets: set[str] = set()
_transient: deque[str] = deque(maxlen=_TRANSIENT)
_sorted: tuple[str, ...] = ()


# -- what an echoing peer may make of a secret ----------------------------------------------------------
def _lower_escapes(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def _json_forms(text: str) -> set[str]:
    inner = json.dumps(text, ensure_ascii=False)[1:-1]
    ascii_inner = json.dumps(text)[1:-1]
    forms = {inner, ascii_inner, inner.replace("/", "\\/"), ascii_inner.replace("/", "\\/")}
    go = {f.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e") for f in forms}
    return forms | go


def _html_forms(text: str) -> set[str]:
    return {html.escape(text, quote=False), html.escape(text), html.escape(text).replace("&#x27;", "&#39;")}


def secret_forms(value: str) -> set[str]:
    """``value`` as an echoing peer may give it back: as is, percent-decoded or -encoded (upper or lower
    case escapes, ``+`` for spaces, encoded twice), JSON-escaped and HTML-escaped."""
    bases = {value, unquote(value), unquote_plus(value)}
    encoded: set[str] = set()
    for b in bases:
        encoded |= {b, quote(b, safe=""), quote(b, safe="/"), quote(b, safe="/:@?&=+$,;~")}
        encoded |= {quote_plus(b, safe=""), quote_plus(b, safe="/")}
    encoded |= {quote(e, safe="") for e in list(encoded) if "%" in e}  # encoded twice
    encoded |= {_lower_escapes(e) for e in list(encoded)}
    forms: set[str] = set()
    for e in encoded:
        forms |= {e} | _json_forms(e) | _html_forms(e)
    return forms


# -- which parts of a configured value can carry a credential --------------------------------------------
def _plausible(value: str, name: str = "") -> bool:
    """Whether a query value (under ``name``) or a path segment may be a credential."""
    if len(value) < _MIN_SECRET:
        return False
    if name and _SECRET_PARAM.search(name):
        return True
    if len(value) < _MIN_PIECE or _NUMBERISH.fullmatch(value):
        return False
    # plain words: short, or several (a random token of 16+ lowercase letters is taken for a secret)
    return not (_WORDS.fullmatch(value) and (len(value) < 16 or re.search(r"[-_./~]", value)))


def query_secrets(query: str) -> list[str]:
    """The values of a query string (``?a=1&sig=…``, a SAS token) that may be credentials; a bare item
    (``?Secret-Token``) is a value too."""
    out: list[str] = []
    for item in query.lstrip("?").split("&"):
        name, eq, value = item.partition("=")
        if not eq:
            name, value = "", name
        if _plausible(unquote_plus(value), unquote_plus(name)):  # judged decoded, registered as written too
            out += [value, unquote_plus(value)]
    return out


def url_credentials(url: str) -> list[str]:
    """The parts of ``url`` that can carry a credential: the password, ``user:password``, the base64 forms
    sent for it (HTTP Basic, SMTP AUTH PLAIN and LOGIN), a lone user name of an ``http(s)`` URL (a token),
    and the query values that may be credentials."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return []
    out: list[str] = []
    user = unquote(parts.username) if parts.username else ""
    if parts.password:
        password = unquote(parts.password)
        out += [parts.password, password, f"{parts.username}:{parts.password}", f"{user}:{password}"]
        for raw in (f"{user}:{password}", f"\0{user}\0{password}", password):
            out.append(base64.b64encode(raw.encode()).decode())
    elif user and parts.scheme.lower() in ("http", "https") and _plausible(user, "token"):
        out += [parts.username or user, user, base64.b64encode(f"{user}:".encode()).decode()]
    if parts.query:
        out += query_secrets(parts.query)
    return out


def url_secret_parts(url: str) -> list[str]:
    """A URL that is a credential as a whole (a webhook, whatever its host): the URL, its path + query,
    path, query, each path segment that may be a credential, and its user-info and query values."""
    parts = urlsplit(url.strip())
    pieces = [url, url.strip()]
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    for piece in (tail, parts.path, parts.query, tail.lstrip("/"), parts.path.strip("/")):
        if len(piece) >= _MIN_PIECE:  # "/" or "/api" alone would blank out ordinary text
            pieces.append(piece)
    for segment in parts.path.split("/"):
        for s in {segment, unquote(segment)}:
            if _plausible(s):
                pieces.append(s)
    return pieces + url_credentials(url)


def connection_string_secrets(conn: str) -> list[str]:
    """An Azure connection string's ``AccountKey``, ``SharedAccessSignature`` (and the SAS's values)."""
    out: list[str] = []
    for part in conn.split(";"):
        key, _, val = part.partition("=")
        val = val.strip()
        if key.strip().lower() in ("accountkey", "sharedaccesskey", "sharedaccesssignature") and val:
            out.append(val)
            if "=" in val:
                out += query_secrets(val)
        elif key.strip().lower().endswith("endpoint") and "://" in val:
            out += url_credentials(val)
    return out


# -- the registry -----------------------------------------------------------------------------------------
def _pieces(value: str) -> list[str]:
    """``value`` and, for a URL, a query string or a connection string, its credential parts."""
    pieces = [value]
    if "://" in value:
        pieces += url_credentials(value)
    elif ";" in value and "=" in value:
        pieces += connection_string_secrets(value)
    elif "=" in value and _QUERY.fullmatch(value):
        pieces += query_secrets(value)
    return pieces


def register_secret(value: str | None, *, transient: bool = False) -> None:
    """Redact ``value`` (in every :func:`secret_forms` form, and a URL's, SAS token's or connection
    string's credential parts) from every text that leaves the process.

    ``transient``: a short-lived secret (an access token); only the most recent ones are kept.
    """
    if not value:
        return
    forms = {f for piece in _pieces(value) for f in secret_forms(piece) if len(f) >= _MIN_SECRET}
    global _sorted
    with _lock:
        if transient:
            _transient.extend(forms - _secrets)
        else:
            _secrets.update(forms)
        _sorted = tuple(sorted(_secrets | set(_transient), key=len, reverse=True))


def secrets_from_settings(settings: Settings) -> list[str]:
    """The secret values of ``settings``, and the parts of each configured URL or string that can carry
    one (webhook URL as a whole, SMTP URL, API URL, lake and warehouse URLs, SAS, connection string, …)."""
    values: list[str] = []
    webhook = settings.teams_webhook_url
    if webhook is not None and webhook.get_secret_value().strip():  # any host: the URL is the credential
        values.extend(url_secret_parts(webhook.get_secret_value()))
    for url in (settings.warehouse, settings.state, settings.lake, settings.api_url, settings.lake_endpoint):
        if url and "://" in url:  # user-info and query values (the token URL is the API URL's)
            values.extend(url_credentials(url.removeprefix("spark:")))
    for name in (
        "smtp_url",
        "api_client_secret",
        "api_key",
        "azure_storage_connection_string",
        "lake_sas_token",
        "lake_account_key",
        "ui_token",
    ):
        secret = getattr(settings, name, None)
        if secret is not None and secret.get_secret_value().strip():
            values.extend(_pieces(secret.get_secret_value().strip()))
    return values


# -- redaction --------------------------------------------------------------------------------------------
def redact(text: str) -> str:
    """``text`` with anything that looks like a credential, or is a registered secret, replaced by ``***``."""
    return _patterns(_known(text))


def _known(text: str) -> str:
    for secret in _sorted:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _patterns(text: str) -> str:
    for pattern, repl in _REDACT:
        text = pattern.sub(repl, text)
    return text


_TRAILER = re.compile(r"[\s.…\"'`)\]}>,;]*\Z")


def redact_cut(text: str) -> str:
    """``text`` with a registered secret's first characters (8 or more) at its end, before any closing
    punctuation, replaced by ``***``: what a cut (ours or the peer's) leaves of one."""
    trailer = _TRAILER.search(text)
    end = trailer.start() if trailer else len(text)
    body = text[:end]
    for secret in _sorted:
        if len(secret) <= _MIN_PREFIX or "://" in secret:  # a URL's own pieces are checked: not its host
            continue
        window = body[-(len(secret) - 1) :]
        head = secret[:_MIN_PREFIX]
        at = window.find(head)
        while at >= 0:
            if secret.startswith(window[at:]):
                return body[: len(body) - len(window) + at] + "***" + text[end:]
            at = window.find(head, at + 1)
    return text


def _cut(text: str, limit: int, keep: int) -> tuple[str, bool]:
    """``text`` redacted and, when longer than ``limit``, cut to ``keep`` characters and redacted again:
    the known secrets first, then a secret cut at the end (before a generic pattern could rewrite that
    end), then the patterns."""
    text = _known(text)
    cut = len(text) > limit
    if cut:
        text = _known(text[: max(1, keep)])
    return _patterns(redact_cut(text)), cut


def clip(text: str, limit: int = 200) -> str:
    """A peer's answer (an error body, an SMTP reply) as part of a message: one line, redacted, cut to
    ``limit`` characters (``…``), redacted again, a secret cut at the end (ours or the peer's) blanked."""
    shown, cut = _cut(" ".join(text.split()), limit, limit - 1)
    return shown + "…" if cut else shown


def excerpt(value: object, limit: int = 40) -> str:
    """A short, escaped, redacted excerpt of input data for a message: ``repr``-like, cut to ``limit``."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else str(value)
    shown, cut = _cut(text, limit, limit)
    return repr(shown) + ("…" if cut else "")
