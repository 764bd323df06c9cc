"""Daily aggregates of every metric per agent type and per agent, and trailing baselines.

A baseline is built from daily aggregates, each day of the window weighted equally, so that
volume rhythms do not move it: a quiet Sunday with a tenth of Monday's cycles counts as one day,
like Monday. Its spread is the whole variation of a cycle's value around the baseline: within
days plus between days (``within_var + between_var``), so a metric that wanders from day to day
is not flagged for the wandering alone.
"""

from __future__ import annotations

from datetime import date
from typing import Final

import polars as pl

from agentops_assets.drift.metrics import METRICS

SCOPE: Final = ("agent_type", "agent_id")
KEY: Final = ("day", *SCOPE, "metric")


def daily_aggregates(cycles: pl.DataFrame) -> pl.DataFrame:
    """Per day, scope (each agent type with ``agent_id`` null, and each agent) and metric.

    Columns: ``n`` (cycles measured, or trials of a rate), ``mean`` (the rate for a rate),
    ``var`` (within the day; 0 for a rate) and ``hits`` (a rate's numerator; null otherwise).
    """
    per_cycle = cycles.select(
        "day",
        "agent_type",
        "agent_id",
        *(_per_cycle(name) for name in METRICS),
    )
    by_agent = per_cycle.group_by("day", "agent_type", "agent_id").agg(_aggregations())
    by_type = (
        per_cycle.group_by("day", "agent_type")
        .agg(_aggregations())
        .with_columns(pl.lit(None, pl.String).alias("agent_id"))
    )
    wide = pl.concat([by_type, by_agent.select(by_type.columns)])
    parts = []
    for name, metric in METRICS.items():
        cols = [f"{name}__{part}" for part in ("n", "sum", "sumsq")]
        part = wide.select(
            "day",
            *SCOPE,
            pl.lit(name).alias("metric"),
            pl.col(cols[0]).cast(pl.Int64).alias("n"),
            pl.col(cols[1]).alias("total"),
            pl.col(cols[2]).alias("sumsq"),
        ).filter(pl.col("n") > 0)
        if metric.kind == "rate":
            part = part.with_columns(
                (pl.col("total") / pl.col("n")).alias("mean"),
                pl.lit(0.0).alias("var"),
                pl.col("total").alias("hits"),
            )
        else:
            mean = pl.col("total") / pl.col("n")
            part = part.with_columns(
                mean.alias("mean"),
                (pl.col("sumsq") / pl.col("n") - mean**2).clip(lower_bound=0.0).alias("var"),
                pl.lit(None, pl.Float64).alias("hits"),
            )
        parts.append(part.select(*KEY, "n", "mean", "var", "hits"))
    return pl.concat(parts)


def _per_cycle(name: str) -> list[pl.Expr] | pl.Expr:
    metric = METRICS[name]
    if metric.kind == "rate":
        return pl.struct(
            metric.hits.cast(pl.Float64).alias("hits"),
            metric.trials.cast(pl.Float64).alias("trials"),
        ).alias(name)
    return pl.struct(metric.value.cast(pl.Float64).alias("value")).alias(name)


def _aggregations() -> list[pl.Expr]:
    exprs = []
    for name, metric in METRICS.items():
        field = pl.col(name).struct
        if metric.kind == "rate":
            trials = field.field("trials").fill_null(0.0)
            hits = field.field("hits").fill_null(0.0).clip(upper_bound=trials)
            exprs += [
                trials.sum().alias(f"{name}__n"),
                hits.sum().alias(f"{name}__sum"),
                pl.lit(0.0).alias(f"{name}__sumsq"),
            ]
        else:
            value = field.field("value")
            exprs += [
                value.count().alias(f"{name}__n"),
                value.sum().alias(f"{name}__sum"),
                (value**2).sum().alias(f"{name}__sumsq"),
            ]
    return exprs


def trailing_baselines(
    daily: pl.DataFrame, first_day: date, last_day: date, window_days: int
) -> pl.DataFrame:
    """For each day in ``[first_day, last_day]``: the window of ``window_days`` days before it.

    Returns one row per day, scope and metric that has a baseline or a current value:
    ``window_days`` (days with data), ``baseline_n``, ``baseline_value`` (mean of the daily
    means), ``within_var``, ``between_var``, ``baseline_spread``, ``dispersion`` (a rate's
    quasi-binomial factor, at least 1), then ``current_n``, ``current_value``, ``current_var``
    and ``current_hits``.
    """
    days = pl.DataFrame(
        {"offset": list(range(1, window_days + 1))}, schema={"offset": pl.Int32}
    ).lazy()
    window = (
        daily.lazy()
        .join(days, how="cross")
        .with_columns((pl.col("day") + pl.duration(days=pl.col("offset"))).alias("target"))
        .filter(pl.col("target").is_between(first_day, last_day))
        .group_by("target", *SCOPE, "metric")
        .agg(
            pl.len().cast(pl.Int64).alias("window_days"),
            pl.col("n").sum().alias("baseline_n"),
            pl.col("mean").mean().alias("baseline_value"),
            pl.col("var").mean().alias("within_var"),
            pl.col("mean").var(ddof=0).alias("between_var"),
            pl.col("hits").sum().alias("baseline_hits"),
            _pearson().alias("pearson"),
        )
        .rename({"target": "day"})
    )
    current = (
        daily.lazy()
        .filter(pl.col("day").is_between(first_day, last_day))
        .select(
            *KEY,
            pl.col("n").alias("current_n"),
            pl.col("mean").alias("current_value"),
            pl.col("var").alias("current_var"),
            pl.col("hits").alias("current_hits"),
        )
    )
    joined = window.join(current, on=list(KEY), how="full", coalesce=True, nulls_equal=True)
    dispersion = (
        pl.when(pl.col("window_days") > 1)
        .then(pl.col("pearson") / (pl.col("window_days") - 1))
        .otherwise(1.0)
        .fill_nan(1.0)
        .fill_null(1.0)
        .clip(lower_bound=1.0)
    )
    return (
        joined.with_columns(
            pl.col("window_days").fill_null(0),
            pl.col("baseline_n").fill_null(0).cast(pl.Int64),
            pl.col("current_n").fill_null(0).cast(pl.Int64),
            (pl.col("within_var") + pl.col("between_var")).sqrt().alias("baseline_spread"),
            dispersion.alias("dispersion"),
        )
        .drop("pearson")
        .sort(*KEY, nulls_last=False)
        .collect()
    )


def _pearson() -> pl.Expr:
    """Pearson's X^2 of a rate's daily counts around the window's rate (over-dispersion)."""
    rate = pl.col("mean").mean()
    expected = pl.col("n") * rate
    return (
        pl.when((rate > 0) & (rate < 1))
        .then(((pl.col("hits") - expected) ** 2 / (expected * (1 - rate))).sum())
        .otherwise(None)
    )
