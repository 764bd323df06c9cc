"""The redaction corpus: every kind of secret in every stored column, ingested for real.

The corpus itself (samples, where they are planted, how every table and file byte is scanned)
lives in ``bench/bench_redaction.py``, which prints the same check as a report.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from agentops_assets.simulator import simulate
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry import schema
from agentops_assets.telemetry.ingest import ingest_landing
from agentops_assets.telemetry.jsonl import read_jsonl
from agentops_assets.telemetry.landing import discover, read_content
from agentops_assets.telemetry.redact import (
    DETECT,
    SECRET_IN_IDENTIFIER,
    quarantine_secret_keys,
    redact_frame,
    redact_text,
    secret_kinds,
)
from agentops_assets.telemetry.validate import validate
from memory import FactChange, MemoryStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench_redaction as corpus  # noqa: E402

# Every kind issue 8 names, and the kinds redacted before it.
REQUIRED_KINDS = {
    "aws_secret_key",
    "private_key",
    "jwt",
    "basic_auth",
    "stripe_key",
    "url_password",
    "credential",
    "us_ssn",
    "iban",
    "phone",
    "openai_key",
    "anthropic_key",
    "aws_access_key",
    "github_token",
    "google_api_key",
    "slack_token",
    "bearer_token",
    "email",
    "card_number",
}


def test_corpus_covers_every_kind() -> None:
    assert set(corpus.KINDS) == REQUIRED_KINDS


@pytest.mark.parametrize("sample", corpus.SAMPLES, ids=lambda s: f"{s.kind}:{s.text[:24]}")
def test_each_sample_is_flagged_found_and_redacted_once(sample: corpus.Sample) -> None:
    # The polars prefilter flags it (the Python patterns only see flagged cells).
    assert pl.Series([sample.text]).str.contains(DETECT).item()
    assert sample.kind in secret_kinds(sample.text)
    redacted = redact_text(sample.text)
    assert f"[REDACTED:{sample.kind}]" in redacted
    assert not any(needle in redacted for needle in sample.needles)
    assert redact_text(redacted) == redacted  # idempotent
    framed = redact_frame(pl.DataFrame({"c": [sample.text]})).item()
    assert framed == redacted


@pytest.mark.parametrize("text", corpus.NEGATIVE)
def test_negative_corpus_is_left_alone(text: str) -> None:
    assert secret_kinds(text) == []
    assert redact_text(text) == text
    assert redact_frame(pl.DataFrame({"c": [text]})).item() == text


def test_every_string_column_of_agent_events_is_screened() -> None:
    """A new string column must be given a policy, or this fails."""
    enums = {"kind", "agent_tier", "status", "outcome", "feedback_kind"}
    written_by_ingestion = {"source_format"}  # a constant
    named_at_discovery = {"source_file"}  # landing.discover redacts file names
    strings = {n for n, t in schema.EVENT_SCHEMA.items() if t == pl.String}
    covered = set(schema.TEXT_FIELDS) | set(schema.KEY_FIELDS)
    assert strings - covered == enums | written_by_ingestion | named_at_discovery
    assert not set(schema.TEXT_FIELDS) & set(schema.KEY_FIELDS)


def test_simulated_fleet_is_redacted_exactly_where_secrets_were_planted(tmp_path: Path) -> None:
    """Realistic text (ids, timestamps, amounts, mojibake) loses nothing but its secrets."""
    truth = tmp_path / "truth"
    summary = simulate(tmp_path / "landing", truth, agents=6, days=1, cycles_per_agent_day=40)
    planted = json.loads((truth / "manifest.json").read_text())["secrets"]["total"]
    assert planted == sum(summary.secrets.values()) > 0
    changed = 0
    for file in discover(tmp_path / "landing"):
        parsed = read_jsonl(read_content(file, limit=1 << 30).data)
        checked = validate(parsed.records, now=datetime.now(UTC))
        screened = quarantine_secret_keys(checked)
        assert screened.rows.height == checked.rows.height  # no id taken for a secret
        redacted = redact_frame(screened.rows, schema.TEXT_FIELDS)
        for name in schema.TEXT_FIELDS:
            before, after = screened.rows.get_column(name), redacted.get_column(name)
            differs = before.ne_missing(after)
            changed += int(differs.sum())
            assert after.filter(differs).str.contains(r"\[REDACTED:").all()
    assert changed == planted


def test_secret_in_a_key_quarantines_the_record_without_naming_the_secret(paths: Paths) -> None:
    from tests.conftest import event, write_jsonl

    key = "AKIAIOSFODNN7EXAMPLE"
    write_jsonl(
        paths.landing / "keys.jsonl",
        [
            event(1, agent_id=key),
            event(2, trace_id=f"t-{key}"),
            event(3, event_id="4111111111111111"),  # a bare numeric id is an id, not a card
            event(4, session_id=key, model=f"gpt-4o {key}"),  # labels: redacted, kept
        ],
    )
    report = ingest_landing(paths)
    assert report.reasons == {SECRET_IN_IDENTIFIER: 2}
    quarantine = pl.read_delta(paths.table_uri(schema.QUARANTINE))
    assert sorted(quarantine.get_column("detail").str.extract(r"^(\w+) ").to_list()) == [
        "agent_id",
        "trace_id",
    ]
    assert not quarantine.select(pl.all().cast(pl.String).str.contains(key).any()).row(0)[0]
    events = pl.read_delta(paths.table_uri(schema.AGENT_EVENTS)).sort("event_id")
    assert events.get_column("event_id").to_list() == ["4111111111111111", "ev-00000004"]
    assert events.get_column("session_id").to_list()[1] == "[REDACTED:aws_access_key]"
    assert events.get_column("model").to_list()[1] == "gpt-4o [REDACTED:aws_access_key]"


def test_memory_refuses_a_secret_in_an_id_and_redacts_the_rest(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "memory_facts")
    key = "sk-proj-Xa9bC3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5b"
    with pytest.raises(ValueError, match=r"fact_id holds what looks like a secret \(openai_key\)"):
        store.commit("a1", [FactChange.put(f"cfg.{key}", "x")], message="m", author="t")
    with pytest.raises(ValueError, match="agent_id holds") as refused:
        store.commit("jane@example.com", [FactChange.put("f", "x")], message="m", author="t")
    assert "jane@example.com" not in str(refused.value)
    assert store.version() is None  # nothing written
    commit = store.commit(
        "a1",
        [FactChange.put("cfg.key", f"use {key}", metadata={"api_key": 12345, "n": key})],
        message=f"rotated {key}",
        author="ops",
    )
    assert commit is not None and commit.message == "rotated [REDACTED:openai_key]"
    (fact,) = store.as_of("a1")
    assert fact.content == "use [REDACTED:openai_key]"
    assert fact.metadata == {"api_key": "[REDACTED:credential]", "n": "[REDACTED:openai_key]"}


def test_redaction_corpus_leaks_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plant every kind in every stored column, run ingestion, memory and the index with
    Dagster, commit through the library and the CLI, then scan every table, file byte and
    metadata value: 0 leaks."""
    home = tmp_path / "home"
    monkeypatch.setenv("AGENTOPS_HOME", str(home))
    planted, leaks, cells = corpus.run_corpus(home)
    assert leaks == []
    places = {place for _, place in planted.places}
    for column in corpus.TEXT_COLUMNS + corpus.CHECKED_COLUMNS:
        assert f"jsonl.{column}" in places
    assert {f"otlp.{p}" for p in corpus.OTLP_PLACES} <= places
    # The scan saw every table it must: a scan that reads nothing cannot fail.
    for scanned in (
        "agent_events.input_context",
        "agent_events.agent_id",
        "agent_events.source_file",
        "agent_events_quarantine.raw_text",
        "agent_events_quarantine.detail",
        "ingested_files.path",
        "memory_facts.content",
        "memory_facts.metadata",
        "memory_facts.fact_id",
        "knowledge_chunks.text",
        "knowledge_chunks.document",
        "lance:memory_index.text",
    ):
        assert cells[scanned] > 0, scanned
    ids = sum(
        n
        for (_, place), n in planted.places.items()
        if place.startswith("memory_store.") and place.endswith("_id")
    )
    assert planted.refused == ids > len(corpus.SAMPLES)
    paths = Paths.from_env()
    events = pl.read_delta(paths.table_uri(schema.AGENT_EVENTS))
    assert events.get_column("input_context").str.contains(r"\[REDACTED:").sum() > 0
    # A landing file named with a secret is recorded under its redacted name, once.
    files = pl.read_delta(paths.table_uri(schema.INGESTED_FILES))
    assert files.get_column("path").str.contains(r"\[REDACTED:").sum() > 0
    again = ingest_landing(paths)
    assert again.files == [] and pl.read_delta(paths.table_uri(schema.INGESTED_FILES)).height == (
        files.height
    )
