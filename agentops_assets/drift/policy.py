"""``drift.yaml``: the baseline window, the minimum history, and each metric's thresholds.

Thresholds are effect sizes, not raw differences, so one number fits every agent type: a
continuous metric's effect is its shift (Wasserstein distance, or the difference of means for
one agent) in units of the baseline's spread; a rate's effect is Cohen's h. A finding needs
both the effect and significance after Benjamini-Hochberg control over the day's tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pydantic

from agentops_assets.drift.metrics import METRICS
from agentops_assets.storage.policy_file import read_document

Direction = Literal["up", "down", "both"]


class _Settings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class MetricRule(_Settings):
    """When a change of one metric is a finding, and how severe it is."""

    direction: Direction = "both"
    warning: float = pydantic.Field(default=0.5, gt=0)  # minimum effect size of a warning
    critical: float = pydantic.Field(default=1.0, gt=0)  # minimum effect size of a critical
    enabled: bool = True

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> MetricRule:
        if self.critical < self.warning:
            raise ValueError("critical must be at least warning")
        return self


class MetricOverride(_Settings):
    """A per-type change of some of a metric's settings."""

    direction: Direction | None = None
    warning: float | None = pydantic.Field(default=None, gt=0)
    critical: float | None = pydantic.Field(default=None, gt=0)
    enabled: bool | None = None


def _default_rules() -> dict[str, MetricRule]:
    return {name: MetricRule(**metric.default_rule) for name, metric in METRICS.items()}


class DriftPolicy(_Settings):
    """The whole of ``drift.yaml``; every key is optional."""

    window_days: int = pydantic.Field(default=14, ge=2, le=90)
    min_history_days: int = pydantic.Field(default=7, ge=1, le=90)
    fdr: float = pydantic.Field(default=0.01, gt=0, lt=0.5)  # Benjamini-Hochberg level
    critical_p: float = pydantic.Field(default=1e-4, gt=0, lt=0.5)  # adjusted p of a critical
    min_cycles_type: int = pydantic.Field(default=30, ge=2)  # a type-day with fewer is not tested
    min_cycles_agent: int = pydantic.Field(default=15, ge=2)
    # A rate finding needs the day to differ from what the baseline rate predicts by at least
    # this many events: 2 overrides where 0.5 were expected is not a finding, however rare.
    min_excess_events: int = pydantic.Field(default=5, ge=0)
    metrics: dict[str, MetricRule] = pydantic.Field(default_factory=_default_rules)
    agent_types: dict[str, dict[str, MetricOverride]] = pydantic.Field(default_factory=dict)

    @pydantic.field_validator("metrics", mode="before")
    @classmethod
    def _merge_defaults(cls, value: object) -> object:
        """Metrics the file leaves out, or settings a metric leaves out, keep their defaults."""
        if not isinstance(value, dict):
            return value
        merged: dict[str, object] = {}
        for name, metric in METRICS.items():
            given = value.get(name)
            merged[name] = (
                {**metric.default_rule, **given} if isinstance(given, dict) else given or {}
            )
            if given is None:
                merged[name] = dict(metric.default_rule)
        unknown = sorted(set(value) - set(METRICS))
        if unknown:
            raise ValueError(
                f"has an unknown metric '{unknown[0]}'; expected one of {', '.join(METRICS)}"
            )
        return merged

    @pydantic.field_validator("agent_types")
    @classmethod
    def _valid_overrides(
        cls, value: dict[str, dict[str, MetricOverride]], info: pydantic.ValidationInfo
    ) -> dict[str, dict[str, MetricOverride]]:
        """Known metrics, and every merged rule valid (a raised warning needs its critical)."""
        metrics = info.data.get("metrics") or _default_rules()
        for agent_type, overrides in value.items():
            unknown = sorted(set(overrides) - set(METRICS))
            if unknown:
                raise ValueError(
                    f"has an unknown metric '{unknown[0]}'; expected one of {', '.join(METRICS)}"
                )
            for metric, override in overrides.items():
                try:
                    _merged(metrics[metric], override)
                except pydantic.ValidationError:
                    raise ValueError(
                        f"sets the warning of {agent_type} {metric} above its critical"
                    ) from None
        return value

    @pydantic.model_validator(mode="after")
    def _history_fits_window(self) -> DriftPolicy:
        if self.min_history_days > self.window_days:
            raise ValueError("min_history_days must not exceed window_days")
        return self

    def rule(self, metric: str, agent_type: str) -> MetricRule:
        """The rule of ``metric`` for ``agent_type``, with the type's overrides applied."""
        base = self.metrics[metric]
        override = self.agent_types.get(agent_type, {}).get(metric)
        return base if override is None else _merged(base, override)


def _merged(base: MetricRule, override: MetricOverride) -> MetricRule:
    changes = {k: v for k, v in override.model_dump().items() if v is not None}
    return MetricRule(**{**base.model_dump(), **changes})


def load_drift_policy(path: Path) -> DriftPolicy:
    """The policy in ``path``; a missing file is the defaults.

    Raises:
        PolicyFileError: One sentence naming the file and the line of the mistake.
    """
    if not path.exists():
        return DriftPolicy()
    return read_document(path, DriftPolicy)
