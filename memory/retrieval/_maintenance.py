"""Maintenance of the index table: compaction, cleanup of old versions, pruning snapshots."""

from __future__ import annotations

from datetime import datetime, timedelta

from lancedb.table import LanceTable

from memory.retrieval import _snapshots

CLEANUP_AFTER = timedelta(days=7)
"""Untagged table versions older than this are removed (LanceDB's own default)."""
_TAG_MARGIN = timedelta(seconds=1)  # clock and timestamp rounding between us and LanceDB


def optimize(table: LanceTable, *, retrain: bool) -> None:
    """Compact, fold unindexed rows in, and remove old versions short of the oldest tag."""
    table.optimize(cleanup_older_than=cleanup_horizon(table), retrain=retrain)


def cleanup_horizon(table: LanceTable, after: timedelta | None = None) -> timedelta:
    """How old a version must be to be removed: ``after`` (default :data:`CLEANUP_AFTER`),
    lengthened to reach no tagged version nor any later one.

    LanceDB refuses (raises) a cleanup that would reach a tagged version, so the cleanup
    stops at the oldest tag; pruning tags is what lets it go further.
    """
    after = CLEANUP_AFTER if after is None else after
    tagged = {info["version"] for info in table.tags.list().values()}
    stamps = [v["timestamp"] for v in table.list_versions() if v["version"] in tagged]
    if not stamps:
        return after
    return max(after, datetime.now() - min(stamps) + _TAG_MARGIN)


def prune(table: LanceTable, *, keep: int) -> list[int]:
    """Forget all but the newest ``keep`` snapshots; returns the memory versions forgotten."""
    gone = _snapshots.memory_versions(table)[:-keep]
    _snapshots.delete(table, gone)
    return gone
