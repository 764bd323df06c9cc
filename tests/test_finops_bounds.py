"""FinOps under hostile policy files and absurd (but finite) amounts.

A policy file is read by hand-made YAML; an alias bomb, a huge or deeply nested file must fail
fast with the file and line. A cost or cap of 1e17 USD must never crash compliance, the
refresh or ``agentops finops report``.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
import time
import tracemalloc
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable

from agentops_assets.cli.main import main
from agentops_assets.finops import refresh
from agentops_assets.finops.budgets import Budget, load_budgets
from agentops_assets.finops.compliance import budget_compliance, compliance_findings
from agentops_assets.finops.formats import dollars, number, pct, times, usd
from agentops_assets.finops.pricing import load_pricing
from agentops_assets.finops.tables import BUDGET_COMPLIANCE, EVENT_COSTS
from agentops_assets.simulator import simulate
from agentops_assets.storage.config import Paths
from agentops_assets.storage.policy_file import PolicyFileError
from agentops_assets.telemetry.ingest import ingest_landing
from agentops_assets.telemetry.schema import AGENT_EVENTS
from tests.conftest import event, write_jsonl

FIRST, LAST = date(2026, 11, 18), date(2026, 11, 19)
NOW = datetime(2026, 11, 19, 12, tzinfo=UTC)


def billion_laughs(entry: str, key: str, *, levels: int = 9) -> str:
    """A policy file whose ``key`` holds 10**levels strings through nested aliases."""
    lines = [*entry.splitlines(), f"    {key}:", f"      - &l0 [{','.join(['lol'] * 10)}]"]
    for level in range(1, levels):
        lines.append(f"      - &l{level} [{','.join([f'*l{level - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def _timed_failure(load, path: Path) -> tuple[PolicyFileError, float, int]:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(PolicyFileError) as raised:
            load(path)
        return raised.value, time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("name", "load", "entry", "key"),
    [
        ("budgets.yaml", load_budgets, "budgets:\n  - agent_type: A\n    daily_usd: 5", "warn_at"),
        (
            "pricing.yaml",
            load_pricing,
            "models:\n  - model: m\n    output_mtok: 1",
            "input_mtok",
        ),
    ],
)
def test_an_alias_bomb_fails_in_well_under_a_second(
    tmp_path: Path, name: str, load, entry: str, key: str
) -> None:
    path = tmp_path / name
    path.write_text(billion_laughs(entry, key))
    assert path.stat().st_size < 600  # a billion "lol"s in a few hundred bytes
    error, seconds, peak = _timed_failure(load, path)
    assert error.line == 5
    assert "anchors and aliases" in error.problem
    assert str(error).startswith(f"{path}, line 5: ")
    assert seconds < 0.5, seconds
    assert peak < 20 * 2**20, peak


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("budgets:\n  - &base\n    agent_type: A\n    daily_usd: 5\n", 2),
        ("budgets:\n  - agent_type: A\n    daily_usd: &five 5\n", 3),
        (
            "defaults: &d {daily_usd: 5}\nbudgets:\n  - agent_type: A\n    <<: *d\n",
            1,
        ),
    ],
)
def test_anchors_and_merge_keys_are_refused_at_their_line(
    tmp_path: Path, text: str, line: int
) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError, match="anchors and aliases") as raised:
        load_budgets(path)
    assert raised.value.line == line


def test_a_huge_policy_file_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    padding = "# a comment line that pads the file out\n" * 10_000  # about 400 KB
    path.write_text(f"{padding}budgets:\n  - agent_type: A\n    daily_usd: 5\n")
    started = time.perf_counter()
    with pytest.raises(PolicyFileError, match="larger than 256 KiB"):
        load_budgets(path)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(("depth", "problem"), [(30, "nests deeper than 20"), (50_000, "nest")])
def test_deep_nesting_is_refused_with_its_line(tmp_path: Path, depth: int, problem: str) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text("budgets:\n  - agent_type: A\n    daily_usd: " + "[" * depth + "\n")
    with pytest.raises(PolicyFileError, match=problem) as raised:
        load_budgets(path)
    assert raised.value.line == 3


def test_a_long_wrong_value_gives_a_short_message(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    values = ", ".join(str(n) for n in range(30_000))  # about 200 KB
    path.write_text(f"budgets:\n  - agent_type: A\n    daily_usd: [{values}]\n")
    with pytest.raises(PolicyFileError) as raised:
        load_budgets(path)
    assert raised.value.line == 3 and len(str(raised.value)) < 300


def test_a_policy_path_that_is_not_a_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "budgets.yaml"
    os.mkfifo(fifo)  # opening it to read would block until a writer comes
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_budgets(fifo)
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome.append(error)

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(timeout=5)
    if reader.is_alive():  # release the blocked reader: a writer that closes at once
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=5)
        pytest.fail("reading a FIFO as a policy file blocked")
    assert isinstance(outcome[0], PolicyFileError)
    assert "not a regular file" in str(outcome[0])


# --- amounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["daily_usd", "monthly_usd"])
def test_a_cap_above_a_billion_is_refused_with_its_line(tmp_path: Path, field: str) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(f"budgets:\n  - agent_type: A\n    {field}: 1e17\n")
    with pytest.raises(PolicyFileError, match="at most 1,000,000,000 USD") as raised:
        load_budgets(path)
    assert raised.value.line == 3
    path.write_text(f"budgets:\n  - agent_type: A\n    {field}: 1000000000\n")
    assert load_budgets(path)[0].model_dump()[field] == 1e9


def _spend(rows: list[tuple[str, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(date(2026, 11, 19), agent, "openai", "gpt-4o", usd) for agent, usd in rows],
        schema={
            "day": pl.Date,
            "agent_type": pl.String,
            "provider": pl.String,
            "model": pl.String,
            "spend_usd": pl.Float64,
        },
        orient="row",
    )


def test_compliance_survives_any_finite_spend() -> None:
    spend = _spend(
        [
            ("Huge", 1e17),
            ("Vast", 1e300),
            ("Max", 1.7e308),
            ("Max", 1.7e308),  # the sum overflows to inf
            ("Tiny", 1e-300),
            ("Normal", 1234.5),
        ]
    )
    budgets = [
        Budget(agent_type="*", daily_usd=1e9, monthly_usd=1e9),
        Budget(agent_type="Tiny", daily_usd=1e-300),
    ]
    frame = budget_compliance(spend, budgets, days=[date(2026, 11, 19)], now=NOW)
    day = frame.filter(pl.col("period") == "day")
    status = dict(zip(day["agent_type"], day["status"], strict=True))
    assert status == {
        "Huge": "breach",
        "Vast": "breach",
        "Max": "breach",
        "Tiny": "warning",  # at 100 % of a tiny cap
        "Normal": "ok",
    }
    detail = dict(zip(day["agent_type"], day["detail"], strict=True))
    assert detail["Huge"].startswith("Huge spent $1e+17 on 2026-11-19 against a daily cap of ")
    assert "$1,000,000,000.00" in detail["Huge"]
    assert "Normal spent $1,234.50" in detail["Normal"]
    assert "$inf" in detail["Max"]
    assert compliance_findings(frame).height > 0


def test_formats_read_any_number() -> None:
    assert usd(1234.5) == "$1,234.50" and usd(0.0123) == "$0.0123"
    assert usd(1e17) == "$1e+17" and usd(-1e300) == "$-1e+300" and usd(math.inf) == "$inf"
    assert dollars(1e17) == "$1e+17" and dollars(1234.4) == "$1,234"
    assert pct(0.25) == "25%" and pct(1e17) == "1e+19%"
    assert number(1e300) == "1e+300" and number(12.5) == "12.50"
    assert times(4095.2) == "4,095x" and times(1e303) == "1e+303x" and times(None) == "-"


# --- through the refresh and the CLI --------------------------------------------------------


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("fleet")
    paths = Paths.from_env(home)
    simulate(
        paths.landing, paths.simulator, agents=4, days=2, seed=3, start=FIRST,
        fmt="jsonl", cycles_per_agent_day=5,
    )  # fmt: skip
    ingest_landing(paths)
    return home


@pytest.fixture
def home(fleet: Path, paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    shutil.copytree(fleet, paths.home)
    policies = tmp_path / "policies"
    policies.mkdir()
    monkeypatch.setenv("AGENTOPS_POLICIES", str(policies))
    return paths


def _report(period: str) -> str:
    result = CliRunner().invoke(main, ["finops", "report", "--period", period])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.output


def test_a_reported_cost_of_1e17_is_refreshed_and_reported(home: Paths) -> None:
    policies = home.policies
    (policies / "budgets.yaml").write_text("budgets:\n  - agent_type: '*'\n    daily_usd: 1e9\n")
    ordinary = event(1, agent_type="FinanceAgent", cost_usd=5.0, ts="2026-11-19T10:00:00Z")
    write_jsonl(home.landing / "huge.jsonl", [ordinary])
    ingest_landing(home)
    # The telemetry edge quarantines such a cost, but a lake written by an older version or by
    # another engine (Spark, Trino) may hold one: FinOps must still not crash on it.
    DeltaTable(home.table_uri(AGENT_EVENTS)).update(
        predicate="event_id = 'ev-00000001'", updates={"cost_usd": "1e17"}
    )
    refresh.refresh_all(home, FIRST, LAST, now=NOW)
    stored = pl.read_delta(home.table_uri(EVENT_COSTS)).filter(pl.col("event_id") == "ev-00000001")
    assert stored["cost_usd"].item() == 1e17
    assert "$1e+17" in _report("day")
    _report("month")


def test_a_huge_price_is_refreshed_and_reported(home: Paths) -> None:
    # Costs that come from pricing, not from the producer: 1e20 USD per million tokens.
    (home.policies / "pricing.yaml").write_text(
        "models:\n  - model: '*'\n    input_mtok: 1e20\n    output_mtok: 1e20\n"
    )
    (home.policies / "budgets.yaml").write_text(
        "budgets:\n  - agent_type: '*'\n    daily_usd: 1e9\n    monthly_usd: 1e9\n"
    )
    refresh.refresh_all(home, FIRST, LAST, now=NOW)
    compliance = pl.read_delta(home.table_uri(BUDGET_COMPLIANCE))
    assert "breach" in set(compliance["status"])
    assert compliance["spend_usd"].max() > 1e19
    output = _report("month")
    assert "breach" in output and "e+" in output


def test_a_cap_of_1e17_stops_the_refresh_with_one_sentence(home: Paths) -> None:
    path = home.policies / "budgets.yaml"
    path.write_text("budgets:\n  - agent_type: '*'\n    daily_usd: 1e17\n")
    with pytest.raises(PolicyFileError) as raised:
        refresh.refresh_budget_compliance(home, FIRST, LAST, now=NOW)
    assert str(raised.value) == (
        f"{path}, line 3: 'daily_usd' must be at most 1,000,000,000 USD "
        "(leave it out for no cap), got '1e17'."
    )
