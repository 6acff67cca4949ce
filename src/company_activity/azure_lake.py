"""Credentials for a lake on Azure Blob Storage, in the Azure way.

``COMPANY_ACTIVITY_LAKE_AUTH`` picks one of four modes, in this order of preference:

1. ``identity``: ``azure.identity.DefaultAzureCredential`` (managed identity, workload identity, the
   environment's service principal, ``az login``). No secret in the pipeline's configuration at all.
2. ``sas``: a SAS token (``COMPANY_ACTIVITY_LAKE_SAS_TOKEN`` or a file named by ``…_SAS_TOKEN_FILE``),
   ideally scoped to the one container with read/write/list/create permissions and an expiry.
3. ``key``: the storage account key (``COMPANY_ACTIVITY_LAKE_ACCOUNT_KEY`` or ``…_ACCOUNT_KEY_FILE``).
4. ``connection_string``: ``AZURE_STORAGE_CONNECTION_STRING`` (it carries its own endpoint and secret).

``auto`` (the default) takes the most preferred mode whose secret is configured: a SAS token, else an
account key, else a connection string, else the identity (which needs no secret).

Every mode but the connection string needs the storage account's name: ``COMPANY_ACTIVITY_LAKE_ACCOUNT_NAME``
or the URL form ``az://container@account.blob.core.windows.net/prefix`` (``abfs://`` and
``.dfs.core.windows.net`` work too). The endpoint is ``https://{account}.blob.core.windows.net`` unless
``COMPANY_ACTIVITY_LAKE_ENDPOINT`` names another (a sovereign cloud, a private endpoint, Azurite);
``COMPANY_ACTIVITY_LAKE_CA_FILE`` trusts an extra CA for it. Secrets read here are registered for
redaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .logs import register_secret
from .tls import certificate_error

if TYPE_CHECKING:
    from .config import Settings

MODES = ("identity", "sas", "key", "connection_string")
AUTH_SETTING = "COMPANY_ACTIVITY_LAKE_AUTH"
ACCOUNT_SETTING = "COMPANY_ACTIVITY_LAKE_ACCOUNT_NAME"
_HOST = re.compile(r"^(?:(?P<container>[^@/]+)@)?(?P<account>[a-z0-9]+)\.(?:blob|dfs)\.core\.windows\.net$")

#: where each mode's secret comes from, for messages
SOURCES = {
    "identity": "DefaultAzureCredential (managed identity, workload identity, az login)",
    "sas": "COMPANY_ACTIVITY_LAKE_SAS_TOKEN",
    "key": "COMPANY_ACTIVITY_LAKE_ACCOUNT_KEY",
    "connection_string": "AZURE_STORAGE_CONNECTION_STRING",
}


def default_credential() -> Any:
    """``azure.identity.aio.DefaultAzureCredential()`` (adlfs talks to Blob Storage asynchronously)."""
    try:
        from azure.identity.aio import DefaultAzureCredential
    except ImportError:  # pragma: no cover - azure-identity comes with adlfs
        raise ConfigError(f"{AUTH_SETTING}=identity needs azure-identity: pip install '.[azure]'") from None
    return DefaultAzureCredential()


@dataclass(frozen=True)
class AzureLakeAuth:
    """How to reach one ``az://`` lake: the chosen mode, the account and endpoint, the secret."""

    mode: str = "connection_string"
    account_name: str | None = None
    endpoint: str | None = None
    sas_token: str | None = field(default=None, repr=False)
    account_key: str | None = field(default=None, repr=False)
    connection_string: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    #: makes the async token credential of the ``identity`` mode (tests may hand in a double)
    credential_factory: Callable[[], Any] = default_credential

    @property
    def source(self) -> str:
        return SOURCES.get(self.mode, self.mode)


def _read_secret(value: str | None, file: str | None, setting: str) -> str | None:
    if value and file:
        raise ConfigError(f"{setting} and {setting}_FILE are both set: keep one")
    if file:
        try:
            value = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{setting}_FILE: cannot read {file!r}: {exc.strerror or exc}") from None
        if not value:
            raise ConfigError(f"{setting}_FILE: {file!r} is empty")
    value = (value or "").strip() or None
    register_secret(value)
    return value


def auth_from_settings(settings: Settings) -> AzureLakeAuth:
    """The lake credentials the settings ask for (only meaningful for ``az://``/``abfs://`` lakes)."""
    conn = settings.azure_storage_connection_string
    connection_string = (conn.get_secret_value().strip() or None) if conn is not None else None
    sas = _read_secret(
        settings.lake_sas_token.get_secret_value() if settings.lake_sas_token else None,
        settings.lake_sas_token_file,
        "COMPANY_ACTIVITY_LAKE_SAS_TOKEN",
    )
    key = _read_secret(
        settings.lake_account_key.get_secret_value() if settings.lake_account_key else None,
        settings.lake_account_key_file,
        "COMPANY_ACTIVITY_LAKE_ACCOUNT_KEY",
    )
    mode = settings.lake_auth
    if mode == "auto":
        mode = "sas" if sas else "key" if key else "connection_string" if connection_string else "identity"
    needed = {"sas": sas, "key": key, "connection_string": connection_string}
    if mode in needed and not needed[mode]:
        raise ConfigError(f"{AUTH_SETTING}={mode} but {SOURCES[mode]} (or its _FILE) is not set")
    return AzureLakeAuth(
        mode=mode,
        account_name=settings.lake_account_name or None,
        endpoint=settings.lake_endpoint or None,
        sas_token=sas.lstrip("?") if sas else None,
        account_key=key,
        connection_string=connection_string,
        ca_file=settings.lake_ca_file or None,
    )


def account_from_url(root: str) -> str | None:
    """The account named in ``az://container@account.blob.core.windows.net/...``, else None."""
    host = root.split("://", 1)[-1].split("/", 1)[0].lower()
    match = _HOST.match(host)
    return match.group("account") if match else None


def container_path(root: str) -> str:
    """``container/prefix`` of an ``az://`` / ``abfs://`` URL in either form."""
    rest = root.split("://", 1)[-1]
    host, _, path = rest.partition("/")
    match = _HOST.match(host.lower())
    if match:
        container = host.split("@", 1)[0] if "@" in host else ""
        if not container:
            raise ConfigError(f"COMPANY_ACTIVITY_LAKE={root!r}: no container (az://container@account...)")
        host = container
    return f"{host}/{path}".rstrip("/")


def _retry_policy() -> Any:
    """The SDK's exponential retry, except for a certificate that cannot be verified (retrying can't help)."""
    from azure.storage.blob.aio import ExponentialRetry

    class _Retry(ExponentialRetry):
        def increment(self, settings: Any, request: Any, response: Any = None, error: Any = None) -> bool:
            if error is not None and certificate_error(error) is not None:
                return False
            return bool(super().increment(settings, request, response=response, error=error))

    return _Retry()


def filesystem(root: str, auth: AzureLakeAuth) -> Any:
    """An adlfs filesystem for the ``az://`` lake at ``root``, authenticated as ``auth`` says."""
    try:
        from adlfs import AzureBlobFileSystem
        from azure.storage.blob.aio import BlobServiceClient
    except ImportError:
        raise ConfigError(
            f"COMPANY_ACTIVITY_LAKE={root!r} needs the Azure extra: pip install 'company-activity[azure]'"
        ) from None
    if auth.mode not in MODES:
        raise ConfigError(f"{AUTH_SETTING}={auth.mode!r} is not one of auto, {', '.join(MODES)}")
    client_options: dict[str, Any] = {"user_agent": "company-activity", "retry_policy": _retry_policy()}
    if auth.ca_file:
        client_options["connection_verify"] = auth.ca_file
    credential: Any = None
    if auth.mode == "connection_string":
        assert auth.connection_string
        try:
            service = BlobServiceClient.from_connection_string(auth.connection_string, **client_options)
        except ValueError:  # the message could quote the string: name the setting only
            raise ConfigError("AZURE_STORAGE_CONNECTION_STRING is not a valid connection string") from None
    else:
        account = auth.account_name or account_from_url(root)
        if not account:
            raise ConfigError(
                f"{AUTH_SETTING}={auth.mode} needs the storage account: set {ACCOUNT_SETTING}, or write the "
                "lake as az://container@ACCOUNT.blob.core.windows.net/prefix"
            )
        endpoint = (auth.endpoint or f"https://{account}.blob.core.windows.net").rstrip("/")
        if not endpoint.lower().startswith(("https://", "http://")):
            raise ConfigError(f"COMPANY_ACTIVITY_LAKE_ENDPOINT={endpoint!r} must start with https://")
        if auth.mode == "identity":
            credential = auth.credential_factory()
            secret: Any = credential
        elif auth.mode == "sas":
            secret = auth.sas_token
        else:
            secret = {"account_name": account, "account_key": auth.account_key}
        try:
            service = BlobServiceClient(account_url=endpoint, credential=secret, **client_options)
        except ValueError as exc:  # e.g. a token credential over http
            raise ConfigError(
                f"lake {root}: {auth.mode} credentials cannot be used with {endpoint}: {exc}"
            ) from None

    class _LakeFileSystem(AzureBlobFileSystem):  # type: ignore[misc]
        """adlfs with the service client made here (adlfs cannot pass a CA file or an endpoint path)."""

        def do_connect(self) -> None:
            self.service_client = service

    # anon=True keeps adlfs from making credentials of its own (or reading AZURE_STORAGE_* itself);
    # the credential is handed over so that adlfs closes it with the filesystem
    return _LakeFileSystem(
        account_name=auth.account_name,
        credential=credential,
        anon=True,
        use_listings_cache=False,
        skip_instance_cache=True,
    )
