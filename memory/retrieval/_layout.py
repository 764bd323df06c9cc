"""The index table's layout: columns, row keys, recorded state, and SQL filters.

One LanceDB table holds facts and knowledge chunks. The state of the index lives on the
``vector`` field's metadata, so every table version (and every tag) describes itself:
which embedder made the vectors, which memory version the facts reflect, and which Delta
table they came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

FACT = "fact"
CHUNK = "chunk"
SHARED = "*"  # agent_id of knowledge chunks every agent may read; never a valid agent id
TAG_PREFIX = "memory-v"

EMBEDDER_KEY = "agentops.embedder"
VERSION_KEY = "agentops.memory_version"
FACTS_TABLE_KEY = "agentops.facts_table_id"
TRAINED_ROWS_KEY = "agentops.vector_index_rows"

# Everything but the vector, in table order: what a search returns and a refresh compares.
ROW_SCHEMA = pl.Schema(
    {
        "id": pl.String,  # "fact/<agent>/<fact_id>" or "chunk/<agent or *>/<chunk_id>"
        "kind": pl.String,
        "agent_id": pl.String,
        "namespace": pl.String,
        "item_id": pl.String,  # fact_id or chunk_id
        "source": pl.String,  # a fact's source trace, a chunk's document
        "text": pl.String,
        "confidence": pl.Float64,
        "updated_at": pl.Datetime("us", "UTC"),
    }
)
ROW_COLUMNS = tuple(ROW_SCHEMA)
HIT_COLUMNS = ("kind", "agent_id", "namespace", "item_id", "source", "text")


def arrow_schema(dim: int, embedder: str) -> pa.Schema:
    """The table schema; the embedder's name is recorded on the vector field."""
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("agent_id", pa.string(), nullable=False),
            pa.field("namespace", pa.string(), nullable=False),
            pa.field("item_id", pa.string(), nullable=False),
            pa.field("source", pa.string()),
            pa.field("text", pa.string(), nullable=False),
            pa.field("confidence", pa.float64()),
            pa.field("updated_at", pa.timestamp("us", tz="UTC")),
            pa.field(
                "vector",
                pa.list_(pa.float32(), dim),
                nullable=False,
                metadata={EMBEDDER_KEY: embedder},
            ),
        ]
    )


@dataclass(frozen=True)
class State:
    """What one version of the index records about itself."""

    embedder: str | None
    dim: int
    memory_version: int | None
    facts_table_id: str | None
    trained_rows: int | None


def read_state(schema: pa.Schema) -> State:
    """The state recorded on a table version's schema."""
    field = schema.field("vector")
    meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
    version = meta.get(VERSION_KEY)
    trained = meta.get(TRAINED_ROWS_KEY)
    return State(
        embedder=meta.get(EMBEDDER_KEY),
        dim=field.type.list_size,
        memory_version=None if version is None else int(version),
        facts_table_id=meta.get(FACTS_TABLE_KEY),
        trained_rows=None if trained is None else int(trained),
    )


def fact_key(agent_id: pl.Expr, fact_id: pl.Expr) -> pl.Expr:
    """Row key of a fact. Agent ids hold no ``/``, so the key splits back unambiguously."""
    return pl.concat_str([pl.lit(f"{FACT}/"), agent_id, pl.lit("/"), fact_id])


def chunk_key(agent_id: pl.Expr, chunk_id: pl.Expr) -> pl.Expr:
    """Row key of a knowledge chunk (``agent_id`` is ``*`` for shared chunks)."""
    return pl.concat_str([pl.lit(f"{CHUNK}/"), agent_id, pl.lit("/"), chunk_id])


def to_arrow(rows: pl.DataFrame, vectors: np.ndarray, schema: pa.Schema) -> pa.Table:
    """Index rows (``ROW_COLUMNS``) and their vectors as a table in the index's schema."""
    dim = schema.field("vector").type.list_size
    table = rows.select(ROW_COLUMNS).to_arrow()
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    columns = [table.column(name).cast(schema.field(name).type) for name in ROW_COLUMNS]
    columns.append(pa.FixedSizeListArray.from_arrays(flat, dim))
    plain = pa.schema([field.remove_metadata() for field in schema])
    return pa.Table.from_arrays(columns, schema=plain)


def quote(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def in_list(column: str, values: Iterable[str]) -> str:
    """``column IN ('a', 'b')``."""
    return f"{column} IN ({', '.join(quote(v) for v in values)})"


def where(
    *,
    agent_id: str | None,
    namespaces: list[str] | None,
    kind: str | None,
    include_shared: bool,
) -> str | None:
    """The SQL filter of a search, or ``None`` for the whole index."""
    parts = []
    if agent_id is not None:
        agents = [agent_id, SHARED] if include_shared else [agent_id]
        parts.append(in_list("agent_id", agents))
    if namespaces is not None:
        parts.append(in_list("namespace", namespaces))
    if kind is not None:
        parts.append(f"kind = {quote(kind)}")
    return " AND ".join(parts) or None


def metadata_update(values: Mapping[str, str]) -> dict[str, object]:
    """An ``update_field_metadata`` argument that sets keys on the vector field."""
    return {"path": "vector", "metadata": dict(values)}


def to_frame(found: pa.Table) -> pl.DataFrame:
    """A LanceDB result as a polars frame."""
    converted = pl.from_arrow(found)
    assert isinstance(converted, pl.DataFrame)
    return converted
