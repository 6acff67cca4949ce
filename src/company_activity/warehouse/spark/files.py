"""Partition directories on any Hadoop file system (local, abfss://, s3a://, ...), through Spark's JVM.

A partition is replaced by a swap: the new files are written under ``ROOT/_tmp/`` (ignored by readers:
Spark and Hive skip names starting with ``_``), then the old directory is moved aside and the new one
moved in, then the old one deleted. A crash before the swap leaves the previous partition as it was (the
leftover under ``_tmp`` is removed by :meth:`Files.clean_tmp`); the window between the two renames is a
rename long. On object stores without atomic rename (s3a) the swap is a copy: use a committer-backed
catalog (Delta/Iceberg) there, see the README.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class Files:
    def __init__(self, spark: SparkSession, root: str) -> None:
        jvm: Any = spark.sparkContext._jvm
        self._jvm = jvm
        hconf = spark.sparkContext._jsc.hadoopConfiguration()
        self.root = root.rstrip("/")
        self._fs = jvm.org.apache.hadoop.fs.Path(self.root).getFileSystem(hconf)

    def path(self, *parts: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path("/".join([self.root, *parts]))

    def exists(self, *parts: str) -> bool:
        return bool(self._fs.exists(self.path(*parts)))

    def qualified(self, *parts: str) -> str:
        """The full URI of a path under ROOT (what Spark and pyarrow are given)."""
        return str(self._fs.makeQualified(self.path(*parts)).toString())

    def new_tmp(self, kind: str) -> str:
        """A fresh directory name under ``_tmp`` (relative to ROOT)."""
        return f"_tmp/{kind}-{uuid.uuid4().hex}"

    def children(self, *parts: str) -> list[str]:
        """Names of the subdirectories of a directory (empty if it does not exist)."""
        p = self.path(*parts)
        if not self._fs.exists(p):
            return []
        return sorted(str(s.getPath().getName()) for s in self._fs.listStatus(p) if s.isDirectory())

    def files(self, *parts: str) -> list[str]:
        """Names of the plain files of a directory, sorted (empty if it does not exist)."""
        p = self.path(*parts)
        if not self._fs.exists(p):
            return []
        return sorted(str(s.getPath().getName()) for s in self._fs.listStatus(p) if s.isFile())

    def swap_in(self, new: str, target: str) -> None:
        """Make the directory ``new`` (under ROOT) the directory ``target``, replacing what was there."""
        target_path = self.path(target)
        parent = target_path.getParent()
        if not self._fs.exists(parent):
            self._fs.mkdirs(parent)
        old = self.path(self.new_tmp("old"))
        had_old = bool(self._fs.exists(target_path))
        if had_old:
            self._fs.mkdirs(old.getParent())
            if not self._fs.rename(target_path, old):
                raise OSError(f"could not move {target} aside")
        if not self._fs.rename(self.path(new), target_path):
            if had_old:
                self._fs.rename(old, target_path)
            raise OSError(f"could not move {new} to {target}")
        if had_old:
            self._fs.delete(old, True)

    def mkdirs(self, rel: str) -> None:
        self._fs.mkdirs(self.path(rel))

    def delete(self, rel: str) -> None:
        p = self.path(rel)
        if self._fs.exists(p):
            self._fs.delete(p, True)

    def clean_tmp(self) -> None:
        """Remove what crashed writes left under ``_tmp`` (call when no other writer runs)."""
        self.delete("_tmp")
