"""Alerts on drift, anomalies, budgets and coordination findings: a plain library (no Dagster).

``policies/alerts.yaml`` routes alerts to sinks (a JSONL file, a JSON webhook, Slack);
:func:`collect_alerts` turns the findings tables into alerts, :func:`deliver` sends each to its
sinks once, retrying failures with backoff, and records every delivery in ``alerts_sent``.

Example:
    >>> report = deliver(paths, collect_alerts(paths, first_day, last_day))
    >>> report.summary()
    '3 alerts: 3 delivered, 0 already delivered.'
"""

from agentops_assets.alerts.alert import Alert, delivery_key
from agentops_assets.alerts.collect import collect_alerts
from agentops_assets.alerts.deliver import DeliveryReport, SinkCounts, deliver
from agentops_assets.alerts.errors import AlertsError, AlertsPolicyError
from agentops_assets.alerts.ledger import ALERTS_SENT, LEDGER_SCHEMA
from agentops_assets.alerts.policy import (
    ALERTS_FILE,
    SOURCES,
    AlertsPolicy,
    Route,
    Sink,
    load_alerts_policy,
)
from agentops_assets.alerts.sinks import slack_payload, webhook_payload

__all__ = [
    "ALERTS_FILE",
    "ALERTS_SENT",
    "LEDGER_SCHEMA",
    "SOURCES",
    "Alert",
    "AlertsError",
    "AlertsPolicy",
    "AlertsPolicyError",
    "DeliveryReport",
    "Route",
    "Sink",
    "SinkCounts",
    "collect_alerts",
    "deliver",
    "delivery_key",
    "load_alerts_policy",
    "slack_payload",
    "webhook_payload",
]
