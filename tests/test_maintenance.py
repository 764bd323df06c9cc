"""Lake and index maintenance: compaction, vacuum, snapshot pruning, and its Dagster asset."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import lancedb
import polars as pl
import pytest
from deltalake import DeltaTable

from agentops_assets.definitions import defs
from agentops_assets.defs.maintenance.assets import lake_maintenance
from agentops_assets.defs.resources import LakeResource
from agentops_assets.storage.config import Paths
from agentops_assets.storage.maintenance import (
    MaintenancePolicy,
    MaintenancePolicyError,
    load_policy,
    prune_tags,
    run_maintenance,
)
from memory import FactChange, MemoryStore
from memory.embedders import HashingEmbedder
from memory.retrieval import MemoryIndex

NO_RETENTION = MaintenancePolicy(
    delta_vacuum_retention_hours=0,
    delta_enforce_retention=False,
    lance_snapshot_max_age_days=0,
    lance_keep_latest=2,
)


def _fragmented_table(paths: Paths, name: str = "event_costs") -> pl.DataFrame:
    """A table written in many small appends, then partly overwritten: its expected rows."""
    uri = paths.table_uri(name)
    for n in range(12):
        pl.DataFrame({"day": [f"2026-11-{1 + n % 3:02d}"], "n": [n]}).write_delta(
            uri, mode="append", delta_write_options={"partition_by": ["day"]}
        )
    rewrite = pl.DataFrame({"day": ["2026-11-01"] * 2, "n": [100, 101]})
    rewrite.write_delta(
        uri,
        mode="overwrite",
        delta_write_options={"partition_by": ["day"], "predicate": "day = '2026-11-01'"},
    )
    return pl.read_delta(uri).sort("n")


def _files_on_disk(paths: Paths, name: str) -> int:
    return len(list(Path(paths.table_uri(name)).rglob("*.parquet")))


def _index(paths: Paths, tags: int, *, recent: int = 0) -> lancedb.table.Table:
    """A LanceDB table in the index folder with one ``memory-v{N}`` tag per write.

    The last ``recent`` writes come 1.5 s after the others, so that cleanup, which stops a
    second short of the oldest tag kept, has older versions to remove.
    """
    database = lancedb.connect(paths.lance)
    table = database.create_table(
        "memory_index", data=[{"id": "a", "text": "alpha", "vector": [1.0, 0.0]}]
    )
    for n in range(1, tags + 1):
        if n == tags - recent + 1:
            time.sleep(1.5)
        table.add([{"id": f"r{n}", "text": f"row {n}", "vector": [float(n), 1.0]}])
        table.tags.create(f"memory-v{n}", table.version)
    return table


def test_delta_maintenance_compacts_vacuums_and_keeps_the_rows(paths: Paths) -> None:
    expected = _fragmented_table(paths)
    before = _files_on_disk(paths, "event_costs")

    report = run_maintenance(paths, NO_RETENTION)

    (table,) = report.tables
    assert table.table == "event_costs" and table.store == "delta"
    assert table.files_removed > table.files_added >= 1
    assert table.files_vacuumed > 0 and table.bytes_freed > 0
    assert _files_on_disk(paths, "event_costs") < before
    live = DeltaTable(paths.table_uri("event_costs")).file_uris()
    assert _files_on_disk(paths, "event_costs") == len(live)
    assert pl.read_delta(paths.table_uri("event_costs")).sort("n").equals(expected)


def test_default_retention_keeps_recent_files(paths: Paths) -> None:
    _fragmented_table(paths)
    report = run_maintenance(paths, MaintenancePolicy())
    (table,) = report.tables
    assert table.files_removed > 0  # compaction runs whatever the retention
    assert table.files_vacuumed == 0 and table.bytes_freed == 0  # nothing is a week old


def test_lance_pruning_drops_old_tags_keeps_the_newest_and_search_works(paths: Paths) -> None:
    _index(paths, tags=5, recent=2)

    report = run_maintenance(paths, NO_RETENTION)

    (lance,) = report.tables
    assert lance.store == "lance"
    assert lance.snapshots_pruned == ("memory-v1", "memory-v2", "memory-v3")
    assert lance.versions_removed > 0 and lance.bytes_freed > 0
    table = lancedb.connect(paths.lance).open_table("memory_index")
    assert sorted(table.tags.list()) == ["memory-v4", "memory-v5"]
    hits = table.search([5.0, 1.0]).limit(1).to_list()
    assert hits[0]["id"] == "r5"
    table.checkout("memory-v4")
    assert table.count_rows() == 5


def test_young_tags_stay_whatever_their_rank(paths: Paths) -> None:
    table = _index(paths, tags=4)
    assert prune_tags(table, keep_latest=1, max_age=timedelta(days=1)) == []
    assert prune_tags(table, keep_latest=1, max_age=timedelta(0)) == [
        "memory-v1",
        "memory-v2",
        "memory-v3",
    ]
    assert list(table.tags.list()) == ["memory-v4"]


def test_policy_defaults_and_one_sentence_errors(tmp_path: Path) -> None:
    assert load_policy(tmp_path) == MaintenancePolicy()
    assert load_policy(tmp_path).delta_vacuum_retention_hours == 168
    (tmp_path / "maintenance.yaml").write_text("lance_keep_latest: 0\n")
    with pytest.raises(MaintenancePolicyError, match="lance_keep_latest must be"):
        load_policy(tmp_path)
    (tmp_path / "maintenance.yaml").write_text("delta_vacuum_retention_hours: 1\n")
    with pytest.raises(MaintenancePolicyError, match="below Delta's minimum"):
        load_policy(tmp_path)
    (tmp_path / "maintenance.yaml").write_text("vacuum_hours: 1\n")
    with pytest.raises(MaintenancePolicyError, match="unknown setting"):
        load_policy(tmp_path)


def test_shipped_policy_loads() -> None:
    shipped = load_policy(Paths.from_env().policies)
    assert shipped.delta_vacuum_retention_hours >= 168 and shipped.lance_keep_latest >= 1


def test_materializing_lake_maintenance_reports_the_figures(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "maintenance.yaml").write_text(
        "delta_vacuum_retention_hours: 0\ndelta_enforce_retention: false\n"
        "lance_snapshot_max_age_days: 0\nlance_keep_latest: 1\n"
    )
    monkeypatch.setenv("AGENTOPS_POLICIES", str(policies))
    _fragmented_table(paths)
    _index(paths, tags=3, recent=1)

    result = dg.materialize(
        [lake_maintenance], resources={"lake": LakeResource(home=str(paths.home))}
    )

    assert result.success
    (materialization,) = result.asset_materializations_for_node("lake_maintenance")
    metadata = materialization.metadata
    assert metadata["tables"].value == 2
    assert metadata["files_compacted"].value > 0
    assert metadata["files_vacuumed"].value > 0
    assert metadata["bytes_freed"].value > 0
    assert metadata["snapshots_pruned"].value == 2
    per_table = {(r.data["store"], r.data["table"]): r.data for r in metadata["per_table"].records}
    assert per_table.keys() == {("delta", "event_costs"), ("lance", "memory_index")}
    assert (
        sum(r["files_compacted"] for r in per_table.values()) == metadata["files_compacted"].value
    )
    assert sum(r["snapshots_pruned"] for r in per_table.values()) == 2
    assert per_table["delta", "event_costs"]["files_vacuumed"] > 0
    types = {c.name: c.type for c in metadata["per_table"].schema.columns}
    assert (types["store"], types["files_vacuumed"], types["mb_freed"]) == (
        "string",
        "int",
        "float",
    )


def test_schedule_and_job_are_registered() -> None:
    schedule = defs.resolve_schedule_def("maintenance_daily_schedule")
    assert schedule.cron_schedule == "15 3 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "maintenance_job"
    job = defs.resolve_job_def("maintenance_job")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        "lake_maintenance"
    }
    assert lake_maintenance.op.pool == "agentops_lake_writers"


def test_real_memory_index_survives_maintenance(paths: Paths) -> None:
    store = MemoryStore(paths.table_uri("memory_facts"))
    index = MemoryIndex(paths.lance, embedder=HashingEmbedder(32))
    for n in range(4):
        if n == 3:
            time.sleep(1.5)  # the kept snapshot comes after the others (see _index)
        change = FactChange.add(f"Discount rule number {n}.", fact_id=f"rule.{n}", namespace="p")
        store.commit("finance-agent-01", [change], message="learn", author="test")
        index.refresh_facts(store.uri)
    latest = index.memory_version()
    expected = index.search("discount rule", agent_id="finance-agent-01", mode="text")

    report = run_maintenance(paths, NO_RETENTION)

    by_store = {t.store: t for t in report.tables}
    assert by_store["delta"].files_vacuumed > 0
    assert len(by_store["lance"].snapshots_pruned) == 2
    fresh = MemoryIndex(paths.lance, embedder=HashingEmbedder(32))
    assert fresh.versions()[-1] == latest and len(fresh.versions()) == 2
    again = fresh.search("discount rule", agent_id="finance-agent-01", mode="text")
    assert sorted(h.content for h in again) == sorted(h.content for h in expected)
    assert fresh.search("discount rule", agent_id="finance-agent-01", as_of_version=latest)
