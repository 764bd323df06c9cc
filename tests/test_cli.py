"""The agentops command, driven through click's CliRunner on a temporary AGENTOPS_HOME."""

from __future__ import annotations

import json
import os

import click
import pytest
from click.testing import CliRunner

from agentops_assets.cli.main import main
from agentops_assets.storage.config import Paths


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, f"{prefix}{name} "))
    return found


@pytest.mark.parametrize(("name", "command"), _commands(main))
def test_every_command_has_help_with_an_example(name: str, command: click.Command) -> None:
    result = CliRunner().invoke(main, [*name.split(), "--help"])
    assert result.exit_code == 0
    assert command.help and "Example" in command.help, f"agentops {name} lacks an example"


def test_simulate_writes_landing_files_and_ground_truth_outside_landing(paths: Paths) -> None:
    result = CliRunner().invoke(
        main, ["simulate", "--agents", "6", "--days", "2", "--format", "both", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "events" in result.output
    assert list(paths.landing.rglob("*.jsonl")) and list(paths.landing.rglob("*.json"))
    incidents = json.loads((paths.simulator / "incidents.json").read_text())
    assert {i["name"] for i in incidents} >= {"cost_spike", "outage"}
    assert not list(paths.landing.rglob("incidents.json"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "--bad-fraction", "1.5"], "--bad-fraction"),
        (["simulate", "--agents", "0"], "--agents"),
        (["simulate", "--format", "xml"], "'xml' is not one of"),
        (["simulate", "--start", "last week"], "--start"),
        (["sql"], "Missing argument"),
    ],
)
def test_bad_arguments_get_one_clear_sentence(paths: Paths, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_sql_before_any_data_says_what_to_do(paths: Paths) -> None:
    result = CliRunner().invoke(main, ["sql", "SELECT * FROM agent_events"])
    assert result.exit_code == 1
    assert "agentops demo" in result.output


def test_demo_simulates_materializes_and_summarizes(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentops_assets.cli import main as cli_main

    monkeypatch.setattr(cli_main.console, "width", 400)  # one line per row of the runs table
    previous = os.environ.get("DAGSTER_HOME")
    try:
        result = CliRunner().invoke(main, ["demo", "--agents", "5", "--days", "2"])
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous
    assert result.exit_code == 0, result.output
    for expected in (
        "agent_events",
        "agent_events_quarantine",
        "ingested_files",
        "Quarantined records by reason",
        "Where to look next",
        "event_ids_unique",
    ):
        assert expected in result.output
    # Both days hold every incident; the cost spike's breach is labelled as the expected one.
    breach = next(line for line in result.output.splitlines() if "budget_within_caps" in line)
    assert "FAILED" in breach and "(expected: the injected cost spike)" in breach
    assert (paths.dagster_home / "history").exists() or any(paths.dagster_home.iterdir())
