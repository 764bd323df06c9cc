"""The fleet simulator: determinism, the event contract, ground truth, bad records, formats."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agentops_assets.simulator import (
    INCIDENT_NAMES,
    JSONL_KINDS,
    OTLP_KINDS,
    simulate,
)
from agentops_assets.telemetry.schema import KINDS, OUTCOMES, REQUIRED_FIELDS, TIERS

START = dt.date(2026, 11, 2)  # a Monday
SMALL: dict[str, Any] = {"agents": 8, "days": 3, "cycles_per_agent_day": 10, "start": START}
TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
HEX16 = re.compile(r"^[0-9a-f]{16}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def _resource_spans(data: bytes) -> list[dict]:
    """resourceSpans of an OTLP file written as the collector does: one request per line."""
    return [rs for line in data.splitlines() if line for rs in json.loads(line)["resourceSpans"]]


def run(root: Path, **kwargs: Any):
    args = {**SMALL, **kwargs}
    return simulate(root / "landing", root / "truth", **args)


def landing_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def good_event(line: bytes) -> dict[str, Any] | None:
    """The event on a JSONL line if it meets the contract, else None."""
    try:
        e = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(e, dict) or any(not isinstance(e.get(k), str) for k in REQUIRED_FIELDS):
        return None
    try:
        ts = dt.datetime.fromisoformat(e["ts"])
    except ValueError:
        return None
    if not (2000 <= ts.year < 2100) or e["kind"] not in KINDS:
        return None
    for key in TOKENS:
        if key in e and (not isinstance(e[key], int) or e[key] < 0):
            return None
    conf = e.get("confidence")
    if conf is not None and (not isinstance(conf, float | int) or not 0 <= conf <= 1):
        return None
    if not isinstance(e.get("duration_ms", 0.0), float | int):
        return None
    if not isinstance(e.get("attempt", 0), int):
        return None
    return e


def read_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.splitlines()


def attr(span: dict[str, Any], key: str) -> Any:
    for a in span.get("attributes", []):
        if a["key"] == key:
            return next(iter(a["value"].values()))
    return None


TOKEN_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")


def good_span(span: dict[str, Any]) -> bool:
    if not HEX16.match(span.get("spanId", "")) or not HEX32.match(span.get("traceId", "")):
        return False
    start = span.get("startTimeUnixNano", "")
    if not start.isdigit() or not 946_684_800 * 10**9 <= int(start) < 4_102_444_800 * 10**9:
        return False
    for key in TOKEN_KEYS:
        value = attr(span, key)
        if value is not None and (not value.lstrip("-").isdigit() or int(value) < 0):
            return False
    conf = attr(span, "agentops.confidence")
    return conf is None or 0 <= conf <= 1


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory):
    """One small fleet in both formats with 10% bad records, shared by several tests."""
    root = tmp_path_factory.mktemp("both")
    summary = run(root, fmt="both", bad_fraction=0.1)
    manifest = json.loads((root / "truth" / "manifest.json").read_text())
    return root, summary, manifest


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    kwargs = {"fmt": "both", "bad_fraction": 0.05}
    run(tmp_path / "a", **kwargs)
    run(tmp_path / "b", **kwargs)
    run(tmp_path / "c", seed=7, **kwargs)
    a, b, c = (landing_files(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() != c.keys() or a != c
    jsonl_a = [v for k, v in a.items() if k.endswith(".jsonl")]
    jsonl_c = [v for k, v in c.items() if k.endswith(".jsonl")]
    assert jsonl_a != jsonl_c


def test_good_events_do_not_depend_on_bad_fraction(tmp_path: Path) -> None:
    clean = run(tmp_path / "clean", agents=3, days=1)
    dirty = run(tmp_path / "dirty", agents=3, days=1, bad_fraction=0.3)
    assert clean.events == dirty.events

    def good(paths: list[Path]) -> list[bytes]:
        return [x for p in paths for x in read_lines(p) if good_event(x) is not None]

    assert good(clean.files) == good(dirty.files)


def test_jsonl_events_follow_the_contract(tmp_path: Path) -> None:
    summary = run(tmp_path, agents=12, days=2)
    events = [good_event(line) for p in summary.files for line in read_lines(p)]
    assert events and all(e is not None for e in events)
    assert summary.events == len(events)
    assert len({e["event_id"] for e in events}) == len(events)
    by_id = {e["event_id"]: e for e in events}
    for e in events:
        assert e["ts"].endswith("Z") and len(e["ts"]) == 27
        assert e["status"] in ("ok", "error")
        assert e["agent_tier"] in TIERS
        assert not {"feedback_kind", "feedback_correction", "reviewer"} & e.keys()
        assert isinstance(e.get("attributes", {}), dict)
        if e["status"] == "error":
            assert e["error_type"]
        if e["kind"] != "plan":
            assert by_id[e["parent_id"]]["trace_id"] == e["trace_id"]
        if e["kind"] == "decision":
            assert e["outcome"] in OUTCOMES and 0 <= e["confidence"] <= 1
        if e["kind"] == "human_review":
            assert set(e["feedback"]) == {"kind", "correction", "rationale", "reviewer"}
            assert e["feedback"]["kind"] in ("approve", "override", "correct", "annotate")
        if e["kind"] == "memory_op":
            assert e["action"] in ("add", "update", "delete", "read")
            assert e["attributes"]["fact_key"] == e["action_target"]
        if e["kind"] == "llm_call" and e["status"] == "ok":
            assert e["input_tokens"] > 0 and e["output_tokens"] > 0 and e["model"]
    kinds = Counter(e["kind"] for e in events)
    assert KINDS - {"other"} <= kinds.keys()
    assert any(e.get("attempt", 0) > 0 for e in events if e["kind"] == "llm_call")
    assert any(e.get("attempt", 0) > 0 for e in events if e["kind"] == "tool_call")
    assert any("cost_usd" in e for e in events)
    assert any("cost_usd" not in e for e in events if e["kind"] == "llm_call")
    assert any("reasoning_tokens" in e for e in events)
    assert any("cache_read_tokens" in e for e in events)


def test_fleet_has_types_tiers_and_providers(tmp_path: Path) -> None:
    summary = run(tmp_path, agents=12, days=1)
    events = [json.loads(x) for p in summary.files for x in read_lines(p)]
    assert len({e["agent_type"] for e in events}) >= 5
    assert {e["agent_tier"] for e in events} == set(TIERS)
    assert len({e["provider"] for e in events if e["kind"] == "llm_call"}) >= 3
    assert re.fullmatch(r"[a-z]+-agent-\d\d", events[0]["agent_id"])


def test_manifest_counts_match_the_files(both) -> None:
    root, summary, manifest = both
    total_good = total_bad = 0
    for entry in manifest["files"]:
        path = root / "landing" / entry["path"]
        assert path.stat().st_size == entry["bytes"]
        if entry["format"] == "jsonl":
            lines = read_lines(path)
            good = sum(good_event(x) is not None for x in lines)
            assert len(lines) == entry["records"]
        else:
            spans = [
                s
                for rs in _resource_spans(path.read_bytes())
                for ss in rs["scopeSpans"]
                for s in ss["spans"]
            ]
            good = sum(good_span(s) for s in spans)
            assert len(spans) == entry["records"]
        assert good == entry["events"]
        assert len(lines if entry["format"] == "jsonl" else spans) - good == entry["bad_records"]
        total_good += good
        total_bad += entry["bad_records"]
    assert manifest["total_events"] == summary.events == total_good
    assert manifest["total_bad_records"] == summary.bad_total == total_bad
    assert sum(manifest["bad_records_by_kind"].values()) == total_bad


def test_bad_fraction_gives_many_kinds_and_no_shared_ids(both) -> None:
    root, summary, manifest = both
    share = summary.bad_total / (summary.events + summary.bad_total)
    assert 0.07 < share < 0.13
    assert set(summary.bad_records) == set(JSONL_KINDS) | set(OTLP_KINDS)
    good_ids, bad_ids = set(), set()
    for p in summary.files:
        if p.suffix == ".jsonl":
            for line in read_lines(p):
                e = good_event(line)
                if e is not None:
                    good_ids.add(e["event_id"])
                else:
                    bad_ids.update(re.findall(rb'"event_id":"([0-9a-f]{16})"', line))
    assert bad_ids and not {b.decode() for b in bad_ids} & good_ids


def test_ground_truth_lives_outside_landing(both) -> None:
    root, summary, manifest = both
    incidents = json.loads((root / "truth" / "incidents.json").read_text())
    assert [i["name"] for i in incidents] == list(INCIDENT_NAMES)
    assert summary.incidents == incidents
    for inc in incidents:
        assert {
            "name",
            "kind",
            "agent_type",
            "agent_ids",
            "day",
            "start",
            "end",
            "description",
            "signal",
        } <= inc.keys()
        assert inc["start"] < inc["end"] and inc["agent_ids"]
    landed = [p.name for p in (root / "landing").rglob("*") if p.is_file()]
    assert all(n.startswith("fleet-s42-") for n in landed)
    assert not [p for p in root.rglob("*.tmp")]
    assert manifest["seed"] == 42 and manifest["args"]["fmt"] == "both"


def test_ground_truth_inside_landing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="landing"):
        simulate(tmp_path / "landing", tmp_path / "landing" / "truth", agents=1, days=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"agents": 0},
        {"days": 0},
        {"bad_fraction": 1.0},
        {"bad_fraction": -0.1},
        {"incidents": ["meteor_strike"]},
        {"fmt": "xml"},
        {"seed": -1},
        {"cycles_per_agent_day": 0},
        {"first_incident_day": -1},
        {"first_incident_day": "7"},
    ],
)
def test_bad_arguments_raise_value_error(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"\w+.*\."):
        simulate(tmp_path / "landing", tmp_path / "truth", **kwargs)
    assert not (tmp_path / "landing").exists()


def test_otlp_files_have_the_resource_spans_structure(tmp_path: Path) -> None:
    summary = run(tmp_path, fmt="otlp", agents=6, days=1)
    assert all(p.name.endswith(".json") for p in summary.files)
    keys: set[str] = set()
    count = 0
    for p in summary.files:
        for rs in _resource_spans(p.read_bytes()):
            res = {a["key"]: a["value"]["stringValue"] for a in rs["resource"]["attributes"]}
            assert {
                "service.name",
                "gen_ai.agent.id",
                "gen_ai.agent.name",
                "agentops.agent.type",
                "agentops.agent.tier",
            } <= res.keys()
            for ss in rs["scopeSpans"]:
                assert ss["scope"]["name"] == "agentops.simulator"
                for s in ss["spans"]:
                    assert good_span(s)
                    assert int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"])
                    assert s["status"]["code"] in (1, 2)
                    for a in s["attributes"]:
                        ((kind, value),) = a["value"].items()
                        if kind == "intValue":
                            assert isinstance(value, str) and int(value) >= 0
                        keys.add(a["key"])
                    count += 1
    assert count == summary.events
    assert {"gen_ai.provider.name", "gen_ai.system", "llm.provider"} <= keys
    assert {"gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"} <= keys
    assert {"agentops.confidence", "agentops.outcome", "gen_ai.tool.name", "tool.name"} <= keys


def test_otlp_bad_spans_are_counted(tmp_path: Path) -> None:
    summary = run(tmp_path, fmt="otlp", agents=4, days=1, bad_fraction=0.2)
    spans = [
        s
        for p in summary.files
        for rs in _resource_spans(p.read_bytes())
        for s in rs["scopeSpans"][0]["spans"]
    ]
    assert sum(not good_span(s) for s in spans) == summary.bad_total > 0
    assert set(summary.bad_records) <= set(OTLP_KINDS)


def test_gzip_files_read_back(tmp_path: Path) -> None:
    summary = run(tmp_path, agents=3, days=1, gzip=True, fmt="both")
    assert summary.files and all(p.suffix == ".gz" for p in summary.files)
    records = 0
    for p in summary.files:
        with gzip.open(p, "rb") as fh:
            data = fh.read()
        if ".jsonl" in p.name:
            records += sum(good_event(x) is not None for x in data.splitlines())
        else:
            records += sum(len(rs["scopeSpans"][0]["spans"]) for rs in _resource_spans(data))
    assert records == summary.events


def test_tiny_ranges_still_place_every_incident(tmp_path: Path) -> None:
    summary = run(tmp_path, agents=1, days=1, cycles_per_agent_day=1)
    assert [i["name"] for i in summary.incidents] == list(INCIDENT_NAMES)
    assert summary.start == summary.end == START
    only = run(tmp_path / "two", agents=2, days=2, incidents=["outage"])
    assert [i["name"] for i in only.incidents] == ["outage"]


def test_first_incident_day_leaves_a_clean_baseline(tmp_path: Path) -> None:
    summary = run(tmp_path, agents=6, days=12, cycles_per_agent_day=4, first_incident_day=7)
    days = sorted(dt.date.fromisoformat(i["day"]) for i in summary.incidents)
    assert len(days) == len(INCIDENT_NAMES)
    assert days[0] >= START + dt.timedelta(days=7)
    # Too late a first day puts the incidents on the last day rather than nowhere.
    late = run(tmp_path / "late", agents=6, days=3, cycles_per_agent_day=4, first_incident_day=9)
    assert {i["day"] for i in late.incidents} <= {(START + dt.timedelta(days=2)).isoformat()}


def test_wrong_lesson_is_stored_then_corrected(tmp_path: Path) -> None:
    summary = run(tmp_path, agents=6, days=2, incidents=["wrong_lesson"])
    (inc,) = summary.incidents
    events = [json.loads(x) for p in summary.files for x in read_lines(p)]
    wrong = [e for e in events if e["event_id"] == inc["signal"]["wrong_event_id"]]
    review = [e for e in events if e["event_id"] == inc["signal"]["review_event_id"]]
    assert wrong[0]["kind"] == "memory_op" and wrong[0]["action"] == "update"
    assert wrong[0]["input_context"] == inc["details"]["wrong_content"]
    assert review[0]["feedback"]["kind"] == "correct"
    assert review[0]["attributes"]["lesson"] is True
    assert review[0]["attributes"]["fact_key"] == wrong[0]["action_target"]
    assert wrong[0]["ts"] < review[0]["ts"]


def test_secrets_are_planted_and_counted(tmp_path: Path) -> None:
    summary = run(tmp_path, agents=10, days=2, incidents=[])
    pattern = re.compile(
        r"sk-proj-|sk-ant-api03-|AKIA[A-Z2-7]{16}|ghp_[A-Za-z0-9]{36}|Bearer eyJ|@[a-z-]+\.|"
        r"\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}"
    )
    texts = [
        " ".join(str(e.get(k)) for k in ("input_context", "reasoning_summary", "result"))
        for p in summary.files
        for e in map(json.loads, read_lines(p))
    ]
    hits = sum(bool(pattern.search(text)) for text in texts)
    assert sum(summary.secrets.values()) == hits > 0


def test_files_rotate_and_progress_is_reported(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    summary = run(
        tmp_path,
        agents=20,
        days=1,
        cycles_per_agent_day=250,
        incidents=[],
        progress=lambda done, total: calls.append((done, total)),
    )
    names = [p.name for p in summary.files]
    assert names == ["fleet-s42-jsonl-000.jsonl", "fleet-s42-jsonl-001.jsonl"]
    assert calls and calls[-1][0] == calls[-1][1]


def test_both_formats_split_agents_without_duplicates(both) -> None:
    root, summary, manifest = both
    jsonl_agents, otlp_agents, ids = set(), set(), []
    for p in summary.files:
        if p.suffix == ".jsonl":
            for e in filter(None, map(good_event, read_lines(p))):
                jsonl_agents.add(e["agent_id"])
                ids.append(e["event_id"])
        else:
            for rs in _resource_spans(p.read_bytes()):
                res = {a["key"]: a["value"]["stringValue"] for a in rs["resource"]["attributes"]}
                otlp_agents.add(res["gen_ai.agent.id"])
                ids += [s["spanId"] for s in rs["scopeSpans"][0]["spans"] if good_span(s)]
    assert jsonl_agents and otlp_agents and not jsonl_agents & otlp_agents
    assert len(ids) == len(set(ids)) == summary.events


def test_incident_signals_show_in_the_events(tmp_path: Path) -> None:
    summary = run(tmp_path, agents=8, days=4, cycles_per_agent_day=20)
    events = [json.loads(x) for p in summary.files for x in read_lines(p)]
    inc = {i["name"]: i for i in summary.incidents}

    def within(e: dict[str, Any], i: dict[str, Any]) -> bool:
        return i["start"] <= e["ts"] < i["end"]

    drift = inc["confidence_drift"]
    conf = [e for e in events if e["kind"] == "decision" and e["agent_type"] == drift["agent_type"]]
    before = [e["confidence"] for e in conf if e["ts"] < drift["start"]]
    last = [e["confidence"] for e in conf if e["ts"][:10] == summary.end.isoformat()]
    assert sum(last) / len(last) < sum(before) / len(before) - 0.1

    spike = inc["cost_spike"]
    model = spike["details"]["model"]
    assert any(e.get("attributes", {}).get("request_model") == model for e in events)

    rogue = inc["rogue_agent"]
    odd = [e for e in events if e["kind"] == "tool_call" and e["agent_id"] in rogue["agent_ids"]]
    assert {e["action"] for e in odd if within(e, rogue)} & set(rogue["details"]["tools"])
    assert not {e["action"] for e in odd if not within(e, rogue)} & set(rogue["details"]["tools"])

    outage = inc["outage"]
    calls = [e for e in events if e["action"] == outage["details"]["tool"] and within(e, outage)]
    errors = [e for e in calls if e["status"] == "error"]
    assert calls and len(errors) / len(calls) > 0.6
    assert {e["error_type"] for e in errors} <= {"TimeoutError", "HTTP503"}

    bad = inc["corrupted_context"]
    hit = [e for e in events if e["agent_id"] in bad["agent_ids"] and within(e, bad)]
    assert any(e.get("input_context") == "" for e in hit)


def test_simulated_roi_per_agent_type_is_plausible(tmp_path: Path) -> None:
    """Value per decision is calibrated so that each type's ROI over its LLM spend is believable.

    The README documents the calibration: ROI between about 1.5x and 11x on a week's fleet.
    """
    import polars as pl

    from agentops_assets.finops.pricing import price_events
    from agentops_assets.storage.config import Paths
    from agentops_assets.telemetry.ingest import ingest_landing

    paths = Paths.from_env(tmp_path / "home")
    simulate(paths.landing, tmp_path / "truth", agents=12, days=3, seed=5)
    ingest_landing(paths)
    events = pl.read_delta(paths.table_uri("agent_events"))
    cost = price_events(events).group_by("agent_type").agg(pl.col("cost_usd").sum())
    value = (
        events.filter(pl.col("kind") == "decision")
        .group_by("agent_type")
        .agg(pl.col("value_usd").sum())
    )
    roi = cost.join(value, on="agent_type").select(
        "agent_type", ((pl.col("value_usd") - pl.col("cost_usd")) / pl.col("cost_usd")).alias("roi")
    )
    assert roi.height == 6
    for agent_type, figure in roi.iter_rows():
        assert 0.5 < figure < 20, f"{agent_type}: ROI {figure:.1f}x is not plausible"
