"""Declarative automation: a file dropped into landing flows on with only the daemon running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from agentops_assets.cli.dagster_instance import open_instance, prepare_dagster_home
from agentops_assets.defs.automation import AUTOMATION_SENSOR
from agentops_assets.storage.config import Paths
from tests.conftest import event, write_jsonl

DEADLINE_SECONDS = 420
DEFINITIONS = "agentops_assets.definitions"


def _today_events(day: str) -> list[dict[str, object]]:
    return [event(n, ts=f"{day}T00:{n:02d}:00.000000Z") for n in range(20)]


def _materialized(instance, key: str, partition: str | None = None) -> bool:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(key), asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    return bool(records)


def test_the_automation_sensor_is_on_by_default() -> None:
    from agentops_assets.definitions import defs

    sensor = next(s for s in defs.sensors if s.name == AUTOMATION_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    for key in ("memory_facts", "memory_index", "event_costs", "budget_compliance"):
        assert graph.get(dg.AssetKey(key)).automation_condition is not None, key


def test_a_dropped_file_reaches_memory_and_todays_finops_with_only_the_daemon(
    paths: Paths,
) -> None:
    home = prepare_dagster_home(paths)
    day = datetime.now(UTC).date().isoformat()
    write_jsonl(paths.landing / "agent-1.jsonl", _today_events(day))
    env = {**os.environ, "DAGSTER_HOME": str(home), "AGENTOPS_HOME": str(paths.home)}
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-m", DEFINITIONS],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        started = time.monotonic()
        reached: dict[str, bool] = {}
        while time.monotonic() - started < DEADLINE_SECONDS:
            with open_instance(paths) as instance:
                reached = {
                    "agent_events": _materialized(instance, "agent_events"),
                    "memory_facts": _materialized(instance, "memory_facts"),
                    "event_costs": _materialized(instance, "event_costs", day),
                    "budget_compliance": _materialized(instance, "budget_compliance", day),
                }
            if all(reached.values()):
                break
            if daemon.poll() is not None:
                pytest.fail(f"the daemon exited with {daemon.returncode}")
            time.sleep(5)
        assert all(reached.values()), f"not reached in {DEADLINE_SECONDS} s: {reached}"
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    costs = pl.read_delta(paths.table_uri("event_costs"))
    assert costs.filter(pl.col("event_date").cast(pl.Utf8) == day).height == 20
