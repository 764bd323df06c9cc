"""Retrieval benchmarks against the issue's targets, on a temporary folder.

Prints each figure beside its target: hybrid search p50 at 100,000 indexed facts, incremental
refresh of 1,000 changed facts at that size, and recall@5 of vector, full-text and hybrid
search on a small labelled set (queries with known relevant facts, hidden among 2,000
look-alike facts of the same agent). The semantic embedder is measured too when the
``semantic`` extra is installed.

    python bench/bench_retrieval.py [--facts 100000] [--queries 200] [--keep DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import sys
import time
from pathlib import Path

import lancedb
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, too

from _report import ms, quantile, row, timed, work_folder

from memory import FactChange, MemoryStore  # noqa: E402
from memory.embedders import Embedder, HashingEmbedder  # noqa: E402
from memory.retrieval import MemoryIndex, SearchMode  # noqa: E402

AGENTS = 50
EVAL_AGENT = "support-agent-07"
MODES: tuple[SearchMode, ...] = ("vector", "text", "hybrid")

# -- a labelled set: facts one agent holds, and queries whose relevant facts are known ------

LABELLED: dict[str, tuple[str, str]] = {
    "pricing.discount_cap": ("pricing", "Discounts above 15% need written approval from the finance lead."),  # noqa: E501
    "pricing.enterprise_floor": ("pricing", "Enterprise tier seats are never sold below $40 per user per month."),  # noqa: E501
    "pricing.annual_prepay": ("pricing", "Customers who prepay annually get two months free."),
    "pricing.currency": ("pricing", "Invoices for European customers are issued in euros, not dollars."),  # noqa: E501
    "crm.acme_contact": ("crm", "Acme Corp wants all communication through their procurement portal, not email."),  # noqa: E501
    "crm.globex_champion": ("crm", "Our champion at Globex is Dana Whitfield, the head of data engineering."),  # noqa: E501
    "crm.initech_churn": ("crm", "Initech complained twice about slow support and is at risk of churning."),  # noqa: E501
    "crm.umbrella_timezone": ("crm", "Umbrella Health's team works from Singapore, so schedule calls before 10am UTC."),  # noqa: E501
    "crm.hooli_legal": ("crm", "Hooli's contract renewal on March 1 requires legal review 30 days in advance."),  # noqa: E501
    "ops.deploy_freeze": ("ops", "No production deploys on Fridays after 2pm."),
    "ops.db_failover": ("ops", "The primary Postgres database fails over to the eu-west replica automatically."),  # noqa: E501
    "ops.pager_rotation": ("ops", "The on-call pager rotates every Monday at 9am."),
    "ops.backup_retention": ("ops", "Nightly backups are kept for 35 days, then deleted."),
    "ops.gpu_quota": ("ops", "The team's GPU quota is 8 A100 cards; request more through the capacity form."),  # noqa: E501
    "ops.incident_sev1": ("ops", "A sev-1 incident must be announced on the status page within 15 minutes."),  # noqa: E501
    "policy.refund_window": ("policy", "Refunds are allowed within 30 days of purchase without a manager's approval."),  # noqa: E501
    "policy.pii_logs": ("policy", "Never write customer personal data such as emails or phone numbers to logs."),  # noqa: E501
    "policy.password_rotation": ("policy", "Service account passwords are rotated every 90 days."),
    "policy.gift_limit": ("policy", "Employees may not accept gifts worth more than $50 from vendors."),  # noqa: E501
    "policy.travel_booking": ("policy", "Flights must be booked through the travel portal at least 14 days ahead."),  # noqa: E501
    "calendar.quarter_close": ("calendar", "The fiscal quarter closes on the 28th; no new discounts after the 25th."),  # noqa: E501
    "calendar.board_meeting": ("calendar", "The board meets on the second Tuesday of each quarter."),  # noqa: E501
    "calendar.holiday_freeze": ("calendar", "Code freeze runs from December 20 to January 3."),
    "product.sso": ("product", "Single sign-on with Okta and Azure AD is only available on the enterprise plan."),  # noqa: E501
    "product.api_limit": ("product", "The public API allows 600 requests per minute per key."),
    "product.export_csv": ("product", "Reports can be exported as CSV or Parquet from the analytics page."),  # noqa: E501
    "product.mobile_offline": ("product", "The mobile app caches the last 7 days of data for offline use."),  # noqa: E501
    "product.api_v1_sunset": ("product", "API version 1 will be switched off on June 30."),
}  # fmt: skip

# (query, relevant fact ids, kind): kind says what the query tests.
QUERIES: list[tuple[str, set[str], str]] = [
    ("discount approval finance lead", {"pricing.discount_cap"}, "keyword"),
    ("Acme procurement portal", {"crm.acme_contact"}, "keyword"),
    ("GPU quota", {"ops.gpu_quota"}, "keyword"),
    ("backup retention days", {"ops.backup_retention"}, "keyword"),
    ("API requests per minute", {"product.api_limit"}, "keyword"),
    ("board meeting", {"calendar.board_meeting"}, "keyword"),
    ("Okta single sign-on", {"product.sso"}, "keyword"),
    ("code freeze December", {"calendar.holiday_freeze"}, "keyword"),
    ("approving big discounts", {"pricing.discount_cap"}, "variant"),
    ("refund windows", {"policy.refund_window"}, "variant"),
    ("Globex champion", {"crm.globex_champion"}, "variant"),
    ("initech churn", {"crm.initech_churn"}, "variant"),
    ("pasword rotaton", {"policy.password_rotation"}, "variant"),
    ("invocies in euro", {"pricing.currency"}, "variant"),
    ("postgres failover replica", {"ops.db_failover"}, "variant"),
    ("deploying on friday", {"ops.deploy_freeze"}, "variant"),
    ("Umbrella Helth timezone", {"crm.umbrella_timezone"}, "variant"),
    ("prepaying annualy", {"pricing.annual_prepay"}, "variant"),
    ("who has to sign off on large price reductions", {"pricing.discount_cap"}, "paraphrase"),
    ("which customer might leave us", {"crm.initech_churn"}, "paraphrase"),
    ("how long do we keep database snapshots", {"ops.backup_retention"}, "paraphrase"),
    ("can I take a present from a supplier", {"policy.gift_limit"}, "paraphrase"),
    ("lawyers must check the Hooli agreement", {"crm.hooli_legal"}, "paraphrase"),
    ("rate limit of the public API", {"product.api_limit"}, "paraphrase"),
    ("who is on call this week", {"ops.pager_rotation"}, "paraphrase"),
    ("is SSO included in cheaper plans", {"product.sso"}, "paraphrase"),
    ("can customers use the app without internet", {"product.mobile_offline"}, "paraphrase"),
    ("what to do when a major outage starts", {"ops.incident_sev1"}, "paraphrase"),
    ("booking plane tickets", {"policy.travel_booking"}, "paraphrase"),
    ("when does the old API stop working", {"product.api_v1_sunset"}, "paraphrase"),
    ("do not put phone numbers in log files", {"policy.pii_logs"}, "paraphrase"),
    ("cheapest price for a big company seat", {"pricing.enterprise_floor"}, "paraphrase"),
]

# -- look-alike facts: the same domains and words, generated from a seed ------------------

_SYLLABLES = ("no", "ra", "vel", "tor", "ix", "an", "qu", "bel", "dor", "fen", "gal", "hy",
              "lum", "mar", "ost", "pra", "sil", "tev", "ul", "wyn")  # fmt: skip
_PEOPLE = ("Ana", "Ben", "Chloe", "Dev", "Eli", "Farah", "Gus", "Hana", "Ivo", "Jade", "Kai",
           "Lena", "Milo", "Nora", "Omar", "Pia")  # fmt: skip
_TOPICS = ("billing", "onboarding", "security", "pricing", "reporting", "migration", "support",
           "renewal")  # fmt: skip
_FEATURES = ("SSO", "exports", "dashboards", "webhooks", "audit-logs", "alerts", "API-keys",
             "sandbox")  # fmt: skip
_TEAMS = ("platform", "payments", "growth", "data", "infra", "support")
_SERVICES = ("billing-api", "search", "ingest", "gateway", "scheduler", "notifier")
_REGIONS = ("eu-west", "us-east", "ap-south", "us-west")
_ISSUES = ("memory leak", "disk full", "bad deploy", "network partition", "expired certificate")
_CHANNELS = ("email", "phone", "Slack", "the portal", "video calls")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October")  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_TEMPLATES = [
    "{company} prefers {channel} for {topic} updates.",
    "Invoice {n} for {company} is due on {month} {day}.",
    "A discount of {pct}% was approved for {company} by {person}.",
    "{company} asked about {feature} during the {month} call.",
    "Server {host} in {region} restarted after a {issue} at {hour}:00.",
    "{person} owns the {topic} runbook for the {team} team.",
    "Ticket {n} from {company} about {feature} was escalated to {team}.",
    "{company} renewed the {plan} plan for {years} years.",
    "The {team} team deploys {service} every {weekday}.",
    "{person} is out of office until {month} {day}.",
    "Backups of {service} run at {hour}:00 in {region}.",
    "{company} reported slow {feature} and wants a refund for {month}.",
]


def _company(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).title()


def fact_text(rng: random.Random) -> tuple[str, str]:
    """One look-alike fact: (namespace, content)."""
    template = rng.choice(_TEMPLATES)
    text = template.format(
        company=_company(rng),
        channel=rng.choice(_CHANNELS),
        topic=rng.choice(_TOPICS),
        n=rng.randint(1000, 99999),
        month=rng.choice(_MONTHS),
        day=rng.randint(1, 28),
        pct=rng.randint(5, 40),
        person=rng.choice(_PEOPLE),
        feature=rng.choice(_FEATURES),
        host=f"srv-{rng.randint(1, 400)}",
        region=rng.choice(_REGIONS),
        issue=rng.choice(_ISSUES),
        hour=rng.randint(0, 23),
        team=rng.choice(_TEAMS),
        plan=rng.choice(["starter", "team", "enterprise"]),
        years=rng.randint(1, 5),
        service=rng.choice(_SERVICES),
        weekday=rng.choice(_WEEKDAYS),
    )
    return _TOPICS[_TEMPLATES.index(template) % len(_TOPICS)], text


def load_agents(store: MemoryStore, facts: int, rng: random.Random) -> None:
    """``facts`` look-alike facts spread over ``AGENTS`` agents, one commit per agent."""
    per_agent = facts // AGENTS
    for a in range(AGENTS):
        changes = []
        for i in range(per_agent):
            namespace, text = fact_text(rng)
            changes.append(FactChange.add(text, fact_id=f"f.{i}", namespace=namespace))
        store.commit(f"agent-{a:02d}", changes, message="bulk load", author="bench")


# -- reporting -----------------------------------------------------------------------------


# -- the benchmarks ------------------------------------------------------------------------


def bench_scale(root: Path, facts: int, queries: int) -> None:
    """Build at ``facts`` facts, search latency per mode, incremental refresh, rollback."""
    rng = random.Random(7)
    store = MemoryStore(root / "lake" / "memory_facts")
    load = timed(lambda: load_agents(store, facts, rng))
    row(f"load {facts:,} facts into memory ({AGENTS} commits)", f"{load:.1f} s", "(setup)", None)
    index = MemoryIndex(root / "lance")
    built = index.refresh_facts(store.uri)
    row(f"first build: embed + write + indexes ({facts:,})", f"{built.seconds:.1f} s",
         "(reported)", None)  # fmt: skip

    words = [w for _, text in (fact_text(rng) for _ in range(200)) for w in text.split()]
    asks = [
        (f"agent-{rng.randrange(AGENTS):02d}", " ".join(rng.sample(words, rng.randint(2, 4))))
        for _ in range(queries)
    ]
    for mode in ("hybrid", "vector", "text"):
        for agent, query in asks[:10]:  # warm the caches
            index.search(query, agent_id=agent, mode=mode)
        times = [
            timed(lambda a=a, q=q, m=mode: index.search(q, agent_id=a, mode=m)) for a, q in asks
        ]
        p50 = statistics.median(times)
        if mode == "hybrid":
            row(f"hybrid search p50, k=5, one agent ({facts:,} facts)", ms(p50), "< 20 ms",
                 p50 < 0.020)  # fmt: skip
            row("hybrid search p95", ms(quantile(times, 0.95)), "(reported)", None)
        else:
            row(f"{mode} search p50, one agent", ms(p50), "(reported)", None)
    times = [timed(lambda q=q: index.search(q)) for _, q in asks[:50]]
    row("hybrid search p50, no filter (all agents)", ms(statistics.median(times)),
         "(reported)", None)  # fmt: skip

    # 1,000 changed facts over 10 agents: 600 updated, 300 added, 100 deleted.
    before = store.version()
    added: list[str] = []
    for a in range(10):
        agent = f"agent-{a:02d}"
        changes = [FactChange.update(f"f.{i}", f"Revised: {fact_text(rng)[1]}") for i in range(60)]
        new = [f"{fact_text(rng)[1]} (new {a}.{i})" for i in range(30)]
        added += new if a == 0 else []
        changes += [FactChange.add(text, fact_id=f"new.{i}") for i, text in enumerate(new)]
        changes += [FactChange.delete(f"f.{100 + i}") for i in range(10)]
        store.commit(agent, changes, message="changes", author="bench")
    result = index.refresh_facts(store.uri)
    row(f"incremental refresh, 1,000 changed of {facts:,}", f"{result.seconds:.2f} s", "< 5 s",
         result.seconds < 5.0 and result.mode == "incremental")  # fmt: skip
    row("  rows re-embedded / deleted", f"{result.upserted} / {result.deleted}",
         "900 / 100", (result.upserted, result.deleted) == (900, 100))  # fmt: skip
    row("  versions read from the change feed", f"{before} -> {result.memory_version}",
         "(reported)", None)  # fmt: skip
    optimize = timed(index.optimize)
    row("optimize (fold 1,000 rows into the indexes)", f"{optimize:.2f} s", "(reported)", None)

    # Roll agent-00 back to before its changes: its 30 new facts must vanish from search.
    assert before is not None
    store.rollback("agent-00", before, reason="bad batch", author="bench")
    after = index.refresh_facts(store.uri)
    row("refresh after a rollback of 100 facts", f"{after.seconds:.2f} s", "(reported)", None)
    leaked = [
        hit.id
        for text in added
        for hit in index.search(text, agent_id="agent-00", k=50)
        if hit.id.startswith("new.")
    ]
    row("  rolled-back facts still returned", str(len(leaked)), "0", not leaked)
    full = index.refresh_facts(store.uri, full=True)
    row(f"full refresh pass, nothing changed ({facts:,})", f"{full.seconds:.2f} s",
         "(reported)", full.upserted == 0)  # fmt: skip
    table = lancedb.connect(str(root / "lance")).open_table("memory_index")
    names = sorted(idx.index_type for idx in table.list_indices())
    print(f"  indexes: {', '.join(names)}; snapshots: {len(index.versions())}")


def bench_quality(root: Path, embedder: Embedder, label: str) -> None:
    """recall@5 per mode on the labelled set, among 2,000 look-alike facts of the agent."""
    rng = random.Random(11)
    store = MemoryStore(root / f"quality-{label}" / "memory_facts")
    changes = [
        FactChange.add(text, fact_id=fid, namespace=ns) for fid, (ns, text) in LABELLED.items()
    ]
    for i in range(2000):
        namespace, text = fact_text(rng)
        changes.append(FactChange.add(text, fact_id=f"noise.{i}", namespace=namespace))
    store.commit(EVAL_AGENT, changes, message="labelled set", author="bench")
    index = MemoryIndex(root / f"lance-{label}", embedder=embedder)
    built = index.refresh_facts(store.uri)
    rate = built.upserted / built.seconds
    row(f"[{label}] build of {built.upserted:,} facts", f"{built.seconds:.1f} s",
         f"{rate:,.0f} facts/s", None)  # fmt: skip
    kinds = sorted({kind for _, _, kind in QUERIES})
    for mode in MODES:
        found: dict[str, list[float]] = {kind: [] for kind in kinds}
        times = []
        for query, relevant, kind in QUERIES:
            started = time.perf_counter()
            hits = {h.id for h in index.search(query, agent_id=EVAL_AGENT, k=5, mode=mode)}
            times.append(time.perf_counter() - started)
            found[kind].append(len(hits & relevant) / len(relevant))
        overall = statistics.mean(v for values in found.values() for v in values)
        parts = " ".join(f"{kind[:4]} {statistics.mean(found[kind]):.2f}" for kind in kinds)
        row(f"[{label}] recall@5 {mode} ({len(QUERIES)} queries)", f"{overall:.2f}",
             parts, None)  # fmt: skip
        if mode == "hybrid":
            row(f"[{label}] hybrid search p50 (query embedding included)",
                 ms(statistics.median(times)), "(reported)", None)  # fmt: skip


def bench_semantic(root: Path) -> None:
    """The semantic extra, if installed: import time, throughput, recall."""
    if importlib.util.find_spec("sentence_transformers") is None:
        print("  semantic extra not installed: skipped (pip install 'agentops-grid[semantic]')")
        return
    from memory.embedders import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    load = timed(lambda: embedder.embed(["warm up"]))
    row("[semantic] import torch + load model", f"{load:.1f} s", "(reported)", None)
    texts = [fact_text(random.Random(i))[1] for i in range(512)]
    took = timed(lambda: embedder.embed(texts))
    row("[semantic] embed 512 facts", f"{len(texts) / took:,.0f} texts/s", "(reported)", None)
    one = statistics.median(timed(lambda: embedder.embed(["who approves discounts"]))
                            for _ in range(20))  # fmt: skip
    row("[semantic] embed one query", ms(one), "(reported)", None)
    bench_quality(root, embedder, "semantic")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    with work_folder("bench_retrieval_", args.keep) as root:
        print(
            f"retrieval bench: {os.cpu_count()} cores, lancedb {lancedb.__version__}, "
            f"polars {pl.__version__}, embedder {HashingEmbedder().name}, local disk at {root}, "
            f"load average {os.getloadavg()[0]:.1f} (figures are noisy on a busy machine)"
        )
        started = time.perf_counter()
        bench_scale(root, args.facts, args.queries)
        bench_quality(root, HashingEmbedder(), "hashing")
        bench_semantic(root)
    print(f"  total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
