"""Read OTLP JSON trace files (OpenTelemetry GenAI and OpenInference spans) into text records.

One span becomes one record. Canonical fields are mapped per docs/telemetry.md; every attribute that
did not land verbatim in a canonical field is kept in the ``attributes`` JSON object. The reader
never raises on bad input: what it cannot map comes back as a :class:`Reject`.

Accepted shapes: one ``ExportTraceServiceRequest`` object, a JSON array of them, or one per line
(the collector file exporter), with camelCase or snake_case keys, hex or base64 ids, AnyValue
ints as strings or numbers, and status codes as numbers or enum names.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gc
import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator
from typing import Any, Final

import orjson
import polars as pl

from agentops_assets.telemetry.parsed import MAX_RECORD_BYTES, ParsedRecords, Reject
from agentops_assets.telemetry.schema import FIELDS, RAW_SCHEMA

__all__ = ["read_otlp"]

_FLUSH_ROWS: Final = 4096  # span tuples held before they are moved into column lists
_RAW_KEPT: Final = 65_536  # characters of an oversized span kept as its raw text

# --- AnyValue ----------------------------------------------------------------------------------

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1  # the range orjson can write back


def _int_value(x: Any) -> Any:
    """An OTLP intValue (a string in proto3 JSON, a number from some exporters) as an int."""
    if type(x) is str:
        try:
            n = int(x)
        except ValueError:
            return x
        return n if _INT_MIN <= n <= _INT_MAX else x
    if type(x) is float and x.is_integer():
        return int(x)
    return x


def _double_value(x: Any) -> Any:
    """An OTLP doubleValue; "NaN" and "Infinity" stay text so the JSON keeps them."""
    if type(x) is str:
        try:
            f = float(x)
        except ValueError:
            return x
        return f if math.isfinite(f) else x
    return x


def _bool_value(x: Any) -> Any:
    return x if type(x) is bool else str(x).lower() == "true"


def _array_value(x: Any) -> list[Any]:
    items = x.get("values") if type(x) is dict else x
    return [_any(e) for e in items] if type(items) is list else []


def _kvlist_value(x: Any) -> dict[str, Any]:
    items = x.get("values") if type(x) is dict else x
    return _attributes(items) if type(items) is list else {}


def _same(x: Any) -> Any:
    return x


_DECODERS: Final = {
    "stringValue": _same,
    "intValue": _int_value,
    "doubleValue": _double_value,
    "boolValue": _bool_value,
    "arrayValue": _array_value,
    "kvlistValue": _kvlist_value,
    "bytesValue": _same,  # base64 text, kept as it is
}
_DECODERS.update({k.replace("Value", "_value"): f for k, f in list(_DECODERS.items())})


def _any(value: Any) -> Any:
    """Decode an OTLP AnyValue into a plain JSON value; plain values pass through."""
    if type(value) is not dict:
        return value
    for tag, x in value.items():
        decode = _DECODERS.get(tag)
        if decode is not None:
            return decode(x)
    return value or None  # not an AnyValue: keep a non-empty object as it is


class _DuplicateKey(ValueError):
    """An attribute list names one key twice: a dict would keep only one of the values."""

    def __init__(self, items: list[Any]) -> None:
        keys = Counter(kv.get("key") for kv in items if type(kv) is dict)
        self.keys = [str(k) for k, n in keys.items() if n > 1]
        super().__init__(", ".join(map(repr, self.keys)))


def _attributes(items: Any) -> dict[str, Any]:
    """Decode an OTLP attribute list ``[{key, value: AnyValue}]`` into a dict.

    Raises:
        _DuplicateKey: a key appears twice in the list.
    """
    if not items:
        return {}
    out: dict[str, Any] = {}
    try:
        for kv in items:
            v = kv["value"]
            s = v.get("stringValue")
            out[kv["key"]] = s if s is not None else _any(v)
    except (KeyError, TypeError, AttributeError):
        return _attributes_lenient(items)
    if len(out) != len(items):
        raise _DuplicateKey(items)
    return out


def _span_attributes(items: Any) -> tuple[dict[str, Any], list[str] | None]:
    """Like :func:`_attributes`, but intValues stay as read, and their keys are listed.

    Token counts are the usual intValues and go into text columns as they are; only the ones
    left for the ``attributes`` JSON are turned into numbers (with :func:`_int_value`).
    """
    attrs: dict[str, Any] = {}
    ints = None
    if items:
        try:
            for kv in items:
                v = kv["value"]
                x = v.get("stringValue")
                if x is None:
                    x = v.get("intValue")
                    if x is None:
                        x = _any(v)
                    elif ints is None:
                        ints = [kv["key"]]
                    else:
                        ints.append(kv["key"])
                attrs[kv["key"]] = x
        except (KeyError, TypeError, AttributeError):
            return _attributes_lenient(items), None
        if len(attrs) != len(items):
            raise _DuplicateKey(items)
    return attrs, ints


def _attributes_lenient(items: Any) -> dict[str, Any]:
    """Slow path for attribute lists that are not well formed; keeps what it cannot read."""
    if type(items) is dict:  # some exporters write a plain map
        return {str(k): _any(v) for k, v in items.items()}
    if type(items) is not list:
        return {"_attributes": items}
    out: dict[str, Any] = {}
    malformed = []
    for kv in items:
        if type(kv) is dict and type(kv.get("key")) is str:
            out[kv["key"]] = _any(kv.get("value"))
        else:
            malformed.append(kv)
    if len(out) + len(malformed) != len(items):
        raise _DuplicateKey(items)
    if malformed:
        out["_malformed_attributes"] = malformed
    return out


def _dumps(v: Any) -> str:
    try:
        return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # values orjson cannot write: fall back to their text
        return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def _text(v: Any) -> str | None:
    """A value as canonical text: strings as-is, numbers as their text, structures as JSON."""
    t = type(v)
    if t is str or v is None:
        return v
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        return repr(v)
    return _dumps(v)


def _text_column(name: str, values: list[Any]) -> pl.Series:
    """A column of raw values as text, converted by polars where the values allow it."""
    if values.count(None) == len(values):  # common: most spans leave most fields empty
        return pl.Series(name, [], dtype=pl.String).extend_constant(None, len(values))
    with contextlib.suppress(TypeError):
        return pl.Series(name, values, dtype=pl.String)
    with contextlib.suppress(TypeError, pl.exceptions.PolarsError, OverflowError):
        typed = pl.Series(name, values)  # all ints, all floats or all bools: cast in bulk
        if typed.dtype.is_numeric() or typed.dtype == pl.Boolean:
            return typed.cast(pl.String)
    return pl.Series(name, [_text(v) for v in values], dtype=pl.String)


# --- ids ---------------------------------------------------------------------------------------

_B64_LENGTHS: Final = {16: (24, 22), 8: (12, 11)}  # padded, unpadded


def _id(x: Any, size: int) -> str | None:
    """Normalise a trace (16-byte) or span (8-byte) id to lowercase hex.

    Accepts hex in any case, standard or URL-safe base64 with or without padding, and a
    64-bit hex trace id (left-padded with zeros, as the OpenTelemetry Zipkin mapping does).
    Returns None if malformed, and "" for the all-zero id, which OpenTelemetry treats as none.
    """
    if type(x) is not str:
        return None
    n = len(x)
    try:
        if n == 2 * size:
            b = bytes.fromhex(x)
        elif size == 16 and n == 16:
            b = bytes(8) + bytes.fromhex(x)
        elif n in _B64_LENGTHS[size]:
            b = base64.b64decode(x.translate(_URLSAFE) + "=" * (-n % 4), validate=True)
        else:
            return None
    except (ValueError, binascii.Error):
        return None
    if len(b) != size:  # fromhex skips whitespace
        return None
    return b.hex() if any(b) else ""


_URLSAFE: Final = str.maketrans("-_", "+/")

# --- structure ---------------------------------------------------------------------------------


def _get(d: dict[str, Any], camel: str, snake: str) -> Any:
    v = d.get(camel)
    return d.get(snake) if v is None else v


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _camel_keys(d: dict[str, Any]) -> dict[str, Any]:
    return {(_camel(k) if "_" in k else k): v for k, v in d.items()}


def _resource_spans(request: Any) -> Any:
    return _get(request, "resourceSpans", "resource_spans") if type(request) is dict else None


def _walk(request: dict[str, Any]) -> Iterator[tuple[Any, Any, Any, str | None]]:
    """Yield ``(resource_spans, scope_spans, item, problem)`` for every indexed item, in order.

    An item is a span (problem None) or a structural element that should hold spans but cannot
    be read (problem is a reason code). Each item takes one record index; ``raw()`` replays
    this walk, so reading and quarantine agree on indices.
    """
    rss = _resource_spans(request)
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
            for span in spans:
                yield rs, ss, span, None


_TWICE: Final = "appears more than once; which value is meant is unclear"
_STRUCTURE_DETAIL: Final = {
    "invalid_structure": "expected a list of resourceSpans, scopeSpans or spans here",
    "not_an_object": "expected a JSON object here",
}

# --- mapping -----------------------------------------------------------------------------------

_OPERATION_KINDS: Final = {
    "chat": "llm_call",
    "text_completion": "llm_call",
    "generate_content": "llm_call",
    "execute_tool": "tool_call",
    "retrieval": "retrieval",
    "retrieve": "retrieval",
    "embeddings": "retrieval",
    "rerank": "retrieval",
    "plan": "plan",
    "planning": "plan",
    "human_review": "human_review",
}
_DECISION_OPERATIONS: Final = frozenset({"invoke_agent", "invoke_workflow"})
_OPENINFERENCE_KINDS: Final = {
    "LLM": "llm_call",
    "TOOL": "tool_call",
    "RETRIEVER": "retrieval",
    "EMBEDDING": "retrieval",
    "RERANKER": "retrieval",
    # CHAIN is generic glue (a LangChain runnable, a pipeline step), not a plan: "other", as
    # are GUARDRAIL, EVALUATOR, PROMPT and UNKNOWN. AGENT is handled like invoke_agent.
}
_SPAN_KINDS: Final = (
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
)
_ERROR_CODES: Final = frozenset({2, "2", "STATUS_CODE_ERROR", "ERROR", "Error", "error"})

# Every attribute key a canonical field reads. Resource attributes with these keys take part
# in the lookup (span attributes win); the others go to attributes as "resource.<key>".
_MAPPED_KEYS: Final = frozenset(
    {
        "gen_ai.agent.id",
        "gen_ai.agent.name",
        "agent.name",
        "agentops.agent.type",
        "agentops.agent.tier",
        "gen_ai.conversation.id",
        "session.id",
        "agentops.kind",
        "gen_ai.operation.name",
        "openinference.span.kind",
        "gen_ai.tool.name",
        "tool.name",
        "agentops.action",
        "agentops.action.target",
        "gen_ai.provider.name",
        "gen_ai.system",
        "llm.provider",
        "llm.system",
        "gen_ai.response.model",
        "gen_ai.request.model",
        "llm.model_name",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
        "gen_ai.usage.cache_read.input_tokens",
        "llm.token_count.prompt_details.cache_read",
        "gen_ai.usage.cache_creation.input_tokens",
        "llm.token_count.prompt_details.cache_write",
        "gen_ai.usage.cache_read_input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "gen_ai.usage.reasoning.output_tokens",
        "llm.token_count.completion_details.reasoning",
        "agentops.cost.usd",
        "llm.cost.total",
        "error.type",
        "exception.type",
        "gen_ai.input.messages",
        "gen_ai.tool.call.arguments",
        "input.value",
        "gen_ai.output.messages",
        "gen_ai.tool.call.result",
        "output.value",
        "agentops.reasoning.summary",
        "agentops.confidence",
        "agentops.outcome",
        "agentops.value.usd",
        "agentops.attempt",
        "agentops.feedback.kind",
        "agentops.feedback.correction",
        "agentops.feedback.rationale",
        "agentops.feedback.reviewer",
    }
)


class _Scope:
    """What every span of one scopeSpans shares: resource attributes and scope identity."""

    __slots__ = ("mapped", "extra", "problem")

    def __init__(self, rs: dict[str, Any], ss: dict[str, Any]) -> None:
        self.problem = None  # a reason every span of the scope is rejected for
        try:
            self._read(rs, ss)
        except _DuplicateKey as error:
            self.mapped, self.extra = {}, {}
            self.problem = f"resource or scope attribute {error} {_TWICE}"

    def _read(self, rs: dict[str, Any], ss: dict[str, Any]) -> None:
        resource = rs.get("resource")
        attrs = _attributes(resource.get("attributes")) if type(resource) is dict else {}
        self.mapped = {k: v for k, v in attrs.items() if k in _MAPPED_KEYS}
        extra = {"resource." + k: v for k, v in attrs.items() if k not in _MAPPED_KEYS}
        scope = ss.get("scope")
        if scope is None:
            scope = _get(ss, "instrumentationLibrary", "instrumentation_library")
        if type(scope) is dict:
            if scope.get("name"):
                extra["otel.scope.name"] = scope["name"]
            if scope.get("version"):
                extra["otel.scope.version"] = scope["version"]
            for k, v in _attributes(scope.get("attributes")).items():
                extra["otel.scope." + k] = v
        self.extra = extra


def _operation_kind(operation: str, has_outcome: bool) -> str:
    """The kind of a gen_ai.operation.name, or "" if the name is not one this reader knows."""
    op = operation.lower()
    kind = _OPERATION_KINDS.get(op)
    if kind is not None:
        return kind
    if op in _DECISION_OPERATIONS:
        return "decision" if has_outcome else "other"
    return "memory_op" if "memory" in op else ""


def _kind(explicit: Any, operation: Any, oi_kind: Any, name: Any, has_outcome: bool) -> Any:
    """The kind from agentops.kind, else gen_ai.operation.name, else openinference.span.kind.

    When neither convention says more than "other" (OpenInference CHAIN, EVALUATOR, ...) the
    first word of the span name is tried as an operation: GenAI span names are
    "{operation} {target}". Returns "" when nothing names the kind, so the caller can infer one.
    """
    if explicit is not None:
        return explicit  # the producer said so; validation checks the value
    if operation is not None:
        return _operation_kind(str(operation), has_outcome) or "other"
    if oi_kind is not None:
        oi = str(oi_kind).upper()
        if oi == "AGENT":
            return "decision" if has_outcome else "other"
        kind = _OPENINFERENCE_KINDS.get(oi)
        if kind is not None:
            return kind
    if type(name) is str and name:
        kind = _operation_kind(name.split(" ", 1)[0], has_outcome)
        if kind:
            return kind
    return "" if oi_kind is None else "other"


def _events(raw: Any) -> list[Any]:
    if type(raw) is not list:
        return [raw]
    out = []
    for ev in raw:
        if type(ev) is dict:
            ev = _camel_keys(ev)
            if "attributes" in ev:
                ev["attributes"] = _attributes(ev["attributes"])
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
                link["attributes"] = _attributes(link["attributes"])
            link["traceId"] = _id(link.get("traceId"), 16) or link.get("traceId")
            link["spanId"] = _id(link.get("spanId"), 8) or link.get("spanId")
        out.append(link)
    return out


def _exception(events: list[Any]) -> dict[str, Any]:
    """Attributes of the first span event named "exception" (OpenTelemetry's error record)."""
    for ev in events:
        if type(ev) is dict and ev.get("name") == "exception":
            return ev.get("attributes") or {}
    return {}


def _map_span(span: dict[str, Any], scope: _Scope) -> tuple[Any, ...]:
    """One span as raw values in ``FIELDS`` order, or ``(reason, detail)`` if it cannot be one.

    Values are as decoded (ints, floats, strings, structures); the caller turns each column
    into text. An attribute leaves ``attributes`` only when its value went into a column as is.
    """
    if "spanId" not in span and "traceId" not in span:
        span = _camel_keys(span)
    trace_id = span.get("traceId")
    span_id = span.get("spanId")
    if not trace_id or not span_id:
        return "missing_field", f"span has no {'traceId' if not trace_id else 'spanId'}"
    event_id = _id(span_id, 8)
    if not event_id:
        return "invalid_id", f"spanId {span_id!r} is not a non-zero 8-byte hex or base64 id"
    trace = _id(trace_id, 16)
    if not trace:
        return "invalid_id", f"traceId {trace_id!r} is not a non-zero 16-byte hex or base64 id"
    parent = span.get("parentSpanId")
    parent_id = _id(parent, 8) if parent else ""
    if parent_id is None:
        return "invalid_id", f"parentSpanId {parent!r} is not an 8-byte hex or base64 id"

    attrs, ints = _span_attributes(span.get("attributes"))
    m = {**scope.mapped, **attrs} if scope.mapped else attrs
    p = m.pop

    # gen_ai.agent.name (or OpenInference agent.name) may name both the instance and the type.
    agent_name = p("gen_ai.agent.name", None)
    oi_agent = p("agent.name", None)
    if agent_name is None:
        agent_name = oi_agent
    elif oi_agent is not None:
        m["agent.name"] = oi_agent
    agent_id = p("gen_ai.agent.id", None)
    if agent_id is None:
        agent_id = agent_name
    agent_type = p("agentops.agent.type", None)
    if agent_type is None:
        agent_type = agent_name
    if agent_name is not None and agent_name is not agent_id and agent_name is not agent_type:
        m["gen_ai.agent.name" if oi_agent is not agent_name else "agent.name"] = agent_name
    session_id = p("gen_ai.conversation.id", None)
    if session_id is None:
        session_id = p("session.id", None)

    outcome = p("agentops.outcome", None)
    operation = m.get("gen_ai.operation.name")
    name = span.get("name")
    kind = _kind(
        p("agentops.kind", None),
        operation,
        m.get("openinference.span.kind"),
        name,
        outcome is not None,
    )
    action = tool = p("gen_ai.tool.name", None)
    if tool is None:
        action = tool = p("tool.name", None)
    if action is None:
        action = p("agentops.action", None)
    if action is None and operation is not None:
        action = p("gen_ai.operation.name")
    provider = p("gen_ai.provider.name", None)
    if provider is None:
        provider = p("gen_ai.system", None)
        if provider is None:
            provider = p("llm.provider", None)
            if provider is None:
                provider = p("llm.system", None)
    model = p("gen_ai.response.model", None)
    if model is None:
        model = p("gen_ai.request.model", None)
        if model is None:
            model = p("llm.model_name", None)
    feedback_kind = p("agentops.feedback.kind", None)
    if not kind:  # nothing names the operation: infer it from what the span carries
        if tool is not None:
            kind = "tool_call"
        elif model is not None:
            kind = "llm_call"
        else:
            kind = "other"
    if kind == "other" and feedback_kind is not None:  # it carries a human feedback tuple
        kind = "human_review"

    input_tokens = p("gen_ai.usage.input_tokens", None)
    if input_tokens is None:
        input_tokens = p("gen_ai.usage.prompt_tokens", None)
        if input_tokens is None:
            input_tokens = p("llm.token_count.prompt", None)
    output_tokens = p("gen_ai.usage.output_tokens", None)
    if output_tokens is None:
        output_tokens = p("gen_ai.usage.completion_tokens", None)
        if output_tokens is None:
            output_tokens = p("llm.token_count.completion", None)
    cache_read = p("gen_ai.usage.cache_read.input_tokens", None)
    if cache_read is None:
        cache_read = p("llm.token_count.prompt_details.cache_read", None)
        if cache_read is None:  # OpenLLMetry spells them as Anthropic's API does
            cache_read = p("gen_ai.usage.cache_read_input_tokens", None)
    cache_write = p("gen_ai.usage.cache_creation.input_tokens", None)
    if cache_write is None:
        cache_write = p("llm.token_count.prompt_details.cache_write", None)
        if cache_write is None:
            cache_write = p("gen_ai.usage.cache_creation_input_tokens", None)
    reasoning_tokens = p("gen_ai.usage.reasoning.output_tokens", None)
    if reasoning_tokens is None:
        reasoning_tokens = p("llm.token_count.completion_details.reasoning", None)
    cost = p("agentops.cost.usd", None)
    if cost is None:
        cost = p("llm.cost.total", None)

    input_context = p("gen_ai.input.messages", None)
    if input_context is None:
        input_context = p("gen_ai.tool.call.arguments", None)
        if input_context is None:
            input_context = p("input.value", None)
    result = p("gen_ai.output.messages", None)
    if result is None:
        result = p("gen_ai.tool.call.result", None)
        if result is None:
            result = p("output.value", None)

    # Span fields that are not attributes go into attributes as "span.*".
    if name:
        m["span.name"] = name
    span_kind = span.get("kind")
    if span_kind is not None:
        known = type(span_kind) is int and 0 <= span_kind < len(_SPAN_KINDS)
        m["span.kind"] = _SPAN_KINDS[span_kind] if known else span_kind
    trace_state = span.get("traceState")
    if trace_state:
        m["span.trace_state"] = trace_state
    exception: dict[str, Any] = {}
    events = span.get("events")
    if events:
        m["span.events"] = events = _events(events)
        exception = _exception(events)
    links = span.get("links")
    if links:
        m["span.links"] = _links(links)

    status = "ok"
    error_type = p("error.type", None)
    if error_type is None:
        error_type = p("exception.type", None)
        if error_type is None:
            error_type = exception.get("exception.type")
    st = span.get("status")
    if st:
        code, message = (st.get("code"), st.get("message")) if type(st) is dict else (st, None)
        if type(code) in (int, str) and code in _ERROR_CODES:
            status = "error"
        if message:
            if status == "error" and result is None:
                result = message
            else:
                m["span.status.message"] = message
    if status == "error" and result is None:
        result = exception.get("exception.message")

    action_target = p("agentops.action.target", None)
    agent_tier = p("agentops.agent.tier", None)
    reasoning_summary = p("agentops.reasoning.summary", None)
    confidence = p("agentops.confidence", None)
    attempt = p("agentops.attempt", None)
    value_usd = p("agentops.value.usd", None)
    feedback_correction = p("agentops.feedback.correction", None)
    feedback_rationale = p("agentops.feedback.rationale", None)
    reviewer = p("agentops.feedback.reviewer", None)

    if scope.mapped:  # resource values no field took stay, under their resource.* name
        for k, v in scope.mapped.items():
            if k not in attrs:
                if k in m:
                    m["resource." + k] = p(k)
            else:  # shadowed by the span's own value
                m["resource." + k] = v
    if scope.extra:
        m.update(scope.extra)
    if ints:
        for k in ints:
            if k in m:
                m[k] = _int_value(m[k])

    return (
        event_id,
        trace,
        parent_id or None,
        span.get("startTimeUnixNano"),
        span.get("endTimeUnixNano"),  # the caller turns it into duration_ms
        agent_id,
        agent_type,
        agent_tier,
        session_id,
        kind,
        action,
        action_target,
        input_context,
        reasoning_summary,
        result,
        status,
        error_type,
        confidence,
        attempt,
        outcome,
        value_usd,
        provider,
        model,
        input_tokens,
        output_tokens,
        cache_read,
        cache_write,
        reasoning_tokens,
        cost,
        feedback_kind,
        feedback_correction,
        feedback_rationale,
        reviewer,
        _dumps(m),
    )


# --- reading a file ----------------------------------------------------------------------------


class _Reader:
    """Accumulates the columns, rejects and index-to-source map of one file."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.index = 0  # next record index
        self.requests = 0  # requests that hold resourceSpans
        self.indices: list[int] = []
        self.pending: list[tuple[Any, ...]] = []
        # Raw values per canonical field; "duration_ms" holds endTimeUnixNano until result().
        self.columns: dict[str, list[Any]] = {name: [] for name in FIELDS}
        self.rejects: list[Reject] = []
        self.chunk_firsts: list[int] = []
        # Where each chunk of indices comes from: ("doc", position in a top-level array or None),
        # ("line", (n, start, end)) for a line of a newline-delimited file, or ("text", raw).
        self.chunk_refs: list[tuple[str, Any]] = []

    def reject(self, reason: str, detail: str, raw: Any, *, as_text: bool = False) -> None:
        text = raw if as_text else _dumps(raw)
        self.rejects.append(Reject(self.index, reason, detail, text, len(text.encode())))
        self.index += 1

    def bad_line(self, n: int, reason: str, detail: str, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        self.chunk_firsts.append(self.index)
        self.chunk_refs.append(("text", text))
        self.reject(reason, f"line {n + 1}: {detail}", text, as_text=True)

    def request(self, req: Any, ref: tuple[str, Any]) -> None:
        """Read one ExportTraceServiceRequest; each span or unreadable part takes one index."""
        self.chunk_firsts.append(self.index)
        self.chunk_refs.append(ref)
        where = f"line {ref[1][0] + 1}: " if ref[0] == "line" else ""
        if type(req) is not dict:
            self.reject("not_an_object", f"{where}expected an ExportTraceServiceRequest", req)
            return
        if _resource_spans(req) is None:
            self.reject("missing_field", f"{where}object has no resourceSpans", req)
            return
        self.requests += 1
        pending, indices = self.pending, self.indices
        last_ss = scope = None
        for rs, ss, item, problem in _walk(req):
            if problem is not None:
                self.reject(problem, where + _STRUCTURE_DETAIL[problem], item)
            elif type(item) is not dict:
                self.reject("not_an_object", f"{where}span is not a JSON object", item)
            else:
                if ss is not last_ss:
                    scope = _Scope(rs, ss)
                    last_ss = ss
                if scope.problem:
                    self.reject("duplicate_key", where + scope.problem, item)
                    continue
                try:
                    out = _map_span(item, scope)
                except _DuplicateKey as error:
                    out = ("duplicate_key", f"span attribute {error} {_TWICE}")
                if len(out) == 2:
                    self.reject(out[0], where + out[1], item)
                    continue
                indices.append(self.index)
                self.index += 1
                pending.append(out)
                if len(pending) >= _FLUSH_ROWS:
                    self.flush()

    def flush(self) -> None:
        if self.pending:
            for column, values in zip(
                self.columns.values(), zip(*self.pending, strict=True), strict=True
            ):
                column.extend(values)
            self.pending.clear()

    def result(self, *, inherit: bool) -> ParsedRecords:
        self.flush()
        if inherit:
            _inherit(self.columns)
        series = [pl.Series("_index", self.indices, dtype=pl.Int64)]
        series += [_text_column(name, values) for name, values in self.columns.items()]
        records = pl.DataFrame(series, schema=RAW_SCHEMA).with_columns(
            _duration_ms(start=pl.col("ts"), end=pl.col("duration_ms"))
        )
        raw = _RawLookup(self.body, self.chunk_firsts, self.chunk_refs)
        records = self._without_oversized(records, raw)
        return ParsedRecords(
            records=records, rejects=self.rejects, raw=raw, records_read=self.index
        )

    def _without_oversized(self, records: pl.DataFrame, raw: _RawLookup) -> pl.DataFrame:
        """Records less spans over ``MAX_RECORD_BYTES`` of text, which become rejects.

        A span is measured by the text it would store (every column, attributes included):
        cheap in polars, and within a few bytes of its JSON size.
        """
        size = records.select(
            pl.sum_horizontal(pl.col(pl.String).str.len_bytes()).alias("size"), "_index"
        )
        large = size.filter(pl.col("size") > MAX_RECORD_BYTES)
        if large.is_empty():
            return records
        for size_bytes, index in large.iter_rows():
            detail = (
                f"The span has {size_bytes:,} bytes of text; records are limited to "
                f"{MAX_RECORD_BYTES:,} bytes."
            )
            text = raw(index)[:_RAW_KEPT]
            self.rejects.append(Reject(index, "record_too_large", detail, text, size_bytes))
        return records.filter(pl.col("_index").is_in(large.get_column("_index")).not_())


def _duration_ms(*, start: pl.Expr, end: pl.Expr) -> pl.Expr:
    """(end - start) / 1e6 as text, for epoch-nanosecond times; null when either is not one."""
    nanos = end.cast(pl.Int64, strict=False) - start.cast(pl.Int64, strict=False)
    return (nanos / 1e6).cast(pl.String).alias("duration_ms")


def _inherit(columns: dict[str, list[Any]]) -> None:
    """Fill agent identity and session of spans that lack them from their nearest ancestor.

    In OpenTelemetry GenAI traces only the ``invoke_agent`` span names the agent; the LLM and
    tool spans under it do not. Only ancestors in the same file are looked at. A filled row
    names the ancestor span in ``agentops.agent.inherited_from`` (or ``.session.``).
    """
    event_ids, parents = columns["event_id"], columns["parent_id"]
    agent_ids, sessions = columns["agent_id"], columns["session_id"]
    need_agent = [i for i, v in enumerate(agent_ids) if v is None and parents[i] is not None]
    need_session = [i for i, v in enumerate(sessions) if v is None and parents[i] is not None]
    if not need_agent and not need_session:
        return
    position = {e: i for i, e in enumerate(event_ids)}
    attributes = columns["attributes"]

    def ancestor(i: int, column: list[Any]) -> int | None:
        for _ in range(256):  # depth bound; also ends parent cycles
            j = position.get(parents[i])
            if j is None or j == i:
                return None
            if column[j] is not None:
                return j
            i = j
        return None

    for i in need_agent:
        j = ancestor(i, agent_ids)
        if j is not None:
            for name in ("agent_id", "agent_type", "agent_tier"):
                columns[name][i] = columns[name][j]
            attributes[i] = _with_key(attributes[i], "agentops.agent.inherited_from", event_ids[j])
    for i in need_session:
        j = ancestor(i, sessions)
        if j is not None:
            sessions[i] = sessions[j]
            attributes[i] = _with_key(
                attributes[i], "agentops.session.inherited_from", event_ids[j]
            )


def _with_key(obj_json: str, key: str, value: str) -> str:
    extra = orjson.dumps({key: value}).decode()
    return extra if obj_json == "{}" else obj_json[:-1] + "," + extra[1:]


class _RawLookup:
    """``raw(index)``: the JSON text of record ``index``, read again from the file on demand."""

    def __init__(self, body: bytes, firsts: list[int], refs: list[tuple[str, Any]]) -> None:
        self.body, self.firsts, self.refs = body, firsts, refs
        self.doc: Any = None
        self.cached: tuple[int, list[Any]] | None = None

    def __call__(self, index: int) -> str:
        chunk = bisect_right(self.firsts, index) - 1
        if chunk < 0:
            return ""
        kind, ref = self.refs[chunk]
        offset = index - self.firsts[chunk]
        if kind == "text":
            return ref if offset == 0 else ""
        if self.cached is None or self.cached[0] != chunk:
            self.cached = (chunk, self._items(kind, ref))
        items = self.cached[1]
        return _dumps(items[offset]) if offset < len(items) else ""

    def _items(self, kind: str, ref: Any) -> list[Any]:
        if kind == "line":
            _, start, end = ref
            req = orjson.loads(self.body[start:end])
        else:
            if self.doc is None:
                self.doc = orjson.loads(self.body.removeprefix(_BOM))
            req = self.doc if ref is None else self.doc[ref]
        if _resource_spans(req) is None:
            return [req]
        return [item for _, _, item, _ in _walk(req)]


def _whole_file(data: bytes, reason: str, detail: str) -> ParsedRecords:
    text = data.decode("utf-8", "replace")
    return ParsedRecords(
        records=pl.DataFrame(schema=RAW_SCHEMA),
        rejects=[Reject(0, reason, detail, text, len(data))],
        raw=lambda index: text if index == 0 else "",
        records_read=1,
    )


def _not_json(body: bytes, error: orjson.JSONDecodeError, what: str) -> tuple[str, str]:
    """Reason and detail for bytes that do not parse, with a hint for common mix-ups."""
    if body[:2] == b"\x1f\x8b":
        return "invalid_json", f"{what} is gzip data; decompress it before reading"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as e:
        hint = "binary data? OTLP protobuf is not supported, export OTLP JSON"
        return "invalid_utf8", f"{what} is not UTF-8 text ({e.reason} at byte {e.start}; {hint})"
    return "invalid_json", f"{what} is not JSON: {error}"


def read_otlp(data: bytes, *, source_file: str = "", inherit: bool = True) -> ParsedRecords:
    """Read one OTLP JSON trace file into text records for validation.

    Args:
        data: The whole file, already decompressed.
        source_file: Name of the landing file. Accepted so every format reader has the same
            signature; quarantine rows get the name from the caller.
        inherit: Fill a span's missing agent identity and session from its nearest ancestor
            span in the same file (OpenTelemetry GenAI names the agent only on ``invoke_agent``).

    Returns:
        ParsedRecords: ``records`` in ``schema.RAW_SCHEMA`` (``_index`` is the span's 0-based
        position in file order), ``rejects`` for spans or file parts that cannot be records,
        ``raw(index)`` giving back the JSON text of any record, and ``records_read``.

    Raises:
        TypeError: if ``data`` is not bytes. Bad content never raises; it becomes a reject.

    Example:
        >>> parsed = read_otlp(Path("traces.json").read_bytes(), source_file="traces.json")
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"read_otlp expects the file's bytes, got {type(data).__name__}")
    data = bytes(data)
    gc_enabled = gc.isenabled()
    # A parsed file is millions of young containers that all stay alive until the end: cyclic
    # GC passes over them find nothing and cost more than the parse.
    gc.disable()
    try:
        return _read(data, inherit=inherit)
    finally:
        if gc_enabled:
            gc.enable()


def _read(data: bytes, *, inherit: bool) -> ParsedRecords:
    first, last = _content_bounds(data)
    if first == last:  # empty, or only whitespace: no spans, nothing to reject
        return _Reader(data).result(inherit=inherit)
    newline = data.find(b"\n", first, last)
    if newline != -1 and _is_object(memoryview(data)[first:newline]):
        return _read_lines(data, first, last, inherit=inherit)
    try:
        doc = orjson.loads(memoryview(data)[first:last])
    except orjson.JSONDecodeError as error:
        return _whole_file(data, *_not_json(data[first:last], error, "file"))
    reader = _Reader(data)
    if type(doc) is dict:
        if _resource_spans(doc) is None:
            keys = ", ".join(map(str, list(doc)[:8])) or "none"
            detail = f"the JSON object has no resourceSpans (top-level keys: {keys})"
            return _whole_file(data, "no_resource_spans", detail)
        reader.request(doc, ("doc", None))
    elif type(doc) is list:
        for position, req in enumerate(doc):
            reader.request(req, ("doc", position))
    else:
        kind = type(doc).__name__
        return _whole_file(data, "not_an_object", f"file holds a JSON {kind}, not OTLP traces")
    del doc
    return _finish(data, reader, inherit=inherit)


_BOM: Final = b"\xef\xbb\xbf"
_WHITESPACE: Final = frozenset(b" \t\r\n")


def _content_bounds(data: bytes) -> tuple[int, int]:
    """Offsets of the first and past the last non-whitespace byte, after a UTF-8 BOM."""
    first = 3 if data.startswith(_BOM) else 0
    last = len(data)
    while last > first and data[last - 1] in _WHITESPACE:
        last -= 1
    while first < last and data[first] in _WHITESPACE:
        first += 1
    return first, last


def _is_object(line: memoryview) -> bool:
    try:
        return type(orjson.loads(line)) is dict
    except orjson.JSONDecodeError:
        return False


def _read_lines(data: bytes, first: int, last: int, *, inherit: bool) -> ParsedRecords:
    """Newline-delimited requests, as the collector file exporter writes them."""
    reader = _Reader(data)
    view = memoryview(data)
    n = data.count(b"\n", 0, first)
    start = first
    while start < last:
        newline = data.find(b"\n", start, last)
        end = last if newline == -1 else newline
        if end > start and data[end - 1] == 0x0D:  # CRLF line ends
            end -= 1
        if end > start:
            try:
                req = orjson.loads(view[start:end])
            except orjson.JSONDecodeError as error:
                line = data[start:end]
                if line.strip():
                    reader.bad_line(n, *_not_json(line, error, "line"), line)
            else:
                reader.request(req, ("line", (n, start, end)))
                req = None  # free this request's tree before the next is parsed
        if newline == -1:
            break
        start = newline + 1
        n += 1
    return _finish(data, reader, inherit=inherit)


def _finish(data: bytes, reader: _Reader, *, inherit: bool) -> ParsedRecords:
    if reader.requests == 0:  # nothing in the file looks like OTLP: one reject for the file
        why = f" ({reader.rejects[0].detail})" if reader.rejects else ""
        detail = f"no ExportTraceServiceRequest with resourceSpans in the file{why}"
        return _whole_file(data, "no_resource_spans", detail)
    return reader.result(inherit=inherit)
