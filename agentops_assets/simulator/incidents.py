"""Named incidents: where and when they happen, how a cycle is changed, and their ground truth."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from .catalog import EXPENSIVE_DEFAULT, EXPENSIVE_MODEL, MODELS, ROGUE_TOOLS
from .fleet import HOUR_US, Agent, Schedule
from .text import Clock, day_start_us

INCIDENT_NAMES: Final = (
    "confidence_drift",
    "cost_spike",
    "rogue_agent",
    "outage",
    "corrupted_context",
    "wrong_lesson",
)
_KINDS: Final = {
    "confidence_drift": "drift",
    "cost_spike": "finops",
    "rogue_agent": "behavior",
    "outage": "reliability",
    "corrupted_context": "data_quality",
    "wrong_lesson": "memory",
}
MIN_CYCLES: Final = 3  # cycles an incident window gets at least, so small fleets still show it


@dataclass
class Incident:
    """One injected incident; its window is [start_us, end_us)."""

    name: str
    agent_type: str | None
    agent_ids: list[str]
    day: int
    start_us: int
    end_us: int
    description: str
    details: dict[str, Any] = field(default_factory=dict)
    agents: frozenset[int] = frozenset()
    affected_events: int = 0
    stats: dict[str, float] = field(default_factory=dict)
    learn_us: int = 0  # wrong_lesson: start of the cycle that stores the wrong fact
    review_us: int = 0  # wrong_lesson: start of the cycle whose review corrects it

    def active(self, t_us: int) -> bool:
        return self.start_us <= t_us < self.end_us

    def add(self, key: str, value: float = 1.0) -> None:
        self.stats[key] = self.stats.get(key, 0.0) + value

    def to_json(self, start: dt.date, clock: Clock) -> dict[str, Any]:
        """The ground-truth record written to ``incidents.json``."""
        return {
            "name": self.name,
            "kind": _KINDS[self.name],
            "agent_type": self.agent_type,
            "agent_ids": self.agent_ids,
            "day": (start + dt.timedelta(days=self.day)).isoformat(),
            "start": clock.iso(self.start_us),
            "end": clock.iso(self.end_us),
            "description": self.description,
            "signal": _signal(self),
            "details": self.details,
            "affected_events": self.affected_events,
        }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def _signal(inc: Incident) -> dict[str, Any]:
    s = inc.stats
    if inc.name == "confidence_drift":
        return {
            "metric": "mean decision confidence",
            "filter": {"agent_type": inc.agent_type, "kind": "decision"},
            "direction": "down",
            "baseline": _ratio(s.get("base_sum", 0), s.get("base_n", 0)),
            "last_day": _ratio(s.get("last_sum", 0), s.get("last_n", 0)),
        }
    if inc.name == "cost_spike":
        base = _ratio(s.get("out_cost", 0), s.get("out_cycles", 0))
        spike = _ratio(s.get("in_cost", 0), s.get("in_cycles", 0))
        return {
            "metric": "LLM cost per reasoning cycle and LLM calls per cycle",
            "filter": {"agent_type": inc.agent_type, "kind": "llm_call"},
            "direction": "up",
            "baseline_cost_per_cycle_usd": base,
            "incident_cost_per_cycle_usd": spike,
            "baseline_llm_calls_per_cycle": _ratio(s.get("out_calls", 0), s.get("out_cycles", 0)),
            "incident_llm_calls_per_cycle": _ratio(s.get("in_calls", 0), s.get("in_cycles", 0)),
        }
    if inc.name == "rogue_agent":
        return {
            "metric": "tool calls outside the agent type's usual tool set",
            "filter": {"agent_id": inc.agent_ids[0], "kind": "tool_call"},
            "unexpected_actions": inc.details["tools"],
            "count": int(s.get("rogue_calls", 0)),
        }
    if inc.name == "outage":
        return {
            "metric": "tool call error rate",
            "filter": {"action": inc.details["tool"], "kind": "tool_call"},
            "error_types": inc.details["error_types"],
            "direction": "up",
            "error_rate_in_window": _ratio(s.get("errors", 0), s.get("calls", 0)),
        }
    if inc.name == "corrupted_context":
        return {
            "metric": "empty or garbled input_context",
            "filter": {"agent_id": inc.agent_ids[0]},
            "events": inc.affected_events,
        }
    return {
        "metric": "memory fact written with wrong content, later corrected by a reviewer",
        "filter": {"agent_id": inc.agent_ids[0], "kind": "memory_op"},
        "fact_key": inc.details["fact_key"],
        "wrong_event_id": inc.details.get("wrong_event_id"),
        "review_event_id": inc.details.get("review_event_id"),
    }


def _days(names: list[str], days: int, r: random.Random, first: int = 1) -> dict[str, int]:
    """Each incident on its own day where the range allows; the days before ``first`` (at
    least day 0) stay a clean baseline."""
    pool = list(range(max(first, 1), days)) or [days - 1]
    r.shuffle(pool)
    others = [n for n in INCIDENT_NAMES if n in names and n != "confidence_drift"]
    return {name: pool[i % len(pool)] for i, name in enumerate(others)}


def _ensure(
    schedule: Schedule, r: random.Random, day: int, agents: list[int], start: int, end: int
) -> None:
    """Give a window at least ``MIN_CYCLES`` cycles, so even a tiny fleet shows the incident."""
    missing = MIN_CYCLES - schedule.count(day, set(agents), start, end)
    for i in range(max(0, missing)):
        t = np.asarray([r.randrange(start, end)], dtype=np.int64)
        schedule.add(day, agents[i % len(agents)], t)


class _Planner:
    """Chooses each incident's targets and window, and makes sure the window has cycles."""

    def __init__(
        self, fleet: list[Agent], schedule: Schedule, start: dt.date, days: int, seed: int
    ) -> None:
        self.r = random.Random(f"agentops-incidents:{seed}")
        self.fleet, self.schedule, self.start, self.days = fleet, schedule, start, days
        self.by_type: dict[str, list[Agent]] = {}
        for agent in fleet:
            self.by_type.setdefault(agent.type.name, []).append(agent)
        self.drift_type = self.r.choice(list(self.by_type))
        tactical = [a for a in fleet if a.type.tier == "tactical"] or fleet
        self.rogue = self.r.choice(tactical)
        self.day_of: dict[str, int] = {}

    def at(self, day: int, hour: float) -> int:
        return day_start_us(self.start + dt.timedelta(days=day)) + int(hour * HOUR_US)

    def _incident(
        self,
        name: str,
        agents: list[Agent],
        start_us: int,
        end_us: int,
        description: str,
        details: dict[str, Any],
        *,
        agent_type: str | None,
        day: int | None = None,
    ) -> Incident:
        """The incident on its planned day, with cycles ensured in its window; a caller that
        passes ``day`` ensures the cycles itself."""
        if day is None:
            day = self.day_of[name]
            _ensure(self.schedule, self.r, day, [a.index for a in agents], start_us, end_us)
        return Incident(
            name,
            agent_type,
            [a.id for a in agents],
            day,
            start_us,
            end_us,
            description,
            details,
            frozenset(a.index for a in agents),
        )

    def confidence_drift(self) -> Incident:
        width = max(1, min(3, self.days // 2))
        first = self.days - width
        members = self.by_type[self.drift_type]
        for d in range(first, self.days):
            _ensure(
                self.schedule, self.r, d, [a.index for a in members], self.at(d, 0), self.at(d, 24)
            )
        return self._incident(
            "confidence_drift",
            members,
            self.at(first, 0),
            self.at(self.days, 0),
            f"Decision confidence of every {self.drift_type} falls steadily over the last "
            f"{width} day(s), and fewer decisions succeed.",
            {"max_drop": 0.35},
            agent_type=self.drift_type,
            day=first,
        )

    def cost_spike(self) -> Incident:
        stype = self.r.choice([t for t in self.by_type if t != self.drift_type] or [*self.by_type])
        members = self.by_type[stype]
        model = EXPENSIVE_MODEL.get(MODELS[members[0].model_names[0]].provider, EXPENSIVE_DEFAULT)
        t0 = self.at(self.day_of["cost_spike"], self.r.uniform(7, 11))
        return self._incident(
            "cost_spike",
            members,
            t0,
            t0 + 8 * HOUR_US,
            f"{stype} switches to the expensive model {model} and a re-prompt storm multiplies "
            "its LLM calls for 8 hours.",
            {"model": model, "provider": MODELS[model].provider},
            agent_type=stype,
        )

    def rogue_agent(self) -> Incident:
        rogue = self.rogue
        unusual = [t for t in ROGUE_TOOLS if t not in rogue.usual_tools]
        tools = sorted(self.r.sample(unusual, 3))
        t0 = self.at(self.day_of["rogue_agent"], self.r.uniform(10, 15))
        return self._incident(
            "rogue_agent",
            [rogue],
            t0,
            t0 + 3 * HOUR_US,
            f"{rogue.id} calls tools outside the {rogue.type.name} tool set for 3 hours: "
            f"{', '.join(tools)}.",
            {"tools": tools},
            agent_type=rogue.type.name,
        )

    def outage(self) -> Incident:
        users: dict[str, list[Agent]] = {}
        for a in self.fleet:
            for tool in a.usual_tools:
                users.setdefault(tool, []).append(a)
        most = max(len(v) for v in users.values())
        tool = self.r.choice(sorted(t for t, v in users.items() if len(v) == most))
        t0 = self.at(self.day_of["outage"], self.r.uniform(9, 15))
        return self._incident(
            "outage",
            users[tool],
            t0,
            t0 + 2 * HOUR_US + self.r.randrange(0, HOUR_US // 2),
            f"{tool} fails with timeouts and HTTP 503 for about two hours; every agent that "
            "uses it retries and some cycles fail.",
            {"tool": tool, "error_types": ["TimeoutError", "HTTP503"]},
            agent_type=None,
        )

    def corrupted_context(self) -> Incident:
        victim = self.r.choice([a for a in self.fleet if a is not self.rogue] or self.fleet)
        t0 = self.at(self.day_of["corrupted_context"], self.r.uniform(8, 13))
        return self._incident(
            "corrupted_context",
            [victim],
            t0,
            t0 + 4 * HOUR_US,
            f"{victim.id} receives empty or garbled input context for 4 hours (a broken "
            "upstream serialiser); its decisions get worse.",
            {},
            agent_type=victim.type.name,
        )

    def wrong_lesson(self) -> Incident:
        learner = self.r.choice(self.by_type.get("FinanceAgent") or self.fleet)
        day = self.day_of["wrong_lesson"]
        lo, hi = self.at(day, 8), self.at(day, 20)
        times = self.schedule.times(day, learner.index)
        for _ in range(4 - int(((times >= lo) & (times < hi)).sum())):
            t = np.asarray([self.r.randrange(lo, hi)], dtype=np.int64)
            self.schedule.add(day, learner.index, t)
        times = self.schedule.times(day, learner.index)
        inside = [int(t) for t in times[(times >= lo) & (times < hi)]]
        learn, review = inside[len(inside) // 4], inside[(3 * len(inside)) // 4]
        key, wrong, rationale = learner.type.wrong_lesson
        return Incident(
            "wrong_lesson",
            learner.type.name,
            [learner.id],
            day,
            learn,
            review + HOUR_US,  # replaced by the review's time once it is generated
            f"{learner.id} stores a wrong lesson in memory ({key}: '{wrong}'), acts on it, "
            "and a reviewer later corrects it with a lesson.",
            {"fact_key": key, "wrong_content": wrong, "rationale": rationale},
            frozenset({learner.index}),
            learn_us=learn,
            review_us=review,
        )


def plan_incidents(
    names: list[str],
    fleet: list[Agent],
    schedule: Schedule,
    start: dt.date,
    days: int,
    seed: int,
    *,
    first_day: int = 1,
) -> list[Incident]:
    """Choose targets and windows for ``names``, none before ``first_day``; adds cycles to the
    schedule where needed."""
    planner = _Planner(fleet, schedule, start, days, seed)
    planner.day_of = _days(names, days, planner.r, first_day)
    return [getattr(planner, name)() for name in INCIDENT_NAMES if name in names]
