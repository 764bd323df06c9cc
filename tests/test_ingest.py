"""Ingestion into real Delta tables on a temporary AGENTOPS_HOME."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import polars as pl
import pytest

from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from agentops_assets.telemetry.schema import (
    AGENT_EVENTS,
    EVENT_SCHEMA,
    INGESTED_FILES,
    QUARANTINE,
)
from tests.conftest import event, write_jsonl


def _table(paths: Paths, name: str) -> pl.DataFrame:
    return pl.read_delta(paths.table_uri(name))


def _assert_accounted(paths: Paths) -> None:
    files = _table(paths, INGESTED_FILES)
    assert (files["records"] == files["good_rows"] + files["quarantined_rows"]).all()
    assert (files["good_rows"] == files["new_rows"] + files["duplicate_rows"]).all()
    assert files["new_rows"].sum() == _table(paths, AGENT_EVENTS).height
    assert files["quarantined_rows"].sum() == _table(paths, QUARANTINE).height


def test_good_rows_are_stored_typed_and_partitioned(paths: Paths) -> None:
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(30)])
    report = ingest_landing(paths)
    assert (report.records, report.new_rows, report.quarantined_rows) == (30, 30, 0)
    events = _table(paths, AGENT_EVENTS)
    assert events.schema == EVENT_SCHEMA
    assert events["event_date"].n_unique() == 3
    assert events["source_file"].unique().to_list() == ["a.jsonl"]
    partitions = sorted(p.name for p in Path(paths.table_uri(AGENT_EVENTS)).iterdir())
    assert "event_date=2026-11-18" in partitions
    _assert_accounted(paths)


def test_reingesting_the_same_files_adds_nothing(paths: Paths) -> None:
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(20)])
    write_jsonl(paths.landing / "b.jsonl.gz", [event(n) for n in range(20, 40)], compress=True)
    first = ingest_landing(paths)
    second = ingest_landing(paths)
    assert first.new_rows == 40
    assert (second.records, second.new_rows, second.skipped_files) == (0, 0, 2)
    os.utime(paths.landing / "a.jsonl")  # touched, content unchanged
    assert ingest_landing(paths).records == 0
    assert _table(paths, AGENT_EVENTS).height == 40


def test_resent_events_in_a_new_file_are_counted_as_duplicates(paths: Paths) -> None:
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(20)])
    ingest_landing(paths)
    resent = [event(n) for n in range(10, 25)] + [event(24)]  # 10 old, 5 new, 1 repeated
    write_jsonl(paths.landing / "retry" / "a-resent.jsonl", resent)
    report = ingest_landing(paths)
    (result,) = report.files
    assert (result.records, result.new_rows, result.duplicate_rows) == (16, 5, 11)
    events = _table(paths, AGENT_EVENTS)
    assert events.height == 25 and events["event_id"].is_unique().all()
    _assert_accounted(paths)


def test_secrets_are_redacted_before_any_write(paths: Paths) -> None:
    leaky = event(
        1,
        input_context="use key sk-proj-Abcdefghijklmnopqrstuvwxyz0123 for bob@example.com",
        result="charged 4111 1111 1111 1111",
        attributes={"auth": "Bearer abcdefghijklmnopqrstuvwxyz0123456789"},
    )
    bad = b'{"event_id": "q", "note": "AKIAIOSFODNN7EXAMPLE", '  # quarantined, still redacted
    write_jsonl(paths.landing / "a.jsonl", [leaky, bad])
    ingest_landing(paths)
    row = _table(paths, AGENT_EVENTS).row(0, named=True)
    assert row["input_context"] == "use key [REDACTED:openai_key] for [REDACTED:email]"
    assert row["result"] == "charged [REDACTED:card_number]"
    assert "[REDACTED:bearer_token]" in row["attributes"]
    (raw,) = _table(paths, QUARANTINE)["raw_text"].to_list()
    assert "AKIAIOSFODNN7EXAMPLE" not in raw and "[REDACTED:aws_access_key]" in raw


def test_identifiers_that_look_like_card_numbers_are_kept(paths: Paths) -> None:
    """A 16-digit span id can pass the Luhn check; ids are not free text and stay intact."""
    ids = ["2338841707844052", "4111111111111111"]
    write_jsonl(
        paths.landing / "a.jsonl",
        [event(n, event_id=i, trace_id=i, session_id=i) for n, i in enumerate(ids)],
    )
    assert ingest_landing(paths).new_rows == 2
    events = _table(paths, AGENT_EVENTS)
    assert sorted(events["event_id"]) == ids and sorted(events["session_id"]) == ids


def test_landing_files_are_never_modified(paths: Paths) -> None:
    path = write_jsonl(paths.landing / "a.jsonl", [event(1), b"{broken"])
    before = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    ingest_landing(paths)
    ingest_landing(paths)
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in paths.landing.iterdir()) == ["a.jsonl"]


def test_hidden_and_unknown_files_are_not_read(paths: Paths) -> None:
    write_jsonl(paths.landing / ".fleet-0001.jsonl.tmp", [event(1)])
    write_jsonl(paths.landing / ".partial" / "b.jsonl", [event(2)])
    (paths.landing / "notes.txt").write_text("hello")
    assert ingest_landing(paths).files == []


def test_bad_input_corpus_is_quarantined_and_nothing_crashes(paths: Paths) -> None:
    """Every bad record lands in quarantine with a reason; every good record is stored."""
    good = iter(range(1000))
    landing = paths.landing
    write_jsonl(
        landing / "mixed.jsonl",
        [
            event(next(good)),
            b'{"event_id": "t1", "trace_id": "x", "ts": "2026-11-1',  # truncated line
            b"{'single': 'quotes'}",  # invalid JSON
            orjson.dumps(event(900, input_tokens="lots")),  # wrong type
            orjson.dumps({k: v for k, v in event(901).items() if k != "trace_id"}),
            orjson.dumps(event(902, output_tokens=-3)),  # negative token count
            orjson.dumps(event(903, confidence=7.5)),  # confidence outside 0..1
            orjson.dumps(event(904, ts="2399-01-01T00:00:00Z")),  # far future
            orjson.dumps(event(905, ts="1990-01-01T00:00:00Z")),  # before 2000
            b'{"event_id": "u1", "agent_id": "\xc3\x28"}',  # invalid UTF-8
            event(next(good)),
        ],
    )
    huge = orjson.dumps(event(906, input_context="x" * 10_000_000))
    write_jsonl(landing / "huge-line.jsonl", [event(next(good)), huge, event(next(good))])
    (landing / "empty.jsonl").write_bytes(b"")
    (landing / "binary.jsonl").write_bytes(bytes(range(256)) * 64)
    whole = gzip.compress(b"\n".join(orjson.dumps(event(next(good))) for _ in range(200)))
    (landing / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (landing / "trace.json").write_bytes(b'{"resourceSpans": [ {"scopeSpans": ')

    report = ingest_landing(paths)

    quarantine = _table(paths, QUARANTINE)
    reasons = dict(quarantine.group_by("source_file").agg(pl.col("reason")).iter_rows())
    assert sorted(reasons["mixed.jsonl"]) == sorted(
        [
            "truncated_record",
            "invalid_json",
            "wrong_type",
            "missing_field",
            "negative_tokens",
            "confidence_out_of_range",
            "timestamp_out_of_range",
            "timestamp_out_of_range",
            "invalid_utf8",
        ]
    )
    assert reasons["huge-line.jsonl"] == ["record_too_large"]
    assert reasons["binary.jsonl"] == ["binary_file"]
    assert reasons["cut.jsonl.gz"] == ["truncated_file"]
    assert len(reasons["trace.json"]) == 1
    assert (quarantine["reason"].str.len_chars() > 0).all()
    assert (quarantine["detail"].str.len_chars() > 0).all()

    events = _table(paths, AGENT_EVENTS)
    cut = events.filter(pl.col("source_file") == "cut.jsonl.gz").height
    assert 0 < cut < 200  # the readable first part of the cut gzip stream is kept
    assert events.height == 4 + cut
    files = _table(paths, INGESTED_FILES)
    assert files.filter(pl.col("path") == "empty.jsonl")["records"].to_list() == [0]
    assert report.records == files["records"].sum()
    _assert_accounted(paths)


def _landing_for_processes(paths: Paths, files: int, per_file: int) -> int:
    n = 0
    for f in range(files):
        records: list[object] = [event(n + i) for i in range(per_file)]
        records.append(b"{not json")
        n += per_file
        write_jsonl(paths.landing / f"part-{f:03d}.jsonl", records)
    return n


def _ingest_process(paths: Paths, batch_rows: int) -> subprocess.Popen[bytes]:
    code = (
        "from agentops_assets.storage.config import Paths\n"
        "from agentops_assets.telemetry.ingest import ingest_landing\n"
        f"ingest_landing(Paths.from_env(), batch_rows={batch_rows})\n"
    )
    env = {**os.environ, "AGENTOPS_HOME": str(paths.home)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)


def test_sigkill_mid_ingestion_leaves_tables_readable_and_rerun_is_exact(paths: Paths) -> None:
    total = _landing_for_processes(paths, files=60, per_file=2_000)
    process = _ingest_process(paths, batch_rows=2_000)
    log = Path(paths.table_uri(AGENT_EVENTS)) / "_delta_log"
    deadline = time.monotonic() + 60
    while len(list(log.glob("*.json"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "ingestion finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()

    stored = _table(paths, AGENT_EVENTS).height  # readable after the kill
    assert 0 < stored < total
    report = ingest_landing(paths)
    assert report.files  # the files the killed run did not record are read again
    events = _table(paths, AGENT_EVENTS)
    assert events.height == total and events["event_id"].is_unique().all()
    quarantine = _table(paths, QUARANTINE)
    assert quarantine.height == 60
    assert quarantine.select("source_file", "record_index").is_unique().all()
    assert _table(paths, INGESTED_FILES)["path"].is_unique().all()


def test_two_ingestion_runs_at_once_neither_duplicate_nor_lose(paths: Paths) -> None:
    total = _landing_for_processes(paths, files=20, per_file=2_000)
    runs = [_ingest_process(paths, batch_rows=5_000) for _ in range(2)]
    for run in runs:
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr.decode()
    events = _table(paths, AGENT_EVENTS)
    assert events.height == total and events["event_id"].is_unique().all()
    files = _table(paths, INGESTED_FILES)
    assert files.height == 20 and files["path"].is_unique().all()
    assert _table(paths, QUARANTINE).height == 20
    _assert_accounted(paths)


@pytest.mark.parametrize("compress", [False, True])
def test_gzip_and_plain_files_read_the_same(paths: Paths, compress: bool) -> None:
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(5)], compress=compress)
    if compress:
        (paths.landing / "a.jsonl").rename(paths.landing / "a.jsonl.gz")
    assert ingest_landing(paths).new_rows == 5


def test_otlp_parsed_in_worker_processes_matches_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large OTLP landings parse in worker processes; the tables come out the same."""
    from datetime import date

    from agentops_assets.simulator import simulate
    from agentops_assets.telemetry import ingest

    homes = [Paths.from_env(tmp_path / name) for name in ("threads", "processes")]
    for home in homes:
        simulate(
            home.landing, home.simulator, agents=6, days=2, seed=5, start=date(2026, 11, 2),
            fmt="otlp", bad_fraction=0.02, cycles_per_agent_day=20,
        )  # fmt: skip
    ingest_landing(homes[0])
    monkeypatch.setattr(ingest, "PROCESS_POOL_BYTES", 0)
    ingest_landing(homes[1])
    frames = [_table(home, AGENT_EVENTS).drop("ingested_at").sort("event_id") for home in homes]
    assert frames[0].height > 1000 and frames[0].equals(frames[1])
    quarantined = [_table(home, QUARANTINE).height for home in homes]
    assert quarantined[0] == quarantined[1] > 0
    manifest = orjson.loads((homes[1].simulator / "manifest.json").read_bytes())
    assert frames[1].height == manifest["total_events"]
    assert quarantined[1] == manifest["total_bad_records"]


def test_example_files_shipped_in_data_examples_ingest_cleanly(paths: Paths) -> None:
    examples = Path(__file__).parent.parent / "data" / "examples"
    shutil.copytree(examples, paths.landing)
    report = ingest_landing(paths)
    assert len(report.files) == 2 and report.quarantined_rows == 0
    events = _table(paths, AGENT_EVENTS)
    assert set(events["source_format"]) == {"jsonl", "otlp_json"}
    assert set(events["kind"]) >= {"plan", "llm_call", "tool_call", "memory_op", "decision"}
    contexts = " ".join(events["input_context"].drop_nulls())
    assert "jane.doe@example.com" not in contexts and "[REDACTED:email]" in contexts
