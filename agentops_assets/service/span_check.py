"""The receiver's fast check of an OTLP trace body: span count, unusable spans, agent ids.

The full readers (:mod:`agentops_assets.telemetry.otlp`) map every attribute of every span
into a frame of text columns, which costs about 60 µs a span. To acknowledge a request the
receiver needs much less: whether the body decodes, how many spans it holds, which spans
cannot become records at all, and, for an agent-role token, which agent each span speaks for.
This module walks the decoded request (opentelemetry-proto's C-backed protobuf, or orjson)
that far and no further, with the readers' own rules for what it looks at:

- ids as :func:`~agentops_assets.telemetry.otlp.ids.span_ids` judges them (``missing_field``,
  ``invalid_id``);
- top-level attribute keys given twice, in a span or in its resource or scope
  (``duplicate_key``); in JSON also spans and lists that are not JSON objects or lists
  (``not_an_object``, ``invalid_structure``);
- the agent id as the readers take it: ``gen_ai.agent.id``, else ``gen_ai.agent.name``, else
  ``agent.name``, a span's own attribute before its resource's, then inherited from the
  nearest ancestor span in the request that names one.

A body outside the common shape (undecodable, not one JSON request object, an identity value
that is not a string) gets ``None``: the receiver then reads it with the full reader, which
says precisely what is wrong, so rare bodies cost more and never get a different answer.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from agentops_assets.telemetry.otlp.ids import span_ids
from agentops_assets.telemetry.otlp.json_document import STRUCTURE_DETAIL, resource_spans, walk
from agentops_assets.telemetry.otlp.mapping import TWICE
from agentops_assets.telemetry.otlp.values import DuplicateKey, attributes, span_attributes

__all__ = ["SpanCheck", "check_json", "check_protobuf"]

# The attributes the readers take an agent id from, in the order they look (conventions.identity).
IDENTITY_KEYS: Final = ("gen_ai.agent.id", "gen_ai.agent.name", "agent.name")
_IDENTITY: Final = frozenset(IDENTITY_KEYS)
_ZERO_TRACE: Final = bytes(16)
_ZERO_SPAN: Final = bytes(8)
_MAX_DEPTH: Final = 256  # ancestors looked at, as the readers' inheritance does
_SNAKE_IDS: Final = {"trace_id": "traceId", "span_id": "spanId", "parent_span_id": "parentSpanId"}


class _Unusual(Exception):
    """The body needs the full reader (an identity value that is not a string)."""


@dataclass
class SpanCheck:
    """What the fast check found in one request.

    Attributes:
        spans: Spans (and, in JSON, unreadable span lists) counted as the readers index them.
        rejects: ``(index, reason, detail)`` of each span ingestion will quarantine for its
            structure, in index order.
        agents: ``(index, agent id or None)`` of every other span, when agents were asked for.
    """

    spans: int = 0
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    agents: list[tuple[int, str | None]] = field(default_factory=list)


class _Spans:
    """Readable spans' ids, parents and own agent ids, for the ancestor inheritance."""

    def __init__(self) -> None:
        self.indices: list[int] = []
        self.ids: list[Hashable] = []
        self.parents: list[Hashable | None] = []
        self.agents: list[str | None] = []

    def add(self, index: int, span: Hashable, parent: Hashable | None, agent: str | None) -> None:
        self.indices.append(index)
        self.ids.append(span)
        self.parents.append(parent)
        self.agents.append(agent)

    def inherited(self) -> list[tuple[int, str | None]]:
        """Each span's agent id, missing ones filled from the nearest ancestor naming one."""
        agents, parents = self.agents, self.parents
        position = {span: i for i, span in enumerate(self.ids)}
        for i in range(len(agents)):
            if agents[i] is not None or parents[i] is None:
                continue
            k = i
            for _ in range(_MAX_DEPTH):  # also ends parent cycles
                j = position.get(parents[k])
                if j is None or j == k:
                    break
                if agents[j] is not None:
                    agents[i] = agents[j]
                    break
                k = j
        return list(zip(self.indices, agents, strict=True))


def check_protobuf(data: bytes, *, with_agents: bool) -> SpanCheck | None:
    """Check a binary protobuf ExportTraceServiceRequest without mapping its spans.

    Args:
        data: The decompressed body.
        with_agents: Also find each span's agent id (for an agent-role token).

    Returns:
        SpanCheck | None: what was found, or None when the full reader must read the body
        (it does not decode, holds no resourceSpans, or an identity value is not a string).
    """
    try:
        request = ExportTraceServiceRequest.FromString(data)
    except DecodeError:
        return None
    if not request.resource_spans:
        return SpanCheck() if not data else None
    try:
        return _walk_protobuf(request, with_agents=with_agents)
    except _Unusual:
        return None


def _walk_protobuf(request: ExportTraceServiceRequest, *, with_agents: bool) -> SpanCheck:
    check = SpanCheck()
    spans = _Spans()
    index = 0
    for rs in request.resource_spans:
        resource = rs.resource.attributes
        resource_problem = _repeated(kv.key for kv in resource)
        resource_agents = _proto_identity(resource) if with_agents else {}
        for ss in rs.scope_spans:
            problem = resource_problem or _repeated(kv.key for kv in ss.scope.attributes)
            for span in ss.spans:
                if problem:
                    check.rejects.append((index, "duplicate_key", _scope_twice(problem)))
                    index += 1
                    continue
                reject = _proto_span(spans, index, span, resource_agents, with_agents=with_agents)
                if reject:
                    check.rejects.append((index, *reject))
                index += 1
    check.spans = index
    if with_agents:
        check.agents = spans.inherited()
    return check


def _proto_span(
    spans: _Spans,
    index: int,
    span: Any,
    resource_agents: dict[str, str | None],
    *,
    with_agents: bool,
) -> tuple[str, str] | None:
    """Add one span to ``spans``, or return why it cannot be a record."""
    trace, own, parent = span.trace_id, span.span_id, span.parent_span_id
    if (
        len(trace) == 16
        and len(own) == 8
        and trace != _ZERO_TRACE
        and own != _ZERO_SPAN
        and len(parent) in (0, 8)
    ):  # the usual ids: span_ids would accept them as they are
        key, parent_key = own, (parent if parent and parent != _ZERO_SPAN else None)
    else:
        ids = span_ids(trace.hex(), own.hex(), parent.hex())
        if len(ids) == 2:
            return ids[0], ids[1]
        key, parent_key = bytes.fromhex(ids[0]), (bytes.fromhex(ids[2]) if ids[2] else None)
    keys = [kv.key for kv in span.attributes]
    twice = _repeated(keys)
    if twice:
        return "duplicate_key", f"span attribute {twice} {TWICE}"
    agent = None
    if with_agents:
        own_agents = _proto_identity(span.attributes) if not _IDENTITY.isdisjoint(keys) else {}
        agent = _agent(own_agents, resource_agents)
    spans.add(index, key, parent_key, agent)
    return None


def _proto_identity(items: Iterable[KeyValue]) -> dict[str, str | None]:
    """The identity attributes among ``items``; a string, or None for an empty AnyValue.

    Raises:
        _Unusual: an identity value of another type (the full reader turns it into text).
    """
    out: dict[str, str | None] = {}
    for kv in items:
        if kv.key in _IDENTITY:
            which = kv.value.WhichOneof("value")
            if which == "string_value":
                out[kv.key] = kv.value.string_value
            elif which is None:
                out[kv.key] = None
            else:
                raise _Unusual(kv.key)
    return out


def check_json(data: bytes, *, with_agents: bool) -> SpanCheck | None:
    """Check an OTLP/JSON ExportTraceServiceRequest without mapping its spans.

    Args:
        data: The decompressed body.
        with_agents: Also find each span's agent id (for an agent-role token).

    Returns:
        SpanCheck | None: what was found, or None when the full reader must read the body
        (not JSON, not one object with resourceSpans, or an identity value not a string).
    """
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict or resource_spans(doc) is None:
        return None
    try:
        return _walk_json(doc, with_agents=with_agents)
    except _Unusual:
        return None


def _walk_json(doc: dict[str, Any], *, with_agents: bool) -> SpanCheck:
    check = SpanCheck()
    spans = _Spans()
    index = 0
    for rs, ss, found, problem in walk(doc):
        if problem is not None:
            check.rejects.append((index, problem, STRUCTURE_DETAIL[problem]))
            index += 1
            continue
        resource_agents, scope_problem = _json_scope(rs, ss, with_agents=with_agents)
        for item in found:
            if type(item) is not dict:
                reject: tuple[str, str] | None = ("not_an_object", "span is not a JSON object")
            elif scope_problem:
                reject = ("duplicate_key", _scope_twice(scope_problem))
            else:
                reject = _json_span(spans, index, item, resource_agents, with_agents=with_agents)
            if reject:
                check.rejects.append((index, *reject))
            index += 1
    check.spans = index
    if with_agents:
        check.agents = spans.inherited()
    return check


def _json_scope(
    rs: dict[str, Any], ss: dict[str, Any], *, with_agents: bool
) -> tuple[dict[str, str | None], str]:
    """The resource's identity attributes, and the keys given twice in resource or scope."""
    try:
        resource = rs.get("resource")
        attrs = attributes(resource.get("attributes")) if type(resource) is dict else {}
        scope = ss.get("scope")
        if scope is None:
            scope = ss.get("instrumentationLibrary")
        if scope is None:
            scope = ss.get("instrumentation_library")
        if type(scope) is dict:
            attributes(scope.get("attributes"))
    except DuplicateKey as error:
        return {}, str(error)
    return (_json_identity(attrs) if with_agents else {}), ""


def _json_span(
    spans: _Spans,
    index: int,
    span: dict[str, Any],
    resource_agents: dict[str, str | None],
    *,
    with_agents: bool,
) -> tuple[str, str] | None:
    """Add one JSON span to ``spans``, or return why it cannot be a record."""
    if "spanId" not in span and "traceId" not in span:
        span = {_SNAKE_IDS.get(k, k): v for k, v in span.items()}
    ids = span_ids(span.get("traceId"), span.get("spanId"), span.get("parentSpanId"))
    if len(ids) == 2:
        return ids[0], ids[1]
    try:
        attrs, _ = span_attributes(span.get("attributes"))
    except DuplicateKey as error:
        return "duplicate_key", f"span attribute {error} {TWICE}"
    agent = _agent(_json_identity(attrs), resource_agents) if with_agents else None
    spans.add(index, ids[0], ids[2] or None, agent)
    return None


def _json_identity(attrs: dict[str, Any]) -> dict[str, str | None]:
    """The identity attributes of decoded attributes.

    Raises:
        _Unusual: an identity value that is not a string.
    """
    out = {k: attrs[k] for k in IDENTITY_KEYS if k in attrs}
    if any(v is not None and type(v) is not str for v in out.values()):
        raise _Unusual
    return out


def _agent(own: dict[str, str | None], resource: dict[str, str | None]) -> str | None:
    """The agent id: a span's own identity attribute wins over its resource's, key by key."""
    for key in IDENTITY_KEYS:
        value = own[key] if key in own else resource.get(key)
        if value is not None:
            return value
    return None


def _repeated(keys: Iterable[str]) -> str:
    """The keys given more than once, as the readers name them, or ""."""
    keys = list(keys)
    if len(set(keys)) == len(keys):
        return ""
    return str(DuplicateKey(keys))


def _scope_twice(keys: str) -> str:
    return f"resource or scope attribute {keys} {TWICE}"
