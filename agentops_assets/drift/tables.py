"""Names and schemas of the drift tables: contracts the CLI, checks, alerts and SQL users share.

Every table is partitioned by ``day`` (the UTC day the finding is about) and rewritten one range
of days at a time, like the FinOps tables.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from agentops_assets.telemetry.schema import UTC_US

BEHAVIOR_BASELINES: Final = "behavior_baselines"
DRIFT_FINDINGS: Final = "drift_findings"
BEHAVIOR_ANOMALIES: Final = "behavior_anomalies"
COORDINATION_FINDINGS: Final = "coordination_findings"
DRIFT_FILE: Final = "drift.yaml"

# One row per day, scope (a whole type, or one agent) and metric: the trailing baseline the day
# is tested against, next to the day's own value.
BASELINES_SCHEMA: Final[dict[str, pl.DataType]] = {
    "day": pl.Date(),
    "agent_type": pl.String(),
    "agent_id": pl.String(),  # null: the whole agent type
    "metric": pl.String(),
    "window_days": pl.Int64(),  # days in the trailing window that had data
    "baseline_n": pl.Int64(),  # cycles (or trials, for rates) in the window
    "baseline_value": pl.Float64(),  # mean (continuous) or rate, each window day weighted equally
    "baseline_spread": pl.Float64(),  # robust standard deviation (continuous); null for rates
    "baseline_p50": pl.Float64(),
    "baseline_p99": pl.Float64(),
    "current_n": pl.Int64(),
    "current_value": pl.Float64(),
}

FINDINGS_SCHEMA: Final[dict[str, pl.DataType]] = {
    "day": pl.Date(),
    "agent_type": pl.String(),
    "agent_id": pl.String(),  # null: the whole agent type
    "metric": pl.String(),
    "baseline_value": pl.Float64(),
    "current_value": pl.Float64(),
    "change_pct": pl.Float64(),
    "test": pl.String(),  # e.g. "ks", "welch_t", "two_proportion_z"
    "statistic": pl.Float64(),
    "p_value": pl.Float64(),  # adjusted for the day's tests (Benjamini-Hochberg)
    "effect_size": pl.Float64(),
    "severity": pl.String(),  # "warning" or "critical"
    "detail": pl.String(),  # one sentence for a person
    "finding_id": pl.String(),  # stable: day, scope and metric hashed
}

ANOMALIES_SCHEMA: Final[dict[str, pl.DataType]] = {
    "day": pl.Date(),
    "trace_id": pl.String(),
    "agent_id": pl.String(),
    "agent_type": pl.String(),
    "started_at": UTC_US,
    "score": pl.Float64(),  # higher = more anomalous
    "rank": pl.Int64(),  # 1 = most anomalous of the day
    "reasons": pl.String(),  # in words, e.g. "34 tool calls (baseline p99: 4); action x never seen"
    "unseen_actions": pl.List(pl.String()),
}

COORDINATION_SCHEMA: Final[dict[str, pl.DataType]] = {
    "day": pl.Date(),
    # "loop", "duplicate_work", "conflict", "delegation_cycle", "missed_deadline" or
    # "memory_conflict"
    "kind": pl.String(),
    "agent_type": pl.String(),
    "agent_ids": pl.List(pl.String()),
    "action": pl.String(),
    "target": pl.String(),
    "trace_ids": pl.List(pl.String()),
    "event_ids": pl.List(pl.String()),  # the evidence
    "count": pl.Int64(),
    "first_at": UTC_US,
    "last_at": UTC_US,
    "detail": pl.String(),
    "finding_id": pl.String(),
}
