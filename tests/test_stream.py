"""The real-time stream zone on the machine's Redis: publish, consume exactly once, lag."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import dagster as dg
import orjson
import polars as pl
import pytest
import redis
from click.testing import CliRunner

from agentops_assets.cli.main import main
from agentops_assets.defs.resources import LakeResource
from agentops_assets.defs.stream.resources import StreamResource
from agentops_assets.defs.stream.sensors import newly_committed, telemetry_stream_lag_sensor
from agentops_assets.service.receiver import NDJSON, PROTOBUF, Receiver
from agentops_assets.storage.config import Paths
from agentops_assets.stream import (
    ConsumerBusyError,
    StreamConfigError,
    StreamConsumer,
    StreamSettings,
    id_of_version,
    open_stream,
    txn_version,
)
from agentops_assets.stream.consumer import CRASH_ENV
from agentops_assets.telemetry.schema import AGENT_EVENTS, QUARANTINE
from tests.conftest import event
from tests.test_otlp_protobuf import _request
from tests.test_service_receiver import _spans

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def stream_name(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A stream of this test's own, configured in the environment and deleted afterwards."""
    name = f"agentops:test:{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AGENTOPS_STREAM_URL", REDIS_URL)
    monkeypatch.setenv("AGENTOPS_STREAM_NAME", name)
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(name, *client.keys(f"{name}:*"))
    client.close()


def _open():
    stream = open_stream()
    assert stream is not None
    return stream


def _jsonl(numbers: range, **overrides: object) -> bytes:
    return b"".join(orjson.dumps(event(n, **overrides)) + b"\n" for n in numbers)


def _events(paths: Paths) -> pl.DataFrame:
    return pl.read_delta(paths.table_uri(AGENT_EVENTS))


def _quarantine(paths: Paths) -> pl.DataFrame:
    return pl.read_delta(paths.table_uri(QUARANTINE))


def _drain(paths: Paths, **options: object):
    stream = _open()
    try:
        return StreamConsumer(paths, stream).drain(batch_seconds=0, once=True, **options)
    finally:
        stream.close()


def test_stream_ids_become_increasing_transaction_versions() -> None:
    ids = ["1796323510645-0", "1796323510645-1", "1796323510646-0", "1796323510646-1048575"]
    versions = [txn_version(i) for i in ids]
    assert versions == sorted(versions) and len(set(versions)) == 4
    assert [id_of_version(v) for v in versions] == ids
    assert versions[-1] < 2**63  # a Delta transaction version is a signed 64-bit integer
    for bad in ("12", "a-1", "1-1048576"):
        with pytest.raises(ValueError):
            txn_version(bad)


def test_no_url_means_files_and_a_bad_url_says_what_is_expected(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTOPS_STREAM_URL", raising=False)
    assert open_stream() is None and Receiver(paths).stream is None
    with pytest.raises(StreamConfigError, match="redis://"):
        open_stream(StreamSettings("nats://127.0.0.1:4222"))
    with pytest.raises(StreamConfigError, match="7.2; this server is 7.0"):
        open_stream(StreamSettings(f"{REDIS_URL}?durability=aof"))


def test_http_requests_are_published_not_landed_and_consumed_into_agent_events(
    paths: Paths, stream_name: str
) -> None:
    import httpx

    from tests.service_server import OWN_AGENT, bearer, role_tokens, running_service

    lines = _jsonl(range(4), agent_id=OWN_AGENT)
    trace = _request(*_spans(3)).SerializeToString()
    with running_service(paths) as url:
        tokens = role_tokens(paths)
        headers = bearer(tokens["admin"])
        sent = [
            httpx.post(
                f"{url}/v1/events",
                content=gzip.compress(lines),
                headers={**headers, "Content-Type": NDJSON, "Content-Encoding": "gzip"},
            ),
            httpx.post(
                f"{url}/v1/traces", content=trace, headers={**headers, "Content-Type": PROTOBUF}
            ),
            # The same events again: a client retry; they must be stored once.
            httpx.post(
                f"{url}/v1/events", content=lines, headers={**headers, "Content-Type": NDJSON}
            ),
        ]
        assert [r.status_code for r in sent] == [200, 200, 200]
    assert not paths.landing.exists() or not any(p.is_file() for p in paths.landing.rglob("*"))
    stream = _open()
    assert stream.lag().undelivered == 3
    stream.close()

    report = _drain(paths)
    assert (report.messages, report.new_events, report.duplicate_events) == (3, 7, 4)
    events = _events(paths)
    assert events.height == 7 and events["event_id"].n_unique() == 7
    assert events.filter(pl.col("source_format") == "otlp_protobuf").height == 3
    assert all(f.startswith(f"stream:{stream_name}/") for f in events["source_file"])
    stream = _open()
    lag = stream.lag()
    stream.close()
    assert (lag.behind, lag.length) == (0, 0)  # acknowledged and trimmed


def test_malformed_messages_are_quarantined_with_a_reason(paths: Paths, stream_name: str) -> None:
    stream = _open()
    stream.publish("events", NDJSON, "identity", _jsonl(range(2)) + b"{not json\n")
    stream.publish("events", NDJSON, "gzip", b"not gzip at all")
    stream.publish("events", NDJSON, "identity", b"\x00\x01binary")
    stream.publish("traces", PROTOBUF, "identity", b"\xff\xff\xff not protobuf")
    stream.publish("metrics", NDJSON, "identity", b"{}")  # type: ignore[arg-type]
    client = redis.Redis.from_url(REDIS_URL)
    client.xadd(stream_name, {"body": b"no other field"})
    client.close()
    stream.close()

    report = _drain(paths)
    assert (report.messages, report.new_events, report.quarantined) == (6, 2, 6)
    reasons = _quarantine(paths).sort("source_file")["reason"].to_list()
    assert reasons == [
        "invalid_json",
        "invalid_gzip",
        "binary_file",
        "invalid_protobuf",
        "invalid_stream_message",
        "invalid_stream_message",
    ]
    assert all(_quarantine(paths)["detail"].str.len_chars() > 10)


def test_the_stream_and_landing_files_share_the_tables_and_store_an_event_once(
    paths: Paths, stream_name: str
) -> None:
    from agentops_assets.telemetry.ingest import ingest_landing
    from tests.conftest import write_jsonl

    stream = _open()
    stream.publish("events", NDJSON, "identity", _jsonl(range(0, 4)))
    stream.close()
    assert _drain(paths).new_events == 4  # the consumer creates agent_events
    write_jsonl(paths.landing / "events" / "a.jsonl", [event(n) for n in range(2, 7)])
    assert ingest_landing(paths).new_rows == 3  # landing ingestion appends to it
    stream = _open()
    stream.publish("events", NDJSON, "identity", _jsonl(range(5, 9)))
    stream.close()
    report = _drain(paths)
    assert (report.new_events, report.duplicate_events) == (2, 2)
    events = _events(paths)
    assert events.height == 9 and events["event_id"].n_unique() == 9


@pytest.mark.parametrize("boundary", ["after_events", "after_quarantine"])
def test_a_consumer_killed_at_a_commit_boundary_stores_each_row_once(
    paths: Paths, stream_name: str, boundary: str
) -> None:
    stream = _open()
    for n in range(5):  # each message: 3 events and one bad line
        body = _jsonl(range(10 * n, 10 * n + 3)) + b'{"event_id": "x", "oops": \n'
        stream.publish("events", NDJSON, "identity", body)
    stream.close()
    command = [
        sys.executable, "-m", "agentops_assets", "stream", "consume",
        "--once", "--batch-seconds", "0", "--max-messages", "2",
    ]  # fmt: skip
    killed = subprocess.run(
        command, env={**os.environ, CRASH_ENV: boundary}, capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _events(paths).height == 6  # the first batch's events are committed...
    stream = _open()
    assert stream.lag().pending == 2  # ...and its two messages are not acknowledged
    stream.close()
    stored = _quarantine(paths).height if os.path.isdir(paths.table_uri(QUARANTINE)) else 0
    assert stored == (2 if boundary == "after_quarantine" else 0)

    # A longer batch this time: its second read must not hand out the pending ones again.
    command[-3:] = ["0.5", "--max-messages", "10"]
    restarted = subprocess.run(command, capture_output=True, text=True)
    assert restarted.returncode == 0, restarted.stderr
    events, quarantine = _events(paths), _quarantine(paths)
    assert events.height == 15 and events["event_id"].n_unique() == 15
    assert quarantine.height == 5
    assert quarantine["source_file"].n_unique() == 5
    if boundary == "after_quarantine":
        assert "2 already committed before a restart" in restarted.stdout
    stream = _open()
    assert stream.lag().behind == 0
    in_events, in_quarantine = StreamConsumer(paths, stream).committed()
    stream.close()
    assert in_events == in_quarantine > 0


def test_a_second_consumer_is_refused_while_the_first_one_lives(
    paths: Paths, stream_name: str
) -> None:
    first, second = _open(), _open()
    try:
        first.publish("events", NDJSON, "identity", _jsonl(range(1)))
        assert len(first.read(count=10, block_seconds=0)) == 1
        with pytest.raises(ConsumerBusyError, match="already drains"):
            second.read(count=10, block_seconds=0)
    finally:
        first.close()
        second.close()
    report = _drain(paths)  # the lease was given back; the pending message is taken over
    assert (report.messages, report.new_events) == (1, 1)


def test_lag_figures_in_the_sensor_metadata_and_the_status_command(
    paths: Paths, stream_name: str
) -> None:
    stream = _open()
    ids = [stream.publish("events", NDJSON, "identity", _jsonl(range(n, n + 1))) for n in range(3)]

    def observed() -> dict:
        context = dg.build_sensor_context(
            resources={"lake": LakeResource(), "stream": StreamResource()}
        )
        result = telemetry_stream_lag_sensor(context)
        observation = result.asset_events[0]
        assert observation.asset_key == dg.AssetKey("telemetry_stream")
        return {k: v.value for k, v in observation.metadata.items()}

    before = observed()
    assert (before["length"], before["undelivered"], before["pending"]) == (3, 3, 0)
    assert before["oldest_undelivered_age_s"] >= 0 and "committed_through" not in before
    assert len(stream.read(count=2, block_seconds=0)) == 2  # read, not acknowledged
    reading = observed()
    assert (reading["undelivered"], reading["pending"], reading["behind"]) == (1, 2, 3)
    assert reading["last_delivered_id"] == ids[1]
    assert reading["oldest_pending_age_s"] >= 0
    stream.close()

    _drain(paths)
    after = observed()
    assert (after["behind"], after["committed_through"]) == (0, ids[-1])
    assert "oldest_age_s" not in after  # nothing uncommitted: no age
    assert newly_committed(None, ids[-1]) and not newly_committed(ids[-1], ids[-1])
    assert not newly_committed(None, None) and newly_committed(ids[0], ids[-1])
    printed = CliRunner().invoke(main, ["stream", "status"])
    assert printed.exit_code == 0, printed.output
    assert "committed_through" in printed.output and ids[-1] in printed.output


def test_stream_commits_are_reported_once_and_drive_downstream_automation(
    paths: Paths, stream_name: str
) -> None:
    from agentops_assets.definitions import defs

    stream = _open()
    last = stream.publish("events", NDJSON, "identity", _jsonl(range(3)))
    stream.close()
    _drain(paths)
    instance = dg.DagsterInstance.ephemeral()
    resources = {"lake": LakeResource(), "stream": StreamResource()}
    context = dg.build_sensor_context(instance=instance, resources=resources)
    first = telemetry_stream_lag_sensor(context)
    (materialized,) = [e for e in first.asset_events if isinstance(e, dg.AssetMaterialization)]
    assert materialized.asset_key == dg.AssetKey(AGENT_EVENTS)
    assert materialized.metadata["committed_through"].value == last
    assert first.cursor == last
    again = dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor)
    assert len(telemetry_stream_lag_sensor(again).asset_events) == 1  # the observation only

    before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    instance.report_runless_asset_event(materialized)
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
    requested = {r.key.to_user_string() for r in after.results if r.true_subset.size}
    assert {"event_costs", "reasoning_cycles"} <= requested


def test_the_receiver_refuses_with_429_when_the_stream_is_too_far_behind(
    paths: Paths, stream_name: str
) -> None:
    receiver = Receiver(paths, max_backlog_files=2)
    try:
        replies = [
            receiver.events(_jsonl(range(n, n + 1)), content_type=NDJSON, content_encoding=None)
            for n in range(4)
        ]
    finally:
        receiver.close()
    assert [r.status for r in replies] == [200, 200, 200, 429]
    assert b"stream backlog holds 3 messages" in replies[-1].body
    _drain(paths)
    assert _events(paths).height == 3


def test_the_consume_command_prints_batches_and_a_summary(paths: Paths, stream_name: str) -> None:
    stream = _open()
    stream.publish("events", NDJSON, "identity", _jsonl(range(5)))
    stream.close()
    result = CliRunner().invoke(main, ["stream", "consume", "--once", "--batch-seconds", "0"])
    assert result.exit_code == 0, result.output
    assert "1 batches, 1 messages: 5 new events" in result.output


def test_the_commands_say_how_to_configure_a_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTOPS_STREAM_URL", raising=False)
    result = CliRunner().invoke(main, ["stream", "status"])
    assert result.exit_code == 1
    assert "set AGENTOPS_STREAM_URL" in result.output
    assert "Traceback" not in result.output
