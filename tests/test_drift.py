"""Drift detection on real Delta telemetry: found on its day and not before, quiet otherwise."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from agentops_assets.drift.detect import detect_drift
from agentops_assets.drift.inputs import read_cycles
from agentops_assets.drift.metrics import METRICS
from agentops_assets.drift.policy import DriftPolicy, load_drift_policy
from agentops_assets.drift.refresh import refresh_drift
from agentops_assets.drift.tables import DRIFT_FINDINGS, FINDINGS_SCHEMA
from agentops_assets.finops.refresh import refresh_all
from agentops_assets.simulator import simulate
from agentops_assets.storage.config import Paths
from agentops_assets.storage.policy_file import PolicyFileError
from agentops_assets.telemetry.ingest import ingest_landing

START = date(2026, 9, 7)  # a Monday: the 14 days hold two weekends
DAYS = 14


def _home(root: Path, incidents: list[str]) -> Paths:
    paths = Paths.from_env(root)
    simulate(
        paths.landing,
        paths.simulator,
        agents=16,
        days=DAYS,
        seed=11,
        start=START,
        cycles_per_agent_day=50,
        incidents=incidents,
    )
    ingest_landing(paths)
    refresh_all(paths, START, START + timedelta(days=DAYS - 1))
    return paths


@pytest.fixture(scope="module")
def drifting(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    return _home(tmp_path_factory.mktemp("drifting"), ["confidence_drift"])


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    return _home(tmp_path_factory.mktemp("quiet"), [])


def _all_days(paths: Paths) -> pl.DataFrame:
    last = START + timedelta(days=DAYS - 1)
    return refresh_drift(paths, START, last).findings


def test_injected_confidence_drift_is_found_on_its_days_and_not_before(drifting: Paths) -> None:
    incident = json.loads((drifting.simulator / "incidents.json").read_text())[0]
    assert incident["name"] == "confidence_drift"
    first = date.fromisoformat(incident["day"])
    findings = _all_days(drifting)
    of_type = findings.filter(pl.col("agent_type") == incident["agent_type"])
    confidence = of_type.filter(pl.col("metric") == "confidence")
    assert not confidence.is_empty(), "the confidence drift was not found"
    # Found within one day of its start, and nothing about it before it began.
    assert confidence["day"].min() <= first + timedelta(days=1)
    assert of_type.filter(pl.col("day") < first).is_empty()
    whole_type = confidence.filter(pl.col("agent_id").is_null()).sort("day").row(-1, named=True)
    assert whole_type["current_value"] < whole_type["baseline_value"]
    assert whole_type["change_pct"] < 0 and whole_type["p_value"] < 0.01
    assert whole_type["detail"].startswith(f"{incident['agent_type']} confidence fell from ")
    assert f"on {whole_type['day']} against the 14 days before; p " in whole_type["detail"]
    # Other types did not drift.
    assert findings.filter(pl.col("agent_type") != incident["agent_type"]).is_empty()


def test_findings_are_written_with_the_contract_schema_and_stable_ids(drifting: Paths) -> None:
    first = _all_days(drifting)
    table = pl.read_delta(drifting.table_uri(DRIFT_FINDINGS))
    assert dict(table.schema) == {**FINDINGS_SCHEMA, **{}}
    assert table.height == first.height
    again = _all_days(drifting)  # a rerun replaces the days: same rows, same ids
    assert sorted(again["finding_id"]) == sorted(first["finding_id"])
    assert pl.read_delta(drifting.table_uri(DRIFT_FINDINGS)).height == first.height
    assert set(table["severity"]) <= {"warning", "critical"}


def test_a_fleet_without_incidents_has_no_finding_despite_weekends(quiet: Paths) -> None:
    last = START + timedelta(days=DAYS - 1)
    cycles = read_cycles(quiet, START, last)
    per_day = cycles.group_by("day").len()
    weekend = per_day.filter(pl.col("day").dt.weekday() >= 6)["len"].mean()
    weekday = per_day.filter(pl.col("day").dt.weekday() < 6)["len"].mean()
    assert weekend < 0.75 * weekday, "the simulated fleet has no weekend rhythm to test with"
    result = detect_drift(cycles, START, last, DriftPolicy())
    assert result.findings.is_empty(), result.findings["detail"].to_list()
    # Tested, not skipped: the later days have baselines of 7 days or more.
    tested = result.baselines.filter(pl.col("window_days") >= 7)
    assert tested["day"].n_unique() >= DAYS - 7 - 1


def test_volume_alone_is_not_drift(quiet: Paths) -> None:
    """A day with a fifth of its cycles (a quiet holiday) raises nothing."""
    last = START + timedelta(days=DAYS - 1)
    cycles = read_cycles(quiet, START, last)
    thinned = pl.concat(
        [
            cycles.filter(pl.col("day") != last),
            cycles.filter(pl.col("day") == last).sample(fraction=0.2, seed=3),
        ]
    )
    assert detect_drift(thinned, last, last).findings.is_empty()


def test_a_shift_of_one_agent_is_found_for_that_agent(quiet: Paths) -> None:
    """Every cycle of one agent on the last day costs four times as much: that agent drifts."""
    last = START + timedelta(days=DAYS - 1)
    cycles = read_cycles(quiet, START, last)
    busiest = cycles.filter(pl.col("day") == last).group_by("agent_id").len().sort("len").row(-1)[0]
    target = (pl.col("day") == last) & (pl.col("agent_id") == busiest)
    shifted = cycles.with_columns(
        pl.when(target).then(pl.col("cost_usd") * 4).otherwise(pl.col("cost_usd")).alias("cost_usd")
    )
    findings = detect_drift(shifted, last, last).findings
    mine = findings.filter((pl.col("agent_id") == busiest) & (pl.col("metric") == "cost_per_cycle"))
    assert mine.height == 1 and mine["change_pct"][0] > 200
    assert findings.filter(
        pl.col("agent_id").is_not_null() & (pl.col("agent_id") != busiest)
    ).is_empty()


def test_no_finding_before_the_minimum_history(quiet: Paths) -> None:
    """The same shift on the fourth day is not judged: the baseline is too short."""
    day = START + timedelta(days=3)
    cycles = read_cycles(quiet, START, day).with_columns(
        pl.when(pl.col("day") == day).then(pl.col("cost_usd") * 10).otherwise(pl.col("cost_usd"))
    )
    result = detect_drift(cycles, day, day)
    assert result.findings.is_empty()
    assert result.baselines["window_days"].max() == 3
    # With the minimum lowered to 3 days, the very same data is a finding.
    lowered = DriftPolicy(min_history_days=3)
    assert not detect_drift(cycles, day, day, lowered).findings.is_empty()


def test_a_disabled_metric_or_a_type_override_silences_it(quiet: Paths) -> None:
    last = START + timedelta(days=DAYS - 1)
    cycles = read_cycles(quiet, START, last).with_columns(
        pl.when(pl.col("day") == last).then(pl.col("cost_usd") * 5).otherwise(pl.col("cost_usd"))
    )
    assert (
        not detect_drift(cycles, last, last)
        .findings.filter(pl.col("metric") == "cost_per_cycle")
        .is_empty()
    )
    off = DriftPolicy(metrics={"cost_per_cycle": {"enabled": False}})
    assert off.metrics["confidence"].direction == "down"  # the others keep their defaults
    assert detect_drift(cycles, last, last, off).findings.is_empty()
    types = cycles["agent_type"].unique().to_list()
    per_type = DriftPolicy(
        agent_types={t: {"cost_per_cycle": {"warning": 1000, "critical": 2000}} for t in types}
    )
    findings = detect_drift(cycles, last, last, per_type).findings
    assert findings.filter(pl.col("metric") == "cost_per_cycle").is_empty()


def test_the_shipped_policy_names_every_metric() -> None:
    shipped = load_drift_policy(Path(__file__).parents[1] / "policies" / "drift.yaml")
    assert set(shipped.metrics) == set(METRICS)
    assert shipped == DriftPolicy()


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("metrics:\n  confidence:\n    warning: -1\n", 3, "greater than 0"),
        ("metrics:\n  confidance: {warning: 1}\n", 2, "has an unknown metric 'confidance'"),
        ("window_days: 14\nmin_history_days: 20\n", 1, "min_history_days must not exceed"),
        ("metrics:\n  confidence: {direction: sideways}\n", 2, "'metrics.confidence.direction'"),
        ("agent_types:\n  KYCAgent:\n    cost: {warning: 1}\n", 2, "unknown metric 'cost'"),
        ("fdr: [0.1\n", 2, "not valid YAML"),
        (
            "agent_types:\n  KYCAgent:\n    confidence: {warning: 5}\n",
            2,
            "warning of KYCAgent confidence above",
        ),
    ],
)
def test_a_bad_drift_file_is_one_sentence_naming_file_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as caught:
        load_drift_policy(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line {line}: ") and words in message, message
    assert "\n" not in message
