"""Sensor-triggered memory refresh: new knowledge documents, new memory versions."""

import dagster as dg

from agentops_assets.defs.memory.assets import KNOWLEDGE_CHUNKS, MEMORY_INDEX
from agentops_assets.defs.resources import LakeResource
from agentops_assets.defs.sensor_retries import request_or_retry
from agentops_assets.storage.memory_stores import index_exists, memory_index, memory_store
from memory.knowledge import folder_fingerprint

memory_index_job = dg.define_asset_job(
    "memory_index_job",
    selection=dg.AssetSelection.assets(MEMORY_INDEX),
    description="Refresh the retrieval index to the latest memory version.",
)
knowledge_job = dg.define_asset_job(
    "knowledge_job",
    selection=dg.AssetSelection.assets(KNOWLEDGE_CHUNKS, MEMORY_INDEX),
    description="Re-chunk the knowledge folder and refresh the retrieval index.",
)


@dg.sensor(
    job=knowledge_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def knowledge_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
    """Re-chunk and re-index when a document in $AGENTOPS_HOME/knowledge is added, changed or
    removed. The cursor and run key are a fingerprint of the folder; a failed refresh is
    requested again a few times, with a back-off."""
    fingerprint = folder_fingerprint(lake.paths.knowledge)
    if fingerprint == context.cursor:  # cursors of older versions: the bare fingerprint
        return dg.SkipReason("The knowledge folder has not changed.")
    return request_or_retry(
        context,
        key=f"knowledge-{fingerprint}",
        what="the knowledge refresh",
        fix_hint="change a document or run `agentops run`",
    )


@dg.sensor(
    job=memory_index_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def memory_version_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
    """Refresh the retrieval index when the memory has a version the index does not reflect
    (a commit, a lesson, a rollback). The cursor and run key are that memory version; a failed
    refresh is requested again a few times, with a back-off."""
    paths = lake.paths
    latest = memory_store(paths).version()
    if latest is None:
        return dg.SkipReason("No memory yet.")
    indexed = memory_index(paths).memory_version() if index_exists(paths) else None
    if indexed == latest:
        return dg.SkipReason(f"The index reflects memory v{latest}.")
    return request_or_retry(
        context,
        key=f"memory-v{latest}",
        what=f"the index refresh to memory v{latest}",
        fix_hint="run `agentops run`",
        tags={"agentops/memory_version": str(latest)},
    )
