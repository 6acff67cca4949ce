"""The one redaction and the failure texts (issue 9): unit level."""

from __future__ import annotations

import errno

from company_activity.failures import MAX_MESSAGE, as_storage_error, describe
from company_activity.redact import excerpt, redact, register_secret, url_secret_parts


def test_a_webhook_url_is_secret_as_a_whole() -> None:
    url = "https://hooks.internal.example/flow/Fl0w-Id-Secret-881/run?Unnamed-Q-Secret-77"
    for piece in url_secret_parts(url):
        register_secret(piece)
    for echoed in (url, "/flow/Fl0w-Id-Secret-881/run", "Unnamed-Q-Secret-77", "flow/Fl0w-Id-Secret-881/run"):
        text = redact(f"receiver said: {echoed} is unknown")
        assert "Fl0w-Id-Secret-881" not in text and "Unnamed-Q-Secret-77" not in text, text


def test_an_excerpt_is_short_escaped_and_redacted() -> None:
    register_secret("Exc3rpt-Secret-Value")
    shown = excerpt("a\r\nb\x00 Exc3rpt-Secret-Value " + "x" * 200)
    assert shown.startswith("'a\\r\\nb\\x00 ***") and shown.endswith("…") and len(shown) < 60, shown


def test_describe_is_one_bounded_redacted_line() -> None:
    register_secret("D3scribe-Secret-Value")
    text = describe(ValueError("line one\nD3scribe-Secret-Value\n" + "y" * 5000))
    assert "\n" not in text and "D3scribe-Secret-Value" not in text and len(text) <= MAX_MESSAGE
    err = as_storage_error(OSError(errno.ENOSPC, "No space left on device", "/data/lake/x.json"), "lake")
    assert str(err) == "lake /data/lake/x.json: no space left on device" and err.path == "/data/lake/x.json"
