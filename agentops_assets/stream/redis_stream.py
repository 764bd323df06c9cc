"""Redis Streams as the telemetry stream: XADD to publish, a consumer group to drain.

Durability: ``publish`` returns once XADD returned, i.e. once the message is in the Redis
server's memory. Whether it survives a Redis crash depends on the server, not on this code:
with ``appendonly yes`` and ``appendfsync always`` every write is fsynced to the append-only
file before Redis answers, so nothing acknowledged is lost; the default ``appendfsync everysec``
can lose the last second, and with ``appendonly no`` (and no RDB snapshot) a restart loses the
stream. Two URL options make ``publish`` wait for more before it returns:

- ``?replicas=N`` runs ``WAIT N <timeout>``: N replicas hold the message;
- ``?durability=aof`` runs ``WAITAOF 1 <replicas> <timeout>``: the local append-only file (and
  N replicas' files) fsynced the message. WAITAOF exists from Redis 7.2; on an older server
  the option is refused when the stream is opened, saying so.

When a wait falls short ``publish`` raises, and the request is not acknowledged, although the
message may still be in the stream: a retried request then arrives twice, and events are
stored once anyway (deduplicated by event id); only its quarantine rows may repeat.

Exactly-once draining needs a single consumer per group: the first ``read`` takes a lease
(a key with a time-to-live, renewed by a heartbeat thread) and a second consumer gets
``ConsumerBusyError``. A lease left by a killed consumer on this host is taken over at once;
one from another host when it expires.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from agentops_assets.stream.base import (
    DEFAULT_GROUP,
    DEFAULT_STREAM_NAME,
    ConsumerBusyError,
    Message,
    MessageKind,
    StreamConfigError,
    StreamLag,
    StreamUnavailableError,
    id_of_version,
    txn_version,
)

__all__ = ["RedisStream"]

_OUR_OPTIONS: Final = ("durability", "replicas", "wait_timeout_ms")
_WAITAOF_SINCE: Final = (7, 2)
_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_TAKE_OVER: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


class RedisStream:
    """A Redis stream and one consumer group over it (thread-safe for publishing).

    Args:
        url: ``redis://host:port/db``, optionally with ``?durability=aof``, ``?replicas=N``
            and ``?wait_timeout_ms=M`` (default 1000) for the waits described above.
        name: The stream's key.
        group: The consumer group that feeds ``agent_events``.
        lease_seconds: How long a consumer's lease lives without renewal.
        trim: Whether ``ack`` removes the entries every group has acknowledged.

    Raises:
        StreamConfigError: an unknown or unusable option (WAITAOF on a server before 7.2).
        StreamUnavailableError: the server does not answer.

    Example:
        >>> stream = RedisStream("redis://127.0.0.1:6379/0")
        >>> stream.publish("events", "application/x-ndjson", "identity", b'{"event_id": ...}')
    """

    def __init__(
        self,
        url: str,
        *,
        name: str = DEFAULT_STREAM_NAME,
        group: str = DEFAULT_GROUP,
        lease_seconds: float = 30.0,
        trim: bool = True,
    ) -> None:
        if not name:
            raise StreamConfigError("The stream name is empty; set AGENTOPS_STREAM_NAME.")
        connect_url, options = _split_options(url)
        self.name = name
        self.group = group
        self.trim = trim
        self.consumer = socket.gethostname()
        self.replicas = options["replicas"]
        self.waitaof = options["durability"] == "aof"
        self.wait_timeout_ms = options["wait_timeout_ms"]
        self._lease_ms = int(lease_seconds * 1000)
        self._lease_key = f"{name}:lease:{group}"
        self._lease_value: str | None = None
        self._heartbeat: threading.Thread | None = None
        self._stopping = threading.Event()
        self._recovering = True  # deliver pending messages before new ones
        self._recover_after = "0"
        self._group_ready = False
        try:
            self._redis = redis.Redis.from_url(
                connect_url, socket_timeout=10, socket_connect_timeout=5
            )
            self.server_version = self._redis.info("server")["redis_version"]
        except (redis.RedisError, ValueError) as error:
            raise StreamUnavailableError(
                f"The Redis server at {_shown(connect_url)} cannot be reached ({error})."
            ) from None
        version = tuple(int(p) for p in self.server_version.split(".")[:2])
        if self.waitaof and version < _WAITAOF_SINCE:
            raise StreamConfigError(
                f"durability=aof needs WAITAOF, which Redis has from 7.2; this server is "
                f"{self.server_version}. Drop the option and run the server with appendonly yes "
                "and appendfsync always instead."
            )

    def publish(self, kind: MessageKind, content_type: str, encoding: str, body: bytes) -> str:
        """XADD one request; returns its id once Redis (and any wait asked for) confirmed it.

        Raises:
            StreamUnavailableError: the server refused or did not answer, or a wait fell short.
        """
        fields = {"kind": kind, "content_type": content_type, "encoding": encoding, "body": body}
        try:
            message_id = self._redis.xadd(self.name, fields).decode()
            if self.replicas:
                got = self._redis.wait(self.replicas, self.wait_timeout_ms)
                if got < self.replicas:
                    raise StreamUnavailableError(
                        f"Only {got} of {self.replicas} replicas confirmed message {message_id}."
                    )
            if self.waitaof:
                local, remote = self._redis.execute_command(
                    "WAITAOF", 1, self.replicas, self.wait_timeout_ms
                )
                if local < 1 or remote < self.replicas:
                    raise StreamUnavailableError(
                        f"The append-only file did not confirm message {message_id} in time."
                    )
        except redis.RedisError as error:
            raise StreamUnavailableError(f"Redis refused the message ({error}).") from None
        return message_id

    def read(self, *, count: int, block_seconds: float) -> list[Message]:
        """Pending messages first (this or a dead consumer's), then new ones, in id order.

        Raises:
            ConsumerBusyError: another live consumer holds this group's lease.
            StreamUnavailableError: Redis did not answer.
        """
        self._hold_lease()
        try:
            self._ensure_group()
            if self._recovering:
                if self._recover_after == "0":
                    self._claim_pending()
                # Pending entries after the last one handed out: "0" would repeat them all.
                found = self._read_from(self._recover_after, count, None)
                if found:
                    self._recover_after = found[-1].id
                    return found
                self._recovering = False
            # At most 5 s at once: the connection's socket timeout is 10 s.
            block = max(1, int(min(block_seconds, 5.0) * 1000)) if block_seconds > 0 else None
            return self._read_from(">", count, block)
        except redis.RedisError as error:
            raise StreamUnavailableError(
                f"Reading stream {self.name!r} failed ({error})."
            ) from None

    def ack(self, ids: list[str]) -> None:
        """XACK ``ids``, then trim what every group has acknowledged (when ``trim``)."""
        if not ids:
            return
        try:
            self._redis.xack(self.name, self.group, *ids)
            if self.trim:
                self._trim()
        except redis.RedisError as error:
            raise StreamUnavailableError(f"Acknowledging failed ({error}).") from None

    def lag(self) -> StreamLag:
        """XINFO GROUPS lag and pending, and the age of the oldest message in each."""
        try:
            return self._lag()
        except redis.RedisError as error:
            raise StreamUnavailableError(
                f"Reading the lag of stream {self.name!r} failed ({error})."
            ) from None

    def durability(self) -> str:
        """What an acknowledged publish survives, from the server's persistence settings."""
        try:
            config = self._redis.config_get("append*")
        except redis.RedisError:  # CONFIG is often disabled on managed servers
            return "unknown (CONFIG GET is not allowed on this server)"
        appendonly = config.get("appendonly", "?")
        fsync = config.get("appendfsync", "?")
        if appendonly != "yes":
            effect = "a Redis restart loses what is not consumed yet"
        elif fsync == "always":
            effect = "every acknowledged message is on disk"
        else:
            effect = f"a server crash can lose about the last second (appendfsync {fsync})"
        waits = [w for w, on in (("WAITAOF", self.waitaof), ("WAIT", self.replicas)) if on]
        extra = f"; publish also waits for {' and '.join(waits)}" if waits else ""
        return f"appendonly {appendonly}, appendfsync {fsync}: {effect}{extra}"

    def delete(self) -> None:
        """Remove the stream, its groups and its lease (tests, and a deliberate reset)."""
        self._redis.delete(self.name, self._lease_key)

    def close(self) -> None:
        """Stop the heartbeat, give the lease back, close the connections."""
        self._stopping.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
        if self._lease_value is not None:
            with contextlib.suppress(redis.RedisError):  # else it expires by itself
                self._redis.eval(_RELEASE, 1, self._lease_key, self._lease_value)
            self._lease_value = None
        self._redis.close()

    def _read_from(self, start: str, count: int, block: int | None) -> list[Message]:
        reply = self._redis.xreadgroup(
            self.group, self.consumer, {self.name: start}, count=count, block=block
        )
        if not reply:
            return []
        return [
            Message(raw_id.decode(), {k.decode(): v for k, v in (fields or {}).items()})
            for raw_id, fields in reply[0][1]
        ]

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self._redis.xgroup_create(self.name, self.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._group_ready = True

    def _claim_pending(self) -> None:
        """Take over what other consumers of the group read and never acknowledged."""
        start = "0-0"
        while True:
            # Without JUSTID: redis-py drops the cursor from a JUSTID reply.
            start, *_ = self._redis.xautoclaim(
                self.name, self.group, self.consumer, 0, start, count=1000
            )
            if start in (b"0-0", "0-0"):
                return

    def _trim(self) -> None:
        """XTRIM MINID to the oldest entry some group still needs."""
        keep: list[int] = []
        for info in self._redis.xinfo_groups(self.name):
            if info["pending"]:
                oldest = self._redis.xpending(self.name, info["name"])["min"].decode()
                keep.append(txn_version(oldest))
            else:
                keep.append(txn_version(info["last-delivered-id"].decode()) + 1)
        if keep:
            self._redis.xtrim(self.name, minid=id_of_version(min(keep)))

    def _lag(self) -> StreamLag:
        now_ms = _server_ms(self._redis)
        length = self._redis.xlen(self.name)
        try:
            groups = self._redis.xinfo_groups(self.name)
        except redis.ResponseError:  # no such key: nothing was published yet
            groups = []
        info = next((g for g in groups if g["name"].decode() == self.group), None)
        if info is None:  # no consumer ran yet: everything is undelivered
            first = self._redis.xrange(self.name, "-", "+", count=1)
            return StreamLag(
                self.name, self.group, length, length, 0, None, _age(first, now_ms), None
            )
        last = info["last-delivered-id"].decode()
        pending = int(info["pending"])
        oldest_pending = None
        if pending:
            oldest = self._redis.xpending(self.name, self.group)["min"].decode()
            oldest_pending = max(0.0, (now_ms - (txn_version(oldest) >> 20)) / 1000)
        following = self._redis.xrange(self.name, f"({last}", "+", count=1)
        undelivered = info.get("lag")
        if undelivered is None:  # Redis cannot tell after deletions: count what follows
            undelivered = len(self._redis.xrange(self.name, f"({last}", "+"))
        return StreamLag(
            self.name,
            self.group,
            length,
            int(undelivered),
            pending,
            oldest_pending,
            _age(following, now_ms),
            last,
        )

    def _hold_lease(self) -> None:
        if self._lease_value is not None:
            if not self._redis.eval(_RENEW, 1, self._lease_key, self._lease_value, self._lease_ms):
                raise ConsumerBusyError(
                    f"This consumer lost its lease on stream {self.name!r} (group {self.group!r})"
                    "; another consumer took over, so this one stops."
                )
            return
        value = f"{self.consumer}:{os.getpid()}:{uuid.uuid4().hex}"
        try:
            taken = self._redis.set(self._lease_key, value, nx=True, px=self._lease_ms)
            if not taken:
                holder = (self._redis.get(self._lease_key) or b"").decode()
                if not (_dead_here(holder) and self._take_over(holder, value)):
                    host, _, rest = holder.partition(":")
                    raise ConsumerBusyError(
                        f"Consumer {host}:{rest.partition(':')[0]} already drains stream "
                        f"{self.name!r} for group {self.group!r}; one consumer per group keeps "
                        "it exactly once. Stop it first, or wait for its lease to expire."
                    )
        except redis.RedisError as error:
            raise StreamUnavailableError(f"Taking the consumer lease failed ({error}).") from None
        self._lease_value = value
        self._heartbeat = threading.Thread(
            target=self._renew_lease, name="agentops-stream-lease", daemon=True
        )
        self._heartbeat.start()

    def _take_over(self, holder: str, value: str) -> bool:
        return bool(self._redis.eval(_TAKE_OVER, 1, self._lease_key, holder, value, self._lease_ms))

    def _renew_lease(self) -> None:
        while not self._stopping.wait(self._lease_ms / 3000):
            try:
                self._redis.eval(_RENEW, 1, self._lease_key, self._lease_value, self._lease_ms)
            except redis.RedisError:
                continue  # the next read finds out whether the lease is still ours


def _split_options(url: str) -> tuple[str, dict]:
    """The URL without this module's options, and those options checked."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise StreamConfigError(
            f"AGENTOPS_STREAM_URL must be a redis:// URL (e.g. redis://127.0.0.1:6379/0), "
            f"not {_shown(url)}."
        )
    query = parse_qsl(parts.query)
    ours = {k: v for k, v in query if k in _OUR_OPTIONS}
    rest = [(k, v) for k, v in query if k not in _OUR_OPTIONS]
    durability = ours.get("durability", "")
    if durability not in ("", "aof"):
        raise StreamConfigError(f"durability must be aof, not {durability!r}.")
    numbers = {}
    for key, default in (("replicas", 0), ("wait_timeout_ms", 1000)):
        raw = ours.get(key, str(default))
        if not raw.isdigit():
            raise StreamConfigError(f"{key} must be a whole number, not {raw!r}.")
        numbers[key] = int(raw)
    options = {"durability": durability, **numbers}
    return urlunsplit(parts._replace(query=urlencode(rest))), options


def _shown(url: str) -> str:
    """A URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def _age(entries: list, now_ms: int) -> float | None:
    if not entries:
        return None
    published = txn_version(entries[0][0].decode()) >> 20
    return max(0.0, (now_ms - published) / 1000)


def _dead_here(holder: str) -> bool:
    """Whether a lease value names a process of this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False
