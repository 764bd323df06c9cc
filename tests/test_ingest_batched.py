"""Small landing files read as one batch: every file's rows, rejects and counts as read alone.

``read_files`` validates and redacts a batch of files as one frame; ``read_file`` reads one
file by itself. The batch here mixes what makes batching go wrong if it is done carelessly:
good files, a file that is wholly bad, files with secrets in text and in keys, event ids
repeated across files, record indices that repeat from file to file, columns that arrive as
numbers in one file and as text in another, ISO and epoch timestamps, protobuf and JSON OTLP.
"""

from __future__ import annotations

import gzip
import multiprocessing
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from agentops_assets.storage.config import Paths
from agentops_assets.telemetry import ingest
from agentops_assets.telemetry.files import read_file, read_files
from agentops_assets.telemetry.ingest import ingest_landing
from agentops_assets.telemetry.landing import discover
from agentops_assets.telemetry.schema import AGENT_EVENTS, INGESTED_FILES, QUARANTINE
from tests.conftest import event, write_jsonl

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SECRET = "sk-ant-api03-" + "x" * 40


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _request(first: int, count: int, **extra: object) -> bytes:
    """An OTLP request of ``count`` GenAI spans under one agent span; ids from ``first``."""
    trace = (first + 1).to_bytes(16, "big")
    spans = []
    for n in range(count):
        attrs: dict[str, object] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": 10,
        }
        if n == 0:
            attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": "agent-7"}
        attrs.update(extra if n == 1 else {})
        spans.append(
            Span(
                trace_id=trace,
                span_id=(first + n + 1).to_bytes(8, "big"),
                parent_span_id=b"" if n == 0 else (first + 1).to_bytes(8, "big"),
                name="chat gpt-4o" if n else "invoke_agent",
                start_time_unix_nano=1_763_700_000_000_000_000 + n * 1_000_000,
                end_time_unix_nano=1_763_700_000_250_000_000 + n * 1_000_000,
                attributes=[_kv(k, v) for k, v in attrs.items()],
            )
        )
    resource = Resource(attributes=[_kv("agentops.agent.type", "FinanceAgent")])
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]
    )
    return request.SerializeToString()


def _landing(root: Path) -> Path:
    """A landing folder holding every case the batch must keep apart."""
    jl = root / "landing" / "jsonl"
    write_jsonl(jl / "a-good.jsonl", [event(n) for n in range(20)])
    write_jsonl(jl / "b-good-again.jsonl", [event(n) for n in range(10, 30)])  # 10 repeated
    write_jsonl(  # wholly bad: nothing in it is an event
        jl / "c-wholly-bad.jsonl", [b"{not json", b"[1, 2]", {"junk": 1}, b"\xff\xfe bad utf-8"]
    )
    write_jsonl(
        jl / "d-secrets.jsonl",
        [
            event(100, input_context="mail jane.doe@example.com, key " + SECRET),
            event(101, agent_id=SECRET),  # a secret in a key: quarantined
            event(102, trace_id="4111 1111 1111 1111"),
            event(103, result="password=hunter2"),
            event(104, kind="not-a-kind", status="maybe"),
        ],
    )
    write_jsonl(  # text where the other files have numbers; epoch timestamps
        jl / "e-text-numbers.jsonl",
        [event(200 + n, input_tokens=str(n), ts=str(1_763_700_000 + n)) for n in range(8)],
    )
    write_jsonl(
        jl / "f-gzip.jsonl", [event(300 + n, ts="2026-11-20") for n in range(5)], compress=True
    )
    write_jsonl(
        jl / "g-mixed.jsonl", [event(3), event(400, ts="yesterday"), event(401, confidence=3)]
    )
    (jl / "h-empty.jsonl").write_bytes(b"")
    otlp = root / "landing" / "otlp"
    otlp.mkdir(parents=True)
    (otlp / "p1.pb").write_bytes(_request(1000, 9))
    (otlp / "p2.pb").write_bytes(_request(1000, 9))  # the same spans again
    (otlp / "p3.pb.gz").write_bytes(gzip.compress(_request(2000, 7, **{"db.password": "pw"})))
    (otlp / "p4.pb").write_bytes(_request(3000, 5, **{"gen_ai.input.messages": SECRET}))
    (otlp / "p5.pb").write_bytes(b"\x0a\xff\xff not protobuf")
    (otlp / "p6.pb").write_bytes(_request(4000, 3)[:-7])  # cut short
    return root / "landing"


def _results(parsed: list) -> list[tuple]:
    return [
        (
            p.result.path,
            p.result.content_hash,
            p.result.records,
            p.result.good_rows,
            p.result.quarantined_rows,
            sorted(p.result.reasons.items()),
        )
        for p in parsed
    ]


def test_a_batch_gives_every_file_what_it_gives_alone(tmp_path: Path) -> None:
    files = discover(_landing(tmp_path))
    assert len(files) == 14
    alone = [read_file(file, NOW) for file in files]
    together = read_files(files, NOW)
    assert _results(together) == _results(alone)
    for one, batched in zip(alone, together, strict=True):
        assert batched.events.equals(one.events), one.result.path
        assert batched.quarantine.equals(one.quarantine), one.result.path
        assert batched.final
    counts = {p.result.path: p.result for p in together}
    assert counts["jsonl/c-wholly-bad.jsonl"].good_rows == 0
    assert counts["jsonl/c-wholly-bad.jsonl"].quarantined_rows == 4
    assert counts["jsonl/d-secrets.jsonl"].reasons["secret_in_identifier"] == 2
    assert counts["otlp/p5.pb"].reasons == {"invalid_protobuf": 1}
    stored = pl.concat(p.events for p in together)
    assert SECRET not in " ".join(stored["input_context"].drop_nulls())
    assert "[REDACTED:anthropic_key]" in " ".join(stored["input_context"].drop_nulls())
    assert "hunter2" not in " ".join(stored["result"].drop_nulls())
    # Record indices are the file's own, not positions in the batch.
    secrets = next(p for p in together if p.result.path == "jsonl/d-secrets.jsonl")
    assert sorted(secrets.quarantine["record_index"].to_list()) == [2, 3, 5]


def test_a_batch_in_any_order_and_size_gives_the_same_files(tmp_path: Path) -> None:
    files = discover(_landing(tmp_path))
    whole = {p.result.path: p for p in read_files(files, NOW)}
    for size in (2, 3, 5):
        reordered = files[::-1]
        for start in range(0, len(reordered), size):
            for parsed in read_files(reordered[start : start + size], NOW):
                same = whole[parsed.result.path]
                assert parsed.events.equals(same.events)
                assert parsed.quarantine.equals(same.quarantine)
                assert _results([parsed]) == _results([same])


def _tables(paths: Paths) -> dict[str, pl.DataFrame]:
    out = {}
    for name in (AGENT_EVENTS, QUARANTINE, INGESTED_FILES):
        frame = pl.read_delta(paths.table_uri(name))
        if name == INGESTED_FILES:
            frame = frame.drop("duration_ms")
        out[name] = frame.sort(frame.columns, nulls_last=True)
    return out


@pytest.mark.parametrize("processes", [False, True])
def test_ingesting_in_batches_stores_what_file_by_file_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: bool
) -> None:
    landing = _landing(tmp_path / "source")
    homes = [Paths.from_env(tmp_path / name) for name in ("one-by-one", "batched")]
    for home in homes:
        shutil.copytree(landing, home.landing)
    monkeypatch.setattr(ingest, "BATCH_FILES", 1)
    alone = ingest_landing(homes[0], now=NOW)
    monkeypatch.setattr(ingest, "BATCH_FILES", 64)
    if processes:
        monkeypatch.setattr(ingest, "PROCESS_POOL_BYTES", 0)
    batched = ingest_landing(homes[1], now=NOW)
    assert _results_of(batched) == _results_of(alone)
    tables = [_tables(home) for home in homes]
    for name in (AGENT_EVENTS, QUARANTINE, INGESTED_FILES):
        assert tables[1][name].equals(tables[0][name]), name
    events = tables[1][AGENT_EVENTS]
    assert events["event_id"].n_unique() == events.height  # each event once
    assert batched.duplicate_rows > 0 and batched.quarantined_rows > 0
    files = tables[1][INGESTED_FILES]
    assert (files["records"] == files["good_rows"] + files["quarantined_rows"]).all()
    assert (files["good_rows"] == files["new_rows"] + files["duplicate_rows"]).all()


def _ingest_as_a_daemon(home: str, answers: multiprocessing.Queue) -> None:
    ingest.PROCESS_POOL_BYTES = 0  # would parse OTLP in worker processes, were it allowed,
    ingest.BATCH_FILES = 1  # every OTLP file after the first
    try:
        report = ingest_landing(Paths.from_env(home), now=NOW)
        answers.put(("ok", report.new_rows))
    except BaseException as error:  # the parent reports it
        answers.put(("failed", repr(error)))


def test_a_daemonic_process_such_as_a_celery_worker_ingests_otlp_in_threads(
    tmp_path: Path,
) -> None:
    """A Celery prefork worker runs steps in daemonic processes, which may not have children;
    ingestion of a large OTLP landing there must not try to start worker processes."""
    landing = _landing(tmp_path / "source")
    expected = Paths.from_env(tmp_path / "here")
    shutil.copytree(landing, expected.landing)
    daemon_home = tmp_path / "daemon"
    shutil.copytree(landing, Paths.from_env(daemon_home).landing)
    spawn = multiprocessing.get_context("spawn")
    answers = spawn.Queue()
    child = spawn.Process(target=_ingest_as_a_daemon, args=(str(daemon_home), answers), daemon=True)
    child.start()
    outcome, value = answers.get(timeout=300)
    child.join(timeout=60)
    assert outcome == "ok", value
    assert value == ingest_landing(expected, now=NOW).new_rows > 0
    stored, wanted = _tables(Paths.from_env(daemon_home)), _tables(expected)
    for name in (AGENT_EVENTS, QUARANTINE):
        assert stored[name].equals(wanted[name]), name


def _results_of(report: ingest.IngestReport) -> list[tuple]:
    return sorted(
        (
            f.path,
            f.records,
            f.good_rows,
            f.new_rows,
            f.duplicate_rows,
            f.quarantined_rows,
            sorted(f.reasons.items()),
        )
        for f in report.files
    )


def test_batches_keep_order_bounds_and_route(tmp_path: Path) -> None:
    files = discover(_landing(tmp_path))
    in_process = lambda file: file.source_format.startswith("otlp")  # noqa: E731
    batches = list(ingest._batches(files, in_process))
    assert [f for batch in batches for f in batch] == files
    for batch in batches:
        assert len(batch) <= ingest.BATCH_FILES
        assert len({in_process(f) for f in batch}) == 1
        assert len(batch) == 1 or sum(f.size for f in batch) <= ingest.BATCH_BYTES
