"""The capability registry (``capabilities.yaml``) and the tool calls that break it.

Each agent type lists the tools it may call (globs with :func:`fnmatch.fnmatchcase` semantics:
``*``, ``?``, ``[seq]``, case-sensitive), the data zones it may touch and the largest amount of
money it may move. ``"*"`` is the entry of every type without one of its own::

    agent_types:
      KYCAgent:
        tools: [lookup_account, fetch_document, score_risk, post_note]
        read_only: [lookup_account, fetch_document]   # what a sandboxed agent may still call
        data_zones: [public, internal]      # public | internal | restricted
        max_amount_usd: 0
      "*":
        tools: ["*"]

An entry that leaves out ``data_zones`` may touch every zone; one that leaves out
``max_amount_usd`` has no limit. A type with neither an entry nor a ``"*"`` entry may call no
tool (least capability).
"""

from __future__ import annotations

import fnmatch
from datetime import date
from pathlib import Path
from typing import Final, Literal

import polars as pl
import pydantic

from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.storage.policy_file import read_document
from agentops_assets.telemetry.schema import AGENT_EVENTS, EVENT_SCHEMA

CAPABILITIES_FILE: Final = "capabilities.yaml"
DEFAULT_ENTRY: Final = "*"
DataZone = Literal["public", "internal", "restricted"]
DATA_ZONES: Final[tuple[DataZone, ...]] = ("public", "internal", "restricted")

# What read_events reads of agent_events, and what capability_violations returns.
EVENT_COLUMNS: Final = (
    "event_date",
    "ts",
    "event_id",
    "trace_id",
    "agent_id",
    "agent_type",
    "kind",
    "action",
)
VIOLATION_SCHEMA: Final = pl.Schema(
    {
        "day": pl.Date(),
        "event_id": pl.String(),
        "trace_id": pl.String(),
        "agent_id": pl.String(),
        "agent_type": pl.String(),
        "action": pl.String(),
        "rule": pl.String(),
    }
)


class _Settings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Capability(_Settings):
    """What one agent type may do."""

    tools: list[str]
    read_only: list[str] = pydantic.Field(default_factory=list)
    data_zones: tuple[DataZone, ...] = DATA_ZONES
    max_amount_usd: float | None = pydantic.Field(default=None, ge=0)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _has_tools(cls, value: object) -> object:
        # read_document names a missing key by its parent; say which key is missing.
        if isinstance(value, dict) and "tools" not in value:
            raise ValueError("must list its 'tools' (use [] for none)")
        return value

    @pydantic.field_validator("tools")
    @classmethod
    def _named_tools(cls, value: list[str]) -> list[str]:
        if any(not tool for tool in value):
            raise ValueError("must name tools; an empty name matches nothing")
        if len(set(value)) < len(value):
            raise ValueError("lists a tool twice")
        return value

    @pydantic.model_validator(mode="after")
    def _read_only_tools_are_tools(self) -> Capability:
        stray = [tool for tool in self.read_only if not self.allows_tool(tool)]
        if stray:
            raise ValueError(f"read_only names {stray[0]!r}, which is not one of its tools")
        return self

    @pydantic.field_validator("data_zones")
    @classmethod
    def _distinct_zones(cls, value: tuple[DataZone, ...]) -> tuple[DataZone, ...]:
        if len(set(value)) < len(value):
            raise ValueError("lists a zone twice")
        return value

    def read_only_tool(self, action: str | None) -> bool:
        """Whether ``action`` only reads (what a sandboxed agent may still call)."""
        return any(fnmatch.fnmatchcase(action or "", tool) for tool in self.read_only)

    def allows_tool(self, action: str | None) -> bool:
        """Whether ``action`` matches one of the tool globs (a missing action matches only
        ``*``)."""
        return any(fnmatch.fnmatchcase(action or "", tool) for tool in self.tools)


class CapabilityRegistry(_Settings):
    """The whole of ``capabilities.yaml``."""

    agent_types: dict[str, Capability] = pydantic.Field(default_factory=dict)

    @pydantic.field_validator("agent_types")
    @classmethod
    def _named_types(cls, value: dict[str, Capability]) -> dict[str, Capability]:
        if any(not name.strip() for name in value):
            raise ValueError("has an agent type with an empty name")
        return value

    def entry(self, agent_type: str | None) -> Capability | None:
        """The entry that governs ``agent_type``: its own, else ``"*"``, else ``None``."""
        own = self.agent_types.get(agent_type or "")
        return own if own is not None else self.agent_types.get(DEFAULT_ENTRY)

    def tool_rule(self, agent_type: str | None, action: str | None) -> str | None:
        """``None`` when ``agent_type`` may call ``action``, else the rule it breaks."""
        name = agent_type or "an agent of unknown type"
        own = self.agent_types.get(agent_type or "")
        if own is not None:
            return None if own.allows_tool(action) else f"tool not in {name}'s registry"
        default = self.agent_types.get(DEFAULT_ENTRY)
        if default is None:
            return f"{name} has no registry entry and there is no '*' entry"
        return None if default.allows_tool(action) else f"tool not in the '*' registry ({name})"


def load_capabilities(path: Path) -> CapabilityRegistry:
    """The registry in ``path``.

    Raises:
        PolicyFileError: One sentence naming the file and the line of the mistake (a missing
            file too: the registry is the basis of every decision, so it is never guessed).
    """
    return read_document(path, CapabilityRegistry)


def load_registry(paths: Paths) -> CapabilityRegistry:
    """The registry in the policies folder, else the shipped ``capabilities.yaml``."""
    return load_capabilities(paths.policy_file(CAPABILITIES_FILE))


def read_events(paths: Paths, first_day: date, last_day: date) -> pl.LazyFrame:
    """The ``agent_events`` columns the registry checks, for ``event_date`` in [first_day,
    last_day]; empty when the table does not exist yet. Partitions outside the range are
    never read."""
    if last_day < first_day:
        raise ValueError(f"last_day {last_day} is before first_day {first_day}.")
    frame = lake.scan(paths.table_uri(AGENT_EVENTS))
    if frame is None:
        return pl.LazyFrame(schema={name: EVENT_SCHEMA[name] for name in EVENT_COLUMNS})
    return frame.filter(pl.col("event_date").is_between(first_day, last_day)).select(EVENT_COLUMNS)


def capability_violations(
    events: pl.LazyFrame | pl.DataFrame, registry: CapabilityRegistry
) -> pl.DataFrame:
    """Every ``tool_call`` event whose action is outside its agent type's registry entry.

    Each distinct (agent_type, action) pair is matched against the globs once; the events
    then join the pairs that break a rule.

    Args:
        events: ``agent_events`` rows with at least ``event_date``, ``event_id``,
            ``trace_id``, ``agent_id``, ``agent_type``, ``kind`` and ``action`` (e.g. from
            :func:`read_events`).
        registry: The capability registry.

    Returns:
        One row per violating event in ``VIOLATION_SCHEMA``, ordered by day and event id.

    Example:
        >>> found = capability_violations(read_events(paths, first, last), load_registry(paths))
    """
    calls = events.lazy().filter(pl.col("kind") == "tool_call")
    pairs = calls.select("agent_type", "action").unique().collect()
    broken = [
        (agent_type, action, rule)
        for agent_type, action in pairs.iter_rows()
        if (rule := registry.tool_rule(agent_type, action)) is not None
    ]
    if not broken:
        return VIOLATION_SCHEMA.to_frame()
    rules = pl.LazyFrame(
        broken,
        schema={"agent_type": pl.String, "action": pl.String, "rule": pl.String},
        orient="row",
    )
    return (
        calls.join(rules, on=["agent_type", "action"], how="inner", nulls_equal=True)
        .select(pl.col("event_date").alias("day"), *list(VIOLATION_SCHEMA)[1:])
        .sort("day", "event_id")
        .collect()
        .cast(dict(VIOLATION_SCHEMA))
    )
