"""USD per token of each disjoint part of an LLM call's usage: what a linear price is."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

# The fields of ``TokenRates``, in order; the price table has one column per name and bucket.
RATE_NAMES: Final = ("fee", "uncached", "cache_read", "cache_write", "text_output", "reasoning")
MTOK: Final = Decimal(1_000_000)


@dataclass(frozen=True)
class TokenRates:
    """USD per token of each disjoint part of a call's usage, and the fee per request."""

    fee: Decimal
    uncached: Decimal
    cache_read: Decimal
    cache_write: Decimal
    text_output: Decimal
    reasoning: Decimal

    def cost(
        self, inp: int, cache_read: int, cache_write: int, out: int, reasoning: int
    ) -> Decimal:
        """What a call with these counts costs; ``inp`` and ``out`` include their parts."""
        return (
            self.fee
            + self.uncached * (inp - cache_read - cache_write)
            + self.cache_read * cache_read
            + self.cache_write * cache_write
            + self.text_output * (out - reasoning)
            + self.reasoning * reasoning
        )


__all__ = ["MTOK", "RATE_NAMES", "TokenRates"]
