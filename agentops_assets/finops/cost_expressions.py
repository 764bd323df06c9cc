"""The pricer's plans as polars columns and expressions: rates joined to calls, then multiplied.

``price_table`` turns the plan of each (provider, model, day[, part of the day]) into columns
(source, reason, tier thresholds, one rate column per tier bucket); ``priced_cost`` computes
each call's cost from the columns joined to it; ``price_per_call`` fills in the calls whose
price is not linear, one genai-prices call each.
"""

from __future__ import annotations

from datetime import time
from typing import Final, TypeVar

import polars as pl

from agentops_assets.finops.pricer import Pricer
from agentops_assets.finops.providers import normalize_provider
from agentops_assets.finops.token_rates import RATE_NAMES
from agentops_assets.telemetry.schema import TOKEN_FIELDS

_DAY_US: Final = 86_400 * 1_000_000
_T = TypeVar("_T")


def day_segment(pricer: Pricer, keys: pl.DataFrame) -> pl.Expr | None:
    """Which part of its UTC day each call falls in, for models priced by the hour.

    Returns None when no model of ``keys`` has prices by the hour; otherwise 0 for calls of
    other models and, for theirs, how many of the model's boundaries the time of day passed.
    """
    cases = []
    for provider, model in keys.select("provider", "model").unique().iter_rows():
        boundaries = pricer.day_boundaries(provider, model)
        if boundaries:
            of_day = pl.col("ts").dt.epoch("us") % _DAY_US
            passed = [(of_day >= _micros(start)).cast(pl.Int32) for start in boundaries]
            call = pl.col("provider").eq_missing(provider) & (pl.col("model") == model)
            cases.append((call, pl.sum_horizontal(passed)))
    if not cases:
        return None
    (call, segment), *rest = cases
    chain = pl.when(call).then(segment)
    for call, segment in rest:
        chain = chain.when(call).then(segment)
    # A call without ts has no part of the day: its plan falls back to pricing call by call.
    return chain.otherwise(pl.when(pl.col("ts").is_not_null()).then(0)).cast(pl.Int32)


def price_table(pricer: Pricer, keys: pl.DataFrame) -> pl.DataFrame:
    """``keys`` with the plan of each as columns: source, reason, tier thresholds, rates."""
    plans = [pricer.plan(*key) for key in keys.iter_rows()]
    tiers = max((len(plan.thresholds) for plan in plans), default=0)
    buckets = max((len(plan.buckets) for plan in plans), default=0)
    columns: dict[str, list[object]] = {
        "provider_id": [normalize_provider(provider) for provider in keys["provider"]],
        "price_model": [plan.price_model for plan in plans],
        "_source": [plan.source for plan in plans],
        "_reason": [plan.reason for plan in plans],
        "_per_call": [plan.per_call for plan in plans],
    }
    for tier in range(tiers):
        columns[f"_above_{tier}"] = [_at(plan.thresholds, tier) for plan in plans]
    for bucket in range(buckets):
        for name in RATE_NAMES:
            columns[f"_{name}_{bucket}"] = [
                float(getattr(rates, name)) if (rates := _at(plan.buckets, bucket)) else None
                for plan in plans
            ]
    schema = {
        "provider_id": pl.String,
        "price_model": pl.String,
        "_source": pl.String,
        "_reason": pl.String,
        "_per_call": pl.Boolean,
        **{f"_above_{tier}": pl.Int64 for tier in range(tiers)},
        **{f"_{n}_{b}": pl.Float64 for b in range(buckets) for n in RATE_NAMES},
    }
    return keys.hstack(pl.DataFrame(columns, schema=schema))


def priced_cost(table: pl.DataFrame) -> pl.Expr:
    """Cost from the rates of the call's tier bucket; null where rates do not apply."""
    inp, out, cache_read, cache_write, reasoning = (pl.col(c).fill_null(0) for c in TOKEN_FIELDS)
    tiers = [c for c in table.columns if c.startswith("_above_")]
    bucket = pl.sum_horizontal(
        [(inp > pl.col(c)).fill_null(False).cast(pl.Int8) for c in tiers] or [pl.lit(0)]
    )

    def rate(name: str) -> pl.Expr:
        count = sum(c.startswith(f"_{name}_") for c in table.columns)
        picked = pl.col(f"_{name}_0") if count else pl.lit(None, pl.Float64)
        for index in range(1, count):
            picked = pl.when(bucket == index).then(pl.col(f"_{name}_{index}")).otherwise(picked)
        return picked

    cost = (
        rate("fee")
        + rate("uncached") * (inp - cache_read - cache_write)
        + rate("cache_read") * cache_read
        + rate("cache_write") * cache_write
        + rate("text_output") * (out - reasoning)
        + rate("reasoning") * reasoning
    )
    return pl.when(priceable() & ~pl.col("_per_call").fill_null(False)).then(cost)


def price_per_call(pricer: Pricer, frame: pl.DataFrame) -> pl.DataFrame:
    """Fill ``priced_cost_usd`` of calls whose price is not linear, one genai-prices call each.

    A call genai-prices cannot price stays null; its reason says genai-prices could not.
    """
    mask = priceable() & pl.col("_per_call") & pl.col("ts").is_not_null()
    rows = frame.with_row_index("_row").filter(mask)
    if rows.is_empty():
        return frame
    costs = [
        pricer.price_call(provider, model, ts, counts)
        for provider, model, ts, *counts in rows.select(
            "provider", "model", "ts", *TOKEN_FIELDS
        ).iter_rows()
    ]
    priced = frame["priced_cost_usd"].scatter(rows["_row"], costs)
    return frame.with_columns(priced)


def priceable() -> pl.Expr:
    """An LLM call with a model, a plan and consistent token counts."""
    return (
        (pl.col("kind") == "llm_call")
        & pl.col("_source").is_not_null()
        & has_tokens()
        & consistent_tokens()
    )


def has_tokens() -> pl.Expr:
    """The call reports input or output tokens."""
    return pl.col("input_tokens").is_not_null() | pl.col("output_tokens").is_not_null()


def consistent_tokens() -> pl.Expr:
    """Cached tokens are part of the input, reasoning tokens part of the output, none negative."""
    inp, out, cache_read, cache_write, reasoning = (pl.col(c).fill_null(0) for c in TOKEN_FIELDS)
    return (
        (cache_read >= 0)
        & (cache_write >= 0)
        & (reasoning >= 0)
        & (cache_read + cache_write <= inp)
        & (reasoning <= out)
    )


def _micros(value: time) -> int:
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond


def _at(values: tuple[_T, ...], index: int) -> _T | None:
    return values[index] if index < len(values) else None


__all__ = [
    "consistent_tokens",
    "day_segment",
    "has_tokens",
    "price_per_call",
    "price_table",
    "priceable",
    "priced_cost",
]
