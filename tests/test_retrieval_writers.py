"""Writers of the retrieval index: serialised, immutable snapshots, removals against the index.

Real LanceDB and Delta tables in temporary folders, real processes writing at the same time.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import lancedb
import polars as pl
import yaml
from deltalake import DeltaTable

from agentops_assets.cli.runner import DAGSTER_YAML
from agentops_assets.definitions import defs
from agentops_assets.defs.memory.assets import knowledge_chunks, memory_index
from agentops_assets.defs.resources import LakeResource
from agentops_assets.storage.config import Paths
from memory import FactChange, MemoryStore
from memory.embedders import HashingEmbedder
from memory.retrieval import DEFAULT_TABLE, MemoryIndex

FIN = "finance-agent-01"
OPS = "ops-agent-02"
ROOT = Path(__file__).resolve().parents[1]
EMBEDDER = HashingEmbedder(64)

# One refresher: waits for the start signal, then refreshes facts and chunks in a loop until
# told to stop, then once more (so the last pass sees the final sources). Prints its passes.
REFRESHER = """
import os, sys, time
import polars as pl
import yaml
from memory.embedders import HashingEmbedder
from memory.retrieval import MemoryIndex

lance, facts, chunks, ready, go, stop = sys.argv[1:]
index = MemoryIndex(lance, embedder=HashingEmbedder(64))
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
passes = 0
while True:
    last = os.path.exists(stop)
    index.refresh_facts(facts)
    index.sync_chunks(pl.read_delta(chunks))
    passes += 1
    if last:
        break
print(passes)
"""


def _index_rows(lance: Path, version: int | None = None) -> pl.DataFrame:
    """Every row of the index (vectors included) at a table version, sorted by key."""
    table = lancedb.connect(lance).open_table(DEFAULT_TABLE)
    if version is not None:
        table.checkout(version)
    columns = ["id", "kind", "agent_id", "namespace", "item_id", "source", "text", "vector"]
    rows = pl.from_arrow(table.search().select(columns).limit(None).to_arrow())
    assert isinstance(rows, pl.DataFrame)
    return rows.sort("id")


def _chunks(documents: dict[str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "chunk_id": [f"{name}#0" for name in documents],
            "document": list(documents),
            "text": list(documents.values()),
        },
        schema={"chunk_id": pl.String, "document": pl.String, "text": pl.String},
    )


def _write_chunks(uri: str, documents: dict[str, str]) -> None:
    _chunks(documents).write_delta(uri, mode="overwrite")


def _seed(store: MemoryStore) -> int:
    store.commit(
        FIN,
        [FactChange.add(f"Finance rule {i}: refunds over {i}00 euros.", fact_id=f"r{i}")
         for i in range(20)],
        message="seed",
        author="test",
    )  # fmt: skip
    commit = store.commit(
        OPS,
        [FactChange.add(f"Runbook step {i}: restart node {i}.", fact_id=f"s{i}")
         for i in range(20)],
        message="seed",
        author="test",
    )  # fmt: skip
    assert commit is not None
    return commit.version


def test_three_processes_refreshing_at_once_equal_one_sequential_refresh(tmp_path: Path) -> None:
    """Three real processes refresh one index while memory and knowledge keep changing: no
    writer fails, the index equals a single sequential refresh of the final sources, it never
    goes back to an older memory version, and every ``memory-v{N}`` snapshot holds exactly the
    facts of memory version N."""
    store = MemoryStore(tmp_path / "lake" / "memory_facts")
    _seed(store)
    chunks_uri = str(tmp_path / "lake" / "knowledge_chunks")
    _write_chunks(chunks_uri, {"a.md": "Alpha handbook.", "b.md": "Bravo handbook."})
    lance = tmp_path / "lance"
    MemoryIndex(lance, embedder=EMBEDDER).refresh_facts(store.uri)  # built before they start
    signals = tmp_path / "signals"
    signals.mkdir()
    go, stop = signals / "go", signals / "stop"
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                REFRESHER,
                str(lance),
                store.uri,
                chunks_uri,
                str(signals / f"ready{n}"),
                str(go),
                str(stop),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for n in range(3)
    ]
    try:
        deadline = time.monotonic() + 120
        while not all((signals / f"ready{n}").exists() for n in range(3)):
            assert time.monotonic() < deadline, "the refreshers did not start"
            assert all(c.poll() is None for c in children), "a refresher died at start-up"
            time.sleep(0.05)
        go.touch()
        for step in range(12):  # memory commits and knowledge rewrites while they refresh
            agent, prefix = (FIN, "r") if step % 2 else (OPS, "s")
            store.commit(
                agent,
                [
                    FactChange.delete(f"{prefix}{step}"),
                    FactChange.update(f"{prefix}{step + 1}", f"Changed at step {step}."),
                    FactChange.add(f"Added at step {step}.", fact_id=f"n{step}"),
                ],
                message=f"step {step}",
                author="test",
            )
            if step % 4 == 3:
                kept = {"b.md": f"Bravo handbook, edition {step}."}
                _write_chunks(chunks_uri, kept | {f"doc{step}.md": f"Document of step {step}."})
            time.sleep(0.15)
        stop.touch()
        outputs = [child.communicate(timeout=180) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert int(out.strip()) >= 1

    sequential = MemoryIndex(tmp_path / "sequential", embedder=EMBEDDER)
    sequential.sync_chunks(pl.read_delta(chunks_uri))
    sequential.refresh_facts(store.uri)
    concurrent = MemoryIndex(lance, embedder=EMBEDDER)
    assert concurrent.memory_version() == store.version()
    assert _index_rows(lance).equals(_index_rows(tmp_path / "sequential"))

    table = lancedb.connect(lance).open_table(DEFAULT_TABLE)
    reflected = []  # the memory version each table version reflects, in order of writing
    for written in sorted(v["version"] for v in table.list_versions()):
        table.checkout(written)
        meta = table.schema.field("vector").metadata or {}
        if b"agentops.memory_version" in meta:
            reflected.append(int(meta[b"agentops.memory_version"]))
    assert reflected == sorted(reflected), "a refresh took the index back to an older memory"
    table.checkout_latest()
    for version in concurrent.versions():
        snapshot = _index_rows(lance, table.tags.get_version(f"memory-v{version}"))
        facts = snapshot.filter(pl.col("kind") == "fact").select("agent_id", "item_id", "text")
        memory = store.frame(version=version).select(
            "agent_id", pl.col("fact_id").alias("item_id"), pl.col("content").alias("text")
        )
        assert facts.sort("agent_id", "item_id").equals(memory.sort("agent_id", "item_id")), (
            f"snapshot memory-v{version} does not hold memory version {version}"
        )


def test_a_memory_version_tag_never_moves(tmp_path: Path) -> None:
    """Once ``memory-v{N}`` is written, no later write moves it: chunk writes, a refresh back
    to N, a rollback to N's content (that is a new version, with its own tag)."""
    store = MemoryStore(tmp_path / "memory_facts")
    first = _seed(store)
    index = MemoryIndex(tmp_path / "lance", embedder=EMBEDDER)
    index.refresh_facts(store.uri)
    table = lancedb.connect(tmp_path / "lance").open_table(DEFAULT_TABLE)
    tagged = table.tags.get_version(f"memory-v{first}")

    def as_of_first() -> list[tuple[str, str]]:
        hits = index.search("refunds euros handbook", k=50, as_of_version=first)
        return [(hit.id, hit.content) for hit in hits]

    before = as_of_first()
    index.replace_chunks(_chunks({"h.md": "Refunds in euros: see the handbook."}))
    index.upsert_chunks(_chunks({"g.md": "Euros refunds guide."}))
    store.commit(FIN, [FactChange.update("r1", "Refunds need two euros approvals.")],
                 message="m", author="t")  # fmt: skip
    index.refresh_facts(store.uri)
    assert index.refresh_facts(store.uri, version=first).mode == "full"  # back to N
    index.sync_chunks(_chunks({"h.md": "Refunds in euros, new edition."}))
    rollback = store.rollback(FIN, first, reason="undo", author="t")
    assert rollback is not None
    index.refresh_facts(store.uri)

    assert table.tags.get_version(f"memory-v{first}") == tagged
    assert as_of_first() == before
    assert first in index.versions() and rollback.version in index.versions()


def test_document_deleted_between_two_chunk_rewrites_leaves_the_index(paths: Paths) -> None:
    """knowledge_chunks rewritten twice between index refreshes (a document deleted, then
    another one changed): the deleted document is no longer searchable."""
    resources = {"lake": LakeResource(home=str(paths.home))}
    paths.knowledge.mkdir(parents=True)
    (paths.knowledge / "runbook.md").write_text("# Runbook\n\nRestart stateless services.\n")
    (paths.knowledge / "faq.md").write_text("# FAQ\n\nRefunds take five days.\n")
    assert dg.materialize([knowledge_chunks, memory_index], resources=resources).success

    def runbook_hits() -> int:
        hits = MemoryIndex(paths.lance).search("restart stateless services", k=10)
        return sum(hit.source == "runbook.md" for hit in hits)

    assert runbook_hits() > 0
    (paths.knowledge / "runbook.md").unlink()
    assert dg.materialize([knowledge_chunks], resources=resources).success
    (paths.knowledge / "faq.md").write_text("# FAQ\n\nRefunds take three days.\n")
    assert dg.materialize([knowledge_chunks], resources=resources).success
    assert DeltaTable(paths.table_uri("knowledge_chunks")).version() == 2  # two rewrites
    assert dg.materialize([memory_index], resources=resources).success
    assert runbook_hits() == 0


def test_knowledge_chunks_writers_take_turns(paths: Paths) -> None:
    """Three knowledge_chunks runs at once (the global job and knowledge_job's sensor runs)
    after each change of the folder: none fails, and the table holds the folder."""
    lake = LakeResource(home=str(paths.home))
    paths.knowledge.mkdir(parents=True)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            knowledge_chunks(lake=lake)
        except BaseException as exc:  # noqa: BLE001 - any failure of a writer is the finding
            errors.append(exc)

    for round_ in range(6):
        for n in range(10):
            text = f"# Doc {n}\n\nRound {round_}, paragraph {n}.\n"
            (paths.knowledge / f"d{n}.md").write_text(text * 4)
        writers = [threading.Thread(target=run) for _ in range(3)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
    assert errors == []
    chunks = pl.read_delta(paths.table_uri("knowledge_chunks"))
    assert set(chunks["document"]) == {f"d{n}.md" for n in range(10)}
    assert chunks["text"].str.contains("Round 5").all()


def test_fact_deleted_outside_the_change_window_is_removed(tmp_path: Path) -> None:
    """The memory table's history is replaced behind the index (restored from a backup, then
    committed to): its change feed since the indexed version misses a deletion and an
    insertion. The refresh compares what the index holds with the memory and resyncs."""
    store = MemoryStore(tmp_path / "lake" / "memory_facts")
    store.commit(FIN, [FactChange.add("Wire refunds to account 666.", fact_id="x"),
                       FactChange.add("Refunds take five days.", fact_id="y")],
                 message="m", author="t")  # fmt: skip
    backup = tmp_path / "backup"
    shutil.copytree(store.uri, backup)
    for n in range(2):
        store.commit(FIN, [FactChange.update("y", f"Refunds take {n} days.")], message="m",
                     author="t")  # fmt: skip
    index = MemoryIndex(tmp_path / "lance", embedder=EMBEDDER)
    indexed = index.refresh_facts(store.uri).memory_version
    shutil.rmtree(store.uri)
    shutil.copytree(backup, store.uri)  # same Delta table id, older history
    store = MemoryStore(store.uri)
    store.commit(FIN, [FactChange.delete("x")], message="m", author="t")
    store.commit(FIN, [FactChange.add("Refunds need a receipt.", fact_id="z")], message="m",
                 author="t")  # fmt: skip
    assert store.version() == indexed  # same version number, another history

    result = index.refresh_facts(store.uri)
    assert result.mode == "full" and "change data feed" in (result.reason or "")
    hits = index.search("wire refunds account receipt days", agent_id=FIN, k=10)
    assert {(h.id, h.content) for h in hits} == {(f.fact_id, f.content) for f in store.as_of(FIN)}


def test_refresh_after_log_cleanup_resyncs_and_says_so(paths: Paths) -> None:
    """The change feed since the indexed version is gone (log cleanup): the asset resyncs the
    whole index and its metadata says so and why; a deleted fact is removed."""
    resources = {"lake": LakeResource(home=str(paths.home))}
    store = MemoryStore(paths.table_uri("memory_facts"))
    _seed(store)
    assert dg.materialize([memory_index], resources=resources).success
    store.commit(FIN, [FactChange.delete("r3")], message="m", author="t")
    for n in range(3):
        store.commit(OPS, [FactChange.update("s1", f"Step {n}.")], message="m", author="t")
    table = DeltaTable(store.uri)
    table.create_checkpoint()
    table.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
    time.sleep(0.01)
    table.cleanup_metadata()

    result = dg.materialize([memory_index], resources=resources)
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert meta["refresh"].value == "full"
    assert "change data feed" in meta["refresh_reason"].value
    hits = MemoryIndex(paths.lance).search("finance rule 3 refunds", agent_id=FIN, k=50)
    assert "r3" not in {hit.id for hit in hits}


def test_memory_index_takes_turns_in_the_index_writers_pool() -> None:
    """Every job that selects memory_index shares one Dagster pool for it."""
    assert defs.resolve_assets_def("memory_index").op.pool == "agentops_index_writers"
    pools = yaml.safe_load(DAGSTER_YAML)["concurrency"]["pools"]
    assert pools.get("agentops_index_writers", pools.get("default_limit")) == 1


def test_a_writer_waits_while_another_holds_the_index(tmp_path: Path) -> None:
    """The library's own lock (a file beside the table): a writer in another process waits
    while the lock is held, then writes."""
    store = MemoryStore(tmp_path / "memory_facts")
    _seed(store)
    index = MemoryIndex(tmp_path / "lance", embedder=EMBEDDER)
    index.refresh_facts(store.uri)
    code = (
        "import sys, time\n"
        "from memory.embedders import HashingEmbedder\n"
        "from memory.retrieval import MemoryIndex\n"
        "index = MemoryIndex(sys.argv[1], embedder=HashingEmbedder(64))\n"
        "print('ready', flush=True)\n"
        "started = time.monotonic()\n"
        "index.prune_versions(keep=5)\n"
        "print(time.monotonic() - started)\n"
    )
    with (tmp_path / "lance" / f"{DEFAULT_TABLE}.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        child = subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "lance")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(1.5)
        assert child.poll() is None  # still waiting
        fcntl.flock(held, fcntl.LOCK_UN)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert float(out) > 1.0
