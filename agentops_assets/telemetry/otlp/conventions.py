"""Attribute conventions per source: which OTel GenAI, OpenInference or agentops attribute
fills which canonical field (docs/telemetry.md), and the kind of a span.

Each function takes the span's attribute dict ``m`` and pops what it maps, so that what is
left of ``m`` is what goes to the ``attributes`` JSON. The first key present wins.
"""

from __future__ import annotations

from typing import Any, Final

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

# Every attribute key a canonical field reads. Resource attributes with these keys take part
# in the lookup (span attributes win); the others go to attributes as "resource.<key>".
MAPPED_KEYS: Final = frozenset(
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

_AGENTOPS: Final = (
    "agentops.action.target",
    "agentops.agent.tier",
    "agentops.reasoning.summary",
    "agentops.confidence",
    "agentops.attempt",
    "agentops.value.usd",
    "agentops.feedback.correction",
    "agentops.feedback.rationale",
    "agentops.feedback.reviewer",
)

# The keys each function below pops: a span with none of them skips the pops.
_PROVIDER_MODEL_KEYS: Final = frozenset(
    {
        "gen_ai.provider.name",
        "gen_ai.system",
        "llm.provider",
        "llm.system",
        "gen_ai.response.model",
        "gen_ai.request.model",
        "llm.model_name",
    }
)
_USAGE_KEYS: Final = frozenset(
    {
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
        "gen_ai.usage.cache_read.input_tokens",
        "llm.token_count.prompt_details.cache_read",
        "gen_ai.usage.cache_read_input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "llm.token_count.prompt_details.cache_write",
        "gen_ai.usage.cache_creation_input_tokens",
        "gen_ai.usage.reasoning.output_tokens",
        "llm.token_count.completion_details.reasoning",
        "agentops.cost.usd",
        "llm.cost.total",
    }
)
_MESSAGE_KEYS: Final = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.tool.call.arguments",
        "input.value",
        "gen_ai.output.messages",
        "gen_ai.tool.call.result",
        "output.value",
    }
)
_NO_AGENTOPS: Final = (None,) * len(_AGENTOPS)
_IDENTITY_KEYS: Final = frozenset(
    {
        "gen_ai.agent.name",
        "agent.name",
        "gen_ai.agent.id",
        "agentops.agent.type",
        "gen_ai.conversation.id",
        "session.id",
    }
)
_ACTION_KEYS: Final = frozenset({"gen_ai.tool.name", "tool.name", "agentops.action"})
# Kinds of the operation names seen, by (name, has_outcome): a few names repeat over every
# span; bounded, since span names are tried as operations too.
_KIND_CACHE: dict[tuple[str, bool], str] = {}
_KIND_CACHE_SIZE: Final = 4096

# In the functions below the first key present wins, in the order OTel GenAI, OpenInference,
# then other spellings. The pops are written out rather than looped over tuples of keys: this
# runs for every span, and the loop is measurably slower.


def identity(m: dict[str, Any]) -> tuple[Any, Any, Any]:
    """``(agent_id, agent_type, session_id)``.

    gen_ai.agent.name (or OpenInference agent.name) may name both the instance and the type;
    a name that neither field took stays in ``m``.
    """
    if m.keys().isdisjoint(_IDENTITY_KEYS):
        return None, None, None  # every pop below would miss
    p = m.pop
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
    return agent_id, agent_type, session_id


def action(m: dict[str, Any], operation: Any) -> tuple[Any, Any]:
    """``(action, tool)``: the tool name, else agentops.action, else the operation name."""
    p = m.pop
    if m.keys().isdisjoint(_ACTION_KEYS):
        action = tool = None  # the pops would miss
    else:
        action = tool = p("gen_ai.tool.name", None)
        if tool is None:
            action = tool = p("tool.name", None)
        if action is None:
            action = p("agentops.action", None)
    if action is None and operation is not None:
        action = p("gen_ai.operation.name")
    return action, tool


def provider_model(m: dict[str, Any]) -> tuple[Any, Any]:
    if m.keys().isdisjoint(_PROVIDER_MODEL_KEYS):
        return None, None  # every pop below would miss
    p = m.pop
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
    return provider, model


def usage(m: dict[str, Any]) -> tuple[Any, Any, Any, Any, Any, Any]:
    """Input, output, cache read, cache write and reasoning tokens, and the reported cost."""
    if m.keys().isdisjoint(_USAGE_KEYS):
        return None, None, None, None, None, None  # every pop below would miss
    p = m.pop
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
    reasoning = p("gen_ai.usage.reasoning.output_tokens", None)
    if reasoning is None:
        reasoning = p("llm.token_count.completion_details.reasoning", None)
    cost = p("agentops.cost.usd", None)
    if cost is None:
        cost = p("llm.cost.total", None)
    return input_tokens, output_tokens, cache_read, cache_write, reasoning, cost


def messages(m: dict[str, Any]) -> tuple[Any, Any]:
    """``(input_context, result)`` from the messages, tool call or OpenInference values."""
    if m.keys().isdisjoint(_MESSAGE_KEYS):
        return None, None  # every pop below would miss
    p = m.pop
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
    return input_context, result


def agentops_fields(m: dict[str, Any]) -> tuple[Any, ...]:
    """The agentops.* fields in ``_AGENTOPS`` order (target, tier, summary, ... reviewer)."""
    if m.keys().isdisjoint(_AGENTOPS):
        return _NO_AGENTOPS  # every pop below would miss
    p = m.pop
    target, tier, summary, confidence, attempt, value, correction, rationale, reviewer = _AGENTOPS
    return (
        p(target, None),
        p(tier, None),
        p(summary, None),
        p(confidence, None),
        p(attempt, None),
        p(value, None),
        p(correction, None),
        p(rationale, None),
        p(reviewer, None),
    )


def _operation_kind(operation: str, has_outcome: bool) -> str:
    """The kind of a gen_ai.operation.name, or "" if the name is not one this reader knows."""
    kind = _KIND_CACHE.get((operation, has_outcome))
    if kind is None:
        kind = _operation_kind_of(operation, has_outcome)
        if len(_KIND_CACHE) < _KIND_CACHE_SIZE:
            _KIND_CACHE[operation, has_outcome] = kind
    return kind


def _operation_kind_of(operation: str, has_outcome: bool) -> str:
    op = operation.lower()
    kind = _OPERATION_KINDS.get(op)
    if kind is not None:
        return kind
    if op in _DECISION_OPERATIONS:
        return "decision" if has_outcome else "other"
    return "memory_op" if "memory" in op else ""


def named_kind(explicit: Any, operation: Any, oi_kind: Any, name: Any, has_outcome: bool) -> Any:
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


def kind(m: dict[str, Any], operation: Any, name: Any, outcome: Any, tool: Any, model: Any) -> Any:
    """The span's kind: as named (:func:`named_kind`), else inferred from what it carries.

    A span of kind "other" that carries a human feedback tuple is a ``human_review``.
    """
    kind = named_kind(
        m.pop("agentops.kind", None),
        operation,
        m.get("openinference.span.kind"),
        name,
        outcome is not None,
    )
    if not kind:
        if tool is not None:
            kind = "tool_call"
        elif model is not None:
            kind = "llm_call"
        else:
            kind = "other"
    if kind == "other" and m.get("agentops.feedback.kind") is not None:
        kind = "human_review"
    return kind
