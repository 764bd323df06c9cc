"""``alerts_sent``: one row per alert and sink, the record that makes delivery exactly-once.

A row is ``delivered`` (never sent again), ``failed`` (retried once ``next_attempt_at`` has
passed, with exponential backoff), or ``pending`` (not attempted yet: the sink's per-run cap
or a sink that looked down earlier in the run). Rows are never deleted. The table is small (a
row per alert and sink), so each run reads it whole and merges its changes in one commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal

import polars as pl

from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths

ALERTS_SENT: Final = "alerts_sent"

Status = Literal["delivered", "failed", "pending"]

_UTC_US: Final = pl.Datetime("us", "UTC")
LEDGER_SCHEMA: Final[dict[str, pl.DataType]] = {
    "delivery_key": pl.String(),  # the alert key and sink hashed; the Idempotency-Key sent
    "alert_key": pl.String(),
    "sink": pl.String(),
    "sink_kind": pl.String(),
    "source": pl.String(),
    "severity": pl.String(),
    "day": pl.Date(),
    "agent_type": pl.String(),
    "status": pl.String(),
    "attempts": pl.Int64(),
    "recorded_at": _UTC_US,
    "first_attempt_at": _UTC_US,
    "last_attempt_at": _UTC_US,
    "next_attempt_at": _UTC_US,
    "delivered_at": _UTC_US,
    "last_error": pl.String(),  # scrubbed: never a URL
    "summary": pl.String(),  # the sentence sent
    "alert": pl.String(),  # the alert as JSON, so a retry needs nothing else
}


def read_ledger(paths: Paths) -> dict[str, dict[str, Any]]:
    """Every row of ``alerts_sent`` by delivery key (empty when the table does not exist)."""
    frame = lake.scan(paths.table_uri(ALERTS_SENT))
    if frame is None:
        return {}
    rows = frame.collect().to_dicts()
    return {row["delivery_key"]: row for row in rows}


def write_ledger(paths: Paths, rows: Iterable[dict[str, Any]]) -> int:
    """Insert or update ``rows`` by delivery key in one commit; the caller holds the lock.

    Returns:
        How many rows were written.
    """
    frame = pl.DataFrame(list(rows), schema=LEDGER_SCHEMA)
    if frame.is_empty():
        return 0
    uri = paths.table_uri(ALERTS_SENT)
    if not lake.table_exists(uri):
        lake.append(uri, frame, metadata={"agentops.operation": "alerts_delivered"})
        return frame.height
    (
        frame.write_delta(
            uri,
            mode="merge",
            delta_merge_options={
                "predicate": "t.delivery_key = s.delivery_key",
                "source_alias": "s",
                "target_alias": "t",
            },
        )
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )
    return frame.height
