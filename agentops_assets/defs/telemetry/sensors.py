"""The landing sensor: new landing files request an ingestion run."""

import dagster as dg

from agentops_assets.defs.resources import LakeResource
from agentops_assets.defs.sensor_retries import request_or_retry
from agentops_assets.telemetry.ingest import ingested_stamps
from agentops_assets.telemetry.landing import discover, fingerprint, pending_files
from agentops_assets.telemetry.schema import AGENT_EVENTS, INGESTED_FILES, QUARANTINE

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets(AGENT_EVENTS, QUARANTINE, INGESTED_FILES),
    description="Ingest new landing files into the telemetry tables.",
)


@dg.sensor(
    job=ingest_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING
)
def landing_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
    """Request an ingestion run when landing files appear that are not ingested yet.

    The cursor is the fingerprint of the files last requested, and the same fingerprint is the
    run key, so a re-tick never requests the same files twice. A failed ingestion is requested
    again a few times, with a back-off, as `<fingerprint>-retry-<n>`.
    """
    paths = lake.paths
    pending = pending_files(discover(paths.landing_uri), ingested_stamps(paths))
    if not pending:
        return dg.SkipReason("No landing files waiting.")
    return request_or_retry(
        context,
        key=fingerprint(pending),
        what=f"ingestion of {len(pending)} landing files",
        fix_hint="land the files again or run `agentops run`",
        tags={"agentops/landing_files": str(len(pending))},
    )
