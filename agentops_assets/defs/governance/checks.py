"""Governance checks: no tool call outside the registry, and an audit chain that holds."""

import dagster as dg
import polars as pl

from agentops_assets.defs.governance.metadata import violations
from agentops_assets.defs.partitioned import partition_rows
from agentops_assets.defs.resources import LakeResource
from agentops_assets.governance.audit import ledger
from agentops_assets.governance.ledger import AUDIT_LEDGER
from agentops_assets.governance.tables import CAPABILITY_VIOLATIONS

_SHOWN = 5  # (agent, tool) pairs named in the description


@dg.asset_check(asset=dg.AssetKey(CAPABILITY_VIOLATIONS), blocking=False)
def no_capability_violations(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    """No agent called a tool outside its type's registry entry; otherwise ERROR naming each
    agent, tool and number of calls."""
    rows = partition_rows(context, lake, CAPABILITY_VIOLATIONS, "day")
    if rows is None or rows.is_empty():
        return dg.AssetCheckResult(
            passed=True, description="No capability violation.", metadata={"violations": 0}
        )
    pairs = (
        rows.group_by("agent_id", "agent_type", "action")
        .agg(pl.len().alias("calls"))
        .sort("calls", "agent_id", "action", descending=[True, False, False])
    )
    named = "; ".join(
        f"{row['agent_id']} ({row['agent_type']}) called {row['action']} {row['calls']} time"
        + ("s" if row["calls"] != 1 else "")
        for row in pairs.head(_SHOWN).iter_rows(named=True)
    )
    more = pairs.height - min(_SHOWN, pairs.height)
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{rows.height} tool call(s) outside the capability registry: {named}"
        + (f" (and {more} more agent/tool pairs)." if more else "."),
        metadata=violations(rows),
    )


@dg.asset_check(asset=dg.AssetKey(AUDIT_LEDGER), blocking=False)
def audit_chain_intact(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    """Every entry hashes to its stored hash and points at the one before, and every
    published head is still in the table: otherwise ERROR with the first entry that fails."""
    report = ledger(lake.paths).verify()
    figures = {"entries": report.checked, "anchors": report.anchors}
    if report.ok:
        head = f" (head {report.head.seq}, {report.head.hash[:12]})" if report.head else ""
        return dg.AssetCheckResult(
            passed=True,
            description=f"The chain of {report.checked:,} entries and its "
            f"{report.anchors:,} published heads hold{head}.",
            metadata=figures,
        )
    assert report.failure is not None
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"The audit ledger fails at entry {report.failure.seq} "
        f"({report.failure.kind}): {report.failure.detail}",
        metadata={**figures, "first_failing_seq": report.failure.seq},
    )
