"""Budget compliance: each budget's spend, burn rate and forecast per day and period.

Pure polars over a frame of daily spend; the Dagster asset, its check and the CLI call
:func:`budget_compliance` and :func:`compliance_findings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Final, Literal

import polars as pl

from agentops_assets.finops.budgets import ANY_AGENT, Budget
from agentops_assets.finops.formats import EXACT_BELOW

Status = Literal["ok", "warning", "breach"]
STATUS_RANK: Final[dict[str, int]] = {"ok": 0, "warning": 1, "breach": 2}  # worse is higher

COMPLIANCE_SCHEMA: Final[dict[str, pl.DataType]] = {
    "day": pl.Date(),
    "budget_id": pl.String(),
    "agent_type": pl.String(),
    "provider": pl.String(),
    "model": pl.String(),
    "period": pl.String(),
    "period_start": pl.Date(),
    "period_end": pl.Date(),
    "spend_usd": pl.Float64(),
    "cap_usd": pl.Float64(),
    "warn_at": pl.Float64(),
    "pct_of_cap": pl.Float64(),
    "burn_rate_usd_per_day": pl.Float64(),
    "forecast_usd": pl.Float64(),
    "status": pl.String(),
    "detail": pl.String(),
    "evaluated_at": pl.Datetime("us", "UTC"),
}

_SPEND_SCHEMA: Final[dict[str, pl.DataType]] = {
    "day": pl.Date(),
    "agent_type": pl.String(),
    "provider": pl.String(),
    "model": pl.String(),
    "spend_usd": pl.Float64(),
}

_RULE_SCHEMA: Final[dict[str, pl.DataType]] = {
    "rule": pl.UInt32(),
    "agent_type": pl.String(),
    "provider": pl.String(),
    "model": pl.String(),
    "scope_key": pl.String(),  # lower-cased model glob, to match a type's own entry
    "pattern": pl.String(),
    "scope_id": pl.String(),  # budget_id without the agent type
    "daily_usd": pl.Float64(),
    "monthly_usd": pl.Float64(),
    "warn_at": pl.Float64(),
}

_RULE_KEY: Final = ["rule", "agent_type"]


def budget_compliance(
    spend: pl.DataFrame, budgets: Sequence[Budget], *, days: Sequence[date], now: datetime
) -> pl.DataFrame:
    """How each budget stands on each of ``days``: one row per budget, day and capped period.

    A ``"*"`` budget becomes one budget per agent type that has spend in the month up to the
    day and no entry of its own with the same provider and model scope.

    Args:
        spend: Daily spend: ``day``, ``agent_type``, ``provider``, ``model``, ``spend_usd``.
            It must cover the first of the month of ``min(days)`` up to ``max(days)``; a day
            without rows means no spend.
        budgets: The caps, usually from :func:`~agentops_assets.finops.budgets.load_budgets`.
        days: The days to evaluate.
        now: When the evaluation happens (naive means UTC). It sets the elapsed share of
            today and whether a period is over, for burn rate and forecast.

    Returns:
        A frame with :data:`COMPLIANCE_SCHEMA`, sorted by day, agent type, budget and period.

    Raises:
        ValueError: ``spend`` lacks one of the columns above.
    """
    evaluated_at = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    if not days or not budgets:
        return pl.DataFrame(schema=COMPLIANCE_SCHEMA)
    spend = _normalised(spend)
    calendar = pl.DataFrame({"day": sorted(set(days))}, schema={"day": pl.Date()}).with_columns(
        month_start=pl.col("day").dt.month_start()
    )
    rule_days = _rule_days(_rules(budgets), calendar, spend)
    periods = _periods(_with_spend_to_date(rule_days, spend))
    return (
        _assessed(periods, now=evaluated_at)
        .select(pl.col(name).cast(dtype) for name, dtype in COMPLIANCE_SCHEMA.items())
        .sort("day", "agent_type", "budget_id", "period")
    )


def compliance_findings(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows of a compliance frame that need attention: breaches, then warnings.

    Within each status the largest overspend (``spend_usd - cap_usd``) comes first, so
    warnings closest to their cap lead.

    Args:
        frame: A frame from :func:`budget_compliance`.

    Returns:
        The rows whose status is not ``"ok"``, with the same columns.
    """
    return frame.filter(pl.col("status") != "ok").sort(
        pl.col("status") == "breach",
        pl.col("spend_usd") - pl.col("cap_usd"),
        "day",
        "budget_id",
        descending=[True, True, False, False],
    )


def _normalised(spend: pl.DataFrame) -> pl.DataFrame:
    missing = [column for column in _SPEND_SCHEMA if column not in spend.columns]
    if missing:
        raise ValueError(
            f"The spend frame lacks the column(s) {', '.join(missing)}; it needs "
            f"{', '.join(_SPEND_SCHEMA)}."
        )
    return spend.select(
        pl.col(column).cast(dtype) for column, dtype in _SPEND_SCHEMA.items()
    ).with_columns(pl.col("provider").str.to_lowercase(), pl.col("spend_usd").fill_null(0.0))


def _rules(budgets: Sequence[Budget]) -> pl.DataFrame:
    rows = [
        {
            "rule": index,
            "agent_type": budget.agent_type,
            "provider": budget.provider,
            "model": budget.model,
            "scope_key": budget.scope[2],
            "pattern": _glob_regex(budget.model) if budget.model is not None else None,
            "scope_id": budget.budget_id.removeprefix(budget.agent_type),
            "daily_usd": budget.daily_usd,
            "monthly_usd": budget.monthly_usd,
            "warn_at": budget.warn_at,
        }
        for index, budget in enumerate(budgets)
    ]
    return pl.DataFrame(rows, schema=_RULE_SCHEMA)


def _glob_regex(glob: str) -> str:
    """A case-insensitive, anchored regex for a model glob: ``*`` any run, ``?`` one char."""
    pieces = [
        ".*" if char == "*" else "." if char == "?" else pl.escape_regex(char) for char in glob
    ]
    return f"(?is)^{''.join(pieces)}$"


def _rule_days(rules: pl.DataFrame, calendar: pl.DataFrame, spend: pl.DataFrame) -> pl.DataFrame:
    """Every concrete budget on every day, with ``"*"`` budgets expanded per agent type."""
    named = rules.filter(pl.col("agent_type") != ANY_AGENT)
    own = (
        named.join(calendar, how="cross")
        .with_columns(budget_id=pl.col("agent_type") + pl.col("scope_id"))
        .select(*rules.columns, "budget_id", "day", "month_start")
    )
    first_seen = spend.group_by("agent_type", month_start=pl.col("day").dt.month_start()).agg(
        first_day=pl.col("day").min()
    )
    types_by_day = (
        calendar.join(first_seen, on="month_start")
        .filter(pl.col("first_day") <= pl.col("day"))
        .drop("first_day")
    )
    defaults = (
        rules.filter(pl.col("agent_type") == ANY_AGENT)
        .drop("agent_type")
        .join(types_by_day, how="cross")
        .join(
            named.select("agent_type", "provider", "scope_key"),
            on=["agent_type", "provider", "scope_key"],
            how="anti",
            nulls_equal=True,
        )
        .with_columns(budget_id=pl.col("agent_type") + pl.col("scope_id") + " (default *)")
        .select(own.columns)
    )
    return pl.concat([own, defaults])


def _with_spend_to_date(rule_days: pl.DataFrame, spend: pl.DataFrame) -> pl.DataFrame:
    """Add ``day_usd`` (spend on the day) and ``month_usd`` (month to date) per budget."""
    daily = (
        spend.join(
            _matches(rule_days, spend), on=["agent_type", "provider", "model"], nulls_equal=True
        )
        .group_by(*_RULE_KEY, "day")
        .agg(day_usd=pl.col("spend_usd").sum())
        .with_columns(month_start=pl.col("day").dt.month_start())
        .sort("day")
        .with_columns(month_usd=pl.col("day_usd").cum_sum().over(*_RULE_KEY, "month_start"))
    )
    with_day = rule_days.join(
        daily.select(*_RULE_KEY, "day", "day_usd"), on=[*_RULE_KEY, "day"], how="left"
    )
    # The month-to-date total on a day is the last running total at or before it.
    return (
        with_day.sort("day")
        .join_asof(
            daily.select(*_RULE_KEY, "month_start", "day", "month_usd"),
            on="day",
            by=[*_RULE_KEY, "month_start"],
            strategy="backward",
            check_sortedness=False,  # both sides are sorted by day just above
        )
        .with_columns(pl.col("day_usd", "month_usd").fill_null(0.0))
    )


def _matches(rule_days: pl.DataFrame, spend: pl.DataFrame) -> pl.DataFrame:
    """Which (agent_type, provider, model) combinations of ``spend`` each budget counts.

    Matching runs on the distinct combinations, a few hundred rows, not on every spend row.
    """
    budgets = rule_days.select(*_RULE_KEY, "provider", "pattern").unique()
    combos = spend.select("agent_type", "provider", "model").unique()
    return (
        budgets.join(combos, on="agent_type", suffix="_spent")
        .filter(
            pl.col("provider").is_null() | (pl.col("provider") == pl.col("provider_spent")),
            pl.col("pattern").is_null()
            | pl.col("model").str.contains(pl.col("pattern")).fill_null(False),
        )
        .select(*_RULE_KEY, provider="provider_spent", model="model")
    )


def _periods(rule_days: pl.DataFrame) -> pl.DataFrame:
    """One row per budget, day and capped period, with the spend and cap of that period."""
    daily = rule_days.filter(pl.col("daily_usd").is_not_null()).with_columns(
        period=pl.lit("day"),
        period_start=pl.col("day"),
        period_end=pl.col("day"),
        spend_usd=pl.col("day_usd"),
        cap_usd=pl.col("daily_usd"),
    )
    monthly = rule_days.filter(pl.col("monthly_usd").is_not_null()).with_columns(
        period=pl.lit("month"),
        period_start=pl.col("month_start"),
        period_end=pl.col("day").dt.month_end(),
        spend_usd=pl.col("month_usd"),
        cap_usd=pl.col("monthly_usd"),
    )
    return pl.concat([daily, monthly])


def _assessed(periods: pl.DataFrame, *, now: datetime) -> pl.DataFrame:
    """Add pct of cap, burn rate, forecast, status and detail as of ``now`` (UTC)."""
    today = now.date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC)
    share_of_today = (now - midnight).total_seconds() / 86_400
    is_today = pl.col("day") == today
    # Elapsed and remaining are measured from the end of the day, or from `now` for today,
    # so a past day's forecast is the one that could have been made on that day.
    elapsed = (pl.col("day") - pl.col("period_start")).dt.total_days() + pl.when(is_today).then(
        share_of_today
    ).otherwise(1.0)
    length = (pl.col("period_end") - pl.col("period_start")).dt.total_days() + 1
    remaining = pl.when(pl.col("period_end") < today).then(0.0).otherwise(length - elapsed)
    burn_rate = pl.when(elapsed > 0).then(pl.col("spend_usd") / elapsed)
    return (
        periods.with_columns(
            pct_of_cap=pl.col("spend_usd") / pl.col("cap_usd"),
            burn_rate_usd_per_day=burn_rate,
        )
        .with_columns(
            forecast_usd=pl.col("spend_usd")
            + (pl.col("burn_rate_usd_per_day") * remaining).fill_null(0.0)
        )
        .with_columns(
            status=pl.when(pl.col("spend_usd") > pl.col("cap_usd"))
            .then(pl.lit("breach"))
            .when(
                (pl.col("pct_of_cap") >= pl.col("warn_at"))
                | ((pl.col("period") == "month") & (pl.col("forecast_usd") > pl.col("cap_usd")))
            )
            .then(pl.lit("warning"))
            .otherwise(pl.lit("ok")),
            evaluated_at=pl.lit(now, dtype=pl.Datetime("us", "UTC")),
        )
        .with_columns(detail=_detail(is_today))
    )


def _detail(is_today: pl.Expr) -> pl.Expr:
    """One sentence per row, e.g. ``FinanceAgent spent $512.40 on 2026-11-20 against ...``."""
    day = pl.col("day").dt.strftime("%Y-%m-%d")
    month = pl.col("day").dt.strftime("%B %Y")
    is_day = pl.col("period") == "day"
    scope = pl.concat_str("provider", "model", separator=" ", ignore_nulls=True)
    cap = pl.concat_str(
        pl.lit("a "),
        pl.when(is_day).then(pl.lit("daily")).otherwise(pl.lit("monthly")),
        pl.lit(" cap of "),
        _usd(pl.col("cap_usd")),
        pl.when(scope != "")
        .then(pl.lit(" for ") + scope + pl.lit(" models"))
        .otherwise(pl.lit("")),
    )
    spent = pl.concat_str(
        "agent_type",
        pl.lit(" spent "),
        _usd(pl.col("spend_usd")),
        pl.when(is_day)
        .then(pl.lit(" on ") + day)
        .otherwise(pl.lit(" in ") + month + pl.lit(" up to ") + day),
        pl.lit(" against "),
        cap,
        pl.lit(" ("),
        _whole(pl.col("pct_of_cap") * 100),
        pl.lit("%)."),
    )
    forecast = pl.concat_str(
        "agent_type",
        pl.lit(" is forecast to spend "),
        _usd(pl.col("forecast_usd")),
        pl.lit(" in "),
        month,
        pl.lit(" against "),
        cap,
        pl.lit(" (spent "),
        _usd(pl.col("spend_usd")),
        pl.when(is_today).then(pl.lit(" so far).")).otherwise(pl.lit(" by ") + day + pl.lit(").")),
    )
    forecast_warning = (
        (pl.col("status") == "warning") & ~is_day & (pl.col("forecast_usd") > pl.col("cap_usd"))
    )
    return pl.when(forecast_warning).then(forecast).otherwise(spent)


def _whole(amount: pl.Expr) -> pl.Expr:
    """``12.6`` -> ``"13"``; from ``EXACT_BELOW`` on, and for inf, ``"1e+17"``."""
    exact = amount.round(0).cast(pl.Int64, strict=False).cast(pl.String)
    return pl.when(amount.abs() < EXACT_BELOW).then(exact).otherwise(amount.cast(pl.String))


def _usd(amount: pl.Expr) -> pl.Expr:
    """``1020.0`` -> ``"$1,020.00"``, vectorised (polars has no thousands separator).

    From ``EXACT_BELOW`` on, and for inf, ``"$1e+17"``: cents would not fit an Int64.
    """
    # Not strict: rows past the Int64 range take the other branch, but are computed too.
    cents = (amount * 100).round(0).cast(pl.Int64, strict=False)
    # Group digits from the right: reverse, put a comma after every three, reverse back.
    dollars = (
        (cents.abs() // 100)
        .cast(pl.String)
        .str.reverse()
        .str.replace_all(r"(\d{3})", "${1},")
        .str.strip_suffix(",")
        .str.reverse()
    )
    sign = pl.when(amount < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    fraction = (cents.abs() % 100).cast(pl.String).str.zfill(2)
    exact = pl.concat_str(sign, pl.lit("$"), dollars, pl.lit("."), fraction)
    large = pl.concat_str(sign, pl.lit("$"), amount.abs().cast(pl.String))
    return pl.when(amount.abs() < EXACT_BELOW).then(exact).otherwise(large)
