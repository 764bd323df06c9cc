"""Delta Lake access shared by every domain: read through polars, append atomically.

Reads go through polars (``scan_delta``), never ``DeltaTable.to_pyarrow_*``, which can abort
a short process at exit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date

import polars as pl
import pyarrow.fs as pafs
from deltalake import ColumnProperties, CommitProperties, DeltaTable, WriterProperties
from filelock import FileLock

from agentops_assets.storage.config import Paths


def writer_properties(
    *, unique: Sequence[str] = (), free_text: Sequence[str] = ()
) -> WriterProperties:
    """Parquet settings: zstd, a third smaller than snappy on telemetry text and as fast.

    Args:
        unique: Columns whose values rarely repeat (ids): no dictionary encoding, which would
            be built and thrown away for every page.
        free_text: Long text no query filters on by range: no dictionary and no statistics.
    """
    columns = {name: ColumnProperties(dictionary_enabled=False) for name in unique}
    columns |= {
        name: ColumnProperties(dictionary_enabled=False, statistics_enabled="NONE")
        for name in free_text
    }
    return WriterProperties(
        compression="ZSTD", compression_level=1, column_properties=columns or None
    )


_DEFAULT_WRITER = writer_properties()


def table_exists(uri: str) -> bool:
    """Whether a Delta table lives at ``uri`` (object-store credentials come from the env)."""
    return DeltaTable.is_deltatable(uri)


def scan(uri: str) -> pl.LazyFrame | None:
    """A lazy frame over the table at ``uri``, or ``None`` when it does not exist yet."""
    if not table_exists(uri):
        return None
    return pl.scan_delta(uri)


def append(
    uri: str,
    frame: pl.DataFrame,
    *,
    partition_by: Sequence[str] | None = None,
    metadata: Mapping[str, str] | None = None,
    writer: WriterProperties | None = None,
) -> None:
    """Append ``frame`` as one Delta commit; the table is created on first write.

    A commit either lands whole or not at all, so a crash leaves the table readable.
    """
    if frame.is_empty() and table_exists(uri):
        return
    frame.write_delta(
        uri,
        mode="append",
        delta_write_options={
            "partition_by": list(partition_by) if partition_by else None,
            "commit_properties": CommitProperties(custom_metadata=dict(metadata or {})),
            "writer_properties": writer or _DEFAULT_WRITER,
        },
    )


def overwrite(uri: str, frame: pl.DataFrame, *, metadata: Mapping[str, str] | None = None) -> None:
    """Replace the table's rows with ``frame`` in one commit (older versions stay readable)."""
    frame.write_delta(
        uri,
        mode="overwrite",
        delta_write_options={
            "schema_mode": "overwrite",
            "commit_properties": CommitProperties(custom_metadata=dict(metadata or {})),
            "writer_properties": _DEFAULT_WRITER,
        },
    )


def replace_range(
    uri: str,
    frame: pl.DataFrame,
    *,
    column: str,
    first: date,
    last: date,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Replace the rows whose date ``column`` is in [first, last] with ``frame``, in one commit.

    The table is partitioned by ``column``; only the partitions of the range are rewritten, and
    readers see the old rows or the new ones, never a mix. ``frame`` must lie inside the range.
    """
    outside = frame.filter(~pl.col(column).is_between(first, last))
    if not outside.is_empty():
        raise ValueError(f"{outside.height} rows of the frame lie outside {first}..{last}.")
    options: dict[str, object] = {
        "partition_by": [column],
        "commit_properties": CommitProperties(custom_metadata=dict(metadata or {})),
        "writer_properties": _DEFAULT_WRITER,
    }
    if table_exists(uri):
        options["predicate"] = (
            f"{column} >= '{first.isoformat()}' AND {column} <= '{last.isoformat()}'"
        )
        frame.write_delta(uri, mode="overwrite", delta_write_options=options)
    else:
        frame.write_delta(uri, mode="append", delta_write_options=options)


def list_tables(paths: Paths) -> dict[str, str]:
    """Every Delta table directly under the lake root: name -> URI.

    Works for local folders and object stores alike (pyarrow's filesystems, credentials from
    the usual environment variables).
    """
    filesystem, root = pafs.FileSystem.from_uri(paths.lake_uri)
    children = filesystem.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    folders = sorted(c.base_name for c in children if c.type == pafs.FileType.Directory)
    logs = filesystem.get_file_info([f"{root}/{name}/_delta_log" for name in folders])
    return {
        name: paths.table_uri(name)
        for name, log in zip(folders, logs, strict=True)
        if log.type == pafs.FileType.Directory
    }


@contextmanager
def writer_lock(paths: Paths, name: str) -> Iterator[None]:
    """Serialise writers of one table on this machine (blocks until the lock is free).

    Across machines, Dagster's concurrency pool for lake writers does the same job.
    """
    paths.locks.mkdir(parents=True, exist_ok=True)
    # flock underneath: the kernel releases it when its holder dies, killed or not.
    with FileLock(paths.locks / f"{name}.lock"):
        yield
