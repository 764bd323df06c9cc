"""The telemetry stream as a Dagster resource."""

import dagster as dg
from pydantic import Field

from agentops_assets.stream import StreamSettings, TelemetryStream, open_stream


class StreamResource(dg.ConfigurableResource):
    """The durable stream the receiver publishes to.

    Unset fields fall back to ``AGENTOPS_STREAM_URL`` and ``AGENTOPS_STREAM_NAME``.
    """

    url: str | None = Field(default=None, description="AGENTOPS_STREAM_URL, e.g. redis://...")
    name: str | None = Field(default=None, description="AGENTOPS_STREAM_NAME.")

    def open(self) -> TelemetryStream:
        """A connection to the stream; the caller closes it.

        Raises:
            StreamConfigError: no stream is configured.
        """
        env = StreamSettings.from_env()
        settings = StreamSettings(self.url or env.url, self.name or env.name)
        stream = open_stream(settings)
        if stream is None:
            from agentops_assets.stream import StreamConfigError

            raise StreamConfigError("No stream is configured: set AGENTOPS_STREAM_URL.")
        return stream
