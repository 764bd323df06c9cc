"""Delta Lake access shared by every domain: read through polars, append atomically.

Reads go through polars (``scan_delta``), never ``DeltaTable.to_pyarrow_*``, which can abort
a short process at exit.

Every function takes a table URI: a local path or an object store (``s3://bucket/prefix/t``),
with the settings of :func:`~agentops_assets.storage.config.delta_storage_options`.

Concurrent writers on object storage: a Delta commit is the creation of the log file
``_delta_log/<version>.json``, and it must fail when another writer created that version
first. Local filesystems do this with an atomic create; on S3, delta-rs 1.x uses S3's
conditional writes (``PUT`` with ``If-None-Match: *``, which AWS S3 and compatible servers such
as MinIO and moto support), so the loser of a race gets a conflict, re-reads the log and
retries at the next version (appends never conflict logically, so they always land). This is
chosen over the DynamoDB locking provider, which delta-rs 1.0 removed: it needs no other
service and no table of locks, and works the same on every machine writing to the bucket.
``tests/test_s3_lake.py`` races two processes on one table and checks no commit is lost.
The :func:`writer_lock` below is a separate, local serialisation for read-modify-write jobs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date

import polars as pl
import pyarrow.fs as pafs
from deltalake import ColumnProperties, CommitProperties, DeltaTable, WriterProperties
from deltalake.exceptions import CommitFailedError
from filelock import FileLock

from agentops_assets.storage.config import Paths, delta_storage_options


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
# delta-rs retries version conflicts itself; these attempts cover the creation race only.
_APPEND_ATTEMPTS = 3


def table_exists(uri: str) -> bool:
    """Whether a Delta table lives at ``uri`` (object-store credentials come from the env)."""
    return DeltaTable.is_deltatable(uri, storage_options=delta_storage_options(uri) or None)


def open_table(uri: str, *, version: int | None = None) -> DeltaTable:
    """The Delta table at ``uri`` (at ``version``, else the latest), for history and
    maintenance; read rows with :func:`scan` or :func:`read`."""
    return DeltaTable(uri, version=version, storage_options=delta_storage_options(uri) or None)


def scan(uri: str) -> pl.LazyFrame | None:
    """A lazy frame over the table at ``uri``, or ``None`` when it does not exist yet."""
    if not table_exists(uri):
        return None
    return scan_existing(uri)


def scan_existing(uri: str) -> pl.LazyFrame:
    """A lazy frame over the table at ``uri``, which must exist (one request fewer than
    :func:`scan` on object storage)."""
    return pl.scan_delta(uri, storage_options=delta_storage_options(uri) or None)


def read(uri: str, *, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """Every row of the table at ``uri`` (``columns`` only, when given); it must exist."""
    frame = scan_existing(uri)
    return (frame.select(list(columns)) if columns is not None else frame).collect()


def append(
    uri: str,
    frame: pl.DataFrame,
    *,
    partition_by: Sequence[str] | None = None,
    metadata: Mapping[str, str] | None = None,
    writer: WriterProperties | None = None,
) -> None:
    """Append ``frame`` as one Delta commit; the table is created on first write.

    A commit either lands whole or not at all, so a crash leaves the table readable. Racing
    appends all land: delta-rs retries a commit that lost the race for its version. Two
    writers that both create the table are the one conflict it does not retry (the loser's
    first commit carries the table's metadata, which the winner already wrote), so the loser
    appends again, now to the table that exists.
    """
    if frame.is_empty() and table_exists(uri):
        return
    for attempt in range(_APPEND_ATTEMPTS):
        try:
            frame.write_delta(
                uri,
                mode="append",
                storage_options=delta_storage_options(uri) or None,
                delta_write_options={
                    "partition_by": list(partition_by) if partition_by else None,
                    "commit_properties": CommitProperties(custom_metadata=dict(metadata or {})),
                    "writer_properties": writer or _DEFAULT_WRITER,
                },
            )
            return
        except CommitFailedError:
            # Nothing of a failed commit is visible; its data files are left for vacuum.
            if attempt + 1 == _APPEND_ATTEMPTS:
                raise


def overwrite(uri: str, frame: pl.DataFrame, *, metadata: Mapping[str, str] | None = None) -> None:
    """Replace the table's rows with ``frame`` in one commit (older versions stay readable)."""
    frame.write_delta(
        uri,
        mode="overwrite",
        storage_options=delta_storage_options(uri) or None,
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
    storage = delta_storage_options(uri) or None
    predicate = f"{column} >= '{first.isoformat()}' AND {column} <= '{last.isoformat()}'"
    for attempt in range(_APPEND_ATTEMPTS):
        exists = table_exists(uri)
        try:
            frame.write_delta(
                uri,
                mode="overwrite" if exists else "append",
                storage_options=storage,
                delta_write_options=options | ({"predicate": predicate} if exists else {}),
            )
            return
        except CommitFailedError:
            # Only the creation race is retried (see append); the table exists now.
            if exists or attempt + 1 == _APPEND_ATTEMPTS:
                raise


def list_tables(paths: Paths) -> dict[str, str]:
    """Every Delta table directly under the lake root: name -> URI.

    Works for local folders and object stores alike: pyarrow's filesystems read the same
    environment variables as :func:`~agentops_assets.storage.config.delta_storage_options`
    (``AWS_ENDPOINT_URL`` included). On object storage a "folder" is a key prefix; a table is
    a prefix holding ``_delta_log/``.
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

    A file lock under the local home, whatever the lake's URI. Across machines, Dagster's
    concurrency pool for lake writers does the same job; concurrent commits themselves are
    safe without it (see the module docstring), this only orders read-modify-write jobs.
    """
    paths.locks.mkdir(parents=True, exist_ok=True)
    # flock underneath: the kernel releases it when its holder dies, killed or not.
    with FileLock(paths.locks / f"{name}.lock"):
        yield
