"""The composition root: settings -> the resources a run uses. Nothing else constructs them.

:class:`App` opens the warehouse (connects and migrates it), the lake, the alert sinks, and makes the API
client on first use (one token, one rate limit, one retry budget per process). From the warehouse it
makes the two stores: the run-state store (:class:`~.state.RunStateStore`, every ``ops.*`` read and
write) and the data engine (:class:`~.warehouse.engine.SqlEngine`, ``stg.*`` and ``analytics.*``).
Today both live in the one warehouse database; a data engine apart from the state store (issue 13) is
wired here and nowhere else. Read-only commands (``status``, ``runs``, ``serve``) do not come here: they
open the warehouse read-only themselves and never migrate it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import httpx

from .alerts import AlertSink
from .alerts.factory import sinks_from_settings
from .config import Settings
from .failures import storage_errors
from .preflight import setting_origin
from .redact import register_secret, secrets_from_settings
from .run.context import Resources
from .run.vocab import config_file_in_use
from .sources.usage_api import RetryPolicy, UsageApiClient
from .state import RunStateStore
from .stopping import StopSignal
from .storage import Lake, open_lake_for
from .tls import api_http_client, warn_insecure
from .warehouse import Warehouse, connect
from .warehouse.engine import DataEngine, SqlEngine
from .warehouse.spark import parse_root

if TYPE_CHECKING:
    from .warehouse.spark.adapter import SparkDataEngine


class App:
    """The resources of one process's runs over one warehouse, one lake and one product-usage API."""

    def __init__(
        self,
        settings: Settings,
        *,
        warehouse: Warehouse | None = None,
        lake: Lake | None = None,
        client: UsageApiClient | None = None,
        sinks: Sequence[AlertSink] | None = None,
        stop: StopSignal | None = None,
    ):
        self.settings = settings
        for secret in secrets_from_settings(settings):
            register_secret(secret)
        #: the run's one stop signal (SIGINT/SIGTERM via the CLI, and the run deadline)
        self.stop = stop or StopSignal(deadline_seconds=settings.run_deadline)
        with storage_errors("warehouse"):
            self.wh = warehouse or connect(
                settings.run_state,  # issue 13: the run-state store apart when the data is in Spark
                lock_timeout=settings.lock_timeout,
                duckdb_memory_limit=settings.duckdb_memory_limit,
            )
            self.schema_applied: list[int] = self.wh.init_schema()
        warn_insecure(settings)  # a warning on every run when plain text is allowed
        with storage_errors("lake"):
            self.lake = lake or open_lake_for(settings)  # identity / SAS / key / connection string
        self._client = client
        self._http: httpx.Client | None = None
        self._client_lock = threading.Lock()
        self.sinks: list[AlertSink] = list(sinks) if sinks is not None else sinks_from_settings(settings)
        self.state = RunStateStore(self.wh)
        self.engine: DataEngine = SqlEngine(self.wh)
        self._spark: SparkDataEngine | None = None
        spark_root = parse_root(settings.warehouse)
        if spark_root is not None:  # issue 13: the data in Parquet tables, run state in self.wh
            self.engine = self._spark = _spark_engine(settings, spark_root, self.wh)
        self.resources = Resources(
            settings, self.state, self.engine, self.lake, self.client, self.stop, self.today
        )

    def today(self) -> date:
        return self.settings.today or datetime.now(UTC).date()

    def client(self) -> UsageApiClient:
        """The run's one API client, made on first use."""
        with self._client_lock:
            if self._client is None:
                s = self.settings
                self._http = api_http_client(
                    s
                )  # verified TLS (+ API_CA_FILE), proxies, whole-request deadline
                self._client = UsageApiClient(
                    s.require_api_url(),
                    stop=self.stop,
                    client_id=s.api_client_id,
                    client_secret=s.api_client_secret.get_secret_value() if s.api_client_secret else None,
                    api_key=s.api_key.get_secret_value() if s.api_key else None,
                    http=self._http,
                    page_size=s.api_page_size,
                    timeout=s.api_timeout,
                    rate_limit=s.api_rate_limit,
                    rate_floor=s.api_rate_floor,  # issue 9: AIMD floor
                    max_pages_per_day=s.api_max_pages_per_day,  # issue 9: page cap
                    # issue 23: an unreachable API is named with where its URL was configured
                    url_origin=setting_origin("api_url", s.api_url, config_file_in_use()),
                    retry=RetryPolicy(
                        max_attempts=s.api_max_attempts,
                        backoff_initial=s.api_backoff_initial,
                        backoff_max=s.api_backoff_max,
                        retry_after_floor=s.api_retry_after_floor,
                        budget_seconds=s.api_retry_budget,
                    ),
                )
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._http is not None:
            self._http.close()
        if self._spark is not None:
            self._spark.close()
        self.wh.close()


def _spark_engine(settings: Settings, root: str, state: Warehouse) -> SparkDataEngine:
    """The Spark data engine of ``spark:ROOT`` (pyspark imported here, on first use only)."""
    from pyspark.sql import SparkSession

    from .warehouse.spark.adapter import SparkDataEngine
    from .warehouse.spark.engine import SparkEngine
    from .warehouse.spark.session import parse_conf

    with storage_errors("warehouse"):
        active = SparkSession.getActiveSession()  # a session of this process (tests): reused, not stopped
        conf = parse_conf(settings.spark_conf)
        spark = SparkEngine(root, master=settings.spark_master, conf=conf, session=active)
        spark.clean_tmp()
    return SparkDataEngine(spark, state)
