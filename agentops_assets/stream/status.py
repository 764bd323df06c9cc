"""The stream's lag and what the lake has committed, as one set of figures.

``agentops stream status`` prints them and the Dagster lag sensor records them as metadata.
"""

from __future__ import annotations

from agentops_assets.storage.config import Paths
from agentops_assets.stream.base import StreamLag, TelemetryStream, id_of_version
from agentops_assets.stream.consumer import StreamConsumer

__all__ = ["lag_figures", "stream_status"]


def lag_figures(lag: StreamLag, committed_version: int) -> dict[str, str | int | float | None]:
    """Name -> value of every lag figure, in the order people read them.

    ``committed_through`` is the last stream id whose rows ``agent_events`` holds (from its
    Delta transaction), ``None`` before the first commit.
    """
    return {
        "stream": lag.stream,
        "group": lag.group,
        "length": lag.length,
        "undelivered": lag.undelivered,
        "pending": lag.pending,
        "behind": lag.behind,
        "oldest_pending_age_s": _rounded(lag.oldest_pending_age_s),
        "oldest_undelivered_age_s": _rounded(lag.oldest_undelivered_age_s),
        "oldest_age_s": _rounded(lag.oldest_age_s),
        "last_delivered_id": lag.last_delivered_id,
        "committed_through": id_of_version(committed_version) if committed_version else None,
    }


def stream_status(paths: Paths, stream: TelemetryStream) -> dict[str, str | int | float | None]:
    """:func:`lag_figures` of ``stream`` and the lake at ``paths`` (takes no consumer lease)."""
    events_version, _ = StreamConsumer(paths, stream).committed()
    return lag_figures(stream.lag(), events_version)


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
