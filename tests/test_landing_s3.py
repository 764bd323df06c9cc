"""The landing folder on object storage (``AGENTOPS_LANDING_URI=s3://...``): discovery lists
objects, ingestion reads them exactly once, the landing sensor and the receiver use them, on a
local S3 server (moto) started by the tests."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import dagster as dg
import orjson
import polars as pl
import pytest

from agentops_assets.defs.resources import LakeResource
from agentops_assets.defs.telemetry.sensors import landing_sensor
from agentops_assets.service.receiver import NDJSON, PROTOBUF, Receiver
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.storage.local_s3 import LocalS3
from agentops_assets.telemetry.ingest import ingest_landing
from agentops_assets.telemetry.landing import discover, read_content, write_object
from agentops_assets.telemetry.schema import AGENT_EVENTS, INGESTED_FILES, QUARANTINE
from tests.conftest import event
from tests.test_otlp_protobuf import _genai_trace

pytest_plugins = ("tests.s3_server",)  # the fixtures s3_server, s3_env, s3_paths


@pytest.fixture
def landing_paths(s3_paths: Paths, s3_env: dict[str, str], monkeypatch) -> Paths:
    """The lake, the index and the landing under this test's own prefix on the S3 server."""
    landing = s3_env["AGENTOPS_LAKE_URI"].removesuffix("/lake") + "/landing"
    monkeypatch.setenv("AGENTOPS_LANDING_URI", landing)
    paths = Paths.from_env()
    assert paths.landing_uri == landing and not paths.landing_is_local
    return paths


def _jsonl(records: list[dict[str, object]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def _put(paths: Paths, key: str, data: bytes) -> str:
    uri = f"{paths.landing_uri}/{key}"
    write_object(uri, data)
    return uri


def _keys(server: LocalS3, uri: str) -> list[str]:
    """Every object key under the prefix of ``uri`` (``s3://bucket/prefix``)."""
    prefix = uri.split("/", 3)[3] + "/"
    pages = server.client().get_paginator("list_objects_v2")
    return [
        item["Key"]
        for page in pages.paginate(Bucket=server.bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    ]


def _table(paths: Paths, name: str) -> pl.DataFrame:
    scanned = lake.scan(paths.table_uri(name))
    return pl.DataFrame() if scanned is None else scanned.collect()


def test_landing_uri_defaults_to_the_local_landing_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AGENTOPS_LANDING_URI", raising=False)
    paths = Paths.from_env(tmp_path)
    assert paths.landing_uri == str(tmp_path.resolve() / "landing")
    assert paths.landing_is_local and paths.landing == tmp_path.resolve() / "landing"
    monkeypatch.setenv("AGENTOPS_LANDING_URI", "s3://bucket/prefix/")
    remote = Paths.from_env(tmp_path)
    assert remote.landing_uri == "s3://bucket/prefix" and not remote.landing_is_local
    with pytest.raises(ValueError, match="AGENTOPS_LANDING_URI"):
        _ = remote.landing


def test_objects_are_ingested_once_and_hidden_ones_never(
    landing_paths: Paths, s3_server: LocalS3
) -> None:
    jsonl = _put(landing_paths, "2026-11-18/a.jsonl", _jsonl([event(1), event(2)]))
    pb = _put(
        landing_paths, "otlp/2026-11-18/b.pb.gz", gzip.compress(_genai_trace().SerializeToString())
    )
    _put(landing_paths, ".staging/c.jsonl", _jsonl([event(3)]))  # a hidden folder
    _put(landing_paths, "2026-11-18/.d.jsonl", _jsonl([event(4)]))  # a hidden object
    _put(landing_paths, "2026-11-18/notes.txt", b"not telemetry")  # not a landing name

    found = discover(landing_paths.landing_uri)
    assert [f.name for f in found] == [jsonl, pb]
    assert all(f.size > 0 and f.mtime_ns > 0 for f in found)
    assert read_content(found[0], limit=1 << 20).data == _jsonl([event(1), event(2)])

    first = ingest_landing(landing_paths)
    assert first.new_rows > 2 and first.quarantined_rows == 0
    events = _table(landing_paths, AGENT_EVENTS)
    assert set(events.get_column("source_file")) == {jsonl, pb}
    assert {"ev-00000001", "ev-00000002"} <= set(events.get_column("event_id"))
    assert "ev-00000003" not in set(events.get_column("event_id"))
    recorded = _table(landing_paths, INGESTED_FILES)
    assert sorted(recorded.get_column("path")) == [jsonl, pb]

    second = ingest_landing(landing_paths)
    assert second.files == [] and second.skipped_files == 2
    assert _table(landing_paths, AGENT_EVENTS).height == events.height
    assert not (landing_paths.home / "landing").exists()  # nothing fell back to the disk
    assert len(_keys(s3_server, landing_paths.landing_uri)) == 5  # landing objects untouched


def test_an_object_replaced_in_place_is_ingested_again(landing_paths: Paths) -> None:
    uri = _put(landing_paths, "a.jsonl", _jsonl([event(1)]))
    assert ingest_landing(landing_paths).new_rows == 1
    time.sleep(1.1)  # S3 keeps modification times to the second
    _put(landing_paths, "a.jsonl", _jsonl([event(1), event(2)]))
    again = ingest_landing(landing_paths)
    assert [f.path for f in again.files] == [uri]
    assert again.new_rows == 1 and again.duplicate_rows == 1  # event 1 is stored once
    assert sorted(_table(landing_paths, AGENT_EVENTS).get_column("event_id")) == [
        "ev-00000001",
        "ev-00000002",
    ]
    assert ingest_landing(landing_paths).files == []

    time.sleep(1.1)
    _put(landing_paths, "a.jsonl", _jsonl([event(1), event(2)]))  # rewritten, same bytes
    touched = ingest_landing(landing_paths)
    assert touched.files == [] and touched.skipped_files == 1  # the content is not new
    time.sleep(1.1)
    same_size = _jsonl([event(3), event(4)])
    assert len(same_size) == len(_jsonl([event(1), event(2)]))
    _put(landing_paths, "a.jsonl", same_size)  # new content, same size: a new mtime tells
    assert ingest_landing(landing_paths).new_rows == 2


def test_a_malformed_object_is_quarantined_with_its_reason(landing_paths: Paths) -> None:
    good = _put(landing_paths, "ok.jsonl", _jsonl([event(1)]))
    bad = _put(landing_paths, "bad.jsonl", b"this is not json\n" + _jsonl([event(2)]))
    broken_gzip = _put(landing_paths, "bad.jsonl.gz", b"\x1f\x8bnot gzip at all")
    report = ingest_landing(landing_paths)
    assert report.new_rows == 2
    quarantine = _table(landing_paths, QUARANTINE)
    reasons = dict(zip(quarantine["source_file"], quarantine["reason"], strict=True))
    assert reasons == {bad: "invalid_json", broken_gzip: "invalid_gzip"}
    assert good not in reasons
    assert ingest_landing(landing_paths).files == []  # quarantined files are recorded too


def test_the_landing_sensor_lists_the_objects(landing_paths: Paths) -> None:
    resources = {"lake": LakeResource(home=str(landing_paths.home))}
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources)
        assert isinstance(landing_sensor(context), dg.SkipReason)

        _put(landing_paths, "a.jsonl", _jsonl([event(1)]))
        request = landing_sensor(context)
        assert isinstance(request, dg.RunRequest) and request.run_key
        assert request.tags["agentops/landing_files"] == "1"

        ingest_landing(landing_paths)
        context = dg.build_sensor_context(
            instance=instance, resources=resources, cursor=context.cursor
        )
        skip = landing_sensor(context)
        assert isinstance(skip, dg.SkipReason) and "No landing files" in skip.skip_message


def test_the_receiver_writes_objects_that_are_ingested(
    landing_paths: Paths, s3_server: LocalS3
) -> None:
    receiver = Receiver(landing_paths, max_backlog_files=2)
    try:
        trace = receiver.traces(
            _genai_trace().SerializeToString(), content_type=PROTOBUF, content_encoding=None
        )
        assert trace.status == 200
        body = gzip.compress(_jsonl([event(7)]))
        events = receiver.events(body, content_type=NDJSON, content_encoding="gzip")
        assert events.status == 200
        keys = _keys(s3_server, landing_paths.landing_uri)
        assert len(keys) == 2
        assert any(k.split("/")[-3] == "otlp" and k.endswith(".pb") for k in keys)
        assert any(k.split("/")[-3] == "events" and k.endswith(".jsonl.gz") for k in keys)
        assert not any(k.rsplit("/", 1)[1].startswith(".") for k in keys)  # no temporaries
        assert receiver.backlog().files == 2

        # A receiver started now measures the backlog by listing the objects waiting.
        listing = Receiver(landing_paths, max_backlog_files=1)
        try:
            assert listing.backlog().files == 2
            body = _jsonl([event(8)])
            refused = listing.events(body, content_type=NDJSON, content_encoding=None)
            assert refused.status == 429
        finally:
            listing.close()
        assert len(_keys(s3_server, landing_paths.landing_uri)) == 2  # nothing landed

        report = ingest_landing(landing_paths)
        assert len(report.files) == 2 and report.quarantined_rows == 0
        stored = _table(landing_paths, AGENT_EVENTS)
        assert "ev-00000007" in set(stored.get_column("event_id"))
        assert stored.filter(pl.col("source_format") == "otlp_protobuf").height > 0

        deadline = time.monotonic() + 10
        while receiver.backlog().files and time.monotonic() < deadline:
            time.sleep(0.2)
        assert receiver.backlog().files == 0
    finally:
        receiver.close()


def test_large_objects_are_read_in_chunks_and_within_the_decompression_limit(
    landing_paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [event(n) for n in range(40)]
    big = _put(landing_paths, "big.jsonl", _jsonl(records))
    bomb = _put(landing_paths, "bomb.jsonl.gz", gzip.compress(b" " * (3 << 20)))
    monkeypatch.setenv("AGENTOPS_MAX_DECOMPRESSED_MB", "2")
    report = ingest_landing(landing_paths, chunk_bytes=4096)  # big.jsonl: about 4 chunks
    by_path = {f.path: f for f in report.files}
    assert by_path[big].new_rows == 40 and by_path[big].quarantined_rows == 0
    assert by_path[bomb].reasons == {"decompressed_too_large": 1}
    stored = _table(landing_paths, AGENT_EVENTS).get_column("event_id")
    assert sorted(stored) == sorted(r["event_id"] for r in records)
    assert ingest_landing(landing_paths, chunk_bytes=4096).files == []


def test_the_simulator_refuses_an_object_store_landing_in_one_sentence(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from agentops_assets.cli.main import main

    monkeypatch.setenv("AGENTOPS_LANDING_URI", "s3://agentops/landing")
    result = CliRunner().invoke(main, ["simulate", "--agents", "1", "--days", "1"])
    assert result.exit_code == 1
    assert "AGENTOPS_LANDING_URI is s3://agentops/landing" in result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
    assert not paths.home.exists() or not any(paths.home.rglob("*.jsonl"))
