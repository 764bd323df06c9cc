"""Governance: policies as code, the capability registry, the review queue and the
tamper-evident audit ledger.

A plain library (no dagster import): the Dagster assets and the CLI call into it. The
back-test and the trace are in their modules (``governance.backtest``, ``governance.trace``).
"""

from agentops_assets.governance.backtest import BacktestReport
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
from agentops_assets.governance.judge import Policies, decide_one, load_policies
from agentops_assets.governance.ledger import AuditLedger, Entry, VerifyReport
from agentops_assets.governance.review import ReviewError, decide, reviews
from agentops_assets.governance.trace import Trace, TraceNotFoundError

__all__ = [
    "AuditLedger",
    "BacktestReport",
    "CapabilityRegistry",
    "Decision",
    "Entry",
    "Policies",
    "PolicyBundle",
    "PolicyBundleError",
    "ReviewError",
    "Trace",
    "TraceNotFoundError",
    "VerifyReport",
    "bundle_revision",
    "capability_violations",
    "decide",
    "decide_one",
    "load_policies",
    "load_registry",
    "reviews",
]
