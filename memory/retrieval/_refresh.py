"""Refreshing the indexed facts to a memory version: what changed, written as one version."""

from __future__ import annotations

import logging

from deltalake import DeltaTable
from lancedb.table import LanceTable

from memory.embedders import Embedder
from memory.retrieval import _changes as ch
from memory.retrieval import _indexes, _snapshots, _writes
from memory.retrieval import _layout as lay
from memory.retrieval.results import RefreshMode, RefreshResult

log = logging.getLogger(__name__)


def refresh(
    table: LanceTable, facts: DeltaTable, embedder: Embedder, *, full: bool
) -> RefreshResult:
    """Make the indexed facts those of ``facts`` (at its loaded version), then tag it.

    Call it holding the writer lock; ``seconds`` is left at 0 for the caller to fill in.
    """
    target = facts.version()
    previous = lay.read_state(table.schema).memory_version
    mode, changes, reason = fact_changes(table, facts, full=full)
    if mode == "noop" and _snapshots.table_version(table, target) is not None:
        return RefreshResult("noop", target, previous, 0, 0, False, 0.0, None, table.version)
    upserted, deleted = _writes.write(table, embedder, changes.upserts, changes.deletes)
    optimized, meta = _indexes.keep_current(table)
    meta |= {lay.VERSION_KEY: str(target), lay.FACTS_TABLE_KEY: facts.metadata().id}
    table.update_field_metadata(lay.metadata_update(meta))
    _snapshots.create(table, target)
    return RefreshResult(
        mode, target, previous, upserted, deleted, optimized, 0.0, reason, table.version
    )


def fact_changes(
    table: LanceTable, facts: DeltaTable, *, full: bool
) -> tuple[RefreshMode, ch.Changes, str | None]:
    """What the index must write to reflect ``facts``: the mode, the changes, and why a
    full pass was needed (``None`` when the change feed did)."""
    target = facts.version()
    state = lay.read_state(table.schema)
    reason = full_reason(full, state, target, facts.metadata().id)
    if reason is None and state.memory_version is not None:
        changes = ch.Changes()
        try:
            if target > state.memory_version:
                changes = ch.read_changes(facts, state.memory_version + 1, target)
        except ch.ChangeFeedUnavailable as exc:
            reason = f"the change data feed cannot be read ({exc})"
        else:
            held = _writes.ids(table, lay.FACT)
            reason = ch.unaccounted(held, changes, ch.read_keys(facts))
            if reason is None:
                mode: RefreshMode = "noop" if target == state.memory_version else "incremental"
                return mode, changes, None
    log.info("full refresh of the index %r: %s", table.name, reason)
    return "full", ch.diff(ch.read_facts(facts), _writes.rows(table, lay.FACT)), reason


def full_reason(full: bool, state: lay.State, target: int, facts_id: str) -> str | None:
    """Why the change feed cannot be used and every fact must be compared (``None``: it can)."""
    if full:
        return "a full refresh was asked for"
    if state.memory_version is None:
        return "first build"
    if state.facts_table_id != facts_id:
        return "the memory table was recreated (its Delta table id changed)"
    if target < state.memory_version:
        return f"memory version {target} is older than the indexed {state.memory_version}"
    return None
