"""Binary protobuf OTLP: the same rows as OTLP/JSON, clear rejects, and .pb landing files."""

from __future__ import annotations

import base64
import gzip
import math
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from agentops_assets.simulator import simulate
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from agentops_assets.telemetry.landing import landing_format
from agentops_assets.telemetry.otlp import read_otlp, read_otlp_protobuf
from agentops_assets.telemetry.schema import AGENT_EVENTS, INGESTED_FILES, QUARANTINE
from agentops_assets.telemetry.validate import validate

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
START = 1_763_974_800_000_000_000


def _kv(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=_any(value))


def _any(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_any(v) for v in value]))
    if isinstance(value, dict):
        kvs = [_kv(k, v) for k, v in value.items()]
        return AnyValue(kvlist_value=KeyValueList(values=kvs))
    return AnyValue(string_value=value)


def _span(n: int, parent: int | None, name: str, attrs: dict[str, Any], **fields: Any) -> Span:
    return Span(
        trace_id=TRACE,
        span_id=(n + 1).to_bytes(8, "big"),
        parent_span_id=(parent + 1).to_bytes(8, "big") if parent is not None else b"",
        name=name,
        start_time_unix_nano=START + n * 1_000_000,
        end_time_unix_nano=START + n * 1_000_000 + 250_000_000,
        attributes=[_kv(k, v) for k, v in attrs.items()],
        **fields,
    )


def _request(*spans: Span, resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    resource = resource or {"service.name": "finance-agent", "agentops.agent.tier": "strategic"}
    scope = InstrumentationScope(name="opentelemetry.instrumentation.openai_v2", version="2.1")
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[_kv(k, v) for k, v in resource.items()]),
                scope_spans=[ScopeSpans(scope=scope, spans=list(spans))],
            )
        ]
    )


def _genai_trace() -> ExportTraceServiceRequest:
    """An agent decision with an LLM call and a failing tool call under it, as SDKs send it."""
    decision = _span(
        0,
        None,
        "invoke_agent FinanceAgent",
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.id": "fin-01",
            "gen_ai.agent.name": "FinanceAgent",
            "gen_ai.conversation.id": "conv-7",
            "agentops.outcome": "success",
            "agentops.confidence": 0.82,
        },
        kind=Span.SPAN_KIND_INTERNAL,
    )
    chat = _span(
        1,
        0,
        "chat gpt-4o",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 1024,
            "gen_ai.request.temperature": 0.2,
            "gen_ai.response.finish_reasons": ["stop"],
            "agentops.flags": {"retried": False, "raw": b"\x00\x01"},
            "agentops.score": math.nan,
        },
        kind=Span.SPAN_KIND_CLIENT,
        trace_state="vendor=1",
        links=[
            Span.Link(
                trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
                span_id=bytes.fromhex("b7ad6b7169203331"),
                attributes=[_kv("link.reason", "retry")],
            )
        ],
    )
    tool = _span(
        2,
        0,
        "execute_tool erp_lookup",
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "erp_lookup",
            "http.response.status_code": 503,
        },
        status=Status(code=Status.STATUS_CODE_ERROR, message="ERP returned 503"),
        events=[
            Span.Event(
                time_unix_nano=START + 2_100_000,
                name="exception",
                attributes=[
                    _kv("exception.type", "ServiceUnavailable"),
                    _kv("exception.message", "ERP returned 503"),
                ],
            )
        ],
    )
    return _request(decision, chat, tool)


def _hex_ids(value: Any) -> Any:
    """protobuf's JSON mapping made OTLP/JSON: trace and span ids in hex, not base64."""
    if isinstance(value, list):
        return [_hex_ids(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        if key in ("traceId", "spanId", "parentSpanId"):
            out[key] = base64.b64decode(v).hex()
        else:
            out[key] = _hex_ids(v)
    return out


def _otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """The request in OTLP/JSON: lowerCamelCase keys, enums as integers, ids in hex."""
    as_dict = json_format.MessageToDict(request, use_integers_for_enums=True)
    return orjson.dumps(_hex_ids(as_dict))


def test_protobuf_and_otlp_json_give_the_same_events() -> None:
    request = _genai_trace()
    from_proto = read_otlp_protobuf(request.SerializeToString(), source_file="t.pb")
    from_json = read_otlp(_otlp_json(request), source_file="t.json")
    assert not from_proto.rejects and not from_json.rejects
    assert from_proto.records_read == from_json.records_read == 3
    assert from_proto.records.equals(from_json.records)
    checked_proto, checked_json = validate(from_proto.records), validate(from_json.records)
    assert checked_proto.failures.is_empty()
    assert checked_proto.rows.equals(checked_json.rows)

    decision, chat, tool = from_proto.records.to_dicts()
    assert (decision["agent_id"], decision["kind"], decision["outcome"]) == (
        "fin-01",
        "decision",
        "success",
    )
    assert (decision["session_id"], decision["agent_tier"]) == ("conv-7", "strategic")
    assert (chat["agent_id"], chat["parent_id"]) == ("fin-01", "0000000000000001")  # inherited
    assert (chat["trace_id"], chat["event_id"]) == (TRACE.hex(), "0000000000000002")
    assert (chat["ts"], chat["duration_ms"]) == (str(START + 1_000_000), "250.0")
    assert (chat["provider"], chat["model"]) == ("openai", "gpt-4o-2024-08-06")
    assert (chat["input_tokens"], chat["output_tokens"], chat["cache_read_tokens"]) == (
        "1200",
        "300",
        "1024",
    )
    attrs = orjson.loads(chat["attributes"])
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["agentops.flags"] == {"retried": False, "raw": "AAE="}  # bytes as base64
    assert attrs["agentops.score"] == "NaN"
    assert (attrs["span.kind"], attrs["span.trace_state"]) == ("SPAN_KIND_CLIENT", "vendor=1")
    (link,) = attrs["span.links"]
    assert link["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert attrs["resource.service.name"] == "finance-agent"
    assert attrs["otel.scope.version"] == "2.1"
    assert (tool["kind"], tool["status"], tool["error_type"]) == (
        "tool_call",
        "error",
        "ServiceUnavailable",
    )
    assert tool["result"] == "ERP returned 503"
    assert orjson.loads(tool["attributes"])["http.response.status_code"] == 503


def _base64_ids(value: Any) -> Any:
    """OTLP/JSON made protobuf's JSON mapping, which json_format reads: ids in base64."""
    if isinstance(value, list):
        return [_base64_ids(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {
        k: base64.b64encode(bytes.fromhex(v)).decode()
        if k in ("traceId", "spanId", "parentSpanId")
        else _base64_ids(v)
        for k, v in value.items()
    }


def test_simulated_fleet_reads_the_same_from_protobuf(tmp_path: Path) -> None:
    """The simulator's OTLP/JSON landing file, re-encoded as protobuf, gives the same rows."""
    simulate(tmp_path / "landing", tmp_path / "truth", agents=3, days=1, seed=5, fmt="otlp")
    (path,) = (tmp_path / "landing").rglob("*.json")
    data = path.read_bytes()
    request = ExportTraceServiceRequest()
    for line in data.splitlines():
        part = json_format.ParseDict(_base64_ids(orjson.loads(line)), ExportTraceServiceRequest())
        request.resource_spans.extend(part.resource_spans)
    from_json, from_proto = read_otlp(data), read_otlp_protobuf(request.SerializeToString())
    assert from_proto.records.height == from_json.records.height > 100
    assert from_proto.records.equals(from_json.records)


def test_truncated_or_garbage_bytes_are_one_clear_reject() -> None:
    body = _genai_trace().SerializeToString()
    for data in (body[: len(body) // 2], b"\xff\xfe not protobuf \x00"):
        parsed = read_otlp_protobuf(data)
        (reject,) = parsed.rejects
        assert (reject.index, reject.reason) == (0, "invalid_protobuf")
        assert "not a protobuf ExportTraceServiceRequest" in reject.detail
        assert parsed.records.is_empty() and parsed.records_read == 1
    (reject,) = read_otlp_protobuf(b'{"resourceSpans": []}').rejects
    assert "looks like JSON" in reject.detail
    assert not read_otlp_protobuf(b"").rejects  # an empty request holds no spans


def test_a_bad_span_is_rejected_alone_with_its_otlp_json_text() -> None:
    good = _span(0, None, "chat", {"gen_ai.agent.id": "fin-01", "gen_ai.operation.name": "chat"})
    no_id = _span(1, None, "chat", {"gen_ai.agent.id": "fin-01"})
    no_id.span_id = b""
    twice = _span(2, None, "chat", {"gen_ai.agent.id": "fin-01"})
    twice.attributes.append(_kv("gen_ai.agent.id", "fin-02"))
    parsed = read_otlp_protobuf(_request(good, no_id, twice).SerializeToString())
    assert parsed.records["_index"].to_list() == [0]
    assert [(r.index, r.reason) for r in parsed.rejects] == [
        (1, "missing_field"),
        (2, "duplicate_key"),
    ]
    assert "gen_ai.agent.id" in parsed.rejects[1].detail
    raw = orjson.loads(parsed.rejects[1].raw)
    assert (raw["traceId"], raw["spanId"]) == (TRACE.hex(), "0000000000000003")
    assert orjson.loads(parsed.raw(0))["name"] == "chat"


def test_pb_landing_files_are_recognised() -> None:
    assert landing_format(Path("traces.pb")) == ("otlp_protobuf", False)
    assert landing_format(Path("a/fleet.otlp.pb")) == ("otlp_protobuf", False)
    assert landing_format(Path("fleet.otlp.pb.gz")) == ("otlp_protobuf", True)


def test_pb_landing_files_are_ingested_into_agent_events(paths: Paths) -> None:
    body = _genai_trace().SerializeToString()
    assert b"\x00" in body[:8192]  # binary: text formats would refuse it
    paths.landing.mkdir(parents=True)
    (paths.landing / "fleet.otlp.pb").write_bytes(body)
    other = _request(_span(5, None, "chat", {"gen_ai.agent.id": "ops-02", "agent.name": "Ops"}))
    (paths.landing / "more.pb.gz").write_bytes(gzip.compress(other.SerializeToString()))
    (paths.landing / "cut.pb").write_bytes(body[:-7])

    report = ingest_landing(paths)
    assert (report.records, report.new_rows, report.quarantined_rows) == (5, 4, 1)

    events = pl.read_delta(paths.table_uri(AGENT_EVENTS)).sort("event_id")
    assert events["source_format"].unique().to_list() == ["otlp_protobuf"]
    assert events["agent_id"].to_list() == ["fin-01", "fin-01", "fin-01", "ops-02"]
    assert events["input_tokens"].to_list() == [None, 1200, None, None]
    (quarantined,) = pl.read_delta(paths.table_uri(QUARANTINE)).to_dicts()
    assert (quarantined["source_file"], quarantined["reason"]) == ("cut.pb", "invalid_protobuf")
    assert "truncated" in quarantined["detail"]
    files = pl.read_delta(paths.table_uri(INGESTED_FILES))
    assert sorted(files["path"].to_list()) == ["cut.pb", "fleet.otlp.pb", "more.pb.gz"]
    assert ingest_landing(paths).records == 0  # recorded: not read again


def test_each_convention_skips_only_spans_without_any_of_its_keys() -> None:
    """The key sets that let a span skip a convention's pops list every key it pops."""
    import inspect
    import re

    from agentops_assets.telemetry.otlp import conventions as c

    for function, keys in (
        (c.provider_model, c._PROVIDER_MODEL_KEYS),
        (c.usage, c._USAGE_KEYS),
        (c.messages, c._MESSAGE_KEYS),
        (c.agentops_fields, frozenset(c._AGENTOPS)),
    ):
        source = inspect.getsource(function)
        popped = set(re.findall(r'p\("([^"]+)"', source))
        assert popped <= keys, function.__name__
        if function is not c.agentops_fields:
            assert popped == keys, function.__name__


def test_protobuf_ids_of_every_size_map_as_their_hex_text_does() -> None:
    """The fast path for ids of the usual sizes agrees with the checks on hex text."""
    from agentops_assets.telemetry.otlp.ids import span_ids
    from agentops_assets.telemetry.otlp.protobuf import _ids

    sizes = [b"", bytes(8), bytes(16), b"\x01" * 8, b"\x01" * 11, b"\x01" * 16, b"\xab" * 12]
    for trace in sizes:
        for span in sizes:
            for parent in sizes:
                assert _ids(trace, span, parent) == span_ids(trace.hex(), span.hex(), parent.hex())
