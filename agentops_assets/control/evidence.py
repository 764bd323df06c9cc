"""The evidence autonomy rules read: findings of drift, anomalies, capability violations and
budgets, as one frame of (day, source, subject, kind, severity, id)."""

from __future__ import annotations

from datetime import date
from typing import Final

import polars as pl

from agentops_assets.drift.tables import BEHAVIOR_ANOMALIES, DRIFT_FINDINGS
from agentops_assets.finops.tables import BUDGET_COMPLIANCE
from agentops_assets.governance.tables import CAPABILITY_VIOLATIONS
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths

EVIDENCE_SCHEMA: Final = pl.Schema(
    {
        "day": pl.Date(),
        "source": pl.String(),
        "agent_type": pl.String(),
        "agent_id": pl.String(),  # null: evidence about the whole type
        "kind": pl.String(),  # drift: the metric; budget: the period; violation: the tool
        "severity": pl.String(),
        "evidence_id": pl.String(),
        "detail": pl.String(),
    }
)


def read_evidence(paths: Paths, first: date, last: date) -> pl.DataFrame:
    """Every finding of ``[first, last]`` that an autonomy rule may read, ordered by day."""
    frames = [
        _read(paths, DRIFT_FINDINGS, first, last, _drift),
        _read(paths, BEHAVIOR_ANOMALIES, first, last, _anomalies),
        _read(paths, CAPABILITY_VIOLATIONS, first, last, _violations),
        _read(paths, BUDGET_COMPLIANCE, first, last, _budgets),
    ]
    found = [frame for frame in frames if frame is not None]
    if not found:
        return EVIDENCE_SCHEMA.to_frame()
    return pl.concat(found).sort("day", "source", "evidence_id")


def _read(paths, table, first, last, shape) -> pl.DataFrame | None:
    frame = lake.scan(paths.table_uri(table))
    if frame is None:
        return None
    rows = shape(frame.filter(pl.col("day").is_between(first, last)))
    return rows.select(list(EVIDENCE_SCHEMA)).collect().cast(dict(EVIDENCE_SCHEMA))


def _drift(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.with_columns(
        pl.lit("drift_finding").alias("source"),
        pl.col("metric").alias("kind"),
        pl.col("finding_id").alias("evidence_id"),
    )


def _anomalies(frame: pl.LazyFrame) -> pl.LazyFrame:
    unseen = pl.col("unseen_actions").list.len().fill_null(0) > 0
    return frame.with_columns(
        pl.lit("anomaly").alias("source"),
        pl.lit("anomaly").alias("kind"),
        pl.when(unseen).then(pl.lit("critical")).otherwise(pl.lit("warning")).alias("severity"),
        pl.col("trace_id").alias("evidence_id"),
        pl.col("reasons").alias("detail"),
    )


def _violations(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.with_columns(
        pl.lit("capability_violation").alias("source"),
        pl.col("action").alias("kind"),
        pl.lit("critical").alias("severity"),
        pl.col("event_id").alias("evidence_id"),
        pl.col("rule").alias("detail"),
    )


def _budgets(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.filter(
        pl.col("status").is_in(["warning", "breach"]) & pl.col("agent_type").is_not_null()
    ).with_columns(
        pl.lit("budget").alias("source"),
        pl.lit(None, pl.String).alias("agent_id"),
        pl.col("period").alias("kind"),
        pl.col("status").alias("severity"),
        pl.concat_str("budget_id", "period", "day", separator=":").alias("evidence_id"),
    )
