"""Knowledge chunks handed in by the caller: checked, turned into index rows, and written."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import polars as pl
import pyarrow as pa
from lancedb.table import LanceTable

from memory.embedders import Embedder
from memory.model import check_agent_id
from memory.retrieval import _changes as ch
from memory.retrieval import _indexes, _writes
from memory.retrieval import _layout as lay
from memory.retrieval.results import RefreshResult

DEFAULT_NAMESPACE = "knowledge"
# What decides whether a chunk changed (its timestamp is when it was written, so not that).
COMPARED = ("id", "kind", "agent_id", "namespace", "item_id", "source", "text")


def chunk_rows(chunks: pl.DataFrame | pa.Table) -> pl.DataFrame:
    """Validate a frame of knowledge chunks and turn it into index rows."""
    frame = _columns(chunks)
    _check(frame)
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


def _columns(chunks: pl.DataFrame | pa.Table) -> pl.DataFrame:
    """The chunk columns as strings, with the optional ones filled with their defaults."""
    if isinstance(chunks, pa.Table):
        converted = pl.from_arrow(chunks)
        assert isinstance(converted, pl.DataFrame)
        chunks = converted
    if not isinstance(chunks, pl.DataFrame):
        raise ValueError("chunks must be a polars DataFrame or a pyarrow Table.")
    missing = {"chunk_id", "document", "text"} - set(chunks.columns)
    if missing:
        raise ValueError(f"chunks lacks column(s) {', '.join(sorted(missing))}.")
    return chunks.select(
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


def _check(frame: pl.DataFrame) -> None:
    """Refuse blank values, invalid agent ids and a chunk id twice for one agent."""
    for column in ("chunk_id", "document", "text", "namespace"):
        blank = frame.filter(pl.col(column).is_null() | (pl.col(column).str.strip_chars() == ""))
        if blank.height:
            raise ValueError(f"chunks has {blank.height} row(s) with an empty {column}.")
    for agent in frame.get_column("agent_id").unique().to_list():
        if agent != lay.SHARED:
            check_agent_id(agent)
    if frame.select(pl.struct("agent_id", "chunk_id").is_duplicated().any()).item():
        raise ValueError("chunks has a chunk_id twice for the same agent.")


def write_chunks(
    table: LanceTable,
    embedder: Embedder,
    rows: pl.DataFrame,
    *,
    scope: set[str] | Literal["all"] | None,
) -> RefreshResult:
    """Write chunk ``rows`` and delete held chunks in ``scope`` that ``rows`` lacks: none
    (``None``), those of these documents, or ``"all"``.

    Call it holding the writer lock; ``seconds`` is left at 0 for the caller to fill in.
    """
    held = _writes.rows(table, lay.CHUNK)
    if scope is None:  # upsert: compare with the same chunks, delete nothing
        held = held.join(rows.select("id"), on="id")
    elif scope != "all":
        held = held.filter(pl.col("source").is_in(sorted(scope)))
    work = ch.diff(rows, held, compare=COMPARED)
    upserted, deleted = _writes.write(table, embedder, work.upserts, work.deletes)
    optimized, meta = _indexes.keep_current(table)
    if meta:
        table.update_field_metadata(lay.metadata_update(meta))
    # No tag moves: the snapshot of the current memory version keeps the chunks it had.
    memory_version = lay.read_state(table.schema).memory_version
    return RefreshResult(
        "chunks", memory_version, memory_version, upserted, deleted, optimized, 0.0, None,
        table.version,
    )  # fmt: skip
