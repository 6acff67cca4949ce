"""The built-in product-usage API simulator and the deterministic synthetic data behind it."""

from .cli import simulate_api
from .data import CRM_COLUMNS, KINDS, CrmRecord, SyntheticData, UsageRecord, company_id, company_index
from .server import SimulatorOptions, SimulatorServer, SimulatorStats, serve

__all__ = [
    "CRM_COLUMNS",
    "KINDS",
    "CrmRecord",
    "SimulatorOptions",
    "SimulatorServer",
    "SimulatorStats",
    "SyntheticData",
    "UsageRecord",
    "company_id",
    "company_index",
    "serve",
    "simulate_api",
]
