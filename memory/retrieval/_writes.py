"""Reading what the index holds, and writing rows to it as one table version."""

from __future__ import annotations

import polars as pl
from lancedb.table import LanceTable

from memory.embedders import Embedder
from memory.retrieval import _layout as lay
from memory.retrieval import _vectors


def rows(table: LanceTable, kind: str) -> pl.DataFrame:
    """Every row of one kind, without vectors."""
    query = table.search().where(f"kind = {lay.quote(kind)}")
    return lay.to_frame(query.select(list(lay.ROW_COLUMNS)).limit(None).to_arrow())


def ids(table: LanceTable, kind: str) -> pl.Series:
    """The row key of every row of one kind."""
    query = table.search().where(f"kind = {lay.quote(kind)}").select(["id"]).limit(None)
    return lay.to_frame(query.to_arrow()).get_column("id")


def write(
    table: LanceTable, embedder: Embedder, upserts: pl.DataFrame, deletes: list[str]
) -> tuple[int, int]:
    """Upsert ``upserts`` (embedding them) and delete the ``deletes`` keys not among them, as
    ONE table version, so no reader sees half a change.

    Returns:
        Rows written and rows deleted.
    """
    if upserts.is_empty() and not deletes:
        return 0, 0
    vectors = _vectors.embed(embedder, upserts.get_column("text").to_list())
    data = lay.to_arrow(upserts, vectors, table.schema)
    merge = table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
    if deletes:
        merge = merge.when_not_matched_by_source_delete(lay.in_list("id", deletes))
    done = merge.execute(data)
    return done.num_inserted_rows + done.num_updated_rows, done.num_deleted_rows
