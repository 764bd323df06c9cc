"""Shared fixtures: a fresh AGENTOPS_HOME per test, and event factories."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from agentops_assets.storage.config import Paths


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    home = tmp_path / "home"
    monkeypatch.setenv("AGENTOPS_HOME", str(home))
    monkeypatch.delenv("AGENTOPS_LAKE_URI", raising=False)
    monkeypatch.delenv("AGENTOPS_INDEX_URI", raising=False)
    monkeypatch.delenv("AGENTOPS_LANDING_URI", raising=False)
    return Paths.from_env()


def event(n: int, **overrides: object) -> dict[str, object]:
    """A valid native JSONL event; ``n`` makes its ids unique."""
    record: dict[str, object] = {
        "event_id": f"ev-{n:08d}",
        "trace_id": f"tr-{n // 5:08d}",
        "ts": f"2026-11-{18 + n % 3:02d}T09:{n % 60:02d}:00.000000Z",
        "duration_ms": 120.5,
        "agent_id": "finance-agent-01",
        "agent_type": "FinanceAgent",
        "agent_tier": "strategic",
        "kind": "llm_call",
        "action": "chat",
        "input_context": "Summarise the ledger for account 42.",
        "status": "ok",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 1200,
        "output_tokens": 300,
        "attributes": {"http.status_code": 200},
    }
    record.update(overrides)
    return record


def write_jsonl(path: Path, records: list[object], *, compress: bool = False) -> Path:
    """Write records (dicts, or raw bytes lines) as a JSONL landing file."""
    lines = [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]
    data = b"\n".join(lines) + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path
