"""The durable stream interface the receiver publishes to and the consumer drains.

One message is one accepted HTTP request: its kind (``traces`` or ``events``), media type,
content encoding and body as received. A stream keeps messages in publish order under ids that
increase; :func:`txn_version` turns an id into the integer a Delta transaction records, which is
how the consumer knows, after a crash, what it already committed.

Redis Streams implements it (:mod:`.redis_stream`); NATS JetStream (a stream with a durable
pull consumer, ``ack`` = ``msg.ack()``, ids = stream sequence numbers) or Kafka (a topic with
one partition per consumer, ids = offsets) fit the same four calls.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final, Literal, Protocol

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_STREAM_NAME",
    "ConsumerBusyError",
    "Message",
    "MessageKind",
    "StreamConfigError",
    "StreamError",
    "StreamLag",
    "StreamSettings",
    "StreamUnavailableError",
    "TelemetryStream",
    "id_of_version",
    "txn_version",
]

DEFAULT_STREAM_NAME: Final = "agentops:telemetry"
DEFAULT_GROUP: Final = "agent_events"
MessageKind = Literal["traces", "events"]
_SEQ_BITS: Final = 20  # a Redis id's sequence within one millisecond; 2**20 is never reached


class StreamError(Exception):
    """Base class of the stream's errors."""


class StreamConfigError(StreamError, ValueError):
    """The stream's configuration (URL, name, options) is not usable."""


class StreamUnavailableError(StreamError):
    """The stream server cannot be reached or refused a command."""


class ConsumerBusyError(StreamError):
    """Another live consumer already drains this stream's group."""


@dataclass(frozen=True)
class Message:
    """One published request as the consumer reads it.

    ``fields`` holds what was published (``kind``, ``content_type``, ``encoding``, ``body``);
    a message written by something else may lack some, and is quarantined for it.
    """

    id: str
    fields: dict[str, bytes]

    @property
    def published_ms(self) -> int:
        """Milliseconds since the epoch at which the stream accepted the message."""
        return txn_version(self.id) >> _SEQ_BITS


@dataclass(frozen=True)
class StreamLag:
    """How far the consumer group is behind the stream.

    ``undelivered`` messages were never read by the group; ``pending`` were read but not
    acknowledged (a batch being committed, or one a crashed consumer left). Ages are seconds
    since the oldest such message was published, ``None`` when there is none.
    """

    stream: str
    group: str
    length: int
    undelivered: int
    pending: int
    oldest_pending_age_s: float | None
    oldest_undelivered_age_s: float | None
    last_delivered_id: str | None

    @property
    def behind(self) -> int:
        """Messages not yet committed: undelivered plus pending."""
        return self.undelivered + self.pending

    @property
    def oldest_age_s(self) -> float | None:
        """Age of the oldest message not yet committed, pending or undelivered."""
        ages = [
            a for a in (self.oldest_pending_age_s, self.oldest_undelivered_age_s) if a is not None
        ]
        return max(ages) if ages else None


class TelemetryStream(Protocol):
    """What the receiver and the consumer need of a durable stream.

    ``publish`` returns only once the server accepted the message (with the durability the
    implementation documents). ``read`` hands a consumer first the messages it was given but
    never acknowledged (after a crash), then new ones, in id order. ``ack`` marks messages
    done; an unacknowledged message is delivered again.
    """

    name: str
    group: str

    def publish(self, kind: MessageKind, content_type: str, encoding: str, body: bytes) -> str:
        """Append one message; returns its id."""
        ...

    def read(self, *, count: int, block_seconds: float) -> list[Message]:
        """Up to ``count`` messages for this consumer, waiting at most ``block_seconds``."""
        ...

    def ack(self, ids: list[str]) -> None:
        """Acknowledge messages once what they hold is committed."""
        ...

    def lag(self) -> StreamLag:
        """The group's lag, as the consumer and the receiver's backlog check see it."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


@dataclass(frozen=True)
class StreamSettings:
    """Where the stream lives: ``AGENTOPS_STREAM_URL``, ``AGENTOPS_STREAM_NAME``, the group.

    No URL means no stream: requests land as files, as without this module.
    """

    url: str | None
    name: str = DEFAULT_STREAM_NAME
    group: str = DEFAULT_GROUP

    @classmethod
    def from_env(cls) -> StreamSettings:
        url = os.environ.get("AGENTOPS_STREAM_URL", "").strip() or None
        name = os.environ.get("AGENTOPS_STREAM_NAME", "").strip() or DEFAULT_STREAM_NAME
        return cls(url, name)

    @property
    def configured(self) -> bool:
        return self.url is not None


def txn_version(message_id: str) -> int:
    """A stream id ``<ms>-<seq>`` as one increasing integer: ``ms << 20 | seq``.

    This is the version of the Delta transaction the consumer commits with a batch: every
    message whose id encodes to at most the table's stored version is in the table.

    Raises:
        ValueError: the id is not ``<milliseconds>-<sequence>`` or its sequence is too large.
    """
    ms, _, seq = message_id.partition("-")
    if not (ms.isdigit() and seq.isdigit()):
        raise ValueError(f"Stream id {message_id!r} is not <milliseconds>-<sequence>.")
    if int(seq) >= 1 << _SEQ_BITS:
        raise ValueError(f"Stream id {message_id!r} has a sequence above 2**{_SEQ_BITS} - 1.")
    return int(ms) << _SEQ_BITS | int(seq)


def id_of_version(version: int) -> str:
    """The stream id a transaction version encodes (the inverse of :func:`txn_version`)."""
    return f"{version >> _SEQ_BITS}-{version & ((1 << _SEQ_BITS) - 1)}"
