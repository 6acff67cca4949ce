"""Settings: environment variables (``COMPANY_ACTIVITY_*``), optionally a TOML file; the environment wins.

Settings are read once, validated, and passed down as a :class:`Settings` object; nothing reads the
environment at import time. A bad value raises :class:`~company_activity.errors.ConfigError` naming the
setting (the CLI turns it into exit status 2).
"""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .errors import ConfigError

ENV_PREFIX = "COMPANY_ACTIVITY_"

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
    )

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

    ``overrides`` win over both (used by the CLI and tests). Raises ConfigError naming the setting.
    """
    file_values: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            with path.open("rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        allowed = set(Settings.model_fields)
        for key, value in raw.items():
            k = key.lower()
            if k not in allowed:
                raise ConfigError(f"config file {path}: unknown setting {key!r}")
            file_values[k] = value
    try:
        settings = Settings(**file_values)
        if overrides:
            merged = settings.model_dump() | {k: v for k, v in overrides.items() if v is not None}
            settings = Settings.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = _setting_name(tuple(err.get("loc", ())), set(file_values))
            problems.append(f"{name}: {err.get('msg', 'invalid value')}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    return settings
