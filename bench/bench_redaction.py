"""Redaction corpus: plant every kind of secret in every stored column, run the platform for
real, then scan every table, every file byte and the Dagster metadata for what was planted.

Planted: each sample below in each string field of a JSONL event (keys too: those records are
quarantined), in an unknown field, as an unknown key, in numeric and enum fields (quarantined
with a detail), in a malformed line, in OTLP spans (names, attributes, resource, ids), in
landing file names, in memory facts through ``MemoryStore`` and ``agentops memory commit``
(content, metadata, message, author, rollback reason), in memory writes the feed applies, and in
knowledge documents and their names. Run: ingestion, memory_facts, knowledge_chunks and
memory_index materialised with Dagster. Scanned: every Parquet file under the lake (each string
cell, decompressed), the raw bytes of every file under ``lake/`` and ``lance/``, every LanceDB
table, the materialisations' metadata and the CLI's output. Prints per kind and per column, then
"0 leaks" or the leaks; with ``--cost``, the redaction cost per event on a simulated fleet.

    python bench/bench_redaction.py [--keep DIR] [--cost] [--agents 20 --days 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@dataclass(frozen=True)
class Sample:
    """A text holding one secret of ``kind``; ``needles`` are the parts that must never be
    stored (a JWT's public header, or the label around a key, may be)."""

    kind: str
    text: str
    needles: tuple[str, ...]


def _s(kind: str, text: str, *needles: str) -> Sample:
    return Sample(kind, text, needles or (text,))


_JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwi"
    "aWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
_RSA = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAyCorpusRsaKeyLineOneAbCdEfGhIjKlMnOpQrStUvWxYz0123\n"
    "Q29ycHVzUnNhS2V5TGluZVR3b0FiQ2RFZkdoSWpLbE1uT3BRclN0VXZXeFl6MDEy\n"
    "-----END RSA PRIVATE KEY-----"
)
_SSH = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACCorpusOpenSshKeyMaterialLineTwoAbCdEfGhIjKlMnOpQrStUv\n"
    "-----END OPENSSH PRIVATE KEY-----"
)
SAMPLES: tuple[Sample, ...] = (
    _s(
        "openai_key",
        "config OPENAI_API_KEY=sk-proj-Xa9bC3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG1hJ",
        "sk-proj-Xa9bC3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG1hJ",
    ),
    _s(
        "anthropic_key",
        "key sk-ant-api03-Zq8Wx7Vc6Bn5Mm4Ll3Kk2Jj1Hh0Gg9Ff8Dd7Ss6Aa5Pp4Oo3Ii2Uu1Yy0Tt-AA",
        "sk-ant-api03-Zq8Wx7Vc6Bn5Mm4Ll3Kk2Jj1Hh0Gg9Ff8Dd7Ss6Aa5Pp4Oo3Ii2Uu1Yy0Tt-AA",
    ),
    _s("aws_access_key", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    _s(
        "aws_secret_key",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    _s(
        "aws_secret_key",
        "rotated to Je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY today",
        "Je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
    ),
    _s(
        "github_token",
        "git remote uses ghp_R2d2C3poBb8Yoda1Luke2Leia3Han4Solo5Chew",
        "ghp_R2d2C3poBb8Yoda1Luke2Leia3Han4Solo5Chew",
    ),
    _s(
        "google_api_key",
        "maps key AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
        "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    ),
    _s(
        "slack_token",
        "bot xoxb-2048123456789-4096123456789-CorpusSlackBotToken",
        "xoxb-2048123456789-4096123456789-CorpusSlackBotToken",
    ),
    _s(
        "bearer_token",
        "Authorization: Bearer c0rpusOpaqueAccessT0ken.v2_9f8e7d",
        "c0rpusOpaqueAccessT0ken.v2_9f8e7d",
    ),
    _s("email", "customer wrote from jane.doe+ops@example.co.uk", "jane.doe+ops@example.co.uk"),
    _s("card_number", "customer pasted card 4111 1111 1111 1111 exp 09/28", "4111 1111 1111 1111"),
    _s("card_number", "mastercard 5500-0000-0000-0004 on file", "5500-0000-0000-0004"),
    _s("private_key", f"deploy key {_RSA} end", *_RSA.splitlines()[1:3]),
    _s("private_key", _SSH, *_SSH.splitlines()[1:3]),
    _s("jwt", f"session {_JWT}", *_JWT.split(".")[1:]),
    _s("basic_auth", "Authorization: Basic Y29ycHVzOmJhc2ljUzNjcmV0", "Y29ycHVzOmJhc2ljUzNjcmV0"),
    _s("stripe_key", "charge with sk_live_51CorpusStripeSecretKey0123", "sk_live_51CorpusStripe"),
    _s("stripe_key", "restricted rk_live_51CorpusRestrictedKey98765", "rk_live_51CorpusRestrict"),
    _s("url_password", "DSN mysql://app:MyS3cretPw9x@db.internal:3306/shop", "MyS3cretPw9x"),
    _s("url_password", "cache redis://:r3disC0rpusPw@cache:6379/0", "r3disC0rpusPw"),
    _s("url_password", "postgres://svc:pgC0rpusPw77@pg.internal:5432/ledger", "pgC0rpusPw77"),
    _s("url_password", "broker amqp://guest:amqpC0rpusPw@rabbit:5672/", "amqpC0rpusPw"),
    _s("url_password", "clone https://deploy:httpsC0rpusPw@git.example.com/r.git", "httpsC0rpusPw"),
    _s("credential", "retry with password=Tr0ub4dorC0rpus3", "Tr0ub4dorC0rpus3"),
    _s("credential", "GET /v1/data?api_key=9f8e7d6c5b4aC0rpus&page=2", "9f8e7d6c5b4aC0rpus"),
    _s("credential", "secret=hunterC0rpus2 token: tknC0rpus8c1d", "hunterC0rpus2", "tknC0rpus8c1d"),
    _s("credential", '{"password": "jsonC0rpusPw", "user": "svc"}', "jsonC0rpusPw"),
    _s("us_ssn", "applicant SSN 078-05-1120 verified", "078-05-1120"),
    _s("iban", "refund to IBAN DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00"),
    _s("iban", "payout GB82WEST12345698765432 done", "GB82WEST12345698765432"),
    _s("phone", "call back on +1 415 555 2671 after 5pm", "415 555 2671"),
    _s("phone", "US desk (415) 555-2672, ext 4", "555-2672"),
    _s("phone", "London office +44 20 7946 0958", "20 7946 0958"),
    _s("phone", "UK landline 020 7946 0959 please", "020 7946 0959"),
    _s("phone", "Paris 01 42 68 53 00 or +4930123456", "01 42 68 53 00", "4930123456"),
)
KINDS: tuple[str, ...] = tuple(dict.fromkeys(s.kind for s in SAMPLES))

# Realistic text that must survive redaction unchanged (false positives break data).
NEGATIVE: tuple[str, ...] = (
    "ts 2026-12-01T00:00:29.115469Z, date 2026-12-01 10:20:30, on 05-10-2026 at 00:29",
    "epoch ns 1764000000123456789, epoch s 1764000000, duration 412.3456789012345 ms",
    "span faa4a74fadee1630 trace 84e228b6624d80b460e4ccf207be87ed parent 0039283394f089e3",
    "uuid 123e4567-e89b-12d3-a456-426614174000 request req_8a372e64b8832ea2",
    "amount $10,000.50, 1,234,567.89 EUR, -42.00, +5.2%, 3.5e-07, 0.000123",
    "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "Ticket ZD-94164: login fails after password reset. Token budget exceeded, retry.",
    '{"max_tokens": 1024, "total_tokens": 77, "input_tokens": 12, "token_count": 5}',
    '{"gen_ai.usage.input_tokens": 1200, "bypass": "cache", "http.status_code": 200}',
    "a basic understanding of the bearer of bad news; secret sauce; user@localhost",
    "version 0.40.0, python 3.11.7, port 5432, order 42, invoice INV-68495, PAY-50901",
    "card-shaped but fails Luhn 4111 1111 1111 1112; SSN-shaped 000-12-3456",
    "H4sIAAAAAAAA/abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN0123",
    "kb/support-articles/refunds.md#3, s3://bucket/path/to/object, https://example.com/a?b=1",
)

# JSONL fields whose value is text; each gets every sample. Keys quarantine the record.
TEXT_COLUMNS = (
    "event_id",
    "trace_id",
    "parent_id",
    "agent_id",
    "agent_type",
    "session_id",
    "action",
    "action_target",
    "input_context",
    "reasoning_summary",
    "result",
    "error_type",
    "provider",
    "model",
    "attributes",
)
# Fields that only take numbers or known values: the record is quarantined and the detail
# quotes the value, so the detail must come out redacted.
CHECKED_COLUMNS = ("ts", "duration_ms", "confidence", "cost_usd", "status", "agent_tier", "outcome")


def _event(n: int, **fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "event_id": f"corpus-{n:06d}",
        "trace_id": f"corpus-trace-{n:06d}",
        "ts": f"2026-11-{18 + n % 3:02d}T09:{n % 60:02d}:00Z",
        "agent_id": "corpus-agent-01",
        "agent_type": "CorpusAgent",
        "kind": "llm_call",
        "status": "ok",
    }
    record.update(fields)
    return record


def _otlp_span(n: int, sample: Sample, where: str) -> dict[str, object]:
    def attr(key: str, value: str) -> dict[str, object]:
        return {"key": key, "value": {"stringValue": value}}

    mapped = {
        "agent_id": "gen_ai.agent.id",
        "agent_type": "agentops.agent.type",
        "session_id": "gen_ai.conversation.id",
        "action": "gen_ai.tool.name",
        "model": "gen_ai.request.model",
        "provider": "gen_ai.provider.name",
        "input_context": "gen_ai.input.messages",
        "result": "gen_ai.output.messages",
        "reasoning_summary": "agentops.reasoning.summary",
        "error_type": "error.type",
        "feedback_correction": "agentops.feedback.correction",
        "attributes": "app.note",
    }
    span: dict[str, object] = {
        "traceId": f"{n:032x}",
        "spanId": f"{n + 1:016x}",
        "name": "execute_tool lookup",
        "startTimeUnixNano": str(1763974800000000000 + n * 1000),
        "endTimeUnixNano": str(1763974800000000000 + n * 1000 + 500),
        "attributes": [
            attr("gen_ai.operation.name", "execute_tool"),
            attr("gen_ai.agent.id", "corpus-otlp-agent"),
            attr("agentops.agent.type", "CorpusAgent"),
        ],
        "status": {},
    }
    if where == "span_name":
        span["name"] = sample.text
    elif where == "span_id":
        span["spanId"] = sample.text
    elif where == "status_message":
        span["status"] = {"code": 2, "message": sample.text}
    else:
        span["attributes"].append(attr(mapped[where], sample.text))  # type: ignore[union-attr]
    return span


OTLP_PLACES = (
    "agent_id",
    "agent_type",
    "session_id",
    "action",
    "model",
    "provider",
    "input_context",
    "result",
    "reasoning_summary",
    "error_type",
    "feedback_correction",
    "attributes",
    "span_name",
    "span_id",
    "status_message",
)


def _file_name_safe(sample: Sample) -> str | None:
    """The sample as a file name, when it can be one (no slash, no line break)."""
    text = sample.text
    return None if "/" in text or "\n" in text or len(text) > 150 else text


@dataclass
class Planted:
    """Where each kind was planted: (kind, place) -> count."""

    places: Counter[tuple[str, str]] = field(default_factory=Counter)
    outputs: list[str] = field(default_factory=list)  # CLI output, errors shown to people
    refused: int = 0  # commits refused for a secret in an agent or fact id

    def add(self, kind: str, place: str) -> None:
        self.places[(kind, place)] += 1


def plant(home: Path) -> Planted:
    """Write the corpus into the landing and knowledge folders of ``home``."""
    planted = Planted()
    landing, knowledge = home / "landing", home / "knowledge"
    landing.mkdir(parents=True, exist_ok=True)
    knowledge.mkdir(parents=True, exist_ok=True)
    lines: list[bytes] = []
    n = 0
    for sample in SAMPLES:
        for column in TEXT_COLUMNS:
            n += 1
            value: object = {"note": sample.text} if column == "attributes" else sample.text
            lines.append(json.dumps(_event(n, **{column: value})).encode())
            planted.add(sample.kind, f"jsonl.{column}")
        for column in CHECKED_COLUMNS:
            n += 1
            lines.append(json.dumps(_event(n, **{column: sample.text})).encode())
            planted.add(sample.kind, f"jsonl.{column}")
        n += 1
        feedback = {"kind": "correct", "correction": sample.text, "rationale": sample.text}
        feedback["reviewer"] = sample.text
        lines.append(json.dumps(_event(n, kind="human_review", feedback=feedback)).encode())
        planted.add(sample.kind, "jsonl.feedback")
        n += 1
        lines.append(json.dumps(_event(n, **{"x_unknown": sample.text})).encode())
        lines.append(json.dumps(_event(n + 1, **{sample.text: 1})).encode())
        n += 1
        planted.add(sample.kind, "jsonl.unknown_field")
        planted.add(sample.kind, "jsonl.unknown_key")
        # A memory write the feed turns into a fact.
        n += 1
        fact = f"corpus.{sample.kind}.{n}"
        lines.append(
            json.dumps(
                _event(
                    n,
                    kind="memory_op",
                    action="put",
                    action_target=fact,
                    input_context=sample.text,
                    attributes={"namespace": "corpus", "fact_key": fact},
                )
            ).encode()
        )
        planted.add(sample.kind, "jsonl.memory_op")
        lines.append(b'{"event_id": "broken", "note": ' + json.dumps(sample.text).encode())
        planted.add(sample.kind, "jsonl.malformed_line")
        name = _file_name_safe(sample)
        if name is not None:
            (landing / f"{name}.jsonl").write_bytes(
                json.dumps(_event(900_000 + n, input_context="named file")).encode() + b"\n"
            )
            planted.add(sample.kind, "file_name")
        (knowledge / f"{sample.kind}-{n}.md").write_text(
            f"# Runbook {n}\n\nWhen rotating credentials: {sample.text}\n\nThen verify.\n"
        )
        planted.add(sample.kind, "knowledge.text")
        if name is not None:
            (knowledge / f"{name}.md").write_text("# Named\n\nA document named after a secret.\n")
            planted.add(sample.kind, "knowledge.document_name")
    (landing / "corpus.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    spans = []
    for i, sample in enumerate(SAMPLES):
        for place in OTLP_PLACES:
            spans.append(_otlp_span(10_000 + 100 * i + len(spans), sample, place))
            planted.add(sample.kind, f"otlp.{place}")
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": SAMPLES[0].text}}]}
    document = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}
    (landing / "corpus-traces.json").write_text(json.dumps(document))
    planted.add(SAMPLES[0].kind, "otlp.resource")
    return planted


# Secrets that are valid agent ids on their own (letters, digits, . _ : @ -).
AGENT_ID_SECRETS = frozenset(
    {
        "sk-proj-Xa9bC3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG1hJ",
        "sk-ant-api03-Zq8Wx7Vc6Bn5Mm4Ll3Kk2Jj1Hh0Gg9Ff8Dd7Ss6Aa5Pp4Oo3Ii2Uu1Yy0Tt-AA",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_R2d2C3poBb8Yoda1Luke2Leia3Han4Solo5Chew",
        "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
        "xoxb-2048123456789-4096123456789-CorpusSlackBotToken",
        "5500-0000-0000-0004",
        "078-05-1120",
        "GB82WEST12345698765432",
    }
)


def commit_memory(home: Path, planted: Planted) -> None:
    """Commit the corpus to memory through the library and through ``agentops memory``."""
    from click.testing import CliRunner

    from agentops_assets.cli.main import main
    from memory import FactChange, MemoryStore

    store = MemoryStore(home / "lake" / "memory_facts")
    runner = CliRunner()
    env = {"AGENTOPS_HOME": str(home)}
    for i, sample in enumerate(SAMPLES):
        change = FactChange.put(
            f"corpus.store.{i}",
            sample.text,
            metadata={"note": sample.text, "password": sample.needles[0]},
            source=sample.text,
        )
        store.commit("corpus-store", [change], message=sample.text, author=sample.text)
        for place in ("content", "metadata", "source", "message", "author"):
            planted.add(sample.kind, f"memory_store.{place}")
        # An id that holds a secret is refused, not stored (nor renamed).
        ids = [("corpus-store", sample.text.replace("\n", " "), "fact_id")]
        if sample.needles[0] in AGENT_ID_SECRETS:
            ids.append((sample.needles[0], "corpus.x", "agent_id"))
        for agent, fact, place in ids:
            try:
                store.commit(agent, [FactChange.put(fact, "x")], message="m", author="a")
            except ValueError as error:
                planted.outputs.append(str(error))
                planted.refused += 1
            planted.add(sample.kind, f"memory_store.{place}")
        args = ["memory", "commit", "corpus-cli", "--fact", f"corpus.cli.{i}"]
        args += ["--content", sample.text, "-m", sample.text, "--author", "ops"]
        result = runner.invoke(main, args, env=env)
        planted.outputs.append(result.output)
        if result.exit_code != 0:
            raise RuntimeError(f"agentops memory commit failed: {result.output}")
        planted.add(sample.kind, "memory_cli.content")
        planted.add(sample.kind, "memory_cli.message")
    version = store.version() or 0
    for sample in SAMPLES[:3]:
        store.rollback("corpus-store", max(0, version - 3), reason=sample.text, author="ops")
        planted.add(sample.kind, "memory_store.rollback_reason")
        version = store.version() or 0


def run_platform(home: Path) -> list[str]:
    """Materialise ingestion and the memory assets with Dagster; their metadata, as text."""
    import dagster as dg

    from agentops_assets.defs.memory.assets import knowledge_chunks, memory_facts, memory_index
    from agentops_assets.defs.resources import LakeResource
    from agentops_assets.defs.telemetry.assets import telemetry_ingestion

    result = dg.materialize(
        [telemetry_ingestion, memory_facts, knowledge_chunks, memory_index],
        resources={"lake": LakeResource(home=str(home))},
        # The bench prints tables; Dagster's step-by-step DEBUG lines would bury them.
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    if not result.success:
        raise RuntimeError("the platform run failed")
    return [
        f"{event.asset_key.to_user_string()}: {event.materialization.metadata}"
        for event in result.get_asset_materialization_events()
    ]


@dataclass(frozen=True)
class Leak:
    kind: str
    needle: str
    where: str  # table.column, a file, "dagster metadata", "cli output"


def _needles() -> list[tuple[str, str]]:
    return [(s.kind, needle) for s in SAMPLES for needle in s.needles]


def scan(home: Path, texts: dict[str, list[str]]) -> tuple[list[Leak], Counter[str]]:
    """Every planted secret found in ``home``'s lake and LanceDB files, or in ``texts``.

    Returns the leaks and the string cells scanned per ``table.column``.
    """
    needles = _needles()
    leaks: set[Leak] = set()
    cells: Counter[str] = Counter()
    for root in (home / "lake", home / "lance"):
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            relative = str(path.relative_to(home))
            for kind, needle in needles:
                if needle.encode() in data:
                    leaks.add(Leak(kind, needle, relative))
            if path.suffix == ".parquet":
                table = pq.read_table(path)
                _scan_table(table, _table_name(path, home), needles, leaks, cells)
    _scan_lance(home / "lance", needles, leaks, cells)
    for where, values in texts.items():
        for value in values:
            for kind, needle in needles:
                if needle in value:
                    leaks.add(Leak(kind, needle, where))
    return sorted(leaks, key=lambda leak: (leak.kind, leak.where)), cells


def _table_name(path: Path, home: Path) -> str:
    parts = path.relative_to(home / "lake").parts
    return parts[0]


def _scan_table(
    table: pa.Table,
    name: str,
    needles: list[tuple[str, str]],
    leaks: set[Leak],
    cells: Counter[str],
) -> None:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    for column, dtype in frame.schema.items():
        if dtype not in (pl.String, pl.Categorical):
            continue
        values = frame.get_column(column).cast(pl.String).drop_nulls()
        cells[f"{name}.{column}"] += values.len()
        for kind, needle in needles:
            if values.str.contains(needle, literal=True).any():
                leaks.add(Leak(kind, needle, f"{name}.{column}"))


def _scan_lance(
    folder: Path, needles: list[tuple[str, str]], leaks: set[Leak], cells: Counter[str]
) -> None:
    if not folder.exists():
        return
    import lancedb

    db = lancedb.connect(folder)
    for name in db.list_tables().tables:
        table = db.open_table(name)
        arrow = table.to_arrow()
        keep = [f.name for f in arrow.schema if pa.types.is_string(f.type)]
        _scan_table(arrow.select(keep), f"lance:{name}", needles, leaks, cells)


def report(planted: Planted, leaks: list[Leak], cells: Counter[str]) -> None:
    """Per kind and per column: what was planted or scanned, and the leaks."""
    by_kind: dict[str, list[Leak]] = defaultdict(list)
    by_where: dict[str, list[Leak]] = defaultdict(list)
    for leak in leaks:
        by_kind[leak.kind].append(leak)
        by_where[leak.where].append(leak)
    per_kind = Counter()
    for (kind, _), count in planted.places.items():
        per_kind[kind] += count
    print(f"{'kind':<16} {'placements':>10} {'leaks':>6}")
    for kind in KINDS:
        print(f"{kind:<16} {per_kind[kind]:>10} {len(by_kind[kind]):>6}")
    places = Counter()
    for (_, place), count in planted.places.items():
        places[place] += count
    print(f"\n{'planted in':<32} {'placements':>10}")
    for place, count in sorted(places.items()):
        print(f"{place:<32} {count:>10}")
    print(f"\n{'stored column scanned':<44} {'cells':>8} {'leaks':>6}")
    for where, count in sorted(cells.items()):
        print(f"{where:<44} {count:>8} {len(by_where[where]):>6}")
    others = sorted(w for w in by_where if w not in cells)
    for where in others:
        print(f"{where:<44} {'':>8} {len(by_where[where]):>6}")
    if leaks:
        print(f"\n{len(leaks)} leaks:")
        for leak in leaks:
            print(f"  {leak.kind}: {leak.needle[:24]}... in {leak.where}")
    else:
        print("\n0 leaks")


def run_corpus(home: Path) -> tuple[Planted, list[Leak], Counter[str]]:
    """Plant, run the platform, commit memory, scan: the whole corpus check."""
    os.environ["AGENTOPS_HOME"] = str(home)
    planted = plant(home)
    commit_memory(home, planted)
    metadata = run_platform(home)
    leaks, cells = scan(home, {"dagster metadata": metadata, "cli output": planted.outputs})
    return planted, leaks, cells


def redaction_cost(agents: int, days: int) -> None:
    """Redaction of a simulated fleet's events, per event: keys screened, text redacted."""
    import tempfile
    from datetime import UTC, datetime

    from agentops_assets.simulator import simulate
    from agentops_assets.telemetry import schema
    from agentops_assets.telemetry.jsonl import read_jsonl
    from agentops_assets.telemetry.landing import discover, read_content
    from agentops_assets.telemetry.redact import quarantine_secret_keys, redact_frame
    from agentops_assets.telemetry.validate import validate

    with tempfile.TemporaryDirectory(prefix="agentops-redact-") as folder:
        landing = Path(folder) / "landing"
        simulate(landing, Path(folder) / "truth", agents=agents, days=days)
        checked = [
            validate(read_jsonl(read_content(f, limit=1 << 40).data).records, now=datetime.now(UTC))
            for f in discover(landing)
        ]
    events = sum(c.rows.height for c in checked)
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for c in checked:
            screened = quarantine_secret_keys(c)
            redact_frame(screened.rows, schema.TEXT_FIELDS)
        best = min(best, time.process_time() - started)
    print(f"redaction of {events:,} simulated events: {best * 1e6 / events:.2f} CPU µs per event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Keep the corpus home in this folder.")
    parser.add_argument("--cost", action="store_true", help="Also time redaction per event.")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--days", type=int, default=3)
    args = parser.parse_args()
    from _report import work_folder

    with work_folder("agentops-redaction-", args.keep) as home:
        planted, leaks, cells = run_corpus(home)
        report(planted, leaks, cells)
    if args.cost:
        redaction_cost(args.agents, args.days)
    sys.exit(1 if leaks else 0)


if __name__ == "__main__":
    main()
