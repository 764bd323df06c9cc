"""Chaos drills: faults injected into a scratch copy of a home, and the reaction they should get.

A drill copies the home (never touching its tables), replays the last day of the target's own
telemetry as today with one fault injected, runs the pipeline on the copy, and checks that the
platform reacted as its policies say. Replaying the target's own day keeps its baselines honest:
only the fault differs from what it usually does.

The scenario names are a contract (``agentops chaos list``):

- ``broken_tool_api``: one tool the type uses fails (HTTP 503) on every call.
- ``provider_outage``: half of the type's LLM calls to its main provider fail.
- ``corrupted_context``: one agent receives empty or garbled input context.
- ``contradictory_memory``: two agents of a type write opposite values of one fact.
- ``runaway_cost``: the type's LLM calls repeat (a re-prompt storm) until it spends twice its
  daily cap.
- ``rogue_agent``: one agent calls tools outside its type's registry.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import polars as pl
import pyarrow.fs as pafs

from agentops_assets.finops.providers import normalize_provider
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths, is_local
from agentops_assets.telemetry.schema import AGENT_EVENTS, FIELDS

CHAOS_DRILLS: Final = "chaos_drills"
MAX_STORM: Final = 200  # at most this many times each LLM call of a runaway type
ROGUE_TOOLS: Final = ("iam.create_access_key", "db.export_table", "s3.put_bucket_policy")
GARBLED: Final = ""  # an empty context: what a broken serialiser sends
DRILL_SCHEMA: Final = pl.Schema(
    {
        "drill_id": pl.String(),
        "scenario": pl.String(),
        "target": pl.String(),
        "started_at": pl.Datetime("us", "UTC"),
        "injected_at": pl.Datetime("us", "UTC"),
        "finished_at": pl.Datetime("us", "UTC"),
        "seconds_to_react": pl.Float64(),
        "passed": pl.Boolean(),
        "detected_by": pl.String(),
        "state_change": pl.String(),
        "alerts": pl.Int64(),
        "ledger_entries": pl.Int64(),
        "detail": pl.String(),
    }
)
# What a copy of the home leaves out: the Dagster instance, raw landing files, exports.
_NOT_COPIED: Final = ("dagster", "landing", "bench", "alerts", "simulator", "locks")


class DrillError(Exception):
    """The drill cannot run on this home (no telemetry, no agent of the kind it needs)."""


@dataclass(frozen=True)
class Target:
    """Whom a drill injects into, and the day of theirs it replays."""

    agent_type: str
    agent_ids: tuple[str, ...]
    source_day: date
    day: date
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return ", ".join(self.agent_ids) if len(self.agent_ids) <= 2 else self.agent_type


@dataclass(frozen=True)
class Reaction:
    """What the platform did on the scratch copy."""

    passed: bool
    detected_by: str
    state_change: str
    alerts: int
    ledger_entries: int
    detail: str


@dataclass(frozen=True)
class Scenario:
    name: str
    injects: str
    expected: str
    choose: Callable[[pl.DataFrame, date, int, Paths], Target]
    fault: Callable[[list[dict[str, Any]], Target], list[dict[str, Any]]]
    check: Callable[[Paths, Target, datetime], Reaction]


def scratch_copy(paths: Paths, folder: Path) -> Paths:
    """A copy of the home in ``folder`` (its lake, memory index, ledger anchors, control
    file), as a home of its own on local disk, wherever the lake and index live (a lake or
    index on object storage is copied down: a drill never writes to the real ones)."""
    for child in paths.home.iterdir():
        if child.name in _NOT_COPIED or child.name.startswith("."):
            continue
        if child.is_dir():
            shutil.copytree(child, folder / child.name, symlinks=True)
        else:
            shutil.copy2(child, folder / child.name)
    for uri, name in ((paths.lake_uri, "lake"), (paths.index_uri, "lance")):
        if not (folder / name).exists():
            _copy_tree(uri, folder / name)
    return Paths(home=folder, lake_uri=str(folder / "lake"), index_uri=str(folder / "lance"))


def _copy_tree(uri: str, target: Path) -> None:
    """Copy the folder or object-store prefix ``uri`` to the local folder ``target`` (nothing
    when it does not exist)."""
    if is_local(uri):
        if Path(uri).is_dir():
            shutil.copytree(uri, target)
        return
    source, root = pafs.FileSystem.from_uri(uri)
    if source.get_file_info(root).type != pafs.FileType.Directory:
        return
    target.mkdir(parents=True)
    pafs.copy_files(root, str(target), source_filesystem=source)


def last_day_events(paths: Paths) -> tuple[date, pl.DataFrame]:
    """The last whole day of telemetry before today and its events (the day a drill replays)."""
    events = lake.scan(paths.table_uri(AGENT_EVENTS))
    if events is None:
        raise DrillError("this home has no telemetry to replay: run `agentops demo` first.")
    today = datetime.now(UTC).date()
    days = (
        events.filter(pl.col("event_date") < today)
        .select(pl.col("event_date").max())
        .collect()
        .item()
    )
    if days is None:
        raise DrillError("this home has no telemetry before today to replay.")
    return days, events.filter(pl.col("event_date") == days).collect()


def replay(events: pl.DataFrame, target: Target, salt: str) -> list[dict[str, Any]]:
    """The target's events of its source day as native JSONL records of ``target.day``, with
    new ids (so nothing dedups against the original) and the same shape otherwise."""
    mine = events.filter(pl.col("agent_id").is_in(list(target.agent_ids))).sort("ts")
    shift = target.day - target.source_day
    records = []
    for row in mine.iter_rows(named=True):
        record = {name: row[name] for name in FIELDS if row.get(name) is not None}
        for key in ("event_id", "trace_id", "parent_id"):
            if key in record:
                record[key] = _new_id(record[key], salt)
        record["ts"] = (row["ts"] + shift).isoformat()
        if isinstance(record.get("attributes"), str):
            record["attributes"] = json.loads(record["attributes"])
        records.append(record)
    return records


def _new_id(old: str, salt: str) -> str:
    return "cx" + hashlib.sha256(f"{salt}:{old}".encode()).hexdigest()[:22]


def write_landing(paths: Paths, name: str, records: list[dict[str, Any]]) -> Path:
    """``records`` as one JSONL landing file, written whole then renamed into place."""
    paths.landing.mkdir(parents=True, exist_ok=True)
    path = paths.landing / f"{name}.jsonl"
    temporary = paths.landing / f".{name}.jsonl.tmp"
    temporary.write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    temporary.rename(path)
    return path


# --- choosing targets ---------------------------------------------------------------------------


def _busiest_type(events: pl.DataFrame, seed: int) -> str:
    types = events.group_by("agent_type").len().sort("len", "agent_type", descending=[True, False])
    if types.is_empty():
        raise DrillError("the replayed day has no events.")
    return str(types["agent_type"][seed % min(3, types.height)])


def _type_target(events: pl.DataFrame, source: date, seed: int, **detail: Any) -> Target:
    agent_type = _busiest_type(events, seed)
    agents = sorted(events.filter(pl.col("agent_type") == agent_type)["agent_id"].unique())
    return Target(agent_type, tuple(agents), source, datetime.now(UTC).date(), detail)


def _agent_target(events: pl.DataFrame, source: date, seed: int) -> Target:
    agent_type = _busiest_type(events, seed)
    agents = sorted(events.filter(pl.col("agent_type") == agent_type)["agent_id"].unique())
    return Target(agent_type, (agents[seed % len(agents)],), source, datetime.now(UTC).date())


def _choose_tool(events: pl.DataFrame, source: date, seed: int, paths: Paths) -> Target:
    target = _type_target(events, source, seed)
    calls = (
        events.filter((pl.col("agent_type") == target.agent_type) & (pl.col("kind") == "tool_call"))
        .group_by("action")
        .len()
        .sort("len", "action", descending=[True, False])
    )
    if calls.is_empty():
        raise DrillError(f"{target.agent_type} called no tool on {source}.")
    return Target(**{**target.__dict__, "detail": {"tool": calls["action"][0]}})


def _choose_provider(events: pl.DataFrame, source: date, seed: int, paths: Paths) -> Target:
    target = _type_target(events, source, seed)
    llm = (
        events.filter((pl.col("agent_type") == target.agent_type) & (pl.col("kind") == "llm_call"))
        .group_by("provider")
        .len()
        .sort("len", "provider", descending=[True, False])
    )
    if llm.is_empty():
        raise DrillError(f"{target.agent_type} made no LLM call on {source}.")
    return Target(**{**target.__dict__, "detail": {"provider": llm["provider"][0]}})


def _choose_pair(events: pl.DataFrame, source: date, seed: int, paths: Paths) -> Target:
    target = _type_target(events, source, seed)
    if len(target.agent_ids) < 2:
        raise DrillError(f"{target.agent_type} has one agent: a contradiction needs two.")
    return Target(target.agent_type, target.agent_ids[:2], source, target.day)


# --- faults -------------------------------------------------------------------------------------


def _fail_tool(records: list[dict[str, Any]], target: Target) -> list[dict[str, Any]]:
    tool = target.detail["tool"]
    for record in records:
        if record.get("kind") == "tool_call" and record.get("action") == tool:
            record |= {"status": "error", "error_type": "HTTP503", "result": "503 Service "
                       "Unavailable"}  # fmt: skip
    return records


def _fail_provider(records: list[dict[str, Any]], target: Target) -> list[dict[str, Any]]:
    provider = target.detail["provider"]
    calls = [r for r in records if r.get("kind") == "llm_call" and r.get("provider") == provider]
    for record in calls[::2]:  # every other call: half fail
        record |= {"status": "error", "error_type": "HTTP503", "output_tokens": 0}
    return records


def _garble(records: list[dict[str, Any]], target: Target) -> list[dict[str, Any]]:
    for record in records:
        if record.get("input_context"):
            record["input_context"] = GARBLED
    return records


def _contradict(records: list[dict[str, Any]], target: Target) -> list[dict[str, Any]]:
    first, second = target.agent_ids[:2]
    key = "policy.refund_limit"
    out = list(records)
    base = next((r for r in records if r["agent_id"] == first), None)
    if base is None:
        return out
    for n, (agent, content) in enumerate(
        [(first, "Refunds above 500 USD need a manager."),
         (second, "Refunds of any amount are approved without a manager.")]
    ):  # fmt: skip
        out.append(
            {
                "event_id": _new_id(f"contradiction-{n}", base["trace_id"]),
                "trace_id": _new_id(f"contradiction-trace-{n}", base["trace_id"]),
                "ts": base["ts"],
                "agent_id": agent,
                "agent_type": target.agent_type,
                "kind": "memory_op",
                "action": "update" if n else "add",
                "action_target": key,
                "input_context": content,
                "status": "ok",
                "attempt": 0,
                "attributes": {"namespace": "policy", "fact_key": key},
            }
        )
    return out


def _choose_storm(events: pl.DataFrame, source: date, seed: int, paths: Paths) -> Target:
    """The type, and how many times its calls repeat: enough to pass its daily cap twice
    (a storm that stays under the cap is not a runaway)."""
    from agentops_assets.finops.budgets import load_budgets
    from agentops_assets.finops.tables import BUDGETS_FILE, EVENT_COSTS

    target = _type_target(events, source, seed)
    budgets = load_budgets(paths.policy_file(BUDGETS_FILE))
    own = [b for b in budgets if b.agent_type == target.agent_type]  # else the "*" default
    caps = [b.daily_usd for b in own or [b for b in budgets if b.agent_type == "*"]
            if b.daily_usd is not None and b.provider is None and b.model is None]  # fmt: skip
    costs = lake.scan(paths.table_uri(EVENT_COSTS))
    spent = (
        costs.filter((pl.col("event_date") == source) & (pl.col("agent_type") == target.agent_type))
        .select(pl.col("cost_usd").sum())
        .collect()
        .item()
        if costs is not None
        else None
    ) or 0.0
    times = 10
    if caps and spent > 0:
        times = max(times, min(MAX_STORM, math.ceil(2 * min(caps) / spent)))
    return Target(**{**target.__dict__, "detail": {"times": times, "spent": spent}})


def _storm(records: list[dict[str, Any]], target: Target) -> list[dict[str, Any]]:
    out = list(records)
    for record in records:
        if record.get("kind") != "llm_call":
            continue
        for n in range(1, target.detail.get("times", 10)):
            copy = dict(record)
            copy["event_id"] = _new_id(f"storm-{n}", record["event_id"])
            copy["parent_id"] = record.get("parent_id")
            copy["attempt"] = n
            out.append(copy)
    return out


def _go_rogue(records: list[dict[str, Any]], target: Target) -> list[dict[str, Any]]:
    out = list(records)
    calls = [r for r in records if r.get("kind") == "tool_call"][:9]
    for n, record in enumerate(calls):
        rogue = dict(record)
        rogue |= {
            "event_id": _new_id(f"rogue-{n}", record["event_id"]),
            "action": ROGUE_TOOLS[n % len(ROGUE_TOOLS)],
            "action_target": "prod",
            "status": "ok",
        }
        out.append(rogue)
    return out


# --- checks -------------------------------------------------------------------------------------


def _rows(paths: Paths, table: str, where: pl.Expr) -> pl.DataFrame:
    frame = lake.scan(paths.table_uri(table))
    return frame.filter(where).collect() if frame is not None else pl.DataFrame()


def _alerts(paths: Paths, source: str, target: Target) -> int:
    path = paths.home / "alerts" / "alerts.jsonl"
    if not path.exists():
        return 0
    count = 0
    for line in path.read_text().splitlines():
        alert = json.loads(line)
        if alert.get("source") == source and alert.get("agent_type") == target.agent_type:
            count += 1
    return count


def _ledger(paths: Paths, since: datetime) -> pl.DataFrame:
    from agentops_assets.governance.ledger import AuditLedger

    return AuditLedger(paths).entries(since=since)


def _state(paths: Paths, target: Target, agent_id: str | None) -> dict[str, Any] | None:
    from agentops_assets.control.output import control_path

    document = json.loads(control_path(paths).read_text())
    if agent_id is None:
        return document["agent_types"].get(target.agent_type)
    return document["agents"].get(agent_id)


def _reaction(found: bool, by: str, change: str, alerts: int, entries: int, why: str) -> Reaction:
    return Reaction(found, by if found else "-", change, alerts, entries, why)


def _check_tool(paths: Paths, target: Target, injected: datetime) -> Reaction:
    findings = _rows(
        paths, "drift_findings",
        (pl.col("day") == target.day) & (pl.col("agent_type") == target.agent_type)
        & (pl.col("metric") == "tool_error_rate"),
    )  # fmt: skip
    alerts = _alerts(paths, "drift_finding", target)
    found = findings.height > 0 and alerts > 0
    why = (
        f"{findings['detail'][0]}" if findings.height else
        f"no tool_error_rate finding for {target.agent_type} on {target.day}"
    )  # fmt: skip
    return _reaction(found, "drift_findings (tool_error_rate)", "none expected", alerts,
                     _ledger(paths, injected).height, why)  # fmt: skip


def _check_provider(paths: Paths, target: Target, injected: datetime) -> Reaction:
    from agentops_assets.control.failover import provider_health
    from agentops_assets.control.refresh import failover_policy

    policy = failover_policy(paths)
    provider = normalize_provider(target.detail["provider"])
    health = provider_health(paths, target.day).filter(
        (pl.col("agent_type") == target.agent_type) & (pl.col("provider") == provider)
    )
    seen = health.height > 0 and (
        health["calls"][0] >= policy.outage.min_calls
        and health["error_rate"][0] >= policy.outage.error_rate
    )
    entry = _state(paths, target, None) or {}
    route = entry.get("failover_route") or {}
    # The policy's order: a frozen type freezes, a human_only one goes to people, else backup.
    expected = {"frozen": "freeze", "human_only": "human_review"}.get(
        entry.get("state"), "backup_model"
    )
    found = seen and route.get("route") == expected
    why = (
        f"{provider} failing for {target.agent_type}: "
        + (
            f"{health['errors'][0]} of {health['calls'][0]} calls failed"
            if health.height
            else "no calls"
        )
        + f"; route {route.get('route')} ({route.get('reason')})"
    )
    if route.get("to"):
        why += f" -> {route['to']}"
    return _reaction(found, "autonomy_state (failover route)", f"route {route.get('route')}", 0,
                     _ledger(paths, injected).height, why)  # fmt: skip


def _check_context(paths: Paths, target: Target, injected: datetime) -> Reaction:
    findings = _rows(
        paths, "drift_findings",
        (pl.col("day") == target.day) & (pl.col("agent_type") == target.agent_type)
        & (pl.col("metric") == "context_defect_rate"),
    )  # fmt: skip
    alerts = _alerts(paths, "drift_finding", target)
    found = findings.height > 0 and alerts > 0
    why = findings["detail"][0] if findings.height else "no context_defect_rate finding"
    return _reaction(found, "drift_findings (context_defect_rate)", "none expected", alerts,
                     _ledger(paths, injected).height, why)  # fmt: skip


def _check_memory(paths: Paths, target: Target, injected: datetime) -> Reaction:
    findings = _rows(
        paths, "coordination_findings",
        (pl.col("day") == target.day) & (pl.col("kind") == "memory_conflict")
        & (pl.col("agent_type") == target.agent_type),
    )  # fmt: skip
    pair = set(target.agent_ids[:2])
    between = findings.filter(
        pl.col("agent_ids").map_elements(lambda ids: pair <= set(ids), return_dtype=pl.Boolean)
    )
    found = between.height > 0
    why = between["detail"][0] if found else f"no memory conflict between {sorted(pair)}"
    return _reaction(found, "coordination_findings (memory_conflict)", "none expected",
                     _alerts(paths, "coordination", target), _ledger(paths, injected).height,
                     why)  # fmt: skip


def _check_cost(paths: Paths, target: Target, injected: datetime) -> Reaction:
    breaches = _rows(
        paths, "budget_compliance",
        (pl.col("day") == target.day) & (pl.col("agent_type") == target.agent_type)
        & (pl.col("status") == "breach"),
    )  # fmt: skip
    state = (_state(paths, target, None) or {}).get("state")
    alerts = _alerts(paths, "budget", target)
    found = breaches.height > 0 and state in ("throttled", "sandboxed", "human_only", "frozen")
    changes = _ledger(paths, injected).filter(pl.col("kind") == "autonomy_change")
    why = breaches["detail"][0] if breaches.height else "no budget breach"
    return _reaction(found, "budget_compliance", f"{target.agent_type} {state}", alerts,
                     changes.height, why)  # fmt: skip


def _check_rogue(paths: Paths, target: Target, injected: datetime) -> Reaction:
    agent = target.agent_ids[0]
    violations = _rows(
        paths,
        "capability_violations",
        (pl.col("day") == target.day) & (pl.col("agent_id") == agent),
    )
    entry = _state(paths, target, agent) or {}
    restricted = entry.get("state") in ("sandboxed", "frozen") or "own state: sandboxed" in (
        entry.get("reason") or ""
    )
    entries = _ledger(paths, injected)
    found = violations.height > 0 and restricted
    why = (
        f"{violations.height} calls outside the registry; {agent} {entry.get('state')}"
        if violations.height else f"no capability violation of {agent}"
    )  # fmt: skip
    alerts = _alerts(paths, "capability_violation", target)
    return _reaction(found, "capability_violations", f"{agent} {entry.get('state')}", alerts,
                     entries.height, why)  # fmt: skip


SCENARIOS: Final[dict[str, Scenario]] = {
    s.name: s
    for s in (
        Scenario("broken_tool_api", "every call of the type's most used tool fails (HTTP 503)",
                 "a tool_error_rate drift finding for the type, alerted", _choose_tool,
                 _fail_tool, _check_tool),
        Scenario("provider_outage", "half of the type's LLM calls to its main provider fail",
                 "the outage is seen and the type's failover route follows failover.yaml: its "
                 "backup model (people when human_only)", _choose_provider,
                 _fail_provider, _check_provider),
        Scenario("corrupted_context", "one agent gets empty input context all day",
                 "a context_defect_rate drift finding, alerted",
                 lambda e, d, s, p: _agent_target(e, d, s), _garble, _check_context),
        Scenario("contradictory_memory", "two agents of a type write opposite values of a fact",
                 "a memory_conflict finding between the two agents", _choose_pair, _contradict,
                 _check_memory),
        Scenario("runaway_cost", "the type's LLM calls repeat until it spends twice its daily cap",
                 "a budget breach of the type, which is throttled", _choose_storm, _storm,
                 _check_cost),
        Scenario("rogue_agent", "one agent calls IAM, export and bucket-policy tools",
                 "capability violations, the agent sandboxed, alerted and in the ledger",
                 lambda e, d, s, p: _agent_target(e, d, s), _go_rogue, _check_rogue),
    )
}  # fmt: skip


def record_drill(paths: Paths, row: dict[str, Any]) -> None:
    """Append one drill's outcome to ``chaos_drills`` in the live lake."""
    frame = pl.DataFrame([row], schema=DRILL_SCHEMA)
    with lake.writer_lock(paths, CHAOS_DRILLS):
        lake.append(paths.table_uri(CHAOS_DRILLS), frame)


def drill_row(
    scenario: str, target: Target, started: datetime, injected: datetime, reaction: Reaction
) -> dict[str, Any]:
    finished = datetime.now(UTC)
    return {
        "drill_id": hashlib.sha256(f"{scenario}{started.isoformat()}".encode()).hexdigest()[:16],
        "scenario": scenario,
        "target": target.label,
        "started_at": started,
        "injected_at": injected,
        "finished_at": finished,
        "seconds_to_react": (finished - injected) / timedelta(seconds=1),
        "passed": reaction.passed,
        "detected_by": reaction.detected_by,
        "state_change": reaction.state_change,
        "alerts": reaction.alerts,
        "ledger_entries": reaction.ledger_entries,
        "detail": reaction.detail,
    }
