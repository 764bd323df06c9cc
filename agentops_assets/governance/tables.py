"""The governance tables: names and schemas."""

from __future__ import annotations

from typing import Final

import polars as pl

POLICY_DECISIONS: Final = "policy_decisions"
CAPABILITY_VIOLATIONS: Final = "capability_violations"
REVIEW_QUEUE: Final = "review_queue"
DECISION_PATH: Final = "agentops/governance/result"  # OPA's decision log "path"
# Where a row of policy_decisions comes from: the pipeline judging agent_events after the fact,
# or the online gate (POST /v1/decide) asked before the action. Re-judging days replaces the
# pipeline's rows only.
SOURCE_EVENTS: Final = "events"
SOURCE_GATE: Final = "gate"
BUNDLE_NAME: Final = "agentops"  # the key of OPA's decision log "bundles"

UTC_US: Final = pl.Datetime("us", "UTC")

# One row per judged tool call or decision: OPA's decision log fields (decision_id, path,
# input, result, bundles, timestamp) as columns, then the event's identity and the verdict
# as columns of their own for SQL.
DECISION_SCHEMA: Final = pl.Schema(
    {
        "day": pl.Date(),
        "decision_id": pl.String(),
        "path": pl.String(),
        "input": pl.String(),  # the action document, JSON
        "result": pl.String(),  # the decision document, JSON
        "bundles": pl.String(),  # {"agentops": {"revision": ...}}, JSON
        "timestamp": UTC_US,  # when the action happened
        "revision": pl.String(),
        "event_id": pl.String(),
        "trace_id": pl.String(),
        "agent_id": pl.String(),
        "agent_type": pl.String(),
        "kind": pl.String(),
        "action": pl.String(),
        "decision": pl.String(),
        "zone": pl.String(),
        "reasons": pl.List(pl.String()),
        "rules": pl.List(pl.String()),
        "approvals_required": pl.Int32(),
        "sample_rate": pl.Float64(),
        "error": pl.String(),
        "judged_at": UTC_US,
        "source": pl.String(),  # SOURCE_EVENTS or SOURCE_GATE (null in rows written before)
    }
)

REVIEW_STATES: Final = ("pending", "approved", "rejected")
REVIEW_SCHEMA: Final = pl.Schema(
    {
        "review_id": pl.String(),
        "created_at": UTC_US,
        "source": pl.String(),  # "policy_decision" (after the fact) or "gate" (asked first)
        "day": pl.Date(),
        "decision_id": pl.String(),
        "event_id": pl.String(),
        "trace_id": pl.String(),
        "agent_id": pl.String(),
        "agent_type": pl.String(),
        "action": pl.String(),
        "decision": pl.String(),
        "zone": pl.String(),
        "reasons": pl.List(pl.String()),
        "revision": pl.String(),
        "approvals_required": pl.Int32(),
        "state": pl.String(),
        "approved_by": pl.List(pl.String()),
        "decided_by": pl.String(),
        "decided_at": UTC_US,
        "rationale": pl.String(),
        "correction": pl.String(),
        "lesson_key": pl.String(),
        "memory_version": pl.Int64(),
    }
)
