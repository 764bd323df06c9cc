"""How each kind of step looks as a canonical event: keys, durations, tokens, texts.

A ``TraceBuilder`` collects the events of one reasoning cycle (one ``trace_id``) in canonical
key order, leaving out keys that do not apply. What happens in the cycle is decided in
``cycles``; this module only turns those choices into events.
"""

from __future__ import annotations

import random
from typing import Any, Final

from .agent_types import AgentType
from .catalog import LLM_ENDPOINTS, Model, Tool
from .text import Clock, IdSource

Event = dict[str, Any]

ERROR_TEXT: Final = {
    "TimeoutError": "timed out after 30.0 s",
    "HTTP503": "503 Service Unavailable",
    "HTTP429": "429 Too Many Requests: retry after 2 s",
    "HTTP404": "404 Not Found",
    "HTTP400": "400 Bad Request: invalid argument",
    "HTTP403": "403 Forbidden: caller lacks permission",
    "RateLimitError": "429 rate limit reached for requests per minute",
    "OutputValidationError": "model output failed schema validation; re-prompting",
    "APITimeoutError": "request timed out after 60 s",
    "DependencyError": "a required tool stayed unavailable after retries",
}
_HTTP_STATUS: Final = {
    "HTTP503": 503,
    "HTTP429": 429,
    "HTTP404": 404,
    "HTTP400": 400,
    "HTTP403": 403,
}
_NO_USAGE: Final = frozenset({"RateLimitError", "APITimeoutError"})


def llm_cost(m: Model, inp: int, out: int, cache_read: int, cache_write: int) -> float:
    """List-price cost in USD; ``inp`` includes cached tokens, ``out`` reasoning tokens."""
    return (
        (inp - cache_read - cache_write) * m.price_in
        + cache_read * m.price_cache_read
        + cache_write * m.price_cache_write
        + out * m.price_out
    ) / 1e6


class TraceBuilder:
    """Builds the events of one reasoning cycle, in the order the steps happen."""

    __slots__ = ("r", "ids", "iso", "trace", "head", "events", "starts")

    def __init__(
        self,
        r: random.Random,
        ids: IdSource,
        clock: Clock,
        head: tuple[str, str, str, str],
    ) -> None:
        self.r = r
        self.ids = ids
        self.iso = clock.iso
        self.trace = ids.trace()
        self.head = head  # agent_id, agent_type, agent_tier, session_id
        self.events: list[Event] = []
        self.starts: list[int] = []  # each event's start, µs since the epoch

    def _child(
        self, parent: str, t: int, dur_us: int, kind: str, action: str, target: str
    ) -> Event:
        agent_id, agent_type, tier, session = self.head
        d: Event = {
            "event_id": self.ids.span(),
            "trace_id": self.trace,
            "parent_id": parent,
            "ts": self.iso(t),
            "duration_ms": dur_us / 1000,
            "agent_id": agent_id,
            "agent_type": agent_type,
            "agent_tier": tier,
            "session_id": session,
            "kind": kind,
            "action": action,
            "action_target": target,
        }
        self.events.append(d)
        self.starts.append(t)
        return d

    def gap(self, t: int, low: int = 500, high: int = 5_000) -> int:
        """``t`` plus a short pause between two steps (µs)."""
        return t + self.r.randint(low, high)

    def plan(self, t0: int, task: str, entity: str, summary: str) -> Event:
        """The root step; its duration is set to the whole cycle's when the cycle ends."""
        agent_id, agent_type, tier, session = self.head
        d: Event = {
            "event_id": self.ids.span(),
            "trace_id": self.trace,
            "ts": self.iso(t0),
            "duration_ms": 0.0,
            "agent_id": agent_id,
            "agent_type": agent_type,
            "agent_tier": tier,
            "session_id": session,
            "kind": "plan",
            "action": "plan",
            "action_target": entity,
            "input_context": task,
            "reasoning_summary": summary,
            "status": "ok",
            "attempt": 0,
        }
        self.events.append(d)
        self.starts.append(t0)
        return d

    def memory(
        self,
        parent: str,
        t: int,
        action: str,
        key: str,
        content: str,
        namespace: str,
        *,
        source: str | None = None,
        summary: str | None = None,
    ) -> tuple[int, Event]:
        """A memory operation (add, update, delete, read) on fact ``key``."""
        dur = self.r.randint(1_500, 15_000) if action == "read" else self.r.randint(3_000, 25_000)
        d = self._child(parent, t, dur, "memory_op", action, key)
        d["input_context"] = content
        if summary:
            d["reasoning_summary"] = summary
        d["result"] = {"read": "hit", "delete": "deleted"}.get(action, "stored")
        d["status"] = "ok"
        d["attempt"] = 0
        attrs = {"namespace": namespace, "fact_key": key}
        if source:
            attrs["source"] = source
        d["attributes"] = attrs
        return self.gap(t + dur), d

    def retrieval(self, parent: str, t: int, index: str, query: str) -> int:
        """A vector search over ``index``."""
        r = self.r
        top = round(r.uniform(0.52, 0.94), 3)
        dur = int(80_000 * r.lognormvariate(0.0, 0.5))
        d = self._child(parent, t, dur, "retrieval", "vector_search", index)
        d["input_context"] = query
        d["result"] = f"5 chunks, top score {top}"
        d["status"] = "ok"
        d["attempt"] = 0
        d["attributes"] = {"top_k": 5, "top_score": top}
        return self.gap(t + dur)

    def guardrail(self, parent: str, t: int, target: str, text: str) -> int:
        """A guardrail check (kind ``other``) on the cycle's input or output."""
        r = self.r
        dur = r.randint(3_000, 40_000)
        check = "guardrail.pii_scan" if r.random() < 0.6 else "guardrail.prompt_injection"
        d = self._child(parent, t, dur, "other", check, target)
        d["input_context"] = text
        d["result"] = "pass" if r.random() < 0.98 else "flagged"
        d["status"] = "ok"
        d["attempt"] = 0
        return self.gap(t + dur)

    def llm(
        self,
        parent: str,
        t: int,
        atype: AgentType,
        m: Model,
        *,
        step: int,
        attempt: int,
        error: str | None,
        heavy: bool,
        prompt: str,
        reply: str,
    ) -> tuple[int, Event, float]:
        """An LLM call; later steps carry more context. Returns (next t, event, list cost)."""
        r = self.r
        inp = int(atype.input_tokens * (1 + 0.45 * step) * r.lognormvariate(0.0, 0.5))
        inp = min(120_000, max(120, int(inp * 1.6) if heavy else inp))
        out = min(4096, max(8, int(atype.output_tokens * r.lognormvariate(0.0, 0.6))))
        reasoning = int(out * r.uniform(1.5, 5.0)) if m.reasoning else 0
        out += reasoning  # output tokens include reasoning tokens, as providers bill them
        cache_read = cache_write = 0
        if m.price_cache_read and (step > 0 or r.random() < 0.3) and r.random() < 0.6:
            cache_read = int(inp * r.uniform(0.4, 0.9))
            if m.provider == "openai":  # OpenAI caches 128-token blocks of prompts >= 1024
                cache_read = cache_read // 128 * 128 if inp >= 1024 else 0
        if m.price_cache_write and r.random() < 0.12:
            cache_write = int((inp - cache_read) * r.uniform(0.3, 0.8))
        dur_ms = (m.base_ms + m.ms_per_token * out + inp * 0.015) * r.lognormvariate(0.0, 0.25)
        if error in _NO_USAGE:
            dur_ms = r.uniform(58_000, 63_000) if error == "APITimeoutError" else r.uniform(80, 400)
            inp = out = reasoning = cache_read = cache_write = 0
        dur = int(dur_ms * 1000)
        d = self._child(
            parent,
            t,
            dur,
            "llm_call",
            "generate_content" if m.provider == "google" else "chat",
            LLM_ENDPOINTS[m.provider],
        )
        d["input_context"] = prompt
        d["result"] = ERROR_TEXT[error] if error else reply
        if error:
            d["status"] = "error"
            d["error_type"] = error
        else:
            d["status"] = "ok"
        d["attempt"] = attempt
        d["provider"] = m.provider
        d["model"] = m.response
        cost = 0.0
        if inp:
            d["input_tokens"] = inp
            d["output_tokens"] = out
            if cache_read:
                d["cache_read_tokens"] = cache_read
            if cache_write:
                d["cache_write_tokens"] = cache_write
            if reasoning:
                d["reasoning_tokens"] = reasoning
            cost = llm_cost(m, inp, out, cache_read, cache_write)
            if atype.reports_cost:
                d["cost_usd"] = round(cost, 8)
        finish = "error" if error else ("stop" if reply.startswith("Proposed") else "tool_calls")
        d["attributes"] = {
            "request_model": m.name,
            "temperature": 1.0 if m.reasoning else 0.2,
            "finish_reason": finish,
        }
        return t + dur + r.randint(1_000, 20_000), d, cost

    def tool(
        self,
        parent: str,
        t: int,
        tool: Tool,
        entity: str,
        amount: str,
        *,
        attempt: int,
        error: str | None,
    ) -> tuple[int, str]:
        """One attempt of a tool call. Returns (next t, result text)."""
        r = self.r
        if error == "TimeoutError":
            dur_ms = 30_000 * r.uniform(1.0, 1.02)
        elif error:
            dur_ms = r.uniform(8, 60)
        else:
            dur_ms = tool.median_ms * r.lognormvariate(0.0, 0.45)
        dur = int(dur_ms * 1000)
        result = (
            ERROR_TEXT[error]
            if error
            else tool.ok.replace("{id}", entity).replace("{amount}", amount)
        )
        d = self._child(
            parent, t, dur, "tool_call", tool.name, tool.endpoint.replace("{id}", entity)
        )
        d["input_context"] = f'{{"{tool.arg}": "{entity}"}}'
        d["result"] = result
        if error:
            d["status"] = "error"
            d["error_type"] = error
        else:
            d["status"] = "ok"
        d["attempt"] = attempt
        attrs: dict[str, Any] = {"http.method": tool.method}
        if error != "TimeoutError":
            ok_status = 201 if tool.method == "POST" else 200
            attrs["http.status_code"] = _HTTP_STATUS.get(error or "", ok_status)
        d["attributes"] = attrs
        return self.gap(t + dur, 500, 10_000), result

    def decision(
        self,
        parent: str,
        t: int,
        name: str,
        entity: str,
        *,
        task: str,
        summary: str,
        result: str,
        confidence: float,
        outcome: str,
        value: float | None,
        error: str | None,
    ) -> tuple[int, Event]:
        """The cycle's final decision."""
        dur = self.r.randint(2_000, 30_000)
        d = self._child(parent, t, dur, "decision", name, entity)
        d["input_context"] = task
        d["reasoning_summary"] = summary
        d["result"] = result
        if error:
            d["status"] = "error"
            d["error_type"] = error
        else:
            d["status"] = "ok"
        d["confidence"] = round(confidence, 4)
        d["attempt"] = 0
        d["outcome"] = outcome
        if value is not None:
            d["value_usd"] = value
        return t + dur, d

    def review(
        self,
        decision: Event,
        ts: int,
        feedback: dict[str, str | None],
        attributes: dict[str, Any],
    ) -> Event:
        """A human review of ``decision`` at ``ts``, with the feedback tuple."""
        dur = self.r.randint(20, 600) * 1_000_000
        d = self._child(decision["event_id"], ts, dur, "human_review", "review", decision["action"])
        d["input_context"] = decision["result"]
        d["status"] = "ok"
        d["attempt"] = 0
        d["feedback"] = feedback
        d["attributes"] = {"decision_event_id": decision["event_id"], **attributes}
        return d
