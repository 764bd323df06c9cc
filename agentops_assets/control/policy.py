"""``autonomy.yaml``: the rules that turn evidence into autonomy states, with hysteresis."""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

import pydantic

from agentops_assets.storage.policy_file import read_document

AUTONOMY_FILE: Final = "autonomy.yaml"
State = Literal["normal", "throttled", "sandboxed", "human_only", "frozen"]
STATES: Final[tuple[State, ...]] = ("normal", "throttled", "sandboxed", "human_only", "frozen")
RANK: Final = {state: rank for rank, state in enumerate(STATES)}
Source = Literal["drift_finding", "anomaly", "capability_violation", "budget"]
Scope = Literal["agent", "agent_type"]


class _Settings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Rule(_Settings):
    """Evidence of one kind puts an agent or a type into a state until it has been quiet."""

    name: str = pydantic.Field(min_length=1)
    source: Source
    scope: Scope
    state: State
    severity: tuple[str, ...] | None = None
    metrics: tuple[str, ...] | None = None
    periods: tuple[Literal["day", "month"], ...] | None = None
    min_days: int = pydantic.Field(default=1, ge=1, le=90)
    window_days: int = pydantic.Field(default=1, ge=1, le=90)
    quiet_days: int = pydantic.Field(ge=0, le=365)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> Rule:
        if self.state == "normal":
            raise ValueError("a rule restricts: its state cannot be 'normal'")
        if self.min_days > self.window_days:
            raise ValueError(f"min_days {self.min_days} cannot exceed window_days")
        if self.metrics is not None and self.source != "drift_finding":
            raise ValueError("metrics applies to source drift_finding only")
        if self.periods is not None and self.source != "budget":
            raise ValueError("periods applies to source budget only")
        return self


class AutonomyPolicy(_Settings):
    """The whole of ``autonomy.yaml``."""

    rules: tuple[Rule, ...] = ()

    @pydantic.field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        names = [rule.name for rule in rules]
        if len(set(names)) < len(names):
            raise ValueError("two rules have the same name")
        return rules


def load_autonomy_policy(path: Path) -> AutonomyPolicy:
    """The policy in ``path``.

    Raises:
        PolicyFileError: One sentence naming the file and the line of the mistake.
    """
    return read_document(path, AutonomyPolicy)
