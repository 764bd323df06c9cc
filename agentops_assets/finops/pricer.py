"""Plans for pricing LLM calls: pricing.yaml first, then genai-prices' bundled data.

For a fixed model, day and tier a genai-prices price is linear in the token counts, so the
price is probed once per distinct (provider, model, day) for per-token rates. A price that is
not linear is priced call by call. A price by the hour (off-peak) changes at the boundaries
``Pricer.day_boundaries`` gives, and is probed once per part of the day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Final

from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices, TimeOfDateConstraint

from agentops_assets.finops.pricing_policy import PriceOverride
from agentops_assets.finops.providers import normalize_provider
from agentops_assets.finops.token_rates import TokenRates

_PROBE: Final = 1_000_000  # tokens per probe: large enough that rates come out exact
# Decimal noise allowed when checking that probed rates reproduce genai-prices.
_TOLERANCE: Final = Decimal("1e-12")

_Linear = tuple[tuple[int, ...], tuple[TokenRates, ...]]


@dataclass(frozen=True)
class PricePlan:
    """How the calls of one (provider, model, day, part of the day) get priced."""

    source: str | None = None
    price_model: str | None = None
    # A call whose input tokens exceed thresholds[i] pays the rates of buckets[i + 1].
    thresholds: tuple[int, ...] = ()
    buckets: tuple[TokenRates, ...] = ()
    per_call: bool = False
    reason: str | None = None


class Pricer:
    """Plans the pricing of (provider, model, day) keys, asking genai-prices once per price."""

    def __init__(self, overrides: Sequence[PriceOverride]) -> None:
        self._overrides = tuple(overrides)
        self._provider_ids = {provider.id for provider in get_snapshot().providers}
        self._models: dict[tuple[str | None, str], tuple[Provider, ModelInfo] | None] = {}
        self._rates: dict[tuple[int, int], _Linear | None] = {}

    def plan(
        self, provider: str | None, model: str | None, day: date | None, segment: int | None = 0
    ) -> PricePlan:
        """The plan for calls on ``day``, in part ``segment`` of it (see ``day_boundaries``)."""
        if not model:
            return PricePlan()
        provider_id = normalize_provider(provider)
        for entry in self._overrides:
            if entry.matches(provider_id, model):
                return PricePlan("pricing.yaml", entry.model, buckets=(entry.rates(),))
        found = self.model(provider_id, model)
        if found is None:
            named = f"of provider '{provider}'" if provider else "(no provider named)"
            return PricePlan(
                reason=f"Model '{model}' {named} is in neither genai-prices nor "
                "policies/pricing.yaml."
            )
        source, info = "genai-prices", found[1]
        if day is None or segment is None:
            return PricePlan(source, info.id, per_call=True)
        # Date-bound prices change at midnight UTC, so noon stands for the whole day; a price
        # by the hour is constant from the start of each part of the day to the next.
        boundaries = _day_boundaries(info)
        start = boundaries[segment - 1] if segment else time(0) if boundaries else time(12)
        when = datetime.combine(day, start, tzinfo=UTC)
        price = info.get_prices(when)
        key = (id(info), id(price))
        if key not in self._rates:
            try:
                self._rates[key] = _linear_rates(*found, price, when=when)
            except ValueError as error:
                return PricePlan(reason=f"genai-prices cannot price model '{model}': {error}")
        linear = self._rates[key]
        if linear is None:
            return PricePlan(source, info.id, per_call=True)
        return PricePlan(source, info.id, thresholds=linear[0], buckets=linear[1])

    def day_boundaries(self, provider: str | None, model: str | None) -> tuple[time, ...]:
        """UTC times of day at which the price of a model's calls may change (off-peak)."""
        provider_id = normalize_provider(provider)
        if not model or any(entry.matches(provider_id, model) for entry in self._overrides):
            return ()
        found = self.model(provider_id, model)
        return () if found is None else _day_boundaries(found[1])

    def model(self, provider_id: str | None, model: str) -> tuple[Provider, ModelInfo] | None:
        """genai-prices' provider and model for a call, or None when it has no price."""
        # A provider genai-prices does not know is left for it to infer from the model name.
        known = provider_id if provider_id in self._provider_ids else None
        key = (known, model)
        if key not in self._models:
            try:
                self._models[key] = get_snapshot().find_provider_model(model, None, known, None)
            except LookupError:
                self._models[key] = None
        return self._models[key]

    def price_call(
        self,
        provider: str | None,
        model: str,
        ts: datetime,
        counts: Sequence[int | None],
    ) -> float | None:
        """The cost of one call at ``ts`` from genai-prices, for a model it has a price of.

        ``counts`` are input, output, cache read, cache write and reasoning tokens. None when
        genai-prices cannot price the usage.
        """
        found = self.model(normalize_provider(provider), model)
        assert found is not None  # a per-call plan is only made for a model genai-prices has
        inp, out, cache_read, cache_write, reasoning = counts
        usage = Usage(
            input_tokens=inp or 0,
            cache_read_tokens=cache_read or 0,
            cache_write_tokens=cache_write or 0,
            output_tokens=out or 0,
            output_reasoning_tokens=reasoning or 0,
        )
        try:
            price = found[1].calc_price(usage, found[0], genai_request_timestamp=ts)
        except ValueError:
            return None
        return float(price.total_price)


def _linear_rates(
    provider: Provider, info: ModelInfo, price: ModelPrice, *, when: datetime
) -> _Linear | None:
    """Per-token rates of each tier bucket of a price, probed from genai-prices.

    Returns None when the probed rates fail to reproduce genai-prices at both ends of every
    bucket, i.e. the price is not linear in the token counts.

    Raises:
        ValueError: genai-prices cannot price plain token usage with this model.
    """

    def total(inp: int = 0, cr: int = 0, cw: int = 0, out: int = 0, rs: int = 0) -> Decimal:
        usage = Usage(
            input_tokens=inp,
            cache_read_tokens=cr,
            cache_write_tokens=cw,
            output_tokens=out,
            output_reasoning_tokens=rs,
        )
        return info.calc_price(usage, provider, genai_request_timestamp=when).total_price

    thresholds = tuple(
        sorted(
            {
                tier.start
                for value in vars(price).values()
                if isinstance(value, TieredPrices)
                for tier in value.tiers
            }
        )
    )
    fee = total()
    buckets: list[TokenRates] = []
    for index in range(len(thresholds) + 1):
        low = thresholds[index - 1] + 1 if index else 0
        high = thresholds[index] if index < len(thresholds) else None
        # Probe input tokens inside the bucket: they decide which tier applies.
        size = low if index else min(_PROBE, high if high is not None else _PROBE)
        base = total(size)
        rates = TokenRates(
            fee=fee,
            uncached=(base - fee) / size if size else Decimal(0),
            cache_read=(total(size, cr=size) - fee) / size if size else Decimal(0),
            cache_write=(total(size, cw=size) - fee) / size if size else Decimal(0),
            text_output=(total(size, out=_PROBE) - base) / _PROBE,
            reasoning=(total(size, out=_PROBE, rs=_PROBE) - base) / _PROBE,
        )
        # Check the rates at both ends of the bucket, with every part of the usage present.
        for inp in {size, max(low, 1), high if high is not None else 2 * low + _PROBE}:
            if high is not None and inp > high:
                continue
            counts = (inp, inp // 3, inp // 5, 3 * _PROBE + 7, _PROBE + 3)
            if abs(rates.cost(*counts) - total(*counts)) > _TOLERANCE:
                return None
        buckets.append(rates)
    return thresholds, tuple(buckets)


def _day_boundaries(info: ModelInfo) -> tuple[time, ...]:
    """Sorted naive UTC times at which a model's price by the hour (off-peak) may change."""
    if isinstance(info.prices, ModelPrice):
        return ()
    times = set()
    for conditional in info.prices:
        if isinstance(conditional.constraint, TimeOfDateConstraint):
            times.update((conditional.constraint.start_time, conditional.constraint.end_time))
    return tuple(sorted(_utc_time(value) for value in times))


def _utc_time(value: time) -> time:
    if value.tzinfo is None:  # naive times are UTC, as in genai-prices
        return value
    return datetime.combine(date(1970, 1, 1), value).astimezone(UTC).time()


__all__ = ["PricePlan", "Pricer"]
