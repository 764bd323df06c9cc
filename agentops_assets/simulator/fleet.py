"""The fleet's instances and when each one starts a reasoning cycle (daily and weekly rhythm)."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

import numpy as np

from .agent_types import AGENT_TYPES, HOURLY, WEEKEND, AgentType
from .text import day_start_us

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US

# OTLP attribute dialects: current GenAI semconv, the older names, OpenInference.
DIALECT_PATTERN = ("current", "legacy", "current", "legacy", "current", "openinference")


@dataclass
class Agent:
    """One running agent instance and its per-run state."""

    index: int
    id: str
    type: AgentType
    activity: float  # multiplier on the type's cycle rate
    fmt: str = "jsonl"  # jsonl or otlp
    dialect: str = "current"  # OTLP attribute names
    model_names: tuple[str, ...] = ()
    model_cum: tuple[float, ...] = ()
    tool_names: tuple[str, ...] = ()
    tool_cum: tuple[float, ...] = ()
    usual_tools: frozenset[str] = field(default_factory=frozenset)
    session: str | None = None
    session_left: int = 0
    last_us: int = 0


def _cum(weights: list[float]) -> tuple[float, ...]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return tuple(out)


def type_counts(agents: int) -> list[tuple[AgentType, int]]:
    """Instances per type: one each in catalog order first, the rest by weight."""
    counts = [0] * len(AGENT_TYPES)
    for i in range(min(agents, len(AGENT_TYPES))):
        counts[i] = 1
    rest = agents - sum(counts)
    if rest > 0:
        total = sum(t.weight for t in AGENT_TYPES)
        shares = [rest * t.weight / total for t in AGENT_TYPES]
        floors = [int(s) for s in shares]
        order = sorted(range(len(shares)), key=lambda i: (floors[i] - shares[i], i))
        for i in order[: rest - sum(floors)]:
            floors[i] += 1
        counts = [c + f for c, f in zip(counts, floors, strict=True)]
    return [(t, c) for t, c in zip(AGENT_TYPES, counts, strict=True) if c]


def build_fleet(agents: int, fmt: str, seed: int) -> list[Agent]:
    """Create ``agents`` instances, ids like ``finance-agent-03``, with formats and dialects.

    Formats and dialects come from their own generator, so the events themselves do not depend
    on the output format.
    """
    r = random.Random(f"agentops-fleet:{seed}")
    fleet: list[Agent] = []
    for atype, count in type_counts(agents):
        for n in range(1, count + 1):
            fleet.append(
                Agent(
                    index=len(fleet),
                    id=f"{atype.slug}-{n:02d}",
                    type=atype,
                    activity=min(2.0, max(0.4, r.lognormvariate(0.0, 0.25))),
                )
            )
    for agent in fleet:
        names = [m for m, _ in agent.type.models]
        agent.model_names = tuple(names)
        agent.model_cum = _cum([w for _, w in agent.type.models])
        agent.tool_names = tuple(t for t, _ in agent.type.tools)
        agent.tool_cum = _cum([w for _, w in agent.type.tools])
        agent.usual_tools = frozenset(agent.tool_names)
    fr = random.Random(f"agentops-formats:{seed}")
    order = list(range(len(fleet)))
    fr.shuffle(order)
    otlp_rank = 0
    for rank, i in enumerate(order):
        agent = fleet[i]
        agent.fmt = fmt if fmt != "both" else ("otlp" if rank % 2 else "jsonl")
        if agent.fmt == "otlp":
            agent.dialect = DIALECT_PATTERN[otlp_rank % len(DIALECT_PATTERN)]
            otlp_rank += 1
    return fleet


@dataclass
class Schedule:
    """Cycle start times (µs since epoch) and agent indexes, per simulated day."""

    starts: list[np.ndarray]
    agents: list[np.ndarray]
    bursts: list[dict[str, object]]

    @property
    def total(self) -> int:
        return int(sum(len(s) for s in self.starts))

    def add(self, day: int, agent: int, times: np.ndarray) -> None:
        self.starts[day] = np.concatenate([self.starts[day], times.astype(np.int64)])
        self.agents[day] = np.concatenate(
            [self.agents[day], np.full(len(times), agent, dtype=np.int64)]
        )

    def count(self, day: int, agents: set[int], start_us: int, end_us: int) -> int:
        s, a = self.starts[day], self.agents[day]
        mask = (s >= start_us) & (s < end_us) & np.isin(a, list(agents))
        return int(mask.sum())

    def times(self, day: int, agent: int) -> np.ndarray:
        s = self.starts[day][self.agents[day] == agent]
        return np.sort(s)

    def sort(self) -> None:
        for d in range(len(self.starts)):
            order = np.lexsort((self.agents[d], self.starts[d]))
            self.starts[d] = self.starts[d][order]
            self.agents[d] = self.agents[d][order]


def _day_factor(tier: str, weekday: int) -> float:
    weekend = WEEKEND[tier]
    weekday_rate = 7.0 / (5.0 + 2.0 * weekend)  # keeps the weekly mean at 1
    return weekday_rate * (weekend if weekday >= 5 else 1.0)


def build_schedule(
    fleet: list[Agent], start: dt.date, days: int, cycles_per_agent_day: int, seed: int
) -> Schedule:
    """Draw when every agent starts its cycles: hour-of-day profile, weekends, random bursts."""
    rng = np.random.default_rng([seed, 0x5C4ED])
    profiles = {tier: np.asarray(w) / sum(w) for tier, w in HOURLY.items()}
    starts: list[np.ndarray] = []
    agents: list[np.ndarray] = []
    bursts: list[dict[str, object]] = []
    for d in range(days):
        day = start + dt.timedelta(days=d)
        base = day_start_us(day)
        day_starts, day_agents = [], []
        for agent in fleet:
            tier = agent.type.tier
            mean = cycles_per_agent_day * agent.activity * _day_factor(tier, day.weekday())
            n = int(rng.poisson(mean))
            hours = rng.choice(24, size=n, p=profiles[tier])
            times = base + hours * HOUR_US + rng.integers(0, HOUR_US, size=n)
            if rng.random() < 0.07:
                extra = int(rng.poisson(0.4 * cycles_per_agent_day)) + 3
                hour = int(rng.choice(24, p=profiles[tier]))
                burst = base + hour * HOUR_US + rng.integers(0, HOUR_US, size=extra)
                times = np.concatenate([times, burst])
                bursts.append(
                    {"agent_id": agent.id, "day": day.isoformat(), "hour": hour, "cycles": extra}
                )
            day_starts.append(times.astype(np.int64))
            day_agents.append(np.full(len(times), agent.index, dtype=np.int64))
        starts.append(np.concatenate(day_starts) if day_starts else np.zeros(0, np.int64))
        agents.append(np.concatenate(day_agents) if day_agents else np.zeros(0, np.int64))
    return Schedule(starts, agents, bursts)
