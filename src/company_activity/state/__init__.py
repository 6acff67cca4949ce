"""The run-state store: every ``ops.*`` read and write, one writer per table.

- :class:`StateReader` (``reader.py``): the reads the plan, the gate, the checks and ``status`` need
  (statuses, complete days, first usage day, stale or failed built days, volume counts).
- :class:`RunStateStore` (``store.py``): a :class:`StateReader` that also writes usage days, CRM
  snapshots, build days and changes, alerts and quality results.
- :class:`Ledger` (``ledger.py``): ``ops.runs`` and ``ops.run_steps``.
- ``status.py``: the read model of the ``status`` command.

Contract (issue 10/13): the state store is written only AFTER the data engine finished the work it
records (data first, then state), each write its own short transaction; no transaction spans the two.
A crash between them leaves the state saying "not done", and the next run redoes the work (the engine's
writes replace a whole day, so redoing is idempotent). Today the state store lives in the warehouse
database (``Warehouse``); with the Spark engine it is a separate DuckDB/PostgreSQL file.
"""

from .ledger import Ledger, StepOutcome, new_run_id
from .reader import StateReader
from .store import RunStateStore

__all__ = ["Ledger", "RunStateStore", "StateReader", "StepOutcome", "new_run_id"]
