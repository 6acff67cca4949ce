"""The Spark session of the engine, and the ``COMPANY_ACTIVITY_SPARK_CONF`` format.

``COMPANY_ACTIVITY_SPARK_CONF`` is either ``key=value`` pairs or the path of a file of them.

- Inline, pairs are separated by new lines, or by a comma or semicolon *followed by the next dotted key*
  (``, spark.x=``): a value may hold commas and semicolons of its own, as lists
  (``spark.jars.packages=a:b:1,c:d:2``) and JDBC URLs (``jdbc:sqlserver://h;databaseName=metastore``,
  ``jdbc:derby:;databaseName=/m;create=true``) do.
- A file (``spark-defaults.conf`` style) has one pair per line, ``key=value`` or ``key value``, and
  ``#`` comments; the value is the rest of the line.

Settings given there win over the engine's defaults below.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: what the engine needs (UTC, TIMESTAMP_NTZ-friendly Parquet, no _SUCCESS markers) and sensible quiet
#: defaults; any of them can be overridden through ``conf``
DEFAULTS: dict[str, str] = {
    "spark.app.name": "company-activity",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.adaptive.enabled": "true",
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.hadoop.parquet.enable.summary-metadata": "false",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
}


#: where inline pairs part: a new line, or a comma or semicolon before the next dotted key and its ``=``
_INLINE_SEPARATOR = re.compile(r"\n|[;,](?=\s*[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)+\s*=)")


def parse_conf(value: str | None) -> dict[str, str]:
    """``key=value`` pairs, or a file of them (see the module doc). Raises ConfigError on a bad pair."""
    if not value or not value.strip():
        return {}
    candidate = Path(os.path.expanduser(value.strip()))
    if "=" not in value and candidate.is_file():
        lines = candidate.read_text(encoding="utf-8").splitlines()
    elif "=" not in value:
        raise ConfigError(
            f"COMPANY_ACTIVITY_SPARK_CONF: {value[:40]!r} is neither key=value pairs nor a file"
        )
    else:
        lines = _INLINE_SEPARATOR.split(value)
    out: dict[str, str] = {}
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(?:=|\s)\s*(.*)$", line)
        if not m or not m.group(2):
            raise ConfigError(f"COMPANY_ACTIVITY_SPARK_CONF: {line[:40]!r} is not key=value")
        out[m.group(1)] = m.group(2).strip()
    return out


def start_session(master: str, conf: Mapping[str, str]) -> SparkSession:
    """A Spark session on ``master`` with the engine's defaults and ``conf`` over them (quiet logs).

    On a local master the Python workers run this process's interpreter (the virtualenv's), unless
    ``PYSPARK_PYTHON`` says otherwise: PySpark's default, the ``python3`` on ``PATH``, may be another
    Python version than the driver's, which Spark refuses at the first Python task. A cluster's executors
    keep their own setting."""
    from pyspark.sql import SparkSession

    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master)
    for key, val in {**DEFAULTS, **conf}.items():
        builder = builder.config(key, val)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(conf.get("spark.log.level", "ERROR"))
    return session
