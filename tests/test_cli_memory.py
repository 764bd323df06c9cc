"""`agentops memory` on a real memory store under a temporary AGENTOPS_HOME."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from agentops_assets.cli import memory as cli_memory
from agentops_assets.cli.main import main
from agentops_assets.storage.config import Paths
from memory import TABLE_NAME, FactChange, MemoryStore
from memory.retrieval import MemoryIndex


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_memory.console, "width", 200)  # no wrapping inside table cells


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, ["memory", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _commit(agent: str, fact: str, content: str, message: str) -> None:
    _run("commit", agent, "--fact", fact, "--content", content, "-m", message, "--author", "t")


def test_commit_log_show_diff_and_rollback(paths: Paths) -> None:
    _commit("fin-1", "refund.limit", "Refunds over $1,000 need approval.", "policy")
    _commit("fin-1", "refund.limit", "Refunds over $10,000 need no approval.", "bad lesson")
    _commit("ops-1", "restart", "Stateless services only.", "runbook")

    # Version 0 creates the store; each commit is the next version.
    log = _run("log", "fin-1")
    assert "bad lesson" in log and "policy" in log and "runbook" not in log
    assert "Refunds over $1,000" in _run("show", "fin-1", "--as-of", "1")
    assert "$10,000 need no approval" in _run("show", "fin-1")

    diff = _run("diff", "fin-1", "1", "2")
    assert "~ refund.limit: Refunds over $1,000 need approval. -> Refunds over $10,000" in diff

    out = _run("rollback", "fin-1", "1", "--reason", "wrong lesson", "--author", "maria", "--yes")
    assert "Rolled back fin-1 to v1 as v4" in out
    assert "Refunds over $1,000" in _run("show", "fin-1")
    assert "Stateless services only." in _run("show", "ops-1")  # other agents untouched
    assert "wrong lesson" in _run("log", "fin-1", "--limit", "1")


def test_errors_are_one_sentence_without_a_trace(paths: Paths) -> None:
    _commit("fin-1", "k", "v", "first")
    runner = CliRunner()
    for args, expected in [
        (["memory", "show", "nobody"], "nobody"),
        (["memory", "show", "fin-1", "--as-of", "99"], "99"),
        (["memory", "commit", "fin-1", "--fact", "k", "-m", "x"], "--content"),
        (["memory", "commit", "fin-1", "--fact", "k", "--content", " ", "-m", "x"], "empty"),
    ]:
        result = runner.invoke(main, args)
        assert result.exit_code in (1, 2), result.output
        assert expected in result.output and "Traceback" not in result.output


def test_revert_undoes_one_commit_and_refuses_a_conflict(paths: Paths) -> None:
    _commit("fin-1", "refund.limit", "Refunds over $1,000 need approval.", "policy")  # v1
    _commit("fin-1", "refund.fast", "Refunds under $50 are instant.", "wrong lesson")  # v2
    _commit("fin-1", "fx.ccy", "Invoices in EUR.", "fx")  # v3
    out = _run("revert", "fin-1", "2", "--author", "maria", "--yes")
    assert "+ refund.fast: Refunds under $50 are instant." in out
    assert "Reverted v2 of fin-1 as v4: 0 restored, 0 changed back, 1 removed." in out
    shown = _run("show", "fin-1")
    assert "refund.fast" not in shown and "Invoices in EUR." in shown and "$1,000" in shown
    assert "Revert v2: wrong lesson" in _run("log", "fin-1", "--limit", "1")

    _commit("fin-1", "refund.limit", "Refunds over $5,000 need approval.", "review fix")  # v5
    result = CliRunner().invoke(main, ["memory", "revert", "fin-1", "1", "--yes"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "v5 changed the same fact(s) 'refund.limit'" in " ".join(result.output.split())
    again = CliRunner().invoke(main, ["memory", "revert", "fin-1", "2", "--yes"])
    assert again.exit_code == 1 and "already undone (reverted by v4)" in again.output


def test_log_is_readable_at_80_columns(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_memory.console, "width", 80)
    message = "learned the refund approval policy from the controller's email of last week"
    for agent in ("finance-agent-03", "ops-agent-11"):
        _run(
            "commit",
            agent,
            "--fact",
            "refund.limit",
            "--content",
            "x",
            "-m",
            message,
            "--author",
            "memory-feed",
            "--approved-by",
            "maria.rossi",
        )
    _run("rollback", "ops-agent-11", "1", "--reason", "[wrong]", "--yes")
    for args in (["log"], ["log", "finance-agent-03"]):
        lines = _run(*args).splitlines()
        assert all(len(line) <= 80 for line in lines)
        head = next(line for line in lines if line.startswith("v "))
        assert head.split() == [
            "v",
            "UTC",
            *(["agent"] if len(args) == 1 else []),
            "+/~/-",
            "message,",
            "by",
        ]
        row = next(line for line in lines if line.startswith("1 "))
        assert "1/0/0" in row and row.split()[2].count(":") == 1  # version, time, counts
        start = head.index("message")
        column = " ".join(line[start:].strip() for line in lines[lines.index(head) + 2 :])
        column = " ".join(column.split())
        assert message in column  # wrapped in its column, not cut
        assert f"{message} by memory-feed, approved by maria.rossi" in column
        if len(args) == 1:
            assert "finance-agent-03" in row  # the agent id is not folded
            assert "(rollback to v1) [wrong]" in column  # a message is not read as markup


def test_search_names_an_unknown_agent_and_says_when_nothing_matches(paths: Paths) -> None:
    _commit("fin-1", "refund.limit", "Refunds over $1,000 need approval.", "policy")
    MemoryIndex(paths.lance).refresh_facts(paths.table_uri(TABLE_NAME))
    result = CliRunner().invoke(main, ["memory", "search", "refund", "--agent", "no-such-agent"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "agent 'no-such-agent' has no memory in this store (1 agent has one" in result.output

    found = _run("search", "refunds approval", "--agent", "fin-1", "--mode", "text")
    assert "1 hits (memory v1, text)" in found and "Refunds over $1,000" in found
    none = _run("search", "zebra", "--agent", "fin-1", "--mode", "text")
    assert 'No fact or document matches "zebra" (text search).' in none
    assert "vNone" not in none


def test_search_right_after_a_rollback_never_answers_from_the_old_index(paths: Paths) -> None:
    _commit("fin-1", "refund.limit", "Refunds over $1,000 need approval.", "policy")
    MemoryIndex(paths.lance).refresh_facts(paths.table_uri(TABLE_NAME))
    _commit("fin-1", "refund.limit", "Refunds over $90,000 need approval.", "wrong lesson")
    _run("rollback", "fin-1", "1", "--reason", "wrong lesson", "--yes")
    assert MemoryIndex(paths.lance).memory_version() == 1  # no sensor ran: the index is behind

    result = CliRunner().invoke(
        main, ["memory", "search", "refunds approval", "--agent", "fin-1", "--mode", "text"]
    )
    assert result.exit_code == 0, result.output
    assert "the memory is at v3: refreshing it first" in result.stderr
    assert "(memory v3, text)" in result.stdout and "$1,000" in result.stdout
    assert "$90,000" not in result.stdout
    assert MemoryIndex(paths.lance).memory_version() == 3


def test_show_at_reads_the_memory_as_of_an_event_time(paths: Paths) -> None:
    store = MemoryStore(paths.table_uri(TABLE_NAME))
    day = datetime(2026, 10, 5, 9, tzinfo=UTC)
    store.commit(
        "fin-1", [FactChange.put("limit", "Refunds over $1,000.")], message="a", author="feed",
        event_time=day,
    )  # fmt: skip
    store.commit(
        "fin-1", [FactChange.put("limit", "Refunds over $5,000.")], message="b", author="feed",
        event_time=day + timedelta(days=2),
    )  # fmt: skip
    shown = _run("show", "fin-1", "--at", "2026-10-06")
    assert "Refunds over $1,000." in shown and "$5,000" not in shown
    assert "2026-10-06 00:00:00 UTC, v1" in shown
    early = CliRunner().invoke(main, ["memory", "show", "fin-1", "--at", "2026-10-01"])
    assert early.exit_code == 1 and "Traceback" not in early.output
    assert "had no memory at 2026-10-01" in early.output


def test_commits_rollbacks_and_reverts_from_the_cli_reach_the_audit_ledger(paths: Paths) -> None:
    from agentops_assets.governance.ledger import AuditLedger

    _commit("fin-1", "refund.limit", "Refunds over $1,000 need approval.", "policy")  # v1
    _commit("fin-1", "refund.fast", "Refunds under $50 are instant.", "wrong lesson")  # v2
    _run("revert", "fin-1", "2", "--author", "maria", "--yes")  # v3
    _run("rollback", "fin-1", "2", "--reason", "it was right", "--author", "ana", "--yes")
    ledger = AuditLedger(paths)
    entries = ledger.entries()
    assert entries["kind"].to_list() == [
        "memory_commit",
        "memory_commit",
        "memory_rollback",
        "memory_rollback",
    ]
    assert [json.loads(p)["version"] for p in entries["payload"]] == [1, 2, 3, 4]
    assert entries["actor"].to_list()[2:] == ["maria", "ana"]
    assert ledger.verify().ok
