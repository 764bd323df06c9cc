"""The chaos drills that drift detection answers: a broken tool API and a corrupted context.

Drift compares a day with the days before it, so these need a home with a baseline: nine days
of a small fleet (drift's minimum history is seven), run through `agentops run`.
"""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pytest
from click.testing import CliRunner

from agentops_assets.cli.main import main
from agentops_assets.control.chaos import CHAOS_DRILLS
from agentops_assets.storage.config import Paths
from tests.test_chaos import drilled_home

DAYS = 9


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paths]:
    yield from drilled_home(tmp_path_factory.mktemp("chaos-drift"), days=DAYS, seed=42)


@pytest.mark.parametrize(
    ("scenario", "metric"),
    [("broken_tool_api", "tool_error_rate"), ("corrupted_context", "context_defect_rate")],
)
def test_a_drift_drill_is_found_by_its_metric_and_alerted(
    home: Paths, scenario: str, metric: str
) -> None:
    result = CliRunner().invoke(
        main, ["chaos", "run", scenario], env={"AGENTOPS_HOME": str(home.home)}
    )
    assert result.exit_code == 0, result.output
    assert "reacted as expected" in result.output
    row = pl.read_delta(home.table_uri(CHAOS_DRILLS)).sort("finished_at").row(-1, named=True)
    assert row["scenario"] == scenario and row["passed"]
    assert row["detected_by"] == f"drift_findings ({metric})"
    assert row["alerts"] >= 1
    assert 0 < row["seconds_to_react"] < 600
