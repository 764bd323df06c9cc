"""The OTLP/HTTP receiver library: replies per the OTLP spec, durable landing files, ingestion."""

from __future__ import annotations

import gzip
import os
import random
import threading
import time
import zlib
from pathlib import Path

import orjson
import polars as pl
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agentops_assets.service.receiver import CHECKS, JSON, NDJSON, PROTOBUF, Receiver, Reply
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from agentops_assets.telemetry.landing import discover
from agentops_assets.telemetry.schema import AGENT_EVENTS, QUARANTINE
from tests.conftest import event
from tests.test_otlp_protobuf import TRACE, _genai_trace, _kv, _otlp_json, _request, _span

FIXTURES = Path(__file__).parent / "data" / "otlp"
AGENT = {"gen_ai.agent.id": "fin-01", "gen_ai.agent.name": "FinanceAgent"}


def _landed(paths: Paths) -> list[Path]:
    """Every file under the landing folder, hidden ones included."""
    if not paths.landing.exists():
        return []
    return sorted(p for p in paths.landing.rglob("*") if p.is_file())


def _events(paths: Paths) -> pl.DataFrame:
    return pl.read_delta(paths.table_uri(AGENT_EVENTS))


def _quarantine(paths: Paths) -> pl.DataFrame:
    return pl.read_delta(paths.table_uri(QUARANTINE))


def _status(reply: Reply) -> Status:
    """The google.rpc.Status of an error reply, in either encoding."""
    if reply.content_type == PROTOBUF:
        return Status.FromString(reply.body)
    doc = orjson.loads(reply.body)
    return Status(code=doc["code"], message=doc["message"])


def _traces(receiver: Receiver, body: bytes, media: str = PROTOBUF, **kw: object) -> Reply:
    return receiver.traces(
        body, content_type=media, content_encoding=kw.pop("encoding", None), **kw
    )


def _spans(n: int, **attrs: object) -> list[Span]:
    """``n`` GenAI chat spans of agent fin-01 under one root."""
    return [
        _span(i, None if i == 0 else 0, "chat gpt-4o", {**AGENT, "gen_ai.operation.name": "chat"})
        for i in range(n)
    ]


def test_protobuf_request_lands_one_file_and_its_spans_are_stored_once(paths: Paths) -> None:
    body = _genai_trace().SerializeToString()
    reply = _traces(Receiver(paths), body)

    assert (reply.status, reply.content_type) == (200, PROTOBUF)
    response = ExportTraceServiceResponse.FromString(reply.body)
    assert not response.HasField("partial_success")
    (landed,) = _landed(paths)
    assert landed.read_bytes() == body
    relative = landed.relative_to(paths.landing).as_posix()
    assert relative.startswith("otlp/") and relative.endswith(".pb")
    # Discovery sees it under the same name, unredacted.
    assert [f.name for f in discover(paths.landing)] == [relative]

    assert ingest_landing(paths).new_rows == 3
    assert ingest_landing(paths).records == 0
    events = _events(paths)
    assert events["event_id"].n_unique() == events.height == 3
    assert set(events["source_file"]) == {relative}
    assert set(events["agent_id"]) == {"fin-01"}


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_json_fixtures_reply_what_ingestion_then_stores(paths: Paths, name: str) -> None:
    reply = _traces(Receiver(paths, check="full"), (FIXTURES / name).read_bytes(), JSON)

    assert (reply.status, reply.content_type) == (200, JSON)
    rejected = int(orjson.loads(reply.body).get("partialSuccess", {}).get("rejectedSpans", 0))
    (landed,) = _landed(paths)
    assert landed.suffix == ".json"
    report = ingest_landing(paths)
    assert report.new_rows > 0
    assert report.quarantined_rows == rejected
    assert report.records == report.new_rows + rejected


def test_json_encoding_of_a_protobuf_trace_gives_the_same_rows(paths: Paths) -> None:
    receiver = Receiver(paths)
    assert _traces(receiver, _otlp_json(_genai_trace()), JSON).status == 200
    ingest_landing(paths)
    from_json = _events(paths).drop("source_file", "source_format", "ingested_at")
    other = Paths.from_env(paths.home.parent / "other")
    assert _traces(Receiver(other), _genai_trace().SerializeToString()).status == 200
    ingest_landing(other)
    from_proto = _events(other).drop("source_file", "source_format", "ingested_at")
    assert from_json.sort("event_id").equals(from_proto.sort("event_id"))


def test_gzip_body_is_kept_compressed_and_ingested(paths: Paths) -> None:
    body = gzip.compress(_genai_trace().SerializeToString())
    reply = _traces(Receiver(paths), body, encoding="gzip")

    assert reply.status == 200
    (landed,) = _landed(paths)
    assert landed.name.endswith(".pb.gz")
    assert landed.read_bytes() == body  # stored as sent: no recompression
    assert ingest_landing(paths).new_rows == 3


def test_concatenated_gzip_members_are_one_body(paths: Paths) -> None:
    data = _otlp_json(_genai_trace())
    body = gzip.compress(data[:40]) + gzip.compress(data[40:])
    assert _traces(Receiver(paths), body, JSON, encoding="gzip").status == 200
    assert ingest_landing(paths).new_rows == 3


@pytest.mark.parametrize("wbits", [15, -15], ids=["zlib", "raw"])
def test_deflate_body_lands_decompressed(paths: Paths, wbits: int) -> None:
    data = _genai_trace().SerializeToString()
    squeezer = zlib.compressobj(wbits=wbits)
    body = squeezer.compress(data) + squeezer.flush()
    assert _traces(Receiver(paths), body, encoding="deflate").status == 200
    (landed,) = _landed(paths)
    assert landed.name.endswith(".pb") and landed.read_bytes() == data
    assert _traces(Receiver(paths), body[:-5], encoding="deflate").status == 400


def test_partial_success_counts_the_spans_ingestion_quarantines(paths: Paths) -> None:
    good = _spans(4)
    no_span_id = _span(10, 0, "chat", AGENT)
    no_span_id.span_id = b""
    no_start = _span(11, 0, "chat", AGENT)
    no_start.start_time_unix_nano = 0
    secret_agent = _span(12, None, "chat", {**AGENT, "gen_ai.agent.id": "sk-" + "a1B2" * 10})
    body = _request(*good, no_span_id, no_start, secret_agent).SerializeToString()

    reply = _traces(Receiver(paths, check="full"), body)

    assert reply.status == 200
    partial = ExportTraceServiceResponse.FromString(reply.body).partial_success
    assert partial.rejected_spans == 3
    message = partial.error_message
    assert message.startswith("3 of 7 spans will be quarantined")
    assert "span 5: missing_field" in message and "span 6: missing_field" in message
    assert "secret_in_identifier" in message
    # The whole request lands; ingestion quarantines exactly those spans, with the reasons.
    assert len(_landed(paths)) == 1
    report = ingest_landing(paths)
    assert (report.new_rows, report.quarantined_rows) == (4, 3)
    assert sorted(_quarantine(paths)["record_index"]) == [4, 5, 6]


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_fast_check_counts_unusable_spans_and_ingestion_quarantines_all_bad_ones(
    paths: Paths, encoding: str
) -> None:
    no_span_id = _span(10, 0, "chat", AGENT)
    no_span_id.span_id = b""
    zero_trace = _span(11, 0, "chat", AGENT)
    zero_trace.trace_id = bytes(16)
    twice = _span(12, 0, "chat", AGENT)
    twice.attributes.append(_kv("gen_ai.agent.id", "fin-01"))
    no_start = _span(13, 0, "chat", AGENT)  # fails validation: not the fast check's concern
    no_start.start_time_unix_nano = 0
    secret_agent = _span(14, None, "chat", {**AGENT, "gen_ai.agent.id": "sk-" + "a1B2" * 10})
    request = _request(*_spans(3), no_span_id, zero_trace, twice, no_start, secret_agent)
    body = request.SerializeToString() if encoding == "protobuf" else _otlp_json(request)
    receiver = Receiver(paths)

    reply = _traces(receiver, body, PROTOBUF if encoding == "protobuf" else JSON)

    assert receiver.check == "fast" and reply.status == 200
    if encoding == "protobuf":
        partial = ExportTraceServiceResponse.FromString(reply.body).partial_success
        rejected, message = partial.rejected_spans, partial.error_message
    else:
        doc = orjson.loads(reply.body)["partialSuccess"]
        rejected, message = int(doc["rejectedSpans"]), doc["errorMessage"]
    assert rejected == 3
    assert message.startswith("3 of 8 spans will be quarantined, not stored: span 4: missing_field")
    assert "span 5: invalid_id" in message and "span 6: duplicate_key" in message
    (landed,) = _landed(paths)
    assert landed.read_bytes() == body  # the whole request lands, bad spans included
    report = ingest_landing(paths)
    assert (report.new_rows, report.quarantined_rows) == (3, 5)
    quarantined = _quarantine(paths).sort("record_index").select("record_index", "reason")
    assert quarantined.rows() == [
        (3, "missing_field"),
        (4, "invalid_id"),
        (5, "duplicate_key"),
        (6, "missing_field"),
        (7, "secret_in_identifier"),
    ]
    assert set(_events(paths)["event_id"]) == {f"{n:016x}" for n in (1, 2, 3)}


def _identity_request(
    *spans: tuple[int, int | None, dict[str, object]], **resource: object
) -> ExportTraceServiceRequest:
    """A request of chat spans ``(n, parent, identity attributes)`` under one resource."""
    return _request(
        *(
            _span(n, parent, "chat", {"gen_ai.operation.name": "chat", **attrs})
            for n, parent, attrs in spans
        ),
        resource={"service.name": "finance-agent", "agentops.agent.type": "Finance", **resource},
    )


_ID, _NAME = "gen_ai.agent.id", "gen_ai.agent.name"
_ALLOWED = frozenset({"fin-01"})
_IDENTITY_CASES = [
    ("resource names the agent", _identity_request((0, None, {}), (1, 0, {}), **{_ID: "fin-01"}),
     200, ""),
    ("a span overrides its resource", _identity_request((0, None, {}), (1, 0, {_ID: "hr-03"}),
     **{_ID: "fin-01"}), 403, "span 2 names agent 'hr-03'"),
    ("key by key: the resource's id beats the span's name",
     _identity_request((0, None, {_NAME: "fin-01"}), **{_ID: "hr-03"}), 403,
     "span 1 names agent 'hr-03'"),
    ("inherited from the parent span", _identity_request((0, 1, {}), (1, None, {_ID: "fin-01"})),
     200, ""),
    ("inherited from a foreign parent", _identity_request((0, 1, {}), (1, None, {_ID: "hr-03"})),
     403, "span 1 names agent 'hr-03'"),
    ("an orphan names no agent", _identity_request((0, None, {_ID: "fin-01"}), (1, 7, {})),
     403, "span 2 names no agent id"),
    ("agent.name counts last", _identity_request((0, None, {"agent.name": "fin-01"})), 200, ""),
    ("an empty agent id names no agent",
     _identity_request((0, None, {_ID: "fin-01"}), (1, 0, {_ID: "fin-01"}), (2, 0, {_ID: ""})),
     403, "span 3 names no agent id"),
]  # fmt: skip


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("encoding", ["protobuf", "json"])
@pytest.mark.parametrize(
    ("request_", "status", "says"),
    [case[1:] for case in _IDENTITY_CASES],
    ids=[case[0] for case in _IDENTITY_CASES],
)
def test_agent_restriction_reads_identity_as_the_readers_do(
    paths: Paths,
    check: str,
    encoding: str,
    request_: ExportTraceServiceRequest,
    status: int,
    says: str,
) -> None:
    body = request_.SerializeToString() if encoding == "protobuf" else _otlp_json(request_)
    reply = _traces(
        Receiver(paths, check=check),
        body,
        PROTOBUF if encoding == "protobuf" else JSON,
        agents=_ALLOWED,
    )
    assert reply.status == status
    if status != 200:
        assert says in _status(reply).message
        assert _landed(paths) == []
    else:
        assert len(_landed(paths)) == 1
        ingest_landing(paths)
        assert set(_events(paths)["agent_id"]) == {"fin-01"}


@pytest.mark.parametrize("check", CHECKS)
def test_agent_restriction_refuses_spans_that_cannot_be_read(paths: Paths, check: str) -> None:
    no_span_id = _span(1, 0, "chat", AGENT)
    no_span_id.span_id = b""
    body = _request(*_spans(1), no_span_id).SerializeToString()
    reply = _traces(Receiver(paths, check=check), body, agents=_ALLOWED)
    assert reply.status == 403
    assert "span 2 cannot be read (missing_field)" in _status(reply).message
    assert _traces(Receiver(paths, check=check), body).status == 200  # unrestricted: lands


def test_fast_and_full_checks_agree_on_random_agent_trees(paths: Paths) -> None:
    """Seeded random requests: identity on spans, resources or nowhere, parents anywhere."""
    rng = random.Random(1313)
    fast, full = Receiver(paths, check="fast"), Receiver(paths, check="full")
    keys, values = [_ID, _NAME, "agent.name"], ["fin-01", "ops-02", "hr-03"]
    statuses = set()
    for _ in range(40):
        spans = []
        for n in range(rng.randint(1, 6)):
            parent = rng.choice([None, rng.randrange(8)])
            attrs = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, 2))}
            spans.append((n, parent, attrs))
        resource = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, 1))}
        request = _identity_request(*spans, **resource)
        for body, media in ((request.SerializeToString(), PROTOBUF), (_otlp_json(request), JSON)):
            agents = frozenset(rng.sample(values, 2))
            quick, exact = (_traces(r, body, media, agents=agents) for r in (fast, full))
            assert quick.status == exact.status
            if exact.status != 200:
                assert _status(quick).message == _status(exact).message
            statuses.add(exact.status)
    assert statuses == {200, 403}  # both outcomes were exercised


@pytest.mark.parametrize("check", CHECKS)
def test_an_identity_value_that_is_not_text_is_read_in_full(paths: Paths, check: str) -> None:
    body = _request(_span(0, None, "chat", {_ID: 7})).SerializeToString()
    receiver = Receiver(paths, check=check)
    assert _traces(receiver, body, agents=frozenset({"7"})).status == 200
    refused = _traces(receiver, body, agents=_ALLOWED)
    assert refused.status == 403 and "span 1 names agent '7'" in _status(refused).message


def test_the_check_comes_from_the_environment(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTOPS_RECEIVER_CHECK", raising=False)
    assert Receiver(paths).check == "fast"
    monkeypatch.setenv("AGENTOPS_RECEIVER_CHECK", "FULL")
    assert Receiver(paths).check == "full"
    assert Receiver(paths, check="fast").check == "fast"
    monkeypatch.setenv("AGENTOPS_RECEIVER_CHECK", "exact")
    with pytest.raises(ValueError, match="AGENTOPS_RECEIVER_CHECK must be fast or full"):
        Receiver(paths)
    with pytest.raises(ValueError, match="check must be fast or full, not 'quick'"):
        Receiver(paths, check="quick")  # type: ignore[arg-type]


@pytest.mark.parametrize("check", CHECKS)
def test_partial_success_in_json_uses_the_otlp_json_field_names(paths: Paths, check: str) -> None:
    no_span_id = _span(10, None, "chat", AGENT)
    no_span_id.span_id = b""
    body = _otlp_json(_request(*_spans(2), no_span_id))
    reply = _traces(Receiver(paths, check=check), body, "application/json; charset=utf-8")

    partial = orjson.loads(reply.body)["partialSuccess"]
    assert partial["rejectedSpans"] == "1"  # int64 in proto3 JSON: a string
    assert "span 3: missing_field" in partial["errorMessage"]


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize(
    ("body", "media", "encoding", "says"),
    [
        (b"\x0a\xff\xff\xff\x0f garbage", PROTOBUF, None, "not a protobuf"),
        (b'{"resourceSpans": [', JSON, None, "not JSON"),
        (b'{"spans": []}', JSON, None, "no resourceSpans"),
        (b"[1, 2]", JSON, None, "no ExportTraceServiceRequest"),
        (b"not gzip at all", PROTOBUF, "gzip", "not valid gzip"),
        (gzip.compress(b'{"resourceSpans": []}')[:-12], JSON, "gzip", "ends early"),
        (b"\x00\x01binary", JSON, None, "binary"),
        (b'{"resourceSpans": []}', PROTOBUF, None, "looks like JSON"),
    ],
)
def test_undecodable_bodies_get_400_with_a_status_saying_why(
    paths: Paths, body: bytes, media: str, encoding: str | None, says: str, check: str
) -> None:
    reply = _traces(Receiver(paths, check=check), body, media, encoding=encoding)

    assert reply.status == 400
    assert reply.content_type == media.split(";")[0]
    status = _status(reply)
    assert status.code == 3  # INVALID_ARGUMENT
    assert says in status.message
    assert _landed(paths) == []


@pytest.mark.parametrize(
    ("media", "encoding", "says"),
    [
        ("text/plain", None, "Content-Type 'text/plain'"),
        (None, None, "Content-Type missing"),
        (PROTOBUF, "br", "Content-Encoding 'br'"),
    ],
)
def test_unsupported_media_type_or_encoding_gets_415(
    paths: Paths, media: str | None, encoding: str | None, says: str
) -> None:
    reply = Receiver(paths).traces(
        _genai_trace().SerializeToString(), content_type=media, content_encoding=encoding
    )
    assert reply.status == 415
    assert says in _status(reply).message
    assert _landed(paths) == []


def test_empty_request_is_a_success_that_lands_nothing(paths: Paths) -> None:
    reply = _traces(Receiver(paths), b"")
    assert reply.status == 200
    assert not ExportTraceServiceResponse.FromString(reply.body).HasField("partial_success")
    assert _landed(paths) == []


def test_body_above_the_limit_gets_413(paths: Paths) -> None:
    body = _request(*_spans(50)).SerializeToString()
    reply = _traces(Receiver(paths, max_body_bytes=len(body) - 1), body)
    assert reply.status == 413
    assert f"{len(body) - 1:,} bytes" in _status(reply).message
    assert _traces(Receiver(paths, max_body_bytes=len(body)), body).status == 200


def test_gzip_bomb_is_refused_without_inflating_it(paths: Paths) -> None:
    bomb = gzip.compress(b"\x00" * (200 << 20), compresslevel=9)  # 200 MB in about 200 KB
    receiver = Receiver(paths, max_body_bytes=1 << 20)
    started = time.perf_counter()
    reply = _traces(receiver, bomb, encoding="gzip")
    assert reply.status == 413
    assert "decompresses to more than 1,048,576 bytes" in _status(reply).message
    assert time.perf_counter() - started < 1.0  # stopped at the limit, not after 200 MB
    # The limit holds across gzip members too.
    members = gzip.compress(b"\x00" * (700 << 10)) * 2
    assert _traces(receiver, members, encoding="gzip").status == 413
    assert _landed(paths) == []


def test_backlog_above_the_limit_gets_429_until_ingestion_catches_up(paths: Paths) -> None:
    receiver = Receiver(paths, max_backlog_files=2, retry_after_seconds=7)
    body = _genai_trace().SerializeToString()
    assert [_traces(receiver, body).status for _ in range(3)] == [200, 200, 200]
    assert receiver.backlog().files == 3

    reply = _traces(receiver, body)
    assert reply.status == 429
    assert reply.headers["Retry-After"] == "7"
    assert "3 files (limit 2)" in _status(reply).message
    assert len(_landed(paths)) == 3

    ingest_landing(paths)
    # The figure is reused for a second, then measured again in the background.
    deadline = time.monotonic() + 10
    while receiver.backlog().files and time.monotonic() < deadline:
        time.sleep(0.1)
    assert receiver.backlog().files == 0
    assert _traces(receiver, body).status == 200


def test_backlog_in_bytes_counts_too(paths: Paths) -> None:
    body = _genai_trace().SerializeToString()
    receiver = Receiver(paths, max_backlog_bytes=len(body))
    assert _traces(receiver, body).status == 200
    assert _traces(receiver, body).status == 200  # backlog == limit: not above it
    reply = _traces(receiver, body, JSON)
    assert reply.status == 429 and "bytes (limit" in _status(reply).message
    assert reply.content_type == JSON


@pytest.mark.parametrize("check", CHECKS)
def test_a_token_for_some_agents_cannot_send_for_others(paths: Paths, check: str) -> None:
    receiver = Receiver(paths, check=check)
    body = _genai_trace().SerializeToString()
    assert _traces(receiver, body, agents=frozenset({"fin-01", "ops-02"})).status == 200

    other = _span(7, None, "chat", {**AGENT, "gen_ai.agent.id": "hr-03"})
    mixed = _request(*_spans(3), other).SerializeToString()
    reply = _traces(receiver, mixed, agents=frozenset({"fin-01"}))
    assert reply.status == 403
    assert _status(reply).code == 7  # PERMISSION_DENIED
    assert "span 4 names agent 'hr-03'" in _status(reply).message

    anonymous = _request(_span(8, None, "chat", {"gen_ai.operation.name": "chat"}))
    reply = _traces(receiver, anonymous.SerializeToString(), agents=frozenset({"fin-01"}))
    assert reply.status == 403 and "names no agent id" in _status(reply).message
    assert len(_landed(paths)) == 1  # only the first request landed
    assert _traces(receiver, mixed).status == 200  # no restriction: any agent


@pytest.mark.parametrize("check", CHECKS)
def test_a_refusal_never_echoes_a_secret(paths: Paths, check: str) -> None:
    key = "sk-" + "a1B2" * 10
    body = _request(_span(1, None, "chat", {**AGENT, "gen_ai.agent.id": key})).SerializeToString()
    reply = _traces(Receiver(paths, check=check), body, agents=frozenset({"fin-01"}))
    assert reply.status == 403
    assert key not in _status(reply).message and "names agent" in _status(reply).message


def test_a_landing_folder_removed_meanwhile_is_made_again(paths: Paths) -> None:
    receiver = Receiver(paths)
    body = _genai_trace().SerializeToString()
    assert _traces(receiver, body).status == 200
    (first,) = _landed(paths)
    first.unlink()
    first.parent.rmdir()
    assert _traces(receiver, body).status == 200
    assert len(_landed(paths)) == 1


def test_events_as_jsonl_json_array_object_and_gzip(paths: Paths) -> None:
    receiver = Receiver(paths)
    lines = b"".join(orjson.dumps(event(n)) + b"\n" for n in range(5))
    replies = [
        receiver.events(lines, content_type=NDJSON, content_encoding=None),
        receiver.events(
            orjson.dumps([event(n) for n in range(5, 8)]), content_type=JSON, content_encoding=None
        ),
        receiver.events(orjson.dumps(event(8)), content_type=JSON, content_encoding=None),
        receiver.events(
            gzip.compress(orjson.dumps(event(9))),
            content_type="application/jsonl",
            content_encoding="gzip",
        ),
    ]
    assert [r.status for r in replies] == [200] * 4
    assert [orjson.loads(r.body)["events"] for r in replies] == [5, 3, 1, 1]
    names = sorted(p.relative_to(paths.landing).as_posix() for p in _landed(paths))
    assert all(n.startswith("events/") for n in names)
    assert sum(n.endswith(".jsonl.gz") for n in names) == 1
    assert ingest_landing(paths).new_rows == 10
    assert sorted(_events(paths)["event_id"]) == [f"ev-{n:08d}" for n in range(10)]


def test_events_partial_success_and_refusals(paths: Paths) -> None:
    receiver = Receiver(paths)
    body = orjson.dumps(event(1)) + b"\n{not json\n" + orjson.dumps(event(2, kind=None)) + b"\n"
    reply = receiver.events(body, content_type=NDJSON, content_encoding=None)
    doc = orjson.loads(reply.body)
    assert (reply.status, doc["events"], doc["rejected_events"]) == (200, 3, 2)
    assert "line 2: invalid_json" in doc["error_message"]
    assert "line 3: missing_field" in doc["error_message"]
    report = ingest_landing(paths)
    assert (report.new_rows, report.quarantined_rows) == (1, 2)

    bad = receiver.events(b"{nope\n[1\n", content_type=NDJSON, content_encoding=None)
    assert bad.status == 400 and "No line of the body is a JSON event" in _status(bad).message
    foreign = receiver.events(
        orjson.dumps([event(3), event(4, agent_id="hr-03")]),
        content_type=JSON,
        content_encoding=None,
        agents=frozenset({"finance-agent-01"}),
    )
    assert foreign.status == 403 and "line 2 names agent 'hr-03'" in _status(foreign).message
    plain = receiver.events(b"x", content_type="text/plain", content_encoding=None)
    assert plain.status == 415
    assert len(_landed(paths)) == 1


def test_temp_files_are_never_discovered(paths: Paths) -> None:
    folder = paths.landing / "otlp" / "2026-12-03"
    folder.mkdir(parents=True)
    (folder / ".0193e5a1-7c2b-7d3e-9f10-2b3c4d5e6f70.pb.tmp").write_bytes(b"half")
    assert discover(paths.landing) == []
    assert ingest_landing(paths).records == 0


def test_a_failed_write_is_not_acknowledged_and_leaves_nothing(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    reply = _traces(Receiver(paths), _genai_trace().SerializeToString())
    assert reply.status == 503
    assert reply.headers["Retry-After"]
    assert "No space left on device" in _status(reply).message
    assert _landed(paths) == []  # the temporary file is gone too


def test_concurrent_requests_land_distinct_files_and_every_span_once(paths: Paths) -> None:
    receiver = Receiver(paths, check="full")
    statuses: list[int] = []

    partials: list[tuple[int, int, str]] = []

    def send(worker: int) -> None:
        for batch in range(6):
            spans = _spans(21)
            base = (worker * 100 + batch) * 1000
            for i, span in enumerate(spans):
                span.span_id = (base + i + 1).to_bytes(8, "big")
                span.parent_span_id = b"" if i == 0 else (base + 1).to_bytes(8, "big")
                span.trace_id = TRACE[:8] + base.to_bytes(8, "big")
            bad = 1 + (worker + batch) % 20  # one span a request fails validation
            spans[bad].start_time_unix_nano = 0
            reply = _traces(receiver, _request(*spans).SerializeToString())
            statuses.append(reply.status)
            partial = ExportTraceServiceResponse.FromString(reply.body).partial_success
            partials.append((bad, partial.rejected_spans, partial.error_message))

    threads = [threading.Thread(target=send, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 36
    # Validated together, yet each reply names its own bad span and no other.
    for bad, rejected, message in partials:
        assert rejected == 1
        assert message.startswith(f"1 of 21 spans will be quarantined, not stored: span {bad + 1}:")
    assert len(_landed(paths)) == 36
    report = ingest_landing(paths)
    assert (report.new_rows, report.quarantined_rows) == (36 * 20, 36)
    events = _events(paths)
    assert events.height == events["event_id"].n_unique() == 720


def test_worker_processes_answer_as_the_calling_thread_does(paths: Paths) -> None:
    receiver = Receiver(paths, check="full", workers=1)
    try:
        no_start = _span(11, 0, "chat", AGENT)
        no_start.start_time_unix_nano = 0
        body = _request(*_spans(3), no_start).SerializeToString()
        reply = _traces(receiver, body)
        assert ExportTraceServiceResponse.FromString(reply.body).partial_success.rejected_spans == 1
        foreign = _traces(receiver, body, agents=frozenset({"ops-02"}))
        assert foreign.status == 403 and "names agent 'fin-01'" in _status(foreign).message
        assert _traces(receiver, b"\x0a\xff garbage").status == 400
    finally:
        receiver.close()
    assert len(_landed(paths)) == 1


def test_records_validated_together_fail_as_they_would_alone() -> None:
    from agentops_assets.service.receiver import _BatchedValidation, _Slot
    from agentops_assets.telemetry.otlp import read_otlp_protobuf
    from agentops_assets.telemetry.validate import validate

    frames = []
    for bad in (0, 2, 5):
        spans = _spans(6)
        spans[bad].start_time_unix_nano = 0
        frames.append(read_otlp_protobuf(_request(*spans).SerializeToString()).records)
    slots = [_Slot(frame) for frame in frames]
    _BatchedValidation._validate(slots)
    for slot, frame in zip(slots, frames, strict=True):
        assert slot.done.is_set() and slot.failures is not None
        assert slot.failures.equals(validate(frame).failures)
        assert slot.failures.height == 1


# -- over HTTP: the real service on uvicorn ---------------------------------------------------


def test_opentelemetry_sdk_exports_genai_spans_to_the_service(paths: Paths) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
        SpanExportResult,
    )
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agentops_assets.storage.sql import query
    from tests.service_server import OWN_AGENT, bearer, role_tokens, running_service

    with running_service(paths) as url:
        tokens = role_tokens(paths)
        exporter = OTLPSpanExporter(
            endpoint=f"{url}/v1/traces",
            headers=bearer(tokens["agent"]),
            compression=Compression.Gzip,
            timeout=30,
        )
        provider = TracerProvider(resource=Resource.create({"service.name": "finance-agent"}))
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("finance-agent", "1.0")
        root = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.id": OWN_AGENT,
            "gen_ai.agent.name": "FinanceAgent",
            "gen_ai.conversation.id": "conv-42",
            "agentops.outcome": "success",
        }
        chat = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
        }
        tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "erp_lookup"}
        with tracer.start_as_current_span("invoke_agent FinanceAgent", attributes=root):
            with tracer.start_as_current_span("chat gpt-4o", attributes=chat):
                pass
            with tracer.start_as_current_span("execute_tool erp_lookup", attributes=tool):
                pass
        assert provider.force_flush(30_000)
        provider.shutdown()
        spans = memory.get_finished_spans()
        # The exporter as such: a plain body succeeds too; another agent's token is refused.
        plain = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=bearer(tokens["agent"]))
        assert plain.export(spans) == SpanExportResult.SUCCESS
        other = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=bearer(tokens["agent_other"]))
        assert other.export(spans) == SpanExportResult.FAILURE

    names = sorted(p.name for p in _landed(paths))
    assert len(names) == 2 and names[0].endswith(".pb") != names[1].endswith(".pb")  # .pb.gz
    report = ingest_landing(paths)
    assert (report.new_rows, report.duplicate_rows) == (3, 3)  # the second send: same span ids
    stored = query(
        paths,
        "SELECT event_id, agent_id, agent_type, kind, action, input_tokens, session_id "
        "FROM agent_events ORDER BY ts",
    )
    sent = {format(span.context.span_id, "016x") for span in spans}
    assert set(stored["event_id"]) == sent and stored.height == 3
    assert set(stored["agent_id"]) == {OWN_AGENT}
    assert stored["kind"].to_list() == ["decision", "llm_call", "tool_call"]
    assert stored["input_tokens"].to_list() == [None, 1200, None]
    assert set(stored["session_id"]) == {"conv-42"}


def test_http_replies_follow_the_otlp_specification(paths: Paths) -> None:
    import httpx

    from tests.service_server import bearer, role_tokens, running_service

    receiver = Receiver(paths, max_backlog_files=1, max_body_bytes=64 << 10)
    with running_service(paths, receiver=receiver) as url:
        headers = bearer(role_tokens(paths)["admin"])
        post = httpx.Client(base_url=url, headers=headers, timeout=30).post
        body = _genai_trace().SerializeToString()

        garbage = post("/v1/traces", content=b"\x0a\xff junk", headers={"Content-Type": PROTOBUF})
        assert garbage.status_code == 400
        assert "not a protobuf" in Status.FromString(garbage.content).message
        text = post("/v1/traces", content=body, headers={"Content-Type": "text/plain"})
        assert text.status_code == 415
        huge = post("/v1/traces", content=b"\x00" * (65 << 10), headers={"Content-Type": PROTOBUF})
        assert huge.status_code == 413

        ok = post("/v1/traces", content=body, headers={"Content-Type": PROTOBUF})
        assert ok.status_code == 200 and ok.headers["content-type"] == PROTOBUF
        assert not ExportTraceServiceResponse.FromString(ok.content).HasField("partial_success")
        as_json = post(
            "/v1/traces",
            content=gzip.compress(_otlp_json(_genai_trace())),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert as_json.status_code == 200 and as_json.json() == {}

        busy = post("/v1/traces", content=body, headers={"Content-Type": PROTOBUF})
        assert busy.status_code == 429  # two files wait, the limit is one
        assert busy.headers["retry-after"] == "5"
        assert "not yet ingested" in Status.FromString(busy.content).message
    assert len(_landed(paths)) == 2


def test_http_events_from_an_agent_token_land_and_are_ingested(paths: Paths) -> None:
    import httpx

    from tests.service_server import OTHER_AGENT, OWN_AGENT, bearer, role_tokens, running_service

    with running_service(paths) as url:
        tokens = role_tokens(paths)
        lines = b"".join(orjson.dumps(event(n, agent_id=OWN_AGENT)) + b"\n" for n in range(4))
        ok = httpx.post(
            f"{url}/v1/events",
            content=gzip.compress(lines),
            headers={
                **bearer(tokens["agent"]),
                "Content-Type": NDJSON,
                "Content-Encoding": "gzip",
            },
            timeout=30,
        )
        assert ok.status_code == 200
        assert ok.json() == {"events": 4, "rejected_events": 0, "error_message": ""}
        foreign = httpx.post(
            f"{url}/v1/events",
            content=orjson.dumps([event(9, agent_id=OTHER_AGENT)]),
            headers={**bearer(tokens["agent"]), "Content-Type": JSON},
            timeout=30,
        )
        assert foreign.status_code == 403
    assert ingest_landing(paths).new_rows == 4
    assert set(_events(paths)["agent_id"]) == {OWN_AGENT}


def test_a_new_receiver_sweeps_what_a_killed_one_left_half_written(paths: Paths) -> None:
    folder = paths.landing / "otlp" / "2026-12-01"
    folder.mkdir(parents=True)
    stale, fresh = folder / ".0190-a.pb.tmp", folder / ".0190-b.pb.tmp"
    landed = folder / "0190-c.pb"
    for path in (stale, fresh, landed):
        path.write_bytes(b"\x0a\x00")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    os.utime(landed, (hour_ago, hour_ago))

    Receiver(paths)

    # The stale temporary is gone; one another receiver may still be writing stays, and a
    # landed file is never touched, however old.
    assert not stale.exists() and fresh.exists() and landed.exists()
