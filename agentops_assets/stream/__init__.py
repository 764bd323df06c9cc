"""The real-time stream zone: receiver -> durable stream -> micro-batches into the lake.

When ``AGENTOPS_STREAM_URL`` is set, ``agentops serve`` publishes each accepted request to
the stream named by ``AGENTOPS_STREAM_NAME`` (default ``agentops:telemetry``) instead of
writing a landing file, and ``agentops stream consume`` drains it into ``agent_events``
exactly once. Without the variable nothing here runs. Redis Streams is the implementation;
another broker fits :class:`TelemetryStream` the same way. No Dagster import here.
"""

from __future__ import annotations

from agentops_assets.stream.base import (
    DEFAULT_GROUP,
    DEFAULT_STREAM_NAME,
    ConsumerBusyError,
    Message,
    MessageKind,
    StreamConfigError,
    StreamError,
    StreamLag,
    StreamSettings,
    StreamUnavailableError,
    TelemetryStream,
    id_of_version,
    txn_version,
)
from agentops_assets.stream.consumer import BatchResult, ConsumeReport, StreamConsumer, app_id_for
from agentops_assets.stream.status import lag_figures, stream_status

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_STREAM_NAME",
    "BatchResult",
    "ConsumeReport",
    "ConsumerBusyError",
    "Message",
    "MessageKind",
    "StreamConfigError",
    "StreamConsumer",
    "StreamError",
    "StreamLag",
    "StreamSettings",
    "StreamUnavailableError",
    "TelemetryStream",
    "app_id_for",
    "id_of_version",
    "lag_figures",
    "open_stream",
    "stream_status",
    "txn_version",
]


def open_stream(
    settings: StreamSettings | None = None, **options: object
) -> TelemetryStream | None:
    """The configured stream (``StreamSettings.from_env()`` by default), or ``None`` if none.

    Raises:
        StreamConfigError: the URL's scheme has no implementation, or an option is wrong.
        StreamUnavailableError: the server does not answer.
    """
    settings = settings or StreamSettings.from_env()
    if settings.url is None:
        return None
    scheme = settings.url.split("://", 1)[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        try:
            from agentops_assets.stream.redis_stream import RedisStream
        except ImportError:
            raise StreamConfigError(
                "AGENTOPS_STREAM_URL names Redis but the redis package is not installed; "
                "install the cluster extra: pip install 'agentops-grid[cluster]'."
            ) from None

        return RedisStream(settings.url, name=settings.name, group=settings.group, **options)
    raise StreamConfigError(
        f"AGENTOPS_STREAM_URL must start with redis:// (Redis Streams is the one implementation "
        f"so far), not {scheme}://."
    )
