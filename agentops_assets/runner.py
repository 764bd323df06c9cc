"""Materialize the asset graph in-process, recorded in the local Dagster instance."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from agentops_assets.config import Paths


@dataclass
class RunOutcome:
    """What one in-process run did."""

    run_id: str
    success: bool
    seconds: float
    lines: list[tuple[str, str]] = field(default_factory=list)  # (asset or check, summary)
    error: str | None = None


# Nothing leaves the machine at run time, Dagster's usage statistics included; writers of one
# lake table take turns across runs (the concurrency pool on the writing assets).
DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""


def prepare_dagster_home(paths: Paths) -> Path:
    """``$AGENTOPS_HOME/dagster`` with a ``dagster.yaml``; points ``DAGSTER_HOME`` at it."""
    home = paths.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["AGENTOPS_HOME"] = str(paths.home)
    return home


def materialize_all(paths: Paths) -> RunOutcome:
    """Materialize every asset (and run its checks) with ``$AGENTOPS_HOME/dagster`` as home."""
    prepare_dagster_home(paths)
    import dagster as dg

    from agentops_assets.definitions import defs

    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        job = defs.resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            # Assets log their progress at INFO; Dagster's own step events are DEBUG.
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )
    outcome = RunOutcome(result.run_id, result.success, time.perf_counter() - started)
    for event in result.all_events:
        if event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            outcome.lines.append(
                (materialization.asset_key.to_user_string(), _summary(materialization.metadata))
            )
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            check = event.event_specific_data
            verdict = "passed" if check.passed else f"FAILED ({check.severity.value.lower()})"
            name = f"{check.asset_key.to_user_string()}:{check.check_name}"
            outcome.lines.append((name, f"{verdict}  {_summary(check.metadata)}"))
        elif event.is_step_failure:
            outcome.error = str(event.step_failure_data.error.message).strip()
    return outcome


def _summary(metadata) -> str:
    parts = []
    for key, value in metadata.items():
        raw = getattr(value, "value", value)
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            parts.append(f"{key}={raw:,}")
        elif isinstance(raw, str) and "\n" not in raw and len(raw) < 60:
            parts.append(f"{key}={raw}")
    return ", ".join(parts)
