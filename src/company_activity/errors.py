"""The exception tree of company-activity.

Every error the package raises on purpose is a :class:`PipelineError`. The tree separates
what is worth retrying from what is not::

    PipelineError
    ├── TransientError            retry with backoff: the same call may succeed later
    │   ├── ApiTransientError       429, 5xx, refused/reset connection, timeout, truncated body
    │   └── WarehouseBusyError      the warehouse lock is held by another run
    └── TerminalError             fail now: retrying cannot help
        ├── ConfigError             a bad setting or argument (exit status 2)
        ├── ApiError                a terminal answer from the product-usage API
        │   ├── CredentialsRejected   401 after a fresh token, 400/401 from the token endpoint, bad API key
        │   ├── DateNotAvailable      404 date_not_available: the day left the API's retention (lost)
        │   ├── DateNotFinal          409 date_not_final: the day is not closed yet (stays pending)
        │   ├── InvalidRequest        400 invalid_request or any other unexpected 4xx
        │   └── ApiUnavailable        the retry budget ran out: the API is down
        ├── DataError               input that breaks its contract
        │   ├── CrmFileError          a CRM snapshot that cannot be loaded at all
        │   └── UsageDataError        usage records that break the API contract
        ├── BuildGateError          a day cannot be built: usage incomplete for the days it needs
        ├── QualityCheckFailed      a blocking data-quality check failed
        ├── WarehouseError          the warehouse refused (schema version, lock timeout, ...)
        ├── StorageError            an expected OS error on a path (read-only, disk full, not found)
        └── RunStopped              the run stopped before it finished its work
            ├── RunInterrupted        SIGINT/SIGTERM (Ctrl-C, systemd stop): stop within seconds
            └── RunDeadlineExceeded   the run's deadline passed

Messages name what is involved (file, date, line, HTTP status) and never contain secrets.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date


class PipelineError(Exception):
    """Base of every error company-activity raises on purpose."""


class TransientError(PipelineError):
    """The same operation may succeed if tried again later."""


class TerminalError(PipelineError):
    """Retrying cannot help; fail now and report."""


class ConfigError(TerminalError):
    """A setting or a command-line argument is invalid. The CLI exits with status 2."""


class ApiTransientError(TransientError):
    """A transient failure of the product-usage API.

    ``retry_after`` is the server's ``Retry-After`` in seconds when it sent one.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ApiError(TerminalError):
    """A terminal answer from the product-usage API."""

    def __init__(self, message: str, *, status: int | None = None, day: date | None = None):
        super().__init__(message)
        self.status = status
        self.day = day


class CredentialsRejected(ApiError):
    """The API rejected the configured credentials."""


class DateNotAvailable(ApiError):
    """404 ``date_not_available``: the day is older than the API's retention; its data is lost."""


class DateNotFinal(ApiError):
    """409 ``date_not_final``: the day is not closed yet; it stays pending for a later run."""


class InvalidRequest(ApiError):
    """400 ``invalid_request`` or another unexpected client error."""


class ApiUnavailable(ApiError):
    """The run's retry budget for the API ran out."""


class DataError(TerminalError):
    """Input data breaks its contract."""


class CrmFileError(DataError):
    """A CRM snapshot file that cannot be loaded (missing, no required column, too many bad rows)."""


class UsageDataError(DataError):
    """Usage records that break the API contract (missing field, wrong type, negative, conflict)."""


class BuildGateError(TerminalError):
    """A day cannot be built because usage is not complete for the days it depends on."""

    def __init__(self, day: date, missing: Sequence[date]):
        self.day = day
        self.missing = tuple(missing)
        days = ", ".join(d.isoformat() for d in self.missing)
        super().__init__(f"cannot build {day.isoformat()}: usage is not complete for {days}")


class QualityCheckFailed(TerminalError):
    """A blocking data-quality check failed; the day was not published."""


class WarehouseError(TerminalError):
    """The warehouse cannot be used as asked (schema version, lock timeout, ...)."""


class WarehouseBusyError(TransientError):
    """Another run holds the warehouse lock."""


class StorageError(TerminalError):
    """An expected OS error on a file or folder (read-only, disk full, not found, not a directory).

    The message is one line that names the path and the cause, never a traceback.
    """

    def __init__(self, message: str, *, path: str | None = None):
        super().__init__(message)
        self.path = path


class RunStopped(TerminalError):
    """The run stopped before it finished: the current day is left not-complete; a re-run converges."""


class RunInterrupted(RunStopped):
    """SIGINT or SIGTERM asked the run to stop (see :mod:`company_activity.stopping`)."""


class RunDeadlineExceeded(RunStopped):
    """The run's deadline passed (see :mod:`company_activity.stopping`)."""
