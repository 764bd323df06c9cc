"""The canonical telemetry contract (docs/telemetry.md) as polars schemas.

Table names are contracts: the CLI, SQL users and tests refer to them by these names.
"""

from __future__ import annotations

from typing import Final

import polars as pl

AGENT_EVENTS: Final = "agent_events"
QUARANTINE: Final = "agent_events_quarantine"
INGESTED_FILES: Final = "ingested_files"

UTC_US = pl.Datetime("us", "UTC")

KINDS: Final = frozenset(
    {"llm_call", "tool_call", "decision", "memory_op", "retrieval", "human_review", "plan", "other"}
)
TIERS: Final = frozenset({"strategic", "tactical", "observer"})
OUTCOMES: Final = frozenset({"success", "failure", "unknown"})
FEEDBACK_KINDS: Final = frozenset({"approve", "override", "correct", "annotate"})

# Columns a producer supplies, with their stored types. Readers hand these over as strings
# (plus "_index"); validation casts them and quarantines what does not fit.
FIELD_TYPES: Final[dict[str, pl.DataType]] = {
    "event_id": pl.String(),
    "trace_id": pl.String(),
    "parent_id": pl.String(),
    "ts": UTC_US,
    "duration_ms": pl.Float64(),
    "agent_id": pl.String(),
    "agent_type": pl.String(),
    "agent_tier": pl.String(),
    "session_id": pl.String(),
    "kind": pl.String(),
    "action": pl.String(),
    "action_target": pl.String(),
    "input_context": pl.String(),
    "reasoning_summary": pl.String(),
    "result": pl.String(),
    "status": pl.String(),
    "error_type": pl.String(),
    "confidence": pl.Float64(),
    "attempt": pl.Int32(),
    "outcome": pl.String(),
    "value_usd": pl.Float64(),
    "provider": pl.String(),
    "model": pl.String(),
    "input_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
    "cache_read_tokens": pl.Int64(),
    "cache_write_tokens": pl.Int64(),
    "reasoning_tokens": pl.Int64(),
    "cost_usd": pl.Float64(),
    "feedback_kind": pl.String(),
    "feedback_correction": pl.String(),
    "feedback_rationale": pl.String(),
    "reviewer": pl.String(),
    "attributes": pl.String(),
}
FIELDS: Final = tuple(FIELD_TYPES)
# Every string column of agent_events is screened for secrets before any write:
# - free text and labels are redacted in place (a marker such as [REDACTED:email] replaces
#   the secret). session_id, action, provider and model are labels: a redacted one only
#   groups less finely, and the event is kept.
# - keys are never rewritten: event_id dedups, trace_id and parent_id join steps, agent_id and
#   agent_type key memory, budgets and control. A secret there quarantines the record
#   (reason secret_in_identifier), since a redacted key would merge distinct records.
# - kind, agent_tier, status, outcome and feedback_kind only pass validation as known values;
#   source_file is the landing name, redacted where files are found.
TEXT_FIELDS: Final = (
    "action_target",
    "input_context",
    "reasoning_summary",
    "result",
    "error_type",
    "feedback_correction",
    "feedback_rationale",
    "reviewer",
    "attributes",
    "session_id",
    "action",
    "provider",
    "model",
)
KEY_FIELDS: Final = ("event_id", "trace_id", "parent_id", "agent_id", "agent_type")
# Labels and ids that repeat few values in a file: screened once per distinct value, and a
# value of digits alone is an id there, not a card number.
LABEL_FIELDS: Final = ("agent_id", "agent_type", "session_id", "action", "provider", "model")
REQUIRED_FIELDS: Final = ("event_id", "trace_id", "ts", "agent_id", "agent_type", "kind")
TOKEN_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)

EVENT_SCHEMA: Final = pl.Schema(
    {
        **FIELD_TYPES,
        "event_date": pl.Date(),
        "source_format": pl.String(),
        "source_file": pl.String(),
        "ingested_at": UTC_US,
    }
)

# What a reader hands to validation: every field as text, and where the record came from.
RAW_SCHEMA: Final = pl.Schema({"_index": pl.Int64(), **{name: pl.String() for name in FIELDS}})

QUARANTINE_SCHEMA: Final = pl.Schema(
    {
        "source_file": pl.String(),
        "record_index": pl.Int64(),  # 1-based line number, or span index in an OTLP file
        "source_format": pl.String(),
        "reason": pl.String(),  # a short code, e.g. "invalid_json", "missing_field"
        "detail": pl.String(),  # one sentence for a person
        "raw_text": pl.String(),  # the record as read, redacted, cut at RAW_TEXT_LIMIT
        "raw_bytes": pl.Int64(),  # full size of the record as read
        "file_hash": pl.String(),
        "ingested_at": UTC_US,
    }
)

INGESTED_FILES_SCHEMA: Final = pl.Schema(
    {
        "path": pl.String(),  # relative to the landing folder
        "content_hash": pl.String(),  # sha256 of the file as stored (compressed or not)
        "size_bytes": pl.Int64(),
        "modified_at": UTC_US,
        "source_format": pl.String(),
        "records": pl.Int64(),  # records read = good_rows + quarantined_rows
        "good_rows": pl.Int64(),  # = new_rows + duplicate_rows
        "new_rows": pl.Int64(),
        "duplicate_rows": pl.Int64(),  # event_ids already stored, or repeated in the file
        "quarantined_rows": pl.Int64(),
        "ingested_at": UTC_US,
        "duration_ms": pl.Float64(),
    }
)
