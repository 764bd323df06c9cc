"""Chaos drills through the real pipeline: ingestion, the day's FinOps, drift, governance and
alerts, then the autonomy states, on a scratch copy of the home; and the weekly drill."""

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from agentops_assets.control.chaos import (
    SCENARIOS,
    Target,
    drill_row,
    last_day_events,
    record_drill,
    replay,
    scratch_copy,
    write_landing,
)
from agentops_assets.defs.resources import LakeResource
from agentops_assets.storage.config import Paths, environment

# Drills write their alerts to a file in the scratch home only: a drill never pages anyone.
_DRILL_ALERTS = """sinks:
  file:
    kind: jsonl
    path: alerts/alerts.jsonl
routes:
  - sources: [drift_finding, anomaly, budget, coordination, capability_violation]
    min_severity: warning
    sinks: [file]
"""


# The copy's runs log warnings only: the drill reports what matters itself.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class Drill:
    """One drill's outcome (the row appended to ``chaos_drills``) and its target."""

    row: dict[str, Any]
    target: Target


def run_drill(
    paths: Paths, scenario: str, *, seed: int = 0, report: Callable[[str], None] = print
) -> Drill:
    """Inject ``scenario`` into a scratch copy of ``paths``, run the pipeline there, check the
    reaction, and append the outcome to ``chaos_drills`` of ``paths``.

    Raises:
        DrillError: The home has nothing this scenario can be injected into.
    """
    chosen = SCENARIOS[scenario]
    started = datetime.now(UTC)
    folder = Path(tempfile.mkdtemp(prefix=f"agentops-chaos-{scenario}-"))
    try:
        report(f"copying {paths.home} to a scratch home (the live tables are not touched)")
        scratch = scratch_copy(paths, folder / "home")
        source_day, events = last_day_events(scratch)
        target = chosen.choose(events, source_day, seed, scratch)
        records = chosen.fault(replay(events, target, f"{scenario}:{started.isoformat()}"), target)
        injected = datetime.now(UTC)
        write_landing(scratch, f"chaos-{scenario}", records)
        report(
            f"injected {scenario} into {target.label}: {len(records):,} events of "
            f"{source_day} replayed as {target.day} ({chosen.injects})"
        )
        with _drill_env(paths, scratch, folder):
            _pipeline(scratch, target.day, report)
        reaction = chosen.check(scratch, target, injected)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    row = drill_row(scenario, target, started, injected, reaction)
    record_drill(paths, row)
    return Drill(row, target)


@contextmanager
def _drill_env(live: Paths, scratch: Paths, folder: Path) -> Iterator[None]:
    """The scratch home, and the live policies with an alerts file that writes only to it."""
    policies = folder / "policies"
    policies.mkdir()
    for path in live.policies.iterdir():
        if path.suffix in (".yaml", ".rego"):
            shutil.copy2(path, policies / path.name)
    (policies / "alerts.yaml").write_text(_DRILL_ALERTS)
    with environment(
        AGENTOPS_HOME=str(scratch.home),
        AGENTOPS_LAKE_URI=scratch.lake_uri,
        AGENTOPS_POLICIES=str(policies),
    ):
        yield


def _pipeline(scratch: Paths, day: date, report: Callable[[str], None]) -> None:
    from agentops_assets.definitions import defs
    from agentops_assets.telemetry.ingest import ingest_landing

    ingested = ingest_landing(scratch)
    report(f"ingested {ingested.new_rows:,} events; running the day's pipeline and control")
    with dg.DagsterInstance.ephemeral() as instance:
        for job, tags in (
            ("daily_job", {"dagster/partition": day.isoformat()}),
            ("control_job", {}),
        ):
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, raise_on_error=False, tags=tags, run_config=_QUIET
            )
            if not result.success:
                failure = next((e for e in result.all_events if e.is_step_failure), None)
                message = failure.step_failure_data.error.message if failure else "failed"
                report(f"{job} failed on the scratch home: {message.strip()[:300]}")


@dg.op(config_schema={"scenarios": dg.Field([str], default_value=list(SCENARIOS))})
def chaos_drills_op(context: dg.OpExecutionContext, lake: LakeResource) -> None:
    """Every configured scenario once, each on its own scratch copy; fails when one did not
    get the reaction its policies say."""
    failed = []
    for scenario in context.op_config["scenarios"]:
        drill = run_drill(lake.paths, scenario, report=context.log.info)
        row = drill.row
        context.log.info(
            f"{scenario}: {'passed' if row['passed'] else 'FAILED'} ({row['detected_by']}, "
            f"{row['seconds_to_react']:.0f} s): {row['detail']}"
        )
        if not row["passed"]:
            failed.append(scenario)
    if failed:
        raise dg.Failure(description=f"no expected reaction to: {', '.join(failed)}")


@dg.job(description="Chaos drills on scratch copies of the home; results in chaos_drills.")
def chaos_job() -> None:
    chaos_drills_op()


chaos_weekly_schedule = dg.ScheduleDefinition(
    job=chaos_job,
    cron_schedule="0 4 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every Sunday at 04:00 UTC, every chaos scenario (off by default).",
)
