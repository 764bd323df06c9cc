"""Hostile input at the telemetry edge: links, special files, odd names, absurd values,
duplicate keys, oversized spans. Real files, real symlinks, a real FIFO, real Delta tables."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.files import read_file
from agentops_assets.telemetry.ingest import ingest_landing
from agentops_assets.telemetry.jsonl import read_jsonl
from agentops_assets.telemetry.landing import discover
from agentops_assets.telemetry.otlp import read_otlp
from agentops_assets.telemetry.schema import AGENT_EVENTS, INGESTED_FILES, QUARANTINE
from agentops_assets.telemetry.validate import validate
from tests.conftest import event, write_jsonl

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def _table(paths: Paths, name: str) -> pl.DataFrame:
    return pl.read_delta(paths.table_uri(name))


def _quarantine(paths: Paths) -> pl.DataFrame:
    return _table(paths, QUARANTINE).sort("source_file", "record_index")


# --- item 9: links and special files in the landing folder ------------------------------------


@pytest.mark.parametrize("target", ["/etc/passwd", "/proc/self/environ"])
def test_symlink_out_of_the_landing_folder_is_refused_and_recorded(
    paths: Paths, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTOPS_TEST_SECRET", "s3cr3t-in-the-environment")
    write_jsonl(paths.landing / "good.jsonl", [event(n) for n in range(3)])
    (paths.landing / "evil.jsonl").symlink_to(target)
    report = ingest_landing(paths, now=NOW)
    assert report.new_rows == 3
    quarantine = _quarantine(paths)
    assert quarantine.select("source_file", "reason", "raw_text", "raw_bytes").rows() == [
        ("evil.jsonl", "symlink_refused", "", 0)
    ]
    assert "link" in quarantine["detail"][0]
    stored = str(_table(paths, QUARANTINE).to_dicts()) + str(_table(paths, AGENT_EVENTS).to_dicts())
    assert "root:" not in stored and "s3cr3t" not in stored
    files = _table(paths, INGESTED_FILES)
    assert sorted(files["path"]) == ["evil.jsonl", "good.jsonl"]
    # Recorded: the next run neither reads nor quarantines it again.
    again = ingest_landing(paths, now=NOW)
    assert (again.records, again.skipped_files) == (0, 2)
    # Pointed elsewhere (new size and mtime): still a link, still nothing to read.
    (paths.landing / "evil.jsonl").unlink()
    (paths.landing / "evil.jsonl").symlink_to("/etc/hosts")
    assert ingest_landing(paths, now=NOW).records == 0
    assert _table(paths, QUARANTINE).height == 1


def test_symlink_inside_the_landing_folder_is_refused_too(paths: Paths) -> None:
    """The target is ingested under its own name; the link is not read a second time."""
    write_jsonl(paths.landing / "day" / "a.jsonl", [event(n) for n in range(4)])
    (paths.landing / "alias.jsonl").symlink_to(paths.landing / "day" / "a.jsonl")
    report = ingest_landing(paths, now=NOW)
    assert (report.new_rows, report.duplicate_rows) == (4, 0)
    assert _quarantine(paths).select("source_file", "reason").rows() == [
        ("alias.jsonl", "symlink_refused")
    ]


def test_symlinked_directory_is_not_traversed(paths: Paths, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_jsonl(outside / "private.jsonl", [event(n) for n in range(2)])
    paths.landing.mkdir(parents=True)
    (paths.landing / "linked").symlink_to(outside, target_is_directory=True)
    assert [f.name for f in discover(paths.landing)] == []
    assert ingest_landing(paths, now=NOW).records == 0


def _ingest_with_deadline(paths: Paths, fifo: Path, seconds: float = 60) -> Any:
    """Ingest in a thread; if it blocks on the FIFO, unblock it so the test fails, not hangs."""
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(report=ingest_landing(paths, now=NOW)))
    worker.start()
    worker.join(seconds)
    blocked = worker.is_alive()
    if blocked:
        with open(fifo, "wb"):  # the reader blocked in open(): give it a writer and an EOF
            pass
        worker.join()
    assert not blocked, "ingestion blocked on a FIFO in the landing folder"
    return outcome["report"]


def test_fifo_in_the_landing_folder_is_never_opened(paths: Paths) -> None:
    write_jsonl(paths.landing / "good.jsonl", [event(1)])
    fifo = paths.landing / "pipe.jsonl"
    os.mkfifo(fifo)
    report = _ingest_with_deadline(paths, fifo)
    assert report.new_rows == 1
    assert _quarantine(paths).select("source_file", "reason", "raw_bytes").rows() == [
        ("pipe.jsonl", "not_a_regular_file", 0)
    ]
    assert ingest_landing(paths, now=NOW).records == 0  # recorded, not retried
    os.utime(fifo, ns=(1, 2_000_000_000))  # a new mtime: the "already ingested?" check runs
    assert _ingest_with_deadline(paths, fifo).records == 0


def test_file_swapped_for_a_symlink_after_discovery_is_not_followed(paths: Paths) -> None:
    """Time of check to time of use: the open itself refuses a link."""
    path = write_jsonl(paths.landing / "a.jsonl", [event(1)])
    (file,) = discover(paths.landing)
    path.unlink()
    path.symlink_to("/etc/passwd")
    parsed = read_file(file, NOW)
    assert parsed.quarantine.select("reason", "raw_text").rows() == [("symlink_refused", "")]


def test_folder_swapped_for_a_symlink_after_discovery_is_not_followed(
    paths: Paths, tmp_path: Path
) -> None:
    write_jsonl(paths.landing / "day" / "a.jsonl", [event(1)])
    outside = write_jsonl(tmp_path / "outside" / "a.jsonl", [b'{"secret": "outside"}'])
    (file,) = discover(paths.landing)
    (paths.landing / "day").rename(paths.landing / "day-old")
    (paths.landing / "day").symlink_to(outside.parent, target_is_directory=True)
    parsed = read_file(file, NOW)
    assert parsed.quarantine.select("reason", "raw_text").rows() == [("symlink_refused", "")]


def test_file_swapped_for_a_fifo_after_discovery_does_not_block(paths: Paths) -> None:
    path = write_jsonl(paths.landing / "a.jsonl", [event(1)])
    (file,) = discover(paths.landing)
    path.unlink()
    os.mkfifo(path)
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(parsed=read_file(file, NOW)))
    worker.start()
    worker.join(30)
    if worker.is_alive():
        with open(path, "wb"):
            pass
        worker.join()
        pytest.fail("reading a FIFO blocked")
    assert outcome["parsed"].quarantine["reason"].to_list() == ["not_a_regular_file"]


# --- item 2: non-UTF-8 file names, absurd numbers ----------------------------------------------


def test_file_name_with_a_non_utf8_byte_is_ingested_once(paths: Paths) -> None:
    paths.landing.mkdir(parents=True)
    raw_name = os.fsencode(paths.landing) + b"/caf\xff.jsonl"
    with open(raw_name, "wb") as out:
        out.write(b"\n".join(orjson.dumps(event(n)) for n in range(3)) + b"\n")
    first = ingest_landing(paths, now=NOW)
    assert first.new_rows == 3
    assert _table(paths, INGESTED_FILES)["path"].to_list() == ["caf\\xff.jsonl"]
    assert _table(paths, AGENT_EVENTS)["source_file"].unique().to_list() == ["caf\\xff.jsonl"]
    second = ingest_landing(paths, now=NOW)
    assert (second.records, second.skipped_files) == (0, 1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cost_usd", 1e17),
        ("value_usd", 5e12),
        ("input_tokens", 10**13),
        ("reasoning_tokens", 10**15),
        ("duration_ms", 1e15),
    ],
)
def test_absurd_numbers_are_quarantined(paths: Paths, field: str, value: float) -> None:
    write_jsonl(paths.landing / "a.jsonl", [event(1, **{field: value}), event(2, cost_usd=12.5)])
    report = ingest_landing(paths, now=NOW)
    assert report.new_rows == 1
    (row,) = _quarantine(paths).to_dicts()
    assert row["reason"] == "value_out_of_range"
    assert field in row["detail"] and row["detail"].endswith(".")


def test_absurd_cost_in_an_otlp_span_is_quarantined() -> None:
    spans = [_span(1, _s("agentops.cost.usd", "1e17")), _span(2)]
    parsed = read_otlp(orjson.dumps(_request(*spans)))
    checked = validate(parsed.records, now=NOW)
    assert checked.rows.height == 1
    assert checked.failures["reason"].to_list() == ["value_out_of_range"]


# --- item 8: nothing dropped unseen: duplicate keys, odd feedback ------------------------------

_BASE = (
    '"event_id":"e{n}","trace_id":"t1","ts":"2026-11-18T09:00:00Z","agent_id":"a",'
    '"agent_type":"A","kind":"llm_call"'
)
# A line with a key outside the contract sends its whole file down the line-by-line path.
_SLOW = orjson.dumps(event(99, custom_key=1))


def _lines(*bodies: str, slow: bool) -> bytes:
    lines = [("{" + _BASE.format(n=n) + body + "}").encode() for n, body in enumerate(bodies)]
    return b"\n".join([*lines, *([_SLOW] if slow else [])]) + b"\n"


@pytest.mark.parametrize("slow", [False, True], ids=["fast_path", "slow_path"])
@pytest.mark.parametrize(
    "body",
    [
        ',"model":"x","model":"y"',
        ',"model":"x","model":null',
        ',"model":null,"model":"y"',
        ',"custom":1,"custom":2',
        ',"cost_usd":1.5,"cost_usd":2.5',
    ],
)
def test_duplicate_top_level_key_is_quarantined(body: str, slow: bool) -> None:
    parsed = read_jsonl(_lines(body, slow=slow))
    assert [(r.index, r.reason) for r in parsed.rejects] == [(1, "duplicate_key")]
    assert "appears more than once" in parsed.rejects[0].detail
    assert parsed.records.height == (1 if slow else 0)


@pytest.mark.parametrize("slow", [False, True], ids=["fast_path", "slow_path"])
@pytest.mark.parametrize(
    "body", [',"attributes":{"a":1,"a":2}', ',"b":3,"attributes":{"a":1,"a":2}']
)
def test_duplicate_keys_inside_attributes_are_kept_as_sent(body: str, slow: bool) -> None:
    parsed = read_jsonl(_lines(body, slow=slow))
    assert not parsed.rejects
    text = parsed.records["attributes"][0].replace(" ", "")
    assert '"a":1' in text and '"a":2' in text
    assert ('"b":3' in text) == ('"b"' in body)


@pytest.mark.parametrize("slow", [False, True], ids=["fast_path", "slow_path"])
@pytest.mark.parametrize(
    ("body", "kept"),
    [
        (',"feedback":5', 5),
        (',"feedback":"looks good"', "looks good"),
        (',"feedback":[1,2]', [1, 2]),
        (',"feedback":"{not json"', "{not json"),
        (',"feedback":{"kind":"approve","score":0.9}', {"kind": "approve", "score": 0.9}),
        (',"feedback_kind":"override","feedback":{"kind":"approve"}', {"kind": "approve"}),
    ],
)
def test_feedback_the_columns_cannot_hold_is_kept_in_attributes(
    body: str, kept: object, slow: bool
) -> None:
    parsed = read_jsonl(_lines(body, slow=slow))
    assert not parsed.rejects
    attributes = orjson.loads(parsed.records["attributes"][0])
    assert attributes["feedback"] in (kept, orjson.dumps(kept).decode(), str(kept))


@pytest.mark.parametrize("slow", [False, True], ids=["fast_path", "slow_path"])
def test_feedback_the_columns_hold_is_not_copied(slow: bool) -> None:
    body = ',"feedback":{"kind":"approve","correction":null,"rationale":"ok","reviewer":"r"}'
    parsed = read_jsonl(_lines(body, slow=slow))
    row = parsed.records.row(0, named=True)
    assert (row["feedback_kind"], row["feedback_rationale"], row["reviewer"]) == (
        "approve",
        "ok",
        "r",
    )
    assert row["attributes"] is None


def test_unknown_key_colliding_with_an_attribute_keeps_both() -> None:
    parsed = read_jsonl(_lines(',"a":"top","attributes":{"a":"inner"}', slow=True))
    text = parsed.records["attributes"][0]
    assert "top" in text and "inner" in text


# --- OTLP: duplicate attribute keys, oversized spans -------------------------------------------

TRACE = "5b8efff798038103d269b633813fc60c"


def _s(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _span(n: int, *attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        "traceId": TRACE,
        "spanId": f"{n + 1:016x}",
        "name": f"chat {n}",
        "startTimeUnixNano": str(1_763_974_800_000_000_000 + n * 1_000_000),
        "endTimeUnixNano": str(1_763_974_800_000_000_000 + n * 1_000_000 + 250_000_000),
        "attributes": [
            _s("gen_ai.agent.id", "fin-01"),
            _s("agentops.agent.type", "FinanceAgent"),
            _s("gen_ai.operation.name", "chat"),
            *attributes,
        ],
    }


def _request(*spans: Any, resource: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    rs: dict[str, Any] = {"scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}]}
    if resource is not None:
        rs["resource"] = {"attributes": resource}
    return {"resourceSpans": [rs]}


def test_duplicate_span_attribute_key_is_quarantined() -> None:
    spans = [_span(0), _span(1, _s("user.tier", "gold"), _s("user.tier", "free")), _span(2)]
    parsed = read_otlp(orjson.dumps(_request(*spans)))
    assert parsed.records["_index"].to_list() == [0, 2]
    assert [(r.index, r.reason) for r in parsed.rejects] == [(1, "duplicate_key")]
    assert "user.tier" in parsed.rejects[0].detail
    assert "free" in parsed.raw(1) and "gold" in parsed.raw(1)


def test_duplicate_key_in_a_nested_kvlist_is_quarantined() -> None:
    nested = {
        "key": "tool.config",
        "value": {"kvlistValue": {"values": [_s("mode", "a"), _s("mode", "b")]}},
    }
    parsed = read_otlp(orjson.dumps(_request(_span(0, nested), _span(1))))
    assert [(r.index, r.reason) for r in parsed.rejects] == [(0, "duplicate_key")]
    assert parsed.records.height == 1


def test_duplicate_resource_attribute_key_quarantines_the_spans_it_covers() -> None:
    resource = [_s("service.name", "a"), _s("service.name", "b")]
    parsed = read_otlp(orjson.dumps(_request(_span(0), _span(1), resource=resource)))
    assert [r.reason for r in parsed.rejects] == ["duplicate_key", "duplicate_key"]
    assert "service.name" in parsed.rejects[0].detail


@pytest.mark.parametrize("layout", ["document", "lines"])
def test_oversized_otlp_span_is_quarantined_and_the_others_kept(layout: str) -> None:
    huge = _s("gen_ai.input.messages", "x" * (2 << 20))
    requests = [_request(_span(0), _span(1, huge)), _request(_span(2))]
    if layout == "document":
        data = orjson.dumps(requests)
    else:
        data = b"\n".join(orjson.dumps(r) for r in requests) + b"\n"
    parsed = read_otlp(data)
    assert sorted(parsed.records["_index"].to_list()) == [0, 2]
    (reject,) = parsed.rejects
    assert (reject.index, reject.reason) == (1, "record_too_large")
    assert "1,048,576" in reject.detail and reject.raw_bytes > 2 << 20
    assert len(reject.raw) <= 65_536
