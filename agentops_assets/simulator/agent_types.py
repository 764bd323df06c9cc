"""The simulated fleet's world, part two: agent types, their facts and texts, and rhythm.

Templates use ``{id}`` (the entity a cycle works on) and ``{amount}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class AgentType:
    """One role in the fleet, with what its instances usually do."""

    name: str
    slug: str
    tier: str
    weight: int  # share of the fleet
    namespace: str  # memory namespace
    models: tuple[tuple[str, float], ...]
    tools: tuple[tuple[str, float], ...]
    value_usd: float  # typical value of a successful decision, attributed to the agent (see README)
    amount_usd: float  # typical amount of money a task handles (invoice, refund, order)
    confidence: tuple[float, float]  # beta(a, b) of decision confidence
    success: float
    unknown: float
    review_rate: float
    llm_calls: tuple[float, ...]  # weights for 1..4 calls
    tool_calls: tuple[float, ...]  # weights for 0..5 calls
    input_tokens: int  # median prompt size
    output_tokens: int  # median completion size
    reports_cost: bool
    index: str  # retrieval index
    entity: str  # entity id prefix
    session_len: int  # max cycles per session
    scenarios: tuple[tuple[str, str, str], ...]  # task, decision name, result
    plans: tuple[str, ...]
    queries: tuple[str, ...]  # retrieval queries
    policy_facts: tuple[tuple[str, tuple[str, ...]], ...]  # key, successive versions
    entity_facts: tuple[tuple[str, tuple[str, ...]], ...]  # key template, contents
    corrections: tuple[tuple[str, str], ...]  # correction, rationale
    wrong_lesson: tuple[str, str, str]  # fact key, wrong content, rationale of the fix


AGENT_TYPES: Final[tuple[AgentType, ...]] = (
    AgentType(
        name="SupportAgent",
        slug="support-agent",
        tier="tactical",
        weight=5,
        namespace="support",
        models=(
            ("gpt-4o-mini", 0.5),
            ("claude-3-5-haiku-20241022", 0.3),
            ("gemini-2.0-flash", 0.2),
        ),
        tools=(
            ("zendesk.get_ticket", 3),
            ("zendesk.reply", 2),
            ("kb.search", 3),
            ("crm.lookup_customer", 2),
            ("orders.lookup", 2),
            ("orders.refund_request", 1),
        ),
        value_usd=0.03,
        amount_usd=14.0,
        confidence=(17.0, 3.0),
        success=0.9,
        unknown=0.05,
        review_rate=0.05,
        llm_calls=(0.15, 0.35, 0.3, 0.2),
        tool_calls=(0.02, 0.06, 0.17, 0.3, 0.27, 0.18),
        input_tokens=1800,
        output_tokens=220,
        reports_cost=False,
        index="kb/support-articles",
        entity="ZD-",
        session_len=6,
        scenarios=(
            (
                "Customer on ticket {id} asks where their order is (paid ${amount}).",
                "resolve_ticket",
                "Replied to {id} with the tracking link; marked solved.",
            ),
            (
                "Ticket {id}: customer wants a refund of ${amount} for a damaged item.",
                "issue_credit",
                "Issued a credit of ${amount} on {id}.",
            ),
            (
                "Ticket {id}: login fails after password reset.",
                "resolve_ticket",
                "Sent reset instructions on {id}; cleared the lockout.",
            ),
            (
                "Ticket {id}: invoice shows ${amount} but the customer expected less.",
                "escalate_ticket",
                "Escalated {id} to tier 2 billing.",
            ),
            (
                "Ticket {id}: customer asks to change the shipping address.",
                "resolve_ticket",
                "Updated the address on {id} before dispatch.",
            ),
        ),
        plans=(
            "Read ticket, look up order and customer, check refund window, then reply.",
            "Check KB for a known issue, reply with steps, escalate if unresolved.",
            "Verify the charge, compare with the plan price, propose a credit if warranted.",
        ),
        queries=("refund policy damaged item", "order tracking delays", "password reset loop"),
        policy_facts=(
            (
                "support.refund_window",
                (
                    "Refunds are allowed within 30 days of delivery.",
                    "Refunds are allowed within 45 days of delivery (holiday season).",
                ),
            ),
            (
                "support.escalation_policy",
                (
                    "Escalate to on-call when more than 10 customers report the same outage.",
                    "Escalate to on-call when more than 5 customers report the same outage.",
                ),
            ),
            (
                "support.credit_limit",
                (
                    "Agents may issue credits up to $50 without approval.",
                    "Agents may issue credits up to $75 without approval.",
                ),
            ),
        ),
        entity_facts=(
            (
                "support.customer.{id}.preferred_channel",
                (
                    "Prefers e-mail; reachable 09:00-17:00 CET.",
                    "Prefers chat; do not call.",
                    "Prefers phone callbacks in the afternoon.",
                ),
            ),
            (
                "support.customer.{id}.open_issue",
                (
                    "Waiting for replacement of a damaged item.",
                    "Double charge under investigation by billing.",
                ),
            ),
        ),
        corrections=(
            (
                "Escalate instead: the customer is on an enterprise SLA.",
                "Enterprise tickets go to tier 2.",
            ),
            (
                "Offer a replacement before a refund.",
                "Policy prefers replacement for damaged items.",
            ),
            ("Use the customer's preferred channel.", "Customer asked not to be called."),
        ),
        wrong_lesson=(
            "support.refund_window",
            "Refunds are allowed at any time, no questions asked, for any amount.",
            "The agent generalised from one goodwill exception; the 30-day window still applies.",
        ),
    ),
    AgentType(
        name="FinanceAgent",
        slug="finance-agent",
        tier="strategic",
        weight=3,
        namespace="finance",
        models=(("claude-3-5-sonnet-20241022", 0.55), ("gpt-4o", 0.3), ("o3-mini", 0.15)),
        tools=(
            ("ledger.query", 3),
            ("invoice.lookup", 3),
            ("payments.refund", 1),
            ("fx.rates", 1),
            ("erp.post_journal", 1),
            ("crm.lookup_customer", 2),
        ),
        value_usd=0.66,
        amount_usd=180.0,
        confidence=(16.0, 3.5),
        success=0.88,
        unknown=0.05,
        review_rate=0.12,
        llm_calls=(0.1, 0.3, 0.35, 0.25),
        tool_calls=(0.02, 0.06, 0.17, 0.3, 0.27, 0.18),
        input_tokens=3500,
        output_tokens=350,
        reports_cost=True,
        index="kb/finance-policies",
        entity="INV-",
        session_len=3,
        scenarios=(
            (
                "Reconcile invoice {id} (${amount}) against its purchase order.",
                "reconcile_account",
                "Reconciled {id}; posted an adjusting entry.",
            ),
            (
                "Customer requests a refund of ${amount} on invoice {id}.",
                "approve_refund",
                "Approved a refund of ${amount} on {id}.",
            ),
            (
                "Vendor payment of ${amount} for {id} awaits approval.",
                "approve_payment",
                "Approved the payment for {id} (${amount}).",
            ),
            (
                "Invoice {id} (${amount}) does not match the PO quantity.",
                "flag_invoice",
                "Flagged {id}: amount differs from the PO by 4.1%.",
            ),
        ),
        plans=(
            "Fetch invoice and ledger entries, check approval threshold, then decide.",
            "Look up customer and refund policy, verify amount, decide on refund.",
            "Compare PO, invoice and receipt; flag mismatches over 2%.",
        ),
        queries=("refund approval threshold", "vendor payment terms", "month end close checklist"),
        policy_facts=(
            (
                "finance.refund_approval_threshold",
                ("Refunds over $1,000 need manager approval; over $10,000 need CFO sign-off.",),
            ),
            (
                "pricing.discount_policy",
                (
                    "Discounts above 15% need VP Sales sign-off.",
                    "Discounts above 20% need VP Sales sign-off (Q4 promotion rule).",
                    "Discounts above 15% need VP Sales sign-off.",
                ),
            ),
            (
                "finance.fx_source",
                (
                    "Use ECB reference rates for EUR conversions.",
                    "Use the treasury desk's daily rates for EUR conversions.",
                ),
            ),
            (
                "finance.vendor.acme_supplies.payment_terms",
                (
                    "ACME Supplies invoices are net 30.",
                    "ACME Supplies invoices are net 45 from 1 December.",
                ),
            ),
        ),
        entity_facts=(
            (
                "finance.invoice.{id}.dispute",
                (
                    "Customer disputes the shipping fee; hold collection.",
                    "Partial credit agreed; collect the remaining balance.",
                ),
            ),
            (
                "finance.customer.{id}.billing_contact",
                (
                    "Billing questions go to the customer's AP team.",
                    "Send invoices as PDF and as UBL.",
                ),
            ),
        ),
        corrections=(
            (
                "Hold the refund until the chargeback is resolved.",
                "Refunding now risks paying twice.",
            ),
            ("Post to cost centre 4100, not 4000.", "Marketing spend moved cost centres in Q3."),
            ("Use the invoice date's FX rate, not today's.", "Accounting policy FX-2."),
        ),
        wrong_lesson=(
            "finance.refund_approval_threshold",
            "Refunds over $10,000 need no approval.",
            "Refunds over $1,000 need manager approval and over $10,000 CFO sign-off; the agent "
            "took a one-off CFO exception as the rule.",
        ),
    ),
    AgentType(
        name="OpsAgent",
        slug="ops-agent",
        tier="tactical",
        weight=4,
        namespace="ops",
        models=(
            ("claude-3-5-sonnet-20241022", 0.45),
            ("gpt-4o-mini", 0.35),
            ("mistral-large-latest", 0.2),
        ),
        tools=(
            ("prometheus.query", 3),
            ("k8s.get_pods", 3),
            ("k8s.rollout_restart", 1),
            ("pagerduty.ack", 1),
            ("github.create_pr", 1),
            ("kb.search", 2),
        ),
        value_usd=0.24,
        amount_usd=45.0,
        confidence=(12.0, 3.0),
        success=0.86,
        unknown=0.06,
        review_rate=0.05,
        llm_calls=(0.1, 0.3, 0.35, 0.25),
        tool_calls=(0.02, 0.06, 0.17, 0.3, 0.27, 0.18),
        input_tokens=4000,
        output_tokens=400,
        reports_cost=False,
        index="kb/runbooks",
        entity="svc-",
        session_len=4,
        scenarios=(
            (
                "Alert: p99 latency of {id} above SLO for 10 minutes.",
                "scale_deployment",
                "Scaled {id} from 6 to 9 replicas; p99 back under SLO.",
            ),
            (
                "Alert: {id} pods restarting (CrashLoopBackOff).",
                "restart_service",
                "Restarted {id}; 6/6 pods ready.",
            ),
            (
                "Alert: error rate of {id} at 3.2%.",
                "open_incident",
                "Opened an incident for {id}; paged on-call.",
            ),
            (
                "Alert: disk usage on {id} at 91%.",
                "close_alert",
                "Closed the alert on {id}: log rotation freed 30%.",
            ),
        ),
        plans=(
            "Query metrics, inspect pods, restart only if the runbook allows it.",
            "Check recent deploys, compare error rates, roll back if correlated.",
        ),
        queries=("runbook crashloop", "latency slo breach", "disk pressure node"),
        policy_facts=(
            (
                "ops.deploy_window",
                (
                    "Production deploys only Monday to Thursday, 09:00-16:00 UTC.",
                    "Production deploys only Monday to Wednesday, 09:00-15:00 UTC (freeze season).",
                ),
            ),
            (
                "ops.oncall.primary",
                (
                    "Primary on-call this week: team-platform.",
                    "Primary on-call this week: team-payments.",
                    "Primary on-call this week: team-data.",
                ),
            ),
            ("ops.runbook.auto_restart", ("Auto-restart allowed for stateless services only.",)),
        ),
        entity_facts=(
            (
                "ops.service.{id}.known_issue",
                (
                    "Memory leak after 48 h uptime; restart is safe.",
                    "Flaky readiness probe; ignore single restarts.",
                ),
            ),
            ("ops.incident.{id}.active", ("Incident open; do not auto-restart.",)),
        ),
        corrections=(
            ("Do not restart during the payment batch window.", "Batch jobs run 02:00-03:00 UTC."),
            ("Scale instead of restart: the pods are healthy but saturated.", "CPU at 98%."),
        ),
        wrong_lesson=(
            "ops.deploy_window",
            "Deploys to production are fine at any time, including Friday night.",
            "The deploy window still applies; a hotfix exception was taken as the rule.",
        ),
    ),
    AgentType(
        name="PlannerAgent",
        slug="planner-agent",
        tier="strategic",
        weight=2,
        namespace="planning",
        models=(("o3-mini", 0.4), ("gpt-4o", 0.35), ("gemini-1.5-pro", 0.25)),
        tools=(
            ("jira.search", 3),
            ("jira.create_issue", 1),
            ("capacity.forecast", 2),
            ("calendar.schedule", 1),
            ("roadmap.update", 1),
            ("slack.post_message", 1),
        ),
        value_usd=0.34,
        amount_usd=90.0,
        confidence=(14.0, 4.0),
        success=0.84,
        unknown=0.08,
        review_rate=0.12,
        llm_calls=(0.1, 0.3, 0.35, 0.25),
        tool_calls=(0.02, 0.06, 0.17, 0.3, 0.27, 0.18),
        input_tokens=6000,
        output_tokens=900,
        reports_cost=False,
        index="kb/engineering-handbook",
        entity="PAY-",
        session_len=3,
        scenarios=(
            (
                "Plan the next sprint for epic {id} with current capacity.",
                "assign_sprint",
                "Assigned 14 issues of {id} to sprint 42.",
            ),
            (
                "Release {id} slipped; propose a new date.",
                "schedule_release",
                "Scheduled {id} for release on the second Tuesday.",
            ),
            (
                "Rebalance capacity between {id} and platform work.",
                "rebalance_capacity",
                "Moved 2 engineers to {id} for two sprints.",
            ),
        ),
        plans=(
            "Search open issues, forecast capacity, then propose a schedule.",
            "Check release freeze and dependencies, then pick a date.",
        ),
        queries=("release checklist", "sprint capacity rules", "freeze calendar"),
        policy_facts=(
            (
                "planning.release_freeze",
                (
                    "Release freeze from 18 December to 3 January.",
                    "Release freeze from 15 December to 5 January.",
                ),
            ),
            ("planning.sprint_length", ("Sprints are two weeks, starting Monday.",)),
            (
                "planning.team.payments.capacity",
                (
                    "Payments team: 6 engineers, 80% allocatable.",
                    "Payments team: 5 engineers, 70% allocatable.",
                ),
            ),
        ),
        entity_facts=(
            (
                "planning.epic.{id}.risk",
                (
                    "Depends on the ledger migration; slip risk high.",
                    "Blocked on vendor API access.",
                ),
            ),
        ),
        corrections=(
            ("Keep the release out of the freeze week.", "Freeze calendar overrides velocity."),
            ("Do not plan above 80% capacity.", "On-call load is not in the forecast."),
        ),
        wrong_lesson=(
            "planning.release_freeze",
            "There is no release freeze this year; ship any day.",
            "The freeze is in the company calendar; the agent read an outdated draft.",
        ),
    ),
    AgentType(
        name="ResearchAgent",
        slug="research-agent",
        tier="observer",
        weight=3,
        namespace="research",
        models=(
            ("gemini-1.5-pro", 0.4),
            ("gemini-1.5-flash", 0.4),
            ("claude-3-5-haiku-20241022", 0.2),
        ),
        tools=(
            ("web.search", 3),
            ("arxiv.search", 2),
            ("pdf.extract", 2),
            ("notes.append", 2),
            ("kb.search", 1),
        ),
        value_usd=0.11,
        amount_usd=6.0,
        confidence=(10.0, 4.0),
        success=0.8,
        unknown=0.15,
        review_rate=0.02,
        llm_calls=(0.1, 0.3, 0.35, 0.25),
        tool_calls=(0.02, 0.05, 0.15, 0.3, 0.28, 0.2),
        input_tokens=9000,
        output_tokens=700,
        reports_cost=False,
        index="kb/research-notes",
        entity="topic-",
        session_len=5,
        scenarios=(
            (
                "Summarise new work on {id} for the weekly digest.",
                "publish_digest",
                "Digest entry for {id}: 3 sources, 2 claims.",
            ),
            (
                "Check whether {id} is trending in competitor announcements.",
                "flag_trend",
                "Flagged {id} as trending (5 mentions this week).",
            ),
            (
                "Extract the key claims from the new report on {id}.",
                "summarize_source",
                "Summary of {id} appended to the notes.",
            ),
        ),
        plans=(
            "Search web and arXiv, extract the key claims, append to notes.",
            "Compare with last week's notes, flag what changed.",
        ),
        queries=("agent evaluation benchmarks", "llm pricing changes", "competitor launches"),
        policy_facts=(
            (
                "research.sources.trusted",
                (
                    "Trusted sources: arXiv, vendor docs, peer-reviewed venues.",
                    "Trusted sources: arXiv, vendor docs, peer-reviewed venues, official blogs.",
                ),
            ),
            ("research.digest_format", ("Digest: 5 bullets, links first, no speculation.",)),
        ),
        entity_facts=(
            (
                "research.topic.{id}.summary",
                (
                    "Three groups report the same result; medium confidence.",
                    "Single source so far; low confidence.",
                ),
            ),
        ),
        corrections=(
            ("Cite the primary source, not the blog.", "Secondary sources misquote numbers."),
        ),
        wrong_lesson=(
            "research.sources.trusted",
            "Any blog post with more than 1,000 likes is a trusted source.",
            "Popularity is not evidence; only primary sources count.",
        ),
    ),
    AgentType(
        name="ComplianceAgent",
        slug="compliance-agent",
        tier="observer",
        weight=3,
        namespace="compliance",
        models=(
            ("claude-3-5-sonnet-20241022", 0.5),
            ("mistral-small-latest", 0.3),
            ("gpt-4o", 0.2),
        ),
        tools=(
            ("policy.check", 3),
            ("audit_log.query", 2),
            ("sanctions.screen", 2),
            ("kb.search", 1),
            ("crm.lookup_customer", 1),
        ),
        value_usd=0.4,
        amount_usd=60.0,
        confidence=(18.0, 3.0),
        success=0.9,
        unknown=0.05,
        review_rate=0.04,
        llm_calls=(0.3, 0.4, 0.2, 0.1),
        tool_calls=(0.05, 0.15, 0.3, 0.3, 0.15, 0.05),
        input_tokens=3000,
        output_tokens=300,
        reports_cost=False,
        index="kb/compliance-policies",
        entity="TX-",
        session_len=2,
        scenarios=(
            (
                "Screen transaction {id} of ${amount} to a new counterparty.",
                "clear_transaction",
                "Cleared {id}: no sanctions match.",
            ),
            (
                "Check transaction {id} (${amount}) for structuring patterns.",
                "flag_transaction",
                "Flagged {id} for manual AML review.",
            ),
            (
                "Cash deposit {id} of ${amount} needs a reporting decision.",
                "file_report",
                "Filed a currency transaction report for {id}.",
            ),
        ),
        plans=("Screen parties, check policy, look at audit history, then clear or flag.",),
        queries=("sanctions screening rules", "sox access review", "aml structuring"),
        policy_facts=(
            (
                "compliance.aml.reporting_threshold",
                ("Report cash transactions of $10,000 or more.",),
            ),
            (
                "compliance.sox.access_review",
                (
                    "Privileged access changes need a second approver.",
                    "Privileged access changes need a second approver within 24 h.",
                ),
            ),
        ),
        entity_facts=(
            (
                "compliance.party.{id}.screening",
                (
                    "Cleared on last screening; rescreen in 90 days.",
                    "Name similar to a listed party; manual check done.",
                ),
            ),
        ),
        corrections=(
            (
                "Flag it: split payments just under the threshold.",
                "Structuring pattern over 3 days.",
            ),
        ),
        wrong_lesson=(
            "compliance.aml.reporting_threshold",
            "Cash transactions never need reporting if the customer is long-standing.",
            "The reporting duty applies to every customer.",
        ),
    ),
)

REVIEWERS: Final = {
    "strategic": ("m.lopez", "j.chen", "cfo-office"),
    "tactical": ("a.okafor", "s.ivanova", "support-leads"),
    "observer": ("r.patel", "compliance-team"),
}


def _profile(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split())


# Relative cycle rate per hour of day (UTC), by tier; weekends scale it by WEEKEND.
HOURLY: Final[dict[str, tuple[float, ...]]] = {
    "strategic": _profile(
        "0.1 0.05 0.05 0.05 0.05 0.1 0.3 0.7 1.2 1.5 1.6 1.5 1.1 1.4 1.6 1.5 1.3 0.9 0.5 0.3 0.2 "
        "0.15 0.1 0.1"
    ),
    "tactical": _profile(
        "0.25 0.2 0.15 0.15 0.15 0.2 0.4 0.8 1.2 1.4 1.5 1.4 1.2 1.3 1.4 1.4 1.3 1.1 0.8 0.6 0.5 "
        "0.4 0.35 0.3"
    ),
    "observer": _profile(
        "0.9 0.9 0.85 0.85 0.85 0.9 0.95 1.0 1.05 1.1 1.1 1.1 1.05 1.1 1.1 1.1 1.05 1.0 1.0 0.95 "
        "0.95 0.9 0.9 0.9"
    ),
}
WEEKEND: Final = {"strategic": 0.3, "tactical": 0.6, "observer": 1.0}

# Entity names for types whose entities are not numbered records.
ENTITY_NAMES: Final = {
    "svc-": (
        "checkout",
        "payments-api",
        "search",
        "auth",
        "inventory",
        "notifications",
        "ledger-sync",
        "pricing",
        "gateway",
        "recommendations",
    ),
    "topic-": (
        "agent-evals",
        "llm-pricing",
        "rag-benchmarks",
        "tool-use",
        "long-context",
        "small-models",
        "agent-memory",
        "guardrails",
    ),
}
REASONS: Final = (
    "Evidence from tools is consistent",
    "Matches the policy in memory",
    "Within the approval threshold",
    "Similar past cases were resolved this way",
    "Signals conflict; chose the conservative option",
    "Customer history supports it",
    "Metrics confirm the hypothesis",
)
