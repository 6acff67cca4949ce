"""Transport security: TLS that cannot be skipped by accident, an extra trusted CA, proxies.

The rule for plain text (checked when the settings are validated, so every command exits 2 on it):

* a plain ``http://`` product-usage API URL, Teams webhook URL or lake endpoint whose host is not loopback
  (``localhost``, ``*.localhost``, ``127.0.0.0/8``, ``::1``) is refused with a ConfigError, because the
  client secret, the API key, the webhook's signature or the lake's SAS token would cross the network in
  clear;
* ``smtp://`` to a host that is not loopback must upgrade with STARTTLS: the e-mail sink refuses to send
  (a permanent delivery failure naming the server) when the server does not offer it. ``smtps://`` is
  TLS from the first byte. A plain ``smtp://`` session is only allowed on loopback;
* ``COMPANY_ACTIVITY_ALLOW_INSECURE_HTTP=true`` lifts both rules (for a test network); then every run logs
  a warning naming each plain-text target.

Host names are judged as written, never by resolving them: a name that resolves to 127.0.0.1 today may
not tomorrow.

The API's HTTPS client (:func:`api_http_client`) verifies the server with the public roots httpx uses
(certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set) plus ``COMPANY_ACTIVITY_API_CA_FILE`` when set
(a PEM bundle, e.g. a corporate CA). It honours the standard proxy variables (``HTTPS_PROXY``,
``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``). A certificate that cannot be verified is a terminal
:class:`TlsVerificationFailed` naming the host and what to set, never retried.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import certifi
import httpx

from .errors import ApiError, ConfigError
from .sources.usage.transport import guarded_transport

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger("company_activity.tls")

INSECURE_SETTING = "COMPANY_ACTIVITY_ALLOW_INSECURE_HTTP"
API_CA_SETTING = "COMPANY_ACTIVITY_API_CA_FILE"


class TlsVerificationFailed(ApiError):
    """The server's certificate could not be verified (unknown CA, wrong host name, expired)."""


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` (as written in a URL) is a loopback name or address."""
    if not host:
        return False
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@dataclass(frozen=True)
class PlainTarget:
    """A target that would be reached in plain text: the setting and where (no credentials, no path)."""

    setting: str
    where: str
    smtp: bool = False

    def describe(self) -> str:
        if self.smtp:
            return f"{self.setting} ({self.where}): STARTTLS is not required"
        return f"{self.setting} ({self.where}): plain http"


def _where(url: str) -> tuple[str, str | None]:
    """``scheme://host:port`` of ``url`` (nothing secret) and its host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return "an unparsable URL", None
    host = parts.hostname or ""
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{shown}{f':{port}' if port else ''}", host


def plain_targets(settings: Settings) -> list[PlainTarget]:
    """Every configured target that is not loopback and would not be protected by TLS."""
    found: list[PlainTarget] = []
    candidates: list[tuple[str, str | None]] = [
        ("COMPANY_ACTIVITY_API_URL", settings.api_url),
        (
            "COMPANY_ACTIVITY_TEAMS_WEBHOOK_URL",
            settings.teams_webhook_url.get_secret_value() if settings.teams_webhook_url else None,
        ),
        ("COMPANY_ACTIVITY_LAKE_ENDPOINT", settings.lake_endpoint),
    ]
    for setting, url in candidates:
        if url and url.strip().lower().startswith("http://"):
            where, host = _where(url)
            if not is_loopback_host(host):
                found.append(PlainTarget(setting, where))
    smtp = settings.smtp_url.get_secret_value() if settings.smtp_url else None
    if smtp and smtp.strip().lower().startswith("smtp://"):
        where, host = _where(smtp)
        if not is_loopback_host(host):
            found.append(PlainTarget("COMPANY_ACTIVITY_SMTP_URL", where, smtp=True))
    return found


def check_settings(settings: Settings) -> None:
    """Refuse plain-http targets that are not loopback (ConfigError) unless insecure transport is allowed.

    ``smtp://`` targets pass here: the e-mail sink enforces STARTTLS when it connects.
    """
    if settings.allow_insecure_http:
        return
    refused = [t for t in plain_targets(settings) if not t.smtp]
    if refused:
        raise ConfigError(
            "plain http to a host that is not loopback would send credentials in clear: "
            + "; ".join(f"{t.setting} is {t.where}" for t in refused)
            + f" (use https://, or set {INSECURE_SETTING}=true on a test network)"
        )
    for setting, path in (
        (API_CA_SETTING, settings.api_ca_file),
        ("COMPANY_ACTIVITY_LAKE_CA_FILE", settings.lake_ca_file),
    ):
        if path and not os.path.isfile(path):
            raise ConfigError(f"{setting}: {path!r} is not a readable file")


def warn_insecure(settings: Settings) -> None:
    """Log one warning per plain-text target when insecure transport is allowed (called on every run)."""
    if not settings.allow_insecure_http:
        return
    for target in plain_targets(settings):
        log.warning("%s=true: %s", INSECURE_SETTING, target.describe())


# -- the API's HTTPS client ----------------------------------------------------------------------------
def ssl_context(ca_file: str | None = None, *, setting: str = API_CA_SETTING) -> ssl.SSLContext:
    """A verifying client context: httpx's default roots, plus ``ca_file`` (PEM) when given."""
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = os.environ.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        cafile = certifi.where()
    context = ssl.create_default_context(cafile=cafile, capath=capath)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{setting}: {ca_file!r} cannot be used as a CA bundle: {exc}") from None
    return context


def certificate_error(exc: BaseException) -> str | None:
    """Why the server's certificate was refused, when that is what ``exc`` (or its cause) is; else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    verification = False
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        inner = getattr(current, "certificate_error", None)  # aiohttp keeps the ssl error here
        for candidate in (current, inner):
            if isinstance(candidate, ssl.SSLCertVerificationError):
                verification = True
                message = getattr(candidate, "verify_message", None)
                if message:
                    return str(message)
        current = current.__cause__ or current.__context__
    text = str(exc)
    if verification or "CERTIFICATE_VERIFY_FAILED" in text:
        return text.split("certificate verify failed:", 1)[-1].split("(_ssl", 1)[0].strip(" '\")]") or text
    return None


class VerifyingClient(httpx.Client):
    """An httpx client whose certificate failures are terminal :class:`TlsVerificationFailed`."""

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        try:
            return super().send(request, **kwargs)
        except httpx.ConnectError as exc:
            reason = certificate_error(exc)
            if reason is None:
                raise
        host = request.url.host
        port = request.url.port or 443
        raise TlsVerificationFailed(
            f"TLS: the certificate of {host}:{port} could not be verified ({reason}); if it is signed by a "
            f"private CA, set {API_CA_SETTING} to that CA's PEM file"
        )


def api_http_client(settings: Settings) -> httpx.Client:
    """The HTTP client of the product-usage API: verifying TLS (plus the extra CA), proxies from the env.

    Its transport bounds each whole request and honours the run's stop (:mod:`.sources.usage.transport`);
    the standard proxy variables (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) are read
    here, for the API's host, as httpx would read them.
    """
    context = ssl_context(settings.api_ca_file)
    return VerifyingClient(
        timeout=settings.api_timeout,
        transport=guarded_transport(verify=context, proxy=_env_proxy(settings.api_url or "")),
        follow_redirects=False,
    )


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (None: connect directly)."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        return None
    proxies = urllib.request.getproxies_environment()
    if urllib.request.proxy_bypass_environment(parts.hostname, proxies):  # type: ignore[attr-defined]
        return None
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and "://" not in proxy:
        proxy = "http://" + proxy
    return proxy or None
