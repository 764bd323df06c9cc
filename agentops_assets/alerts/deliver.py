"""Deliver alerts to the sinks their routes name, each exactly once per sink across reruns.

One run, under the ``alerts_sent`` writer lock: read the ledger, send what is due (new
alerts, and failed or pending deliveries whose backoff has passed, even of alerts this run did
not collect), then merge every change in one commit, also when the run is interrupted
half-way. A crash between sending and recording is the one way an alert can go out twice: the
``Idempotency-Key`` header lets a receiver drop the repeat, and the JSONL sink drops it itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from agentops_assets.alerts.alert import Alert, delivery_key
from agentops_assets.alerts.ledger import ALERTS_SENT, read_ledger, write_ledger
from agentops_assets.alerts.policy import ALERTS_FILE, AlertsPolicy, load_alerts_policy
from agentops_assets.alerts.sinks import Outcome, open_sender
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths

logger = logging.getLogger(__name__)

# After this many failures in a row that say "the sink is down", the rest wait for a later run
# instead of each costing a timeout now.
_TRIP_AFTER: Final = 3


@dataclass
class SinkCounts:
    """What happened at one sink in one run."""

    kind: str = ""
    delivered: int = 0
    failed: int = 0
    not_configured: int = 0
    pending: int = 0  # due but left for the next run (per-run cap, or the sink looked down)
    already_delivered: int = 0
    not_due: int = 0  # failed before, waiting out its backoff
    unrouted: int = 0  # undelivered in the ledger, but no route sends it here any more
    last_error: str | None = None


@dataclass
class DeliveryReport:
    """The outcome of one :func:`deliver` run, per sink."""

    alerts: int = 0
    unrouted: int = 0  # alerts no route sends anywhere
    sinks: dict[str, SinkCounts] = field(default_factory=dict)

    def at(self, sink: str) -> SinkCounts:
        """The counts of ``sink`` (created empty on first use)."""
        return self.sinks.setdefault(sink, SinkCounts())

    def total(self, status: str) -> int:
        """One count summed over the sinks, e.g. ``total("delivered")``."""
        return sum(getattr(counts, status) for counts in self.sinks.values())

    def to_rows(self) -> list[dict[str, Any]]:
        """One row per sink, for a metadata table or the CLI."""
        return [{"sink": name, **asdict(counts)} for name, counts in sorted(self.sinks.items())]

    def summary(self) -> str:
        """One sentence, e.g. ``"12 alerts: 11 delivered, 1 failed, 30 already delivered."``."""
        parts = [
            f"{self.total(status)} {status.replace('_', ' ')}"
            for status in ("delivered", "failed", "not_configured", "pending", "not_due")
            if self.total(status)
        ]
        parts.append(f"{self.total('already_delivered')} already delivered")
        return f"{self.alerts} alerts: {', '.join(parts)}."


@dataclass
class _Job:
    alert: Alert
    sink: str
    key: str
    row: dict[str, Any] | None


def deliver(
    paths: Paths,
    alerts: Sequence[Alert],
    *,
    now: datetime | None = None,
    policy: AlertsPolicy | None = None,
    environ: Mapping[str, str] | None = None,
) -> DeliveryReport:
    """Send each alert to its sinks once, retry what failed before, and record it all.

    A sink failing, or lacking its URL, never raises: the delivery is recorded as failed with
    the reason (scrubbed of URLs) and retried on a later run.

    Args:
        paths: Where the lake and ``$AGENTOPS_HOME`` are.
        alerts: Usually from :func:`~agentops_assets.alerts.collect.collect_alerts`.
        now: The time of the run (naive means UTC); decides which retries are due.
        policy: The routes and sinks; default ``paths.policy_file("alerts.yaml")``.
        environ: Where sink URLs are looked up; default ``os.environ``.

    Returns:
        Counts per sink.

    Raises:
        AlertsPolicyError: The policy file is invalid.
    """
    policy = policy or load_alerts_policy(paths.policy_file(ALERTS_FILE))
    moment = datetime.now(UTC) if now is None else _utc(now)
    report = DeliveryReport()
    with lake.writer_lock(paths, ALERTS_SENT):
        ledger = read_ledger(paths)
        jobs = _plan(alerts, policy, ledger, moment, report)
        changed: dict[str, dict[str, Any]] = {}
        try:
            for sink, sink_jobs in jobs.items():
                _send(paths, policy, environ, sink, sink_jobs, moment, report, changed)
        finally:
            write_ledger(paths, changed.values())
    for name, counts in report.sinks.items():
        counts.kind = policy.sinks[name].kind if name in policy.sinks else "removed"
    for name, counts in report.sinks.items():
        if counts.failed or counts.not_configured:
            logger.warning(
                "Alerts to sink '%s': %d failed, %d not configured; last error: %s",
                name,
                counts.failed,
                counts.not_configured,
                counts.last_error,
            )
    return report


def _plan(
    alerts: Sequence[Alert],
    policy: AlertsPolicy,
    ledger: dict[str, dict[str, Any]],
    now: datetime,
    report: DeliveryReport,
) -> dict[str, list[_Job]]:
    """The due deliveries per sink, retries first (oldest due first), then new ones."""
    retries: list[_Job] = []
    fresh: list[_Job] = []
    seen: set[str] = set()
    unique = {alert.key: alert for alert in alerts}
    report.alerts = len(unique)
    for alert in unique.values():
        sinks = policy.sinks_for(alert.source, alert.severity, alert.agent_type)
        if not sinks:
            report.unrouted += 1
        for sink in sinks:
            key = delivery_key(alert.key, sink)
            seen.add(key)
            row = ledger.get(key)
            if _counted(row, sink, now, report):
                continue
            (retries if row is not None else fresh).append(_Job(alert, sink, key, row))
    for key, row in ledger.items():
        if key in seen or row["status"] == "delivered":
            continue
        alert = Alert.from_json(row["alert"])
        sink = row["sink"]
        if sink not in policy.sinks_for(alert.source, alert.severity, alert.agent_type):
            report.at(sink).unrouted += 1
            continue
        if not _counted(row, sink, now, report):
            retries.append(_Job(alert, sink, key, row))
    retries.sort(key=lambda job: job.row["next_attempt_at"] if job.row else now)
    jobs: dict[str, list[_Job]] = {}
    for job in [*retries, *fresh]:
        jobs.setdefault(job.sink, []).append(job)
    return jobs


def _counted(row: dict[str, Any] | None, sink: str, now: datetime, report: DeliveryReport) -> bool:
    """Count a delivery that is not due (done, or backing off); ``False`` when it is due."""
    if row is None:
        return False
    if row["status"] == "delivered":
        report.at(sink).already_delivered += 1
        return True
    due = row["next_attempt_at"]
    if due is not None and due > now:
        report.at(sink).not_due += 1
        return True
    return False


def _send(
    paths: Paths,
    policy: AlertsPolicy,
    environ: Mapping[str, str] | None,
    sink: str,
    jobs: list[_Job],
    now: datetime,
    report: DeliveryReport,
    changed: dict[str, dict[str, Any]],
) -> None:
    config = policy.sinks[sink]
    counts = report.at(sink)
    sender = open_sender(sink, config, paths=paths, environ=environ)
    attempted = down = 0
    for job in jobs:
        if attempted >= config.max_per_run or down >= _TRIP_AFTER:
            counts.pending += 1
            if job.row is None:
                changed[job.key] = _row(job, config.kind, now, status="pending")
            continue
        outcome = sender.send(job.alert, job.key, now)
        if outcome.not_configured:
            counts.not_configured += 1
            counts.last_error = outcome.error
            changed[job.key] = _row(job, config.kind, now, status="failed", error=outcome.error)
            continue
        attempted += 1
        changed[job.key] = _attempted(job, config.kind, now, outcome, policy)
        if outcome.delivered:
            counts.delivered += 1
            down = 0
        else:
            counts.failed += 1
            counts.last_error = outcome.error
            down = down + 1 if outcome.transient else 0


def _attempted(
    job: _Job, kind: str, now: datetime, outcome: Outcome, policy: AlertsPolicy
) -> dict[str, Any]:
    attempts = (job.row["attempts"] if job.row else 0) + 1
    first = (job.row or {}).get("first_attempt_at") or now
    if outcome.delivered:
        return _row(job, kind, now, status="delivered", attempts=attempts, first=first, last=now)
    return _row(
        job,
        kind,
        now,
        status="failed",
        attempts=attempts,
        first=first,
        last=now,
        next_at=now + policy.retry.delay(attempts),
        error=outcome.error,
    )


def _row(
    job: _Job,
    kind: str,
    now: datetime,
    *,
    status: str,
    attempts: int | None = None,
    first: datetime | None = None,
    last: datetime | None = None,
    next_at: datetime | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The ledger row of ``job`` after this run; a delivery not attempted keeps its attempts."""
    before = job.row or {}
    alert = job.alert
    if status != "delivered" and next_at is None:
        next_at = now  # due again on the next run
    return {
        "delivery_key": job.key,
        "alert_key": alert.key,
        "sink": job.sink,
        "sink_kind": kind,
        "source": alert.source,
        "severity": alert.severity,
        "day": alert.day,
        "agent_type": alert.agent_type,
        "status": status,
        "attempts": attempts if attempts is not None else before.get("attempts", 0),
        "recorded_at": before.get("recorded_at") or now,
        "first_attempt_at": first or before.get("first_attempt_at"),
        "last_attempt_at": last or before.get("last_attempt_at"),
        "next_attempt_at": None if status == "delivered" else next_at,
        "delivered_at": now if status == "delivered" else None,
        "last_error": error,
        "summary": alert.summary,
        "alert": alert.to_json(),
    }


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
