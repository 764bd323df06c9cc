"""The control tables and the control file: names and schemas."""

from __future__ import annotations

from typing import Final

import polars as pl

from agentops_assets.control.states import STATE_SCHEMA

AUTONOMY_STATE: Final = "autonomy_state"
AUTONOMY_HISTORY: Final = "autonomy_history"
AUTONOMY_OVERRIDES: Final = "autonomy_overrides"
CONTROL_FILE: Final = "autonomy.json"  # under $AGENTOPS_HOME/control
UTC_US: Final = pl.Datetime("us", "UTC")

# The current state of every agent (and of every type: agent_id null), rewritten each run.
CURRENT_SCHEMA: Final = pl.Schema(
    {"day": pl.Date(), **STATE_SCHEMA, "evaluated_at": UTC_US}  # type: ignore[dict-item]
)
# One row per change of state, appended.
HISTORY_SCHEMA: Final = pl.Schema(
    {
        "changed_at": UTC_US,
        "day": pl.Date(),
        "agent_type": pl.String(),
        "agent_id": pl.String(),
        "from_state": pl.String(),
        "to_state": pl.String(),
        "rule": pl.String(),
        "reason": pl.String(),
        "evidence_ids": pl.List(pl.String()),
        "actor": pl.String(),
    }
)
# Supervisors' overrides and releases, appended; a lifted override gets lifted_at/by.
OVERRIDE_SCHEMA: Final = pl.Schema(
    {
        "override_id": pl.String(),
        "kind": pl.String(),  # "set" or "release"
        "agent_type": pl.String(),
        "agent_id": pl.String(),
        "state": pl.String(),  # null for a release
        "reason": pl.String(),
        "by": pl.String(),
        "since": UTC_US,
        "until": UTC_US,
        "lifted_at": UTC_US,
        "lifted_by": pl.String(),
    }
)
