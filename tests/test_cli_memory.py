"""`agentops memory` on a real memory store under a temporary AGENTOPS_HOME."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from agentops_assets.cli import memory as cli_memory
from agentops_assets.cli.main import main
from agentops_assets.storage.config import Paths


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
