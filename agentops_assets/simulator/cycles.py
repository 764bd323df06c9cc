"""What happens in one reasoning cycle of one agent, incidents applied.

A cycle is one trace: a ``plan`` root, memory reads and retrievals, a guardrail check now and
then, 1-4 LLM calls (re-prompts count ``attempt`` up) with the tool calls each asks for
(retries count up), sometimes a memory write, a final ``decision`` and sometimes a
``human_review``. Cycles must be generated in time order: memory and sessions carry over.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Final

from .agent_types import ENTITY_NAMES, REASONS, REVIEWERS, AgentType
from .catalog import MODELS, TOOLS
from .fleet import DAY_US, Agent
from .incidents import Incident
from .memory import FactStore
from .steps import Event, TraceBuilder
from .text import Clock, IdSource, garble, secret

SESSION_GAP_US: Final = 30 * 60 * 1_000_000
_LLM_ERRORS: Final = ("RateLimitError", "OutputValidationError", "APITimeoutError")
_LLM_ERROR_CUM: Final = (0.4, 0.8, 1.0)
_TOOL_ERRORS: Final = ("TimeoutError", "HTTP503", "HTTP429", "HTTP404", "HTTP400")
_TOOL_ERROR_CUM: Final = (0.25, 0.5, 0.7, 0.85, 1.0)
_RETRYABLE: Final = frozenset({"TimeoutError", "HTTP503", "HTTP429"})
_MAX_RETRIES: Final = 3
_FEEDBACK: Final = ("approve", "annotate", "correct", "override")
_FEEDBACK_CUM: Final = (55, 70, 88, 100)
_TOOL_COUNTS: Final = (0, 1, 2, 3, 4, 5)
_LLM_COUNTS: Final = (1, 2, 3, 4)
_ANNOTATIONS: Final = (
    "Customer is a reseller; keep in mind for pricing.",
    "Fine, but cite the policy next time.",
    "Borderline; watch similar cases.",
)


def _cum(weights: tuple[float, ...]) -> tuple[float, ...]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return tuple(out)


class CycleGenerator:
    """Generates cycles in time order and keeps what they share: memory, sessions, stats."""

    def __init__(
        self, *, seed: int, salt: int, incidents: list[Incident], secret_rate: float
    ) -> None:
        self.r = random.Random(f"agentops-events:{seed}")
        self.ids = IdSource(salt)
        self.clock = Clock()
        self.memory = FactStore()
        self.secret_rate = secret_rate
        self.secrets: Counter[str] = Counter()
        by_name = {i.name: i for i in incidents}
        self.drift = by_name.get("confidence_drift")
        self.spike = by_name.get("cost_spike")
        self.rogue = by_name.get("rogue_agent")
        self.outage = by_name.get("outage")
        self.corrupt = by_name.get("corrupted_context")
        self.lesson = by_name.get("wrong_lesson")
        self._cums: dict[tuple[str, str], tuple[float, ...]] = {}
        self._correct_lesson = ""

    def _session(self, agent: Agent, t0: int) -> str:
        if agent.session is None or agent.session_left <= 0 or t0 - agent.last_us > SESSION_GAP_US:
            agent.session = self.ids.session()
            agent.session_left = self.r.randint(1, agent.type.session_len)
        agent.session_left -= 1
        agent.last_us = t0
        return agent.session

    def _entity(self, agent: Agent) -> str:
        """What the cycle works on: a numbered record, or the one named entity (a service, a
        research topic) the agent owns, as on-call rotations and topic owners divide work."""
        atype = agent.type
        names = ENTITY_NAMES.get(atype.entity)
        if names:
            return atype.entity + names[agent.index % len(names)]
        return f"{atype.entity}{self.r.randint(10000, 99999)}"

    def _cum(self, atype: AgentType, what: str) -> tuple[float, ...]:
        cum = self._cums.get((atype.name, what))
        if cum is None:
            cum = self._cums[atype.name, what] = _cum(getattr(atype, what))
        return cum

    def _hit(self, inc: Incident | None, agent: Agent, t0: int) -> Incident | None:
        return inc if inc is not None and agent.index in inc.agents and inc.active(t0) else None

    def _lesson_stage(self, agent: Agent, t0: int) -> int:
        """0 none, 1 stores the wrong fact, 2 acts on it, 3 gets corrected."""
        inc = self.lesson
        if inc is None or agent.index not in inc.agents:
            return 0
        if t0 == inc.learn_us:
            return 1
        if inc.learn_us < t0 < inc.review_us:
            return 2
        return 3 if t0 == inc.review_us else 0

    def cycle(self, agent: Agent, t0: int) -> tuple[list[Event], list[int]]:
        """Events of one reasoning cycle starting at ``t0`` (µs), and each event's start (µs)."""
        r, rnd = self.r, self.r.random
        atype = agent.type
        b = TraceBuilder(
            r, self.ids, self.clock, (agent.id, atype.name, atype.tier, self._session(agent, t0))
        )
        spike = self.spike if self.spike is not None and agent.index in self.spike.agents else None
        spiking = spike is not None and spike.active(t0)
        drift = self._hit(self.drift, agent, t0)
        rogue = self._hit(self.rogue, agent, t0)
        corrupt = self._hit(self.corrupt, agent, t0)
        outage = (
            self.outage if self.outage is not None and agent.index in self.outage.agents else None
        )
        stage = self._lesson_stage(agent, t0)

        entity = self._entity(agent)
        scenario = r.choice(atype.scenarios)
        if stage in (1, 2):
            scenario = next((s for s in atype.scenarios if "refund" in s[1]), scenario)
            amount = r.uniform(10_500, 48_000)
        else:
            amount = atype.amount_usd * 15 * r.lognormvariate(0.0, 0.9)
        amount_s = f"{amount:,.2f}"
        task = scenario[0].replace("{id}", entity).replace("{amount}", amount_s)
        decision_name = scenario[1]
        outcome_text = scenario[2].replace("{id}", entity).replace("{amount}", amount_s)

        plan = b.plan(t0, task, entity, r.choice(atype.plans))
        root = plan["event_id"]
        t = b.gap(t0, 2_000, 30_000)

        known = ""
        reads = (1 if rnd() < 0.75 else 0) + (1 if rnd() < 0.35 else 0)
        forced = self.lesson.details["fact_key"] if stage == 2 and rnd() < 0.7 else None
        for n in range(max(reads, 1 if forced else 0)):
            key = forced if forced and n == 0 else self.memory.pick(r, atype)
            content = self.memory.get(atype, key)
            if self.lesson is not None and content == self.lesson.details["wrong_content"]:
                self.lesson.affected_events += 1
            t, _ = b.memory(root, t, "read", key, content, atype.namespace)
            known = known or content
        for _ in range((1 if rnd() < 0.8 else 0) + (1 if rnd() < 0.4 else 0)):
            t = b.retrieval(root, t, atype.index, r.choice(atype.queries))
        if rnd() < 0.35:
            t = b.guardrail(root, t, "input", task)

        # LLM calls and the tool calls each asks for
        n_llm = r.choices(_LLM_COUNTS, cum_weights=self._cum(atype, "llm_calls"))[0]
        n_tools = r.choices(_TOOL_COUNTS, cum_weights=self._cum(atype, "tool_calls"))[0]
        tools = r.choices(agent.tool_names, cum_weights=agent.tool_cum, k=n_tools)
        if outage is not None and outage.active(t0) and outage.details["tool"] not in tools:
            tools.insert(0, outage.details["tool"])
        if rogue is not None:
            odd = rogue.details["tools"]
            tools = [r.choice(odd) if rnd() < 0.5 else name for name in tools]
            if not any(name in odd for name in tools):
                tools.append(r.choice(odd))
        asks: list[list[str]] = [[] for _ in range(n_llm)]
        for name in tools:
            asks[r.randrange(max(1, n_llm - 1))].append(name)

        model = MODELS[r.choices(agent.model_names, cum_weights=agent.model_cum)[0]]
        if spike is not None and spiking and rnd() < 0.85:
            model = MODELS[spike.details["model"]]
        p_fail, max_fail = (0.6, 5) if spiking else (0.06, 2)
        prompt = f"{task} Memory: {known}" if known else task
        cost, calls = 0.0, 0
        failed_tool: str | None = None
        for step in range(n_llm):
            if step == n_llm - 1:
                reply = f"Proposed {decision_name}: {outcome_text}"
            else:
                reply = "Calling " + (", ".join(asks[step]) or "no tools") + f" for {entity}."
            attempt = 0
            while True:
                error = None
                if attempt < max_fail and rnd() < p_fail:
                    error = (
                        "OutputValidationError"
                        if spiking
                        else r.choices(_LLM_ERRORS, cum_weights=_LLM_ERROR_CUM)[0]
                    )
                t, llm, c = b.llm(
                    root,
                    t,
                    atype,
                    model,
                    step=step,
                    attempt=attempt,
                    error=error,
                    heavy=spiking,
                    prompt=prompt,
                    reply=reply,
                )
                cost += c
                calls += 1
                if error is None:
                    break
                attempt += 1
                t += r.randint(200_000, 2_000_000)
            for name in asks[step]:
                t, result, ok = self._tool(
                    b, llm["event_id"], t, name, entity, amount_s, outage, rogue
                )
                prompt = f"Tool {name} returned: {result}"
                if not ok:
                    failed_tool = name
                    break
            if failed_tool:
                break

        if stage == 1 or rnd() < 0.1:
            t = self._memory_write(b, root, t, atype, entity, wrong=stage == 1)
        if rnd() < 0.35:
            t = b.guardrail(root, t, "output", outcome_text)
        t, decision = self._decision(
            b,
            root,
            t,
            atype,
            decision_name,
            entity,
            task,
            outcome_text,
            drift,
            corrupt,
            stage,
            failed_tool,
        )
        plan["duration_ms"] = round((t - t0) / 1000, 3)
        if stage == 3 or rnd() < atype.review_rate:
            self._review(b, decision, t, t0, atype, forced=stage == 3)

        self._stats(b.events, agent, t0, decision, spike, spiking, cost, calls, drift, corrupt)
        if corrupt is None and self.secret_rate:
            self._plant_secrets(b.events)
        return b.events, b.starts

    def _tool(
        self,
        b: TraceBuilder,
        parent: str,
        t: int,
        name: str,
        entity: str,
        amount: str,
        outage: Incident | None,
        rogue: Incident | None,
    ) -> tuple[int, str, bool]:
        """A tool call with its retries. Returns (next t, last result, whether it worked)."""
        r, rnd = self.r, self.r.random
        tool = TOOLS[name]
        down = outage is not None and name == outage.details["tool"]
        odd = rogue is not None and name in rogue.details["tools"]
        attempt = 0
        while True:
            in_outage = down and outage is not None and outage.active(t)
            error = None
            if in_outage and rnd() < 0.9:
                error = "TimeoutError" if rnd() < 0.5 else "HTTP503"
            elif odd:
                error = "HTTP403" if rnd() < 0.2 else None
            elif rnd() < tool.error_rate:
                error = r.choices(_TOOL_ERRORS, cum_weights=_TOOL_ERROR_CUM)[0]
            if in_outage and outage is not None:
                outage.add("calls")
                outage.add("errors", 1.0 if error else 0.0)
                outage.affected_events += 1
            if odd and rogue is not None:
                rogue.add("rogue_calls")
                rogue.affected_events += 1
            t, result = b.tool(parent, t, tool, entity, amount, attempt=attempt, error=error)
            if error is None or error not in _RETRYABLE:
                return t, result, True
            if attempt >= _MAX_RETRIES:
                return t, result, False
            attempt += 1
            t += int(500_000 * 2**attempt * r.uniform(0.8, 1.2))  # exponential backoff

    def _memory_write(
        self, b: TraceBuilder, root: str, t: int, atype: AgentType, entity: str, *, wrong: bool
    ) -> int:
        lesson = self.lesson
        if wrong and lesson is not None:
            key = lesson.details["fact_key"]
            self._correct_lesson = self.memory.get(atype, key)
            content = lesson.details["wrong_content"]
            self.memory.set(key, content)
            t, event = b.memory(
                root,
                t,
                "update",
                key,
                content,
                atype.namespace,
                source="conversation",
                summary="Customer said this was approved before; storing it as policy.",
            )
            lesson.details["wrong_event_id"] = event["event_id"]
            lesson.affected_events += 1
            return t
        action, key, content = self.memory.write(self.r, atype, entity)
        return b.memory(root, t, action, key, content, atype.namespace)[0]

    def _decision(
        self,
        b: TraceBuilder,
        root: str,
        t: int,
        atype: AgentType,
        name: str,
        entity: str,
        task: str,
        result: str,
        drift: Incident | None,
        corrupt: Incident | None,
        stage: int,
        failed_tool: str | None,
    ) -> tuple[int, Event]:
        r, rnd = self.r, self.r.random
        a, b_ = atype.confidence
        mean = a / (a + b_)
        conf = r.betavariate(a, b_)
        success = atype.success
        summary = r.choice(REASONS)
        if drift is not None:
            progress = (t - drift.start_us) / (drift.end_us - drift.start_us)
            conf -= drift.details["max_drop"] * progress * r.uniform(0.7, 1.1)
            success -= 0.25 * progress
        if corrupt is not None:
            conf -= r.uniform(0.05, 0.25)
            success -= 0.2
        if stage == 2 and self.lesson is not None:
            conf = r.uniform(0.9, 0.98)
            summary = f"Memory says: {self.lesson.details['wrong_content']}"
            result = f"Decided without approval per memory: {result}"
            self.lesson.affected_events += 1
        conf = min(0.995, max(0.01, conf))
        success += (conf - mean) * 0.9
        error = None
        value: float | None
        if failed_tool:
            outcome, value, error = "failure", 0.0, "DependencyError"
            result = f"Aborted: {failed_tool} unavailable after retries."
        elif rnd() < atype.unknown:
            outcome, value = "unknown", None
        elif rnd() < success:
            outcome, value = "success", round(atype.value_usd * r.lognormvariate(0.0, 0.6), 4)
        else:
            outcome, value, result = "failure", 0.0, f"Failed: {result}"
        if conf < 0.5:
            summary = f"Low confidence; {summary.lower()}"
        return b.decision(
            root,
            t,
            name,
            entity,
            task=task,
            summary=summary,
            result=result,
            confidence=conf,
            outcome=outcome,
            value=value,
            error=error,
        )

    def _review(
        self, b: TraceBuilder, decision: Event, t: int, t0: int, atype: AgentType, *, forced: bool
    ) -> None:
        r = self.r
        attrs: dict[str, Any] = {}
        correction: str | None = None
        lesson = self.lesson if forced else None
        if lesson is not None:
            kind, key = "correct", lesson.details["fact_key"]
            correction = self._correct_lesson or self.memory.get(atype, key)
            rationale = lesson.details["rationale"]
            attrs = {"lesson": True, "namespace": atype.namespace, "fact_key": key}
            self.memory.set(key, correction)  # the runtime applies the correction
        else:
            kind = r.choices(_FEEDBACK, cum_weights=_FEEDBACK_CUM)[0]
            if kind == "approve":
                rationale = "Consistent with policy." if r.random() < 0.5 else "Looks right."
            elif kind == "annotate":
                rationale = r.choice(_ANNOTATIONS)
            elif kind == "correct" and r.random() < 0.4:
                key = r.choice(atype.policy_facts)[0]
                correction = self.memory.get(atype, key)
                rationale = "The decision ignored this policy; remember it."
                attrs = {"lesson": True, "namespace": atype.namespace, "fact_key": key}
            else:
                correction, rationale = r.choice(atype.corrections)
                if kind == "override":
                    correction = f"Reversed: {correction}"
        day_end = (t0 // DAY_US + 1) * DAY_US - 1_000_000
        ts = max(t, min(day_end, t + r.randint(120, 5_400) * 1_000_000))
        feedback = {
            "kind": kind,
            "correction": correction,
            "rationale": rationale,
            "reviewer": r.choice(REVIEWERS[atype.tier]),
        }
        event = b.review(decision, ts, feedback, attrs)
        if lesson is not None:
            lesson.details["review_event_id"] = event["event_id"]
            lesson.details["corrected_content"] = correction
            lesson.end_us = ts + 1
            lesson.affected_events += 1

    def _stats(
        self,
        events: list[Event],
        agent: Agent,
        t0: int,
        decision: Event,
        spike: Incident | None,
        spiking: bool,
        cost: float,
        calls: int,
        drift: Incident | None,
        corrupt: Incident | None,
    ) -> None:
        """Ground-truth measurements of the incidents, and corrupted context applied."""
        whole = self.drift
        if whole is not None and agent.index in whole.agents:
            if t0 < whole.start_us:
                whole.add("base_sum", decision["confidence"])
                whole.add("base_n")
            elif t0 >= whole.end_us - DAY_US:
                whole.add("last_sum", decision["confidence"])
                whole.add("last_n")
            if drift is not None:
                whole.affected_events += 1
        if spike is not None:
            where = "in" if spiking else "out"
            spike.add(f"{where}_cost", cost)
            spike.add(f"{where}_cycles")
            spike.add(f"{where}_calls", calls)
            if spiking:
                spike.affected_events += calls
        if corrupt is not None:
            for e in events:
                if "input_context" in e:
                    e["input_context"] = garble(self.r, e["input_context"])
                    corrupt.affected_events += 1

    def _plant_secrets(self, events: list[Event]) -> None:
        r, rate = self.r, self.secret_rate
        for e in events:
            if r.random() < rate:
                kind, text = secret(r)
                field = "input_context" if "input_context" in e and r.random() < 0.7 else "result"
                e[field] = f"{e[field]} | {text}" if e.get(field) else text
                self.secrets[kind] += 1
