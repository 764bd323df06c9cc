"""One reasoning cycle end to end: its steps, the policy decisions on them, the reviews, and the
ledger entries and memory commits that followed (``agentops audit trace``)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from agentops_assets.governance.audit import ledger
from agentops_assets.governance.review import reviews
from agentops_assets.governance.tables import POLICY_DECISIONS
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.schema import AGENT_EVENTS


class TraceNotFoundError(Exception):
    """The id is no event, trace or review id of this home."""


@dataclass(frozen=True)
class Trace:
    """Everything recorded about one reasoning cycle."""

    trace_id: str
    asked: str  # the id the caller gave
    steps: pl.DataFrame
    decisions: pl.DataFrame
    reviews: pl.DataFrame
    ledger: pl.DataFrame
    memory: pl.DataFrame


_STEP_COLUMNS = (
    "ts", "event_id", "parent_id", "agent_id", "agent_type", "kind", "action", "action_target",
    "status", "outcome", "confidence", "feedback_kind", "feedback_correction",
    "feedback_rationale", "reviewer",
)  # fmt: skip


def trace(paths: Paths, asked: str) -> Trace:
    """The cycle of ``asked``: an event id, a trace id or a review id.

    Raises:
        TraceNotFoundError: Nothing in ``agent_events`` or the review queue has that id.
    """
    events = lake.scan(paths.table_uri(AGENT_EVENTS))
    if events is None:
        raise TraceNotFoundError("there is no telemetry yet (agent_events does not exist).")
    trace_id = _resolve(paths, events, asked.strip())
    steps = events.filter(pl.col("trace_id") == trace_id).select(_STEP_COLUMNS).sort("ts")
    steps = steps.collect()
    decided = lake.scan(paths.table_uri(POLICY_DECISIONS))
    decisions = (
        decided.filter(pl.col("trace_id") == trace_id)
        .select(
            "timestamp",
            "event_id",
            "action",
            "decision",
            "zone",
            "reasons",
            "rules",
            "revision",
            "decision_id",
        )  # fmt: skip
        .sort("timestamp")
        .collect()
        if decided is not None
        else pl.DataFrame()
    )
    queued = reviews(paths).filter(pl.col("trace_id") == trace_id)
    subjects = {trace_id, *steps["event_id"].to_list(), *queued["review_id"].to_list()}
    entries = ledger(paths).entries()
    entries = entries.filter(
        pl.col("subject").is_in(sorted(subjects))
        | (pl.col("payload").str.json_path_match("$.trace_id") == trace_id)
    )
    memory = entries.filter(pl.col("kind").is_in(["memory_commit", "memory_rollback"]))
    memory = memory.select(
        "at",
        "actor",
        pl.col("payload").str.json_path_match("$.version").cast(pl.Int64).alias("version"),
        pl.col("payload").str.json_path_match("$.agent_id").alias("agent_id"),
        pl.col("payload").str.json_path_match("$.kind").alias("kind"),
        pl.col("payload").str.json_path_match("$.message").alias("message"),
        pl.col("payload").str.json_path_match("$.approved_by").alias("approved_by"),
    )
    return Trace(trace_id, asked, steps, decisions, queued, entries, memory)


def _resolve(paths: Paths, events: pl.LazyFrame, asked: str) -> str:
    if asked.startswith("rv-"):
        item = reviews(paths).filter(pl.col("review_id") == asked)
        if item.is_empty():
            raise TraceNotFoundError(f"no review item {asked!r}.")
        return str(item["trace_id"][0])
    found = (
        events.filter((pl.col("event_id") == asked) | (pl.col("trace_id") == asked))
        .select("trace_id")
        .head(1)
        .collect()
    )
    if found.is_empty():
        raise TraceNotFoundError(
            f"{asked!r} is no event id, trace id or review id in agent_events or the review queue."
        )
    return str(found["trace_id"][0])
