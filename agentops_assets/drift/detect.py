"""Drift detection: each day's behaviour of every agent type and agent against its own past.

:func:`detect_drift` takes the cycles of ``[first_day - window_days, last_day]`` and returns the
baselines and the findings of every day in ``[first_day, last_day]``. A finding needs all of:

- a baseline of at least ``min_history_days`` days with data, and enough cycles on the day;
- a change in the direction the metric's rule watches;
- significance after Benjamini-Hochberg control over all of that day's tests (every type,
  agent and metric) at the policy's false discovery rate;
- an effect of at least the rule's ``warning`` size; ``critical`` needs the rule's critical
  size and an adjusted p below ``critical_p``;
- for a rate, a day that differs from what the baseline rate predicts by at least
  ``min_excess_events`` events.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from agentops_assets.drift.baselines import KEY, daily_aggregates, trailing_baselines
from agentops_assets.drift.metrics import (
    CONTINUOUS,
    CYCLE_COLUMNS,
    EVENT_COUNTS,
    METRICS,
    format_value,
)
from agentops_assets.drift.policy import DriftPolicy
from agentops_assets.drift.significance import (
    benjamini_hochberg,
    distribution_test,
    mean_tests,
    rate_tests,
)
from agentops_assets.drift.tables import BASELINES_SCHEMA, FINDINGS_SCHEMA

# At most this many cycles of one window day, and of the tested day, enter a type's KS test
# (drawn at random with a fixed seed): enough for a precise test, and a busy type stays fast.
_MAX_WINDOW_SAMPLE_PER_DAY = 400
_MAX_CURRENT_SAMPLE = 5_000


@dataclass(frozen=True)
class DriftResult:
    """Baselines (``BASELINES_SCHEMA``) and findings (``FINDINGS_SCHEMA``) of a range of days."""

    baselines: pl.DataFrame
    findings: pl.DataFrame


def detect_drift(
    cycles: pl.DataFrame, first_day: date, last_day: date, policy: DriftPolicy | None = None
) -> DriftResult:
    """Baselines and findings of every day in ``[first_day, last_day]``.

    Args:
        cycles: ``reasoning_cycles`` rows (at least :data:`CYCLE_COLUMNS`) with the
            :data:`EVENT_COUNTS` of each cycle, of the days ``[first_day - window_days, last_day]``.
        first_day: First day to test.
        last_day: Last day to test, inclusive.
        policy: ``drift.yaml``; the defaults when ``None``.
    """
    policy = policy or DriftPolicy()
    if first_day > last_day:
        raise ValueError(f"first_day ({first_day}) must not be after last_day ({last_day}).")
    cycles = cycles.select(*CYCLE_COLUMNS, *EVENT_COUNTS)
    rows = trailing_baselines(daily_aggregates(cycles), first_day, last_day, policy.window_days)
    rows = _with_rules(rows, policy)
    tested = _test(rows, cycles, policy)
    return DriftResult(_baselines(rows, tested), _findings(tested, policy))


def _with_rules(rows: pl.DataFrame, policy: DriftPolicy) -> pl.DataFrame:
    """Each row's rule settings (per type), and whether it is eligible for a test."""
    rules = pl.DataFrame(
        [
            {
                "agent_type": agent_type,
                "metric": metric,
                **policy.rule(metric, agent_type).model_dump(),
            }
            for agent_type in rows["agent_type"].unique().to_list()
            for metric in METRICS
        ],
        schema={
            "agent_type": pl.String,
            "metric": pl.String,
            "direction": pl.String,
            "warning": pl.Float64,
            "critical": pl.Float64,
            "enabled": pl.Boolean,
        },
    )
    min_n = (
        pl.when(pl.col("agent_id").is_null())
        .then(policy.min_cycles_type)
        .otherwise(policy.min_cycles_agent)
    )
    return rows.join(rules, on=["agent_type", "metric"], how="left").with_columns(
        (
            pl.col("enabled")
            & (pl.col("window_days") >= policy.min_history_days)
            & (pl.col("current_n") >= min_n)
            & pl.col("baseline_value").is_not_null()
            & pl.col("current_value").is_not_null()
        ).alias("eligible")
    )


def _test(rows: pl.DataFrame, cycles: pl.DataFrame, policy: DriftPolicy) -> pl.DataFrame:
    """The eligible rows with their test, statistic, two-sided p, effect and adjusted p."""
    eligible = rows.filter("eligible")
    is_rate = pl.col("metric").is_in(list(CONTINUOUS)).not_()
    agent = pl.col("agent_id").is_not_null()
    parts = [
        rate_tests(eligible.filter(is_rate)),
        mean_tests(eligible.filter(~is_rate & agent)),
        _distribution_tests(eligible.filter(~is_rate & ~agent), cycles, policy.window_days),
    ]
    columns = [*eligible.columns, "test", "statistic", "p_value", "effect_size", "p50", "p99"]
    tested = pl.concat(
        [
            part.with_columns(
                *(
                    pl.lit(None, pl.Float64).alias(name)
                    for name in ("p50", "p99")
                    if name not in part.columns
                )
            ).select(columns)
            for part in parts
        ]
    )
    adjusted = [
        day_rows.with_columns(
            pl.Series("p_adjusted", benjamini_hochberg(day_rows["p_value"].to_numpy()))
        )
        for day_rows in tested.partition_by("day", maintain_order=True)
    ]
    return (
        pl.concat(adjusted)
        if adjusted
        else tested.with_columns(p_adjusted=pl.lit(None, pl.Float64))
    )


def _distribution_tests(rows: pl.DataFrame, cycles: pl.DataFrame, window_days: int) -> pl.DataFrame:
    """KS and normalised Wasserstein for each type-day row of a continuous metric."""
    if rows.is_empty():
        return rows.with_columns(
            pl.lit("ks").alias("test"),
            *(
                pl.lit(None, pl.Float64).alias(c)
                for c in ("statistic", "p_value", "effect_size", "p50", "p99")
            ),
        )
    samples = _daily_samples(cycles, rows["agent_type"].unique().to_list())
    rng = np.random.default_rng(0)
    out = []
    for row in rows.iter_rows(named=True):
        by_day = samples.get((row["agent_type"], row["metric"]), {})
        current = _capped(by_day.get(row["day"], np.empty(0)), _MAX_CURRENT_SAMPLE, rng)
        window = [
            _capped(by_day[d], _MAX_WINDOW_SAMPLE_PER_DAY, rng)
            for d in by_day
            if 0 < (row["day"] - d).days <= window_days and len(by_day[d])
        ]
        if not len(current) or not window:
            out.append((None, None, None, None, None))
            continue
        out.append(distribution_test(current, window, row["baseline_spread"] or 0.0))
    statistic, p_value, effect, p50, p99 = (list(column) for column in zip(*out, strict=True))
    return rows.with_columns(
        pl.lit("ks").alias("test"),
        pl.Series("statistic", statistic, pl.Float64),
        pl.Series("p_value", p_value, pl.Float64),
        pl.Series("effect_size", effect, pl.Float64),
        pl.Series("p50", p50, pl.Float64),
        pl.Series("p99", p99, pl.Float64),
    )


def _daily_samples(
    cycles: pl.DataFrame, agent_types: list[str]
) -> dict[tuple[str, str], dict[date, np.ndarray]]:
    """The values of each continuous metric per type and day, as numpy arrays."""
    values = cycles.filter(pl.col("agent_type").is_in(agent_types)).select(
        "day",
        "agent_type",
        *(METRICS[name].value.cast(pl.Float64).alias(name) for name in CONTINUOUS),
    )
    samples: dict[tuple[str, str], dict[date, np.ndarray]] = {}
    for (day, agent_type), part in values.partition_by(
        "day", "agent_type", as_dict=True, maintain_order=True
    ).items():
        for name in CONTINUOUS:
            column = part[name].drop_nulls().drop_nans().to_numpy()
            samples.setdefault((agent_type, name), {})[day] = column
    return samples


def _capped(values: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    if len(values) <= cap:
        return values
    return rng.choice(values, cap, replace=False)


def _baselines(rows: pl.DataFrame, tested: pl.DataFrame) -> pl.DataFrame:
    quantiles = tested.select(
        *KEY, pl.col("p50").alias("baseline_p50"), pl.col("p99").alias("baseline_p99")
    )
    return (
        rows.filter(pl.col("window_days") > 0)
        .join(quantiles, on=list(KEY), how="left", nulls_equal=True)
        .select(pl.col(name).cast(dtype) for name, dtype in BASELINES_SCHEMA.items())
        .sort(*KEY, nulls_last=False)
    )


def _findings(tested: pl.DataFrame, policy: DriftPolicy) -> pl.DataFrame:
    change = pl.col("current_value") - pl.col("baseline_value")
    direction_ok = (
        (pl.col("direction") == "both")
        | ((pl.col("direction") == "up") & (change > 0))
        | ((pl.col("direction") == "down") & (change < 0))
    )
    excess = (pl.col("current_hits") - pl.col("current_n") * pl.col("baseline_value")).abs()
    enough = pl.col("current_hits").is_null() | (excess >= policy.min_excess_events)
    found = tested.filter(
        direction_ok
        & enough
        & (pl.col("p_adjusted") < policy.fdr)
        & (pl.col("effect_size") >= pl.col("warning"))
    ).with_columns(
        pl.when(
            (pl.col("effect_size") >= pl.col("critical"))
            & (pl.col("p_adjusted") < policy.critical_p)
        )
        .then(pl.lit("critical"))
        .otherwise(pl.lit("warning"))
        .alias("severity"),
        pl.when(pl.col("baseline_value") != 0)
        .then(change / pl.col("baseline_value").abs() * 100)
        .alias("change_pct"),
        pl.col("p_adjusted").alias("p_value"),
    )
    if found.is_empty():
        return pl.DataFrame(schema=FINDINGS_SCHEMA)
    found = found.with_columns(
        pl.Series(
            "detail", [_sentence(row, policy.window_days) for row in found.iter_rows(named=True)]
        ),
        pl.Series("finding_id", [_finding_id(row) for row in found.iter_rows(named=True)]),
    )
    return found.select(pl.col(name).cast(dtype) for name, dtype in FINDINGS_SCHEMA.items()).sort(
        "day", "agent_type", "agent_id", "metric", nulls_last=False
    )


def _sentence(row: dict, window_days: int) -> str:
    """E.g. "UnderwritingAgent confidence fell from 0.84 to 0.64 (-24 %) on 2026-10-19 against
    the 14 days before; p < 1e-6."."""
    who = (
        row["agent_type"] if row["agent_id"] is None else f"{row['agent_id']} ({row['agent_type']})"
    )
    metric = row["metric"]
    verb = "rose" if row["current_value"] > row["baseline_value"] else "fell"
    change = f" ({row['change_pct']:+.0f} %)" if row["change_pct"] is not None else ""
    p = row["p_value"]
    p_text = "p < 1e-6" if p < 1e-6 else f"p = {p:.1g}"
    return (
        f"{who} {metric} {verb} from {format_value(metric, row['baseline_value'])} to "
        f"{format_value(metric, row['current_value'])}{change} on {row['day']} against the "
        f"{window_days} days before; {p_text}."
    )


def _finding_id(row: dict) -> str:
    key = f"drift|{row['day']}|{row['agent_type']}|{row['agent_id'] or ''}|{row['metric']}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]
