"""Knowledge chunks handed in by the caller, checked and turned into index rows."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pyarrow as pa

from memory.model import check_agent_id
from memory.retrieval import _layout as lay

DEFAULT_NAMESPACE = "knowledge"
# What decides whether a chunk changed (its timestamp is when it was written, so not that).
COMPARED = ("id", "kind", "agent_id", "namespace", "item_id", "source", "text")


def chunk_rows(chunks: pl.DataFrame | pa.Table) -> pl.DataFrame:
    """Validate a frame of knowledge chunks and turn it into index rows."""
    if isinstance(chunks, pa.Table):
        converted = pl.from_arrow(chunks)
        assert isinstance(converted, pl.DataFrame)
        chunks = converted
    if not isinstance(chunks, pl.DataFrame):
        raise ValueError("chunks must be a polars DataFrame or a pyarrow Table.")
    missing = {"chunk_id", "document", "text"} - set(chunks.columns)
    if missing:
        raise ValueError(f"chunks lacks column(s) {', '.join(sorted(missing))}.")
    frame = chunks.select(
        pl.col("chunk_id").cast(pl.String),
        pl.col("document").cast(pl.String),
        pl.col("text").cast(pl.String),
        (pl.col("namespace").cast(pl.String) if "namespace" in chunks.columns else pl.lit(None))
        .fill_null(DEFAULT_NAMESPACE)
        .alias("namespace"),
        (pl.col("agent_id").cast(pl.String) if "agent_id" in chunks.columns else pl.lit(None))
        .fill_null(lay.SHARED)
        .alias("agent_id"),
    )
    for column in ("chunk_id", "document", "text", "namespace"):
        blank = frame.filter(pl.col(column).is_null() | (pl.col(column).str.strip_chars() == ""))
        if blank.height:
            raise ValueError(f"chunks has {blank.height} row(s) with an empty {column}.")
    for agent in frame.get_column("agent_id").unique().to_list():
        if agent != lay.SHARED:
            check_agent_id(agent)
    if frame.select(pl.struct("agent_id", "chunk_id").is_duplicated().any()).item():
        raise ValueError("chunks has a chunk_id twice for the same agent.")
    now = datetime.now(UTC)
    return frame.select(
        lay.chunk_key(pl.col("agent_id"), pl.col("chunk_id")).alias("id"),
        pl.lit(lay.CHUNK).alias("kind"),
        "agent_id",
        "namespace",
        pl.col("chunk_id").alias("item_id"),
        pl.col("document").alias("source"),
        "text",
        pl.lit(None, pl.Float64).alias("confidence"),
        pl.lit(now).alias("updated_at"),
    ).cast(dict(lay.ROW_SCHEMA))
