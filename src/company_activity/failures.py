"""How a failure is told: one redacted line for any exception, and OS errors as :class:`StorageError`.

:func:`describe` is what a step failure records (ops rows, alerts, the report): the project's own errors
by their message, an OS error as "path: cause", anything else as ``Type: message``; always redacted and
cut to a sane length, so an exception that quotes input data cannot flood (or leak through) a message.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from .errors import BuildGateError, PipelineError, StorageError
from .redact import redact

__all__ = ["MAX_MESSAGE", "as_storage_error", "describe", "storage_errors"]

MAX_MESSAGE = 2000  # characters of a recorded failure message

T = TypeVar("T")

_CAUSES = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOENT: "not found",
    errno.EISDIR: "is a directory (a file was expected)",
    errno.ENOTDIR: "not a directory (a folder was expected)",
    errno.EEXIST: "already exists",
}


def as_storage_error(exc: OSError, what: str = "") -> StorageError:
    """One line naming the path and the cause (``what`` says what the path is, e.g. "lake")."""
    path = exc.filename if exc.filename is not None else None
    cause = _CAUSES.get(exc.errno or -1) or exc.strerror or type(exc).__name__
    where = f"{what} " if what else ""
    shown = os.fsdecode(path) if path is not None else "(path unknown)"
    message = redact(f"{where}{shown}: {cause}")
    return StorageError(message, path=None if path is None else os.fsdecode(path))


def describe(exc: BaseException) -> str:
    """One redacted, bounded line for a failure record."""
    if isinstance(exc, PipelineError | BuildGateError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.errno is not None:
        text = str(as_storage_error(exc))
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = redact(" ".join(text.split()) if "\n" in text or "\r" in text else text)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


@contextmanager
def storage_errors(what: str = "") -> Iterator[None]:
    """Turn an OS error raised inside into :class:`StorageError` (one line, the path and the cause)."""
    try:
        yield
    except OSError as exc:
        raise as_storage_error(exc, what) from None


def guarded(fn: Callable[[], T], what: str = "") -> T:
    with storage_errors(what):
        return fn()
