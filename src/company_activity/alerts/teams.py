"""Microsoft Teams alerts through a Workflows incoming webhook, as an Adaptive Card.

The webhook URL is a secret as a whole, whatever its host (its path and its ``sig`` parameter are the
credential): it, its path and query, and each query value and path segment that may carry a credential
are registered for redaction, in every form a receiver may echo them; the URL is never logged and never
part of an exception's text, and a receiver's error body is quoted only through
:func:`~company_activity.redact.clip` (redacted, cut, redacted again).

Delivery is retried on 5xx, 429 (honouring ``Retry-After``), 408 and transport errors; any other answer
fails at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from ..logs import silence_url_logging
from ..redact import clip, redact, register_secret, url_secret_parts
from ..web.links import run_url as ui_run_url
from . import Alert, AlertDeliveryError, DeliveryPolicy, describe_error, once_note

log = logging.getLogger("company_activity.alerts.teams")

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
_MAX_TEXT = 3000  # characters of message shown on a card (Teams refuses payloads over ~28 KB)
_MAX_DETAIL = 200  # characters of a receiver's error body quoted in a delivery error
_COLOURS = {"error": "Attention", "warning": "Warning", "info": "Accent"}


def adaptive_card(alert: Alert, *, run_url: str | None = None) -> dict[str, Any]:
    """The Adaptive Card (1.4) of an alert: title, message, facts (run, day, step, figures), rerun, and a
    button to the run's page in the web UI when ``run_url`` is given."""
    colour = "Good" if alert.kind == "recovered" else _COLOURS.get(alert.severity, "Default")
    heading = f"{alert.label}: {alert.title}"
    where = " · ".join(p for p in (alert.step, alert.day.isoformat() if alert.day else None) if p)
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": f"company-activity — {heading}",
            "weight": "Bolder",
            "size": "Medium",
            "color": colour,
            "wrap": True,
        }
    ]
    if where:
        body.append({"type": "TextBlock", "text": where, "isSubtle": True, "spacing": "None", "wrap": True})
    # a line break on a card takes a blank line (Adaptive Card markdown)
    body.append({"type": "TextBlock", "text": _truncate(alert.message).replace("\n", "\n\n"), "wrap": True})
    body.append(
        {
            "type": "FactSet",
            "facts": [{"title": name, "value": _truncate(value, 500)} for name, value in alert.facts()],
        }
    )
    if alert.rerun:
        body.append({"type": "TextBlock", "text": "Rerun with", "weight": "Bolder", "wrap": True})
        body.append(
            {
                "type": "TextBlock",
                "text": alert.rerun,
                "fontType": "Monospace",
                "wrap": True,
                "spacing": "Small",
            }
        )
    card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
    if run_url:  # issue 12: COMPANY_ACTIVITY_UI_URL is set
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the run", "url": run_url}]
    return card


def teams_payload(alert: Alert, *, run_url: str | None = None) -> dict[str, Any]:
    """The message a Workflows ("When a Teams webhook request is received") flow accepts."""
    card = adaptive_card(alert, run_url=run_url)
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


class _Retryable(Exception):
    def __init__(self, status: int, retry_after: float | None, detail: str):
        super().__init__(f"HTTP {status}{': ' + detail if detail else ''}")
        self.status = status
        self.retry_after = retry_after


class _Refused(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(f"HTTP {status}{': ' + detail if detail else ''}")
        self.status = status


class TeamsSink:
    """Posts each alert as an Adaptive Card to a Teams Workflows webhook.

    ``client`` may be given (tests, proxies); otherwise a client is opened for each alert. ``sleep`` is
    what waits between attempts (tests pass a recorder).
    """

    name = "teams"

    def __init__(
        self,
        webhook_url: str,
        *,
        policy: DeliveryPolicy | None = None,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        ui_url: str | None = None,
    ):
        self.ui_url = ui_url  # issue 12: the web UI, for the card's "Open the run" button
        if not webhook_url.startswith(("https://", "http://")):
            raise ValueError("the Teams webhook URL must start with https:// or http://")
        self._url = webhook_url
        for piece in url_secret_parts(webhook_url):  # secret as a whole: path and query too
            register_secret(piece)
        silence_url_logging()
        self.policy = policy or DeliveryPolicy()
        self._client = client
        self._sleep = sleep
        self.attempts = 0  # of the last send, for reports and tests
        self.failing = False  # the last send failed: the next one is tried once only

    def __repr__(self) -> str:
        return f"TeamsSink(webhook=<redacted>, policy={self.policy!r})"

    def send(self, alert: Alert) -> None:
        payload = teams_payload(alert, run_url=ui_run_url(self.ui_url, alert.run_id))
        once = self.failing
        policy = self.policy.once() if once else self.policy
        retrying = policy.retrying(
            sink=self.name,
            retry_if=lambda exc: isinstance(exc, _Retryable | httpx.TransportError),
            retry_after=lambda exc: exc.retry_after if isinstance(exc, _Retryable) else None,
            sleep=self._sleep,
        )
        self.attempts = 0
        error: str | None = None
        try:
            if self._client is not None:
                retrying(self._post, self._client, payload)
            else:
                with httpx.Client(timeout=self.policy.timeout, follow_redirects=False) as client:
                    retrying(self._post, client, payload)
        except Exception as exc:  # whatever it was, its text goes through _safe and nothing is chained
            error = self._safe(describe_error(exc))
        self.failing = error is not None
        if error is not None:  # raised outside the handler: no chained exception carrying the URL
            raise AlertDeliveryError(
                self.name,
                f"Teams webhook delivery failed after {self.attempts} attempt(s){once_note(once)}: {error}",
                attempts=self.attempts,
            )
        log.debug("alert %r delivered to Teams in %d attempt(s)", alert.title, self.attempts)

    def _post(self, client: httpx.Client, payload: dict[str, Any]) -> None:
        self.attempts += 1
        response = client.post(self._url, json=payload, timeout=self.policy.timeout)
        if response.is_success:
            return
        status = response.status_code
        detail = self._safe(clip(response.text, _MAX_DETAIL))  # the receiver's text: it may echo the URL
        if status in (408, 429) or status >= 500:
            raise _Retryable(status, _retry_after(response), detail)
        raise _Refused(status, detail)

    def _safe(self, text: str) -> str:
        # the URL, or any piece of it a server or library echoes, never leaves this object
        text = text.replace(self._url, "<webhook>")
        parsed = httpx.URL(self._url)
        for piece in (parsed.query.decode(), parsed.path):
            if len(piece) > 8:
                text = text.replace(piece, "<redacted>")
        return redact(text)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _truncate(text: str, limit: int = _MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
