"""What drift and anomaly detection found of incidents whose ground truth is known.

The simulator writes each injected incident to ``incidents.json``; :func:`match_incidents`
looks for the findings that reveal it, so the demo and the benchmark show detection at work.
A finding reveals an incident when it is about the incident's agent type (or agent, for an
incident of one agent), on or after its first day, in a metric the incident moves.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Final

import polars as pl

# The metrics each behaviour incident moves; `anomalies` when anomaly detection reveals it.
REVEALED_BY: Final[dict[str, tuple[str, ...]]] = {
    "confidence_drift": ("confidence", "success_rate"),
    "cost_spike": ("cost_per_cycle", "reprompt_rate", "tokens_per_cycle"),
    "outage": ("tool_error_rate", "retry_rate"),
    "corrupted_context": ("context_defect_rate",),
    "rogue_agent": ("anomalies",),
}
# Incidents of one agent: findings must name that agent (a type-wide finding counts too).
_ONE_AGENT: Final = frozenset({"corrupted_context", "rogue_agent"})
MAX_DELAY_DAYS: Final = 1  # found within one day of its start

MATCH_SCHEMA: Final = {
    "incident": pl.String,
    "day": pl.Date,
    "target": pl.String,
    "behavioural": pl.Boolean,
    "found": pl.Boolean,
    "found_on": pl.Date,
    "delay_days": pl.Int64,
    "by": pl.String,
    "evidence": pl.String,
}


def match_incidents(
    incidents: list[dict[str, Any]],
    findings: pl.DataFrame,
    anomalies: pl.DataFrame,
    *,
    judged_from: date | None = None,
) -> pl.DataFrame:
    """One row per incident: whether it was found within a day of its start, when, and how.

    Args:
        incidents: The ground truth, as in ``incidents.json``.
        findings: ``drift_findings`` rows.
        anomalies: ``behavior_anomalies`` rows.
        judged_from: The first day with enough history to be judged (the first day of data
            plus the policy's minimum history); an incident that starts earlier is marked
            ``too_early`` instead of missed.
    """
    rows = [_match(incident, findings, anomalies) for incident in incidents]
    frame = pl.DataFrame(rows, schema=MATCH_SCHEMA, orient="row")
    early = pl.lit(judged_from is not None) & (pl.col("day") < (judged_from or date.min))
    return frame.with_columns((early & pl.col("behavioural") & ~pl.col("found")).alias("too_early"))


def _match(incident: dict[str, Any], findings: pl.DataFrame, anomalies: pl.DataFrame) -> tuple:
    name, day = incident["name"], date.fromisoformat(incident["day"])
    agents = incident.get("agent_ids") or []
    target = agents[0] if name in _ONE_AGENT else (incident.get("agent_type") or "several types")
    metrics = REVEALED_BY.get(name)
    if metrics is None:
        return (name, day, target, False, False, None, None, "not a behaviour incident", None)
    window = pl.col("day").is_between(day, day + timedelta(days=MAX_DELAY_DAYS))
    if metrics == ("anomalies",):
        hits = anomalies.filter(window & pl.col("agent_id").is_in(agents)).sort("day", "rank")
        if hits.is_empty():
            return (name, day, target, True, False, None, None, None, None)
        first = hits.row(0, named=True)
        top = hits.filter(pl.col("day") == first["day"])["rank"].min()
        evidence = f"rank {top} of the day's anomalies: {first['reasons']}"
        return _found(name, day, target, first["day"], "behavior_anomalies", evidence)
    scope = _scope(name, incident, agents)
    hits = findings.filter(window & scope & pl.col("metric").is_in(list(metrics))).sort(
        "day", pl.col("severity") == "critical", descending=[False, True]
    )
    if hits.is_empty():
        return (name, day, target, True, False, None, None, None, None)
    first = hits.row(0, named=True)
    return _found(name, day, target, first["day"], "drift_findings", first["detail"])


def _scope(name: str, incident: dict[str, Any], agents: list[str]) -> pl.Expr:
    if name in _ONE_AGENT:
        own_type = pl.col("agent_id").is_null() & (pl.col("agent_type") == incident["agent_type"])
        return pl.col("agent_id").is_in(agents) | own_type
    if incident.get("agent_type"):
        return pl.col("agent_type") == incident["agent_type"]
    return pl.col("agent_id").is_in(agents)  # an outage: the agents that use the tool


def _found(name: str, day: date, target: str, on: date, by: str, evidence: str) -> tuple:
    return (name, day, target, True, True, on, (on - day).days, by, evidence)
