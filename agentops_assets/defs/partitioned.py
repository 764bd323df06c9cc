"""Metadata and check inputs of partitioned assets whose runs may cover a range of days.

Dagster stamps a ranged run's output metadata on every partition of the range
(dagster-io/dagster#18123), and its plots show the highest point per partition: range totals
there would flatten every plot. :func:`report_days` logs each day's own figures as a
materialization of that day's partition instead.
"""

from collections.abc import Callable
from datetime import date
from typing import Any

import dagster as dg
import polars as pl

from agentops_assets.defs.finops import metadata
from agentops_assets.defs.finops.partitions import daily_partitions, partition_days
from agentops_assets.defs.resources import LakeResource
from agentops_assets.defs.telemetry.assets import LAKE_WRITERS_POOL
from agentops_assets.storage import lake as lake_io

# Asset arguments of every daily-partitioned asset that writes the lake: a backfill runs as one
# pass (single-run backfill policy), and the writers share the lake writers' pool.
DAILY_LAKE_WRITER: dict[str, Any] = {
    "partitions_def": daily_partitions,
    "backfill_policy": dg.BackfillPolicy.single_run(),
    "pool": LAKE_WRITERS_POOL,
}


def report_days(
    context: dg.AssetExecutionContext,
    frame: pl.DataFrame,
    day_column: str,
    describe: Callable[[pl.DataFrame], dict[str, Any]],
    *,
    asset_key: dg.AssetKey | None = None,
) -> dg.MaterializeResult:
    """The run's metadata; in a range run, also one materialization per day with its figures.

    A range run's output keeps only the range label and the range's tables (top spenders,
    findings). ``asset_key`` names the asset of a multi-asset; a single asset's is implied.
    """
    first, last = partition_days(context)
    key = asset_key or context.asset_key
    if first == last:
        return dg.MaterializeResult(
            asset_key=asset_key, metadata={**metadata.covered(first, last), **describe(frame)}
        )
    for partition in context.partition_keys:
        day = date.fromisoformat(partition)
        figures = describe(frame.filter(pl.col(day_column) == day))
        context.log_event(
            dg.AssetMaterialization(
                asset_key=key,
                partition=partition,
                metadata={**metadata.covered(day, day), **figures},
            )
        )
    tables = {k: v for k, v in describe(frame).items() if not _is_number(v)}
    return dg.MaterializeResult(
        asset_key=asset_key, metadata={**metadata.covered(first, last), **tables}
    )


def _is_number(value: Any) -> bool:
    if isinstance(value, dg.MetadataValue):
        value = value.value
    return isinstance(value, int | float) and not isinstance(value, bool)


def partition_rows(
    context: dg.AssetCheckExecutionContext, lake: LakeResource, table: str, column: str
) -> pl.DataFrame | None:
    """The rows of ``table`` on the days this run refreshed (the whole table outside a
    partitioned run); ``None`` when the table does not exist yet."""
    frame = lake_io.scan(lake.paths.table_uri(table))
    if frame is None:
        return None
    run = context.op_execution_context
    if run.has_partition_key or run.has_partition_key_range:
        first, last = partition_days(run)
        frame = frame.filter(pl.col(column).is_between(first, last))
    return frame.collect()
