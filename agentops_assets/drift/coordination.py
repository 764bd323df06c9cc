"""Coordination findings: the orchestration failures of a fleet, found in ``agent_events``.

"Poor orchestration creates loops, duplication, or conflicting actions." Each finding is one
row of ``coordination_findings`` (``COORDINATION_SCHEMA``) with the ids of the events that show
it. The rules, with their defaults in ``CoordinationParams``:

- ``loop``: one agent makes the same call (same action on the same target) at least
  ``loop_min_repeats`` times in one cycle (trace). Only first attempts count: a retry
  (``attempt`` > 0) is the runtime trying one call again, which ``tool_error_rate`` and
  ``reprompt_rate`` already measure; a loop is the agent choosing the same call again.
  LLM calls, plans, retrievals and reviews are not actions on a target and do not count.
- ``duplicate_work``: the same call by two or more agents in different cycles, each within
  ``duplicate_window`` of the one before (one agent repeating its own change is a retry or a
  follow-up, not duplicated work), for calls that change things (action names matching
  ``read_only_actions`` are left out). The same call means the same kind, action and target,
  and for tool calls the same arguments (``input_context``), since many tools are addressed by
  a collection endpoint (``POST /v1/refunds``) that only the arguments tell apart; for memory
  writes the same value (two values of one fact are a ``memory_conflict`` when they clash).
- ``conflict``: decisions with opposite verbs on the same object and target, e.g.
  ``approve_refund`` and ``deny_refund`` on ``INV-1``, each within ``conflict_window`` of the
  one before. Both must have taken effect: ``status`` not ``error`` and ``outcome`` not
  ``failure``. Decisions with the same action and different ``result`` texts are not
  compared: results are free text, and differently worded results are not contradictions.
- ``delegation_cycle``: within a trace, a step whose parent belongs to another agent is a
  handoff (an OpenTelemetry GenAI ``invoke_agent`` span names the agent invoked, so its parent
  is the invoker's step). Handoffs split the trace into agent segments; a segment whose agent
  already ran an enclosing segment closes a cycle (A invokes B invokes A). One finding per trace.
- ``missed_deadline``: a step carrying a deadline in ``attributes`` (``agentops.deadline``, or
  ``deadline`` from a plain JSONL key) that ended (``ts`` + ``duration_ms``) after it. The
  deadline is an ISO 8601 time (no zone means UTC) or an epoch number in s, ms, µs or ns, told
  apart by magnitude as ``ts`` is. One finding per trace and deadline.
- ``memory_conflict``: two agents of one type write different values of one memory fact (same
  namespace and fact key), each write within ``memory_conflict_window`` of the one before,
  and the later value does not build on the earlier one (neither starts with the other's
  text, trailing punctuation aside). Refining a fact ("... Updated: the customer confirmed")
  is how agents share memory; a value replaced by a different one minutes later is two agents
  disagreeing about the facts, and whichever wrote last wins by accident. One finding per run
  of writes.

A finding belongs to the UTC day of its first evidence event. Everything is vectorised polars;
Python only formats the findings. No dagster import.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

import polars as pl

from agentops_assets.drift.tables import COORDINATION_SCHEMA
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.schema import AGENT_EVENTS, EVENT_SCHEMA

KINDS: Final = (
    "loop",
    "duplicate_work",
    "conflict",
    "delegation_cycle",
    "missed_deadline",
    "memory_conflict",
)
EVENT_COLUMNS: Final = (
    "event_id",
    "trace_id",
    "parent_id",
    "ts",
    "duration_ms",
    "agent_id",
    "agent_type",
    "kind",
    "action",
    "action_target",
    "input_context",
    "status",
    "attempt",
    "outcome",
    "attributes",
    "event_date",
)
# Windows are minutes to hours: events of the day either side make the edges of a range whole.
MARGIN: Final = timedelta(days=1)

_READ_ONLY: Final = (
    "read",
    "read_*",
    "get",
    "get_*",
    "lookup",
    "lookup_*",
    "fetch",
    "fetch_*",
    "search",
    "search_*",
    "*_search",
    "list",
    "list_*",
    "query",
    "query_*",
    "find_*",
    "describe_*",
    "retrieve_*",
)
_OPPOSITES: Final = (
    ("approve", "deny"),
    ("approve", "reject"),
    ("approve", "decline"),
    ("accept", "reject"),
    ("accept", "decline"),
    ("allow", "deny"),
    ("allow", "block"),
    ("grant", "revoke"),
    ("grant", "deny"),
    ("clear", "flag"),
    ("enable", "disable"),
    ("unblock", "block"),
    ("unlock", "lock"),
    ("open", "close"),
    ("release", "hold"),
    ("activate", "deactivate"),
    ("activate", "suspend"),
    ("resume", "pause"),
    ("resume", "suspend"),
    ("start", "stop"),
)


@dataclass(frozen=True, kw_only=True)
class CoordinationParams:
    """Thresholds of the coordination rules (see the module docstring for the rules).

    Attributes:
        loop_min_repeats: Fresh calls of one action on one target in one cycle that make a loop.
        loop_kinds: Event kinds that act on a target and can loop.
        duplicate_window: Longest gap between two cycles' identical calls that is duplicated work.
        duplicate_kinds: Event kinds whose repetition across cycles is duplicated work.
        read_only_actions: Glob patterns (``*`` any text) of action names that only read; an
            action matches when its whole name or its last dotted part does
            (``zendesk.get_ticket`` matches ``get_*``). Case is ignored.
        conflict_window: Longest gap between two opposite decisions on one target.
        conflict_kinds: Event kinds that carry decisions.
        opposite_verbs: Pairs of verbs that undo each other; an action's verb is its first word
            (``approve`` in ``approve_refund``), its object the rest (``refund``).
        deadline_attributes: Keys of ``attributes`` holding a step's deadline, first found wins.
        max_delegation_depth: Longest chain of handoffs followed up from a segment.
        memory_conflict_window: Longest gap between two agents' writes of one fact that makes
            differing values a conflict rather than a later change.
        memory_writes: ``memory_op`` actions that set a fact's value.
    """

    # At five, ordinary simulated cycles (up to five tool calls, drawn with replacement) give
    # about one loop in 1,500 cycles by chance; six identical fresh calls never happen there.
    loop_min_repeats: int = 6
    loop_kinds: tuple[str, ...] = ("tool_call", "memory_op", "decision", "other")
    duplicate_window: timedelta = timedelta(minutes=10)
    duplicate_kinds: tuple[str, ...] = ("tool_call", "memory_op", "decision")
    read_only_actions: tuple[str, ...] = _READ_ONLY
    conflict_window: timedelta = timedelta(hours=1)
    conflict_kinds: tuple[str, ...] = ("decision",)
    opposite_verbs: tuple[tuple[str, str], ...] = _OPPOSITES
    deadline_attributes: tuple[str, ...] = ("agentops.deadline", "deadline")
    max_delegation_depth: int = 16
    # Agents of a simulated type refine shared facts every few hours; at ten minutes, sixty
    # cycles a day per agent give no differing write of one fact by two agents (8 days, seed 42).
    memory_conflict_window: timedelta = timedelta(minutes=10)
    memory_writes: tuple[str, ...] = ("add", "update", "put")

    def __post_init__(self) -> None:
        if isinstance(self.loop_min_repeats, bool) or self.loop_min_repeats < 2:
            raise ValueError(
                f"loop_min_repeats must be at least 2 (one call is not a loop), "
                f"got {self.loop_min_repeats!r}."
            )
        for name in ("duplicate_window", "conflict_window", "memory_conflict_window"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be longer than zero, got {getattr(self, name)}.")
        if self.max_delegation_depth < 2:
            raise ValueError(
                f"max_delegation_depth must be at least 2 (A invokes B invokes A), "
                f"got {self.max_delegation_depth!r}."
            )
        for pair in self.opposite_verbs:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(f"opposite_verbs needs pairs of two different verbs, got {pair}.")


def read_events(paths: Paths, first_day: date, last_day: date) -> pl.LazyFrame:
    """The columns of ``agent_events`` the coordination rules read, for ``event_date`` in
    [first_day, last_day]; empty when the table does not exist yet.

    Pass a day more on each side than the days to report (``MARGIN``) so that windows crossing
    midnight are whole: ``find_coordination(read_events(paths, d - MARGIN, d + MARGIN), d, d)``.
    """
    frame = lake.scan(paths.table_uri(AGENT_EVENTS))
    if frame is None:
        return pl.LazyFrame(schema={name: EVENT_SCHEMA[name] for name in EVENT_COLUMNS})
    return frame.filter(pl.col("event_date").is_between(first_day, last_day)).select(EVENT_COLUMNS)


def find_coordination(
    events: pl.LazyFrame | pl.DataFrame,
    first_day: date,
    last_day: date,
    params: CoordinationParams = CoordinationParams(),  # noqa: B008 (frozen, so shared safely)
) -> pl.DataFrame:
    """Loops, duplicated work, conflicts, delegation cycles, missed deadlines and conflicting
    memory writes.

    Args:
        events: ``agent_events`` rows (at least ``EVENT_COLUMNS``), e.g. from ``read_events``.
            Events up to ``MARGIN`` outside the range are used for windows that cross its
            edges; events further out are ignored.
        first_day: First day (UTC) to report findings for.
        last_day: Last day, inclusive.
        params: Thresholds of the rules.

    Returns:
        One row per finding in ``COORDINATION_SCHEMA``, ordered by day, kind and first event;
        ``finding_id`` hashes kind, day and the evidence event ids, so a rerun gives the same ids.

    Example:
        >>> first, last = date(2026, 10, 5), date(2026, 10, 11)
        >>> events = read_events(paths, first - MARGIN, last + MARGIN)
        >>> found = find_coordination(events, first, last)
    """
    if last_day < first_day:
        raise ValueError(f"last_day {last_day} is before first_day {first_day}.")
    steps = events.lazy().filter(
        pl.col("event_date").is_between(first_day - MARGIN, last_day + MARGIN)
    )
    # Three small reads of the scan beat one shared one (collect_all caches the whole scan).
    acts = _acting(steps, params).collect()
    multi = _multi_agent_traces(steps).collect()
    dated = _with_deadlines(steps, params).collect()
    writes = _memory_writes(steps, params).collect()
    parts = [
        _loops(acts, params),
        _duplicates(acts, params),
        _conflicts(acts, params),
        _delegation_cycles(steps, multi, params),
        _missed_deadlines(dated, params),
        _memory_conflicts(writes, params),
    ]
    found = (
        pl.concat(parts, how="vertical")
        .with_columns(day=pl.col("first_at").dt.date())
        .filter(pl.col("day").is_between(first_day, last_day))
    )
    ids = [
        hashlib.sha256(f"{kind}|{day}|{','.join(sorted(evidence))}".encode()).hexdigest()[:32]
        for kind, day, evidence in found.select("kind", "day", "event_ids").iter_rows()
    ]
    return (
        found.with_columns(finding_id=pl.Series(ids, dtype=pl.String()))
        .sort("day", "kind", "first_at", "finding_id")
        .select(list(COORDINATION_SCHEMA))
        .cast(COORDINATION_SCHEMA)  # type: ignore[arg-type]
    )


# --- what the rules read ----------------------------------------------------------------------

_ROW_SCHEMA: Final = {
    k: v for k, v in COORDINATION_SCHEMA.items() if k not in ("day", "finding_id")
}
_SEED: Final = 0x5EED


def _end() -> pl.Expr:
    """When a step ended: its start plus its duration (none known: its start)."""
    micros = (pl.col("duration_ms").fill_null(0.0).clip(lower_bound=0.0) * 1000).cast(pl.Int64)
    return (pl.col("ts") + pl.duration(microseconds=micros)).alias("end")


def _key(*columns: str) -> pl.Expr:
    """One 64-bit hash of several columns, to group and sort by a number instead of text."""
    key = pl.col(columns[0]).hash(seed=_SEED)
    for n, column in enumerate(columns[1:], start=1):
        key = key ^ pl.col(column).hash(seed=_SEED + n)
    return key


def _acting(steps: pl.LazyFrame, p: CoordinationParams) -> pl.LazyFrame:
    """Steps that act on a target: first attempts of the loop and duplicate kinds, and every
    decision; with a hash of tool arguments instead of their text."""
    fresh = pl.col("attempt").fill_null(0) == 0
    repeatable = sorted(set(p.loop_kinds) | set(p.duplicate_kinds))
    return steps.filter(
        (pl.col("kind").is_in(repeatable) & fresh) | pl.col("kind").is_in(p.conflict_kinds)
    ).select(
        "event_id",
        "trace_id",
        "ts",
        _end(),
        "agent_id",
        "agent_type",
        "kind",
        "action",
        "action_target",
        fresh.alias("fresh"),
        "status",
        "outcome",
        # A tool's arguments, a memory write's value: what tells two calls of one action apart.
        pl.when(pl.col("kind").is_in(("tool_call", "memory_op")))
        .then(pl.col("input_context").hash(seed=_SEED))
        .alias("args"),
    )


def _multi_agent_traces(steps: pl.LazyFrame) -> pl.LazyFrame:
    """Hashes of the traces in which more than one agent has a step."""
    return (
        steps.select(_key("trace_id").alias("t"), _key("agent_id").alias("a"))
        .group_by("t")
        .agg(pl.col("a").min().alias("lo"), pl.col("a").max().alias("hi"))
        .filter(pl.col("lo") != pl.col("hi"))
        .select("t")
    )


def _with_deadlines(steps: pl.LazyFrame, p: CoordinationParams) -> pl.LazyFrame:
    """Steps whose attributes may hold a deadline (the text names one of the keys)."""
    attrs = pl.col("attributes")
    named = [attrs.str.contains(key, literal=True) for key in p.deadline_attributes]
    return steps.filter(pl.any_horizontal(named) if named else pl.lit(False)).select(
        "event_id", "trace_id", "ts", _end(), "agent_id", "agent_type", "action",
        "action_target", "attributes",
    )  # fmt: skip


def _memory_writes(steps: pl.LazyFrame, p: CoordinationParams) -> pl.LazyFrame:
    """Memory writes that took effect, with their fact (namespace and key) and value text."""
    attributes = pl.col("attributes")

    def attribute(*keys: str) -> pl.Expr:
        return pl.coalesce(attributes.str.json_path_match(f"$['{key}']") for key in keys)

    return (
        steps.filter(
            pl.col("kind") == "memory_op",
            pl.col("action").is_in(p.memory_writes),
            pl.col("status").fill_null("ok") != "error",
        )
        .select(
            "event_id",
            "trace_id",
            "ts",
            _end(),
            "agent_id",
            "agent_type",
            "action",
            fact=pl.coalesce(
                attribute("fact_key", "agentops.memory.fact_key"), pl.col("action_target")
            ),
            namespace=attribute("namespace", "agentops.memory.namespace").fill_null(""),
            # OTLP spans carry GenAI messages; the value is the first text part.
            value=pl.coalesce(
                pl.col("input_context").str.json_path_match("$[0].parts[0].content"),
                pl.col("input_context"),
            ).fill_null(""),
        )
        .filter(pl.col("fact").is_not_null())
    )


def _rows(frame: pl.DataFrame | None) -> pl.DataFrame:
    """A rule's findings in the shared column order and types (none when ``frame`` is None)."""
    if frame is None:
        return pl.DataFrame(schema=_ROW_SCHEMA)
    return frame.select(list(_ROW_SCHEMA)).cast(_ROW_SCHEMA)  # type: ignore[arg-type]


def _read_only(actions: pl.Series, patterns: tuple[str, ...]) -> pl.Series:
    """The distinct action names whose whole name or last dotted part matches a glob."""
    special = set(".+?()[]{}|^$\\")
    alts = [
        "".join(".*" if c == "*" else ("\\" + c if c in special else c) for c in glob.lower())
        for glob in patterns
    ]
    names = actions.drop_nulls().unique()
    if not alts:
        return names.clear()
    return names.filter(names.str.to_lowercase().str.contains(f"^(?:.*\\.)?(?:{'|'.join(alts)})$"))


def _evidence() -> list[pl.Expr]:
    """Aggregations every finding shares, over its evidence events sorted by ``ts``."""
    return [
        pl.col("agent_type").first(),
        pl.col("agent_id").unique(maintain_order=True).alias("agent_ids"),
        pl.col("trace_id").unique(maintain_order=True).alias("trace_ids"),
        pl.col("event_id").alias("event_ids"),
        pl.len().cast(pl.Int64).alias("count"),
        pl.col("ts").min().alias("first_at"),
        pl.col("end").max().alias("last_at"),
    ]


def _span(first: str, last: str) -> pl.Expr:
    """The time between two columns in words: "42 s", "6.5 min" or "1.5 h"."""
    s = (pl.col(last) - pl.col(first)).dt.total_milliseconds() / 1000
    return (
        pl.when(s < 90)
        .then(pl.format("{} s", s.round(0).cast(pl.Int64)))
        .when(s < 5400)
        .then(pl.format("{} min", (s / 60).round(1)))
        .otherwise(pl.format("{} h", (s / 3600).round(1)))
    )


def _runs(frame: pl.DataFrame, key: pl.Expr, window: timedelta) -> pl.DataFrame:
    """Rows with the same key, each within ``window`` of the one before, numbered as ``run``
    and sorted by key and time; runs of one row are dropped."""
    frame = frame.with_columns(_key=key).sort("_key", "ts")
    gap = pl.col("ts") - pl.col("ts").shift(1)
    fresh = (pl.col("_key") != pl.col("_key").shift(1)) | (gap > window)
    frame = frame.with_columns(run=fresh.fill_null(True).cum_sum())
    paired = (pl.col("run") == pl.col("run").shift(1)) | (pl.col("run") == pl.col("run").shift(-1))
    return frame.filter(paired.fill_null(False))


def _across_cycles(runs: pl.DataFrame) -> pl.DataFrame:
    """The runs that span two cycles or more. Rows of a run are adjacent, so a run holds two
    traces exactly when two adjacent rows of it differ in trace."""
    same_run = pl.col("run") == pl.col("run").shift(1)
    crossing = runs.filter(same_run & (pl.col("trace_id") != pl.col("trace_id").shift(1)))
    return runs.filter(pl.col("run").is_in(crossing["run"].unique().implode()))


# --- the rules ------------------------------------------------------------------------------


def _loops(acts: pl.DataFrame, p: CoordinationParams) -> pl.DataFrame:
    keys = ["trace_id", "agent_id", "action", "action_target"]
    calls = acts.filter(
        pl.col("kind").is_in(p.loop_kinds), pl.col("fresh"), pl.col("action").is_not_null()
    ).with_columns(_key=_key(*keys))
    # Counting by sorting the hashes and measuring runs beats a hash group-by on millions.
    counts = calls.select(pl.col("_key").sort().rle().alias("r")).unnest("r")
    hot = counts.filter(pl.col("len") >= p.loop_min_repeats)["value"]
    if not hot.len():
        return _rows(None)
    found = (
        calls.filter(pl.col("_key").is_in(hot.implode()))
        .sort("ts")
        .group_by(keys)
        .agg(_evidence())
        .filter(pl.col("count") >= p.loop_min_repeats)  # in case two keys' hashes met
        .with_columns(kind=pl.lit("loop"), target=pl.col("action_target"))
    )
    detail = pl.format(
        "{} {} called {} on {} {} times in one cycle (trace {}) within {}, "
        "each a fresh call, not a retry.",
        "agent_type",
        "agent_id",
        "action",
        pl.col("target").fill_null("no target"),
        "count",
        "trace_id",
        _span("first_at", "last_at"),
    )
    return found.with_columns(detail=detail).pipe(_rows)


def _duplicates(acts: pl.DataFrame, p: CoordinationParams) -> pl.DataFrame:
    calls = acts.filter(
        pl.col("kind").is_in(p.duplicate_kinds), pl.col("fresh"), pl.col("action").is_not_null()
    )
    reads = _read_only(calls["action"], p.read_only_actions)
    calls = calls.filter(~pl.col("action").is_in(reads.implode()))
    runs = _runs(calls, _key("kind", "action", "action_target", "args"), p.duplicate_window)
    found = (
        _across_cycles(runs)
        .group_by("run")
        .agg(
            *_evidence(),
            pl.col("kind").first(),
            pl.col("action").first(),
            pl.col("action_target").first().alias("target"),
            pl.col("trace_id").n_unique().alias("cycles"),
            pl.col("agent_id").n_unique().alias("agents"),
        )
        # One agent repeating its own work across cycles is its business (a retry policy, a
        # follow-up); duplicated work is two agents doing the same change.
        .filter((pl.col("cycles") >= 2) & (pl.col("agents") >= 2))
    )
    args = (
        pl.when(pl.col("kind") == "tool_call")
        .then(pl.lit(" with the same arguments"))
        .when(pl.col("kind") == "memory_op")
        .then(pl.lit(" with the same value"))
    )
    detail = pl.format(
        "{} cycles of {} agent(s) ({}) did {} on {}{} within {}; each came within {} of the last.",
        "cycles",
        pl.col("agent_ids").list.len(),
        pl.col("agent_ids").list.join(", "),
        "action",
        pl.col("target").fill_null("no target"),
        args.otherwise(pl.lit("")),
        _span("first_at", "last_at"),
        pl.lit(_words(p.duplicate_window)),
    )
    return found.with_columns(kind=pl.lit("duplicate_work"), detail=detail).pipe(_rows)


def _conflicts(acts: pl.DataFrame, p: CoordinationParams) -> pl.DataFrame:
    verbs = pl.DataFrame(
        {
            "verb": [v for pair in p.opposite_verbs for v in pair],
            "polarity": [side for _ in p.opposite_verbs for side in (1, -1)],
            "pair": [i for i in range(len(p.opposite_verbs)) for _ in (0, 1)],
        },
        schema={"verb": pl.String(), "polarity": pl.Int8(), "pair": pl.Int64()},
    )
    decisions = acts.filter(
        pl.col("kind").is_in(p.conflict_kinds),
        pl.col("action_target").is_not_null(),
        pl.col("status").fill_null("ok") != "error",
        pl.col("outcome").fill_null("success") != "failure",
    )
    # Verb and object of each distinct action name, not of every decision.
    names = decisions.select(pl.col("action").drop_nulls().unique())
    lower = pl.col("action").str.to_lowercase()
    names = names.with_columns(
        verb=lower.str.extract(r"^([a-z]+)", 1), object=lower.str.replace(r"^[a-z]+[_\-. ]?", "")
    )
    decisions = decisions.join(names, on="action", how="inner")
    sided = decisions.join(verbs, on="verb", how="inner")
    runs = _runs(sided, _key("pair", "object", "action_target"), p.conflict_window)
    found = (
        runs.group_by("run")
        .agg(
            *_evidence(),
            pl.col("action").unique().sort().str.join(" vs ").alias("action"),
            pl.col("action_target").first().alias("target"),
            pl.col("polarity").n_unique().alias("sides"),
        )
        .filter(pl.col("sides") == 2)
    )
    detail = pl.format(
        "Decisions {} on {} contradict each other: {} decisions by {} within {}, all taken.",
        "action",
        "target",
        "count",
        pl.col("agent_ids").list.join(", "),
        _span("first_at", "last_at"),
    )
    return found.with_columns(kind=pl.lit("conflict"), detail=detail).pipe(_rows)


def _delegation_cycles(
    steps: pl.LazyFrame, multi: pl.DataFrame, p: CoordinationParams
) -> pl.DataFrame:
    if not multi.height:  # one agent per trace: no handoff anywhere
        return _rows(None)
    ev = (
        steps.filter(_key("trace_id").is_in(multi["t"].implode()))
        .select(
            "event_id", "trace_id", "parent_id", "agent_id", "agent_type", "action", "ts", _end()
        )
        .collect()
    )
    parents = ev.select(
        "trace_id", pl.col("event_id").alias("parent_id"), pl.col("agent_id").alias("parent_agent")
    )
    ev = ev.join(parents, on=["trace_id", "parent_id"], how="left")
    handoff = pl.col("parent_agent").is_not_null() & (pl.col("parent_agent") != pl.col("agent_id"))
    root = pl.col("parent_agent").is_null() | handoff
    # Each step's segment: the nearest ancestor-or-self that starts one, by pointer jumping
    # (each round doubles the distance looked up, so a few rounds cover deep traces).
    ev = ev.with_columns(
        handoff=handoff, seg=pl.when(root).then(pl.col("event_id")).otherwise(pl.col("parent_id"))
    )
    for _ in range(64):
        hop = ev.select("trace_id", pl.col("event_id").alias("seg"), pl.col("seg").alias("_up"))
        ev = ev.join(hop, on=["trace_id", "seg"], how="left")
        done = (ev["_up"] == ev["seg"]).fill_null(True).all()
        ev = ev.with_columns(seg=pl.coalesce("_up", "seg")).drop("_up")
        if done:
            break
    seg_of = ev.select("trace_id", pl.col("event_id").alias("parent_id"), pl.col("seg").alias("up"))
    segs = (
        ev.filter(pl.col("event_id") == pl.col("seg"))
        .join(seg_of, on=["trace_id", "parent_id"], how="left")
        .select("trace_id", "seg", "up", "agent_id", "agent_type", "action", "ts", "handoff")
    )
    table = segs.select(
        "trace_id",
        pl.col("seg").alias("cur"),
        pl.col("agent_id").alias("cur_agent"),
        pl.col("up").alias("next"),
    )
    # Walk up from every handoff, one segment a round, until an agent meets itself.
    walk = segs.filter(pl.col("handoff")).select(
        "trace_id", "seg", "agent_id", "agent_type", "action", "ts",
        pl.col("up").alias("cur"),
        pl.concat_list(pl.col("seg")).alias("path"),
        pl.concat_list(pl.col("agent_id")).alias("agents"),
    )  # fmt: skip
    closed = []
    for _ in range(p.max_delegation_depth):
        if not walk.height:
            break
        walk = walk.join(table, on=["trace_id", "cur"], how="inner")
        hit = pl.col("cur_agent") == pl.col("agent_id")
        agents = pl.concat_list(pl.col("cur_agent"), pl.col("agents")).alias("agents")
        closed.append(
            walk.filter(hit).select(
                "trace_id", "seg", "agent_id", "agent_type", "action", "ts", agents, "path"
            )
        )
        walk = walk.filter(~hit & pl.col("next").is_not_null()).select(
            "trace_id", "seg", "agent_id", "agent_type", "action", "ts",
            pl.col("next").alias("cur"),
            pl.concat_list(pl.col("cur"), pl.col("path")).alias("path"),
            agents,
        )  # fmt: skip
    cycles = pl.concat(closed) if closed else pl.DataFrame()
    if not cycles.height:
        return _rows(None)
    first = cycles.sort("ts", "seg").group_by("trace_id", maintain_order=True).first()
    evidence = (
        cycles.select("trace_id", pl.col("path").alias("event_id"))
        .explode("event_id")
        .unique()
        .join(
            ev.select("trace_id", "event_id", "agent_id", "agent_type", "ts", "end"),
            on=["trace_id", "event_id"],
        )  # fmt: skip
        .sort("ts")
        .group_by("trace_id")
        .agg(*_evidence())
        .drop("agent_type", "agent_ids")
    )
    found = first.select(
        "trace_id",
        "agent_type",
        "action",
        pl.col("agent_id").alias("target"),
        pl.col("agents").list.join(" -> ").alias("path"),
        pl.col("agents").list.unique(maintain_order=True).alias("agent_ids"),
    ).join(evidence, on="trace_id")
    detail = pl.format(
        "In trace {} agent {} was invoked again by an agent it had delegated to ({}); "
        "{} handoff(s) in the trace form delegation cycles.",
        "trace_id",
        "target",
        "path",
        "count",
    )
    return found.with_columns(kind=pl.lit("delegation_cycle"), detail=detail).pipe(_rows)


def _missed_deadlines(dated: pl.DataFrame, p: CoordinationParams) -> pl.DataFrame:
    if not dated.height or not p.deadline_attributes:
        return _rows(None)
    raw = pl.coalesce(
        [pl.col("attributes").str.json_path_match(f"$['{key}']") for key in p.deadline_attributes]
    )
    late = (
        dated.with_columns(deadline=_instant(raw))
        .filter(pl.col("end") > pl.col("deadline"))
        .sort("ts")
        .group_by("trace_id", "deadline")
        .agg(
            *_evidence(),
            pl.col("action").first(),
            pl.col("action_target").first().alias("target"),
        )
    )
    detail = pl.format(
        "{} step(s) of trace {} by {} ended after their deadline {} UTC, the last {} late.",
        "count",
        "trace_id",
        pl.col("agent_ids").list.join(", "),
        pl.col("deadline").dt.strftime("%Y-%m-%d %H:%M:%S"),
        _span("deadline", "last_at"),
    )
    return late.with_columns(kind=pl.lit("missed_deadline"), detail=detail).pipe(_rows)


def _memory_conflicts(writes: pl.DataFrame, p: CoordinationParams) -> pl.DataFrame:
    if not writes.height:
        return _rows(None)
    runs = _runs(
        writes, _key("agent_type", "namespace", "fact"), p.memory_conflict_window
    ).with_columns(stem=pl.col("value").str.strip_chars_end(" .;,!"))
    previous = pl.col("run").shift(1) == pl.col("run")
    builds_on = pl.col("value").str.starts_with(pl.col("stem").shift(1)) | pl.col("value").shift(
        1
    ).str.starts_with(pl.col("stem"))
    clash = (
        previous
        & (pl.col("agent_id") != pl.col("agent_id").shift(1))
        & (pl.col("value") != pl.col("value").shift(1))
        & ~builds_on
    )
    runs = runs.with_columns(clash=clash.fill_null(False))
    clashing = runs.filter(pl.col("clash"))["run"].unique().implode()
    found = (
        runs.filter(pl.col("run").is_in(clashing))
        .group_by("run")
        .agg(
            *_evidence(),
            pl.col("action").unique().sort().str.join(", ").alias("action"),
            pl.format("{}/{}", pl.col("namespace").first(), pl.col("fact").first())
            .str.strip_prefix("/")
            .alias("target"),
            pl.col("value").n_unique().alias("values"),
        )
        .filter(pl.col("agent_ids").list.len() >= 2)
    )
    detail = pl.format(
        "{} agents ({}) wrote {} different values of memory fact {} within {}, each write "
        "replacing the last without building on it.",
        pl.col("agent_ids").list.len(),
        pl.col("agent_ids").list.join(", "),
        "values",
        "target",
        _span("first_at", "last_at"),
    )
    return found.with_columns(kind=pl.lit("memory_conflict"), detail=detail).pipe(_rows)


def _instant(raw: pl.Expr) -> pl.Expr:
    """An ISO 8601 time (no zone means UTC) or an epoch number in s, ms, µs or ns (by
    magnitude, as ``ts`` is read), as a UTC timestamp; null when it is neither."""
    num = raw.cast(pl.Float64, strict=False)
    size = num.abs()
    micros = (
        pl.when(size < 1e11)
        .then(num * 1e6)
        .when(size < 1e14)
        .then(num * 1e3)
        .when(size < 1e17)
        .then(num)
        .otherwise(num / 1e3)
    )
    text = raw.str.strip_chars().str.replace(r"^(\d{4}-\d\d-\d\d) ", "${1}T")
    zoned = text.str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%#z", time_zone="UTC", time_unit="us", strict=False
    )
    naive = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False)
    return pl.coalesce(
        pl.from_epoch(micros.round(0).cast(pl.Int64), time_unit="us").dt.replace_time_zone("UTC"),
        zoned,
        naive.dt.replace_time_zone("UTC"),
    )


def _words(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    return f"{minutes:g} min" if minutes < 90 else f"{minutes / 60:g} h"
