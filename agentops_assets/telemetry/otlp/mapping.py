"""One span, whatever its encoding, as a row of canonical fields (``schema.FIELDS`` order).

The JSON and protobuf readers decode a span's envelope (ids, name, kind, times, status,
events, links) and its attributes into plain values; :func:`map_span` does the rest.
"""

from __future__ import annotations

from typing import Any, Final

from agentops_assets.telemetry.otlp.conventions import (
    MAPPED_KEYS,
    action,
    agentops_fields,
    identity,
    kind,
    messages,
    provider_model,
    usage,
)
from agentops_assets.telemetry.otlp.values import DuplicateKey, dumps, int_value

TWICE: Final = "appears more than once; which value is meant is unclear"
_SPAN_KINDS: Final = (
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
)
_ERROR_CODES: Final = frozenset({2, "2", "STATUS_CODE_ERROR", "ERROR", "Error", "error"})


class Scope:
    """What every span of one scopeSpans shares: resource attributes and scope identity."""

    __slots__ = ("mapped", "extra", "problem")

    def __init__(self, resource: dict[str, Any], scope: dict[str, Any]) -> None:
        """``resource``: decoded resource attributes; ``scope``: name, version, attributes."""
        self.problem: str | None = None  # a reason every span of the scope is rejected for
        self.mapped = {k: v for k, v in resource.items() if k in MAPPED_KEYS}
        extra = {"resource." + k: v for k, v in resource.items() if k not in MAPPED_KEYS}
        if scope.get("name"):
            extra["otel.scope.name"] = scope["name"]
        if scope.get("version"):
            extra["otel.scope.version"] = scope["version"]
        for k, v in scope.get("attributes", {}).items():
            extra["otel.scope." + k] = v
        self.extra = extra

    @classmethod
    def refused(cls, error: DuplicateKey) -> Scope:
        """A scope whose resource or scope attributes cannot be read: its spans are rejected."""
        scope = cls({}, {})
        scope.problem = f"resource or scope attribute {error} {TWICE}"
        return scope


# A span's fields other than ids and attributes, decoded, None where absent: name, kind,
# trace_state, events and links (lists of dicts with decoded "attributes"), status code and
# message, start and end (epoch nanoseconds, as text or int). A plain tuple: one per span.
Envelope = tuple[Any, Any, Any, list[Any] | None, list[Any] | None, Any, Any, Any, Any]


def map_span(
    ids: tuple[str, str, str],
    attrs: dict[str, Any],
    ints: list[str] | None,
    scope: Scope,
    span: Envelope,
) -> tuple[Any, ...]:
    """One span as raw values in ``FIELDS`` order.

    Values are as decoded (ints, floats, strings, structures); the caller turns each column
    into text. An attribute leaves ``attributes`` only when its value went into a column as is.
    ``ints`` lists attributes whose intValue was kept as text: ``attributes`` gets numbers.
    """
    m = {**scope.mapped, **attrs} if scope.mapped else attrs
    agent_id, agent_type, session_id = identity(m)
    outcome = m.pop("agentops.outcome", None)
    operation = m.get("gen_ai.operation.name")
    name, span_kind, trace_state, events, links, code, message, start, end = span
    act, tool = action(m, operation)
    provider, model = provider_model(m)
    kind_of = kind(m, operation, name, outcome, tool, model)
    feedback_kind = m.pop("agentops.feedback.kind", None)
    tokens_and_cost = usage(m)
    input_context, result = messages(m)
    exception = _envelope_attributes(m, name, span_kind, trace_state, events, links)
    status, error, result = _status(m, code, message, exception, result)
    target, tier, summary, confidence, attempt, value, correction, rationale, reviewer = (
        agentops_fields(m)
    )
    if scope.mapped or scope.extra:
        _resource_and_scope(m, attrs, scope)
    if ints:
        for k in ints:
            if k in m:
                m[k] = int_value(m[k])
    event_id, trace, parent_id = ids
    return (
        event_id,
        trace,
        parent_id or None,
        start,
        end,  # the reader turns it into duration_ms
        agent_id,
        agent_type,
        tier,
        session_id,
        kind_of,
        act,
        target,
        input_context,
        summary,
        result,
        status,
        error,
        confidence,
        attempt,
        outcome,
        value,
        provider,
        model,
        *tokens_and_cost,
        feedback_kind,
        correction,
        rationale,
        reviewer,
        dumps(m),
    )


def _envelope_attributes(
    m: dict[str, Any], name: Any, kind: Any, trace_state: Any, events: Any, links: Any
) -> dict[str, Any]:
    """Put span fields that are not attributes into ``m`` as "span.*".

    Returns the attributes of the span's first "exception" event (OpenTelemetry's error
    record), or {}.
    """
    if name:
        m["span.name"] = name
    if kind is not None:
        known = type(kind) is int and 0 <= kind < len(_SPAN_KINDS)
        m["span.kind"] = _SPAN_KINDS[kind] if known else kind
    if trace_state:
        m["span.trace_state"] = trace_state
    exception: dict[str, Any] = {}
    if events:
        m["span.events"] = events
        exception = _exception(events)
    if links:
        m["span.links"] = links
    return exception


def _exception(events: list[Any]) -> dict[str, Any]:
    for ev in events:
        if type(ev) is dict and ev.get("name") == "exception":
            return ev.get("attributes") or {}
    return {}


def _status(
    m: dict[str, Any], code: Any, message: Any, exception: dict[str, Any], result: Any
) -> tuple[str, Any, Any]:
    """``(status, error_type, result)``; an error's message is its result if none was given."""
    status = "ok"
    error = m.pop("error.type", None)
    if error is None:
        error = m.pop("exception.type", None)
        if error is None:
            error = exception.get("exception.type")
    if type(code) in (int, str) and code in _ERROR_CODES:
        status = "error"
    if message:
        if status == "error" and result is None:
            result = message
        else:
            m["span.status.message"] = message
    if status == "error" and result is None:
        result = exception.get("exception.message")
    return status, error, result


def _resource_and_scope(m: dict[str, Any], attrs: dict[str, Any], scope: Scope) -> None:
    """Resource values no field took stay, under their resource.* name; then scope identity."""
    if scope.mapped:
        for k, v in scope.mapped.items():
            if k not in attrs:
                if k in m:
                    m["resource." + k] = m.pop(k)
            else:  # shadowed by the span's own value
                m["resource." + k] = v
    if scope.extra:
        m.update(scope.extra)
