"""Which cost a call keeps: the reported one when it can be trusted, else the priced one.

A reported cost stands, except a 0 on an LLM call that used tokens (exporters write 0 when
they have no price), which is priced like a call that reports none. A call that failed before
any usage is not billed (0). Any other call left without a cost keeps a null cost and a
sentence saying why: an unknown cost is never reported as zero.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from agentops_assets.finops.cost_expressions import consistent_tokens, has_tokens

NO_MODEL: Final = "The LLM call names no model."
NO_TOKENS: Final = "The LLM call reports no token counts."
BAD_TOKENS: Final = (
    "The LLM call reports more cached than input tokens, or more reasoning than output tokens."
)
NOT_PRICED: Final = "genai-prices could not price this call."


def chosen_cost() -> dict[str, pl.Expr]:
    """The cost columns of a priced frame: which cost stands, where it came from, or why none.

    The frame holds the event's ``cost_usd`` as reported, ``priced_cost_usd``, and the price
    table's ``_source``, ``_reason`` and ``price_model``. Returns expressions for
    ``price_model``, ``reported_cost_usd``, ``cost_usd``, ``cost_source`` and
    ``unpriced_reason``.
    """
    reported = pl.col("cost_usd").alias("reported_cost_usd")
    # A call that failed before any usage (rate limit, timeout) is not billed by providers.
    failed = (pl.col("kind") == "llm_call") & (pl.col("status") == "error") & ~has_tokens()
    trusted = trusted_cost()
    cost = pl.coalesce(trusted, "priced_cost_usd", pl.when(failed).then(pl.lit(0.0)))
    source = (
        pl.when(trusted.is_not_null())
        .then(pl.lit("reported"))
        .when(pl.col("priced_cost_usd").is_not_null())
        .then(pl.col("_source"))
        .when(failed)
        .then(pl.lit("failed_call"))
    )
    reason = (
        pl.when(cost.is_not_null())
        .then(None)
        .when(pl.col("model").is_null() | (pl.col("model") == ""))
        .then(pl.lit(NO_MODEL))
        .when(~has_tokens())
        .then(pl.lit(NO_TOKENS))
        .when(~consistent_tokens())
        .then(pl.lit(BAD_TOKENS))
        .otherwise(pl.coalesce("_reason", pl.lit(NOT_PRICED)))
    )
    return {
        "price_model": pl.when(pl.col("priced_cost_usd").is_not_null()).then("price_model"),
        "reported_cost_usd": reported,
        "cost_usd": cost.alias("cost_usd"),
        "cost_source": source.alias("cost_source"),
        "unpriced_reason": reason.alias("unpriced_reason"),
    }


def trusted_cost() -> pl.Expr:
    """The reported cost, less a 0 reported for an LLM call that used tokens.

    Exporters write 0 when they do not know the price; such a call is priced like one that
    reports no cost, and ``reported_cost_usd`` keeps the 0 that was sent.
    """
    inp, out = (pl.col(c).fill_null(0) for c in ("input_tokens", "output_tokens"))
    unknown = (pl.col("kind") == "llm_call") & (pl.col("cost_usd") == 0) & (inp + out > 0)
    return pl.when(~unknown.fill_null(False)).then(pl.col("cost_usd"))


__all__ = ["chosen_cost", "trusted_cost"]
