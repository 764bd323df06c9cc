"""Versioned agent memory fed from telemetry, and the knowledge documents beside it."""

import time

import dagster as dg

from agentops_assets.defs.resources import LakeResource
from agentops_assets.defs.telemetry.assets import LAKE_WRITERS_POOL
from agentops_assets.memory_feed.feed import (
    FEED_CYCLES,
    FeedReport,
    apply_cycle_commits,
    read_memory_events,
    split_cycles,
)
from agentops_assets.storage import lake as lake_tables
from agentops_assets.storage.memory_stores import memory_index as open_index
from agentops_assets.storage.memory_stores import memory_store, refresh_index
from agentops_assets.telemetry.schema import AGENT_EVENTS
from memory import TABLE_NAME as MEMORY_FACTS
from memory import Commit
from memory.knowledge import chunk_documents, find_documents, folder_fingerprint
from memory.retrieval import IndexNotFoundError

KNOWLEDGE_CHUNKS = "knowledge_chunks"


@dg.asset(
    name=MEMORY_FACTS,
    deps=[AGENT_EVENTS],
    group_name="memory",
    kinds={"delta"},
    pool=LAKE_WRITERS_POOL,
    automation_condition=dg.AutomationCondition.eager(),  # new telemetry flows on by itself
)
def memory_facts(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Every agent's facts, versioned: one commit per reasoning cycle's memory writes, and one
    per reviewer's correction (approved_by the reviewer). Time travel, diff and rollback with
    `agentops memory`."""
    paths = lake.paths
    store = memory_store(paths)
    commits, rejected = split_cycles(read_memory_events(paths))
    last = time.monotonic()

    def progress(done: int, total: int) -> None:
        nonlocal last
        if time.monotonic() - last >= 5:
            last = time.monotonic()
            context.log.info(f"applied {done}/{total} memory cycles")

    report = apply_cycle_commits(
        store,
        commits,
        rejected=rejected,
        ledger=paths.table_uri(FEED_CYCLES),
        progress=progress,
    )
    context.log.info(
        f"{report.commits} new memory commits ({report.lessons} lessons), "
        f"{report.already_applied} cycles applied before"
    )
    if report.problems:
        say = context.log.warning if report.rejected or report.skipped else context.log.info
        say(
            f"{report.rejected} memory cycles rejected, {report.skipped} skipped, "
            f"{report.skipped_changes} writes not applied; why is in {FEED_CYCLES}. First: "
            + "; ".join(report.problems[:3])
        )
    facts = store.frame()
    return dg.MaterializeResult(
        metadata={
            "memory_version": dg.MetadataValue.int(store.version() or 0),
            "facts": dg.MetadataValue.int(facts.height),
            "agents": dg.MetadataValue.int(facts.get_column("agent_id").n_unique()),
            "new_commits": dg.MetadataValue.int(report.commits),
            "lessons": dg.MetadataValue.int(report.lessons),
            "unchanged_cycles": dg.MetadataValue.int(report.unchanged),
            "skipped_cycles": dg.MetadataValue.int(report.skipped),
            "rejected_cycles": dg.MetadataValue.int(report.rejected),
            "late_cycles": dg.MetadataValue.int(report.late),
            "recovered_cycles": dg.MetadataValue.int(report.recovered),
            "continued_cycles": dg.MetadataValue.int(report.continued),
            "skipped_changes": dg.MetadataValue.int(report.skipped_changes),
            "not_applied": _not_applied(report),
            "latest_commits": _latest_commits(store.log(limit=10)),
        }
    )


_SHOWN = 20  # cycles in the not_applied table; the ledger holds every one
_NOT_APPLIED = dg.TableSchema(
    columns=[
        dg.TableColumn("cycle", description="trace id, or review:<event id> for a lesson"),
        dg.TableColumn("agent"),
        dg.TableColumn("status", description="rejected, skipped, unchanged or applied"),
        dg.TableColumn("why", description=f"the first {_SHOWN}; every cycle is in {FEED_CYCLES}"),
    ]
)
_LATEST_COMMITS = dg.TableSchema(
    columns=[
        dg.TableColumn("version", "int"),
        dg.TableColumn("agent"),
        dg.TableColumn("kind"),
        dg.TableColumn("message"),
        dg.TableColumn("approved_by"),
    ]
)


def _not_applied(report: FeedReport) -> dg.TableMetadataValue:
    """The cycles this run did not apply in full, with why: rejected first, then skipped."""
    rank = {"rejected": 0, "skipped": 1, "unchanged": 2, "applied": 3}
    outcomes = sorted((o for o in report.outcomes if o.reason), key=lambda o: rank[o.status])
    records = [
        dg.TableRecord(
            {"cycle": o.key, "agent": o.agent_id, "status": o.status, "why": _cut(o.reason)}
        )
        for o in outcomes[:_SHOWN]
    ]
    return dg.MetadataValue.table(records, _NOT_APPLIED)


def _latest_commits(commits: list[Commit]) -> dg.TableMetadataValue:
    records = [
        dg.TableRecord(
            {
                "version": c.version,
                "agent": c.agent_id,
                "kind": c.kind,
                "message": _cut(c.message, 80),
                "approved_by": c.approved_by,
            }
        )
        for c in commits
    ]
    return dg.MetadataValue.table(records, _LATEST_COMMITS)


def _cut(text: str | None, width: int = 160) -> str:
    """``text`` as one line of at most ``width`` characters, for a table cell."""
    flat = (text or "").replace("\n", " ")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@dg.asset(name=KNOWLEDGE_CHUNKS, group_name="memory", kinds={"delta"})
def knowledge_chunks(lake: LakeResource) -> dg.MaterializeResult:
    """Documents from $AGENTOPS_HOME/knowledge (Markdown, text) cut into overlapping chunks
    along paragraphs, each with its heading; replaced whole when the folder changed."""
    paths = lake.paths
    uri = paths.table_uri(KNOWLEDGE_CHUNKS)
    # Runs of two jobs may rechunk at once: one at a time, so the later sees the earlier's work.
    with lake_tables.writer_lock(paths, KNOWLEDGE_CHUNKS):
        fingerprint = folder_fingerprint(paths.knowledge)
        unchanged = _last_fingerprint(uri) == fingerprint
        if unchanged:
            chunks = lake_tables.read(uri)
            documents = chunks.get_column("document").n_unique()
        else:
            found = find_documents(paths.knowledge)
            chunks, documents = chunk_documents(found), len(found)
            lake_tables.overwrite(
                uri, chunks, metadata={"agentops.operation": "chunk", FINGERPRINT: fingerprint}
            )
    return dg.MaterializeResult(
        metadata={
            "documents": dg.MetadataValue.int(documents),
            "chunks": dg.MetadataValue.int(chunks.height),
            "folder_fingerprint": fingerprint,
            "rewritten": dg.MetadataValue.bool(not unchanged),
        }
    )


FINGERPRINT = "agentops.fingerprint"


def _last_fingerprint(uri: str) -> str | None:
    """The folder fingerprint the chunks table was last written from, if any."""
    if not lake_tables.table_exists(uri):
        return None
    (last,) = lake_tables.open_table(uri).history(1)
    return last.get(FINGERPRINT)


MEMORY_INDEX = "memory_index"
INDEX_WRITERS_POOL = "agentops_index_writers"


@dg.asset(
    name=MEMORY_INDEX,
    deps=[MEMORY_FACTS, KNOWLEDGE_CHUNKS],
    group_name="memory",
    kinds={"lancedb"},
    pool=INDEX_WRITERS_POOL,
    automation_condition=dg.AutomationCondition.eager(),
)
def memory_index(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """LanceDB index of every agent's facts and the knowledge chunks: vector, full-text and
    hybrid search, filtered by agent and namespace. Refreshed incrementally from the memory
    table's change data feed and tagged `memory-v{N}` (a tag never moves), so a search can ask
    for the index as of a memory version. Its writers take turns (pool and file lock)."""
    paths = lake.paths
    index = open_index(paths)
    chunks_uri = paths.table_uri(KNOWLEDGE_CHUNKS)
    synced = None
    if lake_tables.table_exists(chunks_uri):
        # Chunks first, so the snapshot the fact refresh tags holds the current knowledge.
        synced = index.sync_chunks(lake_tables.read(chunks_uri))
    facts_uri = paths.table_uri(MEMORY_FACTS)
    exists = lake_tables.table_exists(facts_uri)
    refreshed = refresh_index(index, paths) if exists else None
    if refreshed is not None:
        context.log.info(
            f"facts: {refreshed.mode} refresh to memory v{refreshed.memory_version}, "
            f"{refreshed.upserted} embedded, {refreshed.deleted} removed"
            + (f" ({refreshed.reason})" if refreshed.reason else "")
        )
    try:
        info = index.info()
    except IndexNotFoundError:
        return dg.MaterializeResult(metadata={"facts": 0, "chunks": 0, "refresh": "nothing yet"})
    return dg.MaterializeResult(
        metadata={
            "memory_version": dg.MetadataValue.int(info.memory_version or 0),
            "index_version": dg.MetadataValue.int(info.index_version),
            "facts": dg.MetadataValue.int(info.facts),
            "chunks": dg.MetadataValue.int(info.chunks),
            "embedder": dg.MetadataValue.text(info.embedder or ""),
            "refresh": dg.MetadataValue.text(refreshed.mode if refreshed else "no memory yet"),
            "refresh_reason": dg.MetadataValue.text((refreshed and refreshed.reason) or ""),
            "embedded": dg.MetadataValue.int(refreshed.upserted if refreshed else 0),
            "chunks_embedded": dg.MetadataValue.int(synced.upserted if synced else 0),
            "chunks_removed": dg.MetadataValue.int(synced.deleted if synced else 0),
        }
    )
