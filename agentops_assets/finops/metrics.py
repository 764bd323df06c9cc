"""``agent_daily_metrics``: how well each agent reasoned each day, from its reasoning cycles.

Rates are ratios of sums over the day (reprompts / LLM calls, not a mean of per-cycle rates)
and are null when their denominator is zero. Quantiles use linear interpolation between the
two nearest values (numpy's default), so a p50 over an even count is the mean of the middle
two values.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from agentops_assets.telemetry.schema import TOKEN_FIELDS

QUANTILE_INTERPOLATION: Final = "linear"

DAILY_METRICS_SCHEMA: Final[dict[str, pl.DataType]] = {
    "day": pl.Date(),
    "agent_id": pl.String(),
    "agent_type": pl.String(),
    "agent_tier": pl.String(),
    "cycles": pl.Int64(),
    "decisions": pl.Int64(),
    "successful_decisions": pl.Int64(),
    "failed_decisions": pl.Int64(),
    "success_rate": pl.Float64(),
    "time_to_decision_p50_ms": pl.Float64(),
    "time_to_decision_p95_ms": pl.Float64(),
    "confidence_mean": pl.Float64(),
    "confidence_p10": pl.Float64(),
    "reprompt_rate": pl.Float64(),
    "retry_rate": pl.Float64(),
    "intervention_rate": pl.Float64(),
    "review_rate": pl.Float64(),
    "error_rate": pl.Float64(),
    "steps": pl.Int64(),
    "llm_calls": pl.Int64(),
    "tool_calls": pl.Int64(),
    "reprompts": pl.Int64(),
    "retries": pl.Int64(),
    "human_reviews": pl.Int64(),
    "human_interventions": pl.Int64(),
    "errors": pl.Int64(),
    **{name: pl.Int64() for name in TOKEN_FIELDS},
    "total_tokens": pl.Int64(),
    "value_usd": pl.Float64(),
    "cost_usd": pl.Float64(),
    "cost_per_cycle_usd": pl.Float64(),
    "cost_per_successful_decision_usd": pl.Float64(),
    "unpriced_calls": pl.Int64(),
}

_SUMMED: Final = (
    "steps",
    "llm_calls",
    "tool_calls",
    "reprompts",
    "retries",
    "human_reviews",
    "human_interventions",
    "errors",
    *TOKEN_FIELDS,
    "cost_usd",
    "unpriced_calls",
)


def agent_daily_metrics(cycles: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """One row per day and agent: outcomes, latency, confidence, friction, tokens and cost.

    Args:
        cycles: Rows of ``reasoning_cycles`` (``CYCLES_SCHEMA``), any number of days.

    Returns:
        Columns of ``DAILY_METRICS_SCHEMA``, ordered by ``day`` and ``agent_id``.
        ``decisions`` counts cycles that reached an outcome (success, failure or unknown);
        ``confidence_*`` describe the final confidence of those cycles; ``value_usd`` is 0.0
        when no cycle reported a value; ``cost_per_successful_decision_usd`` is null without a
        success.
    """
    outcome = pl.col("outcome")
    ttd = pl.col("time_to_decision_ms")
    confidence = pl.col("final_confidence")
    return (
        cycles.lazy()
        .group_by("day", "agent_id")
        .agg(
            pl.col("agent_type").drop_nulls().first(),
            pl.col("agent_tier").drop_nulls().first(),
            pl.len().alias("cycles"),
            outcome.is_not_null().sum().alias("decisions"),
            (outcome == "success").sum().alias("successful_decisions"),
            (outcome == "failure").sum().alias("failed_decisions"),
            ttd.quantile(0.5, QUANTILE_INTERPOLATION).alias("time_to_decision_p50_ms"),
            ttd.quantile(0.95, QUANTILE_INTERPOLATION).alias("time_to_decision_p95_ms"),
            confidence.mean().alias("confidence_mean"),
            confidence.quantile(0.1, QUANTILE_INTERPOLATION).alias("confidence_p10"),
            pl.col("value_usd").sum(),
            *(pl.col(name).sum() for name in _SUMMED),
        )
        .with_columns(
            _ratio("successful_decisions", "decisions").alias("success_rate"),
            _ratio("reprompts", "llm_calls").alias("reprompt_rate"),
            _ratio("retries", "tool_calls").alias("retry_rate"),
            _ratio("human_interventions", "cycles").alias("intervention_rate"),
            _ratio("human_reviews", "cycles").alias("review_rate"),
            _ratio("errors", "steps").alias("error_rate"),
            (pl.col("input_tokens") + pl.col("output_tokens")).alias("total_tokens"),
            _ratio("cost_usd", "cycles").alias("cost_per_cycle_usd"),
            _ratio("cost_usd", "successful_decisions").alias("cost_per_successful_decision_usd"),
        )
        .select(pl.col(name).cast(dtype) for name, dtype in DAILY_METRICS_SCHEMA.items())
        .sort("day", "agent_id")
        .collect()
    )


def _ratio(numerator: str, denominator: str) -> pl.Expr:
    """``numerator / denominator`` as a float, null when the denominator is zero."""
    return (
        pl.when(pl.col(denominator) != 0)
        .then(pl.col(numerator).cast(pl.Float64) / pl.col(denominator))
        .otherwise(None)
    )
