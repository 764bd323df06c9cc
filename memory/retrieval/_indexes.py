"""The table's indexes: made with the table, trained once it is large, kept current by writes."""

from __future__ import annotations

from lancedb.index import FTS, Bitmap, BTree, IvfFlat
from lancedb.table import LanceTable

from memory.retrieval import _layout as lay

VECTOR_INDEX_MIN_ROWS = 5_000
"""An IVF_FLAT index is trained once the table holds this many rows; below that a flat scan
of one agent's rows is about as fast, and training would be redone too often."""
OPTIMIZE_AFTER_ROWS = 2_000
"""A write folds new rows into the indexes once this many are unindexed (searched flat until)."""
RETRAIN_GROWTH = 4
"""The IVF partitions are retrained when the table has grown this many times since training."""


def create_missing(table: LanceTable) -> None:
    """Make the scalar and full-text indexes a new table lacks (another process may have made
    some already)."""
    indexed = {idx.columns[0] for idx in table.list_indices()}
    for column, config in (
        ("id", BTree()),  # merge_insert and deletes by key
        ("agent_id", Bitmap()),  # the prefilter of nearly every search
        ("kind", Bitmap()),
        ("namespace", Bitmap()),
        ("text", FTS()),  # BM25; stems and drops English stop words
    ):
        if column not in indexed:
            table.create_index(column, config=config)


def keep_current(table: LanceTable) -> tuple[bool, dict[str, str]]:
    """After a write: train the vector index when due, fold unindexed rows in when many.

    Returns:
        Whether it optimized, and the metadata to record on the table (empty when nothing
        was trained).
    """
    meta = _train_vector_index(table)
    if _unindexed_rows(table) >= OPTIMIZE_AFTER_ROWS:
        table.optimize()
        return True, meta
    return False, meta


def _train_vector_index(table: LanceTable) -> dict[str, str]:
    """(Re)train the IVF index once the table is large enough or has grown enough since."""
    rows = table.count_rows()
    trained = lay.read_state(table.schema).trained_rows
    has_index = any(idx.columns[0] == "vector" for idx in table.list_indices())
    due = not has_index or bool(trained and rows >= RETRAIN_GROWTH * trained)
    if rows < VECTOR_INDEX_MIN_ROWS or not due:
        return {}
    table.create_index("vector", config=IvfFlat(distance_type="cosine"), replace=True)
    return {lay.TRAINED_ROWS_KEY: str(rows)}


def _unindexed_rows(table: LanceTable) -> int:
    """The most rows either searched index (text, vector) has not folded in yet."""
    names = {idx.columns[0]: idx.name for idx in table.list_indices()}
    unindexed = 0
    for column in ("text", "vector"):
        stats = table.index_stats(names[column]) if column in names else None
        if stats is not None:
            unindexed = max(unindexed, stats.num_unindexed_rows)
    return unindexed
