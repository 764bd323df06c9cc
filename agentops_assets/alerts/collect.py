"""Turn the rows of the findings tables into alerts, each with a key stable across reruns.

- ``drift_findings``: one alert per finding and severity (an escalation to critical is news).
- ``behavior_anomalies``: the table holds the cycles flagged as anomalous; only the top
  ``max_rank`` of each day (and those scoring at least ``min_score``, if set) become alerts,
  so a bad day is a few messages, not a flood. A cycle with an action its type never took
  before is critical.
- ``budget_compliance``: each warning or breach of a budget's period, once per period and
  status (a month in breach is one alert, not one a day).
- ``coordination_findings``: one alert per finding.
- ``capability_violations``: one critical alert per agent, tool and day, with the number of
  calls and the first event.

A table that does not exist yet has nothing to alert on.
"""

from __future__ import annotations

import hashlib
import math
from datetime import date
from typing import Any, Final

import polars as pl

from agentops_assets.alerts.alert import Alert
from agentops_assets.alerts.policy import (
    ALERTS_FILE,
    SEVERITY_RANK,
    AlertsPolicy,
    load_alerts_policy,
)
from agentops_assets.drift.tables import BEHAVIOR_ANOMALIES, COORDINATION_FINDINGS, DRIFT_FINDINGS
from agentops_assets.finops.tables import BUDGET_COMPLIANCE
from agentops_assets.governance.tables import CAPABILITY_VIOLATIONS
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths

_MAX_REASONS: Final = 400

_DRIFT_COLUMNS: Final = (
    "day",
    "agent_type",
    "agent_id",
    "metric",
    "baseline_value",
    "current_value",
    "change_pct",
    "test",
    "p_value",
    "effect_size",
    "severity",
    "detail",
    "finding_id",
)
_ANOMALY_COLUMNS: Final = (
    "day",
    "trace_id",
    "agent_id",
    "agent_type",
    "score",
    "rank",
    "reasons",
    "unseen_actions",
)
_BUDGET_COLUMNS: Final = (
    "day",
    "budget_id",
    "agent_type",
    "period",
    "period_start",
    "spend_usd",
    "cap_usd",
    "pct_of_cap",
    "forecast_usd",
    "status",
    "detail",
)
_COORDINATION_COLUMNS: Final = (
    "day",
    "kind",
    "agent_type",
    "action",
    "count",
    "detail",
    "finding_id",
)

_VIOLATION_COLUMNS: Final = ("day", "agent_id", "agent_type", "action", "rule", "event_id")


def collect_alerts(
    paths: Paths, first_day: date, last_day: date, *, policy: AlertsPolicy | None = None
) -> list[Alert]:
    """The alerts of the findings dated ``first_day`` to ``last_day`` (inclusive).

    Args:
        paths: Where the lake is.
        first_day: First day of the range.
        last_day: Last day of the range.
        policy: The alerts policy (for the anomaly limits); default
            ``paths.policy_file("alerts.yaml")``.

    Returns:
        The alerts by day, most severe first, each key once.

    Raises:
        AlertsPolicyError: The policy file is invalid.
    """
    if first_day > last_day:
        raise ValueError(f"The first day {first_day} is after the last day {last_day}.")
    policy = policy or load_alerts_policy(paths.policy_file(ALERTS_FILE))
    found = [
        *_drift_alerts(_rows(paths, DRIFT_FINDINGS, _DRIFT_COLUMNS, first_day, last_day)),
        *_anomaly_alerts(
            _rows(paths, BEHAVIOR_ANOMALIES, _ANOMALY_COLUMNS, first_day, last_day), policy
        ),
        *_budget_alerts(_rows(paths, BUDGET_COMPLIANCE, _BUDGET_COLUMNS, first_day, last_day)),
        *_coordination_alerts(
            _rows(paths, COORDINATION_FINDINGS, _COORDINATION_COLUMNS, first_day, last_day)
        ),
        *_violation_alerts(
            _rows(paths, CAPABILITY_VIOLATIONS, _VIOLATION_COLUMNS, first_day, last_day)
        ),
    ]
    found.sort(key=lambda a: (a.day, -SEVERITY_RANK.get(a.severity, 0), a.source, a.key))
    unique: dict[str, Alert] = {}
    for alert in found:
        unique.setdefault(alert.key, alert)
    return list(unique.values())


def _rows(
    paths: Paths, table: str, columns: tuple[str, ...], first: date, last: date
) -> list[dict[str, Any]]:
    """The table's rows of the range, with ``columns`` (null where the table lacks one)."""
    frame = lake.scan(paths.table_uri(table))
    if frame is None:
        return []
    present = frame.collect_schema().names()
    if "day" not in present:
        return []
    selected = frame.filter(pl.col("day").is_between(first, last)).select(
        pl.col(name) if name in present else pl.lit(None).alias(name) for name in columns
    )
    return selected.sort("day").collect().to_dicts()


def _drift_alerts(rows: list[dict[str, Any]]) -> list[Alert]:
    alerts = []
    for row in rows:
        severity = row["severity"] if row["severity"] in SEVERITY_RANK else "warning"
        finding = row["finding_id"] or _digest(
            row["day"], row["agent_type"], row["agent_id"], row["metric"]
        )
        scope = " ".join(part for part in (row["agent_type"], row["agent_id"]) if part)
        alerts.append(
            Alert(
                key=f"drift_finding:{finding}:{severity}",
                source="drift_finding",
                severity=severity,
                day=row["day"],
                agent_type=row["agent_type"],
                title=f"Drift ({severity}): {scope} {row['metric']}",
                summary=row["detail"]
                or f"{scope} {row['metric']} drifted from {row['baseline_value']} to "
                f"{row['current_value']} on {row['day']}.",
                fields=_fields(row),
            )
        )
    return alerts


def _anomaly_alerts(rows: list[dict[str, Any]], policy: AlertsPolicy) -> list[Alert]:
    limits = policy.anomalies
    alerts = []
    for row in rows:
        if row["rank"] is None or row["rank"] > limits.max_rank:
            continue
        if limits.min_score is not None and (row["score"] or 0.0) < limits.min_score:
            continue
        unseen = row["unseen_actions"] or []
        severity = "critical" if unseen else "warning"
        reasons = _clip(row["reasons"] or "no reason recorded")
        score = f", score {row['score']:.2f}" if row["score"] is not None else ""
        alerts.append(
            Alert(
                key=f"anomaly:{row['day']}:{row['agent_id']}:{row['trace_id']}",
                source="anomaly",
                severity=severity,
                day=row["day"],
                agent_type=row["agent_type"],
                title=f"Anomaly ({severity}): {row['agent_type']} {row['agent_id']}",
                summary=f"{row['agent_type']} agent {row['agent_id']} ran an anomalous cycle on "
                f"{row['day']} (rank {row['rank']} of the day{score}): {reasons}; "
                f"trace {row['trace_id']}.",
                fields=_fields(row),
            )
        )
    return alerts


def _budget_alerts(rows: list[dict[str, Any]]) -> list[Alert]:
    alerts = []
    for row in rows:
        if row["status"] not in ("warning", "breach"):
            continue
        severity = "critical" if row["status"] == "breach" else "warning"
        # A period in breach stays so on each later day of it: one alert per period and status.
        start = row["period_start"] or row["day"]
        alerts.append(
            Alert(
                key=f"budget:{row['budget_id']}:{row['period']}:{start}:{row['status']}",
                source="budget",
                severity=severity,
                day=row["day"],
                agent_type=row["agent_type"],
                title=f"Budget {row['status']}: {row['budget_id']} ({row['period']})",
                summary=f"Budget {row['status']}: {row['detail']}"
                if row["detail"]
                else f"Budget {row['status']}: {row['budget_id']} spent {row['spend_usd']} "
                f"against a cap of {row['cap_usd']}.",
                fields=_fields(row),
            )
        )
    return alerts


def _coordination_alerts(rows: list[dict[str, Any]]) -> list[Alert]:
    alerts = []
    for row in rows:
        finding = row["finding_id"] or _digest(
            row["day"], row["kind"], row["agent_type"], row["action"], row["detail"]
        )
        alerts.append(
            Alert(
                key=f"coordination:{finding}",
                source="coordination",
                severity="warning",
                day=row["day"],
                agent_type=row["agent_type"],
                title=f"Coordination ({row['kind']}): {row['agent_type']}",
                summary=row["detail"] or f"{row['kind']} among {row['agent_type']} agents.",
                fields=_fields(row),
            )
        )
    return alerts


def _violation_alerts(rows: list[dict[str, Any]]) -> list[Alert]:
    calls: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["day"], r["agent_id"] or "", r["event_id"] or "")):
        calls.setdefault((row["day"], row["agent_id"], row["action"]), []).append(row)
    alerts = []
    for (day, agent, action), found in calls.items():
        first = found[0]
        times = "once" if len(found) == 1 else f"{len(found)} times"
        alerts.append(
            Alert(
                key=f"capability_violation:{day}:{agent}:{action}",
                source="capability_violation",
                severity="critical",
                day=day,
                agent_type=first["agent_type"],
                title=f"Capability violation: {first['agent_type']} {agent} called {action}",
                summary=f"{first['agent_type']} agent {agent} called {action} {times} on {day}: "
                f"{first['rule']}; first event {first['event_id']} "
                f"(agentops audit trace {first['event_id']}).",
                fields=_fields({**first, "calls": len(found)}),
            )
        )
    return alerts


def _fields(row: dict[str, Any]) -> dict[str, Any]:
    """The row as JSON-safe values: dates as ISO text, floats that are not finite as null."""
    safe: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, date):
            safe[name] = value.isoformat()
        elif isinstance(value, float) and not math.isfinite(value):
            safe[name] = None
        else:
            safe[name] = value
    return safe


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_REASONS else text[: _MAX_REASONS - 1] + "…"


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]
