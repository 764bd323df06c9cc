"""Search plumbing: candidate lists to fused, materialised hits."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
from lancedb.table import LanceTable

from memory.retrieval import _layout as lay
from memory.retrieval.results import Hit

RRF_K = 60  # reciprocal rank fusion constant, as in the RRF paper and LanceDB's reranker
CANDIDATE = pl.Schema({"_rowid": pl.UInt64, "score": pl.Float64})


def to_frame(found: pa.Table) -> pl.DataFrame:
    """A LanceDB result as a polars frame."""
    converted = pl.from_arrow(found)
    assert isinstance(converted, pl.DataFrame)
    return converted


def fuse(lists: list[pl.DataFrame], k: int) -> pl.DataFrame:
    """Reciprocal rank fusion: each list adds ``1 / (RRF_K + rank)``; ties keep list order.

    Plain Python: the lists hold a few dozen rows, too few for a data frame to pay off.
    """
    scores: dict[int, float] = {}
    for found in lists:
        for rank, row_id in enumerate(found.get_column("_rowid").to_list(), start=1):
            scores[row_id] = scores.get(row_id, 0.0) + 1.0 / (RRF_K + rank)
    best = sorted(scores.items(), key=lambda item: -item[1])[:k]  # stable: ties keep order
    return pl.DataFrame(best, schema=CANDIDATE, orient="row")


def materialize(table: LanceTable, best: pl.DataFrame) -> pl.DataFrame:
    """The hit columns of the winning rows, in their order (read only for those k rows)."""
    if best.is_empty():
        return best.with_columns(*(pl.lit(None, pl.String).alias(c) for c in lay.HIT_COLUMNS))
    rows = table.take_row_ids(best.get_column("_rowid").to_list()).with_row_id()
    found = to_frame(rows.select(list(lay.HIT_COLUMNS)).to_arrow())
    return best.join(found, on="_rowid", how="inner", maintain_order="left")


def hits(rows: pl.DataFrame, memory_version: int | None) -> list[Hit]:
    """Materialised rows as ``Hit`` values (a shared chunk's agent is ``None``)."""
    found = []
    for row in rows.select(*lay.HIT_COLUMNS, "score").iter_rows(named=True):
        agent = row["agent_id"]
        found.append(
            Hit(
                id=row["item_id"],
                kind=row["kind"],
                agent_id=None if agent == lay.SHARED else agent,
                namespace=row["namespace"],
                content=row["text"],
                score=float(row["score"]),
                memory_version=memory_version,
                source=row["source"],
            )
        )
    return found
