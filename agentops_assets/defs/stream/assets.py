"""The telemetry stream as an external asset, observed by the lag sensor."""

import dagster as dg

TELEMETRY_STREAM = "telemetry_stream"

telemetry_stream = dg.AssetSpec(
    TELEMETRY_STREAM,
    group_name="telemetry",
    kinds={"redis"},
    description=(
        "Requests the receiver accepted and published to the durable stream "
        "(AGENTOPS_STREAM_URL); `agentops stream consume` drains it into agent_events. "
        "Each observation records the consumer group's lag."
    ),
)
