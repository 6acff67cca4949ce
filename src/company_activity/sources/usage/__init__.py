"""The product-usage API source: its contract, the HTTP client and what the client is made of.

* :mod:`.contract`: pages and records (:func:`parse_usage_page`, the 64-bit counts, storable ids);
* :mod:`.client`: :class:`UsageApiClient` (pagination, error mapping, page cap, stop);
* :mod:`.auth`: OAuth2 client credentials or an API key;
* :mod:`.retry`: retries within attempts and a run-wide budget;
* :mod:`.pacing`: even pacing with AIMD on 429s;
* :mod:`.transport`: the whole-request deadline and prompt stop on blocked reads.
"""

from .client import DEFAULT_MAX_PAGES_PER_DAY, UsageApiClient
from .contract import COMPANY_ID_MAX, COUNT_MAX, Page, ParsedPage, parse_usage_doc, parse_usage_page
from .pacing import AdaptivePacer, OldestDayFirst
from .retry import RetryPolicy, parse_retry_after

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
