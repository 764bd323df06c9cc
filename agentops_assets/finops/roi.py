"""``agent_type_roi``: value against cost per agent type, to date, with the period before.

For an "as of" day D each period runs to D: the day itself, the ISO week from its Monday, the
month from its 1st. The previous period runs to the same point, so a Wednesday is compared
with last week's Monday to Wednesday, and March 31 with February 1 to 28.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Final, Literal

import polars as pl

Period = Literal["day", "week", "month"]
PERIODS: Final[tuple[Period, ...]] = ("day", "week", "month")
# ROI moves of at most 5% of the previous ROI (or of 0.01 when that is near zero) are flat.
FLAT_TOLERANCE: Final = 0.05
FLAT_FLOOR: Final = 0.01

ROI_SCHEMA: Final[dict[str, pl.DataType]] = {
    "day": pl.Date(),
    "agent_type": pl.String(),
    "period": pl.String(),
    "period_start": pl.Date(),
    "period_end": pl.Date(),
    "agents": pl.Int64(),
    "cycles": pl.Int64(),
    "decisions": pl.Int64(),
    "successful_decisions": pl.Int64(),
    "value_usd": pl.Float64(),
    "cost_usd": pl.Float64(),
    "net_value_usd": pl.Float64(),
    "roi": pl.Float64(),
    "cost_per_successful_decision_usd": pl.Float64(),
    "success_rate": pl.Float64(),
    "prev_period_start": pl.Date(),
    "prev_period_end": pl.Date(),
    "prev_value_usd": pl.Float64(),
    "prev_cost_usd": pl.Float64(),
    "prev_roi": pl.Float64(),
    "prev_cost_per_successful_decision_usd": pl.Float64(),
    "roi_change": pl.Float64(),
    "cost_per_success_change_pct": pl.Float64(),
    "trend": pl.String(),
}

_KEYS: Final = ("day", "period", "agent_type")
_ONE_DAY: Final = timedelta(days=1)


def agent_type_roi(daily: pl.DataFrame | pl.LazyFrame, *, days: Sequence[date]) -> pl.DataFrame:
    """Per "as of" day, agent type and period: value, cost, ROI and the change since before.

    Args:
        daily: Rows of ``agent_daily_metrics`` (``day``, ``agent_id``, ``agent_type``,
            ``cycles``, ``decisions``, ``successful_decisions``, ``value_usd``, ``cost_usd``),
            covering ``days`` and, for comparisons, the month before the earliest of them.
        days: The "as of" days to report; repeats are ignored.

    Returns:
        Columns of ``ROI_SCHEMA``, ordered by ``day``, ``agent_type`` and period (day, week,
        month). An agent type gets rows from the first day it appears in ``daily``, with zeros
        for periods it was idle. ``roi`` is ``(value - cost) / cost``, null when the cost is 0;
        ``trend`` compares ``roi`` with ``prev_roi``: ``flat`` when the change is at most 5% of
        ``|prev_roi|`` (at least 0.01), else ``up`` or ``down``; null when either is null.

    Raises:
        ValueError: An element of ``days`` is not a date.
    """
    bad = [day for day in days if isinstance(day, datetime) or not isinstance(day, date)]
    if bad:
        raise ValueError(f"days must be dates (the 'as of' days), got {bad[0]!r}.")
    windows = _windows(sorted(set(days)))
    rows = daily.lazy().select(
        pl.col("day").alias("_day"),
        "agent_id",
        "agent_type",
        "cycles",
        "decisions",
        "successful_decisions",
        "value_usd",
        "cost_usd",
    )
    current = (
        windows.select(*_KEYS[:2], "period_start", "period_end")
        .join_where(
            rows,
            pl.col("_day") >= pl.col("period_start"),
            pl.col("_day") <= pl.col("period_end"),
        )
        .group_by(_KEYS)
        .agg(
            pl.col("agent_id").n_unique().alias("agents"),
            *(
                pl.col(name).sum()
                for name in ("cycles", "decisions", "successful_decisions", "value_usd", "cost_usd")
            ),
        )
    )
    previous = (
        windows.select(*_KEYS[:2], "prev_period_start", "prev_period_end")
        .join_where(
            rows,
            pl.col("_day") >= pl.col("prev_period_start"),
            pl.col("_day") <= pl.col("prev_period_end"),
        )
        .group_by(_KEYS)
        .agg(
            pl.col("value_usd").sum().alias("prev_value_usd"),
            pl.col("cost_usd").sum().alias("prev_cost_usd"),
            pl.col("successful_decisions").sum().alias("_prev_successes"),
        )
    )
    first_seen = rows.group_by("agent_type").agg(pl.col("_day").min().alias("_first_day"))
    return (
        windows.join(first_seen, how="cross")
        .filter(pl.col("_first_day") <= pl.col("day"))
        .join(current, on=_KEYS, how="left")
        .join(previous, on=_KEYS, how="left")
        .with_columns(pl.col(pl.Int64, pl.UInt32, pl.Float64).fill_null(0))
        .with_columns(
            (pl.col("value_usd") - pl.col("cost_usd")).alias("net_value_usd"),
            _roi("value_usd", "cost_usd").alias("roi"),
            _ratio("cost_usd", "successful_decisions").alias("cost_per_successful_decision_usd"),
            _ratio("successful_decisions", "decisions").alias("success_rate"),
            _roi("prev_value_usd", "prev_cost_usd").alias("prev_roi"),
            _ratio("prev_cost_usd", "_prev_successes").alias(
                "prev_cost_per_successful_decision_usd"
            ),
        )
        .with_columns(
            (pl.col("roi") - pl.col("prev_roi")).alias("roi_change"),
            _change_pct(
                "cost_per_successful_decision_usd", "prev_cost_per_successful_decision_usd"
            ).alias("cost_per_success_change_pct"),
        )
        .with_columns(_trend().alias("trend"))
        .select(pl.col(name).cast(dtype) for name, dtype in ROI_SCHEMA.items())
        .sort("day", "agent_type", pl.col("period").replace_strict(PERIODS, range(3)))
        .collect()
    )


def _windows(days: list[date]) -> pl.LazyFrame:
    """Per "as of" day and period: the period to date and the previous one to the same point."""
    day = pl.col("day")
    monday = day - pl.duration(days=day.dt.weekday() - 1)
    month_start = day.dt.month_start()
    frame = pl.LazyFrame({"day": days}, schema={"day": pl.Date()})
    # offset_by("-1mo") clips to the month's last day: March 31 -> February 28.
    bounds: dict[Period, tuple[pl.Expr, pl.Expr, pl.Expr]] = {
        "day": (day, day - _ONE_DAY, day - _ONE_DAY),
        "week": (monday, monday - timedelta(days=7), day - timedelta(days=7)),
        "month": (month_start, month_start.dt.offset_by("-1mo"), day.dt.offset_by("-1mo")),
    }
    return pl.concat(
        frame.select(
            day,
            pl.lit(period).alias("period"),
            start.alias("period_start"),
            day.alias("period_end"),
            prev_start.alias("prev_period_start"),
            prev_end.alias("prev_period_end"),
        )
        for period, (start, prev_start, prev_end) in bounds.items()
    )


def _roi(value: str, cost: str) -> pl.Expr:
    """``(value - cost) / cost``, null when nothing was spent."""
    return pl.when(pl.col(cost) != 0).then((pl.col(value) - pl.col(cost)) / pl.col(cost))


def _ratio(numerator: str, denominator: str) -> pl.Expr:
    """``numerator / denominator`` as a float, null when the denominator is zero or null."""
    return pl.when(pl.col(denominator) != 0).then(
        pl.col(numerator).cast(pl.Float64) / pl.col(denominator)
    )


def _change_pct(current: str, previous: str) -> pl.Expr:
    """Change from ``previous`` to ``current`` in percent, null when ``previous`` is 0 or null."""
    before = pl.col(previous)
    return pl.when(before != 0).then((pl.col(current) - before) / before * 100)


def _trend() -> pl.Expr:
    change = pl.col("roi_change")
    tolerance = FLAT_TOLERANCE * pl.max_horizontal(pl.col("prev_roi").abs(), pl.lit(FLAT_FLOOR))
    return (
        pl.when(change.is_null())
        .then(None)
        .when(change.abs() <= tolerance)
        .then(pl.lit("flat"))
        .when(change > 0)
        .then(pl.lit("up"))
        .otherwise(pl.lit("down"))
    )
