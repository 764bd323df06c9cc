"""Memory and context: versioned agent memory, knowledge chunks, the retrieval index."""

import dagster as dg

from agentops_assets.defs.memory.assets import knowledge_chunks, memory_facts, memory_index
from agentops_assets.defs.memory.checks import index_reflects_latest_memory
from agentops_assets.defs.memory.sensors import (
    knowledge_job,
    knowledge_sensor,
    memory_index_job,
    memory_version_sensor,
)

defs = dg.Definitions(
    assets=[memory_facts, knowledge_chunks, memory_index],
    asset_checks=[index_reflects_latest_memory],
    jobs=[memory_index_job, knowledge_job],
    sensors=[knowledge_sensor, memory_version_sensor],
)
