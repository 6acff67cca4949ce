"""Credentials of the product-usage API: OAuth2 client credentials (a cached token) or an API key.

The token is fetched from ``POST {base}/oauth/token`` by one thread while the others wait for it, shared
by every thread, and refreshed shortly before ``expires_in`` (10 % of the lifetime, at most 60 s early).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any, Protocol

import httpx

from ...errors import ApiTransientError, ConfigError, CredentialsRejected
from ...redact import register_secret, url_credentials
from . import answers
from .contract import INVALID, decode_json
from .retry import Retrier

__all__ = ["AuthState", "Authenticator", "Credentials", "TokenCache", "token_of"]

log = logging.getLogger("company_activity.usage_api")

# Indirection so tests can move the token clock.
_monotonic = time.monotonic


@dataclass(frozen=True)
class Credentials:
    """Either ``client_id`` and ``client_secret`` (OAuth2), or ``api_key``; client credentials win."""

    client_id: str | None
    client_secret: str | None
    api_key: str | None

    @classmethod
    def of(cls, client_id: str | None, client_secret: str | None, api_key: str | None) -> Credentials:
        """Check what is given (ConfigError naming the setting) and keep what is used."""
        client_id = client_id or None
        client_secret = client_secret or None
        api_key = api_key or None
        if (client_id is None) != (client_secret is None):
            given, absent = ("CLIENT_ID", "CLIENT_SECRET") if client_id else ("CLIENT_SECRET", "CLIENT_ID")
            raise ConfigError(
                f"COMPANY_ACTIVITY_API_{given} is set but COMPANY_ACTIVITY_API_{absent} is not: "
                "OAuth2 client credentials need both"
            )
        if client_id is None and api_key is None:
            raise ConfigError(
                "no product-usage API credentials: set COMPANY_ACTIVITY_API_CLIENT_ID and "
                "COMPANY_ACTIVITY_API_CLIENT_SECRET, or COMPANY_ACTIVITY_API_KEY"
            )
        return cls(client_id, client_secret, api_key if client_id is None else None)

    @property
    def oauth(self) -> bool:
        return self.client_id is not None

    def secrets(self) -> set[str]:
        return {s for s in (self.client_secret, self.api_key) if s}


@dataclass
class AuthState:
    """Whether the previous answer to this request was a 401 that made us fetch a fresh token."""

    refreshed: bool = False


class TokenCache:
    """The current access token; one thread fetches a new one while the others wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at: float | None = None  # monotonic; None = until rejected

    def get(self, fetch: Callable[[], tuple[str, float | None, float]]) -> tuple[str, bool]:
        """The cached token, or a new one from ``fetch`` (``(token, expires_in, requested_at)``).

        Returns the token and whether it was fetched just now.
        """
        with self._lock:
            token, refresh_at = self._token, self._refresh_at
            if token is not None and (refresh_at is None or _monotonic() < refresh_at):
                return token, False
            token, expires_in, requested_at = fetch()
            self._token = token
            if expires_in is None:
                self._refresh_at = None
            else:
                self._refresh_at = requested_at + expires_in - min(60.0, 0.1 * expires_in)
            return token, True

    def forget(self, token: str | None) -> None:
        """Drop ``token`` (rejected by the API) unless another thread replaced it already."""
        with self._lock:
            if self._token == token:
                self._token = None


def token_of(body: bytes, day: date) -> tuple[str, float | None]:
    """The access token and its lifetime in a token endpoint's ``200`` body (ApiTransientError if none)."""
    doc: Any = decode_json(body)
    if doc is INVALID:
        raise ApiTransientError(
            f"token endpoint answered HTTP 200 with a truncated or non-JSON body (for {day})", status=200
        )
    token = doc.get("access_token") if type(doc) is dict else None
    if type(token) is not str or not token:
        raise ApiTransientError(
            f"token endpoint answered HTTP 200 without an access_token (for {day})", status=200
        )
    expires = doc.get("expires_in")
    expires_in = (
        float(expires) if type(expires) in (int, float) and math.isfinite(expires) and expires > 0 else None
    )
    return token, expires_in


class _Send(Protocol):
    def __call__(
        self,
        method: str,
        url: str,
        day: date,
        what: str,
        *,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Response: ...


class Authenticator:
    """The headers of a data request, the token endpoint, and what a 401 means."""

    def __init__(
        self,
        creds: Credentials,
        *,
        token_url: str,
        send: _Send,
        retrier: Retrier,
        redact: Callable[[str], str],
        keep_secret: Callable[[str], None],
    ) -> None:
        self._creds = creds
        self._token_url = token_url
        self._send = send
        self._retrier = retrier
        self._redact = redact
        self._keep_secret = keep_secret
        self._tokens = TokenCache()
        # what a peer may echo into a message: the credentials, and those of the URL (user-info, query)
        for secret in [*creds.secrets(), *url_credentials(token_url)]:
            register_secret(secret)

    def headers(self, day: date) -> tuple[dict[str, str], str | None]:
        """The auth headers for a request about ``day``, and the token they carry (None: API key)."""
        if not self._creds.oauth:
            assert self._creds.api_key is not None
            return {"X-API-Key": self._creds.api_key, "Accept": "application/json"}, None
        token, fresh = self._tokens.get(
            lambda: self._retrier.run(day, "access token", partial(self._fetch_token_once, day))
        )
        if fresh:
            log.info("fetched a new access token")
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}, token

    def on_unauthorized(
        self, response: httpx.Response, day: date, what: str, token: str | None, state: AuthState
    ) -> None:
        """A 401 on a data request: forget the token to repeat once, or raise CredentialsRejected."""
        code = answers.describe(response, self._redact)
        if not self._creds.oauth:
            raise CredentialsRejected(
                f"credentials rejected by the product-usage API for {day} ({what}): {code} "
                "with the API key (COMPANY_ACTIVITY_API_KEY)",
                status=401,
                day=day,
            )
        if state.refreshed:
            raise CredentialsRejected(
                f"credentials rejected by the product-usage API for {day} ({what}): {code} again "
                "straight after a fresh access token (client credentials revoked?)",
                status=401,
                day=day,
            )
        state.refreshed = True
        self._tokens.forget(token)
        log.info("access token rejected for %s %s (%s); fetching a new one and repeating", day, what, code)

    def _fetch_token_once(self, day: date) -> tuple[str, float | None, float]:
        creds = self._creds
        assert creds.client_id is not None and creds.client_secret is not None
        requested_at = _monotonic()
        response = self._send(
            "POST",
            self._token_url,
            day,
            "access token",
            data={
                "grant_type": "client_credentials",
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
            },
            headers={"Accept": "application/json"},
        )
        status = response.status_code
        if status == 200:
            token, expires_in = token_of(response.content, day)
            self._keep_secret(token)
            register_secret(token, transient=True)  # an echoing data endpoint may repeat it, in any form
            return token, expires_in, requested_at
        desc = answers.describe(response, self._redact)
        if status in (400, 401):
            raise CredentialsRejected(
                f"credentials rejected by the product-usage API token endpoint (for {day}): {desc} "
                "(check COMPANY_ACTIVITY_API_CLIENT_ID and COMPANY_ACTIVITY_API_CLIENT_SECRET)",
                status=status,
                day=day,
            )
        answers.raise_transient_or_other(response, day, "access token", f"token endpoint {desc}")
