"""Reading binary protobuf OTLP (an ExportTraceServiceRequest, as an OTLP/HTTP body carries).

Decoded by opentelemetry-proto's generated messages; each span then goes through the same
mapping as OTLP/JSON, so a trace gives the same rows in either encoding.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from typing import Any, Final

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span

from agentops_assets.telemetry.otlp.ids import span_ids
from agentops_assets.telemetry.otlp.mapping import TWICE, Envelope, Scope, map_span
from agentops_assets.telemetry.otlp.rows import Rows, whole_file, without_gc
from agentops_assets.telemetry.otlp.values import DuplicateKey, dumps
from agentops_assets.telemetry.parsed import ParsedRecords

# Doubles JSON cannot hold are kept as proto3 JSON spells them, as the JSON reader keeps them.
_NON_FINITE: Final = {math.inf: "Infinity", -math.inf: "-Infinity"}
_ZERO_TRACE: Final = bytes(16)
_ZERO_SPAN: Final = bytes(8)


def read_otlp_protobuf(
    data: bytes, *, source_file: str = "", inherit: bool = True
) -> ParsedRecords:
    """Read one binary protobuf ExportTraceServiceRequest into text records for validation.

    Args:
        data: The serialized request (an OTLP/HTTP ``application/x-protobuf`` body, or a
            ``.pb`` landing file), already decompressed.
        source_file: Name of the landing file, accepted as every format reader does.
        inherit: Fill a span's missing agent identity and session from its nearest ancestor
            span in the same request, as :func:`read_otlp` does.

    Returns:
        ParsedRecords: as :func:`read_otlp` returns them; ``raw(index)`` gives a span back as
        OTLP/JSON text. Bytes that do not decode are one ``invalid_protobuf`` reject.

    Raises:
        TypeError: if ``data`` is not bytes. Bad content never raises; it becomes a reject.

    Example:
        >>> parsed = read_otlp_protobuf(request.SerializeToString())
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"read_otlp_protobuf expects the bytes, got {type(data).__name__}")
    data = bytes(data)
    return without_gc(lambda: _read(data, inherit=inherit))


def _read(data: bytes, *, inherit: bool) -> ParsedRecords:
    try:
        request = ExportTraceServiceRequest.FromString(data)
    except DecodeError:
        return whole_file(data, "invalid_protobuf", _undecodable(data), binary=True)
    rows = Rows()
    if not request.resource_spans:
        if not data:  # an empty request: no spans, nothing to reject
            return rows.result(lambda index: "", inherit=inherit)
        detail = "the protobuf message holds no resourceSpans; is it an ExportTraceServiceRequest?"
        return whole_file(data, "no_resource_spans", detail, binary=True)
    rows.requests = 1
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            _read_scope(rows, rs.resource.attributes, ss)
    return rows.result(_RawSpans(request), inherit=inherit)


def _undecodable(data: bytes) -> str:
    """Why bytes are not a request, with a hint for JSON sent as protobuf."""
    detail = "the file is not a protobuf ExportTraceServiceRequest (truncated, or not protobuf)"
    if data.lstrip()[:1] in (b"{", b"["):
        detail += "; it looks like JSON: OTLP/JSON files are read when named .json"
    return detail


def _read_scope(rows: Rows, resource: Iterable[KeyValue], ss: ScopeSpans) -> None:
    try:
        identity = {"name": ss.scope.name, "version": ss.scope.version}
        identity["attributes"] = _attributes(ss.scope.attributes)
        scope = Scope(_attributes(resource), identity)
    except DuplicateKey as error:
        scope = Scope.refused(error)
    spans = ss.spans
    if scope.problem:
        for span in spans:
            rows.reject("duplicate_key", scope.problem, _span_json(span))
        return
    add, reject, map_one = rows.add, rows.reject, _map_span
    for span in spans:
        try:
            out = map_one(span, scope)
        except DuplicateKey as error:
            out = ("duplicate_key", f"span attribute {error} {TWICE}")
        if len(out) == 2:
            reject(out[0], out[1], _span_json(span))
        else:
            add(out)


def _map_span(span: Span, scope: Scope) -> tuple[Any, ...]:
    """One span as a row, or ``(reason, detail)``; proto3 zero values count as absent."""
    ids = _ids(span.trace_id, span.span_id, span.parent_span_id)
    if len(ids) == 2:
        return ids
    status, events, links = span.status, span.events, span.links
    envelope: Envelope = (
        span.name,
        span.kind or None,
        span.trace_state,
        [_event(ev) for ev in events] if events else None,
        [_link(link) for link in links] if links else None,
        status.code,
        status.message,
        span.start_time_unix_nano or None,
        span.end_time_unix_nano or None,
    )
    return map_span(ids, _attributes(span.attributes), None, scope, envelope)


def _ids(trace_id: bytes, span_id: bytes, parent: bytes) -> tuple[str, ...]:
    """``span_ids`` of the ids' hex; ids of the usual sizes are taken as they are, without
    the text checks (bytes of the right length are a valid id, or all zeros: none)."""
    if (
        len(trace_id) == 16
        and len(span_id) == 8
        and len(parent) in (0, 8)
        and trace_id != _ZERO_TRACE
        and span_id != _ZERO_SPAN
    ):
        return span_id.hex(), trace_id.hex(), "" if parent == _ZERO_SPAN else parent.hex()
    return span_ids(trace_id.hex(), span_id.hex(), parent.hex())


def _attributes(items: Iterable[KeyValue]) -> dict[str, Any]:
    """KeyValues as a dict of plain values.

    Raises:
        DuplicateKey: a key appears twice.
    """
    out = {}
    for kv in items:
        v = kv.value
        text = v.string_value  # "" for every other type: then the slow path tells them apart
        out[kv.key] = text if text else _value(v)
    if len(out) != len(items):  # type: ignore[arg-type]
        raise DuplicateKey(kv.key for kv in items)
    return out


def _value(v: AnyValue) -> Any:
    """An AnyValue as the plain value the JSON reader makes of its OTLP/JSON form."""
    which = v.WhichOneof("value")
    # The usual types first: ints (token counts), doubles, then text (here only when empty).
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        d = v.double_value
        return d if math.isfinite(d) else _NON_FINITE.get(d, "NaN")
    if which == "string_value":
        return v.string_value
    if which is None:
        return None
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [_value(e) for e in v.array_value.values]
    if which == "kvlist_value":
        return _attributes(v.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()  # OTLP/JSON's bytesValue: base64
    return getattr(v, which)  # a type newer than this reader


def _event(ev: Span.Event) -> dict[str, Any]:
    """An event as its OTLP/JSON object (fields left at their zero value are omitted)."""
    out: dict[str, Any] = {}
    if ev.time_unix_nano:
        out["timeUnixNano"] = str(ev.time_unix_nano)
    if ev.name:
        out["name"] = ev.name
    if ev.attributes:
        out["attributes"] = _attributes(ev.attributes)
    if ev.dropped_attributes_count:
        out["droppedAttributesCount"] = ev.dropped_attributes_count
    return out


def _link(link: Span.Link) -> dict[str, Any]:
    """A link as its OTLP/JSON object, ids in hex."""
    out: dict[str, Any] = {}
    if link.trace_id:
        out["traceId"] = link.trace_id.hex()
    if link.span_id:
        out["spanId"] = link.span_id.hex()
    if link.trace_state:
        out["traceState"] = link.trace_state
    if link.attributes:
        out["attributes"] = _attributes(link.attributes)
    if link.dropped_attributes_count:
        out["droppedAttributesCount"] = link.dropped_attributes_count
    if link.flags:
        out["flags"] = link.flags
    return out


def _span_json(span: Span) -> dict[str, Any]:
    """A span in OTLP/JSON form (hex ids, integer enums), for quarantine."""
    out = json_format.MessageToDict(span, use_integers_for_enums=True)
    for key, value in (
        ("traceId", span.trace_id),
        ("spanId", span.span_id),
        ("parentSpanId", span.parent_span_id),
    ):
        if value:
            out[key] = value.hex()
    for link, message in zip(out.get("links", []), span.links, strict=True):
        link.update(_link(message))
    return out


class _RawSpans:
    """``raw(index)``: span ``index`` of the request as OTLP/JSON text."""

    def __init__(self, request: ExportTraceServiceRequest) -> None:
        self.request = request
        self.spans: list[Span] | None = None

    def __call__(self, index: int) -> str:
        if self.spans is None:
            self.spans = [
                span
                for rs in self.request.resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            ]
        return dumps(_span_json(self.spans[index])) if 0 <= index < len(self.spans) else ""
