"""Give every LLM call a cost: the producer's reported cost, else a price table.

Prices come from ``policies/pricing.yaml`` (self-hosted or negotiated models, first matching
entry wins) and then from the ``genai-prices`` package's bundled data (never fetched at run
time). A call that neither prices keeps a null cost and a sentence saying why: an unknown cost
is never reported as zero.

Pricing is vectorised. For a fixed model, day and tier a price is linear in the token counts,
so genai-prices is asked once per distinct (provider, model, day) for per-token rates, and
polars multiplies. Prices that are not linear (off-peak hours) are priced call by call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Final, TypeVar

import polars as pl
import pydantic
from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices, TimeOfDateConstraint

from agentops_assets.finops.policy_file import PolicyEntry, read_entries
from agentops_assets.telemetry.schema import TOKEN_FIELDS

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

# OpenTelemetry GenAI (gen_ai.provider.name, older gen_ai.system) and OpenInference
# (llm.provider) spellings of the providers genai-prices knows.
_PROVIDER_IDS: Final = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "google": "google",
    "google_genai": "google",
    "gemini": "google",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "aws.bedrock": "aws",
    "aws_bedrock": "aws",
    "bedrock": "aws",
    "amazon_bedrock": "aws",
    "aws": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "azure_openai": "azure",
    "azure": "azure",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "together_ai": "together",
    "together-ai": "together",
    "together": "together",
    "fireworks_ai": "fireworks",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "moonshot": "moonshotai",
    "moonshotai": "moonshotai",
}

_RATES: Final = ("fee", "uncached", "cache_read", "cache_write", "text_output", "reasoning")
_MTOK: Final = Decimal(1_000_000)
_PROBE: Final = 1_000_000  # tokens per probe: large enough that rates come out exact
# Decimal noise allowed when checking that probed rates reproduce genai-prices.
_TOLERANCE: Final = Decimal("1e-12")
_DAY_US: Final = 86_400 * 1_000_000

_NO_MODEL: Final = "The LLM call names no model."
_NO_TOKENS: Final = "The LLM call reports no token counts."
_BAD_TOKENS: Final = (
    "The LLM call reports more cached than input tokens, or more reasoning than output tokens."
)
_NOT_PRICED: Final = "genai-prices could not price this call."

_T = TypeVar("_T")
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

    def rates(self) -> _Rates:
        """Per-token rates; cached input defaults to the input price, reasoning to output."""
        return _Rates(
            fee=Decimal(0),
            uncached=self.input_mtok / _MTOK,
            cache_read=_or(self.cache_read_mtok, self.input_mtok) / _MTOK,
            cache_write=_or(self.cache_write_mtok, self.input_mtok) / _MTOK,
            text_output=self.output_mtok / _MTOK,
            reasoning=_or(self.reasoning_mtok, self.output_mtok) / _MTOK,
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


def normalize_provider(name: str | None) -> str | None:
    """The genai-prices provider id of a provider name as telemetry sends it.

    Args:
        name: An OpenTelemetry ``gen_ai.provider.name`` / ``gen_ai.system`` or OpenInference
            ``llm.provider`` value, e.g. ``gcp.gemini``, ``mistral_ai``, ``aws.bedrock``.

    Returns:
        The genai-prices id (``google``, ``mistral``, ``aws`` ...); a name it does not know,
        lower-cased; ``None`` for ``None``.
    """
    if name is None:
        return None
    key = name.strip().lower()
    return _PROVIDER_IDS.get(key, key)


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
    pricer = _Pricer(overrides)
    on = ["provider", "model", "event_date"]
    keys = frame.select(on).unique()
    segment = _day_segment(pricer, keys)
    if segment is not None:
        frame = frame.with_columns(segment.alias("_segment"))
        on.append("_segment")
        keys = frame.select(on).unique()
    table = _price_table(pricer, keys)
    frame = frame.join(
        table,
        on=on,
        how="left",
        nulls_equal=True,
        maintain_order="left",
    )
    frame = frame.with_columns(_priced_cost(table).alias("priced_cost_usd"))
    frame = _price_per_call(pricer, frame)
    return frame.select(_output_columns()).cast(EVENT_COSTS_SCHEMA)


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


@dataclass(frozen=True)
class _Rates:
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


@dataclass(frozen=True)
class _Plan:
    """How the calls of one (provider, model, day, part of the day) get priced."""

    source: str | None = None
    price_model: str | None = None
    # A call whose input tokens exceed thresholds[i] pays the rates of buckets[i + 1].
    thresholds: tuple[int, ...] = ()
    buckets: tuple[_Rates, ...] = ()
    per_call: bool = False
    reason: str | None = None


class _Pricer:
    """Plans the pricing of (provider, model, day) keys, asking genai-prices once per price."""

    def __init__(self, overrides: Sequence[PriceOverride]) -> None:
        self._overrides = tuple(overrides)
        self._provider_ids = {provider.id for provider in get_snapshot().providers}
        self._models: dict[tuple[str | None, str], tuple[Provider, ModelInfo] | None] = {}
        self._rates: dict[tuple[int, int], tuple[tuple[int, ...], tuple[_Rates, ...]] | None] = {}

    def plan(
        self, provider: str | None, model: str | None, day: date | None, segment: int | None = 0
    ) -> _Plan:
        """The plan for calls on ``day``, in part ``segment`` of it (see ``day_boundaries``)."""
        if not model:
            return _Plan()
        provider_id = normalize_provider(provider)
        for entry in self._overrides:
            if entry.matches(provider_id, model):
                return _Plan("pricing.yaml", entry.model, buckets=(entry.rates(),))
        found = self.model(provider_id, model)
        if found is None:
            named = f"of provider '{provider}'" if provider else "(no provider named)"
            return _Plan(
                reason=f"Model '{model}' {named} is in neither genai-prices nor "
                "policies/pricing.yaml."
            )
        source, info = "genai-prices", found[1]
        if day is None or segment is None:
            return _Plan(source, info.id, per_call=True)
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
                return _Plan(reason=f"genai-prices cannot price model '{model}': {error}")
        linear = self._rates[key]
        if linear is None:
            return _Plan(source, info.id, per_call=True)
        return _Plan(source, info.id, thresholds=linear[0], buckets=linear[1])

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


def _day_segment(pricer: _Pricer, keys: pl.DataFrame) -> pl.Expr | None:
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


def _price_table(pricer: _Pricer, keys: pl.DataFrame) -> pl.DataFrame:
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
        for name in _RATES:
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
        **{f"_{n}_{b}": pl.Float64 for b in range(buckets) for n in _RATES},
    }
    return keys.hstack(pl.DataFrame(columns, schema=schema))


def _priced_cost(table: pl.DataFrame) -> pl.Expr:
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
    return pl.when(_priceable() & ~pl.col("_per_call").fill_null(False)).then(cost)


def _priceable() -> pl.Expr:
    """An LLM call with a model, a plan and consistent token counts."""
    return (
        (pl.col("kind") == "llm_call")
        & pl.col("_source").is_not_null()
        & _has_tokens()
        & _consistent_tokens()
    )


def _has_tokens() -> pl.Expr:
    return pl.col("input_tokens").is_not_null() | pl.col("output_tokens").is_not_null()


def _consistent_tokens() -> pl.Expr:
    inp, out, cache_read, cache_write, reasoning = (pl.col(c).fill_null(0) for c in TOKEN_FIELDS)
    return (
        (cache_read >= 0)
        & (cache_write >= 0)
        & (reasoning >= 0)
        & (cache_read + cache_write <= inp)
        & (reasoning <= out)
    )


def _price_per_call(pricer: _Pricer, frame: pl.DataFrame) -> pl.DataFrame:
    """Fill ``priced_cost_usd`` of calls whose price is not linear, one genai-prices call each."""
    mask = _priceable() & pl.col("_per_call") & pl.col("ts").is_not_null()
    rows = frame.with_row_index("_row").filter(mask)
    if rows.is_empty():
        return frame
    costs: list[float | None] = []
    for row in rows.select("provider", "model", "ts", *TOKEN_FIELDS).iter_rows():
        provider, model, ts, inp, out, cache_read, cache_write, reasoning = row
        found = pricer.model(normalize_provider(provider), model)
        assert found is not None  # a per-call plan is only made for a model genai-prices has
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
            costs.append(None)  # left unpriced; the reason says genai-prices could not price it
        else:
            costs.append(float(price.total_price))
    priced = frame["priced_cost_usd"].scatter(rows["_row"], costs)
    return frame.with_columns(priced)


def _output_columns() -> list[pl.Expr]:
    """The columns of ``EVENT_COSTS_SCHEMA`` from a priced frame."""
    reported = pl.col("cost_usd").alias("reported_cost_usd")
    # A call that failed before any usage (rate limit, timeout) is not billed by providers.
    failed = (pl.col("kind") == "llm_call") & (pl.col("status") == "error") & ~_has_tokens()
    trusted = _trusted_cost()
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
        .then(pl.lit(_NO_MODEL))
        .when(~_has_tokens())
        .then(pl.lit(_NO_TOKENS))
        .when(~_consistent_tokens())
        .then(pl.lit(_BAD_TOKENS))
        .otherwise(pl.coalesce("_reason", pl.lit(_NOT_PRICED)))
    )
    computed = {
        "price_model": pl.when(pl.col("priced_cost_usd").is_not_null()).then("price_model"),
        "reported_cost_usd": reported,
        "cost_usd": cost.alias("cost_usd"),
        "cost_source": source.alias("cost_source"),
        "unpriced_reason": reason.alias("unpriced_reason"),
    }
    return [computed.get(name, pl.col(name)) for name in EVENT_COSTS_SCHEMA]


def _trusted_cost() -> pl.Expr:
    """The reported cost, less a 0 reported for an LLM call that used tokens.

    Exporters write 0 when they do not know the price; such a call is priced like one that
    reports no cost, and ``reported_cost_usd`` keeps the 0 that was sent.
    """
    inp, out = (pl.col(c).fill_null(0) for c in ("input_tokens", "output_tokens"))
    unknown = (pl.col("kind") == "llm_call") & (pl.col("cost_usd") == 0) & (inp + out > 0)
    return pl.when(~unknown.fill_null(False)).then(pl.col("cost_usd"))


def _linear_rates(
    provider: Provider, info: ModelInfo, price: ModelPrice, *, when: datetime
) -> tuple[tuple[int, ...], tuple[_Rates, ...]] | None:
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
    buckets: list[_Rates] = []
    for index in range(len(thresholds) + 1):
        low = thresholds[index - 1] + 1 if index else 0
        high = thresholds[index] if index < len(thresholds) else None
        # Probe input tokens inside the bucket: they decide which tier applies.
        size = low if index else min(_PROBE, high if high is not None else _PROBE)
        base = total(size)
        rates = _Rates(
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


def _micros(value: time) -> int:
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond


def _at(values: tuple[_T, ...], index: int) -> _T | None:
    return values[index] if index < len(values) else None


def _or(value: Decimal | None, default: Decimal) -> Decimal:
    return default if value is None else value


__all__: Sequence[str] = (
    "EVENT_COSTS_SCHEMA",
    "PRICE_SOURCES",
    "PriceOverride",
    "UNPRICED_SCHEMA",
    "load_pricing",
    "normalize_provider",
    "price_events",
    "unpriced_models",
)
