"""The memory layer in Dagster: assets, the index check, and the two refresh sensors."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import polars as pl

from agentops_assets.definitions import defs
from agentops_assets.defs.memory.assets import knowledge_chunks, memory_facts, memory_index
from agentops_assets.defs.memory.checks import index_reflects_latest_memory
from agentops_assets.defs.memory.sensors import knowledge_sensor, memory_version_sensor
from agentops_assets.defs.resources import LakeResource
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from memory import FactChange, MemoryStore
from memory.retrieval import MemoryIndex
from tests.conftest import event, write_jsonl

KNOWLEDGE = Path(__file__).parent.parent / "agentops_assets" / "examples" / "knowledge"


def _resources(paths: Paths) -> dict[str, object]:
    return {"lake": LakeResource(home=str(paths.home))}


def _landing_with_memory(paths: Paths) -> None:
    write_jsonl(
        paths.landing / "a.jsonl",
        [
            event(
                n,
                trace_id=f"c{n}",
                ts=f"2026-11-18T09:{n:02d}:00Z",
                kind="memory_op",
                action="add",
                action_target=f"finance.rule{n}",
                input_context=f"Refund rule number {n}: second approver over $1,000.",
                attributes={"namespace": "finance", "fact_key": f"finance.rule{n}"},
            )
            for n in range(3)
        ],
    )
    ingest_landing(paths)


def test_memory_assets_checks_and_sensors_are_in_the_code_location() -> None:
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"memory_facts", "knowledge_chunks", "memory_index"} <= keys
    assert "index_reflects_latest_memory" in {key.name for key in graph.asset_check_keys}
    assert defs.resolve_sensor_def("knowledge_sensor").job_name == "knowledge_job"
    assert defs.resolve_sensor_def("memory_version_sensor").job_name == "memory_index_job"


def test_materializing_memory_builds_facts_chunks_and_a_current_index(paths: Paths) -> None:
    _landing_with_memory(paths)
    shutil.copytree(KNOWLEDGE, paths.knowledge)
    result = dg.materialize(
        [memory_facts, knowledge_chunks, memory_index, index_reflects_latest_memory],
        resources=_resources(paths),
    )
    assert result.success
    meta = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert meta["memory_facts"]["facts"].value == 3
    commits = meta["memory_facts"]["latest_commits"]
    assert [(c.name, c.type) for c in commits.schema.columns] == [
        ("version", "int"),
        ("agent", "string"),
        ("kind", "string"),
        ("message", "string"),
        ("approved_by", "string"),
    ]
    rows = [record.data for record in commits.records]
    assert len(rows) == 3 and rows[0]["version"] == meta["memory_facts"]["memory_version"].value
    assert {(row["agent"], row["approved_by"]) for row in rows} == {("finance-agent-01", None)}
    assert meta["memory_facts"]["not_applied"].records == []  # every cycle applied
    assert meta["knowledge_chunks"]["documents"].value == 4
    assert meta["memory_index"]["facts"].value == 3
    assert meta["memory_index"]["chunks"].value == meta["knowledge_chunks"]["chunks"].value
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
    hits = MemoryIndex(paths.lance).search("second approver", agent_id="finance-agent-01", k=10)
    assert {h.kind for h in hits} == {"fact", "chunk"}


def test_index_check_fails_when_memory_moved_on(paths: Paths) -> None:
    _landing_with_memory(paths)
    dg.materialize([memory_facts, knowledge_chunks, memory_index], resources=_resources(paths))
    store = MemoryStore(paths.table_uri("memory_facts"))
    store.commit("finance-agent-01", [FactChange.delete("finance.rule0")], message="m", author="t")
    result = dg.materialize(
        [memory_index, index_reflects_latest_memory],
        resources=_resources(paths),
        selection=dg.AssetSelection.checks(index_reflects_latest_memory),
    )
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed
    assert check.metadata["memory_version"].value > check.metadata["index_memory_version"].value


def test_memory_version_sensor_requests_one_refresh_per_new_version(paths: Paths) -> None:
    resources = _resources(paths)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources)
        assert isinstance(memory_version_sensor(context), dg.SkipReason)  # no memory yet
        _landing_with_memory(paths)
        dg.materialize([memory_facts], resources=resources)
        request = memory_version_sensor(context)
        assert isinstance(request, dg.RunRequest) and request.run_key.startswith("memory-v")
        again = dg.build_sensor_context(
            instance=instance, resources=resources, cursor=context.cursor
        )
        assert isinstance(memory_version_sensor(again), dg.SkipReason)
        dg.materialize([knowledge_chunks, memory_index], resources=resources)
        current = dg.build_sensor_context(instance=instance, resources=resources)
        skip = memory_version_sensor(current)
        assert isinstance(skip, dg.SkipReason) and "reflects" in skip.skip_message


def test_knowledge_sensor_fires_when_a_document_changes(paths: Paths) -> None:
    resources = _resources(paths)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources)
        shutil.copytree(KNOWLEDGE, paths.knowledge)
        first = knowledge_sensor(context)
        assert isinstance(first, dg.RunRequest)
        context = dg.build_sensor_context(
            instance=instance, resources=resources, cursor=context.cursor
        )
        assert isinstance(knowledge_sensor(context), dg.SkipReason)
        (paths.knowledge / "new.md").write_text("# New\n\nA new rule.\n")
        second = knowledge_sensor(context)
        assert isinstance(second, dg.RunRequest) and second.run_key != first.run_key


def test_knowledge_chunks_are_rewritten_only_when_the_folder_changes(paths: Paths) -> None:
    shutil.copytree(KNOWLEDGE, paths.knowledge)
    resources = _resources(paths)

    def rewritten() -> bool:
        result = dg.materialize([knowledge_chunks], resources=resources)
        (event,) = result.get_asset_materialization_events()
        return event.materialization.metadata["rewritten"].value

    def runbook_hits() -> int:
        dg.materialize([memory_index], resources=resources)
        hits = MemoryIndex(paths.lance).search("restart stateless services", k=10)
        return sum(h.source == "ops/runbook.md" for h in hits)

    assert rewritten() is True
    assert runbook_hits() > 0
    assert rewritten() is False
    (paths.knowledge / "ops" / "runbook.md").unlink()
    assert rewritten() is True
    chunks = pl.read_delta(paths.table_uri("knowledge_chunks"))
    assert "ops/runbook.md" not in set(chunks["document"])
    assert runbook_hits() == 0  # the removed document's chunks left the index too
