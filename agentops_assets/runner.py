"""Materialize the asset graph in-process, recorded in the local Dagster instance."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from agentops_assets.config import Paths


@dataclass
class RunOutcome:
    """What the in-process runs of one ``materialize_all`` did."""

    run_ids: list[str] = field(default_factory=list)
    success: bool = True
    seconds: float = 0.0
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
    """Materialize every asset (and run its checks) with ``$AGENTOPS_HOME/dagster`` as home.

    Two runs, both kept in the instance's history: the unpartitioned assets (ingestion,
    memory), then the daily-partitioned FinOps assets over every day that has telemetry, as
    one single-run backfill.
    """
    prepare_dagster_home(paths)
    import dagster as dg

    from agentops_assets.definitions import defs

    started = time.perf_counter()
    outcome = RunOutcome()
    # Assets log their progress at INFO; Dagster's own step events are DEBUG.
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    with dg.DagsterInstance.get() as instance:
        unpartitioned = [
            spec.key for spec in defs.resolve_all_asset_specs() if spec.partitions_def is None
        ]
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance,
            raise_on_error=False,
            asset_selection=unpartitioned,
            run_config=run_config,
        )
        _collect(result, outcome)
        days = finops_days(paths)
        if result.success and days:
            result = defs.resolve_job_def("finops_job").execute_in_process(
                instance=instance,
                raise_on_error=False,
                tags={
                    "dagster/asset_partition_range_start": days[0].isoformat(),
                    "dagster/asset_partition_range_end": days[1].isoformat(),
                },
                run_config=run_config,
            )
            _collect(result, outcome)
    outcome.seconds = time.perf_counter() - started
    return outcome


def finops_days(paths: Paths) -> tuple[date, date] | None:
    """The days with telemetry, within the FinOps partitions (from their start to today)."""
    from agentops_assets.defs.finops.partitions import PARTITIONS_START
    from agentops_assets.finops.refresh import event_date_range

    span = event_date_range(paths)
    if span is None:
        return None
    first = max(span[0], date.fromisoformat(PARTITIONS_START))
    last = min(span[1], datetime.now(UTC).date())
    return (first, last) if first <= last else None


def _collect(result, outcome: RunOutcome) -> None:
    outcome.run_ids.append(result.run_id)
    outcome.success = outcome.success and result.success
    seen: set[str] = set()
    for event in result.all_events:
        if event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            name = materialization.asset_key.to_user_string()
            if name in seen:  # a range run repeats the metadata on each day's partition
                continue
            seen.add(name)
            outcome.lines.append((name, _summary(materialization.metadata)))
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            check = event.event_specific_data
            verdict = "passed" if check.passed else f"FAILED ({check.severity.value.lower()})"
            name = f"{check.asset_key.to_user_string()}:{check.check_name}"
            outcome.lines.append((name, f"{verdict}  {_summary(check.metadata)}"))
        elif event.is_step_failure:
            outcome.error = str(event.step_failure_data.error.message).strip()


def _summary(metadata) -> str:
    parts = []
    for key, value in metadata.items():
        raw = getattr(value, "value", value)
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            parts.append(f"{key}={raw:,}")
        elif isinstance(raw, str) and "\n" not in raw and len(raw) < 60:
            parts.append(f"{key}={raw}")
    return ", ".join(parts)
