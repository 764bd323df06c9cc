"""Autonomy states from evidence, with hysteresis, and supervisors' overrides on top.

A rule *fires* on a day when its evidence is there that day (and on at least ``min_days``
distinct days of the ``window_days`` ending then); it then *holds* from that day through
``quiet_days`` more days, so a state relaxes only after that many days without the evidence.
The state of an agent or a type on a day is the most restricted state of the rules that hold;
an agent is at least as restricted as its type. The answer is a function of the evidence and
the day alone: evaluating again gives the same states, so nothing flaps from one run to the
next. A supervisor's override (:class:`Override`) wins over the rules until it expires or is
lifted, in either direction (freeze a healthy agent, or release a restricted one early).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

import polars as pl

from agentops_assets.control.policy import RANK, STATES, AutonomyPolicy, Rule, State

HISTORY_DAYS: Final = 60  # how far back ``since`` is looked for
STATE_SCHEMA: Final = pl.Schema(
    {
        "agent_type": pl.String(),
        "agent_id": pl.String(),  # null: the row of the whole type
        "state": pl.String(),
        "rule": pl.String(),  # the rule (or "override", or "agent_type" when inherited)
        "reason": pl.String(),
        "evidence_ids": pl.List(pl.String()),
        "since": pl.Date(),
        "until": pl.Date(),  # the day it relaxes if nothing new happens; null: until lifted
        "override": pl.Boolean(),
    }
)
_SUBJECT: Final = ["agent_type", "agent_id"]
_STATE_NAMES: Final = pl.Enum(list(STATES))


@dataclass(frozen=True)
class Release:
    """A supervisor lifted the rules' state of one agent (or type-wide evidence of a type):
    the evidence of ``day`` and before no longer counts for it; newer evidence does."""

    agent_type: str
    agent_id: str | None
    day: date
    by: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Override:
    """A supervisor's state for one agent (``agent_id`` set) or a whole type."""

    agent_type: str
    agent_id: str | None
    state: State
    reason: str
    by: str
    since: datetime
    until: datetime | None = None  # None: until lifted

    def active(self, at: datetime) -> bool:
        return self.since <= at and (self.until is None or at < self.until)


def rule_firings(evidence: pl.DataFrame, rule: Rule) -> pl.DataFrame:
    """The days ``rule`` fires on, per subject, with the evidence of that day."""
    found = evidence.filter(pl.col("source") == rule.source)
    if rule.severity is not None:
        found = found.filter(pl.col("severity").is_in(list(rule.severity)))
    if rule.metrics is not None:
        found = found.filter(pl.col("kind").is_in(list(rule.metrics)))
    if rule.periods is not None:
        found = found.filter(pl.col("kind").is_in(list(rule.periods)))
    level = (
        pl.col("agent_id").is_not_null() if rule.scope == "agent" else pl.col("agent_id").is_null()
    )
    days = (
        found.filter(level & pl.col("agent_type").is_not_null())
        .group_by(*_SUBJECT, "day")
        .agg(pl.col("evidence_id").unique().sort().alias("evidence_ids"))
    )
    if rule.min_days > 1:
        window = (
            days.select(*_SUBJECT, "day")
            .join(
                days.select(*_SUBJECT, pl.col("day").alias("seen")), on=_SUBJECT, nulls_equal=True
            )
            .filter(
                pl.col("seen").is_between(
                    pl.col("day") - timedelta(days=rule.window_days - 1), pl.col("day")
                )
            )
            .group_by(*_SUBJECT, "day")
            .agg(pl.col("seen").n_unique().alias("seen_days"))
        )
        days = (
            days.join(window, on=[*_SUBJECT, "day"], nulls_equal=True)
            .filter(pl.col("seen_days") >= rule.min_days)
            .drop("seen_days")
        )
    return days.sort(*_SUBJECT, "day", nulls_last=False)


def daily_states(
    evidence: pl.DataFrame, policy: AutonomyPolicy, first: date, last: date
) -> pl.DataFrame:
    """Per subject and day of ``[first, last]`` on which some rule holds: the winning rule's
    state, the rule, the day it last fired, and that day's evidence."""
    held = []
    for order, rule in enumerate(policy.rules):
        fired = rule_firings(evidence, rule)
        if fired.is_empty():
            continue
        held.append(
            fired.with_columns(
                pl.col("day").alias("fired"),
                pl.date_ranges(
                    pl.col("day"), pl.col("day") + timedelta(days=rule.quiet_days)
                ).alias("held"),
                pl.lit(rule.name).alias("rule"),
                pl.lit(rule.state).alias("state"),
                pl.lit(RANK[rule.state]).alias("rank"),
                pl.lit(-order).alias("priority"),
                (pl.col("day") + timedelta(days=rule.quiet_days + 1)).alias("until"),
            )
            .drop("day")
            .explode("held")
            .rename({"held": "day"})
            .filter(pl.col("day").is_between(first, last))
        )
    if not held:
        return pl.DataFrame(
            schema={
                **{c: pl.String for c in _SUBJECT},
                "day": pl.Date, "state": pl.String, "rule": pl.String, "fired": pl.Date,
                "until": pl.Date, "evidence_ids": pl.List(pl.String),
            }
        )  # fmt: skip
    return (
        pl.concat(held)
        # The most restricted state wins; of rules setting it, the one holding longest (so
        # `until` is when the state really ends), then the latest fired, then the first listed.
        .sort("rank", "until", "fired", "priority", descending=True)
        .group_by(*_SUBJECT, "day", maintain_order=True)
        .first()
        .select(*_SUBJECT, "day", "state", "rule", "fired", "until", "evidence_ids")
        .sort(*_SUBJECT, "day", nulls_last=False)
    )


def evaluate(
    evidence: pl.DataFrame,
    policy: AutonomyPolicy,
    day: date,
    *,
    agents: Iterable[tuple[str, str]] = (),
    overrides: Sequence[Override] = (),
    releases: Sequence[Release] = (),
    now: datetime | None = None,
) -> pl.DataFrame:
    """The state of every type and agent on ``day``, one row each (:data:`STATE_SCHEMA`).

    Args:
        evidence: From :func:`agentops_assets.control.evidence.read_evidence`, covering at
            least :data:`HISTORY_DAYS` before ``day`` for a true ``since``.
        policy: The autonomy rules.
        day: The day to evaluate.
        agents: (agent_type, agent_id) pairs to report even when nothing holds (normal).
        overrides: Supervisors' states; an active one wins over the rules.
        releases: Supervisors' releases: the evidence they acknowledged no longer counts.
        now: When overrides are judged active (default: the end of ``day``, or now if
            ``day`` is today).
    """
    now = now or min(datetime.now(UTC), datetime.combine(day, datetime.max.time(), UTC))
    daily = daily_states(
        _unreleased(evidence, releases), policy, day - timedelta(days=HISTORY_DAYS), day
    )
    today = daily.filter(pl.col("day") == day)
    since = _streak_start(daily, day)
    rules = today.join(since, on=_SUBJECT, how="left", nulls_equal=True).select(
        *_SUBJECT,
        "state",
        "rule",
        pl.format(
            "rule {}: {} piece(s) of evidence on {}; relaxes on {} unless it recurs",
            pl.col("rule"),
            pl.col("evidence_ids").list.len(),
            pl.col("fired"),
            pl.col("until"),
        ).alias("reason"),
        "evidence_ids",
        "since",
        "until",
        pl.lit(False).alias("override"),
    )
    subjects = _subjects(evidence, agents, overrides, rules)
    states = subjects.join(rules, on=_SUBJECT, how="left", nulls_equal=True).with_columns(
        pl.col("state").fill_null("normal"),
        pl.col("override").fill_null(False),
    )
    states = _released(_inherit(states), releases)
    states = _apply(states, [o for o in overrides if o.active(now)])
    return (
        states.select(list(STATE_SCHEMA))
        .cast(dict(STATE_SCHEMA))
        .sort("agent_type", "agent_id", nulls_last=False)
    )


def _unreleased(evidence: pl.DataFrame, releases: Sequence[Release]) -> pl.DataFrame:
    """``evidence`` without what a release acknowledged (its subject's, up to its day)."""
    if not releases:
        return evidence
    latest: dict[tuple[str, str | None], date] = {}
    for release in releases:
        key = (release.agent_type, release.agent_id)
        latest[key] = max(latest.get(key, release.day), release.day)
    acknowledged = pl.DataFrame(
        [(t, a, d) for (t, a), d in latest.items()],
        schema={"agent_type": pl.String, "agent_id": pl.String, "released": pl.Date},
        orient="row",
    )
    return (
        evidence.join(acknowledged, on=_SUBJECT, how="left", nulls_equal=True)
        .filter(pl.col("released").is_null() | (pl.col("day") > pl.col("released")))
        .drop("released")
    )


def _streak_start(daily: pl.DataFrame, day: date) -> pl.DataFrame:
    """For each subject restricted on ``day``: the first day of its unbroken run in the same
    state up to ``day``."""
    current = daily.filter(pl.col("day") == day).select(*_SUBJECT, pl.col("state").alias("now"))
    runs = (
        daily.join(current, on=_SUBJECT, nulls_equal=True)
        .sort(*_SUBJECT, "day", descending=[False, False, True], nulls_last=False)
        .with_columns(
            (
                (pl.col("state") != pl.col("now"))
                | (
                    (pl.col("day").shift(1).over(_SUBJECT) - pl.col("day")) != timedelta(days=1)
                ).fill_null(False)
            )
            .cum_max()
            .over(_SUBJECT)
            .alias("broken")
        )
        .filter(~pl.col("broken"))
    )
    return runs.group_by(_SUBJECT).agg(pl.col("day").min().alias("since"))


def _subjects(
    evidence: pl.DataFrame,
    agents: Iterable[tuple[str, str]],
    overrides: Sequence[Override],
    rules: pl.DataFrame,
) -> pl.DataFrame:
    """Every type and agent to report: the known agents, their types, whatever evidence or an
    override names."""
    pairs = set(agents)
    pairs |= {(o.agent_type, o.agent_id) for o in overrides if o.agent_id is not None}
    named = evidence.filter(pl.col("agent_id").is_not_null()).select(*_SUBJECT).unique()
    pairs |= set(named.iter_rows())
    pairs |= {
        (t, a) for t, a in rules.select(*_SUBJECT).iter_rows() if a is not None and t is not None
    }
    types = {t for t, _ in pairs} | set(evidence["agent_type"].drop_nulls().to_list())
    types |= {o.agent_type for o in overrides}
    rows = [(t, None) for t in sorted(types)] + sorted(pairs)
    return pl.DataFrame(rows, schema={"agent_type": pl.String, "agent_id": pl.String}, orient="row")


def _inherit(states: pl.DataFrame) -> pl.DataFrame:
    """An agent less restricted than its type takes the type's state, naming the type."""
    rank = pl.col("state").replace_strict(RANK, return_dtype=pl.Int8)
    types = states.filter(pl.col("agent_id").is_null()).select(
        "agent_type",
        pl.col("state").alias("type_state"),
        pl.col("reason").alias("type_reason"),
        pl.col("evidence_ids").alias("type_evidence"),
        pl.col("since").alias("type_since"),
        pl.col("until").alias("type_until"),
    )
    joined = states.join(types, on="agent_type", how="left")
    weaker = pl.col("agent_id").is_not_null() & (
        rank < pl.col("type_state").replace_strict(RANK, return_dtype=pl.Int8, default=0)
    )
    return joined.with_columns(
        pl.when(weaker).then(pl.col("type_state")).otherwise(pl.col("state")).alias("state"),
        pl.when(weaker).then(pl.lit("agent_type")).otherwise(pl.col("rule")).alias("rule"),
        pl.when(weaker)
        .then(
            pl.when(pl.col("state") == "normal")
            .then(pl.format("its type {} is {}", pl.col("agent_type"), pl.col("type_state")))
            .otherwise(
                pl.format(
                    "its type {} is {}; its own state: {} ({})",
                    pl.col("agent_type"), pl.col("type_state"), pl.col("state"),
                    pl.col("reason"),
                )
            )
        )
        .otherwise(pl.col("reason"))
        .alias("reason"),
        pl.when(weaker).then(pl.col("type_evidence")).otherwise(pl.col("evidence_ids"))
        .alias("evidence_ids"),
        pl.when(weaker).then(pl.col("type_since")).otherwise(pl.col("since")).alias("since"),
        pl.when(weaker).then(pl.col("type_until")).otherwise(pl.col("until")).alias("until"),
    ).drop("type_state", "type_reason", "type_evidence", "type_since", "type_until")  # fmt: skip


def _released(states: pl.DataFrame, releases: Sequence[Release]) -> pl.DataFrame:
    """A subject left normal by its latest release says who released it and why."""
    if not releases:
        return states
    latest = {(r.agent_type, r.agent_id): r for r in sorted(releases, key=lambda r: r.day)}
    rows = states.to_dicts()
    for row in rows:
        if row["state"] != "normal":
            continue
        release = latest.get((row["agent_type"], row["agent_id"]))
        if release is not None:
            row["rule"] = "release"
            row["reason"] = f"released by {release.by} on {release.day}: {release.reason}"
        elif (release := latest.get((row["agent_type"], None))) is not None:
            row["rule"] = "release"
            row["reason"] = (
                f"its type {row['agent_type']} released by {release.by} on {release.day}: "
                f"{release.reason}"
            )
    return pl.DataFrame(rows, schema=states.schema)


def _apply(states: pl.DataFrame, active: Sequence[Override]) -> pl.DataFrame:
    """Active overrides replace the rules' state of their subject; a type's override reaches
    its agents unless they have their own."""
    if not active:
        return states
    rows = states.to_dicts()
    own = {(o.agent_type, o.agent_id): o for o in sorted(active, key=lambda o: o.since)}
    for row in rows:
        override = own.get((row["agent_type"], row["agent_id"]))
        if override is None and row["agent_id"] is not None:
            override = own.get((row["agent_type"], None))
        if override is None:
            continue
        row |= {
            "state": override.state,
            "rule": "override",
            "reason": f"{override.state} set by {override.by}: {override.reason}",
            "evidence_ids": [],
            "since": override.since.date(),
            "until": override.until.date() if override.until else None,
            "override": True,
        }
    return pl.DataFrame(rows, schema=states.schema)
