"""The review queue: actions waiting for a human, and what the human decided.

Red-zone actions always enter the queue, yellow-zone ones as the policy samples them
(``obligations.sample_rate``). One item per event, whatever later revisions decide, so a
re-judged day never resets a decision. An item needs ``approvals_required`` approvals from
different people (at least one); one rejection rejects it. An approval may carry a correction;
a correction marked as a lesson (``lesson_key``) becomes a memory commit of the agent,
approved by the reviewer, once the item is approved.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl

from agentops_assets.governance.judge import sampled
from agentops_assets.governance.tables import REVIEW_QUEUE, REVIEW_SCHEMA
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths

REVIEW_AUTHOR: Final = "agentops.review"
LESSON_NAMESPACE: Final = "lessons"
# The decision gate (service/gate.py) answers `review` once the item is in its journal here and
# commits it to the queue a fraction of a second later; decide waits this long for such an item.
GATE_JOURNAL: Final = Path("service") / "gate-journal"
GATE_COMMIT_WAIT_S: Final = 5.0


class ReviewError(Exception):
    """A review that cannot be decided as asked (unknown id, already decided...)."""


@dataclass(frozen=True)
class Outcome:
    """What one approve or reject did."""

    review: dict[str, Any]
    memory_version: int | None = None


def review_id(event_id: str) -> str:
    """The review item of one event: ``rv-`` and 16 hex digits of its hash."""
    return "rv-" + hashlib.sha256(event_id.encode()).hexdigest()[:16]


def candidates(decisions: pl.DataFrame, *, now: datetime | None = None) -> pl.DataFrame:
    """The queue items ``decisions`` (rows of ``policy_decisions``) ask for, state pending."""
    wanted = decisions.filter(pl.col("sample_rate") > 0)
    keep = [
        sampled(event, rate)
        for event, rate in zip(wanted["event_id"], wanted["sample_rate"], strict=True)
    ]
    items = wanted.filter(pl.Series(keep, dtype=pl.Boolean))
    created = now or datetime.now(UTC)
    return items.select(
        pl.Series("review_id", [review_id(e) for e in items["event_id"]], dtype=pl.String),
        pl.lit(created).alias("created_at"),
        pl.lit("policy_decision").alias("source"),
        "day",
        "decision_id",
        "event_id",
        "trace_id",
        "agent_id",
        "agent_type",
        "action",
        "decision",
        "zone",
        "reasons",
        "revision",
        pl.max_horizontal(pl.col("approvals_required"), pl.lit(1)).alias("approvals_required"),
        pl.lit("pending").alias("state"),
        pl.lit([], pl.List(pl.String)).alias("approved_by"),
        pl.lit(None, pl.String).alias("decided_by"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("decided_at"),
        pl.lit(None, pl.String).alias("rationale"),
        pl.lit(None, pl.String).alias("correction"),
        pl.lit(None, pl.String).alias("lesson_key"),
        pl.lit(None, pl.Int64).alias("memory_version"),
    ).cast(dict(REVIEW_SCHEMA))  # type: ignore[arg-type]


def enqueue(paths: Paths, items: pl.DataFrame) -> pl.DataFrame:
    """Add the items whose ``review_id`` is not in the queue yet; returns those added."""
    if items.is_empty():
        return items
    uri = paths.table_uri(REVIEW_QUEUE)
    with lake.writer_lock(paths, REVIEW_QUEUE):
        existing = lake.scan(uri)
        if existing is not None:
            known = existing.select("review_id").collect()
            items = items.join(known, on="review_id", how="anti")
        if items.is_empty():
            return items
        lake.append(uri, items, metadata={"agentops.operation": "review_enqueue"})
    return items


def reviews(paths: Paths, state: str | None = None) -> pl.DataFrame:
    """The queue (every item, or those in ``state``), oldest first."""
    frame = lake.scan(paths.table_uri(REVIEW_QUEUE))
    if frame is None:
        return REVIEW_SCHEMA.to_frame()
    if state is not None:
        frame = frame.filter(pl.col("state") == state)
    return frame.sort("created_at", "review_id").collect()


def decide(
    paths: Paths,
    item_id: str,
    verdict: Literal["approve", "reject"],
    *,
    reviewer: str,
    rationale: str,
    correction: str | None = None,
    lesson_key: str | None = None,
) -> Outcome:
    """Approve or reject one pending item, then record it in the ledger (and the lesson in
    memory).

    Raises:
        ReviewError: The id is unknown, the item is no longer pending, the reviewer already
            approved it, the rationale is empty, or a lesson comes without a correction.
    """
    from agentops_assets.governance import audit

    if not rationale.strip():
        raise ReviewError("the rationale is empty; say why, in a sentence.")
    if not reviewer.strip():
        raise ReviewError("the reviewer is empty; name who decides.")
    if lesson_key is not None and not (correction or "").strip():
        raise ReviewError("a lesson needs the correction to remember (--correction).")
    if verdict == "reject" and lesson_key is not None:
        raise ReviewError("a rejection carries no lesson; approve with the correction instead.")
    uri = paths.table_uri(REVIEW_QUEUE)
    _await_gate(paths, uri, item_id)
    with lake.writer_lock(paths, REVIEW_QUEUE):
        item = _item(uri, item_id)
        if item["state"] != "pending":
            raise ReviewError(
                f"review {item_id} is already {item['state']} (by {item['decided_by']} at "
                f"{item['decided_at']:%Y-%m-%d %H:%M} UTC)."
            )
        approvers = list(item["approved_by"] or [])
        if verdict == "approve":
            if reviewer in approvers:
                raise ReviewError(
                    f"{reviewer} already approved review {item_id}; it needs "
                    f"{item['approvals_required']} approvals from different people."
                )
            approvers.append(reviewer)
            done = len(approvers) >= max(1, item["approvals_required"])
            state = "approved" if done else "pending"
        else:
            done, state = True, "rejected"
        item |= {
            "approved_by": approvers,
            "state": state,
            "decided_by": reviewer if done else None,
            "decided_at": datetime.now(UTC) if done else None,
            "rationale": rationale.strip(),
            "correction": correction.strip() if correction else item["correction"],
            "lesson_key": lesson_key or item["lesson_key"],
        }
        _write(uri, item)
    ledger = audit.ledger(paths)
    audit.record_review(ledger, paths)
    version = None
    if state == "approved" and item["lesson_key"]:
        version = apply_lesson(paths, item)
        audit.record_memory(ledger, paths)
    return Outcome(review=_item(uri, item_id), memory_version=version)


def apply_lesson(paths: Paths, item: dict[str, Any]) -> int | None:
    """Commit an approved item's correction to its agent's memory, approved by its reviewer,
    and keep the commit's version on the item. Safe to repeat: a lesson already in memory is
    found in the log instead of committed twice."""
    from memory import TABLE_NAME, FactChange, MemoryStore

    store = MemoryStore(paths.table_uri(TABLE_NAME))
    message = f"Lesson from review {item['review_id']}: {item['rationale']}"
    commit = store.commit(
        item["agent_id"],
        [
            FactChange.put(
                item["lesson_key"],
                item["correction"],
                namespace=LESSON_NAMESPACE,
                source=item["event_id"],
                metadata={
                    "lesson": True,
                    "review_id": item["review_id"],
                    "reviewer": item["decided_by"],
                },
            )
        ],
        message=message,
        author=REVIEW_AUTHOR,
        cycle_id=item["trace_id"],
        approved_by=item["decided_by"],
    )
    if commit is None:  # already in memory: a repeated call after a crash
        commit = next(
            (c for c in store.log(item["agent_id"], limit=1 << 30) if c.message == message), None
        )
    version = None if commit is None else commit.version
    uri = paths.table_uri(REVIEW_QUEUE)
    with lake.writer_lock(paths, REVIEW_QUEUE):
        current = _item(uri, item["review_id"])
        current["memory_version"] = version
        _write(uri, current)
    return version


def gate_journal(paths: Paths) -> Path:
    """The folder of the decision gates' journals: items answered, not yet committed."""
    return paths.home / GATE_JOURNAL


def journalled(paths: Paths, item_id: str) -> bool:
    """Whether a gate's journal names ``item_id`` (a gate has it, committed or soon)."""
    needle = f'"{item_id}"'.encode()
    for segment in gate_journal(paths).glob("*.jsonl"):
        try:
            if needle in segment.read_bytes():
                return True
        except FileNotFoundError:  # committed and removed meanwhile
            continue
    return False


def _await_gate(paths: Paths, uri: str, item_id: str) -> None:
    """Wait (at most :data:`GATE_COMMIT_WAIT_S`) for an item a gate has answered but not
    committed yet, rather than call it unknown."""
    deadline = time.monotonic() + GATE_COMMIT_WAIT_S
    # The journal first: with no gate running it is empty, and the queue is not read twice.
    while journalled(paths, item_id) and not _exists(uri, item_id):
        if time.monotonic() > deadline:
            return  # _item says it is unknown: the gate could not commit it
        time.sleep(0.02)


def _exists(uri: str, item_id: str) -> bool:
    frame = lake.scan(uri)
    if frame is None:
        return False
    found = frame.filter(pl.col("review_id") == item_id).select("review_id").head(1).collect()
    return not found.is_empty()


def _item(uri: str, item_id: str) -> dict[str, Any]:
    frame = lake.scan(uri)
    rows = frame.filter(pl.col("review_id") == item_id).collect() if frame is not None else None
    if rows is None or rows.is_empty():
        raise ReviewError(
            f"no review item {item_id!r}; `agentops review list` shows the pending ones."
        )
    return rows.row(0, named=True)


def _write(uri: str, item: dict[str, Any]) -> None:
    frame = pl.DataFrame([item], schema=REVIEW_SCHEMA)
    (
        frame.write_delta(
            uri,
            mode="merge",
            delta_merge_options={
                "predicate": "t.review_id = s.review_id",
                "source_alias": "s",
                "target_alias": "t",
            },
        )
        .when_matched_update_all()
        .execute()
    )
