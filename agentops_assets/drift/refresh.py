"""Refresh the drift tables for a range of days: read the lake, detect, replace partitions."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from agentops_assets.drift import anomalies, coordination
from agentops_assets.drift.detect import DriftResult, detect_drift
from agentops_assets.drift.inputs import read_cycles
from agentops_assets.drift.policy import DriftPolicy, load_drift_policy
from agentops_assets.drift.tables import (
    BEHAVIOR_ANOMALIES,
    BEHAVIOR_BASELINES,
    COORDINATION_FINDINGS,
    DRIFT_FILE,
    DRIFT_FINDINGS,
)
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths


def drift_policy(paths: Paths) -> DriftPolicy:
    """``drift.yaml`` from the policies folder, else the shipped one.

    Raises:
        PolicyFileError: The file is invalid; the message names its line.
    """
    return load_drift_policy(paths.policy_file(DRIFT_FILE))


def refresh_drift(
    paths: Paths, first: date, last: date, policy: DriftPolicy | None = None
) -> DriftResult:
    """``behavior_baselines`` and ``drift_findings`` for ``[first, last]``, written and returned."""
    policy = policy or drift_policy(paths)
    cycles = read_cycles(paths, first - timedelta(days=policy.window_days), last)
    result = detect_drift(cycles, first, last, policy)
    replace_days(paths, BEHAVIOR_BASELINES, result.baselines, first, last)
    replace_days(paths, DRIFT_FINDINGS, result.findings, first, last)
    return result


def refresh_anomalies(paths: Paths, first: date, last: date) -> pl.DataFrame:
    """``behavior_anomalies`` for ``[first, last]``, written and returned."""
    cycles, actions = anomalies.read_inputs(paths, first, last)
    found = anomalies.detect_anomalies(cycles, actions, first, last)
    replace_days(paths, BEHAVIOR_ANOMALIES, found, first, last)
    return found


def refresh_coordination(paths: Paths, first: date, last: date) -> pl.DataFrame:
    """``coordination_findings`` for ``[first, last]``, written and returned."""
    margin = coordination.MARGIN
    events = coordination.read_events(paths, first - margin, last + margin)
    found = coordination.find_coordination(events, first, last)
    replace_days(paths, COORDINATION_FINDINGS, found, first, last)
    return found


def replace_days(paths: Paths, table: str, frame: pl.DataFrame, first: date, last: date) -> None:
    """Replace the ``day`` partitions ``[first, last]`` of ``table`` with ``frame``."""
    with lake.writer_lock(paths, table):
        lake.replace_range(
            paths.table_uri(table),
            frame,
            column="day",
            first=first,
            last=last,
            metadata={"refresh": f"{first.isoformat()}..{last.isoformat()}"},
        )
