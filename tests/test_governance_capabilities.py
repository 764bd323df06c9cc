"""The capability registry: the shipped file, its validation, and violations on real telemetry."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from agentops_assets.governance.capabilities import (
    CAPABILITIES_FILE,
    VIOLATION_SCHEMA,
    CapabilityRegistry,
    capability_violations,
    load_capabilities,
    load_registry,
    read_events,
)
from agentops_assets.simulator import simulate
from agentops_assets.simulator.agent_types import AGENT_TYPES
from agentops_assets.simulator.catalog import ROGUE_TOOLS
from agentops_assets.storage.config import Paths
from agentops_assets.storage.policy_file import PolicyFileError
from agentops_assets.telemetry.ingest import ingest_landing
from agentops_assets.telemetry.schema import AGENT_EVENTS

START = dt.date(2026, 10, 5)
DAYS = 2


def _fleet(paths: Paths, *, incidents: list[str] | None, seed: int = 7) -> None:
    simulate(paths.landing, paths.simulator, agents=8, days=DAYS, seed=seed, start=START,
             fmt="both", incidents=incidents, cycles_per_agent_day=20)  # fmt: skip
    assert ingest_landing(paths).quarantined_rows == 0


def test_shipped_registry_lists_each_simulated_types_tools_and_no_rogue_only_tool() -> None:
    registry = load_registry(Paths.from_env("/nonexistent-home"))
    for agent_type in AGENT_TYPES:
        entry = registry.agent_types[agent_type.name]
        assert set(entry.tools) == {tool for tool, _ in agent_type.tools}
        # The rogue picks tools outside its own type's set; none of them is in that type's entry.
        for tool in ROGUE_TOOLS:
            usual = tool in {t for t, _ in agent_type.tools}
            assert (registry.tool_rule(agent_type.name, tool) is None) == usual
    # Unlisted types fall back to the permissive "*".
    assert registry.tool_rule("KYCAgent", "anything.at_all") is None


@pytest.mark.parametrize("seed", [7, 11])
def test_violations_are_exactly_the_rogue_agents_unusual_calls(paths: Paths, seed: int) -> None:
    # Every incident runs (outages, drifts, corrupted memory...): only the rogue breaks rules.
    _fleet(paths, incidents=None, seed=seed)
    truth = json.loads((paths.simulator / "incidents.json").read_text())
    (rogue,) = [i for i in truth if i["name"] == "rogue_agent"]
    (agent_id,) = rogue["agent_ids"]
    tools = rogue["details"]["tools"]

    found = capability_violations(
        read_events(paths, START, START + dt.timedelta(days=DAYS - 1)), load_registry(paths)
    )

    events = pl.read_delta(paths.table_uri(AGENT_EVENTS))
    expected = events.filter(
        (pl.col("kind") == "tool_call")
        & (pl.col("agent_id") == agent_id)
        & pl.col("action").is_in(tools)
    )
    assert found.schema == VIOLATION_SCHEMA
    assert found.height == rogue["signal"]["count"] == expected.height > 0
    assert sorted(found["event_id"]) == sorted(expected["event_id"])
    assert set(found["agent_id"]) == {agent_id}
    assert set(found["agent_type"]) == {rogue["agent_type"]}
    assert set(found["action"]) <= set(tools)
    assert set(found["rule"]) == {f"tool not in {rogue['agent_type']}'s registry"}
    assert set(found["day"]) == {dt.date.fromisoformat(rogue["day"])}
    joined = found.join(expected.select("event_id", "trace_id"), on="event_id")
    assert (joined["trace_id"] == joined["trace_id_right"]).all()

    # A range without the incident day reads only its own partitions and finds nothing there.
    quiet_day = ({START, START + dt.timedelta(days=1)} - set(found["day"])).pop()
    quiet = read_events(paths, quiet_day, quiet_day).collect()
    assert set(quiet["event_date"]) == {quiet_day}
    assert capability_violations(quiet, load_registry(paths)).is_empty()


def test_a_fleet_without_incidents_has_no_violation(paths: Paths) -> None:
    _fleet(paths, incidents=[])
    events = read_events(paths, START, START + dt.timedelta(days=DAYS - 1))
    assert events.filter(pl.col("kind") == "tool_call").collect().height > 1000
    assert capability_violations(events, load_registry(paths)).is_empty()


def test_globs_and_defaults_decide_per_distinct_pair(paths: Paths) -> None:
    _fleet(paths, incidents=[])
    registry = CapabilityRegistry.model_validate(
        {
            "agent_types": {
                # Support may use every zendesk tool but nothing else.
                "SupportAgent": {"tools": ["zendesk.*"]},
                "*": {"tools": ["kb.search", "crm.lookup_?ustomer", "[a-z]*.*"]},
            }
        }
    )
    found = capability_violations(read_events(paths, START, START), registry)
    events = read_events(paths, START, START).filter(pl.col("kind") == "tool_call").collect()
    support = events.filter(pl.col("agent_type") == "SupportAgent")
    expected = support.filter(~pl.col("action").str.starts_with("zendesk."))
    assert expected.height > 0
    # Other types' actions are all lowercase dotted names: the "*" entry allows them.
    assert sorted(found["event_id"]) == sorted(expected["event_id"])
    assert set(found["rule"]) == {"tool not in SupportAgent's registry"}

    # Without a "*" entry, unlisted types may call nothing.
    strict = CapabilityRegistry.model_validate({"agent_types": {"SupportAgent": {"tools": ["*"]}}})
    found = capability_violations(events, strict)
    assert found.height == events.height - support.height
    assert "OpsAgent has no registry entry and there is no '*' entry" in set(found["rule"])


def test_no_events_no_violations(paths: Paths) -> None:
    events = read_events(paths, START, START)
    assert events.collect().is_empty()
    found = capability_violations(events, load_registry(paths))
    assert found.is_empty() and found.schema == VIOLATION_SCHEMA


def test_policies_folder_without_the_file_uses_the_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    monkeypatch.setenv("AGENTOPS_POLICIES", str(folder))
    paths = Paths.from_env(tmp_path / "home")
    assert "SupportAgent" in load_registry(paths).agent_types

    (folder / CAPABILITIES_FILE).write_text('agent_types:\n  "*":\n    tools: [kb.search]\n')
    registry = load_registry(paths)
    assert list(registry.agent_types) == ["*"]
    assert registry.tool_rule("SupportAgent", "zendesk.reply") == (
        "tool not in the '*' registry (SupportAgent)"
    )


GOOD = "agent_types:\n  KYCAgent:\n    tools: [lookup_account]\n"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (GOOD + "    data_zones: [public, secret]\n", 4, "data_zones.1"),
        (GOOD + "    max_amount_usd: -5\n", 4, "greater than or equal to 0"),
        (GOOD + "    max_amount_usd: ten\n", 4, "max_amount_usd"),
        (GOOD + "    tool: [x]\n", 4, "unknown key"),
        ("agent_types:\n  KYCAgent:\n    data_zones: [public]\n", 3,
         "'agent_types.KYCAgent' must list its 'tools'"),
        ("agent_types:\n  KYCAgent:\n    tools: lookup_account\n", 3, "valid list"),
        ("agent_types:\n  KYCAgent:\n    tools: [a, a]\n", 3, "lists a tool twice"),
        ("agent_types:\n  KYCAgent:\n    tools: [a, ''\n", 4, "is not valid YAML"),
        (GOOD + "  KYCAgent:\n    tools: [b]\n", 4, "appears twice"),
        ("agent_type:\n  KYCAgent:\n    tools: [a]\n", 2, "unknown key"),
        ("- KYCAgent\n", 1, "expected a mapping"),
    ],
)  # fmt: skip
def test_a_bad_registry_is_one_sentence_naming_file_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    path = tmp_path / CAPABILITIES_FILE
    path.write_text(text)
    with pytest.raises(PolicyFileError) as caught:
        load_capabilities(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line {line}: "), message
    assert words in message
    assert "\n" not in message and message.endswith(".")
    assert caught.value.line == line


def test_a_missing_registry_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="is not a regular file"):
        load_capabilities(tmp_path / CAPABILITIES_FILE)


def test_events_without_type_or_action_fall_under_the_default_entry() -> None:
    events = pl.DataFrame(
        {
            "event_date": [START] * 4,
            "event_id": ["e1", "e2", "e3", "e4"],
            "trace_id": ["t1"] * 4,
            "agent_id": ["a1"] * 4,
            "agent_type": [None, None, "SupportAgent", "SupportAgent"],
            "kind": ["tool_call", "tool_call", "tool_call", "llm_call"],
            "action": ["kb.search", "db.export_table", None, "chat"],
        }
    )
    registry = CapabilityRegistry.model_validate(
        {"agent_types": {"SupportAgent": {"tools": ["zendesk.*"]}, "*": {"tools": ["kb.*"]}}}
    )
    found = capability_violations(events, registry)
    assert found["event_id"].to_list() == ["e2", "e3"]
    assert found["rule"].to_list() == [
        "tool not in the '*' registry (an agent of unknown type)",
        "tool not in SupportAgent's registry",
    ]
