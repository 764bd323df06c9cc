"""The supervisor console over a real uvicorn: every page on an empty home and on a small real
one (real Delta, real Rego, a real memory store), and the forms that approve, reject, roll back
and freeze, checked in the tables, the audit ledger, memory and the control file."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import polars as pl
import pytest

from agentops_assets.control.output import control_path
from agentops_assets.control.refresh import refresh_autonomy
from agentops_assets.control.tables import AUTONOMY_STATE
from agentops_assets.drift.tables import DRIFT_FINDINGS, FINDINGS_SCHEMA
from agentops_assets.finops.refresh import refresh_all
from agentops_assets.governance import audit
from agentops_assets.governance.ledger import AuditLedger
from agentops_assets.governance.refresh import refresh_decisions, refresh_ledger, refresh_reviews
from agentops_assets.governance.review import review_id, reviews
from agentops_assets.service import charts
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from memory import TABLE_NAME, FactChange, MemoryStore
from tests.service_server import (
    OWN_AGENT,
    bearer,
    login,
    private_home,
    role_tokens,
    running_service,
)

TODAY = datetime.now(UTC).date()
YESTERDAY = TODAY - timedelta(days=1)
SUPPORT = "support-1"
FINANCE = "finance-1"
ROGUE_EVENT = "ev-rogue-key"  # SupportAgent calls iam.create_key: deny, red
REFUND_EVENT = "ev-refund-900"  # a 900 USD refund, above SupportAgent's 500: review, red
ROGUE_REVIEW = review_id(ROGUE_EVENT)
REFUND_REVIEW = review_id(REFUND_EVENT)
HOSTILE = '<script>alert("x")</script>'


# --- a small real home, built once and copied for each test -----------------------------------


def _step(day: date, n: int, agent: str, agent_type: str, trace: str, **fields: object) -> dict:
    record: dict[str, object] = {
        "event_id": f"ev-{agent}-{day:%m%d}-{n:03d}",
        "trace_id": trace,
        "ts": f"{day}T09:{n % 60:02d}:00.000000Z",
        "duration_ms": 120.5,
        "agent_id": agent,
        "agent_type": agent_type,
        "agent_tier": "tactical",
        "kind": "tool_call",
        "action": "kb.search",
        "status": "ok",
        "attributes": {},
    }
    return record | fields


def _cycle(day: date, n: int, agent: str, agent_type: str, *tools: dict) -> list[dict]:
    """One reasoning cycle: an LLM call, the tool calls, a decision with an outcome."""
    trace = f"tr-{agent}-{day:%m%d}-{n:02d}"
    steps = [
        _step(day, n, agent, agent_type, trace, kind="llm_call", action="chat",
              provider="openai", model="gpt-4o", input_tokens=1200, output_tokens=300),
        *(_step(day, n + 1 + i, agent, agent_type, trace, **tool) for i, tool in enumerate(tools)),
        _step(day, n + 9, agent, agent_type, trace, kind="decision", action="answer",
              outcome="success" if n % 3 else "failure", confidence=0.6 + (n % 4) / 10),
    ]  # fmt: skip
    return steps


def _telemetry() -> list[dict]:
    records = []
    for day in (YESTERDAY, TODAY):
        for n in range(0, 40, 10):
            records += _cycle(day, n, FINANCE, "FinanceAgent", {"action": "ledger.query"})
            records += _cycle(day, n + 1, SUPPORT, "SupportAgent", {"action": "kb.search"})
    rogue = _cycle(TODAY, 50, SUPPORT, "SupportAgent", {"action": "iam.create_key"})
    rogue[1]["event_id"] = ROGUE_EVENT
    refund_call = {"action": "orders.refund_request", "attributes": {"amount_usd": 900}}
    refund = _cycle(TODAY, 52, SUPPORT, "SupportAgent", refund_call)
    refund[1]["event_id"] = REFUND_EVENT
    return records + rogue + refund


def _finding(paths: Paths) -> None:
    """A warning no autonomy rule acts on, so the states stay the rules' own."""
    row = {
        "day": TODAY, "agent_type": "FinanceAgent", "agent_id": None,
        "metric": "cost_per_cycle", "baseline_value": 0.004, "current_value": 0.006,
        "change_pct": 50.0, "test": "welch_t", "statistic": 3.1, "p_value": 0.001,
        "effect_size": 0.7, "severity": "warning",
        "detail": "FinanceAgent cost_per_cycle rose from $0.0040 to $0.0060.", "finding_id": "df-1",
    }  # fmt: skip
    frame = pl.DataFrame([row], schema=FINDINGS_SCHEMA)
    lake.append(paths.table_uri(DRIFT_FINDINGS), frame, partition_by=["day"])


def _memory(paths: Paths) -> list[int]:
    store = MemoryStore(paths.table_uri(TABLE_NAME))
    first = store.commit(
        SUPPORT,
        [FactChange.add("Refunds above 500 USD need a second look.", fact_id="refunds.limit")],
        message="learned the refund limit",
        author="agentops.memory_feed",
    )
    second = store.commit(
        SUPPORT,
        [FactChange.update("refunds.limit", "Refunds are always fine.")],
        message="a wrong lesson",
        author="agentops.memory_feed",
    )
    audit.record_memory(AuditLedger(paths), paths)
    return [first.version, second.version]


def build_home(home: Path) -> Paths:
    """Two agents over two days, judged, queued, in the ledger, with memory and states."""
    paths = Paths(home=home, lake_uri=str(home / "lake"))
    paths.landing.mkdir(parents=True)
    (paths.landing / "fleet.jsonl").write_bytes(
        b"".join(orjson.dumps(r) + b"\n" for r in _telemetry())
    )
    assert ingest_landing(paths).quarantined_rows == 0
    refresh_all(paths, YESTERDAY, TODAY)
    _finding(paths)
    refresh_decisions(paths, YESTERDAY, TODAY)
    refresh_reviews(paths, YESTERDAY, TODAY)
    refresh_ledger(paths, YESTERDAY, TODAY)
    _memory(paths)
    refresh_autonomy(paths)
    return paths


@pytest.fixture(scope="module")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_home(tmp_path_factory.mktemp("template") / "home").home


@pytest.fixture
def home(template_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    return private_home(template_home, tmp_path / "home", monkeypatch)


@pytest.fixture
def served(home: Paths) -> Iterator[tuple[str, dict[str, str]]]:
    with running_service(home) as url:
        yield url, role_tokens(home)


@pytest.fixture
def approver(served: tuple[str, dict[str, str]]) -> Iterator[httpx.Client]:
    url, tokens = served
    client = login(url, tokens["approver"])
    yield client
    client.close()


def _name(paths: Paths, role: str) -> str:
    from agentops_assets.service.access import TokenStore

    return next(t.name for t in TokenStore(paths).list() if t.role == role)


def _item(paths: Paths, item_id: str) -> dict:
    return reviews(paths).filter(pl.col("review_id") == item_id).row(0, named=True)


def _ledger(paths: Paths, kind: str) -> pl.DataFrame:
    return AuditLedger(paths).entries(kind=kind)


def _text(html: str) -> str:
    """The page's text without tags, whitespace collapsed (what a person reads)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- charts -----------------------------------------------------------------------------------


def test_a_line_chart_escapes_its_labels_and_leaves_gaps_for_missing_days() -> None:
    svg = charts.line_chart(
        ["11-01", HOSTILE, "11-03", "11-04"],
        [0.8, None, 0.7, 0.2],
        title=HOSTILE,
        band=[(0.6, 0.9)] * 4,
        baseline=[0.75] * 4,
    )
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count('class="series"') == 1  # 11-01 alone is no segment; 11-03..11-04 is one
    assert svg.count('class="point alert"') == 1  # 0.2 is below the band
    assert svg.count("<circle") == 3


def test_a_bar_chart_marks_days_over_the_cap_and_draws_the_cap() -> None:
    svg = charts.bar_chart(["a", "b", "c"], [5.0, 12.0, None], title="spend", cap=10.0)
    assert svg.count('class="bar ok"') == 1 and svg.count('class="bar bad"') == 1
    assert 'class="cap"' in svg and "cap $10" not in svg  # the default format is plain numbers
    assert "cap 10" in svg


def test_a_chart_without_data_says_so_and_mismatched_input_is_refused() -> None:
    assert "no data for these days" in charts.line_chart(["a"], [None], title="t")
    with pytest.raises(ValueError, match="one value per label"):
        charts.bar_chart(["a", "b"], [1.0], title="t")


# --- pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/", "No agents yet"),
        ("/reviews", "Nothing waits for a human"),
        ("/budgets", "No spend yet"),
        ("/drift", "No metrics yet"),
    ],
)
def test_every_page_renders_on_an_empty_home(paths: Paths, path: str, says: str) -> None:
    with running_service(paths) as url:
        client = login(url, role_tokens(paths)["viewer"])
        page = client.get(path)
    assert page.status_code == 200
    assert says in page.text
    assert "Log out" in page.text


def test_an_unknown_agent_or_trace_is_a_page_that_says_so(paths: Paths) -> None:
    with running_service(paths) as url:
        client = login(url, role_tokens(paths)["viewer"])
        agent = client.get("/agents/nobody")
        trace = client.get("/traces/tr-nothing")
        diff = client.get("/agents/nobody/memory/3")
    assert (agent.status_code, trace.status_code, diff.status_code) == (404, 404, 404)
    assert "No such agent" in agent.text and "nobody" in agent.text
    assert "there is no telemetry yet" in trace.text
    assert "Traceback" not in agent.text + trace.text + diff.text


def test_every_page_renders_on_a_small_real_home(home: Paths, approver: httpx.Client) -> None:
    fleet = _text(approver.get("/").text)
    assert SUPPORT in fleet and FINANCE in fleet
    assert "2 pending reviews (2 red)" in fleet
    assert "1 open drift findings (0 critical)" in fleet
    assert "sandboxed" in fleet  # the rogue tool call's capability violation
    queue = approver.get("/reviews").text
    assert ROGUE_REVIEW in queue and REFUND_REVIEW in queue
    assert "iam.create_key" in queue and "amount usd" in _text(queue)
    assert queue.count('name="csrf"') == 3  # two decide forms and the logout form
    agent = approver.get(f"/agents/{SUPPORT}")
    assert agent.status_code == 200
    assert "a wrong lesson" in agent.text and "roll back to v" in agent.text
    assert agent.text.count('<svg class="chart"') == 4  # metrics against baseline
    assert f"/traces/tr-{SUPPORT}-" in agent.text
    trace = _text(approver.get(f"/traces/{ROGUE_EVENT}").text)
    assert "iam.create_key" in trace and "deny" in trace and ROGUE_REVIEW in trace
    budgets = approver.get("/budgets").text
    assert "spend per day against its daily cap" in budgets and "Whole fleet" in budgets
    drift = approver.get("/drift").text
    assert "FinanceAgent cost_per_cycle rose" in drift and "Findings per day" in drift


def test_a_viewer_reads_every_page_but_gets_no_forms(served: tuple[str, dict[str, str]]) -> None:
    url, tokens = served
    viewer = login(url, tokens["viewer"])
    for path in ("/", "/reviews", f"/agents/{SUPPORT}", f"/traces/{ROGUE_EVENT}", "/budgets"):
        page = viewer.get(path)
        assert page.status_code == 200, path
        assert page.text.count("<form") == 1, path  # log out only
    assert "deciding needs an approver or admin token" in viewer.get("/reviews").text


def test_a_page_without_a_session_goes_to_the_login(served: tuple[str, dict[str, str]]) -> None:
    url, _ = served
    reply = httpx.get(f"{url}/agents/{SUPPORT}", follow_redirects=False)
    assert reply.status_code == 303
    assert reply.headers["location"] == f"/login?next=%2Fagents%2F{SUPPORT}"


def test_the_memory_diff_is_a_fragment_for_htmx_and_a_page_otherwise(
    home: Paths, approver: httpx.Client
) -> None:
    versions = [c.version for c in MemoryStore(home.table_uri(TABLE_NAME)).log(SUPPORT)]
    fragment = approver.get(
        f"/agents/{SUPPORT}/memory/{versions[0]}", headers={"HX-Request": "true"}
    )
    assert "<html" not in fragment.text
    assert "refunds.limit" in fragment.text and "Refunds are always fine." in fragment.text
    page = approver.get(f"/agents/{SUPPORT}/memory/{versions[0]}")
    assert "<html" in page.text and "What this commit changed" in page.text


# --- forms ------------------------------------------------------------------------------------


def test_approving_with_a_correction_and_lesson_writes_queue_ledger_and_memory(
    home: Paths, approver: httpx.Client
) -> None:
    reply = approver.post(
        f"/reviews/{REFUND_REVIEW}",
        data={
            "csrf": approver.csrf,
            "verdict": "approve",
            "rationale": "The customer's order was checked.",
            "correction": "Ask finance before refunds above 500 USD.",
            "lesson_key": "refunds.ask_finance",
        },
    )
    assert (
        reply.status_code == 303 and reply.headers["location"] == f"/reviews?done={REFUND_REVIEW}"
    )
    who = _name(home, "approver")
    item = _item(home, REFUND_REVIEW)
    assert (item["state"], item["decided_by"], item["lesson_key"]) == (
        "approved", who, "refunds.ask_finance")  # fmt: skip
    approval = _ledger(home, "approval").filter(pl.col("subject") == REFUND_REVIEW)
    assert approval["actor"].to_list() == [who]
    payload = orjson.loads(approval["payload"][0])
    assert payload["correction"] == "Ask finance before refunds above 500 USD."
    facts = {f.fact_id: f for f in MemoryStore(home.table_uri(TABLE_NAME)).as_of(SUPPORT)}
    assert facts["refunds.ask_finance"].content == "Ask finance before refunds above 500 USD."
    assert facts["refunds.ask_finance"].namespace == "lessons"
    commit = _ledger(home, "memory_commit").tail(1)
    assert orjson.loads(commit["payload"][0])["approved_by"] == who
    notice = _text(approver.get(reply.headers["location"]).text)
    assert f"{REFUND_REVIEW} is approved" in notice and f"v{item['memory_version']}" in notice


def test_rejecting_is_recorded_with_the_rationale(home: Paths, approver: httpx.Client) -> None:
    reply = approver.post(
        f"/reviews/{ROGUE_REVIEW}",
        data={"csrf": approver.csrf, "verdict": "reject", "rationale": "Keys are not its job."},
    )
    assert reply.status_code == 303
    assert _item(home, ROGUE_REVIEW)["state"] == "rejected"
    rejection = _ledger(home, "rejection")
    assert rejection["subject"].to_list() == [ROGUE_REVIEW]
    assert rejection["actor"].to_list() == [_name(home, "approver")]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"verdict": "approve", "rationale": " "}, "the rationale is empty"),
        ({"verdict": "maybe", "rationale": "x"}, "choose Approve or Reject"),
        (
            {"verdict": "approve", "rationale": "x", "lesson_key": "refunds.x"},
            "a lesson needs the correction",
        ),
        (
            {"verdict": "approve", "rationale": "x", "correction": "c", "lesson_key": "k" * 300},
            "the lesson cannot be stored",
        ),
        (
            {"verdict": "reject", "rationale": "x", "correction": "c", "lesson_key": "k.one"},
            "a rejection carries no lesson",
        ),
    ],
)
def test_a_refused_verdict_is_a_message_and_changes_nothing(
    home: Paths, approver: httpx.Client, form: dict[str, str], message: str
) -> None:
    before = _ledger(home, "approval").height
    reply = approver.post(f"/reviews/{REFUND_REVIEW}", data={"csrf": approver.csrf, **form})
    assert reply.status_code == 400
    assert message in reply.text and "Traceback" not in reply.text
    assert _item(home, REFUND_REVIEW)["state"] == "pending"
    assert _ledger(home, "approval").height == before


def test_deciding_an_item_twice_is_a_message(home: Paths, approver: httpx.Client) -> None:
    form = {"csrf": approver.csrf, "verdict": "reject", "rationale": "No."}
    assert approver.post(f"/reviews/{ROGUE_REVIEW}", data=form).status_code == 303
    again = approver.post(f"/reviews/{ROGUE_REVIEW}", data=form)
    assert again.status_code == 400 and "is already rejected" in again.text
    unknown = approver.post("/reviews/rv-0000", data=form)
    assert unknown.status_code == 400 and "no review item" in unknown.text


def test_forms_without_csrf_or_from_a_viewer_are_refused(
    home: Paths, served: tuple[str, dict[str, str]]
) -> None:
    url, tokens = served
    form = {"verdict": "reject", "rationale": "No."}
    approver = login(url, tokens["approver"])
    assert approver.post(f"/reviews/{ROGUE_REVIEW}", data=form).status_code == 403
    viewer = login(url, tokens["viewer"])
    refused = viewer.post(f"/reviews/{ROGUE_REVIEW}", data={"csrf": viewer.csrf, **form})
    assert refused.status_code == 403
    frozen = viewer.post(
        f"/agents/{SUPPORT}/control",
        data={"csrf": viewer.csrf, "action": "set", "state": "frozen", "reason": "x"},
    )
    assert frozen.status_code == 403
    assert _item(home, ROGUE_REVIEW)["state"] == "pending"
    assert _ledger(home, "rejection").is_empty()


def test_rolling_back_memory_from_the_agent_page_commits_and_ledgers_it(
    home: Paths, approver: httpx.Client
) -> None:
    store = MemoryStore(home.table_uri(TABLE_NAME))
    first = store.log(SUPPORT)[-1].version
    reply = approver.post(
        f"/agents/{SUPPORT}/memory/rollback",
        data={"csrf": approver.csrf, "version": str(first), "reason": "the wrong refund lesson"},
    )
    assert reply.status_code == 303
    assert reply.headers["location"] == f"/agents/{SUPPORT}?done=rollback#memory"
    facts = {f.fact_id: f.content for f in store.as_of(SUPPORT)}
    assert facts == {"refunds.limit": "Refunds above 500 USD need a second look."}
    latest = store.log(SUPPORT, limit=1)[0]
    who = _name(home, "approver")
    assert (latest.kind, latest.author, latest.rolled_back_to) == ("rollback", who, first)
    entry = _ledger(home, "memory_rollback")
    assert entry["actor"].to_list() == [who]
    assert orjson.loads(entry["payload"][0])["message"] == "the wrong refund lesson"
    page = _text(approver.get(reply.headers["location"]).text)
    assert f"Memory rolled back as v{latest.version}" in page


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"version": "1", "reason": ""}, "the reason is empty"),
        ({"version": "x", "reason": "r"}, "pick the memory version"),
        ({"version": "999", "reason": "r"}, "999"),
    ],
)
def test_a_refused_rollback_is_a_message(
    home: Paths, approver: httpx.Client, form: dict[str, str], message: str
) -> None:
    head = MemoryStore(home.table_uri(TABLE_NAME)).version()
    reply = approver.post(
        f"/agents/{SUPPORT}/memory/rollback", data={"csrf": approver.csrf, **form}
    )
    assert reply.status_code == 400 and message in reply.text
    assert MemoryStore(home.table_uri(TABLE_NAME)).version() == head


def test_freezing_and_releasing_an_agent_changes_states_file_ledger_and_gate(
    home: Paths, served: tuple[str, dict[str, str]], approver: httpx.Client
) -> None:
    url, tokens = served
    reason = f"investigating {HOSTILE}"
    reply = approver.post(
        f"/agents/{FINANCE}/control",
        data={"csrf": approver.csrf, "action": "set", "state": "frozen", "reason": reason},
    )
    assert reply.status_code == 303
    who = _name(home, "approver")
    state = pl.read_delta(home.table_uri(AUTONOMY_STATE)).filter(pl.col("agent_id") == FINANCE)
    assert state["state"].to_list() == ["frozen"]
    document = orjson.loads(control_path(home).read_bytes())
    assert document["agents"][FINANCE]["state"] == "frozen"
    assert document["agents"][FINANCE]["allowed_tools"] == []
    change = _ledger(home, "autonomy_change").filter(pl.col("subject") == FINANCE)
    assert change["actor"].to_list() == [who]
    gate = httpx.get(f"{url}/v1/agents/{FINANCE}/state", headers=bearer(tokens["viewer"]))
    assert gate.status_code == 200 and gate.json()["state"] == "frozen"
    page = approver.get(f"/agents/{FINANCE}?done=control").text
    assert "&lt;script&gt;" in page and HOSTILE not in page  # escaped, never markup
    released = approver.post(
        f"/agents/{FINANCE}/control",
        data={"csrf": approver.csrf, "action": "release", "reason": "checked"},
    )
    assert released.status_code == 303
    gate = httpx.get(f"{url}/v1/agents/{FINANCE}/state", headers=bearer(tokens["viewer"]))
    assert gate.json()["state"] == "normal"
    assert _ledger(home, "autonomy_change").filter(pl.col("subject") == FINANCE).height == 2


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"action": "set", "state": "frozen", "reason": ""}, "the reason is empty"),
        ({"action": "set", "state": "asleep", "reason": "r"}, "unknown state"),
        ({"action": "set", "state": "frozen", "reason": "r", "until": "soon"}, "is no time"),
        ({"action": "set", "state": "frozen", "reason": "r", "until": "2020-01-01"}, "not in"),
        ({"action": "explode", "reason": "r"}, "choose Set state or Release"),
    ],
)
def test_a_refused_override_is_a_message_and_changes_nothing(
    home: Paths, approver: httpx.Client, form: dict[str, str], message: str
) -> None:
    reply = approver.post(f"/agents/{FINANCE}/control", data={"csrf": approver.csrf, **form})
    assert reply.status_code == 400 and message in reply.text
    assert _ledger(home, "autonomy_change").filter(pl.col("subject") == FINANCE).is_empty()


def test_the_trace_page_shows_what_followed_an_approval(
    home: Paths, approver: httpx.Client
) -> None:
    approver.post(
        f"/reviews/{ROGUE_REVIEW}",
        data={
            "csrf": approver.csrf,
            "verdict": "approve",
            "rationale": "Key revoked within the hour.",
            "correction": "Never create IAM keys.",
            "lesson_key": "iam.never_create_keys",
        },
    )
    trace = _text(approver.get(f"/traces/{ROGUE_REVIEW}").text)
    assert "Key revoked within the hour." in trace
    assert "Lesson from review" in trace  # the memory commit that followed
    assert "approval" in trace and _name(home, "approver") in trace


def test_a_review_the_gate_opened_is_decided_here_and_the_agent_sees_the_outcome(
    home: Paths, served: tuple[str, dict[str, str]], approver: httpx.Client
) -> None:
    url, tokens = served
    action = {
        "agent_id": OWN_AGENT,
        "agent_type": "FinanceAgent",
        "kind": "tool_call",
        "action": "payments.refund",
        "target": "invoice-77",
        "amount_usd": 20000,
    }
    asked = httpx.post(f"{url}/v1/decide", json=action, headers=bearer(tokens["agent"]))
    assert asked.status_code == 200, asked.text
    answer = asked.json()
    assert (answer["decision"], answer["zone"]) == ("review", "red")
    item_id = answer["review_id"]
    # The gate answers once the item is in its journal; the queue has it within ~0.2 s.
    deadline = time.monotonic() + 2
    while item_id not in (queue := _text(approver.get("/reviews?zone=red").text)):
        assert time.monotonic() < deadline, f"{item_id} not in the queue after 2 s"
        time.sleep(0.05)
    assert "payments.refund" in queue and "gate" in queue
    decided = approver.post(
        f"/reviews/{item_id}",
        data={"csrf": approver.csrf, "verdict": "approve", "rationale": "Invoice verified."},
    )
    assert decided.status_code == 303
    outcome = httpx.get(f"{url}/v1/reviews/{item_id}", headers=bearer(tokens["agent"]))
    assert outcome.status_code == 200 and outcome.json()["state"] == "approved"
