"""The AgentOps Grid code location: gathers each domain's definitions and binds resources."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from agentops_assets.defs import finops, memory, telemetry
from agentops_assets.defs.resources import LakeResource

defs = dg.Definitions.merge(
    telemetry.defs,
    memory.defs,
    finops.defs,
    dg.Definitions(
        resources={"lake": LakeResource(), "duckdb": DuckDBResource(database=":memory:")}
    ),
)
