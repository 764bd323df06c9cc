"""What goes into the audit ledger, and the catch-up that makes sure nothing is left out.

Each ``record_*`` function appends the entries the ledger lacks and nothing else, so it can run
after every write and again at every pipeline run: a process that dies between its write and
its ledger entry leaves the entry to the next run, never a gap and never a duplicate.

- ``policy_decision``: each yellow or red decision (subject: the event id), once per revision.
- ``approval`` / ``rejection``: each reviewer's verdict on a queue item (subject: review id).
- ``memory_commit`` / ``memory_rollback``: each memory commit, rollback or revert (subject:
  its reasoning cycle, else ``memory:<agent>``), in version order.
- ``policy_bundle_change``: the policies in force changed revision (subject: the revision).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson
import polars as pl

from agentops_assets.governance.judge import Policies
from agentops_assets.governance.ledger import AuditLedger, Entry
from agentops_assets.governance.review import reviews
from agentops_assets.storage.config import Paths

SYSTEM_ACTOR: Final = "agentops.governance"
LEDGERED_ZONES: Final = ("yellow", "red")
_ROLLBACK_KINDS: Final = ("rollback", "revert")


def ledger(paths: Paths) -> AuditLedger:
    """The audit ledger of ``paths``."""
    return AuditLedger(paths)


def _recorded(ledger: AuditLedger, kinds: tuple[str, ...], key: str) -> pl.DataFrame:
    """``subject``, ``actor`` and the payload's ``key`` of the entries of ``kinds``."""
    frame = ledger.entries()
    return frame.filter(pl.col("kind").is_in(kinds)).select(
        "subject", "actor", pl.col("payload").str.json_path_match(f"$.{key}").alias(key)
    )


def decision_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a ``policy_decision`` ledger entry says of one ``policy_decisions`` row."""
    at = row["timestamp"]
    return {
        "decision_id": row["decision_id"],
        "trace_id": row["trace_id"],
        "agent_id": row["agent_id"],
        "agent_type": row["agent_type"],
        "action": row["action"],
        "decision": row["decision"],
        "zone": row["zone"],
        "reasons": row["reasons"],
        "rules": row["rules"],
        "revision": row["revision"],
        "at": at.isoformat() if at else None,
    }


def record_decisions(ledger: AuditLedger, decisions: pl.DataFrame) -> int:
    """One ``policy_decision`` entry per yellow or red decision not yet in the ledger."""
    wanted = decisions.filter(pl.col("zone").is_in(LEDGERED_ZONES))
    if wanted.is_empty():
        return 0
    known = _recorded(ledger, ("policy_decision",), "decision_id")
    wanted = wanted.join(known.select("decision_id"), on="decision_id", how="anti")
    entries = [
        Entry(
            kind="policy_decision",
            actor=SYSTEM_ACTOR,
            subject=row["event_id"],
            payload=decision_payload(row),
        )
        for row in wanted.sort("timestamp", "event_id").iter_rows(named=True)
    ]
    if entries:
        ledger.append(entries)
    return len(entries)


def record_reviews(ledger: AuditLedger, paths: Paths) -> int:
    """An ``approval`` entry per approver and a ``rejection`` entry per rejected item that the
    ledger does not hold yet."""
    decided = reviews(paths).filter(
        (pl.col("state") != "pending") | (pl.col("approved_by").list.len() > 0)
    )
    if decided.is_empty():
        return 0
    recorded = ledger.entries().filter(pl.col("kind").is_in(["approval", "rejection"]))
    known = set(recorded.select("subject", "actor", "kind").iter_rows())
    entries = []
    for item in decided.iter_rows(named=True):
        verdicts = [("approval", who) for who in item["approved_by"] or []]
        if item["state"] == "rejected":
            verdicts.append(("rejection", item["decided_by"]))
        for number, (kind, who) in enumerate(verdicts, start=1):
            if (item["review_id"], who, kind) in known:
                continue
            entries.append(
                Entry(
                    kind=kind,
                    actor=who,
                    subject=item["review_id"],
                    payload=_review_payload(item, number),
                    at=item["decided_at"] if kind == "rejection" else None,
                )
            )
    if entries:
        ledger.append(entries)
    return len(entries)


def record_review(ledger: AuditLedger, paths: Paths) -> int:
    """Record a verdict just given (the catch-up of :func:`record_reviews`)."""
    return record_reviews(ledger, paths)


def _review_payload(item: dict[str, Any], number: int) -> dict[str, Any]:
    return {
        "review_id": item["review_id"],
        "event_id": item["event_id"],
        "trace_id": item["trace_id"],
        "decision_id": item["decision_id"],
        "agent_id": item["agent_id"],
        "action": item["action"],
        "zone": item["zone"],
        "state": item["state"],
        "approval": f"{min(number, item['approvals_required'])}/{item['approvals_required']}",
        "rationale": item["rationale"],
        "correction": item["correction"],
        "lesson_key": item["lesson_key"],
    }


def record_memory(ledger: AuditLedger, paths: Paths) -> int:
    """A ``memory_commit`` or ``memory_rollback`` entry per memory commit after the last one
    recorded, in version order."""
    from memory import TABLE_NAME, MemoryStore

    store = MemoryStore(paths.table_uri(TABLE_NAME))
    if store.version() is None:
        return 0
    known = _recorded(ledger, ("memory_commit", "memory_rollback"), "version")
    last = known["version"].cast(pl.Int64).max() if not known.is_empty() else None
    commits = sorted(
        (c for c in store.log(limit=1 << 62) if last is None or c.version > int(last)),
        key=lambda c: c.version,
    )
    entries = [
        Entry(
            kind="memory_rollback" if commit.kind in _ROLLBACK_KINDS else "memory_commit",
            actor=commit.author,
            subject=commit.cycle_id or f"memory:{commit.agent_id}",
            payload={
                "version": commit.version,
                "agent_id": commit.agent_id,
                "kind": commit.kind,
                "message": commit.message,
                "approved_by": commit.approved_by,
                "cycle_id": commit.cycle_id,
                "added": commit.added,
                "updated": commit.updated,
                "deleted": commit.deleted,
                "rolled_back_to": commit.rolled_back_to,
                "reverted": commit.reverted,
            },
            at=commit.timestamp,
        )
        for commit in commits
    ]
    if entries:
        ledger.append(entries)
    return len(entries)


def record_bundle_change(ledger: AuditLedger, policies: Policies) -> bool:
    """A ``policy_bundle_change`` entry when ``policies`` is not the revision last recorded
    (the first revision ever seen is recorded too). Returns whether it wrote one."""
    changes = ledger.entries(kind="policy_bundle_change")
    previous = changes["subject"][-1] if not changes.is_empty() else None
    if previous == policies.revision:
        return False
    before = orjson.loads(changes["payload"][-1])["files"] if previous is not None else {}
    files = policies.files
    ledger.append(
        [
            Entry(
                kind="policy_bundle_change",
                actor=SYSTEM_ACTOR,
                subject=policies.revision,
                payload={
                    "revision": policies.revision,
                    "previous": previous,
                    "folder": str(policies.folder),
                    "files": files,
                    "changed": sorted(
                        name
                        for name in files.keys() | before.keys()
                        if files.get(name) != before.get(name)
                    ),  # fmt: skip
                    "error": policies.bundle.load_error,
                },
            )
        ]
    )
    return True
