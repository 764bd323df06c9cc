"""What each console page shows, read from the Delta tables through the plain libraries.

Every function takes :class:`Paths` and returns plain dicts and lists for a template, so the
pages are tested without a browser. A table that does not exist yet reads as empty: a fresh
home renders every page with empty states, never an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import orjson
import polars as pl
from markupsafe import Markup

from agentops_assets.control.tables import AUTONOMY_HISTORY, AUTONOMY_STATE
from agentops_assets.drift.metrics import METRICS, format_value
from agentops_assets.drift.tables import (
    BEHAVIOR_ANOMALIES,
    BEHAVIOR_BASELINES,
    COORDINATION_FINDINGS,
    DRIFT_FINDINGS,
)
from agentops_assets.finops.compliance import STATUS_RANK
from agentops_assets.finops.tables import (
    AGENT_DAILY_METRICS,
    BUDGET_COMPLIANCE,
    REASONING_CYCLES,
)
from agentops_assets.governance.tables import POLICY_DECISIONS
from agentops_assets.service import charts
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.schema import AGENT_EVENTS

CHART_DAYS: Final = 30  # how many days the charts cover, ending on the reference day
OPEN_FINDING_DAYS: Final = 2  # a finding of the reference day or the day before is "open"
PAGE_SIZE: Final = 25  # review items per page
STATES: Final = ("normal", "throttled", "sandboxed", "human_only", "frozen")
OVERRIDE_STATES: Final = ("frozen", "human_only", "sandboxed", "throttled", "normal")
_ZONE_ORDER: Final = {"red": 0, "yellow": 1, "green": 2}
# Agent page charts: metric name, the agent_daily_metrics column of the agent's own daily
# value (used when drift has no per-agent baseline row), and how a value reads.
AGENT_CHARTS: Final = (
    ("confidence", "confidence_mean", charts.plain),
    ("success_rate", "success_rate", charts.percent),
    ("cost_per_cycle", "cost_per_cycle_usd", charts.usd),
    ("time_to_decision", "time_to_decision_p50_ms", charts.ms),
)


class NotFoundError(Exception):
    """The page's subject (an agent, a memory version) is not in this home."""


def _scan(paths: Paths, table: str) -> pl.LazyFrame | None:
    return lake.scan(paths.table_uri(table))


def _collect(paths: Paths, table: str, *filters: pl.Expr) -> pl.DataFrame:
    """The rows of ``table`` passing ``filters``, or an empty frame when it does not exist."""
    frame = _scan(paths, table)
    if frame is None:
        return pl.DataFrame()
    for condition in filters:
        frame = frame.filter(condition)
    return frame.collect()


def reference_day(paths: Paths) -> date | None:
    """The day the pages call "today": the last day with metrics, else the last evaluation of
    autonomy, else none (a fresh home). Data fed from the past is shown as of its last day."""
    for table in (AGENT_DAILY_METRICS, AUTONOMY_STATE):
        frame = _scan(paths, table)
        if frame is not None:
            last = frame.select(pl.col("day").max()).collect().item()
            if last is not None:
                return last
    return None


def _window(day: date | None, days: int = CHART_DAYS) -> list[date]:
    if day is None:
        return []
    return [day - timedelta(days=k) for k in range(days - 1, -1, -1)]


def _chart_days(paths: Paths, day: date | None) -> list[date]:
    """The days the charts cover: up to :data:`CHART_DAYS` ending on ``day``, starting no
    earlier than the first day with metrics (a young home gets no empty weeks)."""
    days = _window(day)
    frame = _scan(paths, AGENT_DAILY_METRICS)
    if not days or frame is None:
        return days
    first = frame.select(pl.col("day").filter(pl.col("day") >= days[0]).min()).collect().item()
    return [d for d in days if first is None or d >= first]


def _labels(days: Sequence[date]) -> list[str]:
    return [f"{d:%m-%d}" for d in days]


def _per_day(frame: pl.DataFrame, days: Sequence[date], column: str) -> list[float | None]:
    """``column`` of ``frame`` (one row per day) on each of ``days``; ``None`` where absent."""
    if frame.is_empty():
        return [None] * len(days)
    found = dict(zip(frame["day"].to_list(), frame[column].to_list(), strict=True))
    return [found.get(d) for d in days]


# --- fleet ----------------------------------------------------------------------------------


def fleet(paths: Paths) -> dict[str, Any]:
    """The fleet overview: types and agents with state, spend, drift, anomalies and reviews."""
    day = reference_day(paths)
    states = _collect(paths, AUTONOMY_STATE)
    metrics = _collect(
        paths,
        AGENT_DAILY_METRICS,
        *([pl.col("day").is_between(day - timedelta(days=13), day)] if day else []),
    )
    findings = _open_findings(paths, day)
    anomalies = _collect(paths, BEHAVIOR_ANOMALIES, *([pl.col("day") == day] if day else []))
    pending = _collect(paths, "review_queue", pl.col("state") == "pending")
    budgets = _day_budgets(paths, day)
    agents = _fleet_agents(states, metrics, findings, anomalies, pending, day)
    types = _fleet_types(states, agents, findings, budgets)
    counts = {s: sum(1 for a in agents if a["state"] == s) for s in STATES}
    return {
        "day": day,
        "agents": agents,
        "types": types,
        "state_counts": counts,
        "pending": pending.height,
        "pending_red": 0 if pending.is_empty() else pending.filter(pl.col("zone") == "red").height,
        "critical": 0
        if findings.is_empty()
        else findings.filter(pl.col("severity") == "critical").height,
        "findings": findings.height,
        "anomalies": anomalies.height,
        "spend": sum(a["spend"] or 0.0 for a in agents),
        "fleet_budgets": [b for b in budgets if b["agent_type"] is None],
        "evaluated_at": None if states.is_empty() else states["evaluated_at"].max(),
    }


def _open_findings(paths: Paths, day: date | None) -> pl.DataFrame:
    if day is None:
        return pl.DataFrame()
    first = day - timedelta(days=OPEN_FINDING_DAYS - 1)
    return _collect(paths, DRIFT_FINDINGS, pl.col("day").is_between(first, day))


def _day_budgets(paths: Paths, day: date | None) -> list[dict[str, Any]]:
    """The budgets with a daily cap on ``day``, worst first."""
    if day is None:
        return []
    rows = _collect(paths, BUDGET_COMPLIANCE, (pl.col("day") == day) & (pl.col("period") == "day"))
    if rows.is_empty():
        return []
    rows = rows.with_columns(rank=pl.col("status").replace_strict(STATUS_RANK, default=0))
    return rows.sort("rank", "pct_of_cap", descending=True).to_dicts()


def _fleet_agents(
    states: pl.DataFrame,
    metrics: pl.DataFrame,
    findings: pl.DataFrame,
    anomalies: pl.DataFrame,
    pending: pl.DataFrame,
    day: date | None,
) -> list[dict[str, Any]]:
    known: dict[str, dict[str, Any]] = {}
    if not states.is_empty():
        for row in states.filter(pl.col("agent_id").is_not_null()).iter_rows(named=True):
            known[row["agent_id"]] = {"agent_type": row["agent_type"], "row": row}
    if not metrics.is_empty():
        for agent_id, agent_type in metrics.select("agent_id", "agent_type").unique().iter_rows():
            known.setdefault(agent_id, {"agent_type": agent_type, "row": None})
    days = _window(day, 14)
    out = []
    for agent_id, info in sorted(known.items(), key=lambda kv: (kv[1]["agent_type"], kv[0])):
        own = metrics.filter(pl.col("agent_id") == agent_id) if not metrics.is_empty() else metrics
        today = own.filter(pl.col("day") == day) if not own.is_empty() else own
        row = info["row"] or {}
        out.append(
            {
                "agent_id": agent_id,
                "agent_type": info["agent_type"],
                "state": row.get("state", "normal"),
                "evaluated": bool(row),
                "reason": row.get("reason"),
                "until": row.get("until"),
                "override": row.get("override", False),
                "spend": today["cost_usd"][0] if today.height else None,
                "cycles": today["cycles"][0] if today.height else None,
                "success_rate": today["success_rate"][0] if today.height else None,
                "cost_trend": charts.sparkline(
                    _per_day(own.sort("day"), days, "cost_usd") if days else [],
                    title=f"{agent_id}: spend per day over 14 days",
                ),
                "findings": _count(findings, pl.col("agent_id") == agent_id),
                "anomalies": _count(anomalies, pl.col("agent_id") == agent_id),
                "pending": _count(pending, pl.col("agent_id") == agent_id),
            }
        )
    return out


def _fleet_types(
    states: pl.DataFrame,
    agents: list[dict[str, Any]],
    findings: pl.DataFrame,
    budgets: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    names = sorted({a["agent_type"] for a in agents} | _type_rows(states).keys())
    rows = _type_rows(states)
    out = []
    for name in names:
        mine = [a for a in agents if a["agent_type"] == name]
        budget = next((b for b in budgets if b["agent_type"] == name), None)
        row = rows.get(name, {})
        of_type = pl.col("agent_type") == name
        out.append(
            {
                "agent_type": name,
                "state": row.get("state", "normal"),
                "reason": row.get("reason"),
                "until": row.get("until"),
                "agents": len(mine),
                "restricted": sum(1 for a in mine if a["state"] != "normal"),
                "spend": sum(a["spend"] or 0.0 for a in mine),
                "budget": budget,
                "critical": _count(findings, of_type & (pl.col("severity") == "critical")),
                "warnings": _count(findings, of_type & (pl.col("severity") == "warning")),
            }
        )
    return out


def _type_rows(states: pl.DataFrame) -> dict[str, dict[str, Any]]:
    if states.is_empty():
        return {}
    rows = states.filter(pl.col("agent_id").is_null())
    return {row["agent_type"]: row for row in rows.iter_rows(named=True)}


def _count(frame: pl.DataFrame, condition: pl.Expr) -> int:
    return 0 if frame.is_empty() else frame.filter(condition).height


# --- reviews --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewFilter:
    """Which pending items the review page lists."""

    zone: str | None = None
    agent: str | None = None
    page: int = 0


def review_page(paths: Paths, wanted: ReviewFilter) -> dict[str, Any]:
    """Pending review items, red first then oldest, with the action document of each; and
    the last decided items."""
    from agentops_assets.governance.review import reviews

    queue = reviews(paths)
    pending = queue.filter(pl.col("state") == "pending")
    shown = pending
    if wanted.zone:
        shown = shown.filter(pl.col("zone") == wanted.zone)
    if wanted.agent:
        shown = shown.filter(pl.col("agent_id") == wanted.agent)
    shown = shown.with_columns(
        order=pl.col("zone").replace_strict(_ZONE_ORDER, default=3, return_dtype=pl.Int8)
    ).sort("order", "created_at", "review_id")
    total = shown.height
    start = wanted.page * PAGE_SIZE
    page = shown.slice(start, PAGE_SIZE).drop("order")
    documents = _action_documents(paths, page["decision_id"].to_list())
    items = [item | {"document": documents.get(item["decision_id"])} for item in page.to_dicts()]
    decided = queue.filter(pl.col("state") != "pending").sort("decided_at", descending=True)
    return {
        "items": items,
        "total": total,
        "pending": pending.height,
        "zones": dict(pending.group_by("zone").len().iter_rows()) if pending.height else {},
        "page": wanted.page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "filter": wanted,
        "decided": decided.head(15).to_dicts(),
    }


def _action_documents(paths: Paths, decision_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The action document (``input`` of ``policy_decisions``) of each decision id found."""
    ids = [d for d in decision_ids if d]
    frame = _scan(paths, POLICY_DECISIONS)
    if not ids or frame is None:
        return {}
    rows = frame.filter(pl.col("decision_id").is_in(ids)).select("decision_id", "input").collect()
    out = {}
    for decision_id, text in rows.iter_rows():
        try:
            document = orjson.loads(text or "{}")
        except orjson.JSONDecodeError:
            continue
        if isinstance(document, dict):
            out[decision_id] = _document_summary(document)
    return out


def _document_summary(document: dict[str, Any]) -> dict[str, Any]:
    """The fields a reviewer weighs first, and the whole document as indented JSON."""
    keys = ("kind", "target", "amount_usd", "data_zone", "status", "outcome", "confidence")
    return {
        "fields": {k: document[k] for k in keys if document.get(k) not in (None, "")},
        "json": orjson.dumps(document, option=orjson.OPT_INDENT_2).decode(),
    }


# --- agent ----------------------------------------------------------------------------------


def agent_page(paths: Paths, agent_id: str) -> dict[str, Any]:
    """One agent: state and overrides, recent cycles, metrics against baseline, memory.

    Raises:
        NotFoundError: The agent is in no table of this home.
    """
    state = _collect(paths, AUTONOMY_STATE, pl.col("agent_id") == agent_id)
    cycles = _recent_cycles(paths, agent_id)
    agent_type = _agent_type(paths, agent_id, state, cycles)
    memory = _memory(paths, agent_id)
    if agent_type is None and not memory["log"]:
        raise NotFoundError(f"no agent {agent_id!r} in this home's telemetry, states or memory.")
    day = reference_day(paths)
    type_state = (
        _collect(
            paths,
            AUTONOMY_STATE,
            (pl.col("agent_type") == agent_type) & pl.col("agent_id").is_null(),
        )
        if agent_type
        else pl.DataFrame()
    )
    return {
        "agent_id": agent_id,
        "agent_type": agent_type,
        "day": day,
        "state": state.row(0, named=True) if state.height else None,
        "type_state": type_state.row(0, named=True) if type_state.height else None,
        "history": _state_history(paths, agent_id),
        "cycles": cycles,
        "charts": _agent_charts(paths, agent_id, agent_type, day),
        "memory": memory,
        "override_states": OVERRIDE_STATES,
    }


def _agent_type(
    paths: Paths, agent_id: str, state: pl.DataFrame, cycles: list[dict[str, Any]]
) -> str | None:
    if state.height:
        return state["agent_type"][0]
    if cycles:
        return cycles[0]["agent_type"]
    events = _scan(paths, AGENT_EVENTS)
    if events is None:
        return None
    found = events.filter(pl.col("agent_id") == agent_id).select("agent_type").head(1).collect()
    return found["agent_type"][0] if found.height else None


def _recent_cycles(paths: Paths, agent_id: str, limit: int = 12) -> list[dict[str, Any]]:
    frame = _scan(paths, REASONING_CYCLES)
    if frame is None:
        return []
    return (
        frame.filter(pl.col("agent_id") == agent_id)
        .sort("started_at", descending=True)
        .head(limit)
        .collect()
        .to_dicts()
    )


def _state_history(paths: Paths, agent_id: str, limit: int = 10) -> list[dict[str, Any]]:
    frame = _collect(paths, AUTONOMY_HISTORY, pl.col("agent_id") == agent_id)
    if frame.is_empty():
        return []
    return frame.sort("changed_at", descending=True).head(limit).to_dicts()


def _agent_charts(
    paths: Paths, agent_id: str, agent_type: str | None, day: date | None
) -> list[Markup]:
    """Per metric the agent's daily value against its baseline band (its own baseline when
    drift keeps one per agent, else its type's)."""
    days = _chart_days(paths, day)
    if not days or agent_type is None:
        return []
    in_window = pl.col("day").is_between(days[0], days[-1])
    daily = _collect(paths, AGENT_DAILY_METRICS, in_window & (pl.col("agent_id") == agent_id))
    baselines = _collect(
        paths,
        BEHAVIOR_BASELINES,
        in_window
        & (pl.col("agent_type") == agent_type)
        & (pl.col("agent_id").is_null() | (pl.col("agent_id") == agent_id)),
    )
    out = []
    for metric, column, fmt in AGENT_CHARTS:
        own = _baseline_rows(baselines, metric, agent_id)
        scope = "its own baseline"
        if own.is_empty():
            own = _baseline_rows(baselines, metric, None)
            scope = f"the {agent_type} baseline"
        values = (
            _per_day(daily.sort("day"), days, column)
            if not daily.is_empty()
            else [None] * len(days)
        )
        if scope == "its own baseline":
            values = _per_day(own, days, "current_value")
        band, line = _band(own, days, metric)
        title = f"{metric}: {METRICS[metric].description}, per day, against {scope}"
        chart = charts.line_chart(
            _labels(days),
            values,
            title=title,
            band=band,
            baseline=line,
            fmt=fmt,
            ceiling=_ceiling(metric),
        )
        caption = (
            f"<strong>{_e(metric.replace('_', ' '))}</strong> · "
            f"{_e(METRICS[metric].description)} · against {_e(scope)}"
        )
        out.append(Markup(f"<figure><figcaption>{caption}</figcaption>{chart}</figure>"))
    return out


def _baseline_rows(baselines: pl.DataFrame, metric: str, agent_id: str | None) -> pl.DataFrame:
    if baselines.is_empty():
        return baselines
    scope = pl.col("agent_id").is_null() if agent_id is None else pl.col("agent_id") == agent_id
    return baselines.filter((pl.col("metric") == metric) & scope).sort("day")


def _band(
    rows: pl.DataFrame, days: Sequence[date], metric: str
) -> tuple[list[tuple[float | None, float | None]] | None, list[float | None] | None]:
    """The baseline line per day and the band around it that drift would not flag: a shift
    below the metric's default warning effect size (half a spread of a continuous metric,
    Cohen's h of 0.3 for a rate)."""
    if rows.is_empty():
        return None, None
    line = _per_day(rows, days, "baseline_value")
    effect = float(METRICS[metric].default_rule.get("warning", 0.5))  # type: ignore[arg-type]
    if METRICS[metric].kind == "rate":
        return [_rate_band(v, effect) for v in line], line
    spread = _per_day(rows, days, "baseline_spread")
    band = [
        (v - effect * s, v + effect * s) if v is not None and s is not None else (None, None)
        for v, s in zip(line, spread, strict=True)
    ]
    return band, line


def _rate_band(rate: float | None, h: float) -> tuple[float | None, float | None]:
    """The rates within Cohen's ``h`` of ``rate`` (h = 2 asin sqrt p2 - 2 asin sqrt p1)."""
    if rate is None:
        return None, None
    angle = math.asin(math.sqrt(min(1.0, max(0.0, rate))))
    low = math.sin(max(0.0, angle - h / 2)) ** 2
    high = math.sin(min(math.pi / 2, angle + h / 2)) ** 2
    return low, high


def _memory(paths: Paths, agent_id: str) -> dict[str, Any]:
    """The agent's memory log (newest first) and its facts now."""
    from memory import TABLE_NAME, MemoryStore, MemoryStoreError

    store = MemoryStore(paths.table_uri(TABLE_NAME))
    try:
        log = store.log(agent_id, limit=20)
        facts = store.as_of(agent_id)
    except MemoryStoreError:
        return {"log": [], "facts": [], "head": store.version()}
    return {"log": log, "facts": facts, "head": store.version()}


def memory_diff(paths: Paths, agent_id: str, version: int) -> dict[str, Any]:
    """What memory version ``version`` changed in the agent's facts (from the version before).

    Raises:
        NotFoundError: No such agent or version.
    """
    from memory import TABLE_NAME, MemoryStore, MemoryStoreError

    store = MemoryStore(paths.table_uri(TABLE_NAME))
    try:
        diff = store.diff(agent_id, max(0, version - 1), version)
    except (MemoryStoreError, ValueError) as error:
        raise NotFoundError(str(error)) from None
    return {"agent_id": agent_id, "version": version, "diff": diff}


# --- budgets --------------------------------------------------------------------------------


def budgets_page(paths: Paths) -> dict[str, Any]:
    """Spend per day against the daily caps, month to date against the monthly caps."""
    day = reference_day(paths)
    days = _chart_days(paths, day)
    if not days:
        return {"day": None, "daily": [], "monthly": [], "findings": [], "fleet_chart": None}
    rows = _collect(paths, BUDGET_COMPLIANCE, pl.col("day").is_between(days[0], days[-1]))
    spend = _collect(paths, AGENT_DAILY_METRICS, pl.col("day").is_between(days[0], days[-1]))
    fleet_chart = None
    if not spend.is_empty():
        per_day = spend.group_by("day").agg(pl.col("cost_usd").sum()).sort("day")
        fleet_chart = charts.bar_chart(
            _labels(days),
            _per_day(per_day, days, "cost_usd"),
            title="Whole fleet: spend per day (US$)",
            fmt=charts.usd,
            width=1100,
            height=200,
        )
    daily, monthly, findings = [], [], []
    if not rows.is_empty():
        daily = _budget_charts(rows.filter(pl.col("period") == "day"), days)
        last = rows.filter((pl.col("day") == day) & (pl.col("period") == "month"))
        monthly = last.sort("pct_of_cap", descending=True).to_dicts()
        findings = (
            rows.filter(pl.col("status") != "ok")
            .sort("day", "pct_of_cap", descending=True)
            .head(40)
            .to_dicts()
        )
    return {
        "day": day,
        "first": days[0],
        "daily": daily,
        "monthly": monthly,
        "findings": findings,
        "fleet_chart": fleet_chart,
    }


def _budget_charts(rows: pl.DataFrame, days: Sequence[date]) -> list[dict[str, Any]]:
    """One chart per daily budget: that day's spend (not the month's) against the cap."""
    out = []
    for (budget_id,), own in rows.sort("day").group_by(["budget_id"], maintain_order=True):
        last = own.row(own.height - 1, named=True)
        status = dict(zip(own["day"].to_list(), own["status"].to_list(), strict=True))
        chart = charts.bar_chart(
            _labels(days),
            _per_day(own, days, "spend_usd"),
            title=f"{budget_id}: spend per day against its daily cap",
            cap=last["cap_usd"],
            cap_label="daily cap",
            statuses=[status.get(d, "ok") for d in days],
            fmt=charts.usd,
        )
        breaches = own.filter(pl.col("status") == "breach").height
        out.append({"budget": last, "chart": chart, "breaches": breaches})
    return sorted(out, key=lambda b: (-b["breaches"], b["budget"]["budget_id"]))


# --- drift ----------------------------------------------------------------------------------


def drift_page(paths: Paths) -> dict[str, Any]:
    """Findings and anomalies per day, the drifting metrics against their baselines, tables."""
    day = reference_day(paths)
    days = _chart_days(paths, day)
    if not days:
        return {"day": None, "findings": [], "anomalies": [], "coordination": [], "charts": []}
    span = pl.col("day").is_between(days[0], days[-1])
    findings = _collect(paths, DRIFT_FINDINGS, span)
    anomalies = _collect(paths, BEHAVIOR_ANOMALIES, span)
    coordination = _collect(paths, COORDINATION_FINDINGS, span)
    per_day = _findings_per_day(findings, days)
    anomaly_counts = (
        anomalies.group_by("day").len().rename({"len": "count"}) if anomalies.height else anomalies
    )
    return {
        "day": day,
        "first": days[0],
        "findings_chart": charts.stacked_bars(
            _labels(days),
            per_day,
            title="Drift findings per day, by severity",
        ),
        "anomalies_chart": charts.bar_chart(
            _labels(days),
            [v or 0 for v in _per_day(anomaly_counts, days, "count")],
            title="Anomalous reasoning cycles per day",
            statuses=["warning"] * len(days),
        ),
        "charts": _drift_charts(paths, findings, days),
        "findings": _finding_rows(findings),
        "anomalies": anomalies.sort("score", descending=True).head(25).to_dicts()
        if anomalies.height
        else [],
        "coordination": coordination.sort("day", descending=True).head(25).to_dicts()
        if coordination.height
        else [],
    }


def _findings_per_day(findings: pl.DataFrame, days: Sequence[date]) -> list[charts.Stack]:
    counts: dict[tuple[date, str], int] = {}
    if findings.height:
        counts = {(d, s): n for d, s, n in findings.group_by("day", "severity").len().iter_rows()}
    return [
        charts.Stack("warning", "warn", [counts.get((d, "warning"), 0) for d in days]),
        charts.Stack("critical", "bad", [counts.get((d, "critical"), 0) for d in days]),
    ]


def _finding_rows(findings: pl.DataFrame) -> list[dict[str, Any]]:
    if findings.is_empty():
        return []
    ranked = findings.with_columns(critical=pl.col("severity") == "critical").sort(
        "day", "critical", "effect_size", descending=True, nulls_last=True
    )
    out = []
    for row in ranked.head(60).iter_rows(named=True):
        known = row["metric"] in METRICS
        show = (lambda v, m=row["metric"]: format_value(m, v)) if known else charts.plain
        out.append(
            row
            | {
                "baseline_text": show(row["baseline_value"]),
                "current_text": show(row["current_value"]),
            }
        )
    return out


def _drift_charts(paths: Paths, findings: pl.DataFrame, days: Sequence[date]) -> list[Markup]:
    """The type-wide metrics with findings in the window, each against its baseline band."""
    if findings.is_empty():
        return []
    pairs = (
        findings.filter(pl.col("agent_id").is_null() & pl.col("metric").is_in(list(METRICS)))
        .group_by("agent_type", "metric")
        .agg(pl.col("effect_size").abs().max().alias("worst"))
        .sort("worst", "agent_type", "metric", descending=[True, False, False])
        .head(6)
    )
    if pairs.is_empty():
        return []
    baselines = _collect(
        paths,
        BEHAVIOR_BASELINES,
        pl.col("day").is_between(days[0], days[-1]) & pl.col("agent_id").is_null(),
    )
    out = []
    for agent_type, metric, _ in pairs.iter_rows():
        rows = (
            baselines.filter(
                (pl.col("agent_type") == agent_type) & (pl.col("metric") == metric)
            ).sort("day")
            if baselines.height
            else baselines
        )
        band, line = _band(rows, days, metric)
        fmt = _formatter(metric)
        title = f"{agent_type}: {METRICS[metric].description} per day, against its baseline"
        chart = charts.line_chart(
            _labels(days),
            _per_day(rows, days, "current_value"),
            title=title,
            band=band,
            baseline=line,
            fmt=fmt,
            ceiling=_ceiling(metric),
        )
        out.append(
            Markup(
                f"<figure><figcaption>{_e(agent_type)} · {_e(metric)}</figcaption>{chart}</figure>"
            )
        )
    return out


def _ceiling(metric: str) -> float | None:
    return 1.0 if METRICS[metric].kind == "rate" else None


def _formatter(metric: str) -> charts.Formatter:
    unit = METRICS[metric].unit
    return {"percent": charts.percent, "usd": charts.usd, "ms": charts.ms}.get(unit, charts.plain)


def _e(text: object) -> Markup:
    return Markup.escape(str(text))


# --- trace ----------------------------------------------------------------------------------


def agent_type_of(paths: Paths, agent_id: str) -> str | None:
    """The type of ``agent_id`` from its autonomy state, its cycles or its events."""
    state = _collect(paths, AUTONOMY_STATE, pl.col("agent_id") == agent_id)
    return _agent_type(paths, agent_id, state, _recent_cycles(paths, agent_id, limit=1))


def trace_view(found: Any) -> dict[str, Any]:
    """A :class:`~agentops_assets.governance.trace.Trace` as rows for the trace page: each
    step with the policy decision on it, then reviews, ledger entries and memory commits."""
    decisions = found.decisions
    by_event = (
        {row["event_id"]: row for row in decisions.iter_rows(named=True)}
        if decisions.height
        else {}
    )
    steps = [
        row | {"decision": by_event.get(row["event_id"])}
        for row in found.steps.iter_rows(named=True)
    ]
    ledger = [
        row | {"payload_text": _pretty(row["payload"])}
        for row in found.ledger.iter_rows(named=True)
    ]
    agents = sorted({s["agent_id"] for s in steps if s["agent_id"]})
    return {
        "trace_id": found.trace_id,
        "asked": found.asked,
        "agents": agents,
        "steps": steps,
        "decisions": decisions.to_dicts() if decisions.height else [],
        "reviews": found.reviews.to_dicts(),
        "ledger": ledger,
        "memory": found.memory.to_dicts(),
        "flagged": sum(1 for d in by_event.values() if d["zone"] != "green"),
    }


def _pretty(payload: str | None) -> str:
    try:
        return orjson.dumps(orjson.loads(payload or "{}"), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return payload or ""
