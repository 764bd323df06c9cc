"""Control check: no agent is frozen (WARN naming them and why)."""

import dagster as dg
import polars as pl

from agentops_assets.control.tables import AUTONOMY_STATE
from agentops_assets.defs.resources import LakeResource
from agentops_assets.storage import lake as lake_io


@dg.asset_check(asset=dg.AssetKey(AUTONOMY_STATE), blocking=False)
def no_frozen_agents(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    """No agent or type is frozen; otherwise WARN naming each one and why."""
    frame = lake_io.scan(lake.paths.table_uri(AUTONOMY_STATE))
    frozen = frame.filter(pl.col("state") == "frozen").collect() if frame is not None else None
    if frozen is None or frozen.is_empty():
        return dg.AssetCheckResult(passed=True, description="No agent is frozen.")
    named = "; ".join(
        f"{row['agent_id'] or 'every ' + row['agent_type']}: {row['reason']}"
        for row in frozen.head(5).iter_rows(named=True)
    )
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{frozen.height} frozen: {named}",
        metadata={"frozen": frozen.height},
    )
