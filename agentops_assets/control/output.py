"""The control file agent runtimes read: ``$AGENTOPS_HOME/control/autonomy.json``.

Written whole to a temporary file in the same folder, flushed to disk, then renamed over the
old one, so a reader opens either the previous file or the new one, never a part of one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from agentops_assets.control.tables import CONTROL_FILE
from agentops_assets.governance.capabilities import CapabilityRegistry
from agentops_assets.storage.atomic import replace_file
from agentops_assets.storage.config import Paths

FORMAT_VERSION = 1


def control_path(paths: Paths) -> Path:
    """Where the control file lives."""
    return paths.home / "control" / CONTROL_FILE


def document(
    states: pl.DataFrame,
    day: date,
    registry: CapabilityRegistry | None,
    budgets: Mapping[str, str],
    *,
    routes: Mapping[tuple[str, str | None], Mapping[str, Any]] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The control document: per agent and per type its state, why, since and until when,
    the tools it may call in that state, its type's budget status of the day, and its
    failover route."""
    agents: dict[str, Any] = {}
    types: dict[str, Any] = {}
    for row in states.iter_rows(named=True):
        entry = {
            "agent_type": row["agent_type"],
            "state": row["state"],
            "reason": row["reason"],
            "rule": row["rule"],
            "override": row["override"],
            "evidence_ids": row["evidence_ids"] or [],
            "since": row["since"].isoformat() if row["since"] else None,
            "until": row["until"].isoformat() if row["until"] else None,
            "allowed_tools": allowed_tools(registry, row["agent_type"], row["state"]),
            "budget_status": budgets.get(row["agent_type"], "ok"),
            "failover_route": (routes or {}).get((row["agent_type"], row["agent_id"])),
        }
        if row["agent_id"] is None:
            types[row["agent_type"]] = entry
        else:
            agents[row["agent_id"]] = entry
    return {
        "version": FORMAT_VERSION,
        "generated_at": (now or datetime.now(UTC)).isoformat(),
        "day": day.isoformat(),
        "agents": agents,
        "agent_types": types,
    }


def allowed_tools(registry: CapabilityRegistry | None, agent_type: str, state: str) -> list[str]:
    """The tool globs an agent of ``agent_type`` may call in ``state``: its registry entry's
    tools, only the read-only ones when sandboxed, none when frozen or without an entry."""
    entry = registry.entry(agent_type) if registry is not None else None
    if entry is None or state == "frozen":
        return []
    return list(entry.read_only) if state == "sandboxed" else list(entry.tools)


def write_atomically(path: Path, content: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``content`` as JSON; readers never see a partial file."""
    data = orjson.dumps(content, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    replace_file(path, data)
