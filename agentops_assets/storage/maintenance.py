"""Lake and index housekeeping: compact small files, remove what no version needs any more.

FinOps partitions are rewritten every hour and every index refresh tags a LanceDB snapshot,
so both stores grow without bound unless something removes old files. ``run_maintenance``
does it for every Delta table of the lake and every LanceDB table of the retrieval index:

* Delta: ``optimize.compact()`` then ``vacuum`` of files no version within the retention
  (``delta_vacuum_retention_hours``, Delta's own default of 168 h) still reads.
* LanceDB: ``memory-v{N}`` tags are pruned (the newest ``lance_keep_latest`` tags stay, and
  so does every tag younger than ``lance_snapshot_max_age_days``), then ``optimize`` compacts
  and removes untagged versions older than that age. LanceDB refuses to clean a tagged
  version, so the cleanup never reaches past the oldest tag that stays.

Each table is handled under its writer lock, so maintenance never races a writer on this
machine. The policy lives in ``policies/maintenance.yaml``.

The lake and the index may be on object storage (``AGENTOPS_LAKE_URI``, ``AGENTOPS_INDEX_URI``):
tables are found by listing (pyarrow for Delta, LanceDB's own listing for the index) and
opened with the settings of :mod:`agentops_assets.storage.config`. Compaction and vacuum are
Delta commits like any other, so on S3 they are as safe against a writer on another machine
as an append is (conditional writes; a compaction that loses the race fails and is retried by
the next run). There the local writer lock only orders this machine's writers.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import lancedb
import pyarrow.fs as pafs
import yaml

from agentops_assets.storage.config import Paths, lance_storage_options
from agentops_assets.storage.lake import list_tables, open_table, writer_lock
from memory.retrieval._lock import exclusive, local_path
from memory.retrieval._maintenance import cleanup_horizon

if TYPE_CHECKING:
    from lancedb._lancedb import OptimizeStats

POLICY_FILE = "maintenance.yaml"
DELTA_MIN_RETENTION_HOURS = 168  # Delta's default delta.deletedFileRetentionDuration
TAG_PREFIX = "memory-v"


class MaintenancePolicyError(ValueError):
    """The maintenance policy file holds a value that cannot be used."""


@dataclass(frozen=True)
class MaintenancePolicy:
    """How much history maintenance keeps.

    Attributes:
        delta_vacuum_retention_hours: Files no Delta version of this age reads are removed.
        delta_enforce_retention: Refuse a retention shorter than Delta's minimum (168 h).
        lance_snapshot_max_age_days: Snapshot tags and untagged versions older than this go.
        lance_keep_latest: The newest tags kept whatever their age (at least 1).
    """

    delta_vacuum_retention_hours: float = DELTA_MIN_RETENTION_HOURS
    delta_enforce_retention: bool = True
    lance_snapshot_max_age_days: float = 30
    lance_keep_latest: int = 3

    def __post_init__(self) -> None:
        _check_number("delta_vacuum_retention_hours", self.delta_vacuum_retention_hours)
        _check_number("lance_snapshot_max_age_days", self.lance_snapshot_max_age_days)
        if not isinstance(self.delta_enforce_retention, bool):
            raise MaintenancePolicyError(
                "delta_enforce_retention must be true or false, "
                f"got {self.delta_enforce_retention!r}."
            )
        keep = self.lance_keep_latest
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise MaintenancePolicyError(
                f"lance_keep_latest must be a whole number of at least 1, got {keep!r}."
            )
        short = self.delta_vacuum_retention_hours < DELTA_MIN_RETENTION_HOURS
        if short and self.delta_enforce_retention:
            raise MaintenancePolicyError(
                f"delta_vacuum_retention_hours {self.delta_vacuum_retention_hours} is below "
                f"Delta's minimum of {DELTA_MIN_RETENTION_HOURS}; set "
                "delta_enforce_retention: false to allow it."
            )


def _check_number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise MaintenancePolicyError(f"{name} must be a number of at least 0, got {value!r}.")


def load_policy(folder: Path) -> MaintenancePolicy:
    """The policy in ``folder/maintenance.yaml``; defaults for a missing file or key."""
    path = folder / POLICY_FILE
    if not path.exists():
        return MaintenancePolicy()
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise MaintenancePolicyError(f"{path} must hold a mapping of settings.")
    known = set(MaintenancePolicy.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise MaintenancePolicyError(
            f"{path}: unknown setting(s) {', '.join(map(str, unknown))}; "
            f"expected some of {', '.join(sorted(known))}."
        )
    return MaintenancePolicy(**raw)


@dataclass(frozen=True)
class TableReport:
    """What maintenance did to one table."""

    store: str  # "delta" or "lance"
    table: str
    files_removed: int = 0  # by compaction
    files_added: int = 0  # by compaction
    files_vacuumed: int = 0  # Delta files no retained version reads
    versions_removed: int = 0  # LanceDB versions cleaned up
    bytes_freed: int = 0
    snapshots_pruned: tuple[str, ...] = ()


@dataclass(frozen=True)
class MaintenanceReport:
    """Every table's report, with totals."""

    tables: list[TableReport] = field(default_factory=list)

    @property
    def files_compacted(self) -> int:
        return sum(t.files_removed for t in self.tables)

    @property
    def files_vacuumed(self) -> int:
        return sum(t.files_vacuumed for t in self.tables)

    @property
    def bytes_freed(self) -> int:
        return sum(t.bytes_freed for t in self.tables)

    @property
    def snapshots_pruned(self) -> int:
        return sum(len(t.snapshots_pruned) for t in self.tables)


def run_maintenance(
    paths: Paths,
    policy: MaintenancePolicy | None = None,
    *,
    log: Callable[[str], None] = lambda _: None,
) -> MaintenanceReport:
    """Compact and vacuum every Delta table, then prune and optimize every LanceDB table."""
    policy = policy or load_policy(paths.policy_file(POLICY_FILE).parent)
    reports = []
    for name, uri in list_tables(paths).items():
        log(f"delta table {name}: compact and vacuum")
        with writer_lock(paths, name):
            reports.append(maintain_delta(name, uri, policy))
    for name in lance_tables(paths.index_uri):
        log(f"lance table {name}: prune snapshots and optimize")
        with exclusive(paths.index_uri, name):
            reports.append(maintain_lance(paths.index_uri, name, policy))
    return MaintenanceReport(reports)


def maintain_delta(name: str, uri: str, policy: MaintenancePolicy) -> TableReport:
    """Compact the table at ``uri``, then vacuum it; hold its writer lock around the call."""
    table = open_table(uri)
    metrics = table.optimize.compact()
    options = {
        "retention_hours": policy.delta_vacuum_retention_hours,
        "enforce_retention_duration": policy.delta_enforce_retention,
    }
    doomed = table.vacuum(dry_run=True, **options)
    sizes = _file_sizes(uri, doomed)
    removed = table.vacuum(dry_run=False, **options)
    return TableReport(
        store="delta",
        table=name,
        files_removed=int(metrics.get("numFilesRemoved", 0)),
        files_added=int(metrics.get("numFilesAdded", 0)),
        files_vacuumed=len(removed),
        bytes_freed=sum(sizes.get(path, 0) for path in removed),
    )


def _file_sizes(uri: str, files: list[str]) -> dict[str, int]:
    """Sizes of the files (relative to the table at ``uri``) that exist now."""
    if not files:
        return {}
    filesystem, root = pafs.FileSystem.from_uri(uri)  # S3 settings from the environment
    infos = filesystem.get_file_info([f"{root}/{unquote(path)}" for path in files])
    return {
        path: info.size or 0
        for path, info in zip(files, infos, strict=True)
        if info.type == pafs.FileType.File
    }


def lance_tables(uri: str | os.PathLike[str]) -> list[str]:
    """The tables of the LanceDB database at ``uri`` (a folder or an object-store URI); none
    when the database does not exist yet."""
    location = os.fspath(uri)
    folder = local_path(location)
    if folder is not None and not folder.is_dir():
        return []  # connecting would create the folder
    database = lancedb.connect(location, storage_options=lance_storage_options(location) or None)
    names: list[str] = []
    token = None
    while True:
        page = database.list_tables(page_token=token)
        names.extend(page.tables)
        token = page.page_token
        if not token:
            return sorted(names)


def maintain_lance(
    uri: str | os.PathLike[str], name: str, policy: MaintenancePolicy
) -> TableReport:
    """Prune old snapshot tags, then compact and clean up; hold the index writer lock.

    Args:
        uri: The LanceDB database: a local folder or an object-store URI.
        name: The table.
        policy: How much history to keep.
    """
    location = os.fspath(uri)
    options = lance_storage_options(location) or None
    table = lancedb.connect(location, storage_options=options).open_table(name)
    max_age = timedelta(days=policy.lance_snapshot_max_age_days)
    pruned = prune_tags(table, keep_latest=policy.lance_keep_latest, max_age=max_age)
    stats = asyncio.run(_optimize(location, name, cleanup_horizon(table, max_age)))
    return TableReport(
        store="lance",
        table=name,
        files_removed=stats.compaction.files_removed,
        files_added=stats.compaction.files_added,
        versions_removed=stats.prune.old_versions_removed,
        bytes_freed=stats.prune.bytes_removed,
        snapshots_pruned=tuple(pruned),
    )


async def _optimize(uri: str, name: str, older_than: timedelta) -> OptimizeStats:
    """``optimize`` through the async API, the one that returns its figures."""
    database = await lancedb.connect_async(uri, storage_options=lance_storage_options(uri) or None)
    table = await database.open_table(name)
    try:
        return await table.optimize(cleanup_older_than=older_than)
    finally:
        table.close()


def prune_tags(table: lancedb.table.Table, *, keep_latest: int, max_age: timedelta) -> list[str]:
    """Delete ``memory-v{N}`` tags older than ``max_age``, except the ``keep_latest`` newest.

    A tag's age is that of the table version it names. Other tags are never touched.

    Returns:
        The deleted tags, oldest first.
    """
    stamps = {v["version"]: v["timestamp"] for v in table.list_versions()}
    tagged = sorted(
        (int(tag[len(TAG_PREFIX) :]), tag, info["version"])
        for tag, info in table.tags.list().items()
        if tag.startswith(TAG_PREFIX) and tag[len(TAG_PREFIX) :].isdigit()
    )
    cutoff = datetime.now() - max_age  # LanceDB reports naive local times
    doomed = [
        tag
        for _, tag, version in tagged[:-keep_latest]
        if stamps.get(version, datetime.min) < cutoff
    ]
    for tag in doomed:
        table.tags.delete(tag)
    return doomed
