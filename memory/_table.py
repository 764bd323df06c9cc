"""The one Delta table behind a memory store: layout, reads through polars, history, merge.

Reads go through polars (``pl.scan_delta`` on a loaded ``DeltaTable``), never
``to_pyarrow_*``, which can abort a short process at exit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pyarrow as pa
from deltalake import ColumnProperties, CommitProperties, DeltaTable, WriterProperties
from deltalake.exceptions import DeltaError, TableNotFoundError

from memory.errors import VersionVacuumedError

PARTITION = "agent_id"
KEY = ("agent_id", "fact_id")
VALUE_COLUMNS = (
    "namespace",
    "content",
    "metadata",
    "source",
    "confidence",
    "created_at",
    "updated_at",
)
COLUMNS = (*KEY, *VALUE_COLUMNS)
# What a commit compares to decide whether a fact changed (timestamps follow from changes).
COMPARED = ("namespace", "content", "metadata", "source", "confidence")

_TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        pa.field("agent_id", pa.string(), nullable=False),
        pa.field("fact_id", pa.string(), nullable=False),
        pa.field("namespace", pa.string(), nullable=False),
        pa.field("content", pa.string(), nullable=False),
        pa.field("metadata", pa.string(), nullable=False),  # a JSON object
        pa.field("source", pa.string()),
        pa.field("confidence", pa.float64()),
        pa.field("created_at", _TS, nullable=False),
        pa.field("updated_at", _TS, nullable=False),
    ]
)
POLARS_SCHEMA = pl.Schema(
    {
        "agent_id": pl.String,
        "fact_id": pl.String,
        "namespace": pl.String,
        "content": pl.String,
        "metadata": pl.String,
        "source": pl.String,
        "confidence": pl.Float64,
        "created_at": pl.Datetime("us", "UTC"),
        "updated_at": pl.Datetime("us", "UTC"),
    }
)
SOURCE_SCHEMA = pl.Schema({**POLARS_SCHEMA, "_op": pl.String})

TABLE_CONFIGURATION = {
    # A retrieval index refreshes incrementally from the change data feed.
    "delta.enableChangeDataFeed": "true",
    # Statistics only where a reader filters; free text would bloat every checkpoint.
    "delta.dataSkippingStatsColumns": "agent_id,fact_id,namespace,confidence,created_at,updated_at",
    # Delta's default, stated on purpose. delta-rs lists the whole _delta_log on local disk
    # several times a commit (1-3 ms per listing per 1,000 commit files), so a longer log makes
    # every operation slower; vacuum (7 days by default) already limits time travel, and the
    # long-term record of who changed what is the audit ledger, not this log.
    "delta.logRetentionDuration": "interval 30 days",
}
_FREE_TEXT = ColumnProperties(dictionary_enabled=False, statistics_enabled="NONE")
WRITER = WriterProperties(
    compression="ZSTD",
    compression_level=1,
    column_properties={"content": _FREE_TEXT, "metadata": _FREE_TEXT, "source": _FREE_TEXT},
)

# Keys of the Delta commit's custom metadata. Prefixed, so they never collide with the
# fields Delta itself writes at the top level of commitInfo.
KIND = "memory.kind"
AGENT = "memory.agent_id"
MESSAGE = "memory.message"
AUTHOR = "memory.author"
CYCLE = "memory.cycle_id"
EVENT_TIME = "memory.event_time"  # when what the commit records happened (ISO 8601, UTC)
APPROVER = "memory.approved_by"
ADDED = "memory.added"
UPDATED = "memory.updated"
DELETED = "memory.deleted"
ROLLED_BACK_TO = "memory.rolled_back_to"
REVERTED = "memory.reverted"
COMMIT_ID = "memory.commit_id"  # lets a writer recognise its own commit in the log

# Compaction packs files smaller than this; larger ones are never rewritten by it, so one
# compaction rewrites at most about this many bytes however large the agent's memory grows.
COMPACT_TARGET_BYTES = 1 << 20


def open_table(
    uri: str, storage_options: Mapping[str, str] | None, version: int | None = None
) -> DeltaTable | None:
    """The table at ``uri`` (at ``version``, else the latest), or ``None`` if there is none."""
    try:
        return DeltaTable(uri, version=version, storage_options=_options(storage_options))
    except TableNotFoundError:
        return None


def create_table(uri: str, storage_options: Mapping[str, str] | None) -> DeltaTable:
    """Create the facts table, or open it when a concurrent writer created it first."""
    try:
        return DeltaTable.create(
            uri,
            SCHEMA,
            mode="error",
            partition_by=[PARTITION],
            name="memory_facts",
            description="Agent memory: one row per (agent_id, fact_id); versions are commits.",
            configuration=TABLE_CONFIGURATION,
            storage_options=_options(storage_options),
            commit_properties=CommitProperties(custom_metadata={KIND: "create"}),
        )
    except (DeltaError, OSError):
        table = open_table(uri, storage_options)
        if table is None:
            raise
        return table


def read_facts(
    table: DeltaTable, agent_id: str | None, *, fact_ids: Sequence[str] | None = None
) -> pl.DataFrame:
    """Rows of one agent (or all agents) at the table's loaded version, sorted by key.

    Polars prunes the other agents' partitions, so the cost follows this agent's facts only.
    """
    frame = pl.scan_delta(table)
    if agent_id is not None:
        frame = frame.filter(pl.col("agent_id") == agent_id)
    if fact_ids is not None:
        frame = frame.filter(pl.col("fact_id").is_in(list(fact_ids)))
    try:
        rows = frame.select(COLUMNS).collect()
    except (FileNotFoundError, pl.exceptions.ComputeError) as exc:
        if not _is_missing_file(exc):
            raise
        raise VersionVacuumedError(
            f"memory version {table.version()} can no longer be read: vacuum removed data "
            "files it needs. Pick a more recent version."
        ) from exc
    return rows.sort(KEY)


def history(table: DeltaTable, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` commit infos of the latest table, each with a correct ``version``.

    ``DeltaTable.history`` numbers entries down from the version it has loaded but reads the
    newest commits in storage, so a commit landing in between would shift every label (and a
    time-travelled table is always wrong). Refresh first, and retry if the table moved.
    """
    for _ in range(20):
        table.update_incremental()
        loaded = table.version()
        entries = table.history(limit)
        table.update_incremental()
        if table.version() == loaded:
            return entries
    raise RuntimeError("the memory table kept moving while its history was read")


def commit_time(entry: Mapping[str, Any]) -> datetime:
    """The commit time of a history entry, as an aware UTC datetime."""
    return datetime.fromtimestamp(entry["timestamp"] / 1000, UTC)


def merge(
    table: DeltaTable, agent_id: str, source: pl.DataFrame, metadata: Mapping[str, str]
) -> dict[str, Any]:
    """Apply ``source`` (full rows, ``_op`` upsert or delete) to one agent as ONE commit.

    The literal ``agent_id`` in the predicate makes delta-rs read (and record) that partition
    only, so writers of different agents never conflict. No ``when_not_matched_by_source``
    clause: it widens the read to the whole table and makes every agent conflict.
    """
    values = {c: f"s.{c}" for c in VALUE_COLUMNS}
    return (
        table.merge(
            source,
            predicate=f"t.agent_id = '{agent_id}' AND t.fact_id = s.fact_id",
            source_alias="s",
            target_alias="t",
            writer_properties=WRITER,
            commit_properties=CommitProperties(custom_metadata=dict(metadata)),
        )
        .when_matched_delete(predicate="s._op = 'delete'")
        .when_matched_update(updates=values, predicate="s._op = 'upsert'")
        .when_not_matched_insert(
            updates={c: f"s.{c}" for c in COLUMNS}, predicate="s._op = 'upsert'"
        )
        .execute()
    )


def small_files(table: DeltaTable, agent_id: str) -> int:
    """How many of this agent's data files compaction would pack."""
    files = pl.DataFrame(table.get_add_actions(flatten=True))
    if files.is_empty():
        return 0
    return files.filter(
        (pl.col(f"partition.{PARTITION}") == agent_id)
        & (pl.col("size_bytes") < COMPACT_TARGET_BYTES)
    ).height


def compact(table: DeltaTable, agent_id: str) -> None:
    """Pack one agent's small files into few (an OPTIMIZE commit, no data change)."""
    table.optimize.compact(
        partition_filters=[(PARTITION, "=", agent_id)],
        target_size=COMPACT_TARGET_BYTES,
        writer_properties=WRITER,
        commit_properties=CommitProperties(custom_metadata={KIND: "compact", AGENT: agent_id}),
    )


def _is_missing_file(exc: BaseException) -> bool:
    if isinstance(exc, FileNotFoundError):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("no such file", "not found", "does not exist", "404"))


def _options(storage_options: Mapping[str, str] | None) -> dict[str, str] | None:
    return dict(storage_options) if storage_options else None
