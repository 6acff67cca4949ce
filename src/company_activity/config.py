"""Settings: environment variables (``COMPANY_ACTIVITY_*``), optionally a TOML file; the environment wins.

Settings are read once, validated, and passed down as a :class:`Settings` object; nothing reads the
environment at import time. A bad value raises :class:`~company_activity.errors.ConfigError` naming the
setting (the CLI turns it into exit status 2).

**An empty value is a value not set**, for every setting and from every source alike (issue 24): an empty
``COMPANY_ACTIVITY_*`` variable (including ``_FILE`` variants and ``COMPANY_ACTIVITY_SECRETS_DIR``), an
empty TOML value, an empty secret file and an empty override all leave the setting at what the next
source, or the default, gives. The rule is :func:`is_unset`; the environment source applies the same
rule itself (pydantic-settings' ``env_ignore_empty``), so an empty variable does not hide the TOML value.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .errors import ConfigError

ENV_PREFIX = "COMPANY_ACTIVITY_"


def is_unset(value: object) -> bool:
    """The one rule: an empty value (``""``, an empty secret) is a setting not given."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return isinstance(value, str) and value == ""


def given(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without the ones :func:`is_unset` says were not given."""
    return {key: value for key, value in values.items() if not is_unset(value)}


# what a source's daily count is compared with: "both" = the previous day and the same weekday a week
# earlier (a drop against both is an anomaly; without the week-old figure the previous day decides)
VolumeBaseline = Literal["both", "previous_day", "week_ago", "off"]


class Settings(BaseSettings):
    """Every setting of the pipeline, with its default. See the README for the full table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
        env_ignore_empty=True,  # is_unset, applied by the environment source itself
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, data: Any) -> Any:
        """Every other source (TOML, secret files, overrides, direct construction): :func:`is_unset`."""
        return given(data) if isinstance(data, Mapping) else data

    # where things live
    warehouse: str = "./data/warehouse.duckdb"
    lake: str = "./data/lake"
    crm_path: str = "crm/crm_daily_{date}.csv"
    azure_storage_connection_string: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AZURE_STORAGE_CONNECTION_STRING", "azure_storage_connection_string"),
    )

    # the product-usage API
    api_url: str | None = None
    api_client_id: str | None = None
    api_client_secret: SecretStr | None = None
    api_key: SecretStr | None = None
    api_page_size: int = Field(default=1000, ge=1, le=1000)
    api_timeout: float = Field(default=30.0, gt=0)
    api_rate_limit: float = Field(default=10.0, gt=0, description="requests per second, client side")
    api_max_attempts: int = Field(default=6, ge=1, description="attempts per request")
    api_backoff_initial: float = Field(default=0.5, ge=0)
    api_backoff_max: float = Field(default=30.0, gt=0, description="cap on any single wait")
    api_retry_after_floor: float = Field(default=0.2, ge=0, description="least wait after a 429")
    api_retry_budget: float = Field(
        default=900.0, gt=0, description="seconds of retry waiting allowed in one run"
    )
    api_retention_days: int = Field(default=30, ge=1)
    api_concurrency: int = Field(default=4, ge=1, le=32, description="days fetched at once")

    # -- issue 9 (usage API): bounded days, adaptive pacing, the project's temporary folder -----------
    # (api_timeout above bounds one WHOLE request: connect + every read of the response)
    api_max_pages_per_day: int = Field(
        default=20_000, ge=1, description="a day with more pages than this fails (pagination that never ends)"
    )
    api_rate_floor: float = Field(
        default=0.5, gt=0, description="least requests/s the client slows down to after 429s"
    )
    tmp_dir: str = Field(
        default="./data/tmp", description="temporary files (usage spools); swept of killed runs' leftovers"
    )

    # the pipeline
    start_date: date | None = None
    today: date | None = None
    crm_max_bad_fraction: float = Field(default=0.05, ge=0, le=1)
    retention_warning_days: int = Field(default=3, ge=0)
    missing_crm_warn_fraction: float = Field(default=0.05, ge=0, le=1)
    lock_timeout: float = Field(default=60.0, ge=0)
    # -- issue 9 (run bounds): the whole run's deadline; past it the run stops as on SIGTERM --
    run_deadline: float = Field(
        default=21600.0, gt=0, description="seconds a run may take before it stops (default 6 h)"
    )
    duckdb_memory_limit: str | None = Field(
        default=None, description="DuckDB memory limit such as 3GB (default: DuckDB's, 80% of RAM)"
    )

    # the long-running scheduler (`company-activity schedule`); validated by company_activity.scheduler
    schedule_cron: str = Field(default="0 0 * * *", description="crontab expression, evaluated in UTC")

    # alerting
    teams_webhook_url: SecretStr | None = None
    smtp_url: SecretStr | None = None
    alert_email_from: str | None = None
    alert_email_to: str | None = None
    alert_max_attempts: int = Field(default=4, ge=1, le=20, description="attempts per alert and sink")
    alert_backoff_initial: float = Field(default=1.0, ge=0, description="first wait between attempts, s")
    alert_backoff_max: float = Field(default=30.0, gt=0, description="cap on any single wait, s")
    alert_timeout: float = Field(default=10.0, gt=0, description="seconds per webhook/SMTP attempt")
    smtp_ca_file: str | None = Field(default=None, description="PEM bundle trusted for SMTP TLS")

    # monitoring: volume anomalies per source (a drop of more than the threshold against the baseline)
    volume_crm_threshold: float = Field(default=0.10, gt=0, le=1)
    volume_crm_baseline: VolumeBaseline = "both"
    volume_crm_blocking: bool = False
    volume_usage_threshold: float = Field(default=0.10, gt=0, le=1)
    volume_usage_baseline: VolumeBaseline = "both"
    volume_usage_blocking: bool = False

    # -- issue 14: transport security (company_activity.tls) and lake credentials (.azure_lake) ---------
    allow_insecure_http: bool = Field(
        default=False, description="allow plain http / smtp without STARTTLS to non-loopback hosts"
    )
    api_ca_file: str | None = Field(default=None, description="extra PEM CA bundle trusted for the API")
    lake_auth: Literal["auto", "identity", "sas", "key", "connection_string"] = "auto"
    lake_account_name: str | None = None
    lake_endpoint: str | None = Field(
        default=None, description="default https://{account}.blob.core.windows.net"
    )
    lake_sas_token: SecretStr | None = None
    lake_sas_token_file: str | None = None
    lake_account_key: SecretStr | None = None
    lake_account_key_file: str | None = None
    lake_ca_file: str | None = Field(default=None, description="extra PEM CA bundle trusted for the lake")

    @model_validator(mode="after")
    def _transport_security(self) -> Settings:
        from .tls import check_settings  # raises ConfigError naming the setting

        check_settings(self)
        return self

    # -- end issue 14 ---------------------------------------------------------------------------------
    # the web UI (issue 12): `company-activity serve` / `report`, and the link alerts carry to a run's page
    ui_token: SecretStr | None = Field(
        default=None, description="token every page and API call needs; without it, loopback clients only"
    )
    ui_url: str | None = Field(
        default=None, description="the UI's external URL, e.g. https://activity.example.com"
    )
    ui_hosts: str | None = Field(
        default=None, description="Host names the UI answers to besides loopback (with ui_token)"
    )

    # -- issue 13: the Apache Spark engine (preview) ----------------------------------------------------
    # COMPANY_ACTIVITY_WAREHOUSE=spark:ROOT puts the data (stg.*, analytics.*) in Parquet tables under ROOT;
    # run state (ops.*) then lives in the store named here: a DuckDB file or a postgresql:// URL.
    state: str = Field(default="./data/state.duckdb", description="run-state store when the data is in Spark")
    spark_master: str = Field(default="local[*]", description="Spark master URL")
    spark_conf: str | None = Field(default=None, description="key=value pairs, or a file of them")

    @field_validator("warehouse")
    @classmethod
    def _spark_root(cls, value: str) -> str:
        if value.startswith("spark:") and not value.removeprefix("spark:").strip():
            raise ValueError("spark: needs the tables' root, e.g. spark:./data/tables or spark:abfss://...")
        return value

    @field_validator("state")
    @classmethod
    def _state_is_transactional(cls, value: str) -> str:
        if value.startswith("spark:") or (
            "://" in value and not value.startswith(("postgresql://", "postgres://"))
        ):
            raise ValueError("must be a DuckDB file path or a postgresql:// URL")
        return value

    @field_validator("spark_conf")
    @classmethod
    def _spark_conf_parses(cls, value: str | None) -> str | None:
        from .errors import ConfigError
        from .warehouse.spark.session import parse_conf

        try:
            parse_conf(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def run_state(self) -> str:
        """Where run state (ops.*) lives: the warehouse itself, or ``state`` when the data is in Spark."""
        return self.state if self.warehouse.startswith("spark:") else self.warehouse

    # -- end issue 13 ------------------------------------------------------------------------------------
    # logging
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("crm_path")
    @classmethod
    def _crm_path_has_date(cls, value: str) -> str:
        if "{date}" not in value:
            raise ValueError("must contain the placeholder {date}")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url_is_http(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("volume_crm_baseline", "volume_usage_baseline", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower().replace("-", "_") if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the TOML file, which arrives as init kwargs.
        return (env_settings, init_settings)

    # -- derived values -------------------------------------------------------------------------------
    @property
    def alert_recipients(self) -> list[str]:
        if not self.alert_email_to:
            return []
        return [a.strip() for a in self.alert_email_to.split(",") if a.strip()]

    def require_api_url(self) -> str:
        if not self.api_url:
            raise ConfigError(
                f"{ENV_PREFIX}API_URL is not set: the product-usage API base URL is required "
                "(for a self-contained try-out run `company-activity demo`)"
            )
        return self.api_url


def _setting_name(loc: tuple[int | str, ...], from_file: set[str]) -> str:
    key = str(loc[0]) if loc else "?"
    if key.lower() in from_file:
        return key.lower()
    if key.lower() == "azure_storage_connection_string" or key == "AZURE_STORAGE_CONNECTION_STRING":
        return "AZURE_STORAGE_CONNECTION_STRING"
    return ENV_PREFIX + key.upper()


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read settings from the environment and, if given, a TOML file (the environment wins).

    ``overrides`` win over both (used by the CLI and tests). Raises ConfigError naming the setting: a bad
    value, an unknown ``COMPANY_ACTIVITY_*`` variable or TOML key (with a did-you-mean), a secret given
    twice or a secret file that cannot be read.

    Secrets can come from files: ``COMPANY_ACTIVITY_<NAME>_FILE`` (or ``<name>_file`` in the TOML file)
    names a file holding the value, and ``COMPANY_ACTIVITY_SECRETS_DIR`` a folder of files named after the
    settings (``api_client_secret``, ``smtp_url``, …: systemd's ``$CREDENTIALS_DIRECTORY``, mounted
    container secrets). A value set directly wins over the secrets folder; a value and a ``_FILE`` for the
    same setting is an error.
    """
    env = os.environ
    check_environment(env)
    file_values: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            with path.open("rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {path} is a folder") from None
        except PermissionError:
            raise ConfigError(f"config file {path} cannot be read (permission denied)") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        allowed = set(Settings.model_fields) | {f"{name}_file" for name in secret_fields()}
        for key, value in raw.items():
            k = key.lower()
            if k == "simulator" and isinstance(value, dict):
                continue  # the [simulator] table belongs to `company-activity simulate-api`
            if k not in allowed:
                raise ConfigError(f"config file {path}: unknown setting {key!r}{_did_you_mean(k, allowed)}")
            file_values[k] = value
    file_values = _with_secret_files(file_values, env)
    try:
        settings = Settings(**file_values)
        if overrides:
            merged = settings.model_dump() | given({k: v for k, v in overrides.items() if v is not None})
            settings = Settings.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = _setting_name(tuple(err.get("loc", ())), set(file_values))
            problems.append(f"{name}: {err.get('msg', 'invalid value')}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    return settings


#: variables of the prefix that are not settings: the test suite's own switches
RESERVED_ENV_PREFIXES = (ENV_PREFIX + "TEST_",)
SECRETS_DIR_ENV = ENV_PREFIX + "SECRETS_DIR"


def secret_fields() -> list[str]:
    """The settings that hold secrets (and so accept ``_FILE`` variants), except those with their own."""
    names = []
    for name, field in Settings.model_fields.items():
        if "SecretStr" in str(field.annotation) and f"{name}_file" not in Settings.model_fields:
            names.append(name)
    return names


def known_environment() -> set[str]:
    """Every ``COMPANY_ACTIVITY_*`` variable a setting is read from."""
    names = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    names |= {ENV_PREFIX + name.upper() + "_FILE" for name in secret_fields()}
    names.add(SECRETS_DIR_ENV)
    return names


def check_environment(environ: Mapping[str, str]) -> None:
    """Refuse an unknown ``COMPANY_ACTIVITY_*`` variable, as an unknown TOML key is refused."""
    known = known_environment()
    for key in sorted(given(environ)):
        upper = key.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or upper.startswith(RESERVED_ENV_PREFIXES):
            continue
        raise ConfigError(f"unknown setting {key} in the environment{_did_you_mean(upper, known)}")


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.75)
    if not close and name.upper().startswith(ENV_PREFIX):  # API_PAGESIZE -> API_PAGE_SIZE
        squeezed = {c.replace("_", ""): c for c in candidates}
        match = squeezed.get(name.replace("_", "").upper()) or squeezed.get(name.replace("_", ""))
        close = [match] if match else []
    return f" (did you mean {close[0]}?)" if close else ""


def _read_secret_file(setting: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().rstrip("\r\n")
    except FileNotFoundError:
        raise ConfigError(f"{setting}: the file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{setting}: {path} is a folder, not a file") from None
    except PermissionError:
        raise ConfigError(f"{setting}: the file {path} cannot be read (permission denied)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{setting}: the file {path} cannot be read ({type(exc).__name__})") from None


def _with_secret_files(file_values: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """``file_values`` with the secrets that ``_FILE`` settings and the secrets folder name."""
    values = given(file_values)
    upper_env = {k.upper(): v for k, v in given(environ).items()}
    secrets_dir = upper_env.get(SECRETS_DIR_ENV)
    if secrets_dir is not None and not os.path.isdir(secrets_dir):
        raise ConfigError(f"{SECRETS_DIR_ENV}: {secrets_dir} is not a folder")
    for name in secret_fields():
        env_name = ENV_PREFIX + name.upper()
        env_file = upper_env.get(env_name + "_FILE")
        toml_file = values.pop(f"{name}_file", None)
        direct = env_name in upper_env or name in values
        if env_file is not None:
            if env_name in upper_env:
                raise ConfigError(f"{env_name} and {env_name}_FILE are both set: set one of them")
            values[name] = _read_secret_file(env_name + "_FILE", env_file)
        elif toml_file is not None:
            if direct:
                raise ConfigError(f"{name} and {name}_file are both set: set one of them")
            values[name] = _read_secret_file(f"{name}_file", str(toml_file))
        elif secrets_dir is not None and not direct:
            candidate = os.path.join(secrets_dir, name)
            if os.path.isfile(candidate):
                values[name] = _read_secret_file(f"{SECRETS_DIR_ENV} ({name})", candidate)
    return values
