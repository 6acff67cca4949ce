"""The Apache Spark data engine (preview): ``COMPANY_ACTIVITY_WAREHOUSE=spark:ROOT``.

Installed with ``pip install 'company-activity[spark]'`` (pyspark, pyarrow, sqlglot; a Java 17+ runtime).
Nothing in this package imports pyspark at import time; :class:`SparkEngine` is loaded on first use.
See :mod:`.engine` for the operations and :mod:`.tables` for the layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import SparkEngine

__all__ = ["SparkEngine", "parse_root"]


def parse_root(url: str) -> str | None:
    """``spark:ROOT`` -> ROOT (None when ``url`` is not a Spark URL)."""
    if not url.startswith("spark:"):
        return None
    root = url[len("spark:") :]
    return root or None


def __getattr__(name: str) -> Any:
    if name == "SparkEngine":
        from .engine import SparkEngine

        return SparkEngine
    raise AttributeError(name)
