"""The AgentOps Grid code location: gathers each domain's definitions and binds resources."""

import warnings

import dagster as dg
from dagster_duckdb import DuckDBResource

from agentops_assets.defs import automation
from agentops_assets.defs.executor import selected_executor
from agentops_assets.defs.resources import LakeResource

with warnings.catch_warnings():
    # The FinOps and drift assets run a backfill as one run (BackfillPolicy.single_run), a parameter
    # Dagster marks beta; its BetaWarning, once per asset, tells a user nothing to act on.
    warnings.filterwarnings(
        "ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning
    )
    from agentops_assets.defs import (
        alerts,
        control,
        drift,
        finops,
        governance,
        jobs,
        maintenance,
        memory,
        stream,
        telemetry,
    )

defs = dg.Definitions.merge(
    telemetry.defs,
    memory.defs,
    finops.defs,
    drift.defs,
    alerts.defs,
    governance.defs,
    control.defs,
    jobs.defs,
    maintenance.defs,
    automation.defs,
    stream.defs,
    dg.Definitions(
        resources={"lake": LakeResource(), "duckdb": DuckDBResource(database=":memory:")},
        # AGENTOPS_EXECUTOR=celery: steps run on Celery workers (defs/executor.py).
        executor=selected_executor(),
    ),
)
