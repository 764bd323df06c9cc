"""Alerts: routes from alerts.yaml, exactly-once delivery recorded in alerts_sent, retries.

Real Delta tables on tmp_path and a real HTTP server on a loopback port; nothing is mocked.
"""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest

from agentops_assets.alerts import (
    ALERTS_SENT,
    Alert,
    AlertsPolicy,
    AlertsPolicyError,
    collect_alerts,
    deliver,
    delivery_key,
    load_alerts_policy,
    slack_payload,
)
from agentops_assets.drift.tables import (
    ANOMALIES_SCHEMA,
    BEHAVIOR_ANOMALIES,
    DRIFT_FINDINGS,
    FINDINGS_SCHEMA,
)
from agentops_assets.finops.budgets import Budget
from agentops_assets.finops.compliance import budget_compliance
from agentops_assets.finops.tables import BUDGET_COMPLIANCE
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
DAY = date(2026, 11, 19)
TOKEN = "tok-S3CRET-4242"
URL_ENV = "AGENTOPS_TEST_ALERT_URL"


# --- a real webhook receiver -----------------------------------------------------------------


class Receiver:
    """An HTTP server in a thread that answers 500 to its first ``fail_first`` requests.

    The 500s carry the request path and query in their reason phrase, as a careless proxy
    might: the token must still never reach a table or a log.
    """

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.requests: list[dict[str, object]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                )
                if len(receiver.requests) <= receiver.fail_first:
                    self.send_response(500, f"failing {self.path}")
                    self.end_headers()
                else:
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/hooks/T0001/B0002?token={TOKEN}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(fail_first=2)
    yield server
    server.close()


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/T0001/B0002?token={TOKEN}"


# --- findings written to real Delta tables ---------------------------------------------------


def _finding(n: int, *, severity: str = "critical", day: date = DAY) -> dict[str, object]:
    return {
        "day": day,
        "agent_type": "FinanceAgent",
        "agent_id": None,
        "metric": "confidence",
        "baseline_value": 0.84,
        "current_value": 0.64 - n / 100,
        "change_pct": -24.0,
        "test": "ks",
        "statistic": 0.4,
        "p_value": 1e-7,
        "effect_size": 1.3,
        "severity": severity,
        "detail": f"FinanceAgent confidence fell from 0.84 to 0.{64 - n} (-24 %) on {day} "
        "against the 14 days before; p < 1e-6.",
        "finding_id": f"finding-{n}",
    }


def _write_findings(paths: Paths, rows: list[dict[str, object]]) -> None:
    frame = pl.DataFrame(rows, schema=FINDINGS_SCHEMA)
    lake.append(paths.table_uri(DRIFT_FINDINGS), frame, partition_by=["day"])


def _write_budget_rows(paths: Paths) -> pl.DataFrame:
    """Compliance of two days computed by the FinOps code: a breach and a warning each day."""
    spend = pl.DataFrame(
        [
            (date(2026, 11, 18), "FinanceAgent", "openai", "gpt-4o", 40.0),  # cap 30: breach
            (date(2026, 11, 18), "OpsAgent", "openai", "gpt-4o", 26.0),  # 87 %: warning
            (date(2026, 11, 18), "SupportAgent", "openai", "gpt-4o", 1.0),  # ok
            (date(2026, 11, 19), "FinanceAgent", "openai", "gpt-4o", 45.0),
            (date(2026, 11, 19), "OpsAgent", "openai", "gpt-4o", 25.0),
            (date(2026, 11, 19), "SupportAgent", "openai", "gpt-4o", 1.0),
        ],
        schema=["day", "agent_type", "provider", "model", "spend_usd"],
        orient="row",
    )
    budgets = [
        Budget(agent_type="FinanceAgent", daily_usd=30),
        Budget(agent_type="OpsAgent", daily_usd=30),
        Budget(agent_type="SupportAgent", daily_usd=4, monthly_usd=10_000),
    ]
    frame = budget_compliance(spend, budgets, days=[date(2026, 11, 18), date(2026, 11, 19)], now=T0)
    lake.append(paths.table_uri(BUDGET_COMPLIANCE), frame, partition_by=["day"])
    return frame


def _write_anomalies(paths: Paths, count: int) -> None:
    rows = [
        {
            "day": DAY,
            "trace_id": f"tr-{rank:04d}",
            "agent_id": f"kyc-agent-{rank:02d}",
            "agent_type": "KYCAgent",
            "started_at": datetime(2026, 11, 19, 9, rank, tzinfo=UTC),
            "score": 0.9 - rank / 100,
            "rank": rank,
            "reasons": f"{30 + rank} tool calls (baseline p99: 4)",
            "unseen_actions": ["bulk_export_customers"] if rank == 1 else [],
        }
        for rank in range(1, count + 1)
    ]
    frame = pl.DataFrame(rows, schema=ANOMALIES_SCHEMA)
    lake.append(paths.table_uri(BEHAVIOR_ANOMALIES), frame, partition_by=["day"])


def _ledger(paths: Paths) -> pl.DataFrame:
    return pl.read_delta(paths.table_uri(ALERTS_SENT))


def _policy(tmp_path: Path, text: str, name: str = "alerts.yaml") -> AlertsPolicy:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_alerts_policy(path)


WEBHOOK_POLICY = f"""
sinks:
  hook:
    kind: webhook
    url_env: {URL_ENV}
routes:
  - sources: [drift_finding]
    sinks: [hook]
"""


# --- delivery ----------------------------------------------------------------------------------


def test_a_webhook_failing_twice_gets_the_alert_exactly_once(
    paths: Paths, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(URL_ENV, receiver.url)
    policy = _policy(tmp_path, WEBHOOK_POLICY)
    _write_findings(paths, [_finding(1)])
    alerts = collect_alerts(paths, DAY, DAY, policy=policy)
    assert [a.key for a in alerts] == ["drift_finding:finding-1:critical"]
    key = delivery_key(alerts[0].key, "hook")

    first = deliver(paths, alerts, now=T0, policy=policy)
    assert first.at("hook").failed == 1
    row = _ledger(paths).row(0, named=True)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert row["next_attempt_at"] == T0 + timedelta(seconds=60)
    # The receiver's reason phrase quotes the path and the token; the stored error does not.
    assert row["last_error"] == "HTTP 500 failing <url>"

    # A rerun before the backoff has passed sends nothing.
    early = deliver(paths, alerts, now=T0 + timedelta(seconds=30), policy=policy)
    assert early.at("hook").not_due == 1
    assert len(receiver.requests) == 1

    second_at = T0 + timedelta(seconds=61)
    second = deliver(paths, alerts, now=second_at, policy=policy)
    assert second.at("hook").failed == 1
    row = _ledger(paths).row(0, named=True)
    assert row["attempts"] == 2
    assert row["next_attempt_at"] == second_at + timedelta(seconds=120)  # doubled

    # The retry is driven by the ledger: a run that collected nothing still sends it.
    third_at = second_at + timedelta(seconds=121)
    third = deliver(paths, [], now=third_at, policy=policy)
    assert third.at("hook").delivered == 1
    for later in (third_at + timedelta(hours=1), third_at + timedelta(days=3)):
        again = deliver(
            paths, collect_alerts(paths, DAY, DAY, policy=policy), now=later, policy=policy
        )
        assert again.at("hook").already_delivered == 1
        assert again.total("delivered") == again.total("failed") == 0

    assert len(receiver.requests) == 3  # two 500s, one 200, nothing after
    assert {r["headers"]["Idempotency-Key"] for r in receiver.requests} == {key}
    body = receiver.requests[-1]["body"]
    assert body["alert_key"] == alerts[0].key
    assert body["severity"] == "critical"
    assert body["summary"].startswith("FinanceAgent confidence fell")
    ledger = _ledger(paths)
    assert ledger.height == 1
    row = ledger.row(0, named=True)
    assert row["status"] == "delivered"
    assert row["attempts"] == 3
    assert row["first_attempt_at"] == T0
    assert row["last_attempt_at"] == row["delivered_at"] == third_at
    assert row["next_attempt_at"] is None
    assert TOKEN not in ledger.write_csv()


def test_the_jsonl_sink_gets_each_alert_once_across_reruns(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTOPS_POLICIES", raising=False)
    _write_findings(paths, [_finding(1), _finding(2, severity="warning")])
    compliance = _write_budget_rows(paths)
    alerts = collect_alerts(paths, date(2026, 11, 18), DAY)
    sources = sorted(a.source for a in alerts)
    # Two breaches (FinanceAgent each day) and two warnings (OpsAgent each day).
    assert compliance.filter(pl.col("status") != "ok").height == 4
    assert sources == ["budget"] * 4 + ["drift_finding"] * 2
    breach = next(a for a in alerts if a.source == "budget" and a.severity == "critical")
    assert breach.summary.startswith("Budget breach: FinanceAgent spent $40.00 on 2026-11-18")

    for hours in range(3):
        report = deliver(
            paths, collect_alerts(paths, date(2026, 11, 18), DAY), now=T0 + timedelta(hours=hours)
        )
        assert report.total("delivered") == (6 if hours == 0 else 0)
        assert report.at("file").already_delivered == (0 if hours == 0 else 6)

    lines = _jsonl(paths.home / "alerts" / "alerts.jsonl")
    assert len(lines) == 6
    assert {line["alert_key"] for line in lines} == {a.key for a in alerts}
    assert set(_ledger(paths).get_column("status")) == {"delivered"}

    # A crash after writing the lines but before recording them: the ledger is lost, and the
    # rerun finds the lines already in the file instead of writing them again.
    lake.overwrite(paths.table_uri(ALERTS_SENT), _ledger(paths).clear())
    report = deliver(paths, alerts, now=T0 + timedelta(days=1))
    assert report.at("file").delivered == 6
    assert len(_jsonl(paths.home / "alerts" / "alerts.jsonl")) == 6


def test_a_monthly_breach_is_one_alert_for_the_month(paths: Paths) -> None:
    spend = pl.DataFrame(
        [(date(2026, 11, d), "OpsAgent", "openai", "gpt-4o", 50.0) for d in range(1, 20)],
        schema=["day", "agent_type", "provider", "model", "spend_usd"],
        orient="row",
    )
    budgets = [Budget(agent_type="OpsAgent", monthly_usd=100)]
    days = [date(2026, 11, d) for d in range(17, 20)]
    frame = budget_compliance(spend, budgets, days=days, now=T0)
    lake.append(paths.table_uri(BUDGET_COMPLIANCE), frame, partition_by=["day"])
    alerts = collect_alerts(paths, days[0], days[-1], policy=AlertsPolicy())
    assert [(a.key, a.day) for a in alerts] == [
        ("budget:OpsAgent:month:2026-11-01:breach", date(2026, 11, 17))
    ]


def test_anomalies_alert_on_the_top_of_the_day_only(paths: Paths, tmp_path: Path) -> None:
    _write_anomalies(paths, count=10)
    alerts = collect_alerts(paths, DAY, DAY, policy=AlertsPolicy())
    assert [a.fields["rank"] for a in alerts] == [1, 2, 3]
    assert [a.severity for a in alerts] == ["critical", "warning", "warning"]
    assert "31 tool calls (baseline p99: 4)" in alerts[0].summary
    fewer = _policy(tmp_path, "anomalies:\n  max_rank: 5\n  min_score: 0.875\n")
    assert [a.fields["rank"] for a in collect_alerts(paths, DAY, DAY, policy=fewer)] == [1, 2]


def test_an_escalation_to_critical_is_a_new_alert(paths: Paths) -> None:
    _write_findings(paths, [_finding(1, severity="warning")])
    first = deliver(paths, collect_alerts(paths, DAY, DAY), now=T0, policy=AlertsPolicy())
    lake.overwrite(
        paths.table_uri(DRIFT_FINDINGS), pl.DataFrame([_finding(1)], schema=FINDINGS_SCHEMA)
    )
    second = deliver(paths, collect_alerts(paths, DAY, DAY), now=T0, policy=AlertsPolicy())
    assert first.total("delivered") == second.total("delivered") == 1
    assert sorted(_ledger(paths).get_column("severity")) == ["critical", "warning"]


def test_capability_violations_are_one_critical_alert_per_agent_tool_and_day(
    paths: Paths,
) -> None:
    from agentops_assets.governance.capabilities import VIOLATION_SCHEMA
    from agentops_assets.governance.tables import CAPABILITY_VIOLATIONS

    rule = "tool not in SupportAgent's registry"
    rows = [
        (DAY, f"e{n}", "t1", "support-5", "SupportAgent", tool, rule)
        for n, tool in enumerate(["iam.create_key"] * 3 + ["db.export_table"])
    ] + [(DAY + timedelta(days=1), "e9", "t2", "support-5", "SupportAgent", "iam.create_key", rule)]
    frame = pl.DataFrame(rows, schema=VIOLATION_SCHEMA, orient="row")
    lake.append(paths.table_uri(CAPABILITY_VIOLATIONS), frame, partition_by=["day"])

    alerts = collect_alerts(paths, DAY, DAY + timedelta(days=1), policy=AlertsPolicy())

    assert [(a.key, a.severity, a.fields["calls"]) for a in alerts] == [
        (f"capability_violation:{DAY}:support-5:db.export_table", "critical", 1),
        (f"capability_violation:{DAY}:support-5:iam.create_key", "critical", 3),
        (f"capability_violation:{DAY + timedelta(days=1)}:support-5:iam.create_key", "critical", 1),
    ]
    assert alerts[1].summary == (
        f"SupportAgent agent support-5 called iam.create_key 3 times on {DAY}: {rule}; "
        "first event e0 (agentops audit trace e0)."
    )
    report = deliver(paths, alerts, now=T0, policy=AlertsPolicy())
    assert report.total("delivered") == 3


def test_missing_tables_mean_no_alerts(paths: Paths) -> None:
    assert collect_alerts(paths, DAY, DAY, policy=AlertsPolicy()) == []
    report = deliver(paths, [], now=T0, policy=AlertsPolicy())
    assert report.to_rows() == []
    assert not lake.table_exists(paths.table_uri(ALERTS_SENT))


def test_slack_gets_slacks_shape(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Receiver(fail_first=0)
    try:
        monkeypatch.setenv("AGENTOPS_SLACK_WEBHOOK_URL", server.url)
        policy = _policy(
            tmp_path,
            "sinks:\n"
            "  slack:\n"
            "    kind: slack\n"
            "    url_env: AGENTOPS_SLACK_WEBHOOK_URL\n"
            "routes:\n"
            "  - sources: [drift_finding, budget]\n"
            "    min_severity: critical\n"
            "    agent_types: [FinanceAgent]\n"
            "    sinks: [slack]\n",
        )
        _write_findings(paths, [_finding(1), _finding(2, severity="warning")])
        _write_budget_rows(paths)
        report = deliver(
            paths, collect_alerts(paths, date(2026, 11, 18), DAY), now=T0, policy=policy
        )
    finally:
        server.close()
    # Critical FinanceAgent alerts only: one drift finding, two daily breaches.
    assert report.at("slack").delivered == 3
    assert report.unrouted == 3
    for request in server.requests:
        body = request["body"]
        assert set(body) == {"text", "blocks"}
        assert isinstance(body["text"], str) and body["text"]
        header, section, context = body["blocks"]
        assert header["type"] == "header" and header["text"]["type"] == "plain_text"
        assert len(header["text"]["text"]) <= 150
        assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
        assert context["type"] == "context"


def test_slack_text_is_escaped_and_cut_to_slacks_limits() -> None:
    alert = Alert(
        key="k",
        source="anomaly",
        severity="critical",
        day=DAY,
        agent_type="KYCAgent",
        title="T" * 400,
        summary="<!channel> & " + "x" * 5000,
    )
    body = slack_payload(alert)
    section = body["blocks"][1]["text"]["text"]
    assert "&lt;!channel&gt; &amp;" in section and "<!channel>" not in section
    assert len(section) <= 3000 and len(body["text"]) <= 3000
    assert len(body["blocks"][0]["text"]["text"]) == 150


def test_the_url_never_reaches_a_table_a_file_or_a_log(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = _closed_port_url()
    monkeypatch.setenv(URL_ENV, unreachable)
    monkeypatch.setenv("AGENTOPS_BAD_URL", f"hooks.example.com/x?token={TOKEN}")
    policy = _policy(
        tmp_path,
        f"sinks:\n"
        f"  hook:\n    kind: webhook\n    url_env: {URL_ENV}\n    timeout_s: 2\n"
        f"  odd:\n    kind: slack\n    url_env: AGENTOPS_BAD_URL\n"
        f"  file:\n    kind: jsonl\n"
        f"routes:\n  - sources: [drift_finding]\n    sinks: [hook, odd, file]\n",
    )
    _write_findings(paths, [_finding(n) for n in range(4)])
    with caplog.at_level(logging.DEBUG):
        report = deliver(paths, collect_alerts(paths, DAY, DAY), now=T0, policy=policy)
    # After three connection failures in a row the fourth waits for the next run.
    assert (report.at("hook").failed, report.at("hook").pending) == (3, 1)
    assert report.at("odd").not_configured == 4
    assert report.at("file").delivered == 4
    assert [(row["sink"], row["kind"]) for row in report.to_rows()] == [
        ("file", "jsonl"),
        ("hook", "webhook"),
        ("odd", "slack"),
    ]
    assert "Alerts to sink 'hook': 3 failed" in caplog.text
    ledger = _ledger(paths)
    hook = ledger.filter(pl.col("sink") == "hook").sort("status")
    assert hook.get_column("status").to_list() == ["failed"] * 3 + ["pending"]
    errors = hook.get_column("last_error").to_list()[:3]
    assert all(e.startswith("cannot connect") for e in errors), errors
    texts = {
        "table": ledger.write_csv(),
        "jsonl": (paths.home / "alerts" / "alerts.jsonl").read_text(),
        "log": caplog.text,
        "report": repr(report) + str(report.to_rows()) + report.summary(),
    }
    for where, text in texts.items():
        for secret in (TOKEN, unreachable, "/hooks/T0001/B0002", "hooks.example.com"):
            assert secret not in text, (where, secret)
    assert "AGENTOPS_BAD_URL" in ledger.filter(pl.col("sink") == "odd")["last_error"][0]


def test_an_unset_url_is_recorded_then_delivered_once_set(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    policy = _policy(tmp_path, WEBHOOK_POLICY)
    _write_findings(paths, [_finding(1)])
    alerts = collect_alerts(paths, DAY, DAY, policy=policy)
    report = deliver(paths, alerts, now=T0, policy=policy)
    assert report.at("hook").not_configured == 1
    row = _ledger(paths).row(0, named=True)
    assert (row["status"], row["attempts"]) == ("failed", 0)
    assert row["last_error"].startswith(f"not configured: the environment variable {URL_ENV}")

    server = Receiver(fail_first=0)
    try:
        monkeypatch.setenv(URL_ENV, server.url)
        report = deliver(paths, alerts, now=T0 + timedelta(minutes=5), policy=policy)
    finally:
        server.close()
    assert report.at("hook").delivered == 1
    assert len(server.requests) == 1
    row = _ledger(paths).row(0, named=True)
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 1, None)


def test_a_sink_cap_leaves_the_rest_pending_for_the_next_run(paths: Paths, tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        "sinks:\n  file:\n    kind: jsonl\n    path: out/a.jsonl\n    max_per_run: 2\n"
        "routes:\n  - sources: [drift_finding]\n    sinks: [file]\n",
    )
    _write_findings(paths, [_finding(n) for n in range(5)])
    alerts = collect_alerts(paths, DAY, DAY, policy=policy)
    counts = []
    for run in range(4):
        report = deliver(paths, alerts if run == 0 else [], now=T0, policy=policy)
        counts.append((report.at("file").delivered, report.at("file").pending))
    assert counts == [(2, 3), (2, 1), (1, 0), (0, 0)]
    assert len(_jsonl(paths.home / "out" / "a.jsonl")) == 5


# --- alerts.yaml -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (
            "sinks:\n  pager:\n    kind: email\n",
            3,
            "'sinks.pager.kind' input should be 'jsonl', 'webhook' or 'slack', got 'email'.",
        ),
        (
            "sinks:\n  slack:\n    kind: slack\n"
            f"    url_env: https://hooks.slack.com/services/T0/B0/{TOKEN}\n",
            4,
            "holds a URL; webhook URLs are secrets, so write the URL into an environment "
            "variable and name that variable with url_env.",
        ),
        (
            f"sinks:\n  hook:\n    kind: webhook\n    url: http://10.0.0.1/hook?token={TOKEN}\n",
            4,
            "holds a URL; webhook URLs are secrets, so write the URL into an environment "
            "variable and name that variable with url_env.",
        ),
        (
            "routes:\n  - sources: [budget]\n    min_severity: urgent\n    sinks: [file]\n",
            3,
            "'routes.0.min_severity' input should be 'warning' or 'critical', got 'urgent'.",
        ),
        (
            "routes:\n  - sources: [budget\n    sinks: [file]\n",
            3,
            "is not valid YAML",
        ),
        (
            "sinks:\n  file:\n    kind: jsonl\nroutes:\n  - sources: [anomaly]\n"
            "    sinks: [file, slack]\n",
            6,
            "route 1 names the sink 'slack', which 'sinks' does not define (defined: file).",
        ),
        (
            "sinks:\n  hook:\n    kind: webhook\n",
            2,
            "sink 'hook' (webhook) needs url_env: the environment variable that holds its URL.",
        ),
        (
            "routes:\n  - sources: [weather]\n    sinks: [file]\n",
            2,
            "'routes.0.sources.0' input should be",
        ),
    ],
)
def test_a_bad_alerts_file_gets_one_sentence_naming_file_and_line(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AlertsPolicyError) as raised:
        load_alerts_policy(path)
    message = str(raised.value)
    assert raised.value.line == line
    assert message.startswith(f"{path}, line {line}: {problem}")
    assert message.endswith(".") and "\n" not in message
    assert TOKEN not in message and "://" not in message.removeprefix(str(path))


def test_a_policies_folder_without_alerts_yaml_uses_the_shipped_default(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "my-policies"
    folder.mkdir()
    (folder / "budgets.yaml").write_text("budgets: []\n", encoding="utf-8")
    monkeypatch.setenv("AGENTOPS_POLICIES", str(folder))
    shipped = paths.policy_file("alerts.yaml")
    assert shipped.parent != folder and shipped.name == "alerts.yaml"
    assert load_alerts_policy(shipped) == AlertsPolicy()

    _write_findings(paths, [_finding(1)])
    report = deliver(paths, collect_alerts(paths, DAY, DAY), now=T0)
    assert report.at("file").delivered == 1
    assert len(_jsonl(paths.home / "alerts" / "alerts.jsonl")) == 1

    # A user's own alerts.yaml in that folder wins.
    (folder / "alerts.yaml").write_text(
        "sinks:\n  mine:\n    kind: jsonl\n    path: mine.jsonl\n"
        "routes:\n  - sources: [drift_finding]\n    sinks: [mine]\n",
        encoding="utf-8",
    )
    report = deliver(paths, collect_alerts(paths, DAY, DAY), now=T0)
    assert report.at("mine").delivered == 1
    assert len(_jsonl(paths.home / "mine.jsonl")) == 1


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
