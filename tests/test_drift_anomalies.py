"""Behaviour anomalies on simulated fleets: real landing files, ingested into Delta, FinOps run.

Two small fleets of 12 agents are built once per module: one with a rogue agent on its last day
(seed 8 puts it there, after 8 days of history), one without incidents.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from agentops_assets.drift.anomalies import (
    AnomalyParams,
    detect_anomalies,
    history_start,
    read_inputs,
)
from agentops_assets.drift.tables import ANOMALIES_SCHEMA
from agentops_assets.finops.refresh import refresh_all
from agentops_assets.simulator import simulate
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from agentops_assets.telemetry.schema import AGENT_EVENTS

START = date(2026, 10, 1)
NEW_ACTION = "bulk_export_customers"


@dataclass(frozen=True)
class Fleet:
    paths: Paths
    first: date
    last: date
    truth: list[dict]


def _fleet(root: Path, *, days: int, incidents: list[str]) -> Fleet:
    paths = Paths.from_env(root / "home")
    simulate(
        paths.landing,
        root / "truth",
        agents=12,
        days=days,
        seed=8,
        start=START,
        cycles_per_agent_day=30,
        incidents=incidents,
    )
    ingest_landing(paths)
    last = START + timedelta(days=days - 1)
    refresh_all(paths, START, last)
    truth = json.loads((root / "truth" / "incidents.json").read_text())
    return Fleet(paths, START, last, truth)


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.delenv("AGENTOPS_LAKE_URI", raising=False)
        yield _fleet(tmp_path_factory.mktemp("rogue"), days=9, incidents=["rogue_agent"])


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.delenv("AGENTOPS_LAKE_URI", raising=False)
        yield _fleet(tmp_path_factory.mktemp("clean"), days=10, incidents=[])


def _detect(
    fleet: Fleet, first: date, last: date, params: AnomalyParams | None = None
) -> pl.DataFrame:
    params = params or AnomalyParams()
    cycles, actions = read_inputs(fleet.paths, first, last, params=params)
    return detect_anomalies(cycles, actions, first, last, params)


def _a_cycle(cycles: pl.DataFrame, day: date) -> tuple[str, str]:
    """The trace id and agent type of one cycle of ``day``."""
    first = cycles.filter(pl.col("day") == day).sort("trace_id")
    return first["trace_id"][0], first["agent_type"][0]


def _add_action(
    actions: pl.DataFrame, trace_id: str, agent_type: str, day: date, action: str = NEW_ACTION
) -> pl.DataFrame:
    """``actions`` with one more event of ``trace_id``, performing ``action``."""
    extra = pl.DataFrame(
        {
            "trace_id": [trace_id],
            "event_date": [day],
            "agent_type": [agent_type],
            "action": [action],
        }
    )
    return pl.concat([actions, extra.select(actions.columns)], how="vertical_relaxed")


@pytest.mark.parametrize(
    "params", [AnomalyParams(), AnomalyParams(refit_days=1)], ids=["weekly", "daily"]
)
def test_rogue_agent_cycles_rank_at_the_top_of_their_day(
    rogue: Fleet, params: AnomalyParams
) -> None:
    (incident,) = rogue.truth
    day = date.fromisoformat(incident["day"])
    assert (day - rogue.first).days >= 7, "the rogue day must have a week of history"
    tools = incident["details"]["tools"]
    events = pl.read_delta(rogue.paths.table_uri(AGENT_EVENTS))
    rogue_traces = set(
        events.filter(
            (pl.col("agent_id") == incident["agent_ids"][0]) & pl.col("action").is_in(tools)
        )["trace_id"]
    )
    anomalies = _detect(rogue, rogue.first, rogue.last, params)
    that_day = anomalies.filter(pl.col("day") == day).sort("rank")
    top = that_day.head(len(rogue_traces))

    assert len(rogue_traces) >= 3
    assert set(top["trace_id"]) == rogue_traces
    assert top["rank"].to_list() == list(range(1, len(rogue_traces) + 1))
    for row in top.iter_rows(named=True):
        assert row["unseen_actions"] and set(row["unseen_actions"]) <= set(tools)
        assert f"never seen for {incident['agent_type']}" in row["reasons"]
        assert row["score"] > 1
    # Nothing else of the fleet is near: the rest of that day is a handful at most.
    assert that_day.height - len(rogue_traces) <= 5


def test_anomalies_follow_the_table_contract(rogue: Fleet) -> None:
    anomalies = _detect(rogue, rogue.first, rogue.last)
    assert dict(anomalies.schema) == ANOMALIES_SCHEMA
    assert anomalies.height > 0
    assert anomalies["reasons"].str.len_chars().min() > 0
    by_day = anomalies.group_by("day").agg(
        pl.col("rank").sort().alias("ranks"), pl.col("score").sort(descending=True)
    )
    for ranks, scores in by_day.select("ranks", "score").iter_rows():
        assert ranks == list(range(1, len(ranks) + 1))
        assert scores == sorted(scores, reverse=True)


def test_a_never_seen_action_is_flagged_with_its_reason(clean: Fleet) -> None:
    day = clean.last
    cycles, actions = read_inputs(clean.paths, day, day)
    trace_id, agent_type = _a_cycle(cycles, day)
    before = detect_anomalies(cycles, actions, day, day)

    after = detect_anomalies(cycles, _add_action(actions, trace_id, agent_type, day), day, day)

    assert trace_id not in set(before["trace_id"])
    (row,) = after.filter(pl.col("trace_id") == trace_id).iter_rows(named=True)
    assert row["rank"] == 1
    assert row["unseen_actions"] == [NEW_ACTION]
    assert (
        f"action {NEW_ACTION} never seen for {agent_type} in the 14 days before" in row["reasons"]
    )
    assert after.height == before.height + 1


def test_a_fleet_without_incidents_flags_under_one_percent(clean: Fleet) -> None:
    cycles, actions = read_inputs(clean.paths, clean.first, clean.last)
    anomalies = detect_anomalies(cycles, actions, clean.first, clean.last)
    scored = cycles.filter(pl.col("day") >= clean.first + timedelta(days=7)).height

    assert scored > 1000
    assert anomalies.height < 0.01 * scored, anomalies.select("day", "agent_type", "reasons")
    assert anomalies.filter(pl.col("unseen_actions").list.len() > 0).is_empty()


def test_nothing_is_flagged_before_seven_days_of_history(clean: Fleet) -> None:
    cycles, actions = read_inputs(clean.paths, clean.first, clean.last)
    early, scored = clean.first + timedelta(days=6), clean.first + timedelta(days=7)
    for day, action in ((early, "early_export"), (scored, NEW_ACTION)):
        trace_id, agent_type = _a_cycle(cycles, day)
        actions = _add_action(actions, trace_id, agent_type, day, action)

    anomalies = detect_anomalies(cycles, actions, clean.first, clean.last)

    assert anomalies["day"].min() == scored
    flagged = anomalies.filter(pl.col("unseen_actions").list.len() > 0)
    assert flagged.select("day", "unseen_actions").rows() == [(scored, [NEW_ACTION])]


def test_one_day_gives_the_rows_of_the_backfill_and_is_deterministic(rogue: Fleet) -> None:
    backfill = _detect(rogue, rogue.first, rogue.last)
    for day in (rogue.last, rogue.last - timedelta(days=1)):
        one_day = _detect(rogue, day, day)
        assert one_day.equals(backfill.filter(pl.col("day") == day))
    assert _detect(rogue, rogue.first, rogue.last).equals(backfill)


def test_read_inputs_starts_early_enough_for_the_refit_period(rogue: Fleet) -> None:
    params = AnomalyParams()
    cycles, actions = read_inputs(rogue.paths, rogue.last, rogue.last, params=params)
    assert history_start(rogue.last, params) == rogue.last - timedelta(days=20)
    assert cycles["day"].min() == rogue.first  # the fleet's whole history lies in that range
    assert cycles["day"].max() == rogue.last
    assert set(actions.columns) == {"trace_id", "event_date", "agent_type", "action"}
    assert actions["action"].null_count() == 0


def test_an_empty_home_has_no_inputs_and_no_anomalies(paths: Paths) -> None:
    day = date(2026, 11, 20)
    cycles, actions = read_inputs(paths, day, day)
    assert cycles.is_empty() and actions.is_empty()
    anomalies = detect_anomalies(cycles, actions, day, day)
    assert anomalies.is_empty() and dict(anomalies.schema) == ANOMALIES_SCHEMA


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_history_days": 20}, "cannot exceed window_days"),
        ({"refit_days": 0}, "at least 1"),
        ({"baseline_quantile": 1.0}, "baseline_quantile"),
    ],
)
def test_bad_params_are_refused_with_a_sentence(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AnomalyParams(**overrides)


def test_a_reversed_range_is_refused(rogue: Fleet) -> None:
    cycles, actions = read_inputs(rogue.paths, rogue.last, rogue.last)
    with pytest.raises(ValueError, match="must not be after"):
        detect_anomalies(cycles, actions, rogue.last, rogue.first)
