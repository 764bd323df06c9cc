"""A fresh home with nothing landed yet: `agentops run` succeeds and says what to do next."""

from __future__ import annotations

import os
import subprocess
import sys

from agentops_assets.storage.config import Paths


def _agentops(paths: Paths, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTOPS_HOME": str(paths.home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "agentops_assets", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_run_on_an_empty_home_passes_its_checks_and_points_at_simulate(paths: Paths) -> None:
    ran = _agentops(paths, "run")
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, output
    for absent in ("Traceback", "CatalogException", "failed", "BetaWarning"):
        assert absent not in output, output
    assert "agent_events:event_ids_unique" in output
    assert "ingested_files:records_accounted_for" in output
    assert "no telemetry yet" in output.lower()
    assert "agentops simulate" in output


def test_loading_the_definitions_prints_no_beta_warning() -> None:
    loaded = subprocess.run(
        [sys.executable, "-W", "default", "-c", "import agentops_assets.definitions"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "BetaWarning" not in loaded.stderr
