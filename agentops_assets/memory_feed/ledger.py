"""``memory_feed_cycles``: what the memory feed did with each cycle, kept for good.

One row per cycle and agent: applied (with the memory version it became), unchanged, skipped
or rejected, and why. The memory's own Delta log is cleaned up after 30 days, so it cannot say
which cycles were applied; this table is only ever appended to, so it always can, and a
human rollback is never undone by a cycle applied a second time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

import polars as pl
from deltalake.exceptions import CommitFailedError

from agentops_assets.storage import lake

FEED_CYCLES: Final = "memory_feed_cycles"
"""The ledger's table name under the lake root."""

CycleStatus = Literal["applied", "unchanged", "skipped", "rejected"]

SCHEMA: Final = pl.Schema(
    {
        "cycle_key": pl.String,  # the trace id, or "review:<event id>" for a lesson
        "agent_id": pl.String,  # as the events name it (a rejected one may be invalid)
        "status": pl.String,
        "reason": pl.String,  # what was refused or skipped, and why; null when nothing was
        "memory_version": pl.Int64,  # the memory commit of an applied cycle
        "cycle_at": pl.Datetime("us", "UTC"),  # when the cycle started
        "recorded_at": pl.Datetime("us", "UTC"),  # the memory commit's time when applied
        "changes": pl.Int32,  # writes sent to the memory
        "skipped_changes": pl.Int32,  # writes refused, superseded, or deletes of facts not held
        "fact_ids": pl.List(pl.String),  # every fact the cycle writes (validly)
    }
)
_COMPACT_AFTER_FILES: Final = 32  # one small file per feed run: pack them now and then
_WRITER: Final = lake.writer_properties(unique=["cycle_key"], free_text=["reason"])


@dataclass(frozen=True)
class CycleOutcome:
    """One row of the ledger: what became of one cycle of one agent."""

    key: str
    agent_id: str
    status: CycleStatus
    at: datetime
    reason: str | None = None
    memory_version: int | None = None
    recorded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    changes: int = 0
    skipped_changes: int = 0
    fact_ids: tuple[str, ...] = ()


class CycleLedger:
    """The ``memory_feed_cycles`` Delta table: read whole, appended to, never rewritten.

    Args:
        uri: Where the table lives, a path or an object-store URI (created by the first
            ``append``).
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def read(self) -> pl.DataFrame:
        """Every recorded outcome (an empty frame before the first)."""
        if not lake.table_exists(self.uri):
            return pl.DataFrame(schema=SCHEMA)
        return lake.read(self.uri, columns=list(SCHEMA))

    def exists(self) -> bool:
        """Whether anything was ever recorded."""
        return lake.table_exists(self.uri)

    def append(self, outcomes: Sequence[CycleOutcome]) -> None:
        """Record ``outcomes`` as one Delta commit (the table is created by the first call)."""
        frame = pl.DataFrame(
            [
                (
                    o.key,
                    o.agent_id,
                    o.status,
                    o.reason,
                    o.memory_version,
                    o.at,
                    o.recorded_at,
                    o.changes,
                    o.skipped_changes,
                    list(o.fact_ids),
                )
                for o in outcomes
            ],
            schema=SCHEMA,
            orient="row",
        )
        if frame.is_empty() and self.exists():
            return
        lake.append(self.uri, frame, metadata={"agentops.operation": "memory feed"}, writer=_WRITER)
        self._maybe_compact()

    def _maybe_compact(self) -> None:
        table = lake.open_table(self.uri)
        if len(table.file_uris()) <= _COMPACT_AFTER_FILES:
            return
        # A concurrent append may win the race: the next feed run packs the files then.
        with contextlib.suppress(CommitFailedError):
            table.optimize.compact(writer_properties=_WRITER)
