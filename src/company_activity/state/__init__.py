"""The run-state store: every ``ops.*`` read and write, one writer per table.

- :class:`RunStateStore` (``store.py``): usage days, CRM snapshots, build days, quality results, and the
  reads the plan needs (statuses, complete days, first usage day, stale built days, volume counts).
- :class:`Ledger` (``ledger.py``): ``ops.runs`` and ``ops.run_steps``.
- ``status.py``: the read model of the ``status`` command.

Contract (issue 10/13): the state store is written only AFTER the data engine finished the work it
records (data first, then state), each write its own short transaction; no transaction spans the two.
A crash between them leaves the state saying "not done", and the next run redoes the work (the engine's
writes replace a whole day, so redoing is idempotent). Today the state store lives in the warehouse
database (``Warehouse``); with the Spark engine it is a separate DuckDB/PostgreSQL file.
"""

from .ledger import Ledger, StepOutcome, new_run_id
from .store import RunStateStore

__all__ = ["Ledger", "RunStateStore", "StepOutcome", "new_run_id"]
