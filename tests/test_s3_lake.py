"""The lake and the retrieval index on object storage: a local S3 server (moto), real Delta,
LanceDB and DuckDB on it.

Concurrent writers are safe on S3 because delta-rs commits with conditional writes (see
``agentops_assets.storage.lake``): two processes racing on one table must lose nothing.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from agentops_assets.cli.main import main
from agentops_assets.defs.memory.assets import knowledge_chunks, memory_facts, memory_index
from agentops_assets.defs.memory.checks import index_reflects_latest_memory
from agentops_assets.defs.memory.sensors import memory_version_sensor
from agentops_assets.defs.resources import LakeResource
from agentops_assets.storage import lake, sql
from agentops_assets.storage.config import (
    Paths,
    delta_storage_options,
    is_local,
    lance_storage_options,
)
from agentops_assets.storage.local_s3 import LocalS3
from agentops_assets.storage.maintenance import MaintenancePolicy, lance_tables, run_maintenance
from agentops_assets.storage.memory_stores import (
    index_exists,
    memory_store,
    refresh_index,
)
from agentops_assets.storage.memory_stores import (
    memory_index as open_index,
)
from agentops_assets.telemetry.ingest import ingest_landing
from memory import FactChange
from tests.conftest import event, write_jsonl

pytest_plugins = ("tests.s3_server",)  # the fixtures s3_server, s3_env, s3_paths

KNOWLEDGE = Path(__file__).parent.parent / "agentops_assets" / "examples" / "knowledge"
RACE_COMMITS = 10  # per writer
NO_RETENTION = MaintenancePolicy(
    delta_vacuum_retention_hours=0,
    delta_enforce_retention=False,
    lance_snapshot_max_age_days=0,
    lance_keep_latest=1,
)


def _keys(server: LocalS3, prefix: str) -> list[str]:
    """Every object key under ``prefix`` in the server's bucket."""
    pages = server.client().get_paginator("list_objects_v2")
    return [
        item["Key"]
        for page in pages.paginate(Bucket=server.bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    ]


def _prefix(uri: str) -> str:
    """The key prefix of an ``s3://bucket/key`` URI."""
    return uri.split("/", 3)[3]


# -- configuration ---------------------------------------------------------------------------


def test_storage_options_come_from_the_environment_for_object_stores_only(
    s3_paths: Paths,
) -> None:
    delta = delta_storage_options(s3_paths.lake_uri)
    assert delta["AWS_ENDPOINT_URL"] == os.environ["AWS_ENDPOINT_URL"]
    assert delta["AWS_ALLOW_HTTP"] == "true" and "AWS_DEFAULT_REGION" not in delta
    lance = lance_storage_options(s3_paths.index_uri)
    assert lance["aws_endpoint"] == os.environ["AWS_ENDPOINT_URL"]
    assert lance["allow_http"] == "true"
    local = str(s3_paths.home / "lake")
    assert delta_storage_options(local) == {} and lance_storage_options(local) == {}
    assert is_local(local) and is_local(f"file://{local}") and not is_local(s3_paths.lake_uri)


def test_the_local_layout_is_unchanged_without_uris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AGENTOPS_LAKE_URI", "AGENTOPS_INDEX_URI"):
        monkeypatch.delenv(name, raising=False)
    paths = Paths.from_env(tmp_path)
    assert paths.lake_uri == str(tmp_path / "lake")
    assert paths.index_uri == str(paths.lance) == str(tmp_path / "lance")
    assert Paths(tmp_path, str(tmp_path / "lake")).index_uri == str(tmp_path / "lance")


def test_the_server_refuses_a_second_create_of_one_key(s3_server: LocalS3) -> None:
    """What the commit protocol relies on: ``PUT If-None-Match: *`` fails on an existing key
    (without it, the race test below would lose commits)."""
    client = s3_server.client()
    key = "conditional/_delta_log/00000000000000000000.json"
    client.put_object(Bucket=s3_server.bucket, Key=key, Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=s3_server.bucket, Key=key, Body=b"second", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    body = client.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()
    assert body == b"first"


# -- (a) two processes racing on one table ----------------------------------------------------


def _append_rows(env: dict[str, str], writer: str, commits: int, start: object) -> None:
    """One racing writer: ``commits`` appends of one row each, after the common start."""
    os.environ.update(env)
    uri = Paths.from_env().table_uri("race")
    start.wait()  # type: ignore[attr-defined]
    for seq in range(commits):
        frame = pl.DataFrame({"writer": [writer], "seq": [seq]})
        lake.append(uri, frame, metadata={"race.writer": writer})


def test_two_processes_racing_appends_on_s3_lose_no_commit(
    s3_paths: Paths, s3_env: dict[str, str]
) -> None:
    uri = s3_paths.table_uri("race")  # not created yet: the two writers race to create it too
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    writers = [
        context.Process(target=_append_rows, args=(s3_env, name, RACE_COMMITS, start))
        for name in ("a", "b")
    ]
    began = time.perf_counter()
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=300)
    seconds = time.perf_counter() - began
    assert [p.exitcode for p in writers] == [0, 0]

    rows = lake.read(uri)
    expected = {(w, s) for w in ("a", "b") for s in range(RACE_COMMITS)}
    assert set(rows.select("writer", "seq").iter_rows()) == expected
    assert rows.height == 2 * RACE_COMMITS  # every row once: no lost and no doubled commit
    table = lake.open_table(uri)
    assert table.version() == 2 * RACE_COMMITS - 1  # versions 0..2N-1: one per commit
    order = [entry["race.writer"] for entry in reversed(table.history())]
    assert len(order) == 2 * RACE_COMMITS
    switches = sum(1 for x, y in zip(order, order[1:], strict=False) if x != y)
    assert switches >= 2, f"the writers did not overlap: {''.join(order)}"
    print(
        f"\nrace: 2 processes x {RACE_COMMITS} appends on S3 in {seconds:.1f} s, "
        f"{table.version() + 1} versions, {rows.height} rows, commit order {''.join(order)} "
        f"({switches} switches), load {os.getloadavg()[0]:.1f}"
    )


# -- (b) the telemetry pipeline on S3 ---------------------------------------------------------


def test_ingestion_writes_agent_events_on_s3_and_sql_reads_them(
    s3_paths: Paths, s3_server: LocalS3
) -> None:
    write_jsonl(s3_paths.landing / "a.jsonl", [event(n) for n in range(40)])
    write_jsonl(s3_paths.landing / "b.jsonl.gz", [event(n) for n in range(40, 60)], compress=True)

    report = ingest_landing(s3_paths)

    assert len(report.files) == 2 and report.new_rows == 60
    keys = _keys(s3_server, _prefix(s3_paths.table_uri("agent_events")))
    assert any("/_delta_log/" in key for key in keys) and any(k.endswith(".parquet") for k in keys)
    assert not (s3_paths.home / "lake").exists()  # nothing of the lake went to the local disk
    counted = sql.query(
        s3_paths, "SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM agent_events"
    )
    assert counted.row(0) == (60, 60)
    by_agent = sql.query(
        s3_paths,
        "SELECT agent_id, sum(input_tokens) AS tokens FROM agent_events GROUP BY agent_id",
    )
    assert by_agent.row(0) == ("finance-agent-01", 60 * 1200)
    assert ingest_landing(s3_paths).files == []  # the files ingested before are known


def test_sql_on_s3_stays_read_only_and_cannot_reach_the_bucket_itself(s3_paths: Paths) -> None:
    write_jsonl(s3_paths.landing / "a.jsonl", [event(n) for n in range(5)])
    ingest_landing(s3_paths)
    with pytest.raises(sql.ReadOnlyError):
        sql.query(s3_paths, "DELETE FROM agent_events")
    target = f"{s3_paths.table_uri('agent_events')}/**/*.parquet"
    with pytest.raises(duckdb.Error):  # DuckDB's own file access is off in the session
        sql.query(s3_paths, f"SELECT count(*) FROM read_parquet('{target}')")
    assert sql.query(s3_paths, "SELECT count(*) FROM agent_events").item() == 5


# -- (c) memory and index on S3 ---------------------------------------------------------------


def _landing_with_memory(paths: Paths) -> None:
    write_jsonl(
        paths.landing / "memory.jsonl",
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


def test_memory_commit_rollback_and_search_with_memory_and_index_on_s3(
    s3_paths: Paths, s3_server: LocalS3
) -> None:
    agent = "finance-agent-01"
    _landing_with_memory(s3_paths)
    shutil.copytree(KNOWLEDGE, s3_paths.knowledge)
    resources = {"lake": LakeResource(home=str(s3_paths.home))}
    built = dg.materialize(
        [memory_facts, knowledge_chunks, memory_index, index_reflects_latest_memory],
        resources=resources,
    )
    assert built.success
    (check,) = built.get_asset_check_evaluations()
    assert check.passed
    assert index_exists(s3_paths) and not (s3_paths.home / "lance").exists()
    assert lance_tables(s3_paths.index_uri) == ["memory_index"]
    assert _keys(s3_server, _prefix(s3_paths.index_uri))  # the index lives in the bucket

    store = memory_store(s3_paths)
    before = store.version()
    wrong = store.commit(
        agent,
        [FactChange.update("finance.rule1", content="Refunds never need a second approver.")],
        message="a wrong lesson",
        author="test",
    )
    assert wrong is not None and wrong.version == before + 1
    undone = store.rollback(agent, before, reason="the lesson was wrong", author="test")
    assert undone is not None and undone.version == before + 2
    assert "never need" not in {f.fact_id: f.content for f in store.as_of(agent)}["finance.rule1"]

    with dg.instance_for_test() as instance:  # the index is behind: the sensor asks a refresh
        request = memory_version_sensor(
            dg.build_sensor_context(instance=instance, resources=resources)
        )
        assert isinstance(request, dg.RunRequest)
        assert request.run_key == f"memory-v{undone.version}"

    index = open_index(s3_paths)
    refresh_index(index, s3_paths, version=wrong.version)
    done = refresh_index(index, s3_paths)
    assert done.memory_version == undone.version == index.memory_version()
    now = index.search("second approver", agent_id=agent, k=10, mode="text")
    assert {h.kind for h in now} >= {"fact"}
    assert all("never need" not in h.content for h in now)
    then = index.search("never need", agent_id=agent, k=3, as_of_version=wrong.version)
    assert then[0].content == "Refunds never need a second approver."
    assert index.versions()[-2:] == [wrong.version, undone.version]

    found = CliRunner().invoke(
        main, ["memory", "search", "second approver", "--agent", agent, "--mode", "text"]
    )
    assert found.exit_code == 0, found.output
    assert f"memory v{undone.version}" in found.output


def test_cli_memory_search_on_s3_says_when_there_is_no_index(s3_paths: Paths) -> None:
    memory_store(s3_paths).commit(
        "fin-1", [FactChange.add("Refunds need approval.", fact_id="r")], message="m", author="t"
    )
    assert not index_exists(s3_paths)
    result = CliRunner().invoke(main, ["memory", "search", "refund"])
    assert result.exit_code == 1 and "no retrieval index yet" in result.output
    assert "Traceback" not in result.output


# -- (d) listing tables on S3 -----------------------------------------------------------------


def test_list_tables_on_s3_finds_tables_only(s3_paths: Paths, s3_server: LocalS3) -> None:
    assert lake.list_tables(s3_paths) == {}  # no lake yet: nothing, no error
    for name in ("alpha", "beta"):
        lake.append(s3_paths.table_uri(name), pl.DataFrame({"n": [1]}))
    stray = f"{_prefix(s3_paths.lake_uri)}/notes/readme.txt"  # a prefix without a Delta log
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=stray, Body=b"not a table")

    assert lake.list_tables(s3_paths) == {
        "alpha": s3_paths.table_uri("alpha"),
        "beta": s3_paths.table_uri("beta"),
    }
    assert lake.table_exists(s3_paths.table_uri("alpha"))
    assert not lake.table_exists(s3_paths.table_uri("notes"))
    assert lake.scan(s3_paths.table_uri("gamma")) is None


# -- (e) maintenance on S3 --------------------------------------------------------------------


def test_maintenance_compacts_and_vacuums_s3_tables_and_the_s3_index(
    s3_paths: Paths, s3_server: LocalS3
) -> None:
    uri = s3_paths.table_uri("event_costs")
    for n in range(8):
        day = f"2026-11-{1 + n % 2:02d}"
        lake.append(uri, pl.DataFrame({"day": [day], "n": [n]}), partition_by=["day"])
    expected = lake.read(uri).sort("n")
    parquet = _prefix(uri)
    before = [k for k in _keys(s3_server, parquet) if k.endswith(".parquet")]
    index = open_index(s3_paths)
    store = memory_store(s3_paths)
    for n in range(3):
        store.commit("a", [FactChange.put("f", f"fact {n}")], message="m", author="t")
        refresh_index(index, s3_paths)
    time.sleep(1.1)  # cleanup keeps what is younger than a second before the oldest kept tag

    report = run_maintenance(s3_paths, NO_RETENTION)

    by_table = {(t.store, t.table): t for t in report.tables}
    costs = by_table["delta", "event_costs"]
    assert costs.files_removed == 8 and costs.files_added == 2  # one file per day
    assert costs.files_vacuumed == 8 and costs.bytes_freed > 0
    after = [k for k in _keys(s3_server, parquet) if k.endswith(".parquet")]
    assert len(after) == 2 < len(before)
    assert lake.read(uri).sort("n").equals(expected)
    assert ("delta", "memory_facts") in by_table
    lance = by_table["lance", "memory_index"]
    assert lance.snapshots_pruned and lance.versions_removed > 0
    assert index.search("fact 2", k=1, mode="text")[0].content == "fact 2"


def test_a_chaos_drills_scratch_copy_of_an_s3_lake_is_local_and_leaves_s3_alone(
    s3_paths: Paths, tmp_path: Path
) -> None:
    from agentops_assets.control.chaos import scratch_copy

    s3_paths.home.mkdir(parents=True)
    uri = s3_paths.table_uri("drill_probe")
    lake.append(uri, pl.DataFrame({"n": [1, 2, 3]}))
    scratch = scratch_copy(s3_paths, tmp_path / "scratch")
    assert scratch.lake_uri == str(tmp_path / "scratch" / "lake")
    copied = scratch.table_uri("drill_probe")
    assert lake.read(copied).get_column("n").to_list() == [1, 2, 3]
    lake.append(copied, pl.DataFrame({"n": [4]}))  # the drill writes to its copy only
    assert lake.read(uri).height == 3
    assert lake.read(copied).height == 4
