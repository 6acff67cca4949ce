"""The product-usage API client, importable under its former name.

The code lives in :mod:`company_activity.sources.usage`.
"""

from __future__ import annotations

from .usage import (
    COMPANY_ID_MAX,
    COUNT_MAX,
    DEFAULT_MAX_PAGES_PER_DAY,
    AdaptivePacer,
    OldestDayFirst,
    Page,
    ParsedPage,
    RetryPolicy,
    UsageApiClient,
    parse_retry_after,
    parse_usage_doc,
    parse_usage_page,
)

#: the former name of :class:`~company_activity.sources.usage.pacing.OldestDayFirst`
_OldestDayFirst = OldestDayFirst

__all__ = [
    "COMPANY_ID_MAX",
    "COUNT_MAX",
    "DEFAULT_MAX_PAGES_PER_DAY",
    "AdaptivePacer",
    "OldestDayFirst",
    "Page",
    "ParsedPage",
    "RetryPolicy",
    "UsageApiClient",
    "parse_retry_after",
    "parse_usage_doc",
    "parse_usage_page",
]
