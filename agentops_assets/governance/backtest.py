"""Back-test a candidate policy folder against the history in ``agent_events``; writes nothing.

Both the policies in force and the candidate judge the same action documents (same context,
same 30-day statistics); the report counts the actions whose decision or zone would change,
by transition and by agent type, with a few examples of each transition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

import polars as pl

from agentops_assets.governance.judge import (
    action_stats,
    evaluations,
    judge,
    load_policies,
    read_actions,
    with_context,
)
from agentops_assets.storage.config import Paths

EXAMPLES: Final = 3  # examples kept per transition


@dataclass(frozen=True)
class BacktestReport:
    """What would change if the candidate policies had been in force."""

    first: date
    last: date
    current_revision: str
    candidate_revision: str
    candidate_error: str | None
    evaluated: int
    changed: int
    evaluations: dict[str, int]
    seconds: float
    transitions: pl.DataFrame  # old/new decision and zone, count
    by_agent_type: pl.DataFrame  # agent_type, old/new decision and zone, count
    examples: pl.DataFrame  # a few changed actions per transition, with the new reasons
    zones: dict[str, dict[str, int]] = field(default_factory=dict)  # current/candidate counts

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``agentops policy backtest --format json``)."""
        return {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "current_revision": self.current_revision,
            "candidate_revision": self.candidate_revision,
            "candidate_error": self.candidate_error,
            "evaluated": self.evaluated,
            "changed": self.changed,
            "evaluations": self.evaluations,
            "seconds": round(self.seconds, 3),
            "zones": self.zones,
            "transitions": self.transitions.to_dicts(),
            "by_agent_type": self.by_agent_type.to_dicts(),
            "examples": [
                {**row, "day": row["day"].isoformat()} for row in self.examples.to_dicts()
            ],
        }


def backtest(
    paths: Paths,
    candidate: Path,
    first: date,
    last: date,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> BacktestReport:
    """Judge every action of ``[first, last]`` with the policies in force and with the
    ``candidate`` folder, and compare.

    Args:
        paths: The home whose history is replayed (read only).
        candidate: A policy folder (``*.rego``, optionally its own ``capabilities.yaml``).
        first: First day of the history.
        last: Last day of the history.
        progress: Called with (which policies, evaluations done, evaluations to do).
    """
    started = time.perf_counter()
    current = load_policies(paths)
    proposed = load_policies(paths, candidate)
    actions = with_context(paths, read_actions(paths, first, last))
    stats = action_stats(paths, first, last)

    def tell(which: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, total: progress(which, done, total)

    old = judge(current, actions, stats, documents=False, progress=tell("current"))
    new = judge(proposed, actions, stats, documents=False, progress=tell("candidate"))
    compared = pl.DataFrame(
        {
            "day": old["day"],
            "event_id": old["event_id"],
            "agent_id": old["agent_id"],
            "agent_type": old["agent_type"],
            "action": old["action"],
            "old_decision": old["decision"],
            "old_zone": old["zone"],
            "new_decision": new["decision"],
            "new_zone": new["zone"],
            "new_reasons": new["reasons"].list.join(" "),
        }
    )
    changed = compared.filter(
        (pl.col("old_decision") != pl.col("new_decision"))
        | (pl.col("old_zone") != pl.col("new_zone"))
    )
    transition = ["old_decision", "old_zone", "new_decision", "new_zone"]
    return BacktestReport(
        first=first,
        last=last,
        current_revision=current.revision,
        candidate_revision=proposed.revision,
        candidate_error=proposed.bundle.load_error,
        evaluated=compared.height,
        changed=changed.height,
        evaluations={
            "current": evaluations(current, actions),
            "candidate": evaluations(proposed, actions),
        },
        seconds=time.perf_counter() - started,
        transitions=_counts(changed, transition),
        by_agent_type=_counts(changed, ["agent_type", *transition]),
        examples=changed.sort("day", "event_id")
        .group_by(transition, maintain_order=True)
        .head(EXAMPLES)
        .select("day", "event_id", "agent_id", "action", *transition, "new_reasons"),
        zones={
            "current": _zone_counts(old),
            "candidate": _zone_counts(new),
        },
    )


def _counts(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return frame.group_by(by).agg(pl.len().alias("count")).sort(["count", *by], descending=[
        True, *[False] * len(by)
    ])  # fmt: skip


def _zone_counts(frame: pl.DataFrame) -> dict[str, int]:
    counts = dict(frame.group_by("zone").len().iter_rows())
    return {zone: int(counts.get(zone, 0)) for zone in ("green", "yellow", "red")}
