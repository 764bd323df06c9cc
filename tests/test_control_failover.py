"""Failover routes: a backup model when a provider fails for a type, people when its confidence
collapsed, nothing when frozen; on real telemetry and in the control file."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from agentops_assets.control.failover import (
    FailoverPolicy,
    load_failover_policy,
    provider_health,
    routes,
)
from agentops_assets.control.refresh import refresh_autonomy
from agentops_assets.storage.config import Paths
from agentops_assets.storage.policy_file import PolicyFileError
from agentops_assets.telemetry.ingest import ingest_landing
from tests.conftest import event, write_jsonl

DAY = date(2026, 11, 19)  # conftest's event(n) falls on 18..20 November by n % 3
SHIPPED = Path(__file__).parents[1] / "policies" / "failover.yaml"


def _calls(paths: Paths) -> None:
    """On DAY: FinanceAgent's 30 openai calls (12 failed) and 30 gcp.gemini calls (1 failed);
    OpsAgent's 10 openai calls, all failed (too few to judge)."""
    records = []
    n = 0

    def add(count: int, failed: int, **fields: object) -> None:
        nonlocal n
        for i in range(count):
            while n % 3 != 1:  # the n that land on DAY
                n += 1
            error = {"status": "error", "error_type": "HTTP503"} if i < failed else {}
            records.append(event(n, **fields, **error))
            n += 1

    add(30, 12, provider="openai", model="gpt-4o")
    add(30, 1, provider="gcp.gemini", model="gemini-1.5-pro")
    add(10, 10, provider="openai", model="gpt-4o", agent_id="ops-agent-01", agent_type="OpsAgent")
    write_jsonl(paths.landing / "calls.jsonl", records)
    assert ingest_landing(paths).quarantined_rows == 0


def _states(*rows: tuple[str, str | None, str]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"agent_type": pl.String, "agent_id": pl.String, "state": pl.String},
        orient="row",
    )  # fmt: skip


def test_provider_health_counts_each_providers_calls_under_one_name(paths: Paths) -> None:
    _calls(paths)
    health = provider_health(paths, DAY)
    rows = {(r["agent_type"], r["provider"]): r for r in health.iter_rows(named=True)}
    assert set(rows) == {("FinanceAgent", "openai"), ("FinanceAgent", "google"),
                         ("OpsAgent", "openai")}  # fmt: skip
    assert (rows["FinanceAgent", "openai"]["calls"], rows["FinanceAgent", "openai"]["errors"]) == (
        30, 12,
    )  # fmt: skip
    assert rows["FinanceAgent", "google"]["model"] == "gemini-1.5-pro"
    assert provider_health(paths, date(2026, 11, 25)).is_empty()


def test_routes_follow_the_state_first_then_the_failing_provider(paths: Paths) -> None:
    _calls(paths)
    policy = load_failover_policy(SHIPPED)
    states = _states(
        ("FinanceAgent", None, "normal"),
        ("FinanceAgent", "finance-agent-01", "normal"),
        ("FinanceAgent", "finance-agent-02", "human_only"),
        ("FinanceAgent", "finance-agent-03", "frozen"),
        ("OpsAgent", None, "normal"),
        ("PlannerAgent", None, "normal"),
    )
    found = routes(states, provider_health(paths, DAY), policy)
    # 12 of 30 openai calls failed (40 % >= 25 %): FinanceAgent's own backup for openai.
    assert found["FinanceAgent", None] == {
        "route": "backup_model",
        "from": "openai/gpt-4o",
        "to": "anthropic/claude-3-5-sonnet-20241022",
        "reason": "12 of 30 openai calls failed today (40%)",
    }
    assert found["FinanceAgent", "finance-agent-01"]["route"] == "backup_model"
    assert found["FinanceAgent", "finance-agent-02"]["route"] == "human_review"
    assert found["FinanceAgent", "finance-agent-03"]["route"] == "freeze"
    assert found["OpsAgent", None]["route"] == "primary"  # 10 calls: under min_calls
    assert found["PlannerAgent", None]["route"] == "primary"


def test_a_failing_provider_without_a_backup_goes_to_people(paths: Paths) -> None:
    _calls(paths)
    policy = FailoverPolicy(outage={"error_rate": 0.3, "min_calls": 5}, backup={})
    found = routes(_states(("OpsAgent", None, "normal")), provider_health(paths, DAY), policy)
    assert found["OpsAgent", None] == {
        "route": "human_review",
        "reason": "10 of 10 openai calls failed today (100%); no backup model configured",
    }


def test_a_backup_that_is_not_provider_slash_model_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "failover.yaml"
    path.write_text("backup:\n  openai: gpt-4o-mini\n")
    with pytest.raises(PolicyFileError, match="line 2") as raised:
        load_failover_policy(path)
    assert "provider/model" in str(raised.value)


def test_the_control_file_carries_each_agents_route(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTOPS_POLICIES", raising=False)
    _calls(paths)
    update = refresh_autonomy(paths, DAY, now=datetime(2026, 11, 19, 23, tzinfo=UTC))
    document = json.loads(update.control_file.read_text())
    assert document["agent_types"]["FinanceAgent"]["failover_route"]["route"] == "backup_model"
    assert document["agents"]["finance-agent-01"]["failover_route"]["to"] == (
        "anthropic/claude-3-5-sonnet-20241022"
    )
    assert document["agents"]["ops-agent-01"]["failover_route"]["route"] == "primary"
