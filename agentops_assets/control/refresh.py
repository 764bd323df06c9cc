"""Evaluate the autonomy states of a day and publish them: the tables, the ledger, the file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from agentops_assets.control import overrides
from agentops_assets.control.evidence import read_evidence
from agentops_assets.control.failover import (
    FAILOVER_FILE,
    FailoverPolicy,
    load_failover_policy,
    provider_health,
    routes,
)
from agentops_assets.control.output import control_path, document, write_atomically
from agentops_assets.control.policy import AUTONOMY_FILE, AutonomyPolicy, load_autonomy_policy
from agentops_assets.control.states import HISTORY_DAYS, evaluate
from agentops_assets.control.tables import (
    AUTONOMY_HISTORY,
    AUTONOMY_STATE,
    CURRENT_SCHEMA,
    HISTORY_SCHEMA,
)
from agentops_assets.finops.compliance import STATUS_RANK
from agentops_assets.finops.tables import BUDGET_COMPLIANCE
from agentops_assets.governance.capabilities import load_registry
from agentops_assets.governance.ledger import AuditLedger, Entry
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.schema import AGENT_EVENTS

SYSTEM_ACTOR = "agentops.control"
AGENT_DAYS = 30  # an agent seen in agent_events within this many days has a row


@dataclass(frozen=True)
class AutonomyUpdate:
    """What one evaluation published."""

    day: date
    states: pl.DataFrame
    changes: pl.DataFrame
    control_file: Path


def autonomy_policy(paths: Paths) -> AutonomyPolicy:
    """``autonomy.yaml`` from the policies folder, else the shipped one.

    Raises:
        PolicyFileError: The file is invalid; the message names its line.
    """
    return load_autonomy_policy(paths.policy_file(AUTONOMY_FILE))


def failover_policy(paths: Paths) -> FailoverPolicy:
    """``failover.yaml`` from the policies folder, else the shipped one.

    Raises:
        PolicyFileError: The file is invalid; the message names its line.
    """
    return load_failover_policy(paths.policy_file(FAILOVER_FILE))


def refresh_autonomy(
    paths: Paths, day: date | None = None, *, now: datetime | None = None
) -> AutonomyUpdate:
    """The states of ``day`` (default: today): ``autonomy_state`` rewritten, each change
    appended to ``autonomy_history`` and the audit ledger, the control file replaced (with
    each agent's failover route, ``failover.yaml``).

    Evaluating a day again changes nothing unless the evidence or an override did.
    """
    now = now or datetime.now(UTC)
    day = day or now.date()
    policy = autonomy_policy(paths)
    lookback = HISTORY_DAYS + max((r.window_days for r in policy.rules), default=1)
    evidence = read_evidence(paths, day - timedelta(days=lookback), day)
    with lake.writer_lock(paths, AUTONOMY_STATE):
        states = evaluate(
            evidence,
            policy,
            day,
            agents=known_agents(paths, day),
            overrides=overrides.active_overrides(paths),
            releases=overrides.releases(paths),
            now=now,
        )
        previous = _previous(paths)
        changes = _changes(previous, states, day, now)
        lake.overwrite(
            paths.table_uri(AUTONOMY_STATE),
            states.with_columns(pl.lit(day).alias("day"), pl.lit(now).alias("evaluated_at"))
            .select(list(CURRENT_SCHEMA))
            .cast(dict(CURRENT_SCHEMA)),
            metadata={"day": day.isoformat(), "changes": str(changes.height)},
        )
        if changes.height:
            lake.append(paths.table_uri(AUTONOMY_HISTORY), changes)
            AuditLedger(paths).append(_entries(changes))
        path = control_path(paths)
        registry = load_registry(paths)
        failover = routes(states, provider_health(paths, day), failover_policy(paths))
        write_atomically(
            path,
            document(states, day, registry, _budgets(paths, day), routes=failover, now=now),
        )
    return AutonomyUpdate(day, states, changes, path)


def known_agents(paths: Paths, day: date) -> list[tuple[str, str]]:
    """(agent_type, agent_id) of every agent seen in the :data:`AGENT_DAYS` days to ``day``."""
    events = lake.scan(paths.table_uri(AGENT_EVENTS))
    if events is None:
        return []
    seen = (
        events.filter(
            pl.col("event_date").is_between(day - timedelta(days=AGENT_DAYS), day)
            & pl.col("agent_type").is_not_null()
        )
        .select("agent_type", "agent_id")
        .unique()
        .collect()
    )
    return list(seen.iter_rows())


def _previous(paths: Paths) -> pl.DataFrame:
    frame = lake.scan(paths.table_uri(AUTONOMY_STATE))
    if frame is None:
        return CURRENT_SCHEMA.to_frame()
    return frame.collect()


def _changes(previous: pl.DataFrame, states: pl.DataFrame, day: date, now: datetime):
    """Rows whose state differs from the last evaluation (a subject first seen was normal)."""
    before = previous.select("agent_type", "agent_id", pl.col("state").alias("from_state"))
    joined = states.join(
        before, on=["agent_type", "agent_id"], how="left", nulls_equal=True
    ).with_columns(pl.col("from_state").fill_null("normal"))
    changed = joined.filter(pl.col("state") != pl.col("from_state"))
    return changed.select(
        pl.lit(now).alias("changed_at"),
        pl.lit(day).alias("day"),
        "agent_type",
        "agent_id",
        "from_state",
        pl.col("state").alias("to_state"),
        "rule",
        "reason",
        "evidence_ids",
        # A supervisor's change names the supervisor; the rules' changes are the system's.
        pl.when(pl.col("override") | (pl.col("rule") == "release"))
        .then(pl.col("reason").str.extract(r"(?:set|released) by (.+?)(?: on [\d-]+)?: "))
        .otherwise(pl.lit(SYSTEM_ACTOR))
        .alias("actor"),
    ).cast(dict(HISTORY_SCHEMA))


def _entries(changes: pl.DataFrame) -> list[Entry]:
    return [
        Entry(
            kind="autonomy_change",
            actor=row["actor"] or SYSTEM_ACTOR,
            subject=row["agent_id"] or f"type:{row['agent_type']}",
            payload={
                "agent_type": row["agent_type"],
                "agent_id": row["agent_id"],
                "from": row["from_state"],
                "to": row["to_state"],
                "rule": row["rule"],
                "reason": row["reason"],
                "evidence_ids": row["evidence_ids"],
                "day": row["day"].isoformat(),
            },
            at=row["changed_at"],
        )
        for row in changes.iter_rows(named=True)
    ]


def _budgets(paths: Paths, day: date) -> dict[str, str]:
    """Each agent type's worst budget status of ``day``."""
    frame = lake.scan(paths.table_uri(BUDGET_COMPLIANCE))
    if frame is None:
        return {}
    rows = (
        frame.filter((pl.col("day") == day) & pl.col("agent_type").is_not_null())
        .select("agent_type", "status")
        .collect()
    )
    worst: dict[str, str] = {}
    for agent_type, status in rows.iter_rows():
        if STATUS_RANK.get(status, 0) >= STATUS_RANK.get(worst.get(agent_type, "ok"), 0):
            worst[agent_type] = status
    return worst
