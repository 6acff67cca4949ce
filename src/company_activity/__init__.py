"""company-activity: the Company Activity Pipeline.

CRM daily snapshots (CSV in blob storage) and the product-usage API's daily aggregates become
``analytics.company_daily_activity``: one row per company per UTC day.
"""

__version__ = "0.1.0"
