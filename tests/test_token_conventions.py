"""Token counts in one convention whatever the source: input includes cache, output reasoning.

Usage blocks are shaped as each provider or instrumentation sends them, go through the real
readers and validation, and are then priced with a pricing.yaml override of known prices.
"""

from __future__ import annotations

from typing import Any

import orjson
import polars as pl
import pytest

from agentops_assets.finops.pricing import PriceOverride, price_events
from agentops_assets.telemetry.jsonl import read_jsonl
from agentops_assets.telemetry.otlp import read_otlp
from agentops_assets.telemetry.validate import NORMALISED_KEY, validate
from tests.conftest import event

TRACE = "5b8efff798038103d269b633813fc60c"
# USD per million tokens: input, output, cache read, cache write.
RATES = {"input_mtok": 3, "output_mtok": 15, "cache_read_mtok": 0.3, "cache_write_mtok": 3.75}


def _price(models: str) -> PriceOverride:
    return PriceOverride.model_validate({"model": models, **RATES})


def _by_hand(inp: int, out: int, read: int = 0, write: int = 0) -> float:
    """The override's price of a call whose ``inp`` includes ``read`` and ``write``."""
    return ((inp - read - write) * 3 + read * 0.3 + write * 3.75 + out * 15) / 1e6


def _rows(records: pl.DataFrame) -> pl.DataFrame:
    checked = validate(records)
    assert checked.failures.is_empty(), checked.failures.to_dicts()
    return checked.rows.with_columns(event_date=pl.col("ts").dt.date())


def _jsonl(*records: dict[str, object]) -> pl.DataFrame:
    parsed = read_jsonl(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    assert not parsed.rejects
    return _rows(parsed.records)


def _int(key: str, value: int) -> dict[str, Any]:
    return {"key": key, "value": {"intValue": str(value)}}


def _str(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _otlp(*spans: list[dict[str, Any]]) -> pl.DataFrame:
    """LLM spans (each given by its attributes) through the OTLP reader and validation."""
    items = [
        {
            "traceId": TRACE,
            "spanId": f"{n + 1:016x}",
            "name": "chat",
            "startTimeUnixNano": str(1_763_974_800_000_000_000 + n * 1_000_000),
            "endTimeUnixNano": str(1_763_974_800_250_000_000 + n * 1_000_000),
            "attributes": [
                _str("gen_ai.agent.id", "fin-01"),
                _str("agentops.agent.type", "FinanceAgent"),
                *attributes,
            ],
        }
        for n, attributes in enumerate(spans)
    ]
    body = {"resourceSpans": [{"scopeSpans": [{"spans": items}]}]}
    parsed = read_otlp(orjson.dumps(body))
    assert not parsed.rejects
    return _rows(parsed.records)


def _tokens(row: dict[str, Any]) -> tuple[Any, ...]:
    names = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    return (*(row[name] for name in names), row["reasoning_tokens"])


def _normalised(row: dict[str, Any]) -> list[str] | None:
    return orjson.loads(row["attributes"]).get(NORMALISED_KEY)


def test_anthropic_native_usage_in_jsonl_gets_cache_added_and_priced_by_hand() -> None:
    claude = {"provider": "anthropic", "model": "claude-sonnet-4-5"}
    top_level = event(
        1,
        **claude,
        input_tokens=3_000,  # Anthropic: tokens after the last cache breakpoint only
        output_tokens=300,
        cache_read_input_tokens=1_000,
        cache_creation_input_tokens=200,
    )
    usage = {k: v for k, v in event(2, **claude).items() if not k.endswith("_tokens")}
    usage["usage"] = {
        "input_tokens": 50,
        "output_tokens": 80,
        "cache_read_input_tokens": 20_000,
        "cache_creation_input_tokens": 0,
    }
    rows = _jsonl(top_level, usage)
    first, second = rows.to_dicts()
    assert _tokens(first) == (4_200, 300, 1_000, 200, None)
    assert _normalised(first) == ["input+cache"]
    assert _tokens(second) == (20_050, 80, 20_000, 0, None)
    costs = price_events(rows, overrides=[_price("claude-*")])
    assert costs["cost_source"].to_list() == ["pricing.yaml"] * 2
    assert costs["cost_usd"].to_list() == pytest.approx(
        [_by_hand(4_200, 300, 1_000, 200), _by_hand(20_050, 80, 20_000, 0)]
    )
    assert costs["cost_usd"][0] == pytest.approx((3_000 * 3 + 300 + 750 + 4_500) / 1e6)


def test_a_jsonl_event_in_the_contract_convention_is_left_alone() -> None:
    rows = _jsonl(
        event(
            1, provider="anthropic", input_tokens=5_000, output_tokens=10, cache_read_tokens=4_000
        )
    )
    assert _tokens(rows.row(0, named=True)) == (5_000, 10, 4_000, None, None)
    assert _normalised(rows.row(0, named=True)) is None


def test_otel_genai_input_includes_cached_tokens_and_is_unchanged() -> None:
    rows = _otlp(
        [
            _str("gen_ai.operation.name", "chat"),
            _str("gen_ai.provider.name", "openai"),
            _str("gen_ai.request.model", "gpt-4o"),
            _int("gen_ai.usage.input_tokens", 1_000),
            _int("gen_ai.usage.output_tokens", 200),
            _int("gen_ai.usage.cache_read.input_tokens", 400),
            _int("gen_ai.usage.reasoning.output_tokens", 50),
        ]
    )
    row = rows.row(0, named=True)
    assert _tokens(row) == (1_000, 200, 400, None, 50)
    assert _normalised(row) is None
    costs = price_events(rows, overrides=[_price("gpt-4o")])
    assert costs["cost_usd"][0] == pytest.approx(_by_hand(1_000, 200, 400))


def test_openllmetry_anthropic_cache_names_are_mapped_and_only_an_evident_gap_is_added() -> None:
    def span(inp: int) -> list[dict[str, Any]]:
        return [
            _str("gen_ai.operation.name", "chat"),
            _str("gen_ai.system", "anthropic"),
            _str("gen_ai.request.model", "claude-sonnet-4-5"),
            _int("gen_ai.usage.input_tokens", inp),
            _int("gen_ai.usage.output_tokens", 100),
            _int("gen_ai.usage.cache_read_input_tokens", 3_000),
            _int("gen_ai.usage.cache_creation_input_tokens", 500),
        ]

    included, excluded = _otlp(span(3_600), span(100)).to_dicts()
    assert _tokens(included) == (3_600, 100, 3_000, 500, None)
    assert _normalised(included) is None
    assert _tokens(excluded) == (3_600, 100, 3_000, 500, None)
    assert _normalised(excluded) == ["input+cache"]
    assert "gen_ai.usage.cache_read_input_tokens" not in orjson.loads(excluded["attributes"])


def test_openinference_prompt_count_includes_cache_and_is_unchanged() -> None:
    rows = _otlp(
        [
            _str("openinference.span.kind", "LLM"),
            _str("llm.provider", "openai"),
            _str("llm.model_name", "gpt-4o"),
            _int("llm.token_count.prompt", 1_000),
            _int("llm.token_count.completion", 300),
            _int("llm.token_count.prompt_details.cache_read", 800),
            _int("llm.token_count.completion_details.reasoning", 120),
        ]
    )
    row = rows.row(0, named=True)
    assert _tokens(row) == (1_000, 300, 800, None, 120)
    assert _normalised(row) is None
    costs = price_events(rows, overrides=[_price("gpt-4o")])
    assert costs["cost_usd"][0] == pytest.approx(_by_hand(1_000, 300, 800))


def test_reasoning_reported_outside_output_is_added() -> None:
    span = [
        _str("openinference.span.kind", "LLM"),
        _str("llm.provider", "openai"),
        _str("llm.model_name", "o3"),
        _int("llm.token_count.prompt", 500),
        _int("llm.token_count.completion", 40),
        _int("llm.token_count.completion_details.reasoning", 900),
    ]
    row = _otlp(span).row(0, named=True)
    assert _tokens(row) == (500, 940, None, None, 900)
    assert _normalised(row) == ["output+reasoning"]

    gemini = event(
        1,
        provider="gcp.gemini",
        model="gemini-2.5-pro",
        input_tokens=700,
        output_tokens=100,  # Gemini's candidates_token_count: the answer without thoughts
        thoughts_token_count=60,
    )
    rows = _jsonl(gemini)
    assert _tokens(rows.row(0, named=True)) == (700, 160, None, None, 60)
    costs = price_events(rows, overrides=[_price("gemini-*")])
    assert costs["cost_usd"][0] == pytest.approx(_by_hand(700, 160))


def test_a_reported_zero_cost_with_tokens_is_priced() -> None:
    rows = _jsonl(
        event(1, model="gpt-4o", input_tokens=2_000, output_tokens=500, cost_usd=0),
        event(2, model="gpt-4o", input_tokens=None, output_tokens=None, cost_usd=0),
        event(3, model="gpt-4o", input_tokens=2_000, output_tokens=500, cost_usd=0.5),
    )
    costs = price_events(rows, overrides=[_price("gpt-4o")]).to_dicts()
    assert [c["cost_source"] for c in costs] == ["pricing.yaml", "reported", "reported"]
    assert costs[0]["cost_usd"] == pytest.approx(_by_hand(2_000, 500))
    assert costs[0]["cost_usd"] > 0
    assert costs[0]["reported_cost_usd"] == 0
    assert [c["cost_usd"] for c in costs[1:]] == [0, 0.5]
