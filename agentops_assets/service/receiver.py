"""The OTLP/HTTP receiver: request bodies in, durable landing files out.

``POST /v1/traces`` follows the OTLP/HTTP specification (opentelemetry-proto,
``docs/specification.md``): ``application/x-protobuf`` or ``application/json`` bodies, gzip
content encoding, an ``ExportTraceServiceResponse`` in the request's encoding, with
``partial_success`` when some spans will not become rows, and a ``google.rpc.Status`` body
for every refusal (400 bad data, 403 foreign agent, 413 too large, 415 unsupported media type
or encoding, 429 with ``Retry-After`` when the landing backlog is too long, 503 when the
disk fails). ``POST /v1/events`` takes native JSONL reasoning-log events the same way.

Each accepted request becomes one landing file, written to a hidden temporary name that
landing discovery skips, flushed and fsynced, then renamed into place and its folder fsynced:
only then is the request acknowledged. With the landing on object storage
(``AGENTOPS_LANDING_URI=s3://...``) it becomes one object instead, stored by one atomic PUT
(no temporary name needed), and the request is acknowledged once the PUT has returned.
Ingestion, the landing sensor and exactly-once apply unchanged: the file lands whole, and
every span ingestion cannot store is quarantined with its reason when the file is ingested,
whatever the reply said.

How a trace body is checked before it is acknowledged (``check``, or the environment
variable ``AGENTOPS_RECEIVER_CHECK``; partial success is optional in the OTLP specification):

- ``fast`` (the default, about 5 µs a span): the body is decoded (opentelemetry-proto's
  C-backed protobuf, or orjson) and walked by :mod:`.span_check` only as far as needed.
  ``partial_success`` counts the spans that cannot be records at all: missing or invalid
  trace or span ids, attribute keys given twice at the top level of a span, its resource or
  scope, and in JSON spans that are not objects. Spans that ingestion's validation rejects
  (e.g. no start time, an unknown kind, a secret in an identifier) or that are too large are
  not counted in the reply; ingestion quarantines them with their reason as always.
- ``full`` (about 100 µs a span): the body is read by the same reader ingestion uses and
  run through its validation and secret check, so ``rejected_spans`` is exactly the number
  of spans ``agent_events_quarantine`` will receive, and the message names the first ones.

Both refuse undecodable bodies with 400 (the fast check hands anything outside the common
shape to the full reader, which says what is wrong), and for an ``agent``-role token both
check every span's agent id as the readers take it (a span's own identity attributes, then
its resource's, then the nearest ancestor span's): one span for another agent, or one that
cannot be read, refuses the whole request with 403. Event bodies (``/v1/events``) are always
checked in full.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

import orjson
import polars as pl
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agentops_assets.service.span_check import SpanCheck, check_json, check_protobuf
from agentops_assets.storage.config import Paths
from agentops_assets.stream import StreamError, TelemetryStream, open_stream
from agentops_assets.telemetry.ingest import ingested_stamps
from agentops_assets.telemetry.jsonl import read_jsonl
from agentops_assets.telemetry.landing import (
    SourceFormat,
    discover,
    pending_files,
    write_object,
)
from agentops_assets.telemetry.otlp import read_otlp, read_otlp_protobuf
from agentops_assets.telemetry.parsed import ParsedRecords, Reject
from agentops_assets.telemetry.redact import quarantine_secret_keys, redact_text
from agentops_assets.telemetry.validate import validate

__all__ = ["CHECKS", "JSON", "NDJSON", "PROTOBUF", "Backlog", "Check", "Receiver", "Reply"]

logger = logging.getLogger("agentops.service")

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
NDJSON: Final = "application/x-ndjson"
_EVENT_TYPES: Final = frozenset({NDJSON, "application/jsonl", "application/x-jsonlines", JSON})
_ENCODINGS: Final = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
# google.rpc.Code for each refusal, as gRPC would have answered.
_RPC_CODES: Final = {400: 3, 403: 7, 413: 3, 415: 3, 429: 8, 503: 14}
_REASONS_SHOWN: Final = 3  # rejected records named in a partial-success message
_BACKLOG_TTL: Final = 1.0  # seconds a backlog measurement is reused
# Reader rejects that mean the body as a whole is not telemetry: 400, nothing lands.
_UNREADABLE: Final = frozenset(
    {"invalid_protobuf", "no_resource_spans", "invalid_json", "invalid_utf8", "not_an_object"}
)
_LINE_PROBLEMS: Final = frozenset({"invalid_json", "invalid_utf8", "truncated_record"})

Kind = Literal["traces", "events"]
Check = Literal["fast", "full"]
CHECKS: Final[tuple[Check, ...]] = ("fast", "full")


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, body bytes, media type and extra headers."""

    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Backlog:
    """Landing files not ingested yet, and their size on disk."""

    files: int
    bytes: int


class _Refused(Exception):
    """A request the receiver answers with an error status; nothing lands."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class _Checked:
    """A decoded body: records read, those ingestion will quarantine, and why (first ones)."""

    records: int
    rejected: int
    reasons: list[str]


class Receiver:
    """Turns OTLP/HTTP and JSONL request bodies into durable landing files (thread-safe).

    Args:
        paths: The storage layout; files land under ``paths.landing_uri`` (a local folder, or
            an object-store prefix).
        max_body_bytes: Largest body accepted, compressed and again once decompressed.
        max_backlog_files: Landing files waiting for ingestion above which requests get 429.
        max_backlog_bytes: Bytes of landing files waiting above which requests get 429.
        retry_after_seconds: What a 429 or 503 reply asks the client to wait.
        check: How trace bodies are checked before they are acknowledged: ``"fast"`` (walk
            the decoded spans for unusable ids and agent ids) or ``"full"`` (ingestion's reader
            and validation, for an exact ``partial_success``); see the module docstring.
            ``None``: ``AGENTOPS_RECEIVER_CHECK``, else ``"fast"``.
        workers: Processes that decode and check bodies (started here); 0 checks in
            the calling thread, where requests that arrive together are validated together.
            Decoding holds the GIL, so worker processes let every core decode while the event
            loop stays free. ``None``: ``AGENTOPS_RECEIVER_WORKERS``, else 0.

    Raises:
        ValueError: a limit below 1, an unknown check, or ``AGENTOPS_RECEIVER_WORKERS`` not a
            whole number.

    Example:
        >>> reply = Receiver(paths).traces(body, content_type="application/x-protobuf",
        ...                                content_encoding=None)
    """

    def __init__(
        self,
        paths: Paths,
        *,
        max_body_bytes: int = 16 * 2**20,
        max_backlog_files: int = 10_000,
        max_backlog_bytes: int = 2 * 2**30,
        retry_after_seconds: int = 5,
        check: Check | None = None,
        workers: int | None = None,
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be at least 1, not {max_body_bytes}.")
        self.check: Check = _check_from_env() if check is None else _known_check(check, "check")
        self.paths = paths
        self.max_body_bytes = max_body_bytes
        self.max_backlog_files = max_backlog_files
        self.max_backlog_bytes = max_backlog_bytes
        self.retry_after_seconds = retry_after_seconds
        # AGENTOPS_STREAM_URL set: requests are published to the stream, not landed as files.
        self.stream: TelemetryStream | None = open_stream()
        self._backlog = _StreamBacklog(self.stream) if self.stream else _BacklogGauge(paths)
        self._folders: set[Path] = set()
        self._folders_lock = threading.Lock()
        self.workers = _workers_from_env() if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._backlog.read()  # the first measurement here, not on a request's time
        if paths.landing_is_local:  # objects are stored whole: no temporaries to sweep
            sweep_temporaries(paths.landing)
        if self.workers > 0:  # start them now: the service is ready once they are
            self._worker_pool()

    def traces(
        self,
        body: bytes,
        *,
        content_type: str | None,
        content_encoding: str | None,
        agents: frozenset[str] | None = None,
    ) -> Reply:
        """Answer ``POST /v1/traces``: land an ExportTraceServiceRequest, or refuse it.

        Args:
            body: The request body as received (still gzip-compressed if it was sent so).
            content_type: The ``Content-Type`` header: protobuf or JSON.
            content_encoding: The ``Content-Encoding`` header: gzip, identity or none.
            agents: Agent ids the caller may send for; ``None`` allows any.

        Returns:
            Reply: 200 with an ExportTraceServiceResponse once the file is durable (its
            ``partial_success`` counts the spans the check finds unusable: with ``check="full"``
            exactly those ingestion will quarantine), else an error
            status with a ``google.rpc.Status`` body saying what is wrong.
        """
        media = _media(content_type)
        protobuf = media == PROTOBUF
        try:
            if media not in (PROTOBUF, JSON):
                raise _Refused(415, _unsupported(content_type, "application/x-protobuf or JSON"))
            data, gzipped = self._admit(body, content_encoding)
            checked = self._inspect("otlp_protobuf" if protobuf else "otlp_json", data, agents)
            if checked.records:
                stored = body if gzipped else data
                suffix = (".pb" if protobuf else ".json") + (".gz" if gzipped else "")
                self._land("otlp", suffix, stored)
        except _Refused as refused:
            return _status_reply(refused, protobuf=protobuf)
        return _traces_reply(checked, protobuf=protobuf)

    def events(
        self,
        body: bytes,
        *,
        content_type: str | None,
        content_encoding: str | None,
        agents: frozenset[str] | None = None,
    ) -> Reply:
        """Answer ``POST /v1/events``: land native JSONL reasoning-log events, or refuse them.

        The body is JSONL (``application/x-ndjson``, ``application/jsonl``), or
        ``application/json`` holding one event object or an array of them.

        Args:
            body: The request body as received (still gzip-compressed if it was sent so).
            content_type: The ``Content-Type`` header.
            content_encoding: The ``Content-Encoding`` header: gzip, identity or none.
            agents: Agent ids the caller may send for; ``None`` allows any.

        Returns:
            Reply: 200 with JSON ``{"events", "rejected_events", "error_message"}`` once the
            file is durable, else an error status with a ``google.rpc.Status``-shaped JSON body.
        """
        media = _media(content_type)
        try:
            if media not in _EVENT_TYPES:
                raise _Refused(415, _unsupported(content_type, "JSONL (application/x-ndjson)"))
            data, gzipped = self._admit(body, content_encoding)
            _refuse_binary(data)
            if media == JSON:
                data, gzipped = _json_to_lines(data), False
            checked = self._inspect("jsonl", data, agents)
            if checked.records:
                self._land(
                    "events", ".jsonl.gz" if gzipped else ".jsonl", body if gzipped else data
                )
        except _Refused as refused:
            return _status_reply(refused, protobuf=False)
        return _events_reply(checked)

    def refusal(self, status: int, message: str, *, content_type: str | None) -> Reply:
        """An error reply shaped as the others (``google.rpc.Status`` in the request's encoding).

        For refusals the app makes itself, e.g. 413 when the body runs past the limit while
        it is being read.
        """
        return _status_reply(_Refused(status, message), protobuf=_media(content_type) == PROTOBUF)

    def backlog(self) -> Backlog:
        """Landing files not ingested yet (measured at most about once a second)."""
        return self._backlog.read()

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if self.stream is not None:
            self.stream.close()

    def _inspect(self, fmt: SourceFormat, data: bytes, agents: frozenset[str] | None) -> _Checked:
        """:func:`_inspect_with` this receiver's check, here or in a worker process.

        Raises:
            _Refused: the body is refused (400, 403), or a worker died (503).
        """
        if self.workers < 1:
            return _inspect_with(self.check, fmt, data, agents)
        pool = self._worker_pool()
        try:
            outcome = pool.submit(_inspect_in_worker, self.check, fmt, data, agents).result()
        except BrokenProcessPool:
            with self._pool_lock:
                self._pool = None  # the next request starts fresh workers
            message = "The worker checking the request stopped; retry."
            raise _Refused(503, message, {"Retry-After": "1"}) from None
        if isinstance(outcome, tuple):
            raise _Refused(*outcome)
        return outcome

    def _worker_pool(self) -> ProcessPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                spawn = multiprocessing.get_context("spawn")  # fork is unsafe in a threaded server
                pool = ProcessPoolExecutor(self.workers, mp_context=spawn)
                for started in [pool.submit(_warm_up) for _ in range(self.workers)]:
                    started.result()
                self._pool = pool
            return self._pool

    def _admit(self, body: bytes, content_encoding: str | None) -> tuple[bytes, bool]:
        """The decompressed body, after the size, encoding and backlog checks.

        Returns the bytes and whether the body came gzip-compressed (then it lands as sent,
        as a .gz file; a deflate body, which the OpenTelemetry SDK's exporter can send, lands
        decompressed since landing files know gzip only).
        """
        encoding = (content_encoding or "").strip().lower()
        if encoding not in _ENCODINGS:
            message = f"Content-Encoding {encoding!r} is not supported; use gzip (or deflate)."
            raise _Refused(415, message)
        if len(body) > self.max_body_bytes:
            raise _Refused(413, _too_large(len(body), self.max_body_bytes, "body"))
        self._refuse_backlog()
        if encoding in ("gzip", "x-gzip"):
            return _gunzip(body, self.max_body_bytes), True
        if encoding == "deflate":
            return _inflate(body, self.max_body_bytes), False
        return bytes(body), False

    def _refuse_backlog(self) -> None:
        backlog = self._backlog.read()
        over = []
        if backlog.files > self.max_backlog_files:
            over.append(f"{backlog.files:,} files (limit {self.max_backlog_files:,})")
        if backlog.bytes > self.max_backlog_bytes:
            over.append(f"{backlog.bytes:,} bytes (limit {self.max_backlog_bytes:,})")
        if over:
            held = " and ".join(over)
            if self.stream is not None:
                held = held.replace("files", "messages").replace("file ", "message ")
            message = (
                f"The {'stream' if self.stream else 'landing'} backlog holds {held} not yet "
                f"ingested; "
                f"retry in {self.retry_after_seconds} s."
            )
            raise _Refused(429, message, {"Retry-After": str(self.retry_after_seconds)})

    def _land(self, kind: Kind, suffix: str, data: bytes) -> Path | str:
        """Write ``data`` as one new landing file, durably, and return its path.

        With a stream configured, publish it instead and return the message id.

        Raises:
            _Refused: 503 when the disk refuses the write (nothing is left behind).
        """
        if self.stream is not None:
            return self._publish(kind, suffix, data)
        now = datetime.now(UTC)
        name = f"{_sortable_id(now)}{suffix}"
        if not self.paths.landing_is_local:
            return self._put(f"{kind}/{now.strftime('%Y-%m-%d')}/{name}", data)
        folder = self.paths.landing / kind / now.strftime("%Y-%m-%d")
        try:
            self._ensure_folder(folder)
            try:
                _write_durably(folder, name, data)
            except FileNotFoundError:  # the folder was removed since: make it again
                self._folders.discard(folder)
                self._ensure_folder(folder)
                _write_durably(folder, name, data)
        except OSError as error:
            message = f"The request could not be stored durably ({error.strerror or error})."
            raise _Refused(503, message, {"Retry-After": str(self.retry_after_seconds)}) from None
        self._backlog.landed(len(data))
        return folder / name

    def _put(self, key: str, data: bytes) -> str:
        """Store ``data`` as the object ``key`` under the landing prefix; its URI.

        Raises:
            _Refused: 503 when the store refuses the write or cannot be reached.
        """
        uri = f"{self.paths.landing_uri}/{key}"
        try:
            write_object(uri, data)
        except OSError as error:
            message = f"The request could not be stored durably ({error})."
            raise _Refused(503, message, {"Retry-After": str(self.retry_after_seconds)}) from None
        self._backlog.landed(len(data))
        return uri

    def _publish(self, kind: Kind, suffix: str, data: bytes) -> str:
        """Publish ``data`` (stored as a landing file would be) to the stream; its id.

        The request is acknowledged only after this returns, i.e. after XADD (and any wait
        the stream URL asks for): see :mod:`agentops_assets.stream.redis_stream` for what
        that guarantees with the Redis server's append-only-file settings.

        Raises:
            _Refused: 503 when the stream refuses the message or cannot be reached.
        """
        media = PROTOBUF if suffix.startswith(".pb") else NDJSON if ".jsonl" in suffix else JSON
        encoding = "gzip" if suffix.endswith(".gz") else "identity"
        assert self.stream is not None
        try:
            message_id = self.stream.publish(
                "events" if kind == "events" else "traces", media, encoding, data
            )
        except StreamError as error:
            message = f"The request could not be stored durably ({error})"
            raise _Refused(503, message, {"Retry-After": str(self.retry_after_seconds)}) from None
        self._backlog.landed(len(data))
        return message_id

    def _ensure_folder(self, folder: Path) -> None:
        """Create ``folder`` and make its entry durable in its parents (once per folder)."""
        if folder in self._folders:
            return
        with self._folders_lock:
            if folder in self._folders:
                return
            missing = [p for p in (folder, *folder.parents) if not p.exists()]
            folder.mkdir(parents=True, exist_ok=True)
            for created in reversed(missing):
                _fsync_folder(created.parent)
            self._folders.add(folder)


class _BacklogGauge:
    """The landing backlog, measured about once per ``_BACKLOG_TTL`` (less often when slow).

    Only the first measurement runs on a request's thread; later ones run in a background
    thread while requests use the last figure. Files this receiver lands are added to that
    figure, so a burst cannot overshoot the limit by a measurement's worth of requests.
    """

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.lock = threading.Lock()
        self.measuring = threading.Lock()
        self.figure: Backlog | None = None
        self.expires = 0.0
        self.added_files = 0
        self.added_bytes = 0

    def read(self) -> Backlog:
        if self.figure is None:
            with self.measuring:
                if self.figure is None:
                    self._measure()
        elif time.monotonic() >= self.expires and self.measuring.acquire(blocking=False):
            threading.Thread(target=self._measure_in_background, daemon=True).start()
        with self.lock:
            figure = self.figure or Backlog(0, 0)
            return Backlog(figure.files + self.added_files, figure.bytes + self.added_bytes)

    def landed(self, size: int) -> None:
        with self.lock:
            self.added_files += 1
            self.added_bytes += size

    def _measure_in_background(self) -> None:
        try:
            self._measure()
        finally:
            self.measuring.release()

    def _measure(self) -> None:
        started = time.monotonic()
        with self.lock:  # landings from now on are counted by this measurement or the next
            before_files, before_bytes = self.added_files, self.added_bytes
        try:
            landing = discover(self.paths.landing_uri)
            waiting = pending_files(landing, ingested_stamps(self.paths))
        except Exception:  # an unreadable table must not stop telemetry: keep the last figure
            logger.exception("could not measure the landing backlog")
            with self.lock:
                self.figure = self.figure or Backlog(0, 0)
                self.expires = time.monotonic() + _BACKLOG_TTL
            return
        figure = Backlog(len(waiting), sum(f.size for f in waiting))
        took = time.monotonic() - started
        with self.lock:
            self.figure = figure
            self.added_files -= before_files
            self.added_bytes -= before_bytes
            # A slow measurement (a huge landing folder) is repeated less often.
            self.expires = time.monotonic() + max(_BACKLOG_TTL, 5 * took)


class _StreamBacklog:
    """The stream's lag as a backlog: messages not yet committed (measured at most about once
    per ``_BACKLOG_TTL``; messages published since are added to the last figure)."""

    def __init__(self, stream: TelemetryStream) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        self.figure = Backlog(0, 0)
        self.expires = 0.0

    def read(self) -> Backlog:
        with self.lock:
            if time.monotonic() < self.expires:
                return self.figure
            self.expires = time.monotonic() + _BACKLOG_TTL
        try:
            figure = Backlog(self.stream.lag().behind, 0)
        except StreamError:  # an unreachable stream shows when publishing: keep the figure
            logger.exception("could not measure the stream backlog")
            return self.figure
        with self.lock:
            self.figure = figure
            return figure

    def landed(self, size: int) -> None:
        with self.lock:
            self.figure = Backlog(self.figure.files + 1, self.figure.bytes)


def _check_from_env() -> Check:
    raw = os.environ.get("AGENTOPS_RECEIVER_CHECK", "").strip().lower()
    return _known_check(raw or "fast", "AGENTOPS_RECEIVER_CHECK")


def _known_check(value: str, name: str) -> Check:
    if value not in CHECKS:
        raise ValueError(f"{name} must be fast or full, not {value!r}.")
    return value  # type: ignore[return-value]


def _workers_from_env() -> int:
    raw = os.environ.get("AGENTOPS_RECEIVER_WORKERS", "").strip()
    if not raw:
        return 0
    if not raw.isdigit():
        raise ValueError(
            f"AGENTOPS_RECEIVER_WORKERS must be a whole number of processes, not {raw!r}."
        )
    return int(raw)


def _media(content_type: str | None) -> str:
    """The media type of a Content-Type header, without parameters, in lowercase."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _unsupported(content_type: str | None, wanted: str) -> str:
    shown = repr(content_type) if content_type else "missing"
    return f"Content-Type {shown} is not supported; send {wanted}."


def _too_large(size: int, limit: int, what: str) -> str:
    return f"The {what} holds more than {limit:,} bytes ({size:,}); send smaller batches."


def _gunzip(body: bytes, limit: int) -> bytes:
    """Decompress a gzip body (one or more members), never making more than ``limit`` bytes.

    Raises:
        _Refused: 400 for bytes that are not a whole gzip stream, 413 past ``limit``.
    """
    parts: list[bytes] = []
    size = 0
    rest = body
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            piece = inflater.decompress(rest, limit - size + 1)
        except zlib.error as error:
            raise _Refused(400, f"The body is not valid gzip data ({error}).") from None
        size += len(piece)
        if size > limit or inflater.unconsumed_tail:
            raise _Refused(413, f"The body decompresses to more than {limit:,} bytes.")
        if not inflater.eof:
            raise _Refused(400, "The gzip body ends early; it was cut short in transit.")
        parts.append(piece)
        rest = inflater.unused_data
    if not parts:
        raise _Refused(400, "The body is empty but declares gzip encoding.")
    return b"".join(parts)


def _inflate(body: bytes, limit: int) -> bytes:
    """Decompress a deflate body (zlib-wrapped as HTTP defines it, or raw), within ``limit``.

    Raises:
        _Refused: 400 for bytes that are not a whole deflate stream, 413 past ``limit``.
    """
    wrapped = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
    inflater = zlib.decompressobj(wbits=15 if wrapped else -15)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise _Refused(400, f"The body is not valid deflate data ({error}).") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise _Refused(413, f"The body decompresses to more than {limit:,} bytes.")
    if not inflater.eof:
        raise _Refused(400, "The deflate body ends early; it was cut short in transit.")
    return data


def _refuse_binary(data: bytes) -> None:
    """Text formats with a NUL byte are quarantined whole by ingestion: refuse them now."""
    if b"\x00" in data[:8192]:
        raise _Refused(
            400, "The body is binary, not JSON text; protobuf needs application/x-protobuf."
        )


def _json_to_lines(data: bytes) -> bytes:
    """A JSON event object, or an array of them, as JSONL (one element a line)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise _Refused(400, f"The body is not JSON ({error}).") from None
    items = doc if isinstance(doc, list) else [doc]
    return b"".join(orjson.dumps(item) + b"\n" for item in items)


def _refuse_unreadable(parsed: ParsedRecords, data: bytes) -> None:
    """400 when the reader found nothing like an ExportTraceServiceRequest in the body."""
    if parsed.records.height or len(parsed.rejects) != 1 or parsed.records_read != 1:
        return
    reject = parsed.rejects[0]
    if reject.index != 0 or reject.reason not in _UNREADABLE:
        return
    if reject.reason == "invalid_protobuf":
        message = (
            "The body is not a protobuf ExportTraceServiceRequest (truncated, or not protobuf)"
        )
        if data.lstrip()[:1] in (b"{", b"["):
            message += "; it looks like JSON: send it with Content-Type application/json"
    else:
        detail = reject.detail.replace("the file", "the body").replace("file ", "body ")
        message = f"The body cannot be read as OTLP traces: {detail}"
    raise _Refused(400, f"{message}.")


def _refuse_no_lines(parsed: ParsedRecords) -> None:
    """400 when no line of a JSONL body is a JSON object."""
    rejects = parsed.rejects
    if parsed.records.height == 0 and rejects and all(r.reason in _LINE_PROBLEMS for r in rejects):
        first = rejects[0]
        message = f"No line of the body is a JSON event: line {first.index}: {first.detail}"
        raise _Refused(400, message)


def _check_agents(
    parsed: ParsedRecords, agents: frozenset[str] | None, what: str, *, first: int
) -> None:
    """403 unless every record names an agent id the caller may send for."""
    if agents is None:
        return
    allowed = ", ".join(sorted(agents)) or "none"
    if parsed.rejects:
        reject = min(parsed.rejects, key=lambda r: r.index)
        raise _Refused(
            403,
            f"{what} {_number(reject.index, first)} cannot be read ({reject.reason}), so the "
            f"agent it speaks for cannot be checked; this token may send for: {allowed}.",
        )
    frame = parsed.records.select("_index", "agent_id")
    foreign = frame.filter(
        pl.col("agent_id").is_null() | pl.col("agent_id").is_in(list(agents)).not_()
    )
    if foreign.height:
        index, agent = foreign.row(0)
        said = f"names agent {agent!r}" if agent else "names no agent id"
        raise _Refused(
            403,
            f"{what} {_number(index, first)} {said}; this token may send for: {allowed}.",
        )


def _number(index: int, first: int) -> int:
    """A record's index as people count: spans from 0 become 1-based; lines already are."""
    return index + 1 - first


def _inspect_body(fmt: SourceFormat, data: bytes, agents: frozenset[str] | None) -> _Checked:
    """Read a decompressed body as ingestion will read its landing file, and check it.

    Raises:
        _Refused: 400 when the body is not telemetry at all, 403 for a foreign agent.
    """
    with _VALIDATION.coming():
        if fmt == "jsonl":
            parsed = read_jsonl(data)
            _refuse_no_lines(parsed)
            what, first = "line", 1
        else:
            if fmt == "otlp_json":
                _refuse_binary(data)
                parsed = read_otlp(data)
            else:
                parsed = read_otlp_protobuf(data)
            _refuse_unreadable(parsed, data)
            what, first = "span", 0
        _check_agents(parsed, agents, what, first=first)
        return _checked(parsed, first=first, what=what)


def _inspect_with(
    check: Check, fmt: SourceFormat, data: bytes, agents: frozenset[str] | None
) -> _Checked:
    """:func:`_inspect_fast` for trace bodies in the fast check, else :func:`_inspect_body`."""
    if check == "fast" and fmt != "jsonl":
        return _inspect_fast(fmt, data, agents)
    return _inspect_body(fmt, data, agents)


def _inspect_fast(fmt: SourceFormat, data: bytes, agents: frozenset[str] | None) -> _Checked:
    """Check a trace body with :mod:`.span_check`; bodies it leaves alone are read in full.

    Raises:
        _Refused: 400 when the body is not telemetry at all, 403 for a foreign agent.
    """
    if fmt == "otlp_json":
        _refuse_binary(data)
        found = check_json(data, with_agents=agents is not None)
    else:
        found = check_protobuf(data, with_agents=agents is not None)
    if found is None:
        return _inspect_body(fmt, data, agents)
    if agents is not None:
        _check_span_agents(found, agents)
    reasons = [
        f"span {index + 1}: {reason} ({detail.rstrip('.')})"
        for index, reason, detail in found.rejects[:_REASONS_SHOWN]
    ]
    return _Checked(found.spans, len(found.rejects), reasons)


def _check_span_agents(found: SpanCheck, agents: frozenset[str]) -> None:
    """403 unless every span names an agent id the caller may send for (as the full check)."""
    allowed = ", ".join(sorted(agents)) or "none"
    if found.rejects:
        index, reason, _ = found.rejects[0]
        raise _Refused(
            403,
            f"span {index + 1} cannot be read ({reason}), so the agent it speaks for cannot be "
            f"checked; this token may send for: {allowed}.",
        )
    for index, agent in found.agents:
        if agent not in agents:
            said = f"names agent {agent!r}" if agent else "names no agent id"
            raise _Refused(403, f"span {index + 1} {said}; this token may send for: {allowed}.")


def _warm_up() -> None:
    """Run in a new worker: importing this module imported the readers; the pause keeps
    this worker busy so that the next warm-up call starts another one."""
    time.sleep(0.2)


def _inspect_in_worker(
    check: Check, fmt: SourceFormat, data: bytes, agents: frozenset[str] | None
) -> _Checked | tuple[int, str]:
    """:func:`_inspect_with` in a worker process: a refusal comes back as (status, message)."""
    try:
        return _inspect_with(check, fmt, data, agents)
    except _Refused as refused:
        return refused.status, refused.message


def _checked(parsed: ParsedRecords, *, first: int, what: str) -> _Checked:
    """Records read and those ingestion will quarantine: reader rejects, then validation.

    Runs what ingestion runs (``validate`` then ``quarantine_secret_keys``), so the count
    in the reply is the count in ``agent_events_quarantine``.
    """
    failures: list[Reject] = list(parsed.rejects)
    if parsed.records.height:
        failures += [
            Reject(index, reason, detail, "", 0)
            for index, reason, detail in _VALIDATION.failures(parsed.records).iter_rows()
        ]
    failures.sort(key=lambda r: r.index)
    reasons = [
        f"{what} {_number(r.index, first)}: {r.reason} ({r.detail.rstrip('.')})"
        for r in failures[:_REASONS_SHOWN]
    ]
    return _Checked(parsed.records_read, len(failures), reasons)


class _Slot:
    """One request's records waiting for validation, and then its failures."""

    def __init__(self, records: pl.DataFrame) -> None:
        self.records = records
        self.failures: pl.DataFrame | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class _BatchedValidation:
    """``validate`` then ``quarantine_secret_keys`` over the records of concurrent requests.

    Validation costs about 20 ms a call whatever the rows (polars plans some forty rule
    expressions), against a few microseconds a row, and reading a body holds the GIL, so
    concurrent requests reach validation one after the other. A request that finds no round
    under way leads one: it waits (at most ``_GATHER_SECONDS``) for the requests still being
    read, then validates every waiting request in one call; the others sleep until their
    round is done, or lead the next one. Every rule is per
    row, so a record fails alone or in company alike; a request's ``_index`` is kept apart
    from the others' by its slot in the high bits.
    """

    def __init__(self) -> None:
        self.ready = threading.Condition()
        self.waiting: list[_Slot] = []
        self.leading = False  # a thread is gathering or validating a round
        self.reading = 0  # requests being read that will come to validation

    @contextmanager
    def coming(self) -> Iterator[None]:
        """Around the reading of a body: the leader waits for it (or until it is refused)."""
        with self.ready:
            self.reading += 1
        try:
            yield
        finally:
            with self.ready:
                if self._still_reading():  # refused, or no records to validate
                    self.reading -= 1
                    self.ready.notify_all()

    def failures(self, records: pl.DataFrame) -> pl.DataFrame:
        """``_index``, ``reason``, ``detail`` of every record ingestion will quarantine."""
        slot = _Slot(records)
        with self.ready:
            self.waiting.append(slot)
            self.reading -= 1
            _ARRIVED.done = True
            self.ready.notify_all()
            while not slot.done.is_set():
                if self.leading:
                    self.ready.wait()
                else:
                    self._lead_one_round()
        if slot.error is not None:
            raise slot.error
        assert slot.failures is not None
        return slot.failures

    @staticmethod
    def _still_reading() -> bool:
        """Whether this thread's request still counts as being read; resets the mark."""
        arrived = getattr(_ARRIVED, "done", False)
        _ARRIVED.done = False
        return not arrived

    def _lead_one_round(self) -> None:
        """Gather the waiting requests and validate them (called and returns holding the lock)."""
        self.leading = True
        deadline = time.monotonic() + _GATHER_SECONDS
        while self.reading > 0 and (left := deadline - time.monotonic()) > 0:
            self.ready.wait(left)
        batch, self.waiting = self.waiting, []
        self.ready.release()
        try:
            by_schema: dict[tuple[tuple[str, pl.DataType], ...], list[_Slot]] = {}
            for slot in batch:
                by_schema.setdefault(tuple(slot.records.schema.items()), []).append(slot)
            for slots in by_schema.values():
                self._validate(slots)
        finally:
            self.ready.acquire()
            self.leading = False
            self.ready.notify_all()

    @staticmethod
    def _validate(slots: list[_Slot]) -> None:
        try:
            records = pl.concat(
                [
                    s.records.with_columns(pl.col("_index") + (n << _SLOT_SHIFT))
                    for n, s in enumerate(slots)
                ]
            )
            failures = quarantine_secret_keys(validate(records)).failures
            slot_of = failures.get_column("_index") // (1 << _SLOT_SHIFT)
            failures = failures.with_columns(pl.col("_index") % (1 << _SLOT_SHIFT))
            for n, slot in enumerate(slots):
                slot.failures = failures.filter(slot_of == n)
        except BaseException as error:  # handed to every waiting request, never lost
            for slot in slots:
                slot.error = error
        finally:
            for slot in slots:
                slot.done.set()


_ARRIVED = threading.local()  # whether this thread's request reached validation
_GATHER_SECONDS: Final = 0.05  # longest a leader waits for requests still being read
_SLOT_SHIFT: Final = 32  # record indices stay below 2**32: each takes bytes of a bounded body
_VALIDATION: Final = _BatchedValidation()


def _rejected_message(checked: _Checked, what: str) -> str:
    if not checked.rejected:
        return ""
    more = checked.rejected - len(checked.reasons)
    tail = f"; and {more} more" if more > 0 else ""
    return redact_text(
        f"{checked.rejected} of {checked.records} {what}s will be quarantined, not stored: "
        f"{'; '.join(checked.reasons)}{tail}."
    )


def _traces_reply(checked: _Checked, *, protobuf: bool) -> Reply:
    response = ExportTraceServiceResponse()
    if checked.rejected:
        response.partial_success.rejected_spans = checked.rejected
        response.partial_success.error_message = _rejected_message(checked, "span")
    if protobuf:
        return Reply(200, response.SerializeToString(), PROTOBUF)
    return Reply(200, orjson.dumps(json_format.MessageToDict(response)), JSON)


def _events_reply(checked: _Checked) -> Reply:
    body = {
        "events": checked.records,
        "rejected_events": checked.rejected,
        "error_message": _rejected_message(checked, "event"),
    }
    return Reply(200, orjson.dumps(body), JSON)


def _status_reply(refused: _Refused, *, protobuf: bool) -> Reply:
    """A refusal as a google.rpc.Status, in the request's encoding."""
    # A refusal is logged by the app (403): a secret the client sent must not reach the log.
    message = redact_text(refused.message)
    status = Status(code=_RPC_CODES.get(refused.status, 2), message=message)
    if protobuf:
        return Reply(refused.status, status.SerializeToString(), PROTOBUF, refused.headers)
    body = orjson.dumps({"code": status.code, "message": status.message})
    return Reply(refused.status, body, JSON, refused.headers)


def _sortable_id(now: datetime) -> str:
    """A UUIDv7 (RFC 9562) in its hyphenated form: sorts by time, unique by 74 random bits."""
    millis = int(now.timestamp() * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64
    value |= (0b10 << 62) | (rand & ((1 << 62) - 1))
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


STALE_TEMPORARY_S: Final = 600  # no request takes this long to write: its writer died


def sweep_temporaries(landing: Path, *, older_than_s: float = STALE_TEMPORARY_S) -> int:
    """Remove the hidden temporary files a killed receiver left in its landing folders.

    Discovery never reads them, so they only take space; one younger than ``older_than_s``
    may belong to another receiver still writing it and is left alone. Returns how many
    files were removed.
    """
    cutoff = time.time() - older_than_s
    removed = 0
    for kind in ("otlp", "events"):
        for temp in (landing / kind).glob("*/.*.tmp"):
            try:
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()
                    removed += 1
            except FileNotFoundError:  # another receiver swept it first
                continue
    return removed


def _write_durably(folder: Path, name: str, data: bytes) -> None:
    """Write a file under a hidden temporary name, fsync it, rename it, fsync the folder.

    Landing discovery skips names with a leading dot, so the file appears whole or not at all.
    """
    temp = folder / f".{name}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, folder / name)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
