"""OTLP/JSON documents: walking an ExportTraceServiceRequest and decoding its spans.

Keys may be camelCase (OTLP/JSON) or snake_case (protobuf's field names), ids hex or base64,
and OTLP before 0.15 (instrumentationLibrarySpans) is read too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from agentops_assets.telemetry.otlp.ids import hex_id, span_ids
from agentops_assets.telemetry.otlp.mapping import TWICE, Envelope, Scope, map_span
from agentops_assets.telemetry.otlp.rows import Rows
from agentops_assets.telemetry.otlp.values import DuplicateKey, attributes, span_attributes

STRUCTURE_DETAIL: Final = {
    "invalid_structure": "expected a list of resourceSpans, scopeSpans or spans here",
    "not_an_object": "expected a JSON object here",
}


def _get(d: dict[str, Any], camel: str, snake: str) -> Any:
    v = d.get(camel)
    return d.get(snake) if v is None else v


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _camel_keys(d: dict[str, Any]) -> dict[str, Any]:
    return {(_camel(k) if "_" in k else k): v for k, v in d.items()}


def resource_spans(request: Any) -> Any:
    """The request's resourceSpans value, or None if it has none (or is not an object)."""
    return _get(request, "resourceSpans", "resource_spans") if type(request) is dict else None


def walk(request: dict[str, Any]) -> Iterator[tuple[Any, Any, Any, str | None]]:
    """Yield ``(resource_spans, scope_spans, items, problem)`` in file order.

    ``items`` is the list of spans of one scopeSpans (problem None), or one structural element
    that should hold spans but cannot be read (problem is a reason code). Each span, and each
    such element, takes one record index; the raw lookup replays this walk (:func:`items`),
    so reading and quarantine agree on indices.
    """
    rss = resource_spans(request)
    if type(rss) is not list:
        yield None, None, rss, "invalid_structure"
        return
    for rs in rss:
        if type(rs) is not dict:
            yield None, None, rs, "not_an_object"
            continue
        sss = _get(rs, "scopeSpans", "scope_spans")
        if sss is None:  # OTLP before 0.15 called them instrumentation library spans
            sss = _get(rs, "instrumentationLibrarySpans", "instrumentation_library_spans")
        if sss is None:
            continue
        if type(sss) is not list:
            yield rs, None, sss, "invalid_structure"
            continue
        for ss in sss:
            if type(ss) is not dict:
                yield rs, None, ss, "not_an_object"
                continue
            spans = ss.get("spans")
            if spans is None:
                continue
            if type(spans) is not list:
                yield rs, ss, spans, "invalid_structure"
                continue
            yield rs, ss, spans, None


def items(request: dict[str, Any]) -> list[Any]:
    """Every indexed item of a request (span or unreadable element), in index order."""
    out: list[Any] = []
    for _, _, found, problem in walk(request):
        if problem is None:
            out.extend(found)
        else:
            out.append(found)
    return out


def read_request(rows: Rows, req: dict[str, Any], where: str) -> None:
    """Map every span of a request into ``rows``; ``where`` prefixes reject details."""
    rows.requests += 1
    for rs, ss, found, problem in walk(req):
        if problem is not None:
            rows.reject(problem, where + STRUCTURE_DETAIL[problem], found)
        else:
            _read_spans(rows, found, _scope(rs, ss), where)


def _read_spans(rows: Rows, spans: list[Any], scope: Scope, where: str) -> None:
    add, reject = rows.add, rows.reject
    for item in spans:
        if type(item) is not dict:
            reject("not_an_object", f"{where}span is not a JSON object", item)
        elif scope.problem:
            reject("duplicate_key", where + scope.problem, item)
        else:
            try:
                out = _map_json_span(item, scope)
            except DuplicateKey as error:
                out = ("duplicate_key", f"span attribute {error} {TWICE}")
            if len(out) == 2:
                reject(out[0], where + out[1], item)
            else:
                add(out)


def _scope(rs: dict[str, Any], ss: dict[str, Any]) -> Scope:
    try:
        resource = rs.get("resource")
        attrs = attributes(resource.get("attributes")) if type(resource) is dict else {}
        scope = ss.get("scope")
        if scope is None:
            scope = _get(ss, "instrumentationLibrary", "instrumentation_library")
        identity: dict[str, Any] = {}
        if type(scope) is dict:
            identity = {"name": scope.get("name"), "version": scope.get("version")}
            identity["attributes"] = attributes(scope.get("attributes"))
        return Scope(attrs, identity)
    except DuplicateKey as error:
        return Scope.refused(error)


def _map_json_span(span: dict[str, Any], scope: Scope) -> tuple[Any, ...]:
    """One JSON span as a row, or ``(reason, detail)`` if it cannot be one."""
    if "spanId" not in span and "traceId" not in span:
        span = _camel_keys(span)
    ids = span_ids(span.get("traceId"), span.get("spanId"), span.get("parentSpanId"))
    if len(ids) == 2:
        return ids
    attrs, ints = span_attributes(span.get("attributes"))
    code = message = None
    st = span.get("status")
    if st:
        code, message = (st.get("code"), st.get("message")) if type(st) is dict else (st, None)
    events, links = span.get("events"), span.get("links")
    envelope: Envelope = (
        span.get("name"),
        span.get("kind"),
        span.get("traceState"),
        _events(events) if events else None,
        _links(links) if links else None,
        code,
        message,
        span.get("startTimeUnixNano"),
        span.get("endTimeUnixNano"),
    )
    return map_span(ids, attrs, ints, scope, envelope)


def _events(raw: Any) -> list[Any]:
    if type(raw) is not list:
        return [raw]
    out = []
    for ev in raw:
        if type(ev) is dict:
            ev = _camel_keys(ev)
            if "attributes" in ev:
                ev["attributes"] = attributes(ev["attributes"])
        out.append(ev)
    return out


def _links(raw: Any) -> list[Any]:
    if type(raw) is not list:
        return [raw]
    out = []
    for link in raw:
        if type(link) is dict:
            link = _camel_keys(link)
            if "attributes" in link:
                link["attributes"] = attributes(link["attributes"])
            link["traceId"] = hex_id(link.get("traceId"), 16) or link.get("traceId")
            link["spanId"] = hex_id(link.get("spanId"), 8) or link.get("spanId")
        out.append(link)
    return out
