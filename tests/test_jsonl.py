"""The native JSONL reader and the validation every reader's output goes through."""

from datetime import UTC, datetime

import orjson
import polars as pl
import pytest

from agentops_assets.telemetry.jsonl import MAX_RECORD_BYTES, _plain_frame, read_jsonl
from agentops_assets.telemetry.schema import RAW_SCHEMA
from agentops_assets.telemetry.validate import validate
from tests.conftest import event

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def _lines(*records: object) -> bytes:
    return b"\n".join(r if isinstance(r, bytes) else orjson.dumps(r) for r in records) + b"\n"


def test_clean_file_reads_every_line_with_feedback_and_attributes() -> None:
    review = event(
        2,
        kind="human_review",
        feedback={
            "kind": "correct",
            "correction": "Use FX of the invoice date.",
            "rationale": "Policy FX-2",
            "reviewer": "maria",
        },
    )
    parsed = read_jsonl(_lines(event(1), review))
    assert parsed.records.columns == RAW_SCHEMA.names()
    assert parsed.records.schema["input_tokens"] == pl.Int64  # numbers stay numbers
    assert parsed.records_read == 2 and not parsed.rejects
    row = parsed.records.row(1, named=True)
    assert row["_index"] == 2
    assert (row["feedback_kind"], row["reviewer"]) == ("correct", "maria")
    assert row["feedback_correction"] == "Use FX of the invoice date."
    assert orjson.loads(parsed.records.row(0, named=True)["attributes"]) == {
        "http.status_code": 200
    }


def test_unknown_keys_are_kept_in_attributes() -> None:
    parsed = read_jsonl(_lines(event(1), event(2, region="eu-west-1", labels=["a", "b"])))
    attributes = orjson.loads(parsed.records.row(1, named=True)["attributes"])
    assert attributes == {"http.status_code": 200, "region": "eu-west-1", "labels": ["a", "b"]}


# Lines the fast path must accept: nulls, nested objects with nulls and arrays of objects, and
# text that looks like JSON keys inside string values.
PLAIN = {
    "explicit nulls": event(1, parent_id=None, model=None),
    "nested nulls and arrays": event(
        2, attributes={"a": None, "list": [{"x": 1}, {"y": None}], "deep": {"k": {"j": 2}}}
    ),
    "key-like text": event(3, input_context='{"region": "eu", "a":1}, "b": {"c": null}'),
    "escaped quotes": event(4, result='say \\"hi\\": ,"k":'),
    "feedback with nulls": event(5, feedback={"kind": "approve", "correction": None}),
}
# Lines where a key outside the contract hides: each must leave the fast path and land in
# attributes.
HIDDEN = {
    "unknown with object value": event(6, extra={"a": 1, "b": None}),
    "unknown with null value": event(7, extra=None),
    "unknown next to nested null named like a field": event(
        8, extra="x", parent_id=None, attributes={"model": None}
    ),
    "unknown key spelled with an escape": b'{"event_id":"e9","ext\\u0072a":1}',
    "duplicate key": b'{"event_id":"e10","event_id":"e11"}',
    "unknown beside attributes as JSON text": event(12, attributes='{"a": 1}', extra=5),
}


@pytest.mark.parametrize("name", PLAIN)
def test_plain_lines_are_proven_in_polars(name: str) -> None:
    frame = _plain_frame(_lines(event(0), PLAIN[name]))
    assert frame is not None and frame.height == 2


@pytest.mark.parametrize("name", HIDDEN)
def test_a_key_outside_the_contract_never_passes_the_fast_path(name: str) -> None:
    data = _lines(event(0), HIDDEN[name])
    assert _plain_frame(data) is None
    if name.startswith("unknown "):
        attributes = orjson.loads(read_jsonl(data).records.row(1, named=True)["attributes"])
        assert "extra" in attributes


def test_blank_and_oversized_lines_leave_the_fast_path() -> None:
    assert _plain_frame(_lines(event(1), b"", event(2))) is None
    assert _plain_frame(_lines(event(1), b"   ", event(2))) is None
    assert _plain_frame(_lines(event(1, result="x" * MAX_RECORD_BYTES))) is None
    assert _plain_frame(b"") is None


def test_bad_lines_are_rejected_with_reason_and_line_number() -> None:
    data = _lines(
        event(1),
        b'{"event_id": "x", "trace_id": ',
        b"not json at all",
        b"[1, 2, 3]",
        b'{"event_id": "\xff\xfe"}',
        b"",
        event(2),
        b"{" + b'"pad": "' + b"x" * (MAX_RECORD_BYTES + 10) + b'"}',
    )
    parsed = read_jsonl(data)
    reasons = {r.index: r.reason for r in parsed.rejects}
    assert reasons == {
        2: "truncated_record",
        3: "invalid_json",
        4: "not_an_object",
        5: "invalid_utf8",
        8: "record_too_large",
    }
    assert parsed.records.get_column("_index").to_list() == [1, 7]
    assert parsed.records_read == 7  # the blank line is not a record
    assert parsed.raw(7) == orjson.dumps(event(2)).decode()
    big = next(r for r in parsed.rejects if r.index == 8)
    assert big.raw_bytes > MAX_RECORD_BYTES and len(big.raw) <= 65536


def test_validation_casts_types_and_fills_defaults() -> None:
    parsed = read_jsonl(
        _lines(
            event(1, ts=1763980000, attempt=None, status=None, error_type="Timeout"),
            event(2, ts="2026-11-18T10:00:00+02:00", input_tokens="1500", kind="Thinking"),
            event(3, ts=1763980000123, status="SUCCESS"),
        )
    )
    checked = validate(parsed.records, now=NOW)
    assert checked.failures.is_empty()
    rows = checked.rows.sort("_index").to_dicts()
    assert rows[0]["ts"] == datetime.fromtimestamp(1763980000, UTC)
    assert (rows[0]["status"], rows[0]["attempt"]) == ("error", 0)
    assert rows[1]["ts"] == datetime(2026, 11, 18, 8, 0, tzinfo=UTC)
    assert rows[1]["input_tokens"] == 1500
    assert rows[1]["kind"] == "other"
    assert orjson.loads(rows[1]["attributes"])["kind"] == "Thinking"
    assert rows[2]["ts"] == datetime.fromtimestamp(1763980000.123, UTC)
    assert rows[2]["status"] == "ok"


def test_validation_quarantines_each_broken_rule_with_its_reason() -> None:
    cases = {
        "missing_field": event(1, event_id=None),
        "wrong_type": event(2, input_tokens="lots"),
        "negative_tokens": event(3, output_tokens=-5),
        "confidence_out_of_range": event(4, confidence=1.5),
        "timestamp_out_of_range": event(5, ts="2300-01-01T00:00:00Z"),
        "invalid_timestamp": event(6, ts="yesterday"),
        "invalid_value": event(7, status="maybe"),
        "negative_value": event(8, duration_ms=-1),
    }
    old = event(9, ts="1999-12-31T23:59:59Z")
    missing_agent = {k: v for k, v in event(10).items() if k != "agent_type"}
    parsed = read_jsonl(_lines(*cases.values(), old, missing_agent, event(11)))
    checked = validate(parsed.records, now=NOW)
    got = dict(checked.failures.select("_index", "reason").iter_rows())
    assert got == {
        **{i: reason for i, reason in enumerate(cases, start=1)},
        9: "timestamp_out_of_range",
        10: "missing_field",
    }
    assert checked.rows.get_column("_index").to_list() == [11]
    details = dict(checked.failures.select("_index", "detail").iter_rows())
    assert details[2] == "input_tokens must be an integer, got 'lots'."
    assert details[10] == "Required field 'agent_type' is missing."
