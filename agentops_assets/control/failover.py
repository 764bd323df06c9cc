"""Failover routes (``failover.yaml``): a backup model when a provider fails, people when
confidence collapses, nothing when frozen."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Final

import polars as pl
import pydantic

from agentops_assets.finops.providers import normalize_provider
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.storage.policy_file import read_document
from agentops_assets.telemetry.schema import AGENT_EVENTS

FAILOVER_FILE: Final = "failover.yaml"


class _Settings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Outage(_Settings):
    """When a provider counts as failing for a type on a day."""

    error_rate: float = pydantic.Field(default=0.25, gt=0, le=1)
    min_calls: int = pydantic.Field(default=20, ge=1)


def _model_ref(value: str) -> str:
    if value.count("/") != 1 or not all(value.split("/")):
        raise ValueError(f"{value!r} is not provider/model, e.g. openai/gpt-4o-mini")
    return value


class FailoverPolicy(_Settings):
    """The whole of ``failover.yaml``."""

    outage: Outage = Outage()
    backup: dict[str, str] = pydantic.Field(default_factory=dict)
    agent_types: dict[str, dict[str, str]] = pydantic.Field(default_factory=dict)

    @pydantic.field_validator("backup")
    @classmethod
    def _backups(cls, value: dict[str, str]) -> dict[str, str]:
        return {provider: _model_ref(model) for provider, model in value.items()}

    @pydantic.field_validator("agent_types")
    @classmethod
    def _type_backups(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        return {t: {p: _model_ref(m) for p, m in models.items()} for t, models in value.items()}

    def backup_for(self, agent_type: str, provider: str) -> str | None:
        """The backup model of ``provider`` for ``agent_type``, or None."""
        return self.agent_types.get(agent_type, {}).get(provider) or self.backup.get(provider)


def load_failover_policy(path: Path) -> FailoverPolicy:
    """The policy in ``path``.

    Raises:
        PolicyFileError: One sentence naming the file and the line of the mistake.
    """
    return read_document(path, FailoverPolicy)


def provider_health(paths: Paths, day: date) -> pl.DataFrame:
    """Per agent type and provider (its genai-prices id), the day's LLM calls, errors, error
    rate and most used model."""
    schema = {
        "agent_type": pl.String, "provider": pl.String, "model": pl.String,
        "calls": pl.UInt32, "errors": pl.UInt32, "error_rate": pl.Float64,
    }  # fmt: skip
    events = lake.scan(paths.table_uri(AGENT_EVENTS))
    if events is None:
        return pl.DataFrame(schema=schema)
    calls = events.filter(
        (pl.col("event_date") == day)
        & (pl.col("kind") == "llm_call")
        & pl.col("provider").is_not_null()
    ).select("agent_type", "provider", "model", "status")
    # Exporters spell providers their own way (gcp.gemini, vertex_ai): one id each, as FinOps.
    names = calls.select(pl.col("provider").unique()).collect()["provider"].to_list()
    canonical = {name: normalize_provider(name) for name in names}
    return (
        calls.with_columns(pl.col("provider").replace_strict(canonical, return_dtype=pl.String))
        .group_by("agent_type", "provider")
        .agg(
            pl.col("model").mode().sort().first().alias("model"),
            pl.len().alias("calls"),
            (pl.col("status") == "error").sum().alias("errors"),
        )
        .with_columns((pl.col("errors") / pl.col("calls")).alias("error_rate"))
        .sort("agent_type", "calls", descending=[False, True])
        .collect()
        .cast(schema)  # type: ignore[arg-type]
    )


def routes(
    states: pl.DataFrame, health: pl.DataFrame, policy: FailoverPolicy
) -> dict[tuple[str, str | None], dict[str, Any]]:
    """The route of every row of ``states`` (keyed by (agent_type, agent_id)): its state
    first, then its type's failing providers."""
    outage = policy.outage
    failing: dict[str, list[dict[str, Any]]] = {}
    for row in health.iter_rows(named=True):
        if row["calls"] >= outage.min_calls and row["error_rate"] >= outage.error_rate:
            failing.setdefault(row["agent_type"], []).append(row)
    found = {}
    for row in states.iter_rows(named=True):
        found[(row["agent_type"], row["agent_id"])] = _route(
            row["agent_type"], row["state"], failing.get(row["agent_type"], []), policy
        )
    return found


def _route(
    agent_type: str, state: str, failing: list[dict[str, Any]], policy: FailoverPolicy
) -> dict[str, Any]:
    if state == "frozen":
        return {"route": "freeze", "reason": "frozen: nothing runs"}
    if state == "human_only":
        return {"route": "human_review", "reason": "human_only: every decision goes to people"}
    for outage in failing:
        backup = policy.backup_for(agent_type, outage["provider"])
        reason = (
            f"{outage['errors']} of {outage['calls']} {outage['provider']} calls failed today "
            f"({outage['error_rate']:.0%})"
        )
        if backup is None:
            return {"route": "human_review", "reason": f"{reason}; no backup model configured"}
        return {
            "route": "backup_model",
            "from": f"{outage['provider']}/{outage['model']}",
            "to": backup,
            "reason": reason,
        }
    return {"route": "primary", "reason": "no failure"}
