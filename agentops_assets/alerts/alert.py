"""One alert: a finding worth telling someone about, with a stable key and one sentence."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson


@dataclass(frozen=True)
class Alert:
    """A finding to deliver.

    Attributes:
        key: Stable identity of the finding, the same on every rerun (e.g. a drift
            ``finding_id`` and its severity, so an escalation to critical is a new alert).
        source: ``drift_finding``, ``anomaly``, ``budget`` or ``coordination``.
        severity: ``warning`` or ``critical``.
        day: The UTC day the finding is about.
        agent_type: The agent type concerned, if any.
        title: A few words, e.g. ``"Drift (critical): FinanceAgent confidence"``.
        summary: The one sentence a person reads.
        fields: The finding's own columns, for receivers that want them (JSON-safe values).
    """

    key: str
    source: str
    severity: str
    day: date
    agent_type: str | None
    title: str
    summary: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The alert as JSON, to store in the ledger so a retry needs nothing else."""
        return orjson.dumps(
            {
                "key": self.key,
                "source": self.source,
                "severity": self.severity,
                "day": self.day.isoformat(),
                "agent_type": self.agent_type,
                "title": self.title,
                "summary": self.summary,
                "fields": dict(self.fields),
            },
            default=str,
        ).decode()

    @classmethod
    def from_json(cls, text: str) -> Alert:
        """The alert :meth:`to_json` wrote."""
        data = orjson.loads(text)
        return cls(
            key=data["key"],
            source=data["source"],
            severity=data["severity"],
            day=date.fromisoformat(data["day"]),
            agent_type=data["agent_type"],
            title=data["title"],
            summary=data["summary"],
            fields=data.get("fields") or {},
        )


def delivery_key(alert_key: str, sink: str) -> str:
    """The id of delivering one alert to one sink: the ledger's key and the Idempotency-Key."""
    return hashlib.sha256(f"{alert_key}\x1f{sink}".encode()).hexdigest()[:32]
