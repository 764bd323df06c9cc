"""Canonical events as OTLP/JSON spans, in three attribute dialects real exporters use.

``current`` follows the OpenTelemetry GenAI semantic conventions, ``legacy`` uses the older
names (``gen_ai.system``, ``gen_ai.usage.prompt_tokens``), ``openinference`` the OpenInference
names (``openinference.span.kind``, ``llm.model_name``, ``input.value`` ...). Fields no
standard carries use ``agentops.*``.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from .fleet import Agent

Span = dict[str, Any]

SCOPE: Final = {"name": "agentops.simulator", "version": "1.0.0"}
_CLIENT, _INTERNAL = 3, 1
_PROVIDER: Final = {
    "current": {
        "openai": "openai",
        "anthropic": "anthropic",
        "google": "gcp.gemini",
        "mistral": "mistral_ai",
    },
    "legacy": {
        "openai": "openai",
        "anthropic": "anthropic",
        "google": "vertex_ai",
        "mistral": "mistral_ai",
    },
    "openinference": {
        "openai": "openai",
        "anthropic": "anthropic",
        "google": "google",
        "mistral": "mistralai",
    },
}
_NAMES: Final = {
    "current": {
        "provider": "gen_ai.provider.name",
        "input_tokens": "gen_ai.usage.input_tokens",
        "output_tokens": "gen_ai.usage.output_tokens",
        "cache_read_tokens": "gen_ai.usage.cache_read.input_tokens",
        "cache_write_tokens": "gen_ai.usage.cache_creation.input_tokens",
        "reasoning_tokens": "gen_ai.usage.reasoning.output_tokens",
        "http.status_code": "http.response.status_code",
        "http.method": "http.request.method",
        "url": "url.full",
    },
    "legacy": {
        "provider": "gen_ai.system",
        "input_tokens": "gen_ai.usage.prompt_tokens",
        "output_tokens": "gen_ai.usage.completion_tokens",
        "cache_read_tokens": "gen_ai.usage.cache_read.input_tokens",
        "cache_write_tokens": "gen_ai.usage.cache_creation.input_tokens",
        "reasoning_tokens": "gen_ai.usage.reasoning.output_tokens",
        "http.status_code": "http.status_code",
        "http.method": "http.method",
        "url": "http.url",
    },
    "openinference": {
        "provider": "llm.provider",
        "input_tokens": "llm.token_count.prompt",
        "output_tokens": "llm.token_count.completion",
        "cache_read_tokens": "llm.token_count.prompt_details.cache_read",
        "cache_write_tokens": "llm.token_count.prompt_details.cache_write",
        "reasoning_tokens": "llm.token_count.completion_details.reasoning",
        "http.status_code": "http.status_code",
        "http.method": "http.method",
        "url": "http.url",
    },
}
_OI_KIND: Final = {
    "llm_call": "LLM",
    "tool_call": "TOOL",
    "decision": "AGENT",
    "retrieval": "RETRIEVER",
    "memory_op": "CHAIN",
    "plan": "CHAIN",
    "human_review": "EVALUATOR",
    "other": "GUARDRAIL",
}
_TOKENS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def _s(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _i(key: str, value: int) -> dict[str, Any]:
    return {"key": key, "value": {"intValue": str(value)}}


def _d(key: str, value: float) -> dict[str, Any]:
    return {"key": key, "value": {"doubleValue": value}}


def _b(key: str, value: bool) -> dict[str, Any]:
    return {"key": key, "value": {"boolValue": value}}


def _messages(role: str, text: str, finish: str | None = None) -> str:
    msg: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": text}]}
    if finish:
        msg["finish_reason"] = finish
    return orjson.dumps([msg]).decode()


def token_key(dialect: str) -> str:
    """The attribute carrying input tokens in ``dialect``."""
    return _NAMES[dialect]["input_tokens"]


def resource(agent: Agent) -> bytes:
    """The resource of one agent instance, as JSON bytes."""
    atype = agent.type
    attrs = [
        _s("service.name", atype.slug),
        _s("service.version", "1.4.2"),
        _s("deployment.environment.name", "production"),
        _s("gen_ai.agent.id", agent.id),
        _s("gen_ai.agent.name", atype.name),
        _s("agentops.agent.type", atype.name),
        _s("agentops.agent.tier", atype.tier),
        _s("telemetry.sdk.language", "python"),
        _s(
            "telemetry.sdk.name",
            "openinference" if agent.dialect == "openinference" else "opentelemetry",
        ),
    ]
    return orjson.dumps({"attributes": attrs})


def _operation(e: dict[str, Any]) -> str:
    kind = e["kind"]
    if kind == "llm_call":
        return e["action"]
    if kind == "tool_call":
        return "execute_tool"
    if kind == "decision":
        return "invoke_agent"
    if kind == "memory_op":
        return f"{e['action']}_memory"
    if kind == "retrieval":
        return "retrieval"
    if kind == "plan":
        return "plan"
    if kind == "human_review":
        return "human_review"
    return e["action"] or "other"


def span(e: dict[str, Any], t_us: int, dialect: str) -> Span:
    """Encode one canonical event as an OTLP span for an agent speaking ``dialect``."""
    names = _NAMES[dialect]
    kind = e["kind"]
    op = _operation(e)
    oi = dialect == "openinference"
    attrs: list[dict[str, Any]] = []
    add = attrs.append
    if oi:
        add(_s("openinference.span.kind", _OI_KIND[kind]))
        add(_s("agent.name", e["agent_id"]))
        if e.get("session_id"):
            add(_s("session.id", e["session_id"]))
    else:
        add(_s("gen_ai.operation.name", op))
        if e.get("session_id"):
            add(_s("gen_ai.conversation.id", e["session_id"]))
    ctx, result = e.get("input_context"), e.get("result")
    extra = e.get("attributes") or {}
    if kind == "llm_call":
        name = f"{op} {extra.get('request_model', e['model'])}"
        add(_s(names["provider"], _PROVIDER[dialect][e["provider"]]))
        if oi:
            add(_s("llm.model_name", e["model"]))
            add(
                _s(
                    "llm.invocation_parameters",
                    orjson.dumps(
                        {
                            "model": extra.get("request_model"),
                            "temperature": extra.get("temperature"),
                        }
                    ).decode(),
                )
            )
        else:
            add(_s("gen_ai.request.model", extra.get("request_model", e["model"])))
            add(_s("gen_ai.response.model", e["model"]))
            add(_d("gen_ai.request.temperature", extra.get("temperature", 0.0)))
            add(
                {
                    "key": "gen_ai.response.finish_reasons",
                    "value": {
                        "arrayValue": {
                            "values": [{"stringValue": extra.get("finish_reason", "stop")}]
                        }
                    },
                }
            )
        for tok in _TOKENS:
            if tok in e:
                add(_i(names[tok], e[tok]))
        if "cost_usd" in e:
            add(_d("llm.cost.total" if oi else "agentops.cost.usd", e["cost_usd"]))
        span_kind = _CLIENT
    elif kind == "tool_call":
        name = f"execute_tool {e['action']}"
        add(_s("tool.name" if oi else "gen_ai.tool.name", e["action"]))
        if not oi:
            add(_s("gen_ai.tool.type", "function"))
            add(_s("gen_ai.tool.call.id", f"call_{e['event_id']}"))
        add(_s(names["url"], e["action_target"]))
        add(_s(names["http.method"], extra.get("http.method", "GET")))
        if "http.status_code" in extra:
            add(_i(names["http.status_code"], extra["http.status_code"]))
        span_kind = _CLIENT
    else:
        if kind == "decision":
            name = f"invoke_agent {e['agent_type']}"
        elif kind == "retrieval":
            name = f"retrieval {e['action_target']}"
        else:
            name = op
        span_kind = _INTERNAL
        add(_s("agentops.action", e["action"]))
        if kind == "memory_op":
            add(_s("agentops.memory.namespace", extra["namespace"]))
            add(_s("agentops.memory.fact_key", extra["fact_key"]))
            if "source" in extra:
                add(_s("agentops.memory.source", extra["source"]))
        elif kind == "retrieval":
            add(_s("gen_ai.data_source.id", e["action_target"]))
            add(_i("agentops.retrieval.top_k", extra["top_k"]))
            add(_d("agentops.retrieval.top_score", extra["top_score"]))
        elif kind == "human_review":
            fb = e["feedback"]
            for field in ("kind", "correction", "rationale", "reviewer"):
                if fb.get(field) is not None:
                    add(_s(f"agentops.feedback.{field}", fb[field]))
            if extra.get("lesson"):
                add(_b("agentops.feedback.lesson", True))
                add(_s("agentops.memory.namespace", extra["namespace"]))
                add(_s("agentops.memory.fact_key", extra["fact_key"]))
            add(_s("agentops.review.decision_event_id", extra["decision_event_id"]))
    if e.get("action_target") is not None:
        add(_s("agentops.action.target", e["action_target"]))
    if kind == "decision":
        add(_s("agentops.outcome", e["outcome"]))
        add(_d("agentops.confidence", e["confidence"]))
        if "value_usd" in e:
            add(_d("agentops.value.usd", e["value_usd"]))
    if e.get("reasoning_summary") is not None:
        add(_s("agentops.reasoning.summary", e["reasoning_summary"]))
    if e.get("attempt"):
        add(_i("agentops.attempt", e["attempt"]))
    error = e.get("error_type")
    if error:
        add(_s("exception.type" if oi else "error.type", error))
    if oi:
        if ctx is not None:
            add(_s("input.value", ctx))
            add(_s("input.mime_type", "text/plain"))
        if result is not None:
            add(_s("output.value", result))
            add(_s("output.mime_type", "text/plain"))
    elif kind == "tool_call":
        if ctx is not None:
            add(_s("gen_ai.tool.call.arguments", ctx))
        if result is not None and not error:
            add(_s("gen_ai.tool.call.result", result))
    else:
        if ctx is not None:
            add(_s("gen_ai.input.messages", _messages("user", ctx)))
        if result is not None and not error:
            finish = extra.get("finish_reason") if kind == "llm_call" else None
            add(_s("gen_ai.output.messages", _messages("assistant", result, finish)))
    end_us = t_us + round((e.get("duration_ms") or 0.0) * 1000)
    out: Span = {"traceId": e["trace_id"], "spanId": e["event_id"]}
    if e.get("parent_id"):
        out["parentSpanId"] = e["parent_id"]
    out["name"] = name
    out["kind"] = span_kind
    out["startTimeUnixNano"] = str(t_us * 1000)
    out["endTimeUnixNano"] = str(end_us * 1000)
    out["attributes"] = attrs
    if error:
        out["status"] = {"code": 2, "message": result or error}
        if oi:
            out["events"] = [
                {
                    "timeUnixNano": str(end_us * 1000),
                    "name": "exception",
                    "attributes": [
                        _s("exception.type", error),
                        _s("exception.message", result or ""),
                    ],
                }
            ]
    else:
        out["status"] = {"code": 1}
    return out
