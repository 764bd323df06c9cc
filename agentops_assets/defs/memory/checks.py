"""Asset checks on the memory layer."""

import dagster as dg

from agentops_assets.defs.memory.assets import MEMORY_INDEX
from agentops_assets.defs.resources import LakeResource
from agentops_assets.storage.memory_stores import memory_index, memory_store


@dg.asset_check(asset=MEMORY_INDEX)
def index_reflects_latest_memory(lake: LakeResource) -> dg.AssetCheckResult:
    """The retrieval index answers from the latest memory version, so no search returns a fact
    the memory no longer holds."""
    paths = lake.paths
    latest = memory_store(paths).version()
    indexed = memory_index(paths).memory_version()
    return dg.AssetCheckResult(
        passed=latest is None or indexed == latest,
        metadata={"memory_version": latest or 0, "index_memory_version": indexed or 0},
    )
