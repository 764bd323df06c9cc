"""Each FinOps partition shows its own day's figures, and only days with telemetry run.

A single-run backfill stamps one set of metadata on every partition of its range, so each
day's own figures are materializations of that day's partition; these tests read them back from
the Dagster instance of a simulated home materialized the way `agentops run` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from agentops_assets.cli.dagster_instance import open_instance
from agentops_assets.cli.runner import finops_days, materialize_all
from agentops_assets.defs.finops import partitions
from agentops_assets.defs.finops.partitions import daily_partitions, default_start
from agentops_assets.simulator import simulate
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from tests.conftest import event, write_jsonl

DAYS = 4
SPIKE_CAP_USD = 5  # the simulated FinanceAgent spends about $1 a day, the spike day over $20


def _home(root: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    monkeypatch.setenv("AGENTOPS_HOME", str(root / "home"))
    monkeypatch.delenv("AGENTOPS_LAKE_URI", raising=False)
    policies = root / "policies"
    policies.mkdir(parents=True)
    (policies / "budgets.yaml").write_text(
        f"budgets:\n  - agent_type: FinanceAgent\n    daily_usd: {SPIKE_CAP_USD}\n"
    )
    monkeypatch.setenv("AGENTOPS_POLICIES", str(policies))
    return Paths.from_env()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Paths, str]]:
    """A materialized home of 4 agents over 4 days with a cost spike; and the spike's day."""
    root = tmp_path_factory.mktemp("per_day")
    with pytest.MonkeyPatch.context() as monkeypatch:
        paths = _home(root, monkeypatch)
        simulate(
            paths.landing,
            root / "truth",
            agents=4,
            days=DAYS,
            seed=3,
            cycles_per_agent_day=20,
            incidents=["cost_spike"],
        )
        (spike,) = json.loads((root / "truth" / "incidents.json").read_text())
        outcome = materialize_all(paths)
        assert outcome.success, outcome.error
        yield paths, spike["day"]


def _observed(paths: Paths, asset: str) -> dict[str, dict[str, object]]:
    """Each partition's materialization for that day alone (metadata ``day``), as values."""
    with open_instance(paths) as instance:
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
    latest: dict[str, dict[str, object]] = {}
    for record in sorted(records, key=lambda r: r.storage_id):
        event = record.asset_materialization
        if "day" in event.metadata:
            latest[event.partition] = {k: v.value for k, v in event.metadata.items()}
    return latest


def test_daily_metrics_show_each_days_own_spend(simulated: tuple[Paths, str]) -> None:
    paths, _ = simulated
    spend = (
        lake.scan(paths.table_uri("agent_daily_metrics"))
        .group_by("day")
        .agg(pl.col("cost_usd").sum())
        .collect()
    )
    expected = {day.isoformat(): round(cost, 2) for day, cost in spend.iter_rows()}
    observed = _observed(paths, "agent_daily_metrics")
    assert len(expected) == DAYS
    assert {day: figures["spend_usd"] for day, figures in observed.items()} == expected
    assert len(set(expected.values())) == DAYS
    assert all(figures["day"] == day for day, figures in observed.items())


def test_budget_breaches_only_on_the_spike_day(simulated: tuple[Paths, str]) -> None:
    paths, spike_day = simulated
    observed = _observed(paths, "budget_compliance")
    assert len(observed) == DAYS
    breached = {day for day, figures in observed.items() if figures["breaches"]}
    assert breached == {spike_day}
    assert observed[spike_day]["breaches"] == 1


def test_each_partitions_latest_materialization_is_that_days_own(
    simulated: tuple[Paths, str],
) -> None:
    """The UI plots the latest materialization of each partition: it must be that day's."""
    paths, spike_day = simulated
    latest: dict[str, dict[str, object]] = {}
    with open_instance(paths) as instance:
        records = instance.fetch_materializations(dg.AssetKey("budget_compliance"), limit=1000)
    for record in sorted(records.records, key=lambda r: r.storage_id):
        event = record.asset_materialization
        latest[event.partition] = {k: v.value for k, v in event.metadata.items()}
    assert len(latest) == DAYS
    for day, metadata in latest.items():
        assert metadata["day"] == day and "range" not in metadata
        assert metadata["breaches"] == (1 if day == spike_day else 0)


def test_partitions_start_a_few_months_back_and_hold_the_simulated_days(
    simulated: tuple[Paths, str],
) -> None:
    paths, _ = simulated
    keys = daily_partitions.get_partition_keys()
    assert len(keys) <= partitions.LOOKBACK_DAYS + 32
    ((first, last),) = finops_days(paths)
    assert first.isoformat() in keys and last.isoformat() in keys
    assert default_start(date(2026, 12, 3)) == date(2026, 9, 1)
    assert default_start(date(2026, 3, 31)) == date(2025, 12, 1)


def test_a_bad_partitions_start_says_what_is_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOPS_PARTITIONS_START", "last spring")
    with pytest.raises(ValueError, match="expected YYYY-MM-DD"):
        partitions._start()
    monkeypatch.setenv("AGENTOPS_PARTITIONS_START", "2025-02-03")
    assert partitions._start() == "2025-02-03"


def test_days_without_telemetry_are_not_processed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _home(tmp_path, monkeypatch)
    # event(n) falls on 2026-11-18 + n % 3: leave the 19th without telemetry.
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(30) if n % 3 != 1])
    outcome = materialize_all(paths)
    assert outcome.success, outcome.error
    assert finops_days(paths) == [
        (date(2026, 11, 18), date(2026, 11, 18)),
        (date(2026, 11, 20), date(2026, 11, 20)),
    ]
    with open_instance(paths) as instance:
        done = instance.get_materialized_partitions(dg.AssetKey("agent_daily_metrics"))
    assert done == {"2026-11-18", "2026-11-20"}
    assert len(outcome.run_ids) == 4  # ingestion and memory, two days, then control
    spent = lake.scan(paths.table_uri("event_costs")).select("event_date").unique().collect()
    assert date(2026, 11, 18) + timedelta(days=1) not in spent["event_date"].to_list()
