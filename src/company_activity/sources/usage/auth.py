"""Credentials of the product-usage API: OAuth2 client credentials (a cached token) or an API key.

The token is fetched from ``POST {base}/oauth/token`` by one thread while the others wait for it, shared
by every thread, and refreshed shortly before ``expires_in`` (10 % of the lifetime, at most 60 s early).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from ...errors import ApiTransientError, ConfigError
from .contract import INVALID, decode_json

__all__ = ["AuthState", "Credentials", "TokenCache", "token_of"]

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
