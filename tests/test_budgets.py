"""Budgets as policy as code (budgets.yaml) and budget compliance over daily spend."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from agentops_assets.finops.budgets import Budget, load_budgets
from agentops_assets.finops.compliance import (
    COMPLIANCE_SCHEMA,
    budget_compliance,
    compliance_findings,
)
from agentops_assets.storage.policy_file import PolicyFileError

# "Today" is 2026-11-21 and a quarter of it has elapsed.
NOW = datetime(2026, 11, 21, 6, tzinfo=UTC)
TODAY = date(2026, 11, 21)

SpendRow = tuple[date, str, str | None, str | None, float]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "budgets.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _spend(rows: list[SpendRow]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "day": pl.Date,
            "agent_type": pl.String,
            "provider": pl.String,
            "model": pl.String,
            "spend_usd": pl.Float64,
        },
        orient="row",
    )


def _every_day(first: date, last: date, agent_type: str, usd: float) -> list[SpendRow]:
    count = (last - first).days + 1
    return [(first + timedelta(days), agent_type, "openai", "gpt-4o", usd) for days in range(count)]


def _row(frame: pl.DataFrame, *, day: date, period: str, budget_id: str) -> dict[str, object]:
    rows = frame.filter(
        pl.col("day") == day, pl.col("period") == period, pl.col("budget_id") == budget_id
    ).to_dicts()
    assert len(rows) == 1, rows
    return rows[0]


# --- loading budgets.yaml -------------------------------------------------------------------


def test_a_valid_file_loads_in_order(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
budgets:
  - agent_type: FinanceAgent
    daily_usd: 40
    monthly_usd: 900
  - agent_type: FinanceAgent
    provider: Anthropic
    model: "claude-3-opus*"
    daily_usd: 5
    warn_at: 0.5
  - agent_type: "*"
    monthly_usd: 100.5
""",
    )
    finance, opus, default = load_budgets(path)
    assert finance == Budget(agent_type="FinanceAgent", daily_usd=40, monthly_usd=900)
    assert finance.warn_at == 0.8
    assert (opus.provider, opus.model, opus.daily_usd, opus.monthly_usd, opus.warn_at) == (
        "anthropic",
        "claude-3-opus*",
        5.0,
        None,
        0.5,
    )
    assert default.monthly_usd == 100.5
    assert [b.budget_id for b in (finance, opus, default)] == [
        "FinanceAgent",
        "FinanceAgent provider=anthropic model=claude-3-opus*",
        "*",
    ]


def test_a_missing_file_means_no_budgets(tmp_path: Path) -> None:
    assert load_budgets(tmp_path / "budgets.yaml") == []


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        pytest.param(
            "budgets:\n  - agent_type: A\n    daily_usd: -5\n",
            3,
            "'daily_usd' input should be greater than 0, got -5.",
            id="negative-cap",
        ),
        pytest.param(
            "budgets:\n  - agent_type: A\n    daily_usd: 5\n    warn_at: 1.5\n",
            4,
            "'warn_at' input should be less than 1, got 1.5.",
            id="warn-at-above-1",
        ),
        pytest.param(
            "budgets:\n  - agent_type: A\n    daily_usd: 5\n  - agent_type: B\n    warn_at: 0.5\n",
            4,
            "a budget needs daily_usd, monthly_usd or both.",
            id="no-cap",
        ),
        pytest.param(
            "budgets:\n  - agent_type: A\n    daily_usd: 5\n    weekly_usd: 20\n",
            4,
            "unknown key 'weekly_usd'.",
            id="unknown-key",
        ),
        pytest.param(
            "budgets:\n"
            "  - agent_type: A\n    model: gpt-4*\n    daily_usd: 5\n"
            "  - agent_type: B\n    daily_usd: 5\n"
            "  - agent_type: A\n    model: GPT-4*\n    monthly_usd: 50\n",
            7,
            "budget 'A model=GPT-4*' is already defined on line 2; merge the two entries.",
            id="duplicate-scope",
        ),
        pytest.param(
            "budgets:\n  - agent_type: A\n    daily_usd: [5\n",
            4,
            "is not valid YAML",
            id="bad-yaml",
        ),
        pytest.param(
            "budgets:\n  agent_type: A\n",
            2,
            "'budgets' must be a list of entries.",
            id="budgets-not-a-list",
        ),
    ],
)
def test_an_invalid_file_names_the_line(tmp_path: Path, text: str, line: int, problem: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PolicyFileError) as raised:
        load_budgets(path)
    assert raised.value.line == line
    assert problem in raised.value.problem
    assert str(raised.value).startswith(f"{path}, line {line}: ")


# --- compliance -----------------------------------------------------------------------------


def test_levels_give_ok_warning_and_breach() -> None:
    spend = _spend(
        [
            (date(2026, 11, 18), "FinanceAgent", "openai", "gpt-4o", 50.0),
            (date(2026, 11, 19), "FinanceAgent", "openai", "gpt-4o", 60.0),
            (date(2026, 11, 19), "FinanceAgent", "anthropic", "claude-3-haiku", 20.0),
            (date(2026, 11, 20), "FinanceAgent", "openai", "gpt-4o", 512.4),
        ]
    )
    budgets = [Budget(agent_type="FinanceAgent", daily_usd=300)]
    days = [date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)]
    frame = budget_compliance(spend, budgets, days=days, now=NOW)

    assert frame.schema == pl.Schema(COMPLIANCE_SCHEMA)
    assert frame.select("day", "period", "spend_usd", "status").rows() == [
        (date(2026, 11, 17), "day", 0.0, "ok"),  # no spend rows at all that day
        (date(2026, 11, 18), "day", 50.0, "ok"),
        (date(2026, 11, 19), "day", 80.0, "ok"),
        (date(2026, 11, 20), "day", 512.4, "breach"),
    ]
    breach = _row(frame, day=date(2026, 11, 20), period="day", budget_id="FinanceAgent")
    assert breach["detail"] == (
        "FinanceAgent spent $512.40 on 2026-11-20 against a daily cap of $300.00 (171%)."
    )
    assert breach["pct_of_cap"] == pytest.approx(512.4 / 300)
    assert breach["evaluated_at"] == NOW

    at_warn_level = budget_compliance(
        spend, [Budget(agent_type="FinanceAgent", daily_usd=100)], days=days[2:3], now=NOW
    )
    assert at_warn_level.select("spend_usd", "pct_of_cap", "status").row(0) == (
        80.0,
        0.8,
        "warning",
    )


def test_a_monthly_forecast_over_the_cap_warns() -> None:
    spend = _spend(_every_day(date(2026, 11, 1), date(2026, 11, 20), "FinanceAgent", 33.0))
    budgets = [Budget(agent_type="FinanceAgent", monthly_usd=900)]
    frame = budget_compliance(spend, budgets, days=[date(2026, 11, 20), TODAY], now=NOW)

    past = _row(frame, day=date(2026, 11, 20), period="month", budget_id="FinanceAgent")
    assert (past["spend_usd"], past["pct_of_cap"]) == (660.0, pytest.approx(660 / 900))
    assert (past["burn_rate_usd_per_day"], past["forecast_usd"]) == (33.0, 990.0)
    assert (past["period_start"], past["period_end"]) == (date(2026, 11, 1), date(2026, 11, 30))
    assert past["status"] == "warning"
    assert past["detail"] == (
        "FinanceAgent is forecast to spend $990.00 in November 2026 against a monthly cap "
        "of $900.00 (spent $660.00 by 2026-11-20)."
    )
    # Today has no spend yet; 20.25 days have elapsed and 9.75 remain.
    today = _row(frame, day=TODAY, period="month", budget_id="FinanceAgent")
    assert today["spend_usd"] == 660.0
    assert today["burn_rate_usd_per_day"] == pytest.approx(660 / 20.25)
    assert today["forecast_usd"] == pytest.approx(660 + 660 / 20.25 * 9.75)
    assert today["status"] == "warning"
    assert today["detail"].endswith("(spent $660.00 so far).")


def test_burn_rate_and_forecast_for_a_past_day_and_for_today() -> None:
    rows = _every_day(date(2026, 11, 1), date(2026, 11, 20), "FinanceAgent", 40.0)
    spend = _spend([*rows, (TODAY, "FinanceAgent", "openai", "gpt-4o", 10.0)])
    budgets = [Budget(agent_type="FinanceAgent", daily_usd=100, monthly_usd=2000)]
    frame = budget_compliance(spend, budgets, days=[date(2026, 11, 20), TODAY], now=NOW)

    columns = ["day", "period", "spend_usd", "burn_rate_usd_per_day", "forecast_usd", "status"]
    assert frame.select(columns).rows() == [
        # A past day is over: its forecast is what it spent.
        (date(2026, 11, 20), "day", 40.0, 40.0, 40.0, "ok"),
        # 800 over 20 elapsed days, 10 days left in the month after it.
        (date(2026, 11, 20), "month", 800.0, 40.0, 1200.0, "ok"),
        # 10 in the first quarter of today, 0.75 of the day left.
        (TODAY, "day", 10.0, 40.0, 40.0, "ok"),
        # 810 over 20.25 days, 9.75 days left.
        (TODAY, "month", 810.0, 40.0, 1200.0, "ok"),
    ]


def test_a_daily_forecast_over_the_cap_does_not_warn() -> None:
    spend = _spend([(TODAY, "FinanceAgent", "openai", "gpt-4o", 10.0)])
    budgets = [Budget(agent_type="FinanceAgent", daily_usd=30)]
    frame = budget_compliance(spend, budgets, days=[TODAY], now=NOW)
    assert frame.select("forecast_usd", "status").row(0) == (40.0, "ok")


def test_provider_and_model_scopes_count_only_their_spend() -> None:
    day = date(2026, 11, 20)
    spend = _spend(
        [
            (day, "FinanceAgent", "anthropic", "claude-3-opus-20240229", 5.0),
            (day, "FinanceAgent", "anthropic", "claude-3-5-sonnet", 2.0),
            (day, "FinanceAgent", "anthropic", "claude-3.5-haiku", 0.5),
            (day, "FinanceAgent", "openai", "gpt-4o", 10.0),
            (day, "FinanceAgent", "openai", "gpt-4-turbo", 4.0),
            (day, "FinanceAgent", "openai", None, 1.0),
            (day, "SupportAgent", "anthropic", "claude-3-opus-20240229", 100.0),
        ]
    )
    budgets = [
        Budget(agent_type="FinanceAgent", daily_usd=100),
        Budget(agent_type="FinanceAgent", provider="Anthropic", daily_usd=100),
        Budget(agent_type="FinanceAgent", model="CLAUDE-3-OPUS*", daily_usd=100),
        Budget(agent_type="FinanceAgent", model="claude-3.5*", daily_usd=100),
        Budget(agent_type="FinanceAgent", provider="openai", model="gpt-4?", daily_usd=100),
    ]
    frame = budget_compliance(spend, budgets, days=[day], now=NOW)
    assert frame.select("budget_id", "spend_usd").rows() == [
        ("FinanceAgent", 22.5),
        ("FinanceAgent model=CLAUDE-3-OPUS*", 5.0),
        # The dot is literal: claude-3-5-sonnet is not counted.
        ("FinanceAgent model=claude-3.5*", 0.5),
        ("FinanceAgent provider=anthropic", 7.5),
        # "?" is exactly one character, and a null model matches no glob.
        ("FinanceAgent provider=openai model=gpt-4?", 10.0),
    ]
    scoped = _row(frame, day=day, period="day", budget_id="FinanceAgent provider=anthropic")
    assert scoped["detail"] == (
        "FinanceAgent spent $7.50 on 2026-11-20 against a daily cap of $100.00 "
        "for anthropic models (8%)."
    )


def test_a_default_budget_expands_per_agent_type_unless_it_has_its_own() -> None:
    spend = _spend(
        [
            (date(2026, 10, 5), "RetiredAgent", "openai", "gpt-4o", 99.0),
            (date(2026, 11, 20), "FinanceAgent", "openai", "gpt-4o", 50.0),
            (date(2026, 11, 20), "SupportAgent", "anthropic", "claude-3-haiku", 20.0),
            (TODAY, "ResearchAgent", "openai", "gpt-4o", 3.0),
        ]
    )
    budgets = [
        Budget(agent_type="*", daily_usd=10),
        Budget(agent_type="FinanceAgent", daily_usd=100),
        Budget(agent_type="*", provider="anthropic", daily_usd=5),
    ]
    frame = budget_compliance(spend, budgets, days=[date(2026, 11, 20), TODAY], now=NOW)
    assert frame.select("day", "budget_id", "agent_type", "spend_usd", "status").rows() == [
        (date(2026, 11, 20), "FinanceAgent", "FinanceAgent", 50.0, "ok"),
        # FinanceAgent has its own type-wide cap but no anthropic one of its own.
        (
            date(2026, 11, 20),
            "FinanceAgent provider=anthropic (default *)",
            "FinanceAgent",
            0.0,
            "ok",
        ),
        (date(2026, 11, 20), "SupportAgent (default *)", "SupportAgent", 20.0, "breach"),
        (
            date(2026, 11, 20),
            "SupportAgent provider=anthropic (default *)",
            "SupportAgent",
            20.0,
            "breach",
        ),
        (TODAY, "FinanceAgent", "FinanceAgent", 0.0, "ok"),
        (TODAY, "FinanceAgent provider=anthropic (default *)", "FinanceAgent", 0.0, "ok"),
        # ResearchAgent's first spend this month is today; RetiredAgent spent only in October.
        (TODAY, "ResearchAgent (default *)", "ResearchAgent", 3.0, "ok"),
        (TODAY, "ResearchAgent provider=anthropic (default *)", "ResearchAgent", 0.0, "ok"),
        (TODAY, "SupportAgent (default *)", "SupportAgent", 0.0, "ok"),
        (TODAY, "SupportAgent provider=anthropic (default *)", "SupportAgent", 0.0, "ok"),
    ]


def test_the_month_period_restarts_on_the_first() -> None:
    spend = _spend(
        [
            (date(2026, 10, 30), "FinanceAgent", "openai", "gpt-4o", 60.0),
            (date(2026, 10, 31), "FinanceAgent", "openai", "gpt-4o", 70.0),
            (date(2026, 11, 1), "FinanceAgent", "openai", "gpt-4o", 30.0),
        ]
    )
    budgets = [Budget(agent_type="FinanceAgent", monthly_usd=1000)]
    days = [date(2026, 10, 31), date(2026, 11, 1)]
    frame = budget_compliance(spend, budgets, days=days, now=NOW)
    columns = ["period_start", "period_end", "spend_usd", "burn_rate_usd_per_day", "forecast_usd"]
    october, november = frame.select(columns).rows()
    # October is over at `now`: the forecast is what was spent.
    assert october == (date(2026, 10, 1), date(2026, 10, 31), 130.0, 130 / 31, 130.0)
    assert november == (date(2026, 11, 1), date(2026, 11, 30), 30.0, 30.0, 900.0)
    assert frame["detail"][0] == (
        "FinanceAgent spent $130.00 in October 2026 up to 2026-10-31 against a monthly cap "
        "of $1,000.00 (13%)."
    )


def test_findings_list_breaches_then_warnings_by_overspend() -> None:
    day = date(2026, 11, 20)
    amounts = {"A": 120.0, "B": 150.0, "C": 85.0, "D": 95.0, "E": 10.0}
    spend = _spend([(day, name, "openai", "gpt-4o", usd) for name, usd in amounts.items()])
    budgets = [Budget(agent_type="*", daily_usd=100)]
    frame = budget_compliance(spend, budgets, days=[day], now=NOW)
    findings = compliance_findings(frame)
    assert findings.select("agent_type", "status").rows() == [
        ("B", "breach"),
        ("A", "breach"),
        ("D", "warning"),
        ("C", "warning"),
    ]
    assert findings.schema == frame.schema


def test_no_budgets_or_no_days_give_an_empty_frame() -> None:
    spend = _spend([(TODAY, "FinanceAgent", "openai", "gpt-4o", 1.0)])
    budget = Budget(agent_type="FinanceAgent", daily_usd=1)
    for frame in (
        budget_compliance(spend, [], days=[TODAY], now=NOW),
        budget_compliance(spend, [budget], days=[], now=NOW),
    ):
        assert frame.is_empty()
        assert frame.schema == pl.Schema(COMPLIANCE_SCHEMA)


def test_spend_without_a_required_column_is_refused() -> None:
    spend = _spend([]).drop("provider")
    with pytest.raises(ValueError, match="lacks the column"):
        budget_compliance(spend, [Budget(agent_type="A", daily_usd=1)], days=[TODAY], now=NOW)
