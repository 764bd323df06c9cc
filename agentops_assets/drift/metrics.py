"""The behaviour metrics drift is tested on: names, meaning, and how each comes from a cycle.

The names are a contract: the tables, the CLI, the checks, the alerts and SQL users all use
them. A metric is either *continuous* (one value per reasoning cycle, compared as a
distribution) or a *rate* (successes over trials summed over cycles, compared as a proportion).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

import polars as pl

from agentops_assets.finops.cycles import INTERVENTION_FEEDBACK


@dataclass(frozen=True)
class Metric:
    """One metric: a per-cycle value, or a rate's numerator and denominator per cycle."""

    name: str
    kind: Literal["continuous", "rate"]
    description: str
    unit: Literal["ratio", "percent", "ms", "usd", "tokens"]
    value: pl.Expr | None = None  # continuous: the cycle's value (null: not measured)
    hits: pl.Expr | None = None  # rate: numerator per cycle
    trials: pl.Expr | None = None  # rate: denominator per cycle
    default_rule: dict[str, object] = field(default_factory=dict)


_UP: Final = {"direction": "up"}
_DOWN: Final = {"direction": "down"}
# Effect sizes: a continuous metric's shift in baseline spreads; a rate's Cohen's h.
_CONTINUOUS: Final = {"warning": 0.5, "critical": 1.0}
_RATE: Final = {"warning": 0.3, "critical": 0.6}
_col = pl.col

METRICS: Final[dict[str, Metric]] = {
    metric.name: metric
    for metric in (
        Metric(
            "confidence",
            "continuous",
            "confidence of the cycle's final decision",
            "ratio",
            value=_col("final_confidence"),
            default_rule={**_DOWN, **_CONTINUOUS},
        ),
        Metric(
            "success_rate",
            "rate",
            "share of decided cycles whose outcome is success",
            "percent",
            hits=(_col("outcome") == "success").cast(pl.Int64),
            trials=_col("outcome").is_in(["success", "failure"]).cast(pl.Int64),
            default_rule={**_DOWN, **_RATE},
        ),
        Metric(
            "reprompt_rate",
            "rate",
            "re-prompts (LLM calls with attempt > 0) per LLM call",
            "percent",
            hits=_col("reprompts"),
            trials=_col("llm_calls"),
            default_rule={**_UP, **_RATE},
        ),
        Metric(
            "intervention_rate",
            "rate",
            f"share of cycles a human changed ({' or '.join(INTERVENTION_FEEDBACK)})",
            "percent",
            hits=(_col("human_interventions") > 0).cast(pl.Int64),
            trials=pl.lit(1, pl.Int64),
            default_rule={**_UP, **_RATE},
        ),
        Metric(
            "tool_error_rate",
            "rate",
            "tool calls that ended in an error, per tool call",
            "percent",
            hits=_col("tool_errors"),
            trials=_col("tool_calls"),
            default_rule={**_UP, **_RATE},
        ),
        Metric(
            "retry_rate",
            "rate",
            "tool call retries (attempt > 0) per tool call",
            "percent",
            hits=_col("retries"),
            trials=_col("tool_calls"),
            default_rule={**_UP, **_RATE},
        ),
        Metric(
            "context_defect_rate",
            "rate",
            "steps whose input context is blank or garbled (replacement characters, mojibake), "
            "per step with an input context",
            "percent",
            hits=_col("context_defects"),
            trials=_col("contexts"),
            default_rule={**_UP, **_RATE},
        ),
        Metric(
            "time_to_decision",
            "continuous",
            "milliseconds from the cycle's start to the end of its last decision",
            "ms",
            value=_col("time_to_decision_ms"),
            default_rule={**_UP, **_CONTINUOUS},
        ),
        Metric(
            "cost_per_cycle",
            "continuous",
            "US dollars the cycle's LLM calls cost",
            "usd",
            value=_col("cost_usd"),
            default_rule={**_UP, **_CONTINUOUS},
        ),
        Metric(
            "tokens_per_cycle",
            "continuous",
            "input plus output tokens of the cycle (cached and reasoning tokens included)",
            "tokens",
            value=(_col("input_tokens") + _col("output_tokens")).cast(pl.Float64),
            default_rule={**_UP, **_CONTINUOUS},
        ),
    )
}
CONTINUOUS: Final = tuple(name for name, m in METRICS.items() if m.kind == "continuous")

# The reasoning_cycles columns the metrics read.
CYCLE_COLUMNS: Final = (
    "trace_id",
    "day",
    "agent_id",
    "agent_type",
    "started_at",
    "final_confidence",
    "outcome",
    "reprompts",
    "llm_calls",
    "human_interventions",
    "tool_calls",
    "retries",
    "time_to_decision_ms",
    "cost_usd",
    "input_tokens",
    "output_tokens",
)

# Per-cycle counts of agent_events the metrics read too (see drift.inputs.read_cycles).
EVENT_COUNTS: Final = ("tool_errors", "contexts", "context_defects")


def format_value(metric: str, value: float | None) -> str:
    """``value`` of ``metric`` as a person reads it: 0.84, 12.5 %, 1,840 ms, $0.0123, 2,310."""
    if value is None:
        return "n/a"
    unit = METRICS[metric].unit
    if unit == "percent":
        return f"{value * 100:.3g} %"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "usd":
        return f"${value:.4f}" if abs(value) < 1 else f"${value:,.2f}"
    if unit == "tokens":
        return f"{value:,.0f}"
    return f"{value:.2f}"
