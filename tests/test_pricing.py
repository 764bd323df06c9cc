"""Pricing of LLM calls against the real genai-prices data, and pricing.yaml overrides."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import genai_prices
import polars as pl
import pytest

import policies
from agentops_assets.finops.pricing import (
    EVENT_COSTS_SCHEMA,
    PRICE_SOURCES,
    PriceOverride,
    load_pricing,
    normalize_provider,
    price_events,
    unpriced_models,
)
from agentops_assets.simulator.catalog import MODELS
from agentops_assets.storage.policy_file import PolicyFileError

# How the simulator's writers name each provider (OTel current and legacy, OpenInference).
SPELLINGS = {
    "openai": ("openai",),
    "anthropic": ("anthropic",),
    "google": ("google", "gcp.gemini", "vertex_ai"),
    "mistral": ("mistral", "mistral_ai", "mistralai"),
}
TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
DAY = date(2025, 6, 2)


def row(n: int = 0, **fields: object) -> dict[str, object]:
    """One ``agent_events`` row of an LLM call; ``fields`` override the defaults."""
    ts = fields.pop("ts", datetime(2025, 6, 2, 12, 0, tzinfo=UTC))
    assert isinstance(ts, datetime)
    record: dict[str, object] = {
        "event_id": f"ev-{n}",
        "trace_id": f"tr-{n // 4}",
        "ts": ts,
        "event_date": ts.date(),
        "agent_id": "finance-agent-01",
        "agent_type": "FinanceAgent",
        "kind": "llm_call",
        "provider": "openai",
        "model": "gpt-4o-2024-08-06",
        "input_tokens": 1_000,
        "output_tokens": 200,
        "cache_read_tokens": None,
        "cache_write_tokens": None,
        "reasoning_tokens": None,
        "cost_usd": None,
    }
    record.update(fields)
    return record


def frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    schema = {
        "event_id": pl.String,
        "trace_id": pl.String,
        "ts": pl.Datetime("us", "UTC"),
        "event_date": pl.Date,
        "agent_id": pl.String,
        "agent_type": pl.String,
        "kind": pl.String,
        "provider": pl.String,
        "model": pl.String,
        **{name: pl.Int64 for name in (*TOKENS, "reasoning_tokens")},
        "cost_usd": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def expected(record: dict[str, object]) -> float:
    """What genai-prices itself says the call of ``record`` costs."""
    counts = {name: record[name] or 0 for name in (*TOKENS, "reasoning_tokens")}
    usage = genai_prices.Usage(
        input_tokens=counts["input_tokens"],
        output_tokens=counts["output_tokens"],
        cache_read_tokens=counts["cache_read_tokens"],
        cache_write_tokens=counts["cache_write_tokens"],
        output_reasoning_tokens=counts["reasoning_tokens"],
    )
    price = genai_prices.calc_price(
        usage,
        str(record["model"]),
        provider_id=str(record["provider"]),
        genai_request_timestamp=record["ts"],  # type: ignore[arg-type]
    )
    return float(price.total_price)


def random_calls(model: str, provider: str, *, seed: int, count: int) -> list[dict[str, object]]:
    """Calls with random, consistent token counts over two years, some columns left null."""
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        inp = rng.choice([0, rng.randint(1, 4_000), rng.randint(4_000, 300_000)])
        cache_read = rng.randint(0, inp) if rng.random() < 0.5 else None
        cache_write = rng.randint(0, inp - (cache_read or 0)) if rng.random() < 0.4 else None
        out = rng.randint(0, 20_000)
        reasoning = rng.randint(0, out) if rng.random() < 0.4 else None
        ts = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 2 * 365 * 86400))
        rows.append(
            row(
                n,
                ts=ts,
                provider=provider,
                model=model,
                input_tokens=inp,
                output_tokens=out,
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
                reasoning_tokens=reasoning,
            )
        )
    return rows


@pytest.mark.parametrize("name", sorted(MODELS))
def test_prices_agree_with_genai_prices_for_every_simulated_model(name: str) -> None:
    model = MODELS[name]
    rows = []
    for seed, spelling in enumerate(SPELLINGS[model.provider]):
        for ref in dict.fromkeys((model.name, model.response)):
            rows += random_calls(ref, spelling, seed=seed, count=150)
    costs = price_events(frame(rows))
    assert costs["cost_source"].to_list() == ["genai-prices"] * len(rows)
    assert costs["provider_id"].unique().to_list() == [model.provider]
    for record, priced in zip(rows, costs["priced_cost_usd"], strict=True):
        assert priced == pytest.approx(expected(record), abs=1e-9, rel=0)


@pytest.mark.parametrize(
    "model", ["deepseek-chat", "deepseek-reasoner", "deepseek-v4-flash", "deepseek-v4-pro"]
)
def test_prices_by_the_hour_and_by_the_date_agree_with_genai_prices(model: str) -> None:
    rows = random_calls(model, "deepseek", seed=7, count=400)
    costs = price_events(frame(rows))["cost_usd"]
    for record, priced in zip(rows, costs, strict=True):
        assert priced == pytest.approx(expected(record), abs=1e-9, rel=0)


def test_a_tiered_price_switches_above_its_threshold() -> None:
    # gemini-1.5-pro charges every token at the higher rate above 128k input tokens.
    rows = [
        row(n, provider="gcp.gemini", model="gemini-1.5-pro", input_tokens=inp, output_tokens=900)
        for n, inp in enumerate((127_999, 128_000, 128_001, 400_000))
    ]
    costs = price_events(frame(rows))["cost_usd"].to_list()
    assert costs == pytest.approx([expected(r) for r in rows], abs=1e-9, rel=0)
    per_token = [
        (cost - 900 * 5e-6) / r["input_tokens"] for cost, r in zip(costs[:2], rows[:2], strict=True)
    ]
    assert per_token == pytest.approx([1.25e-6, 1.25e-6])
    assert costs[2] == pytest.approx(128_001 * 2.5e-6 + 900 * 10e-6)


def test_the_price_of_the_day_applies() -> None:
    # mistral-small-latest got a new price on 2026-03-16 in the bundled data.
    rows = [
        row(n, ts=ts, provider="mistral_ai", model="mistral-small-latest", input_tokens=50_000)
        for n, ts in enumerate(
            (datetime(2026, 3, 15, 23, 59, tzinfo=UTC), datetime(2026, 3, 16, 0, 1, tzinfo=UTC))
        )
    ]
    costs = price_events(frame(rows))["cost_usd"].to_list()
    assert costs == pytest.approx([expected(r) for r in rows], abs=1e-9, rel=0)
    assert costs[0] != pytest.approx(costs[1])


def test_off_peak_prices_follow_the_time_of_day() -> None:
    # deepseek-chat is cheaper from 16:30 to 00:30 UTC; calls on both sides of each change.
    times = [
        datetime(2025, 3, 1, 0, 29, 59, 999_999, tzinfo=UTC),
        datetime(2025, 3, 1, 0, 30, tzinfo=UTC),
        datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        datetime(2025, 3, 1, 16, 29, 59, 999_999, tzinfo=UTC),
        datetime(2025, 3, 1, 16, 30, tzinfo=UTC),
        datetime(2025, 3, 2, 23, 59, tzinfo=UTC),
    ]
    calls = [
        row(
            n,
            ts=ts,
            provider="deepseek",
            model="deepseek-chat",
            input_tokens=20_000,
            cache_read_tokens=5_000,
            output_tokens=1_000,
        )
        for n, ts in enumerate(times)
    ]
    costs = price_events(frame(calls + [row(9, ts=times[0])]))
    priced = costs["cost_usd"].to_list()[: len(times)]
    assert priced == pytest.approx([expected(r) for r in calls], abs=1e-9, rel=0)
    off_peak, peak = priced[0], priced[1]
    assert off_peak < peak
    assert priced == pytest.approx([off_peak, peak, peak, peak, off_peak, off_peak])
    assert costs["price_model"].to_list()[: len(times)] == ["deepseek-chat"] * len(times)


def test_a_call_without_event_date_is_priced_at_its_timestamp() -> None:
    calls = [
        row(0, provider="deepseek", model="deepseek-chat"),
        row(1, ts=datetime(2025, 6, 2, 20, tzinfo=UTC), provider="deepseek", model="deepseek-chat"),
        row(2),
    ]
    for call in calls:
        call["event_date"] = None
    costs = price_events(frame(calls))
    assert costs["cost_usd"].to_list() == pytest.approx([expected(r) for r in calls], abs=1e-9)
    assert costs["cost_source"].to_list() == ["genai-prices"] * 3


def test_a_provider_genai_prices_does_not_know_is_inferred_from_the_model() -> None:
    costs = price_events(frame([row(provider="acme-gateway"), row(1, provider=None)]))
    assert costs["cost_source"].to_list() == ["genai-prices", "genai-prices"]
    assert costs["provider_id"].to_list() == ["acme-gateway", None]
    assert costs["price_model"].to_list() == ["gpt-4o", "gpt-4o"]


def test_a_reported_cost_wins_and_the_priced_cost_is_kept_for_comparison() -> None:
    record = row(cost_usd=0.1234)
    costs = price_events(frame([record])).row(0, named=True)
    assert costs["cost_usd"] == 0.1234
    assert costs["reported_cost_usd"] == 0.1234
    assert costs["cost_source"] == "reported"
    assert costs["priced_cost_usd"] == pytest.approx(expected(record), abs=1e-12)
    assert costs["unpriced_reason"] is None


def test_calls_without_a_price_keep_a_null_cost_and_say_why() -> None:
    rows = [
        row(0, provider="acme", model="foo-9"),
        row(1, provider="acme", model="foo-9"),
        row(2, provider=None, model="foo-9"),
        row(3, model=None),
        row(4, input_tokens=None, output_tokens=None),
        row(5, input_tokens=100, cache_read_tokens=150),
    ]
    costs = price_events(frame(rows))
    assert costs["cost_usd"].null_count() == len(rows)
    assert costs["cost_source"].null_count() == len(rows)
    assert costs["price_model"].null_count() == len(rows)
    reasons = costs["unpriced_reason"].to_list()
    assert reasons[0] == (
        "Model 'foo-9' of provider 'acme' is in neither genai-prices nor policies/pricing.yaml."
    )
    assert reasons[2] == (
        "Model 'foo-9' (no provider named) is in neither genai-prices nor policies/pricing.yaml."
    )
    assert reasons[3] == "The LLM call names no model."
    assert reasons[4] == "The LLM call reports no token counts."
    assert "more cached than input tokens" in reasons[5]

    listing = unpriced_models(costs)
    assert listing.columns == ["provider", "model", "calls", "reason"]
    assert listing.row(0, named=True) == {
        "provider": "acme",
        "model": "foo-9",
        "calls": 2,
        "reason": reasons[0],
    }
    assert listing["calls"].sum() == len(rows)


def test_unpriced_models_is_empty_when_everything_is_priced() -> None:
    listing = unpriced_models(price_events(frame([row()])))
    assert listing.is_empty()
    assert listing.schema == pl.Schema(
        {"provider": pl.String, "model": pl.String, "calls": pl.Int64, "reason": pl.String}
    )


def test_null_token_columns_count_as_zero() -> None:
    record = row(input_tokens=None, output_tokens=300)
    costs = price_events(frame([record]))
    assert costs["cost_usd"][0] == pytest.approx(300 * 10e-6)


def test_only_llm_calls_and_events_with_a_reported_cost_are_kept() -> None:
    tool = {"kind": "tool_call", "provider": None, "model": None, "input_tokens": None}
    rows = [
        row(0),
        row(1, **tool, output_tokens=None, cost_usd=0.002),
        row(2, **tool, output_tokens=None),
    ]
    costs = price_events(frame(rows).lazy())
    assert costs["event_id"].to_list() == ["ev-0", "ev-1"]
    assert costs.row(1, named=True)["cost_source"] == "reported"
    assert costs.row(1, named=True)["priced_cost_usd"] is None


def test_output_has_the_event_costs_schema_in_input_order() -> None:
    rows = [row(n, model=model) for n, model in enumerate(("o1", "gpt-4o-mini", "foo", "o1"))]
    costs = price_events(frame(rows))
    assert costs.schema == pl.Schema(EVENT_COSTS_SCHEMA)
    assert costs["event_id"].to_list() == ["ev-0", "ev-1", "ev-2", "ev-3"]
    assert set(costs["cost_source"].drop_nulls()) <= set(PRICE_SOURCES)
    empty = price_events(frame([]))
    assert empty.is_empty()
    assert empty.schema == pl.Schema(EVENT_COSTS_SCHEMA)


# pricing.yaml


def override(**fields: object) -> PriceOverride:
    return PriceOverride.model_validate({"input_mtok": 1, "output_mtok": 2, **fields})


def test_an_override_beats_genai_prices() -> None:
    rule = override(model="gpt-4o-2024-08-06", provider="openai", input_mtok=2, output_mtok=8)
    costs = price_events(
        frame([row(input_tokens=1_000_000, output_tokens=1_000_000)]), overrides=[rule]
    )
    result = costs.row(0, named=True)
    assert result["cost_source"] == "pricing.yaml"
    assert result["price_model"] == "gpt-4o-2024-08-06"
    assert result["cost_usd"] == pytest.approx(10.0)


def test_a_self_hosted_model_is_priced_by_a_glob_and_the_first_match_wins() -> None:
    rules = [
        override(model="Llama-3.1-70B*", provider="self-hosted", input_mtok=0.2, output_mtok=0.2),
        override(model="llama-3.1-70b-instruct", input_mtok=99, output_mtok=99),
    ]
    rows = [
        row(0, provider="self-hosted", model="llama-3.1-70b-instruct-fp8"),
        row(1, provider="self-hosted", model="llama-3.1-70b-instruct"),
        row(2, provider="self-hosted", model="llama-3.1-8b"),
    ]
    costs = price_events(frame(rows), overrides=rules)
    assert costs["price_model"].to_list()[:2] == ["Llama-3.1-70B*", "Llama-3.1-70B*"]
    assert costs["cost_usd"].to_list()[:2] == pytest.approx([1_200 * 0.2e-6] * 2)
    assert costs["cost_usd"][2] is None


def test_an_override_for_one_provider_leaves_the_others_alone() -> None:
    rule = override(model="gpt-4o*", provider="azure.ai.openai", input_mtok=0, output_mtok=0)
    rows = [row(0, provider="azure"), row(1, provider="openai"), row(2, provider=None)]
    costs = price_events(frame(rows), overrides=[rule])
    assert costs["cost_source"].to_list() == ["pricing.yaml", "genai-prices", "genai-prices"]
    assert costs["cost_usd"][0] == 0.0


def test_cached_and_reasoning_tokens_default_to_the_input_and_output_prices() -> None:
    usage = {
        "input_tokens": 1_000_000,
        "cache_read_tokens": 300_000,
        "cache_write_tokens": 200_000,
        "output_tokens": 1_000_000,
        "reasoning_tokens": 400_000,
    }
    plain = override(model="m", input_mtok=1, output_mtok=2)
    detailed = override(
        model="m",
        input_mtok=1,
        output_mtok=2,
        cache_read_mtok=0.1,
        cache_write_mtok=1.5,
        reasoning_mtok=3,
    )
    records = [row(0, provider="x", model="m", **usage)]
    assert price_events(frame(records), overrides=[plain])["cost_usd"][0] == pytest.approx(3.0)
    priced = price_events(frame(records), overrides=[detailed])["cost_usd"][0]
    assert priced == pytest.approx(0.5 * 1 + 0.3 * 0.1 + 0.2 * 1.5 + 0.6 * 2 + 0.4 * 3)


def test_load_pricing_reads_entries_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "pricing.yaml"
    path.write_text(
        "# prices\n"
        "models:\n"
        "  - model: llama-3.1-70b*\n"
        "    provider: self-hosted\n"
        "    input_mtok: 0.2\n"
        "    output_mtok: 0.25\n"
        "  - model: gpt-4o\n"
        "    input_mtok: 2\n"
        "    output_mtok: 8\n"
        "    cache_read_mtok: 1\n"
    )
    first, second = load_pricing(path)
    assert (first.model, first.provider, first.input_mtok) == (
        "llama-3.1-70b*",
        "self-hosted",
        Decimal("0.2"),
    )
    assert (second.model, second.provider, second.cache_read_mtok) == ("gpt-4o", None, 1)
    assert second.reasoning_mtok is None


def test_a_missing_pricing_file_means_no_overrides(tmp_path: Path) -> None:
    assert load_pricing(tmp_path / "absent.yaml") == []


def test_the_shipped_pricing_file_is_valid() -> None:
    entries = load_pricing(Path(policies.__file__).parent / "pricing.yaml")
    assert [(e.model, e.provider) for e in entries] == [("llama-3.1-70b-instruct*", "self-hosted")]


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (
            "models:\n  - model: a\n    input_mtok: -1\n    output_mtok: 1\n",
            3,
            "'input_mtok' input should be greater than or equal to 0",
        ),
        (
            "models:\n  - model: a\n    input_mtok: 1\n    output_mtok: 1\n    price: 3\n",
            5,
            "unknown key 'price'",
        ),
        ("models:\n  - model: a\n    input_mtok: 1\n", 2, "'output_mtok' is required"),
        ("models:\n  - model: a\n   input_mtok: [1\n", 3, "is not valid YAML"),
        ("models:\n  - model: a\n    input_mtok: ten\n    output_mtok: 1\n", 3, "'input_mtok'"),
    ],
    ids=["negative", "unknown-key", "missing-output", "bad-yaml", "not-a-number"],
)
def test_an_invalid_pricing_file_names_the_line(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    path = tmp_path / "pricing.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as caught:
        load_pricing(path)
    assert caught.value.line == line
    assert f"pricing.yaml, line {line}: " in str(caught.value)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("name", "provider_id"),
    [
        ("openai", "openai"),
        ("Anthropic", "anthropic"),
        ("gcp.gemini", "google"),
        ("gcp.vertex_ai", "google"),
        ("gcp.gen_ai", "google"),
        ("vertex_ai", "google"),
        ("google", "google"),
        ("gemini", "google"),
        ("mistral_ai", "mistral"),
        ("mistralai", "mistral"),
        ("mistral", "mistral"),
        ("aws.bedrock", "aws"),
        ("bedrock", "aws"),
        ("azure.ai.openai", "azure"),
        ("azure.ai.inference", "azure"),
        ("azure", "azure"),
        ("x_ai", "x-ai"),
        ("xai", "x-ai"),
        ("deepseek", "deepseek"),
        ("groq", "groq"),
        ("cohere", "cohere"),
        ("perplexity", "perplexity"),
        ("Self-Hosted", "self-hosted"),
        ("ibm.watsonx.ai", "ibm.watsonx.ai"),
        (None, None),
    ],
)
def test_normalize_provider(name: str | None, provider_id: str | None) -> None:
    assert normalize_provider(name) == provider_id


def test_every_normalized_known_provider_is_a_genai_prices_id() -> None:
    ids = {p.id for p in genai_prices.data_snapshot.get_snapshot().providers}
    names = ("gcp.gemini", "mistral_ai", "aws.bedrock", "azure.ai.openai", "x_ai", "cohere")
    assert {normalize_provider(name) for name in names} <= ids


def test_a_failed_call_without_usage_costs_nothing_and_says_why() -> None:
    blank = dict.fromkeys(TOKENS)
    rows = [row(0, status="error", **blank), row(1, status="ok", **blank), row(2, status="error")]
    costs = price_events(frame(rows).with_columns(status=pl.Series([r["status"] for r in rows])))
    assert costs["cost_usd"][:2].to_list() == [0.0, None]
    assert costs["cost_source"].to_list() == ["failed_call", None, "genai-prices"]
    assert costs["unpriced_reason"][1] == "The LLM call reports no token counts."
    assert costs["cost_usd"][2] == pytest.approx(expected(rows[2]))
