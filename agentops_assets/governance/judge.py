"""Judge past agent actions with the policies, as OPA decision logs.

Every ``tool_call`` and ``decision`` event of ``agent_events`` becomes one action document::

    {"event_id", "trace_id", "ts", "agent_id", "agent_type", "kind", "action", "target",
     "amount_usd", "data_zone", "status", "outcome", "confidence",
     "context": {"capabilities": {...} | null, "budget": {"status"}, "drift": [...]}}

``amount_usd`` and ``data_zone`` come from the event's attributes (``amount_usd`` or
``agentops.amount_usd``, ``data_zone`` or ``agentops.data_zone``) when the producer sent them.
The context is what was known about the agent on that day: its type's capability entry, the
type's worst budget status of the day, and the drift findings on its type (or on it) of that day
and the day before. Under ``data.stats[action]`` the policies see the action's record over the
30 days before the day: ``count``, ``failure_rate`` (error status or failure outcome) and
``override_rate`` (share of its reasoning cycles a human overrode).

Identical documents are evaluated once: only the fields the policies read
(:attr:`PolicyBundle.input_fields`) and the day (whose statistics differ) tell documents apart.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import polars as pl

from agentops_assets.drift.tables import DRIFT_FINDINGS
from agentops_assets.finops.compliance import STATUS_RANK
from agentops_assets.finops.tables import BUDGET_COMPLIANCE
from agentops_assets.governance.capabilities import (
    CAPABILITIES_FILE,
    CapabilityRegistry,
    load_capabilities,
)
from agentops_assets.governance.engine import Decision, PolicyBundle, default_policy_folder
from agentops_assets.governance.tables import (
    BUNDLE_NAME,
    DECISION_PATH,
    DECISION_SCHEMA,
    SOURCE_EVENTS,
)
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.storage.policy_file import PolicyFileError
from agentops_assets.telemetry.schema import AGENT_EVENTS, EVENT_SCHEMA

ACTION_KINDS: Final = ("tool_call", "decision")
STATS_WINDOW_DAYS: Final = 30
DRIFT_DAYS: Final = 2  # findings of the day and the day before count as open
EVALUATION_THREADS: Final = 4  # at most this many bundles judge at once (one per core)
PARALLEL_FROM: Final = 2000  # distinct documents from which judging uses several cores
_DECISION_IDS: Final = uuid.UUID("5b0c1f3e-8f39-4c53-9b7e-0a6f2d1c9e41")

# Action-document fields and the columns of the actions frame they come from.
_DOCUMENT_COLUMNS: Final = {
    "event_id": "event_id",
    "trace_id": "trace_id",
    "ts": "ts",
    "agent_id": "agent_id",
    "agent_type": "agent_type",
    "kind": "kind",
    "action": "action",
    "target": "action_target",
    "amount_usd": "amount_usd",
    "data_zone": "data_zone",
    "status": "status",
    "outcome": "outcome",
    "confidence": "confidence",
}
# What the document's context is built from (the capability entry follows agent_type).
_CONTEXT_COLUMNS: Final = ("agent_type", "budget_status", "drift")


@dataclass(frozen=True)
class Policies:
    """A policy folder ready to judge: the compiled bundle and the capability registry.

    ``revision`` hashes every ``*.rego`` file and the registry. ``registry`` is ``None`` when
    the registry cannot be read; the bundle then denies everything with that reason.
    """

    folder: Path
    bundle: PolicyBundle
    registry: CapabilityRegistry | None
    registry_file: Path
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of its content

    @property
    def revision(self) -> str:
        return self.bundle.revision


def policy_folder(paths: Paths) -> Path:
    """The folder whose ``*.rego`` files are in force: the configured one when it holds any,
    else the shipped defaults."""
    configured = paths.policies
    if configured.is_dir() and any(configured.glob("*.rego")):
        return configured
    return default_policy_folder()


def load_policies(paths: Paths, folder: Path | None = None) -> Policies:
    """The policies in force, or those of ``folder`` (a candidate for a back-test).

    The capability registry is ``folder``'s own ``capabilities.yaml`` when it has one, else the
    one in force. Never raises for bad policies: a folder that does not compile or a registry
    that does not validate gives a bundle that denies every action and says why.
    """
    rego_folder = folder if folder is not None else policy_folder(paths)
    registry_file = (
        folder / CAPABILITIES_FILE
        if folder is not None and (folder / CAPABILITIES_FILE).exists()
        else paths.policy_file(CAPABILITIES_FILE)
    )
    try:
        registry_text = registry_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        registry_text = f"unreadable: {error}"
    bundle = PolicyBundle.load(
        rego_folder, on_error="deny", revision_files={CAPABILITIES_FILE: registry_text}
    )
    registry: CapabilityRegistry | None = None
    try:
        registry = load_capabilities(registry_file)
    except PolicyFileError as error:
        if bundle.load_error is None:
            bundle = PolicyBundle(
                bundle.sources,
                load_error=f"the capability registry is invalid: {error}".rstrip("."),
                revision=bundle.revision,
            )
    files = {CAPABILITIES_FILE: registry_text, **bundle.sources}
    return Policies(
        folder=rego_folder,
        bundle=bundle,
        registry=registry,
        registry_file=registry_file,
        files={name: hashlib.sha256(text.encode()).hexdigest() for name, text in files.items()},
    )


def read_actions(paths: Paths, first: date, last: date) -> pl.DataFrame:
    """The ``tool_call`` and ``decision`` events of ``[first, last]``, one row each, with
    ``day``, ``amount_usd`` and ``data_zone`` read from the attributes."""
    events = lake.scan(paths.table_uri(AGENT_EVENTS))
    columns = [
        "event_date", "ts", "event_id", "trace_id", "agent_id", "agent_type", "kind", "action",
        "action_target", "status", "outcome", "confidence", "attributes",
    ]  # fmt: skip
    if events is None:
        events = pl.LazyFrame(schema={name: EVENT_SCHEMA[name] for name in columns})
    attributes = pl.col("attributes")

    def attribute(*keys: str) -> pl.Expr:
        return pl.coalesce(attributes.str.json_path_match(f"$['{key}']") for key in keys)

    return (
        events.filter(
            pl.col("event_date").is_between(first, last) & pl.col("kind").is_in(ACTION_KINDS)
        )
        .select(
            pl.col("event_date").alias("day"),
            *columns[1:-1],
            attribute("amount_usd", "agentops.amount_usd")
            .cast(pl.Float64, strict=False)
            .alias("amount_usd"),
            attribute("data_zone", "agentops.data_zone").alias("data_zone"),
        )
        .collect()
    )


def action_stats(paths: Paths, first: date, last: date) -> pl.DataFrame:
    """Per day of ``[first, last]`` and action: ``count``, ``failure_rate`` and
    ``override_rate`` over the :data:`STATS_WINDOW_DAYS` days before the day."""
    schema = {
        "day": pl.Date(),
        "action": pl.String(),
        "count": pl.Int64(),
        "failure_rate": pl.Float64(),
        "override_rate": pl.Float64(),
    }
    events = lake.scan(paths.table_uri(AGENT_EVENTS))
    if events is None:
        return pl.DataFrame(schema=schema)
    start = first - timedelta(days=STATS_WINDOW_DAYS)
    in_window = events.filter(pl.col("event_date").is_between(start, last))
    overridden = (
        in_window.filter(
            (pl.col("kind") == "human_review") & (pl.col("feedback_kind") == "override")
        )
        .select("trace_id")
        .unique()
        .with_columns(pl.lit(True).alias("overridden"))
    )
    daily = (
        in_window.filter(
            pl.col("kind").is_in(ACTION_KINDS)
            & (pl.col("event_date") < last)
            & pl.col("action").is_not_null()
        )
        .select("event_date", "trace_id", "action", "status", "outcome")
        .join(overridden, on="trace_id", how="left")
        .group_by("event_date", "action")
        .agg(
            pl.len().alias("count"),
            ((pl.col("status") == "error") | (pl.col("outcome") == "failure"))
            .sum()
            .alias("failures"),
            pl.col("overridden").fill_null(False).sum().alias("overrides"),
        )
    )
    days = pl.LazyFrame({"day": pl.date_range(first, last, eager=True)})
    return (
        days.join(daily, how="cross")
        .filter(
            (pl.col("event_date") < pl.col("day"))
            & (pl.col("event_date") >= pl.col("day") - timedelta(days=STATS_WINDOW_DAYS))
        )
        .group_by("day", "action")
        .agg(pl.col("count").sum(), pl.col("failures").sum(), pl.col("overrides").sum())
        .select(
            "day",
            "action",
            pl.col("count").cast(pl.Int64),
            (pl.col("failures") / pl.col("count")).alias("failure_rate"),
            (pl.col("overrides") / pl.col("count")).alias("override_rate"),
        )
        .sort("day", "action")
        .collect()
        .cast(schema)  # type: ignore[arg-type]
    )


def with_context(paths: Paths, actions: pl.DataFrame) -> pl.DataFrame:
    """``actions`` with ``budget_status`` (the type's worst of the day, fleet-wide budgets
    included) and ``drift`` (the open findings on the type or the agent, canonical JSON)."""
    if actions.is_empty():
        return actions.with_columns(
            pl.lit(None, pl.String).alias("budget_status"), pl.lit("[]").alias("drift")
        )
    first, last = actions["day"].min(), actions["day"].max()
    return _with_drift(paths, _with_budget(paths, actions, first, last), first, last)


def _with_budget(paths: Paths, actions: pl.DataFrame, first: date, last: date) -> pl.DataFrame:
    compliance = lake.scan(paths.table_uri(BUDGET_COMPLIANCE))
    if compliance is None:
        return actions.with_columns(pl.lit(None, pl.String).alias("budget_status"))
    ranked = (
        compliance.filter(pl.col("day").is_between(first, last))
        .select("day", "agent_type", pl.col("status").replace_strict(STATUS_RANK, default=0))
        .collect()
    )
    by_type = ranked.filter(pl.col("agent_type").is_not_null()).group_by("day", "agent_type")
    fleet = ranked.filter(pl.col("agent_type").is_null()).group_by("day")
    names = {rank: name for name, rank in STATUS_RANK.items()}
    return (
        actions.join(
            by_type.agg(pl.col("status").max().alias("type_rank")),
            on=["day", "agent_type"],
            how="left",
        )
        .join(fleet.agg(pl.col("status").max().alias("fleet_rank")), on="day", how="left")
        .with_columns(
            pl.max_horizontal("type_rank", "fleet_rank")
            .replace_strict(names, default=None, return_dtype=pl.String)
            .alias("budget_status")
        )
        .drop("type_rank", "fleet_rank")
    )


def _with_drift(paths: Paths, actions: pl.DataFrame, first: date, last: date) -> pl.DataFrame:
    findings = lake.scan(paths.table_uri(DRIFT_FINDINGS))
    found: dict[tuple[date, str], list[tuple[str | None, dict[str, str]]]] = {}
    if findings is not None:
        rows = (
            findings.filter(pl.col("day").is_between(first - timedelta(days=DRIFT_DAYS - 1), last))
            .select("day", "agent_type", "agent_id", "metric", "severity")
            .sort("day", "agent_type", "metric", "agent_id", nulls_last=False)
            .collect()
        )
        for row in rows.iter_rows(named=True):
            for offset in range(DRIFT_DAYS):
                day = row["day"] + timedelta(days=offset)
                finding = {
                    "day": row["day"].isoformat(),
                    "metric": row["metric"],
                    "severity": row["severity"],
                    "agent_id": row["agent_id"],
                    "status": "open",
                }
                found.setdefault((day, row["agent_type"]), []).append((row["agent_id"], finding))
    combos = actions.select("day", "agent_type", "agent_id").unique()
    drift = [
        orjson.dumps(
            [f for agent, f in found.get((day, agent_type), []) if agent in (None, agent_id)]
        ).decode()
        for day, agent_type, agent_id in combos.iter_rows()
    ]
    return actions.join(
        combos.with_columns(pl.Series("drift", drift, dtype=pl.String)),
        on=["day", "agent_type", "agent_id"],
        how="left",
        nulls_equal=True,
    )


def action_document(row: dict[str, Any], registry: CapabilityRegistry | None) -> dict[str, Any]:
    """The input document of one row of an actions frame (see the module docstring)."""
    document: dict[str, Any] = {}
    for name, column in _DOCUMENT_COLUMNS.items():
        value = row.get(column)
        if value is None:
            continue
        document[name] = _instant(value) if isinstance(value, datetime) else value
    entry = registry.entry(row.get("agent_type")) if registry is not None else None
    context: dict[str, Any] = {
        "capabilities": None
        if entry is None
        else {
            "tools": list(entry.tools),
            "read_only": list(entry.read_only),
            "data_zones": list(entry.data_zones),
            "max_amount_usd": entry.max_amount_usd,
        },
        "drift": orjson.loads(row.get("drift") or "[]"),
    }
    if row.get("budget_status") is not None:
        context["budget"] = {"status": row["budget_status"]}
    document["context"] = context
    return document


def judge(
    policies: Policies,
    actions: pl.DataFrame,
    stats: pl.DataFrame,
    *,
    documents: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> pl.DataFrame:
    """Decide every row of ``actions`` (from :func:`read_actions` and :func:`with_context`).

    Rows that agree on the day and on every document field the policies read are one
    evaluation. With ``documents`` the full action and decision documents are kept as JSON
    (``input``, ``result``), as the ``policy_decisions`` table stores them; a back-test leaves
    them out.

    Returns:
        One row per action in :data:`DECISION_SCHEMA` (``input`` and ``result`` null without
        ``documents``), in the order of ``actions``; :func:`evaluations` says how many
        evaluations that took.
    """
    bundle = policies.bundle
    key = _key_columns(bundle.input_fields)
    indexed = actions.with_row_index("_row")
    # Day by day: each day's statistics compile into their own interpreter.
    distinct = indexed.unique(subset=key, keep="first", maintain_order=True).sort("day")
    stats_by_day = _stats_documents(stats)
    decided = _evaluate_all(policies, distinct.rows(named=True), stats_by_day, progress)
    verdicts = distinct.select(key).with_columns(
        pl.Series("decision", [d.decision for d in decided], dtype=pl.String),
        pl.Series("zone", [d.zone for d in decided], dtype=pl.String),
        pl.Series("reasons", [list(d.reasons) for d in decided], dtype=pl.List(pl.String)),
        pl.Series("rules", [list(d.rules) for d in decided], dtype=pl.List(pl.String)),
        pl.Series(
            "approvals_required",
            [int(d.obligations.get("approvals", 0) or 0) for d in decided],
            dtype=pl.Int32,
        ),
        pl.Series("sample_rate", [_sample_rate(d) for d in decided], dtype=pl.Float64),
        pl.Series("error", [d.error for d in decided], dtype=pl.String),
        pl.Series("_result", [_result_json(d) for d in decided], dtype=pl.String),
    )
    joined = indexed.join(verdicts, on=key, how="left", nulls_equal=True).sort("_row")
    revision = bundle.revision
    now = datetime.now(UTC)
    inputs: list[str | None] = (
        [
            orjson.dumps(action_document(row, policies.registry)).decode()
            for row in joined.iter_rows(named=True)
        ]
        if documents
        else [None] * joined.height
    )
    ids = (
        pl.Series("decision_id", [decision_id(e, revision) for e in joined["event_id"]])
        if documents
        else pl.lit(None, pl.String).alias("decision_id")  # a back-test keeps no log
    )
    frame = joined.select(
        "day",
        ids,
        pl.lit(DECISION_PATH).alias("path"),
        pl.Series("input", inputs, dtype=pl.String),
        (pl.col("_result") if documents else pl.lit(None, pl.String)).alias("result"),
        pl.lit(orjson.dumps({BUNDLE_NAME: {"revision": revision}}).decode()).alias("bundles"),
        pl.col("ts").alias("timestamp"),
        pl.lit(revision).alias("revision"),
        "event_id",
        "trace_id",
        "agent_id",
        "agent_type",
        "kind",
        "action",
        "decision",
        "zone",
        "reasons",
        "rules",
        "approvals_required",
        "sample_rate",
        "error",
        pl.lit(now).alias("judged_at"),
        pl.lit(SOURCE_EVENTS).alias("source"),
    )
    return frame.cast(dict(DECISION_SCHEMA))  # type: ignore[arg-type]


def _evaluate_all(
    policies: Policies,
    rows: list[dict[str, Any]],
    stats_by_day: dict[date, dict[str, dict[str, Any]]],
    progress: Callable[[int, int], None] | None,
) -> list[Decision]:
    """Each row's decision, in order. Many rows are split into contiguous runs of days, one
    per core, each judged by its own copy of the bundle: rego-cpp evaluates on the bundles'
    worker threads without holding the GIL."""
    workers = min(EVALUATION_THREADS, os.cpu_count() or 1) if len(rows) >= PARALLEL_FROM else 1
    total = len(rows)
    chunks = [rows[i * total // workers : (i + 1) * total // workers] for i in range(workers)]
    bundles = [policies.bundle, *(policies.bundle.copy() for _ in range(workers - 1))]
    counted = [0]
    lock = threading.Lock()

    def run(bundle: PolicyBundle, chunk: list[dict[str, Any]]) -> list[Decision]:
        found = []
        for row in chunk:
            data = {"stats": stats_by_day.get(row["day"], {})}
            found.append(bundle.evaluate(action_document(row, policies.registry), data))
            if progress is not None:
                with lock:
                    counted[0] += 1
                    if counted[0] % 1000 == 0 or counted[0] == total:
                        progress(counted[0], total)
        return found

    try:
        if workers == 1:
            return run(bundles[0], chunks[0])
        with ThreadPoolExecutor(workers, thread_name_prefix="judge") as pool:
            parts = list(pool.map(run, bundles, chunks))
        return [decision for part in parts for decision in part]
    finally:
        for copy in bundles[1:]:
            copy.close()


def decide_one(
    paths: Paths, policies: Policies, document: Any, *, day: date | None = None
) -> tuple[Decision, Any]:
    """Judge one proposed action now: ``document`` gets the context the lake knows (the type's
    capabilities, the day's budget status and open drift findings, the agent's autonomy
    state; a context the document brings wins, key by key) and the policies see the action's
    statistics of the 30 days before ``day`` (default today). Returns the decision and the
    document as judged."""
    if not isinstance(document, dict):
        return policies.bundle.evaluate(document), document  # fails closed: not an object
    day = day or datetime.now(UTC).date()

    def text(name: str) -> str | None:
        value = document.get(name)
        return value if isinstance(value, str) else None

    row = pl.DataFrame(
        {"day": [day], "agent_type": [text("agent_type")], "agent_id": [text("agent_id")]},
        schema={"day": pl.Date, "agent_type": pl.String, "agent_id": pl.String},
    )
    known = action_document(with_context(paths, row).row(0, named=True), policies.registry)
    autonomy = _autonomy(paths, text("agent_type"), text("agent_id"))
    if autonomy is not None:
        known["context"]["autonomy"] = autonomy
    given = document.get("context")
    full = {
        **document,
        "context": {**known["context"], **given} if isinstance(given, dict) else known["context"],
    }
    return policies.bundle.evaluate(full, {"stats": stats_document(paths, day)}), full


def stats_document(paths: Paths, day: date) -> dict[str, dict[str, Any]]:
    """``data.stats`` for actions judged on ``day``: per action its ``count``,
    ``failure_rate`` and ``override_rate`` over the 30 days before ``day``."""
    return _stats_documents(action_stats(paths, day, day)).get(day, {})


def _autonomy(paths: Paths, agent_type: str | None, agent_id: str | None) -> dict | None:
    """The agent's state in the last autonomy evaluation (its type's for an unknown agent)."""
    from agentops_assets.control.tables import AUTONOMY_STATE

    frame = lake.scan(paths.table_uri(AUTONOMY_STATE))
    if frame is None or agent_type is None:
        return None
    rows = frame.filter(
        (pl.col("agent_type") == agent_type)
        & (pl.col("agent_id").is_null() | (pl.col("agent_id") == (agent_id or "")))
    ).collect()
    own = rows.filter(pl.col("agent_id").is_not_null())
    chosen = own if own.height else rows
    if chosen.is_empty():
        return None
    return {"state": chosen["state"][0], "reason": chosen["reason"][0]}


def decision_id(event_id: str, revision: str) -> str:
    """The id of the decision on one event under one bundle revision (a UUID, as OPA's)."""
    return str(uuid.uuid5(_DECISION_IDS, f"{event_id}|{revision}"))


def evaluations(policies: Policies, actions: pl.DataFrame) -> int:
    """How many engine evaluations :func:`judge` runs for ``actions``."""
    return actions.unique(subset=_key_columns(policies.bundle.input_fields)).height


def _key_columns(fields: frozenset[str] | None) -> list[str]:
    """The columns that tell two actions apart for the policies (the day always does)."""
    read = set(_DOCUMENT_COLUMNS) | {"context"} if fields is None else fields
    columns = ["day"]
    for name, column in _DOCUMENT_COLUMNS.items():
        if name in read:
            columns.append(column)
    if "context" in read:
        columns += [c for c in _CONTEXT_COLUMNS if c not in columns]
    return columns


def _stats_documents(stats: pl.DataFrame) -> dict[date, dict[str, dict[str, Any]]]:
    documents: dict[date, dict[str, dict[str, Any]]] = {}
    for row in stats.iter_rows(named=True):
        documents.setdefault(row["day"], {})[row["action"]] = {
            "count": row["count"],
            "failure_rate": round(row["failure_rate"], 6),
            "override_rate": round(row["override_rate"], 6),
        }
    return documents


def _sample_rate(decision: Decision) -> float:
    """The share of such decisions the review queue gets: all of red, yellow as the policy
    says (none when it says nothing), no green."""
    if decision.zone == "red":
        return 1.0
    if decision.zone == "yellow":
        rate = decision.obligations.get("sample_rate", 0.0)
        return float(rate) if isinstance(rate, int | float) else 0.0
    return 0.0


def _result_json(decision: Decision) -> str:
    result = decision.to_dict()
    result.pop("revision")
    return orjson.dumps(result).decode()


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sampled(event_id: str, rate: float) -> bool:
    """Whether ``event_id`` falls in a sample of share ``rate`` (stable across runs)."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(event_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


__all__ = [
    "ACTION_KINDS",
    "Policies",
    "action_document",
    "action_stats",
    "decide_one",
    "decision_id",
    "evaluations",
    "judge",
    "load_policies",
    "policy_folder",
    "read_actions",
    "sampled",
    "stats_document",
    "with_context",
]
