"""``last_contact_at`` values of the CRM snapshot: ISO-8601 in the accepted forms, to naive UTC."""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["parse_timestamp"]


def parse_timestamp(value: str) -> datetime | None:
    """Parse a ``last_contact_at`` value to a naive UTC datetime; ``None`` when it is not accepted.

    Accepted (ISO-8601 extended format, as in RFC 3339)::

        YYYY-MM-DD                                   midnight UTC
        YYYY-MM-DD<sep>hh:mm[:ss[<frac>]][<offset>]
            <sep>    'T', 't' or one space
            <frac>   '.' or ',' and one or more digits (kept to the microsecond, further digits dropped)
            <offset> 'Z', 'z', '+hh:mm', '+hhmm', '+hh' (or '-'); none means UTC

    Everything else is refused, including forms ``datetime.fromisoformat`` would take (``20260102``,
    ``2026-W01-1``, ``2026-01-02T10``, ``2026-01-02T1000``, offsets with seconds), impossible dates and
    times (``2026-13-01``, hour 24), and non-ASCII digits. An offset is converted to UTC.

    The layout (separators and lengths) is checked here, without a regular expression; the digits and the
    ranges are checked by ``datetime.fromisoformat``, which parses the part before the offset.
    """
    n = len(value)
    if (n < 16 and n != 10) or value[4] != "-" or value[7] != "-" or not value.isascii():
        return None
    offset: timedelta | None = None
    if n == 10:
        end = 10
    else:
        if value[10] not in "Tt ":
            return None
        # The offset, found by its length: 'Z', '+hh:mm', '+hhmm', '+hh'; the time never holds a sign.
        if value[-1] in "Zz":
            end = n - 1
        elif value[-6] in "+-":
            end = n - 6
        elif value[-5] in "+-":
            end = n - 5
        elif value[-3] in "+-":
            end = n - 3
        else:
            end = n
        if end < n - 1:
            offset = _offset(value[end:])
            if offset is None:
                return None
        # the time: hh:mm, hh:mm:ss, or hh:mm:ss + '.'/',' + digits
        length = end - 11
        if length < 5 or value[13] != ":":
            return None
        if length != 5 and (value[16] != ":" or (length != 8 and (length < 10 or value[19] not in ".,"))):
            return None
    try:
        parsed = datetime.fromisoformat(value[:end])
        return parsed if offset is None else parsed - offset
    except (ValueError, OverflowError):
        return None


_OFFSETS: dict[str, timedelta | None] = {}


def _offset(text: str) -> timedelta | None:
    """``+hh``, ``+hhmm`` or ``+hh:mm`` (or ``-``) as a timedelta, ``None`` when malformed (memoised)."""
    try:
        return _OFFSETS[text]
    except KeyError:
        pass
    digits = text[1:]
    if len(digits) == 5 and digits[2] == ":":
        digits = digits[:2] + digits[3:]
    result: timedelta | None = None
    if len(digits) in (2, 4) and digits.isdigit():
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours < 24 and minutes < 60:
            result = timedelta(0, (hours * 60 + minutes) * 60)
            if text[0] == "-":
                result = -result
    if len(_OFFSETS) < 10_000:  # the valid ones are fewer than 6,000; do not grow on garbage
        _OFFSETS[text] = result
    return result
