"""The simulated fleet's world, part one: LLMs with list prices, and the tools agents call.

Everything here is static data, so a run only draws random numbers and fills templates.
Templates use ``{id}`` (the entity a cycle works on) and ``{amount}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Model:
    """An LLM as priced by its provider (USD per million tokens) and how fast it answers."""

    name: str  # the request model (alias)
    provider: str  # canonical provider id: openai, anthropic, google, mistral
    response: str  # the model the API reports back (dated for OpenAI)
    price_in: float
    price_out: float
    price_cache_read: float
    price_cache_write: float
    base_ms: float
    ms_per_token: float
    reasoning: bool = False


MODELS: Final[dict[str, Model]] = {
    m.name: m
    for m in (
        Model("gpt-4o", "openai", "gpt-4o-2024-08-06", 2.5, 10.0, 1.25, 0.0, 450, 9.0),
        Model("gpt-4o-mini", "openai", "gpt-4o-mini-2024-07-18", 0.15, 0.6, 0.075, 0.0, 300, 6.0),
        Model("o3-mini", "openai", "o3-mini-2025-01-31", 1.1, 4.4, 0.55, 0.0, 900, 7.0, True),
        Model("o1", "openai", "o1-2024-12-17", 15.0, 60.0, 7.5, 0.0, 2500, 12.0, True),
        Model(
            "claude-3-5-sonnet-20241022",
            "anthropic",
            "claude-3-5-sonnet-20241022",
            3.0,
            15.0,
            0.3,
            3.75,
            700,
            13.0,
        ),
        Model(
            "claude-3-5-haiku-20241022",
            "anthropic",
            "claude-3-5-haiku-20241022",
            0.8,
            4.0,
            0.08,
            1.0,
            400,
            8.0,
        ),
        Model(
            "claude-3-opus-20240229",
            "anthropic",
            "claude-3-opus-20240229",
            15.0,
            75.0,
            1.5,
            18.75,
            1500,
            25.0,
        ),
        Model("gemini-1.5-pro", "google", "gemini-1.5-pro", 1.25, 5.0, 0.3125, 0.0, 600, 9.0),
        Model("gemini-1.5-flash", "google", "gemini-1.5-flash", 0.075, 0.3, 0.01875, 0.0, 250, 4.0),
        Model("gemini-2.0-flash", "google", "gemini-2.0-flash", 0.1, 0.4, 0.025, 0.0, 220, 3.5),
        Model("mistral-large-latest", "mistral", "mistral-large-latest", 2.0, 6.0, 0, 0, 450, 11.0),
        Model("mistral-small-latest", "mistral", "mistral-small-latest", 0.2, 0.6, 0, 0, 250, 6.0),
    )
}

# What a type switches to in the cost_spike incident, by its main provider.
EXPENSIVE_MODEL: Final = {"anthropic": "claude-3-opus-20240229"}
EXPENSIVE_DEFAULT: Final = "o1"


@dataclass(frozen=True)
class Tool:
    """A tool or API an agent calls: endpoint, usual latency and error rate, result text."""

    name: str
    method: str
    endpoint: str
    median_ms: float
    error_rate: float
    arg: str  # argument name carrying the entity id
    ok: str  # result template


_T = Tool
TOOLS: Final[dict[str, Tool]] = {
    t.name: t
    for t in (
        _T(
            "ledger.query",
            "GET",
            "https://erp.internal/api/v2/ledger/entries",
            180,
            0.01,
            "account",
            "42 entries for {id}, balance ${amount}",
        ),
        _T(
            "invoice.lookup",
            "GET",
            "https://erp.internal/api/v2/invoices/{id}",
            120,
            0.02,
            "invoice_id",
            "invoice {id}: ${amount}, status open, net 30",
        ),
        _T(
            "payments.refund",
            "POST",
            "https://api.stripe.com/v1/refunds",
            650,
            0.02,
            "charge",
            "refund re_{id} created for ${amount}",
        ),
        _T(
            "fx.rates",
            "GET",
            "https://fx.internal/v1/latest?base=USD",
            90,
            0.01,
            "base",
            "EUR 0.9213, GBP 0.7871, JPY 151.22",
        ),
        _T(
            "erp.post_journal",
            "POST",
            "https://erp.internal/api/v2/journal",
            420,
            0.03,
            "entry",
            "journal entry JE-{id} posted",
        ),
        _T(
            "crm.lookup_customer",
            "GET",
            "https://crm.internal/v3/customers/{id}",
            150,
            0.02,
            "customer_id",
            "customer {id}: plan enterprise, ARR ${amount}, health green",
        ),
        _T(
            "calendar.schedule",
            "POST",
            "https://calendar.internal/v1/events",
            260,
            0.02,
            "event",
            "event scheduled for {id}",
        ),
        _T(
            "jira.search",
            "GET",
            "https://acme.atlassian.net/rest/api/3/search",
            340,
            0.02,
            "jql",
            "12 issues match project = {id}",
        ),
        _T(
            "jira.create_issue",
            "POST",
            "https://acme.atlassian.net/rest/api/3/issue",
            480,
            0.03,
            "summary",
            "created {id}-1042",
        ),
        _T(
            "capacity.forecast",
            "POST",
            "https://planning.internal/v1/forecast",
            900,
            0.02,
            "team",
            "capacity for {id}: 78% of 6 engineers",
        ),
        _T(
            "roadmap.update",
            "PATCH",
            "https://planning.internal/v1/roadmap/{id}",
            300,
            0.02,
            "item",
            "roadmap item {id} moved to Q+1",
        ),
        _T(
            "slack.post_message",
            "POST",
            "https://slack.com/api/chat.postMessage",
            210,
            0.01,
            "channel",
            "message posted to #planning ({id})",
        ),
        _T(
            "zendesk.get_ticket",
            "GET",
            "https://acme.zendesk.com/api/v2/tickets/{id}",
            160,
            0.02,
            "ticket_id",
            "ticket {id}: priority normal, 3 comments",
        ),
        _T(
            "zendesk.reply",
            "PUT",
            "https://acme.zendesk.com/api/v2/tickets/{id}",
            280,
            0.02,
            "ticket_id",
            "reply added to {id}",
        ),
        _T(
            "kb.search",
            "GET",
            "https://kb.internal/api/search",
            140,
            0.01,
            "q",
            "5 articles, best: 'Refunds and credits' (0.83)",
        ),
        _T(
            "orders.lookup",
            "GET",
            "https://shop.internal/api/orders/{id}",
            110,
            0.02,
            "order_id",
            "order {id}: ${amount}, shipped",
        ),
        _T(
            "orders.refund_request",
            "POST",
            "https://shop.internal/api/refund-requests",
            350,
            0.03,
            "order_id",
            "refund request RR-{id} opened for ${amount}",
        ),
        _T(
            "prometheus.query",
            "GET",
            "https://prometheus.internal/api/v1/query",
            220,
            0.02,
            "query",
            "p99 latency {id}: 840 ms (SLO 500 ms)",
        ),
        _T(
            "k8s.get_pods",
            "GET",
            "https://k8s.internal/api/v1/namespaces/prod/pods",
            190,
            0.02,
            "selector",
            "6 pods for {id}, 1 CrashLoopBackOff",
        ),
        _T(
            "k8s.rollout_restart",
            "PATCH",
            "https://k8s.internal/apis/apps/v1/deployments/{id}",
            1300,
            0.04,
            "deployment",
            "rollout of {id} restarted, 6/6 ready",
        ),
        _T(
            "pagerduty.ack",
            "PUT",
            "https://api.pagerduty.com/incidents/{id}",
            240,
            0.02,
            "incident",
            "incident {id} acknowledged",
        ),
        _T(
            "github.create_pr",
            "POST",
            "https://api.github.com/repos/acme/infra/pulls",
            700,
            0.03,
            "branch",
            "PR #4821 opened for {id}",
        ),
        _T(
            "web.search",
            "GET",
            "https://search.internal/v1/web",
            800,
            0.03,
            "q",
            "10 results for {id}",
        ),
        _T(
            "arxiv.search",
            "GET",
            "https://export.arxiv.org/api/query",
            1100,
            0.04,
            "q",
            "7 papers on {id}",
        ),
        _T(
            "pdf.extract",
            "POST",
            "https://docs.internal/v1/extract",
            2400,
            0.05,
            "doc",
            "extracted 14 pages from {id}",
        ),
        _T(
            "notes.append",
            "POST",
            "https://notes.internal/v1/pages/research-log",
            150,
            0.01,
            "page",
            "note appended for {id}",
        ),
        _T(
            "policy.check",
            "POST",
            "https://policy.internal/v1/data/compliance/allow",
            60,
            0.01,
            "input",
            "allow=true for {id}",
        ),
        _T(
            "audit_log.query",
            "GET",
            "https://audit.internal/v1/events",
            380,
            0.02,
            "subject",
            "31 audit events for {id}",
        ),
        _T(
            "sanctions.screen",
            "POST",
            "https://screening.internal/v2/screen",
            520,
            0.03,
            "party",
            "no match for {id} (score 0.12)",
        ),
        # Tools no agent type uses; the rogue_agent incident calls them.
        _T(
            "iam.create_access_key",
            "POST",
            "https://iam.amazonaws.com/?Action=CreateAccessKey",
            400,
            0.0,
            "user",
            "access key created for {id}",
        ),
        _T(
            "db.export_table",
            "POST",
            "https://db.internal/v1/exports",
            5200,
            0.0,
            "table",
            "export of customers started ({id})",
        ),
        _T(
            "email.send_bulk",
            "POST",
            "https://mail.internal/v1/bulk",
            900,
            0.0,
            "audience",
            "bulk mail queued to 18,440 recipients ({id})",
        ),
        _T(
            "s3.put_bucket_policy",
            "PUT",
            "https://s3.amazonaws.com/acme-exports?policy",
            300,
            0.0,
            "bucket",
            "bucket policy updated ({id})",
        ),
    )
}
ROGUE_TOOLS: Final = (
    "iam.create_access_key",
    "db.export_table",
    "email.send_bulk",
    "s3.put_bucket_policy",
    "payments.refund",
    "k8s.rollout_restart",
)

LLM_ENDPOINTS: Final = {
    "openai": "https://api.openai.com/v1/chat/completions",
    "anthropic": "https://api.anthropic.com/v1/messages",
    "google": "https://generativelanguage.googleapis.com/v1beta/models:generateContent",
    "mistral": "https://api.mistral.ai/v1/chat/completions",
}
