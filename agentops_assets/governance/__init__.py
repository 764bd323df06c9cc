"""Governance: policies as code, the capability registry, and the tamper-evident audit ledger.

A plain library (no dagster import): the Dagster assets and the CLI call into it.
"""

from agentops_assets.governance.capabilities import (
    CapabilityRegistry,
    capability_violations,
    load_registry,
)
from agentops_assets.governance.engine import (
    Decision,
    PolicyBundle,
    PolicyBundleError,
    bundle_revision,
)
from agentops_assets.governance.ledger import AuditLedger, Entry, VerifyReport

__all__ = [
    "AuditLedger",
    "CapabilityRegistry",
    "Decision",
    "Entry",
    "PolicyBundle",
    "PolicyBundleError",
    "VerifyReport",
    "bundle_revision",
    "capability_violations",
    "load_registry",
]
