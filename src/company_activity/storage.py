"""The lake: blob storage through fsspec (a local folder, ``file://``, ``az://container/prefix``, ``memory://``).

Paths given to :class:`Lake` are relative to its root and always use ``/``. Raw API pages and manifests
are written once and never changed; :meth:`Lake.write_bytes` is atomic (a reader sees the whole object or
nothing): object stores commit a blob in one step, and on a local disk it writes a temporary file and
renames it.

Azure Blob Storage (``az://container/prefix``, also ``abfs://`` and ``az://container@account.blob.core.windows.net/
prefix``) goes through adlfs, with the credentials :mod:`company_activity.azure_lake` chooses (identity, SAS
token, account key or connection string); the container must exist. Folders there are prefixes of blob names.
Listings are never cached, so a file another process wrote is seen at once. Azure's errors become the
pipeline's: an unreachable service, a timeout, 408, 429 or 5xx is a TransientError; rejected credentials or
a missing container a ConfigError naming the lake.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import fsspec

from . import azure_lake
from .azure_lake import AzureLakeAuth
from .errors import ConfigError, TransientError
from .tls import certificate_error

if TYPE_CHECKING:
    from .config import Settings


class Lake:
    """A folder of blobs under one root URL."""

    def __init__(
        self,
        root: str,
        *,
        storage_options: dict[str, Any] | None = None,
        filesystem: tuple[Any, str] | None = None,
        credential_source: str = "AZURE_STORAGE_CONNECTION_STRING",
    ):
        """``filesystem`` is an fsspec filesystem and the root's path in it (else made from ``root``)."""
        self.root_url = root
        self.credential_source = credential_source
        options = dict(storage_options or {})
        if filesystem is not None:
            fs, path = filesystem
        else:
            try:
                fs, path = fsspec.core.url_to_fs(root, **options)
            except (ImportError, ValueError) as exc:
                raise ConfigError(f"COMPANY_ACTIVITY_LAKE={root!r} cannot be opened: {exc}") from None
        self.fs = fs
        self.is_local = "file" in _protocols(fs)
        self.root = path.rstrip("/") if path not in ("/", "") else path
        if self.is_local:
            self.root = os.path.abspath(self.root)

    # -- paths ----------------------------------------------------------------------------------------
    def path(self, rel: str) -> str:
        rel = rel.lstrip("/")
        if not self.root:
            return rel
        return f"{self.root}/{rel}"

    def url(self, rel: str) -> str:
        """A human-readable location of ``rel`` for messages."""
        if self.is_local:
            return self.path(rel)
        return f"{self.root_url.rstrip('/')}/{rel.lstrip('/')}"

    # -- reading --------------------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        return bool(self._call(self.fs.exists, self.path(rel)))

    def read_bytes(self, rel: str) -> bytes:
        data = self._call(self.fs.cat_file, self.path(rel))
        assert isinstance(data, bytes)
        return data

    def list_dirs(self, rel: str) -> list[str]:
        """Names of the sub-folders of ``rel`` (empty when it does not exist)."""
        full = self.path(rel)
        if not self.exists(rel):
            return []
        entries = self._call(self.fs.ls, full, detail=True)
        names = []
        for entry in entries:
            if entry.get("type") == "directory":
                names.append(str(entry["name"]).rstrip("/").rsplit("/", 1)[-1])
        return sorted(names)

    def list_files(self, rel: str) -> list[str]:
        full = self.path(rel)
        if not self.exists(rel):
            return []
        entries = self._call(self.fs.ls, full, detail=True)
        return sorted(str(e["name"]).rsplit("/", 1)[-1] for e in entries if e.get("type") != "directory")

    # -- writing --------------------------------------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write ``data`` at ``rel`` atomically, creating parent folders."""
        full = self.path(rel)
        parent = full.rsplit("/", 1)[0]
        if self.is_local:
            os.makedirs(parent, exist_ok=True)
            tmp = f"{parent}/.{full.rsplit('/', 1)[-1]}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, full)
        else:
            self._call(self.fs.pipe_file, full, data)

    # -- streaming (the CRM snapshot and its quarantine) ------------------------------------------------
    def open_read(self, rel: str) -> BinaryIO:
        """A binary file object reading ``rel`` (read it in chunks; close it)."""
        return cast(BinaryIO, self._call(self.fs.open, self.path(rel), "rb"))

    @contextmanager
    def open_write(self, rel: str) -> Iterator[BinaryIO]:
        """A binary file that becomes ``rel`` when the block ends without an error (nothing otherwise).

        Streams: a local lake writes a temporary file next to ``rel`` and renames it; an object store
        uploads in blocks and commits the blob when the block ends.
        """
        full = self.path(rel)
        if not self.is_local:
            remote = self._call(self.fs.open, full, "wb")
            try:
                yield remote
            except BaseException:
                with suppress(Exception):
                    remote.discard()
                raise
            self._call(remote.close)
            return
        parent = full.rsplit("/", 1)[0]
        os.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.{full.rsplit('/', 1)[-1]}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, full)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise

    def walk_files(self, rel: str) -> Iterator[str]:
        """Every file below ``rel``, as paths relative to the lake root."""
        full = self.path(rel)
        if not self.exists(rel):
            return
        prefix = self.root + "/" if self.root else ""
        for name in sorted(self._call(self.fs.find, full)):
            name = str(name)
            yield name[len(prefix) :] if name.startswith(prefix) else name

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError:
            raise
        except (ConnectionError, TimeoutError) as exc:
            raise TransientError(f"lake {self.root_url}: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            mapped = _azure_error(self.root_url, exc, self.credential_source)
            if mapped is None:
                raise
            raise mapped from exc


_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def _azure_error(root_url: str, exc: Exception, source: str) -> Exception | None:
    """The pipeline error for an exception of the Azure SDK (or its HTTP client), None for others."""
    module = type(exc).__module__
    if not module.startswith(("azure.", "aiohttp")):
        return None
    names = {cls.__name__ for cls in type(exc).__mro__}
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "error_code", None)
    first = (str(getattr(exc, "reason", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
    detail = f"{type(exc).__name__}{f' {status}' if status else ''}{f' {code}' if code else ''}: {first}"
    untrusted = certificate_error(exc)
    if untrusted is not None:
        return ConfigError(
            f"lake {root_url}: the TLS certificate of Azure Blob Storage{_endpoint(exc)} could not be "
            f"verified ({untrusted}); if it uses a private CA, set COMPANY_ACTIVITY_LAKE_CA_FILE to its "
            "PEM file"
        )
    if module.startswith("aiohttp") or names & {"ServiceRequestError", "ServiceResponseError"}:
        return TransientError(f"lake {root_url}: Azure Blob Storage unreachable: {detail}")
    if status in _TRANSIENT_STATUS:
        return TransientError(f"lake {root_url}: Azure Blob Storage is busy or failing: {detail}")
    if "ClientAuthenticationError" in names or status in (401, 403):
        return ConfigError(
            f"lake {root_url}: Azure Blob Storage refused the credentials of {source} ({detail})"
        )
    if code == "ContainerNotFound" or "container does not exist" in str(exc):
        container = root_url.split("://", 1)[-1].split("/", 1)[0]
        return ConfigError(f"lake {root_url}: the Azure container {container!r} does not exist; create it")
    return None


def _endpoint(exc: BaseException) -> str:
    """`` at host:port`` of the connection behind ``exc`` (aiohttp's connector errors carry it), or ''."""
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            break
        host, port = getattr(current, "host", None), getattr(current, "port", None)
        if isinstance(host, str) and host:
            return f" at {host}:{port}" if port else f" at {host}"
        current = current.__cause__ or current.__context__
    return ""


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def open_lake(
    root: str, *, azure_connection_string: str | None = None, azure: AzureLakeAuth | None = None
) -> Lake:
    """Open the lake at ``root``; ``az://`` lakes authenticate as ``azure`` says (default: the connection
    string)."""
    if not root.startswith(("az://", "abfs://", "abfss://")):
        return Lake(root)
    auth = azure or AzureLakeAuth(mode="connection_string", connection_string=azure_connection_string)
    if auth.mode == "connection_string" and not auth.connection_string:
        raise ConfigError(
            f"COMPANY_ACTIVITY_LAKE={root!r}: no credentials: set AZURE_STORAGE_CONNECTION_STRING, or "
            "COMPANY_ACTIVITY_LAKE_ACCOUNT_NAME for the identity (see COMPANY_ACTIVITY_LAKE_AUTH)"
        )
    # no listing cache (another process writes the CRM files) and no instance shared between lakes
    fs = azure_lake.filesystem(root, auth)
    return Lake(root, filesystem=(fs, azure_lake.container_path(root)), credential_source=auth.source)


def open_lake_for(settings: Settings) -> Lake:
    """The lake of ``settings``, with the Azure credentials they choose."""
    root = settings.lake
    if root.startswith(("az://", "abfs://", "abfss://")):
        return open_lake(root, azure=azure_lake.auth_from_settings(settings))
    return Lake(root)
