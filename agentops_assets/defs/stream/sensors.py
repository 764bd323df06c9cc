"""The lag sensor: the stream consumer's lag as metadata, and its commits made known to Dagster.

The consumer (``agentops stream consume``) writes ``agent_events`` outside any Dagster run.
So that data arriving through the stream flows downstream by declarative automation as landed
files do, each tick that finds a newer stream commit reports a materialization of
``agent_events`` (runless, with the stream ids it holds); the cursor is the last commit
reported, so a re-tick never reports the same commit twice.
"""

import dagster as dg

from agentops_assets.defs.resources import LakeResource
from agentops_assets.defs.stream.assets import TELEMETRY_STREAM
from agentops_assets.defs.stream.resources import StreamResource
from agentops_assets.stream import stream_status, txn_version
from agentops_assets.telemetry.schema import AGENT_EVENTS


def lag_observation(figures: dict) -> dg.AssetObservation:
    """One observation of the stream whose metadata are the lag figures (``None`` left out)."""
    metadata = {name: value for name, value in figures.items() if value is not None}
    return dg.AssetObservation(asset_key=TELEMETRY_STREAM, metadata=metadata)


def newly_committed(cursor: str | None, committed_through: str | None) -> bool:
    """Whether ``agent_events`` holds stream messages past the last commit reported."""
    if committed_through is None:
        return False
    return cursor is None or txn_version(committed_through) > txn_version(cursor)


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def telemetry_stream_lag_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, stream: StreamResource
) -> dg.SensorResult:
    """Observe the telemetry stream's lag (messages undelivered and pending, the oldest
    uncommitted message's age, the last stream id agent_events holds) and report new stream
    commits as agent_events materializations. Requests no run."""
    opened = stream.open()
    try:
        figures = stream_status(lake.paths, opened)
    finally:
        opened.close()
    context.log.info(
        f"stream {figures['stream']}: {figures['behind']} messages behind, "
        f"oldest {figures['oldest_age_s']} s"
    )
    events: list = [lag_observation(figures)]
    committed = figures["committed_through"]
    if newly_committed(context.cursor, committed):
        events.append(
            dg.AssetMaterialization(
                asset_key=AGENT_EVENTS,
                description="Rows committed by the stream consumer.",
                metadata={"stream": figures["stream"], "committed_through": committed},
            )
        )
        context.update_cursor(committed)
    return dg.SensorResult(asset_events=events, cursor=context.cursor)
