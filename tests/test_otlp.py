"""The OTLP JSON trace reader: mapping of GenAI / OpenInference spans, and what it rejects."""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from agentops_assets.telemetry.otlp import read_otlp
from agentops_assets.telemetry.parsed import ParsedRecords
from agentops_assets.telemetry.schema import RAW_SCHEMA
from agentops_assets.telemetry.validate import validate

DATA = Path(__file__).parent / "data" / "otlp"
TRACE = "5b8efff798038103d269b633813fc60c"


def _s(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _span(n: int, *attributes: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A valid span; ``n`` makes its id unique."""
    span: dict[str, Any] = {
        "traceId": TRACE,
        "spanId": f"{n + 1:016x}",
        "name": f"span {n}",
        "startTimeUnixNano": str(1_763_974_800_000_000_000 + n * 1_000_000),
        "endTimeUnixNano": str(1_763_974_800_000_000_000 + n * 1_000_000 + 250_000_000),
        "attributes": [_s("gen_ai.agent.id", "fin-01"), *attributes],
    }
    span.update(fields)
    return span


def _request(*spans: Any, resource: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    rs: dict[str, Any] = {"scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}]}
    if resource is not None:
        rs["resource"] = {"attributes": resource}
    return {"resourceSpans": [rs]}


def _read(*spans: Any, **kwargs: Any) -> ParsedRecords:
    return read_otlp(orjson.dumps(_request(*spans, **kwargs)))


def _rows(parsed: ParsedRecords) -> list[dict[str, Any]]:
    return parsed.records.to_dicts()


def _attributes(row: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(row["attributes"])


def _accounted(parsed: ParsedRecords) -> bool:
    return parsed.records.height + len(parsed.rejects) == parsed.records_read


# --- the three attribute dialects --------------------------------------------------------------


def test_current_genai_names_map_to_canonical_fields() -> None:
    parsed = read_otlp((DATA / "genai_current.json").read_bytes(), source_file="genai.json")
    assert parsed.records.schema == RAW_SCHEMA
    assert parsed.records_read == 3 and not parsed.rejects
    decision, chat, tool = _rows(parsed)

    assert decision["_index"] == 0 and decision["parent_id"] is None
    assert (decision["event_id"], decision["trace_id"]) == ("eee19b7ec3c1b174", TRACE)
    assert (decision["ts"], decision["duration_ms"]) == ("1763974800000000000", "2500.0")
    assert (decision["agent_id"], decision["agent_type"]) == ("fin-01", "FinanceAgent")
    assert decision["agent_tier"] == "strategic"  # from the resource
    assert (decision["kind"], decision["action"], decision["outcome"]) == (
        "decision",
        "invoke_agent",
        "success",
    )
    assert (decision["confidence"], decision["value_usd"]) == ("0.82", "1250.0")
    assert decision["reasoning_summary"] == "Approve: invoice matches PO."
    assert decision["session_id"] == "conv-7" and decision["status"] == "ok"

    assert chat["parent_id"] == "eee19b7ec3c1b174"
    assert (chat["kind"], chat["action"]) == ("llm_call", "chat")
    assert (chat["provider"], chat["model"]) == ("openai", "gpt-4o-2024-08-06")
    tokens = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    assert [chat[t] for t in (*tokens, "reasoning_tokens")] == ["1200", "300", "1024", "0", "64"]
    assert chat["cost_usd"] == "0.0042"
    assert orjson.loads(chat["input_context"])[0]["parts"][0]["content"] == "Check invoice 42"
    assert orjson.loads(chat["result"])[0]["parts"][0]["content"] == "Matches PO-9"

    assert (tool["kind"], tool["action"], tool["attempt"]) == ("tool_call", "erp_lookup", "1")
    assert tool["action_target"] == "https://erp.example.com/api/invoices/42"
    assert tool["input_context"] == '{"invoice":42}'
    assert (tool["status"], tool["error_type"]) == ("error", "ServiceUnavailable")
    assert tool["result"] == "ERP returned 503"  # the status message


def test_unmapped_span_and_resource_attributes_are_kept() -> None:
    decision, chat, tool = _rows(read_otlp((DATA / "genai_current.json").read_bytes()))
    attrs = _attributes(chat)
    assert attrs["gen_ai.request.model"] == "gpt-4o"  # lost to the response model: kept
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["resource.service.name"] == "finance-agent"
    assert attrs["otel.scope.name"] == "opentelemetry.instrumentation.openai_v2"
    assert (attrs["span.name"], attrs["span.kind"]) == ("chat gpt-4o", "SPAN_KIND_CLIENT")
    for mapped in ("gen_ai.usage.input_tokens", "gen_ai.response.model", "gen_ai.operation.name"):
        assert mapped not in attrs
    assert "resource.gen_ai.agent.id" not in attrs  # it became agent_id

    attrs = _attributes(tool)
    assert attrs["gen_ai.tool.call.id"] == "call_9f"
    assert attrs["http.response.status_code"] == 503  # intValue as a JSON number
    assert attrs["gen_ai.operation.name"] == "execute_tool"  # action is the tool name
    (event,) = attrs["span.events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.message"] == "ERP returned 503"

    assert _attributes(decision)["gen_ai.agent.name"] == "FinanceAgent"  # id and type won


def test_older_genai_names_in_collector_newline_delimited_file() -> None:
    parsed = read_otlp((DATA / "collector.json").read_bytes())
    assert parsed.records_read == 3 and not parsed.rejects
    chat, completion, embeddings = _rows(parsed)
    assert [r["_index"] for r in (chat, completion, embeddings)] == [0, 1, 2]
    assert (chat["provider"], chat["model"]) == ("openai", "gpt-4o-mini")
    assert (chat["input_tokens"], chat["output_tokens"]) == ("420", "57")
    assert (chat["agent_id"], chat["agent_type"]) == ("ResearchAgent", "ResearchAgent")
    assert completion["kind"] == "llm_call" and completion["action"] == "text_completion"
    assert embeddings["kind"] == "retrieval" and embeddings["duration_ms"] == "90.0"
    assert "gen_ai.usage.prompt_tokens" not in _attributes(chat)


def test_openinference_names() -> None:
    parsed = read_otlp((DATA / "openinference.json").read_bytes())
    assert parsed.records_read == 5 and not parsed.rejects
    agent, llm, tool, retriever, chain = _rows(parsed)
    assert (agent["agent_id"], agent["agent_type"], agent["session_id"]) == (
        "support-bot-3",
        "SupportAgent",
        "sess-42",
    )
    assert agent["kind"] == "other"  # AGENT without agentops.outcome is not a decision
    assert (agent["input_context"], agent["result"]) == ("Where is my order?", "It ships tomorrow.")
    assert agent["status"] == "ok"  # "STATUS_CODE_OK"

    assert llm["kind"] == "llm_call"
    assert (llm["provider"], llm["model"]) == ("anthropic", "claude-sonnet-4-5")
    tokens = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    assert [llm[t] for t in (*tokens, "reasoning_tokens")] == ["812", "95", "512", "0", "12"]
    assert llm["cost_usd"] == "0.0031"
    attrs = _attributes(llm)
    assert attrs["llm.system"] == "anthropic"  # llm.provider won
    assert attrs["llm.token_count.total"] == 907

    assert (tool["kind"], tool["action"], tool["result"]) == (
        "tool_call",
        "order_status",
        "shipping",
    )
    assert retriever["kind"] == "retrieval"
    assert _attributes(retriever)["retrieval.documents"] == [
        {"document.id": "kb-1", "document.score": 0.91}
    ]
    assert chain["kind"] == "other"  # CHAIN is generic glue, not a plan


def test_snake_case_keys_and_base64_ids() -> None:
    parsed = read_otlp((DATA / "protobuf_snake_case.json").read_bytes())
    assert parsed.records_read == 2 and not parsed.rejects
    plan, memory = _rows(parsed)
    assert plan["trace_id"] == "0102030405060708090a0b0c0d0e0f10"
    assert (plan["event_id"], memory["parent_id"]) == ("a1a2a3a4a5a6a7a8", "a1a2a3a4a5a6a7a8")
    assert (plan["kind"], plan["attempt"], plan["duration_ms"]) == ("plan", "2", "40.0")
    assert (plan["status"], plan["result"]) == ("error", "planner timed out")
    attrs = _attributes(plan)
    assert (attrs["plan.steps"], attrs["plan.approved"]) == (["gather", "draft"], False)
    assert (memory["kind"], memory["action_target"]) == ("memory_op", "customer/42/preferences")


@pytest.mark.parametrize(
    ("raw_id", "size", "expected"),
    [
        ("A1A2A3A4A5A6A7A8", 8, "a1a2a3a4a5a6a7a8"),
        (base64.b64encode(bytes.fromhex("a1a2a3a4a5a6a7a8")).decode(), 8, "a1a2a3a4a5a6a7a8"),
        (base64.b64encode(bytes.fromhex(TRACE)).decode().rstrip("="), 16, TRACE),
        ("d269b633813fc60c", 16, "0000000000000000d269b633813fc60c"),  # 64-bit (Zipkin) trace
    ],
)
def test_id_spellings_are_normalised_to_lowercase_hex(
    raw_id: str, size: int, expected: str
) -> None:
    key = "spanId" if size == 8 else "traceId"
    (row,) = _rows(_read(_span(0, **{key: raw_id})))
    assert row["event_id" if size == 8 else "trace_id"] == expected


# --- kinds, status, precedence -----------------------------------------------------------------


def _op(name: str) -> dict[str, Any]:
    return _s("gen_ai.operation.name", name)


@pytest.mark.parametrize(
    ("attributes", "name", "kind"),
    [
        ([_op("generate_content")], "x", "llm_call"),
        ([_op("invoke_agent"), _s("agentops.outcome", "failure")], "x", "decision"),
        ([_op("invoke_workflow")], "x", "other"),
        ([_op("search_memory")], "x", "memory_op"),
        ([_op("retrieval")], "x", "retrieval"),
        ([_op("human_review"), _s("agentops.feedback.kind", "approve")], "x", "human_review"),
        ([_op("create_agent"), _s("gen_ai.request.model", "gpt-4o")], "x", "other"),
        ([_op("chat"), _s("agentops.kind", "plan")], "x", "plan"),  # explicit kind wins
        ([_s("openinference.span.kind", "EMBEDDING")], "x", "retrieval"),
        (
            [_s("openinference.span.kind", "AGENT"), _s("agentops.outcome", "success")],
            "x",
            "decision",
        ),
        ([_s("openinference.span.kind", "CHAIN")], "write_memory", "memory_op"),  # span name
        (
            [_s("openinference.span.kind", "EVALUATOR"), _s("agentops.feedback.kind", "correct")],
            "x",
            "human_review",
        ),  # noqa: E501
        ([_s("gen_ai.tool.name", "search")], "x", "tool_call"),  # no operation: inferred
        ([_s("gen_ai.request.model", "gpt-4o")], "x", "llm_call"),
        ([], "chat gpt-4o", "llm_call"),  # GenAI span names are "{operation} {target}"
        ([], "GET /health", "other"),
    ],
)
def test_kind(attributes: list[dict[str, Any]], name: str, kind: str) -> None:
    (row,) = _rows(_read(_span(0, *attributes, name=name)))
    assert row["kind"] == kind


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"code": 2}, "error"),
        ({"code": "2"}, "error"),
        ({"code": "STATUS_CODE_ERROR"}, "error"),
        ({"code": 1}, "ok"),
        ({"code": "STATUS_CODE_UNSET"}, "ok"),
        ({}, "ok"),
        (None, "ok"),
        ("STATUS_CODE_ERROR", "error"),  # a bare code, not an object
    ],
)
def test_status_codes_as_numbers_or_enum_names(status: Any, expected: str) -> None:
    (row,) = _rows(_read(_span(0, status=status)))
    assert row["status"] == expected


def test_error_takes_type_and_message_from_the_exception_event() -> None:
    event = {
        "name": "exception",
        "time_unix_nano": "1763974800100000000",
        "attributes": [_s("exception.type", "TimeoutError"), _s("exception.message", "30 s")],
    }
    (row,) = _rows(_read(_span(0, status={"code": 2}, events=[event])))
    assert (row["status"], row["error_type"], row["result"]) == ("error", "TimeoutError", "30 s")
    (kept,) = _attributes(row)["span.events"]
    assert kept["timeUnixNano"] == "1763974800100000000"


def test_ok_span_keeps_its_status_message_in_attributes() -> None:
    (row,) = _rows(_read(_span(0, status={"code": 1, "message": "cached"})))
    assert row["result"] is None
    assert _attributes(row)["span.status.message"] == "cached"


def test_span_attributes_win_over_resource_attributes() -> None:
    resource = [
        _s("gen_ai.agent.id", "from-resource"),
        _s("agentops.agent.type", "ResourceType"),
        _s("gen_ai.provider.name", "openai"),
        _s("deployment.environment.name", "prod"),
    ]
    (row,) = _rows(_read(_span(0, _s("gen_ai.request.model", "gpt-4o")), resource=resource))
    assert (row["agent_id"], row["agent_type"], row["provider"]) == (
        "fin-01",
        "ResourceType",
        "openai",
    )
    attrs = _attributes(row)
    assert attrs["resource.gen_ai.agent.id"] == "from-resource"  # shadowed, still kept
    assert attrs["resource.deployment.environment.name"] == "prod"
    assert "resource.agentops.agent.type" not in attrs and "gen_ai.agent.id" not in attrs


def test_any_value_forms() -> None:
    values = [
        {"key": "n", "value": {"intValue": 7}},  # a number, as some exporters write it
        {"key": "big", "value": {"intValue": "123456789012345678901234567890"}},
        {"key": "nan", "value": {"doubleValue": "NaN"}},
        {"key": "flag", "value": {"boolValue": True}},
        {"key": "blob", "value": {"bytesValue": "AAEC"}},
        {"key": "empty", "value": {}},
        {"key": "kv", "value": {"kvlistValue": {"values": [_s("a", "b")]}}},
        {"key": "gen_ai.input.messages", "value": {"arrayValue": {"values": [{"intValue": "1"}]}}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": 12}},
    ]
    (row,) = _rows(_read(_span(0, *values)))
    expected = {
        "n": 7,
        "big": "123456789012345678901234567890",  # too big for a JSON int: kept as text
        "nan": "NaN",
        "flag": True,
        "blob": "AAEC",
        "empty": None,
        "kv": {"a": "b"},
    }
    assert expected.items() <= _attributes(row).items()
    assert (row["input_context"], row["input_tokens"]) == ("[1]", "12")


def test_odd_field_types_do_not_raise_and_are_kept() -> None:
    link = {
        "traceId": base64.b64encode(bytes.fromhex(TRACE)).decode(),
        "spanId": "00000000000000aa",
    }
    odd = _span(
        0,
        kind=3.0,
        name=17,
        status=["?"],
        events={"not": "a list"},
        links=[link, "junk"],
        traceState="vendor=1",
    )
    odd["attributes"] = {"gen_ai.agent.id": "fin-01", "plain": {"x": 1}}  # a plain map
    messy = _span(1, _s("ok", "yes"), "junk", {"key": "no value"}, {"value": {"intValue": "1"}})
    parsed = _read(odd, messy)
    assert not parsed.rejects and parsed.records.height == 2
    odd_row, messy_row = _rows(parsed)
    attrs = _attributes(odd_row)
    assert (attrs["span.kind"], attrs["span.name"], attrs["plain"]) == (3.0, 17, {"x": 1})
    assert attrs["span.events"] == [{"not": "a list"}] and attrs["span.trace_state"] == "vendor=1"
    assert attrs["span.links"] == [{"traceId": TRACE, "spanId": "00000000000000aa"}, "junk"]
    assert odd_row["agent_id"] == "fin-01" and odd_row["status"] == "ok"
    attrs = _attributes(messy_row)
    assert attrs["ok"] == "yes" and attrs["no value"] is None
    assert attrs["_malformed_attributes"] == ["junk", {"value": {"intValue": "1"}}]


def test_agent_and_session_are_inherited_from_the_ancestor_span() -> None:
    root = _span(0, _s("gen_ai.conversation.id", "c-1"), _s("agentops.agent.type", "FinanceAgent"))
    child = _span(1, parentSpanId=root["spanId"], attributes=[_op("chat")])
    grandchild = _span(2, parentSpanId=child["spanId"], attributes=[_op("execute_tool")])
    orphan = _span(3, parentSpanId="00000000000000ff", attributes=[])
    rows = _rows(_read(grandchild, child, root, orphan))  # order in the file does not matter
    assert [(r["agent_id"], r["agent_type"], r["session_id"]) for r in rows[:3]] == [
        ("fin-01", "FinanceAgent", "c-1")
    ] * 3
    assert _attributes(rows[0])["agentops.agent.inherited_from"] == root["spanId"]
    assert rows[3]["agent_id"] is None  # its parent is not in this file

    plain = _rows(read_otlp(orjson.dumps(_request(child, root)), inherit=False))
    assert plain[0]["agent_id"] is None


def test_output_passes_validation() -> None:
    parsed = read_otlp((DATA / "genai_current.json").read_bytes())
    checked = validate(parsed.records, now=datetime(2026, 11, 25, tzinfo=UTC))
    assert checked.failures.height == 0, checked.failures.to_dicts()
    assert checked.rows.height == 3


# --- rejects and accounting --------------------------------------------------------------------


def test_bad_spans_are_rejected_with_reason_index_and_raw_text() -> None:
    good = [_span(n) for n in range(3)]
    no_span_id = {k: v for k, v in _span(10).items() if k != "spanId"}
    no_trace_id = {k: v for k, v in _span(11).items() if k != "traceId"}
    bad_id = _span(12, spanId="not-hex-at-all!!")
    zero_trace = _span(13, traceId="0" * 32)
    bad_parent = _span(14, parentSpanId="xyz")
    spans = [good[0], no_span_id, no_trace_id, "a string", bad_id, good[1], zero_trace]
    parsed = _read(*spans, bad_parent, good[2])

    assert parsed.records_read == 9 and _accounted(parsed)
    assert parsed.records["_index"].to_list() == [0, 5, 8]
    assert [(r.index, r.reason) for r in parsed.rejects] == [
        (1, "missing_field"),
        (2, "missing_field"),
        (3, "not_an_object"),
        (4, "invalid_id"),
        (6, "invalid_id"),
        (7, "invalid_id"),
    ]
    assert "spanId" in parsed.rejects[0].detail and "traceId" in parsed.rejects[1].detail
    assert orjson.loads(parsed.rejects[0].raw) == no_span_id
    assert parsed.rejects[0].raw_bytes == len(parsed.rejects[0].raw.encode())
    for index, span in enumerate([*spans, bad_parent, good[2]]):
        assert orjson.loads(parsed.raw(index)) == span  # any index, good or rejected
    assert parsed.raw(9) == "" and parsed.raw(-1) == ""


def test_structural_problems_take_an_index_each() -> None:
    request = {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [_span(0)]}]},
            "not a resource",
            {"scopeSpans": {"spans": []}},
            {"scopeSpans": [{"spans": "nope"}, {"spans": [_span(1)]}]},
            {"resource": {}},  # no scopes: nothing to read
        ]
    }
    parsed = read_otlp(orjson.dumps(request))
    assert [(r.index, r.reason) for r in parsed.rejects] == [
        (1, "not_an_object"),
        (2, "invalid_structure"),
        (3, "invalid_structure"),
    ]
    assert parsed.records["_index"].to_list() == [0, 4]
    assert parsed.records_read == 5 and _accounted(parsed)
    assert parsed.raw(1) == '"not a resource"'


def test_missing_scope_and_resource_are_fine() -> None:
    parsed = read_otlp(orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [_span(0)]}]}]}))
    (row,) = _rows(parsed)
    assert row["agent_id"] == "fin-01" and "otel.scope.name" not in _attributes(row)


def test_array_of_requests() -> None:
    data = orjson.dumps([_request(_span(0), _span(1)), 42, _request(_span(2))])
    parsed = read_otlp(data)
    assert parsed.records["_index"].to_list() == [0, 1, 3]
    assert [(r.index, r.reason) for r in parsed.rejects] == [(2, "not_an_object")]
    assert parsed.records_read == 4 and _accounted(parsed)
    assert orjson.loads(parsed.raw(3)) == _span(2)


def test_newline_delimited_file_with_a_bad_line(tmp_path: Path) -> None:
    lines = [
        orjson.dumps(_request(_span(0), _span(1))),
        b'{"resourceSpans": [ truncated',
        b"",
        orjson.dumps(_request(_span(2))),
        orjson.dumps({"unrelated": True}),
    ]
    path = tmp_path / "traces.json"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    parsed = read_otlp(path.read_bytes(), source_file=path.name)
    assert parsed.records["_index"].to_list() == [0, 1, 3]
    assert [(r.index, r.reason) for r in parsed.rejects] == [
        (2, "invalid_json"),
        (4, "missing_field"),
    ]
    assert parsed.rejects[0].detail.startswith("line 2:")
    assert parsed.rejects[1].detail.startswith("line 5:")
    assert parsed.raw(2) == '{"resourceSpans": [ truncated'
    assert orjson.loads(parsed.raw(3)) == _span(2)
    assert parsed.records_read == 5 and _accounted(parsed)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"this is not json", "invalid_json"),
        (b"\x00\x01\xff\xfe binary \x80", "invalid_utf8"),
        (gzip.compress(b'{"resourceSpans": []}'), "invalid_json"),
        (b"{}", "no_resource_spans"),
        (b'{"event_id": "e1", "kind": "llm_call"}', "no_resource_spans"),
        (b'"a string"', "not_an_object"),
        (b"42", "not_an_object"),
        (b"[]", "no_resource_spans"),
        (b"[1, 2, 3]", "no_resource_spans"),
        (b'{"a": 1}\n{"b": 2}\n', "no_resource_spans"),  # JSONL that is not OTLP
    ],
)
def test_whole_file_problems_are_one_reject(data: bytes, reason: str) -> None:
    parsed = read_otlp(data)
    assert parsed.records.schema == RAW_SCHEMA and parsed.records.height == 0
    (reject,) = parsed.rejects
    assert (reject.index, reject.reason, reject.raw_bytes) == (0, reason, len(data))
    assert reject.detail
    assert parsed.records_read == 1 and _accounted(parsed)
    assert parsed.raw(0) == reject.raw


def test_gzip_and_binary_details_say_what_is_wrong() -> None:
    assert "gzip" in read_otlp(gzip.compress(b"{}")).rejects[0].detail
    assert "protobuf" in read_otlp(b"\x0a\x8f\x01\x12\xff").rejects[0].detail


@pytest.mark.parametrize("data", [b"", b"  \n\n", b'{"resourceSpans": []}', b"\xef\xbb\xbf"])
def test_files_without_spans_read_nothing(data: bytes) -> None:
    parsed = read_otlp(data)
    assert parsed.records.schema == RAW_SCHEMA
    assert (parsed.records.height, parsed.rejects, parsed.records_read) == (0, [], 0)


def test_byte_order_mark_and_pretty_printing_are_accepted() -> None:
    data = b"\xef\xbb\xbf" + orjson.dumps(_request(_span(0)), option=orjson.OPT_INDENT_2)
    parsed = read_otlp(data)
    assert parsed.records.height == 1 and not parsed.rejects
    assert orjson.loads(parsed.raw(0)) == _span(0)


def test_non_bytes_argument_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="bytes"):
        read_otlp("{}")  # type: ignore[arg-type]


def test_many_spans_across_flushes_keep_order_and_count() -> None:
    spans = [_span(n, _s("gen_ai.usage.input_tokens", str(n))) for n in range(10_000)]
    spans[5_000] = {"spanId": "missing trace"}
    parsed = _read(*spans)
    assert parsed.records_read == 10_000 and _accounted(parsed)
    assert parsed.records.height == 9_999
    indices = parsed.records["_index"].to_list()
    assert indices == [n for n in range(10_000) if n != 5_000]
    assert parsed.records["input_tokens"].to_list() == [str(n) for n in indices]


def test_pre_1_0_instrumentation_library_spans() -> None:
    request = {
        "resourceSpans": [
            {
                "instrumentationLibrarySpans": [
                    {"instrumentationLibrary": {"name": "old.sdk"}, "spans": [_span(0)]}
                ]
            }
        ]
    }
    (row,) = _rows(read_otlp(orjson.dumps(request)))
    assert _attributes(row)["otel.scope.name"] == "old.sdk"
