"""Give every LLM call a cost: the producer's reported cost, else a price table.

Prices come from ``policies/pricing.yaml`` (self-hosted or negotiated models, first matching
entry wins) and then from the ``genai-prices`` package's bundled data (never fetched at run
time). A call that neither prices keeps a null cost and a sentence saying why: an unknown cost
is never reported as zero.

Pricing is vectorised: the pricer plans each distinct (provider, model, day) once, polars
multiplies. The parts live beside this module:

- ``pricing_policy``: the pricing.yaml file and its entries (``PriceOverride``).
- ``providers``: provider names as telemetry spells them, as genai-prices ids.
- ``pricer``: plans from pricing.yaml and genai-prices, with prices by the hour of the day.
- ``cost_expressions``: the plans as polars columns, and the cost of each call from them.
- ``cost_choice``: the reported cost when it can be trusted, else the priced one, or why none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from agentops_assets.finops.cost_choice import chosen_cost
from agentops_assets.finops.cost_expressions import (
    day_segment,
    price_per_call,
    price_table,
    priced_cost,
)
from agentops_assets.finops.pricer import Pricer
from agentops_assets.finops.pricing_policy import PriceOverride, load_pricing
from agentops_assets.finops.providers import normalize_provider

EVENT_COSTS_SCHEMA: Final[dict[str, pl.DataType]] = {
    "event_id": pl.String(),
    "trace_id": pl.String(),
    "event_date": pl.Date(),
    "ts": pl.Datetime("us", "UTC"),
    "agent_id": pl.String(),
    "agent_type": pl.String(),
    "kind": pl.String(),
    "provider": pl.String(),
    "provider_id": pl.String(),
    "model": pl.String(),
    "price_model": pl.String(),
    "input_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
    "cache_read_tokens": pl.Int64(),
    "cache_write_tokens": pl.Int64(),
    "reasoning_tokens": pl.Int64(),
    "reported_cost_usd": pl.Float64(),
    "priced_cost_usd": pl.Float64(),
    "cost_usd": pl.Float64(),
    "cost_source": pl.String(),
    "unpriced_reason": pl.String(),
}
PRICE_SOURCES: Final = ("reported", "genai-prices", "pricing.yaml", "failed_call")

UNPRICED_SCHEMA: Final[dict[str, pl.DataType]] = {
    "provider": pl.String(),
    "model": pl.String(),
    "calls": pl.Int64(),
    "reason": pl.String(),
}


def price_events(
    events: pl.DataFrame | pl.LazyFrame, *, overrides: Sequence[PriceOverride] = ()
) -> pl.DataFrame:
    """The cost of every LLM call, and of every other event that reports one.

    Args:
        events: Rows of ``agent_events`` (at least the columns of ``EVENT_COSTS_SCHEMA`` that
            it holds). ``input_tokens`` includes cached tokens and ``output_tokens`` reasoning
            tokens, as in OpenTelemetry.
        overrides: Entries of pricing.yaml; the first that matches a call prices it, before
            genai-prices.

    Returns:
        One row per ``llm_call`` event and per other event with a reported ``cost_usd``, in
        input order, with the columns of ``EVENT_COSTS_SCHEMA``. ``cost_usd`` is the reported
        cost, else the priced one, else 0 for a call that failed without usage (``status``
        error, no token counts: not billed), else null with ``unpriced_reason`` saying why.
        A reported cost of 0 on an LLM call with tokens counts as not reported: it is priced,
        and ``reported_cost_usd`` keeps the 0.
    """
    frame = (
        events.lazy()
        .filter((pl.col("kind") == "llm_call") | pl.col("cost_usd").is_not_null())
        .collect()
    )
    if "status" not in frame.columns:
        frame = frame.with_columns(status=pl.lit(None, pl.String))
    pricer = Pricer(overrides)
    on = ["provider", "model", "event_date"]
    keys = frame.select(on).unique()
    segment = day_segment(pricer, keys)
    if segment is not None:
        frame = frame.with_columns(segment.alias("_segment"))
        on.append("_segment")
        keys = frame.select(on).unique()
    table = price_table(pricer, keys)
    frame = frame.join(
        table,
        on=on,
        how="left",
        nulls_equal=True,
        maintain_order="left",
    )
    frame = frame.with_columns(priced_cost(table).alias("priced_cost_usd"))
    frame = price_per_call(pricer, frame)
    chosen = chosen_cost()
    columns = [chosen.get(name, pl.col(name)) for name in EVENT_COSTS_SCHEMA]
    return frame.select(columns).cast(EVENT_COSTS_SCHEMA)


def unpriced_models(costs: pl.DataFrame) -> pl.DataFrame:
    """The calls left without a cost, counted by provider, model and reason.

    Args:
        costs: Output of ``price_events``.

    Returns:
        Columns ``provider``, ``model``, ``calls``, ``reason``; most calls first.
    """
    return (
        costs.filter(pl.col("cost_usd").is_null())
        .group_by("provider", "model", pl.col("unpriced_reason").alias("reason"))
        .agg(pl.len().alias("calls"))
        .sort(["calls", "provider", "model"], descending=[True, False, False], nulls_last=True)
        .select(list(UNPRICED_SCHEMA))
        .cast(UNPRICED_SCHEMA)
    )


__all__: Sequence[str] = (
    "EVENT_COSTS_SCHEMA",
    "PRICE_SOURCES",
    "UNPRICED_SCHEMA",
    "PriceOverride",
    "load_pricing",
    "normalize_provider",
    "price_events",
    "unpriced_models",
)
