"""The control asset: every agent's and type's autonomy state, decided from the findings."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import polars as pl

from agentops_assets.control.policy import STATES
from agentops_assets.control.refresh import refresh_autonomy
from agentops_assets.control.tables import AUTONOMY_STATE
from agentops_assets.defs import metadata_table
from agentops_assets.defs.resources import LakeResource
from agentops_assets.drift.tables import BEHAVIOR_ANOMALIES, DRIFT_FINDINGS
from agentops_assets.finops.tables import BUDGET_COMPLIANCE
from agentops_assets.governance.ledger import AuditLedger
from agentops_assets.governance.tables import CAPABILITY_VIOLATIONS
from agentops_assets.storage.policy_file import PolicyFileError

GROUP = "control"
EVIDENCE = (DRIFT_FINDINGS, BEHAVIOR_ANOMALIES, CAPABILITY_VIOLATIONS, BUDGET_COMPLIANCE)
_TOP = 20


@dg.asset(
    name=AUTONOMY_STATE,
    deps=list(EVIDENCE),
    group_name=GROUP,
    kinds={"delta", "polars"},
    description="Every agent's and agent type's autonomy state today (normal, throttled, "
    "sandboxed, human_only, frozen) decided from drift, anomalies, capability violations and "
    "budgets by policies/autonomy.yaml with hysteresis, under supervisors' overrides; also "
    "autonomy_history, the audit ledger and $AGENTOPS_HOME/control/autonomy.json.",
)
def autonomy_state(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    try:
        update = refresh_autonomy(lake.paths, now=datetime.now(UTC))
    except PolicyFileError as error:
        raise dg.Failure(description=str(error)) from None
    context.log.info(
        f"{update.states.height} agents and types evaluated for {update.day}: "
        f"{update.changes.height} change(s); control file {update.control_file}"
    )
    head = AuditLedger(lake.paths).head()
    return dg.MaterializeResult(
        metadata={
            **describe(update.states, update.changes),
            # Its changes went to the audit ledger: the head is published here too.
            "head_seq": dg.MetadataValue.int(head.seq if head else 0),
            "head_hash": dg.MetadataValue.text(head.hash if head else ""),
        }
    )


def describe(states: pl.DataFrame, changes: pl.DataFrame) -> dict[str, Any]:
    """Agents per state, restricted ones, and the changes of this evaluation."""
    agents = states.filter(pl.col("agent_id").is_not_null())
    counts = dict(agents.group_by("state").len().iter_rows())
    figures: dict[str, Any] = {
        f"agents_{state}": dg.MetadataValue.int(int(counts.get(state, 0))) for state in STATES
    }
    figures["changes"] = dg.MetadataValue.int(changes.height)
    restricted = states.filter(pl.col("state") != "normal").sort("agent_type", "agent_id")
    figures["restricted"] = metadata_table.table(
        restricted.head(_TOP).select(
            "agent_type", pl.col("agent_id").fill_null("(whole type)"), "state", "since",
            "until", "reason",
        ),
        [dg.TableColumn(n, "string") for n in
         ("agent_type", "agent_id", "state", "since", "until", "reason")],
    )  # fmt: skip
    figures["changed"] = metadata_table.table(
        changes.head(_TOP).select(
            "agent_type", pl.col("agent_id").fill_null("(whole type)"), "from_state",
            "to_state", "actor", "reason",
        ),
        [dg.TableColumn(n, "string") for n in
         ("agent_type", "agent_id", "from_state", "to_state", "actor", "reason")],
    )  # fmt: skip
    return figures
