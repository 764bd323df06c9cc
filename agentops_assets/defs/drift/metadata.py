"""What the drift assets show in the Dagster UI: per-day figures to plot, and tables."""

from __future__ import annotations

from typing import Any

import dagster as dg
import polars as pl

from agentops_assets.defs import metadata_table
from agentops_assets.drift.metrics import METRICS

TOP = 20  # rows of a metadata table


def table(frame: pl.DataFrame, types: dict[str, str]) -> dg.TableMetadataValue:
    """``frame``'s first :data:`TOP` rows as a Dagster table of the typed columns ``types``."""
    return metadata_table.table(
        frame.head(TOP), [dg.TableColumn(name, kind) for name, kind in types.items()]
    )


def baselines(frame: pl.DataFrame) -> dict[str, Any]:
    """Per metric, the fleet's current value and its baseline (mean over agent types)."""
    fleet = (
        frame.filter(pl.col("agent_id").is_null())
        .group_by("metric")
        .agg(pl.col("current_value").mean(), pl.col("baseline_value").mean())
    )
    figures: dict[str, Any] = {"rows": dg.MetadataValue.int(frame.height)}
    values = {row["metric"]: row for row in fleet.iter_rows(named=True)}
    for name in METRICS:
        row = values.get(name, {})
        for part in ("current", "baseline"):
            value = row.get(f"{part}_value")
            if value is not None:
                figures[f"{name}_{part}"] = dg.MetadataValue.float(round(float(value), 6))
    return figures


_FINDING_COLUMNS = {
    "day": "string",
    "severity": "string",
    "agent_type": "string",
    "agent_id": "string",
    "metric": "string",
    "baseline_value": "float",
    "current_value": "float",
    "change_pct": "float",
    "detail": "string",
}


def findings(frame: pl.DataFrame) -> dict[str, Any]:
    ordered = frame.sort(pl.col("severity") == "critical", "effect_size", descending=True)
    return {
        "findings": dg.MetadataValue.int(frame.height),
        "critical": dg.MetadataValue.int(frame.filter(pl.col("severity") == "critical").height),
        "warnings": dg.MetadataValue.int(frame.filter(pl.col("severity") == "warning").height),
        "top_findings": table(ordered, _FINDING_COLUMNS),
    }


def anomalies(frame: pl.DataFrame) -> dict[str, Any]:
    ordered = frame.sort("day", "rank")
    columns = {
        "day": "string",
        "rank": "int",
        "agent_id": "string",
        "agent_type": "string",
        "score": "float",
        "reasons": "string",
        "trace_id": "string",
    }
    return {
        "anomalies": dg.MetadataValue.int(frame.height),
        "agents": dg.MetadataValue.int(frame["agent_id"].n_unique()),
        "top_anomalies": table(ordered, columns),
    }


def coordination(frame: pl.DataFrame) -> dict[str, Any]:
    kinds = dict(frame.group_by("kind").len().iter_rows())
    figures: dict[str, Any] = {"findings": dg.MetadataValue.int(frame.height)}
    for kind in ("loop", "duplicate_work", "conflict", "delegation_cycle", "missed_deadline"):
        figures[kind] = dg.MetadataValue.int(int(kinds.get(kind, 0)))
    columns = {"day": "string", "kind": "string", "agent_type": "string", "detail": "string"}
    figures["top_findings"] = table(frame.sort("day", "kind"), columns)
    return figures
