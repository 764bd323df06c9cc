"""Refresh the governance tables for a range of days: judge, find violations, queue, ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl
from deltalake import DeltaTable
from deltalake.schema import Field, PrimitiveType

from agentops_assets.drift.refresh import replace_days
from agentops_assets.governance import audit
from agentops_assets.governance.capabilities import capability_violations, read_events
from agentops_assets.governance.engine import PolicyBundleError
from agentops_assets.governance.judge import (
    Policies,
    action_stats,
    evaluations,
    judge,
    load_policies,
    read_actions,
    with_context,
)
from agentops_assets.governance.ledger import VerifyReport
from agentops_assets.governance.review import apply_lesson, candidates, enqueue, reviews
from agentops_assets.governance.tables import (
    CAPABILITY_VIOLATIONS,
    DECISION_SCHEMA,
    POLICY_DECISIONS,
    SOURCE_GATE,
)
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths


@dataclass(frozen=True)
class Judged:
    """What judging a range of days wrote."""

    policies: Policies
    decisions: pl.DataFrame
    violations: pl.DataFrame
    evaluations: int


@dataclass(frozen=True)
class LedgerUpdate:
    """What one catch-up of the ledger appended, and the verified chain after it."""

    decisions: int
    reviews: int
    memory: int
    bundle_changed: bool
    report: VerifyReport


def refresh_decisions(paths: Paths, first: date, last: date) -> Judged:
    """``policy_decisions`` and ``capability_violations`` for ``[first, last]``.

    Raises:
        PolicyBundleError: The policies do not compile, or the capability registry is invalid;
            the message names file and line. The online answer to a broken bundle is deny;
            a log of past actions all "denied" by a typo would bury the real findings and
            flood the review queue, so judging stops instead and says why.
    """
    policies = load_policies(paths)
    if policies.bundle.load_error is not None:
        raise PolicyBundleError(
            f"the policies in {policies.folder} cannot judge: {policies.bundle.load_error}."
        )
    actions = with_context(paths, read_actions(paths, first, last))
    decisions = judge(policies, actions, action_stats(paths, first, last))
    assert policies.registry is not None  # an invalid registry is a load error
    violations = capability_violations(read_events(paths, first, last), policies.registry)
    replace_judged_days(paths, decisions, first, last)
    replace_days(paths, CAPABILITY_VIOLATIONS, violations, first, last)
    return Judged(policies, decisions, violations, evaluations(policies, actions))


def replace_judged_days(paths: Paths, decisions: pl.DataFrame, first: date, last: date) -> None:
    """Replace the pipeline's ``policy_decisions`` of ``[first, last]`` with ``decisions``; the
    online gate's rows of those days (``source`` gate) are kept as they are, in the same
    commit."""
    uri = paths.table_uri(POLICY_DECISIONS)
    with lake.writer_lock(paths, POLICY_DECISIONS):
        add_source_column(paths)
        existing = lake.scan(uri)
        if existing is not None:
            online = (
                existing.filter(
                    pl.col("day").is_between(first, last) & (pl.col("source") == SOURCE_GATE)
                )
                .select(list(DECISION_SCHEMA))
                .collect()
            )
            decisions = pl.concat([decisions.select(list(DECISION_SCHEMA)), online])
        lake.replace_range(
            uri,
            decisions,
            column="day",
            first=first,
            last=last,
            metadata={"refresh": f"{first.isoformat()}..{last.isoformat()}"},
        )


def add_source_column(paths: Paths) -> bool:
    """Give a ``policy_decisions`` table written before the ``source`` column existed that
    column (a metadata-only commit; its rows read ``source`` null, which means the pipeline).
    Call under the table's writer lock. Returns whether it added the column."""
    uri = paths.table_uri(POLICY_DECISIONS)
    if not lake.table_exists(uri):
        return False
    table = DeltaTable(uri)
    if "source" in {field.name for field in table.schema().fields}:
        return False
    table.alter.add_columns([Field("source", PrimitiveType("string"), nullable=True)])
    return True


def day_decisions(paths: Paths, first: date, last: date) -> pl.DataFrame:
    """The stored ``policy_decisions`` of ``[first, last]``."""
    frame = lake.scan(paths.table_uri(POLICY_DECISIONS))
    if frame is None:
        return DECISION_SCHEMA.to_frame()
    return frame.filter(pl.col("day").is_between(first, last)).collect()


def refresh_reviews(paths: Paths, first: date, last: date) -> pl.DataFrame:
    """Queue the red and sampled yellow decisions of ``[first, last]``; returns the new items."""
    return enqueue(paths, candidates(day_decisions(paths, first, last)))


def unapplied_lessons(paths: Paths) -> pl.DataFrame:
    """Approved items whose lesson has no memory commit yet."""
    return reviews(paths, "approved").filter(
        pl.col("lesson_key").is_not_null() & pl.col("memory_version").is_null()
    )


def refresh_ledger(paths: Paths, first: date, last: date) -> LedgerUpdate:
    """Bring the ledger up to date (bundle change, the days' decisions, verdicts, lessons a
    dead process left uncommitted, memory commits), then verify the whole chain."""
    ledger = audit.ledger(paths)
    changed = audit.record_bundle_change(ledger, load_policies(paths))
    decisions = audit.record_decisions(ledger, day_decisions(paths, first, last))
    verdicts = audit.record_reviews(ledger, paths)
    for item in unapplied_lessons(paths).iter_rows(named=True):
        apply_lesson(paths, item)  # approved, but the process died before the memory commit
    memory = audit.record_memory(ledger, paths)
    return LedgerUpdate(decisions, verdicts, memory, changed, ledger.verify())
