"""``policies/pricing.yaml``: prices of self-hosted or negotiated models, before genai-prices."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import pydantic

from agentops_assets.finops.providers import normalize_provider
from agentops_assets.finops.token_rates import MTOK, TokenRates
from agentops_assets.storage.policy_file import PolicyEntry, read_entries

_Price = Annotated[Decimal, pydantic.Field(ge=0, allow_inf_nan=False)]


class PriceOverride(PolicyEntry):
    """One entry of pricing.yaml: USD per million tokens of a model (or a glob of models)."""

    model: str = pydantic.Field(min_length=1)
    provider: str | None = None
    input_mtok: _Price
    output_mtok: _Price
    cache_read_mtok: _Price | None = None
    cache_write_mtok: _Price | None = None
    reasoning_mtok: _Price | None = None

    def matches(self, provider_id: str | None, model: str) -> bool:
        """Whether a call of ``model`` from provider ``provider_id`` is priced by this entry."""
        if self.provider is not None and normalize_provider(self.provider) != provider_id:
            return False
        pattern = self.model.lower()
        if "*" not in pattern:
            return model.lower() == pattern
        glob = ".*".join(re.escape(part) for part in pattern.split("*"))
        return re.fullmatch(glob, model.lower()) is not None

    def rates(self) -> TokenRates:
        """Per-token rates; cached input defaults to the input price, reasoning to output."""
        return TokenRates(
            fee=Decimal(0),
            uncached=self.input_mtok / MTOK,
            cache_read=_or(self.cache_read_mtok, self.input_mtok) / MTOK,
            cache_write=_or(self.cache_write_mtok, self.input_mtok) / MTOK,
            text_output=self.output_mtok / MTOK,
            reasoning=_or(self.reasoning_mtok, self.output_mtok) / MTOK,
        )


def load_pricing(path: Path) -> list[PriceOverride]:
    """The price overrides of a pricing.yaml file, in file order.

    Args:
        path: The policy file; a missing file means no overrides.

    Returns:
        The entries of its ``models`` list.

    Raises:
        PolicyFileError: The file is invalid; the message names the line.
    """
    if not path.exists():
        return []
    return [entry for _, entry in read_entries(path, section="models", entry=PriceOverride)]


def _or(value: Decimal | None, default: Decimal) -> Decimal:
    return default if value is None else value


__all__ = ["PriceOverride", "load_pricing"]
