"""The real-time stream zone: the stream as an asset and its lag sensor.

Defined only when ``AGENTOPS_STREAM_URL`` is set; without a stream there is nothing to watch.
"""

import dagster as dg

from agentops_assets.defs.stream.assets import telemetry_stream
from agentops_assets.defs.stream.resources import StreamResource
from agentops_assets.defs.stream.sensors import telemetry_stream_lag_sensor
from agentops_assets.stream import StreamSettings

defs = (
    dg.Definitions(
        assets=[telemetry_stream],
        sensors=[telemetry_stream_lag_sensor],
        resources={"stream": StreamResource()},
    )
    if StreamSettings.from_env().configured
    else dg.Definitions()
)
