"""Governance: policy decisions, capability violations, the review queue, the audit ledger,
their checks, and the sensor that re-judges when the policies change."""

import dagster as dg

from agentops_assets.defs.governance.assets import audit_ledger, policy_decisions, review_queue
from agentops_assets.defs.governance.checks import audit_chain_intact, no_capability_violations
from agentops_assets.defs.governance.sensors import governance_job, policy_change_sensor

defs = dg.Definitions(
    assets=[policy_decisions, review_queue, audit_ledger],
    asset_checks=[no_capability_violations, audit_chain_intact],
    jobs=[governance_job],
    sensors=[policy_change_sensor],
)
