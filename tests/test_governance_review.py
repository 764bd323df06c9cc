"""The review queue and the audit trail around it, on real Delta, real Rego and a real memory
store: queue red decisions, approve with a lesson, trace, verify, and the catch-ups that leave
nothing out and write nothing twice."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import orjson
import polars as pl
import pytest
from click.testing import CliRunner, Result

from agentops_assets.cli import governance as governance_cli
from agentops_assets.cli.main import main
from agentops_assets.governance import review
from agentops_assets.governance.audit import record_bundle_change, record_memory
from agentops_assets.governance.engine import default_policy_folder
from agentops_assets.governance.judge import load_policies
from agentops_assets.governance.ledger import AuditLedger, Entry
from agentops_assets.governance.refresh import (
    LedgerUpdate,
    refresh_decisions,
    refresh_ledger,
    refresh_reviews,
)
from agentops_assets.governance.review import REVIEW_AUTHOR, ReviewError, decide, reviews
from agentops_assets.governance.tables import REVIEW_QUEUE
from agentops_assets.governance.tampering import Tamper, cut_tail, delete, edit, forge, reorder
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.ingest import ingest_landing
from memory import TABLE_NAME, Commit, FactChange, MemoryStore

DAY = dt.date(2026, 11, 18)
AGENT = "support-1"
ROGUE_EVENT = "ev-00000002"  # SupportAgent calls iam.create_key: deny, red
REFUND_EVENT = "ev-00000004"  # a 900 USD refund, above SupportAgent's 500: review, red
ROGUE_REVIEW = review.review_id(ROGUE_EVENT)
REFUND_REVIEW = review.review_id(REFUND_EVENT)
RATIONALE = "Key revoked within the hour."
MINUTE = dt.timedelta(minutes=1)
SHIPPED_REGO = default_policy_folder() / "agentops.rego"
RED_OBLIGATION = '{"approvals": 1, "review": "before"}'


def _step(n: int, trace_id: str, kind: str, action: str, **overrides: object) -> dict:
    """One native JSONL event of the support agent, the n-th minute of the day."""
    record: dict[str, object] = {
        "event_id": f"ev-{n:08d}",
        "trace_id": trace_id,
        "ts": f"{DAY}T09:{n:02d}:00.000000Z",
        "duration_ms": 120.5,
        "agent_id": AGENT,
        "agent_type": "SupportAgent",
        "agent_tier": "tactical",
        "kind": kind,
        "action": action,
        "status": "ok",
        "attributes": {},
    }
    return record | overrides


def _telemetry(paths: Paths) -> None:
    """Three cycles of one support agent: a rogue tool call, a large refund, a quiet search."""
    steps = [
        _step(1, "tr-rogue", "llm_call", "chat", provider="openai", model="gpt-4o",
              input_tokens=1200, output_tokens=300),
        _step(2, "tr-rogue", "tool_call", "iam.create_key", action_target="prod"),
        _step(3, "tr-rogue", "tool_call", "zendesk.reply"),
        _step(4, "tr-refund", "tool_call", "orders.refund_request", attributes={"amount_usd": 900}),
        _step(5, "tr-quiet", "tool_call", "kb.search"),
    ]  # fmt: skip
    paths.landing.mkdir(parents=True, exist_ok=True)
    (paths.landing / "support.jsonl").write_bytes(b"".join(orjson.dumps(s) + b"\n" for s in steps))
    report = ingest_landing(paths)
    assert (report.records, report.quarantined_rows) == (5, 0)


def _refresh(paths: Paths) -> LedgerUpdate:
    refresh_decisions(paths, DAY, DAY)
    refresh_reviews(paths, DAY, DAY)
    return refresh_ledger(paths, DAY, DAY)


def _policies(folder: Path, *, approvals: int = 1) -> Path:
    """A copy of the shipped policy whose red zone needs ``approvals`` approvals."""
    folder.mkdir(parents=True, exist_ok=True)
    text = SHIPPED_REGO.read_text()
    assert RED_OBLIGATION in text
    changed = RED_OBLIGATION.replace('"approvals": 1', f'"approvals": {approvals}')
    (folder / "agentops.rego").write_text(text.replace(RED_OBLIGATION, changed))
    return folder


@pytest.fixture
def judged(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """The support agent's day ingested, judged, queued and in the ledger."""
    monkeypatch.delenv("AGENTOPS_POLICIES", raising=False)
    monkeypatch.delenv("AGENTOPS_REVIEWER", raising=False)
    _telemetry(paths)
    update = _refresh(paths)
    assert (update.decisions, update.bundle_changed, update.report.ok) == (2, True, True)
    return paths


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(governance_cli.console, "width", 250)  # no wrapping inside table cells


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _approve(item: str, by: str, *extra: str) -> Result:
    rationale = "Checked with the owner."
    return _cli("review", "approve", item, "--rationale", rationale, "--by", by, *extra)


def _item(paths: Paths, item: str) -> dict:
    (row,) = reviews(paths).filter(pl.col("review_id") == item).iter_rows(named=True)
    return row


def _refused(result: Result, words: str) -> None:
    """Exit 1 with one sentence naming the problem, no traceback."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and words in lines[0], lines[0]
    assert lines[0].endswith(".") and "Traceback" not in result.output


def _state(paths: Paths, item: str) -> tuple[str, list[str], str | None]:
    row = _item(paths, item)
    return row["state"], row["approved_by"], row["decided_by"]


def _entries(paths: Paths, kind: str, subject: str | None = None) -> pl.DataFrame:
    return AuditLedger(paths).entries(subject, kind=kind)


# --- 1. end to end ----------------------------------------------------------------------------


def test_a_red_decision_approved_with_a_lesson_is_traced_end_to_end(judged: Paths) -> None:
    paths = judged
    pending = reviews(paths, "pending")
    assert sorted(pending["event_id"]) == [ROGUE_EVENT, REFUND_EVENT]
    assert set(pending["zone"]) == {"red"} and set(pending["approvals_required"]) == {1}
    decided = _entries(paths, "policy_decision")
    assert sorted(decided["subject"]) == [ROGUE_EVENT, REFUND_EVENT]
    listed = _cli("review", "list").output
    assert ROGUE_REVIEW in listed and REFUND_REVIEW in listed and "pending 0/1" in listed

    correction = "Ask the security team for IAM keys; never create them."
    approved = _cli(
        "review", "approve", ROGUE_REVIEW, "--rationale", RATIONALE,
        "--correction", correction, "--lesson", "iam_keys", "--by", "alice",
    )  # fmt: skip
    assert approved.exit_code == 0, approved.output
    assert f"Approved {ROGUE_REVIEW} (1/1 approvals) by alice." in approved.output

    assert _state(paths, ROGUE_REVIEW) == ("approved", ["alice"], "alice")
    item = _item(paths, ROGUE_REVIEW)
    assert (item["correction"], item["lesson_key"]) == (correction, "iam_keys")
    assert _item(paths, REFUND_REVIEW)["state"] == "pending"

    (approval,) = _entries(paths, "approval").iter_rows(named=True)
    assert (approval["subject"], approval["actor"]) == (ROGUE_REVIEW, "alice")
    payload = json.loads(approval["payload"])
    assert (payload["event_id"], payload["state"], payload["approval"]) == (
        ROGUE_EVENT,
        "approved",
        "1/1",
    )
    assert (payload["rationale"], payload["lesson_key"]) == (RATIONALE, "iam_keys")

    store = MemoryStore(paths.table_uri(TABLE_NAME))
    (commit,) = store.log(AGENT)
    assert commit.version == item["memory_version"]
    assert (commit.approved_by, commit.author) == ("alice", REVIEW_AUTHOR)
    assert commit.cycle_id == "tr-rogue"
    assert commit.message == f"Lesson from review {ROGUE_REVIEW}: {RATIONALE}"
    (fact,) = store.as_of(AGENT)
    assert (fact.fact_id, fact.namespace, fact.content) == ("iam_keys", "lessons", correction)
    assert (fact.source, fact.metadata["review_id"]) == (ROGUE_EVENT, ROGUE_REVIEW)
    (remembered,) = _entries(paths, "memory_commit").iter_rows(named=True)
    payload = json.loads(remembered["payload"])
    assert (payload["version"], payload["approved_by"]) == (commit.version, "alice")
    assert (remembered["subject"], remembered["seq"]) == ("tr-rogue", approval["seq"] + 1)

    revision = decided["payload"].str.json_path_match("$.revision")[0]
    judged_entry = decided.filter(pl.col("subject") == ROGUE_EVENT).row(0, named=True)
    for asked in (ROGUE_REVIEW, ROGUE_EVENT):
        traced = _cli("audit", "trace", asked)
        assert traced.exit_code == 0, traced.output
        shown = traced.output
        for step in ("ev-00000001", ROGUE_EVENT, "ev-00000003", "iam.create_key", "zendesk.reply"):
            assert step in shown, (asked, step)
        assert "deny/red" in shown and revision[:12] in shown
        assert "Tool iam.create_key is outside the capabilities of agent type" in shown
        assert ROGUE_REVIEW in shown and "alice" in shown and correction in shown
        for entry in (judged_entry, approval, remembered):
            assert f"{entry['kind']} " in shown and entry["hash"][:12] in shown
        assert f"v{commit.version}" in shown and commit.message in shown
        assert REFUND_EVENT not in shown  # another cycle

    refund = _cli("audit", "trace", REFUND_EVENT)
    assert refund.exit_code == 0 and "pending" in refund.output and "alice" not in refund.output
    verified = _cli("audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert "The audit ledger holds" in verified.output


def test_trace_of_an_unknown_id_is_one_sentence(judged: Paths) -> None:
    _refused(_cli("audit", "trace", "ev-nobody"), "'ev-nobody' is no event id")
    _refused(_cli("audit", "trace", "rv-0000000000000000"), "no review item")


# --- 2. review rules --------------------------------------------------------------------------


def test_the_same_person_cannot_approve_twice(judged: Paths) -> None:
    assert _approve(REFUND_REVIEW, "alice").exit_code == 0
    height = AuditLedger(judged).entries().height
    _refused(_approve(REFUND_REVIEW, "alice"), f"review {REFUND_REVIEW} is already approved")
    assert AuditLedger(judged).entries().height == height
    assert _item(judged, REFUND_REVIEW)["approved_by"] == ["alice"]


def test_an_item_needing_two_approvals_waits_for_a_second_person(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTOPS_POLICIES", str(_policies(tmp_path / "policies", approvals=2)))
    _telemetry(paths)
    _refresh(paths)
    assert _item(paths, REFUND_REVIEW)["approvals_required"] == 2
    assert _item(paths, ROGUE_REVIEW)["approvals_required"] == 1  # a deny carries no obligation

    first = _approve(REFUND_REVIEW, "alice")
    assert first.exit_code == 0, first.output
    assert f"Approval recorded for {REFUND_REVIEW}: 1/2, it waits for more." in first.output
    assert _state(paths, REFUND_REVIEW) == ("pending", ["alice"], None)

    _refused(_approve(REFUND_REVIEW, "alice"), "alice already approved review")
    assert _item(paths, REFUND_REVIEW)["approved_by"] == ["alice"]

    second = _approve(REFUND_REVIEW, "bob")
    assert second.exit_code == 0, second.output
    assert f"Approved {REFUND_REVIEW} (2/2 approvals) by bob." in second.output
    assert _state(paths, REFUND_REVIEW) == ("approved", ["alice", "bob"], "bob")
    approvals = _entries(paths, "approval", REFUND_REVIEW)
    assert approvals["actor"].to_list() == ["alice", "bob"]
    payloads = [json.loads(p) for p in approvals["payload"]]
    assert [(p["approval"], p["state"]) for p in payloads] == [
        ("1/2", "pending"),
        ("2/2", "approved"),
    ]

    rejected = _cli("review", "reject", REFUND_REVIEW, "--rationale", "Too late.", "--by", "carol")
    _refused(rejected, f"review {REFUND_REVIEW} is already approved (by bob at ")
    assert _entries(paths, "rejection").is_empty()
    assert AuditLedger(paths).verify().ok


def test_enqueue_keeps_the_approvals_a_caller_asks_for(judged: Paths) -> None:
    paths = judged
    decisions = pl.read_delta(paths.table_uri("policy_decisions")).filter(
        pl.col("event_id") == "ev-00000005"
    )
    items = review.candidates(decisions.with_columns(pl.lit(1.0).alias("sample_rate")))
    items = items.with_columns(pl.lit(2, pl.Int32).alias("approvals_required"))
    assert review.enqueue(paths, items).height == 1
    assert review.enqueue(paths, items).is_empty()  # one item per event
    quiet = review.review_id("ev-00000005")
    assert _item(paths, quiet)["approvals_required"] == 2
    decide(paths, quiet, "approve", reviewer="alice", rationale="Fine.")
    assert _state(paths, quiet) == ("pending", ["alice"], None)
    decide(paths, quiet, "approve", reviewer="bob", rationale="Fine too.")
    assert _state(paths, quiet) == ("approved", ["alice", "bob"], "bob")
    assert _entries(paths, "approval", quiet)["actor"].to_list() == ["alice", "bob"]


def test_a_rejection_is_final_and_recorded(judged: Paths) -> None:
    result = _cli("review", "reject", ROGUE_REVIEW, "--rationale", "Off role.", "--by", "carol")
    assert result.exit_code == 0, result.output
    assert f"Rejected {ROGUE_REVIEW} by carol." in result.output
    (rejection,) = _entries(judged, "rejection").iter_rows(named=True)
    assert (rejection["subject"], rejection["actor"]) == (ROGUE_REVIEW, "carol")
    assert json.loads(rejection["payload"])["state"] == "rejected"
    _refused(_approve(ROGUE_REVIEW, "alice"), f"review {ROGUE_REVIEW} is already rejected")
    assert _entries(judged, "approval").is_empty()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["approve", "rv-0000000000000000", "--rationale", "Fine."], "no review item "
         "'rv-0000000000000000'; `agentops review list` shows the pending ones"),
        (["approve", ROGUE_REVIEW, "--rationale", "Fine.", "--lesson", "iam_keys"],
         "a lesson needs the correction to remember (--correction)"),
        (["approve", ROGUE_REVIEW, "--rationale", ""], "the rationale is empty"),
        (["approve", ROGUE_REVIEW, "--rationale", "   "], "the rationale is empty"),
        (["reject", ROGUE_REVIEW, "--rationale", " "], "the rationale is empty"),
        (["reject", "rv-unknown", "--rationale", "No."], "no review item 'rv-unknown'"),
    ],
)  # fmt: skip
def test_a_refused_verdict_is_one_sentence_and_changes_nothing(
    judged: Paths, args: list[str], words: str
) -> None:
    queue = reviews(judged)
    height = AuditLedger(judged).entries().height
    _refused(_cli("review", *args, "--by", "alice"), words)
    assert reviews(judged).equals(queue)
    assert AuditLedger(judged).entries().height == height
    assert MemoryStore(judged.table_uri(TABLE_NAME)).version() is None


def test_the_library_refuses_with_review_errors(judged: Paths) -> None:
    with pytest.raises(ReviewError, match="a rejection carries no lesson"):
        lesson = {"correction": "Ask security.", "lesson_key": "iam_keys"}
        decide(judged, ROGUE_REVIEW, "reject", reviewer="alice", rationale="No.", **lesson)
    with pytest.raises(ReviewError, match="the reviewer is empty"):
        decide(judged, ROGUE_REVIEW, "approve", reviewer=" ", rationale="Fine.")
    assert set(reviews(judged)["state"]) == {"pending"}


# --- 3. idempotence: nothing lost, nothing twice ----------------------------------------------


def _approve_with_lesson(paths: Paths) -> review.Outcome:
    return decide(
        paths,
        ROGUE_REVIEW,
        "approve",
        reviewer="alice",
        rationale="Fine.",
        correction="Ask security.",
        lesson_key="iam_keys",
    )


def test_refreshing_again_adds_nothing(judged: Paths) -> None:
    _approve_with_lesson(judged)
    queue, entries = reviews(judged), AuditLedger(judged).entries()
    for _ in range(2):
        assert refresh_reviews(judged, DAY, DAY).is_empty()
        update = refresh_ledger(judged, DAY, DAY)
        counts = (update.decisions, update.reviews, update.memory, update.bundle_changed)
        assert counts == (0, 0, 0, False) and update.report.ok
    assert reviews(judged).equals(queue)
    assert AuditLedger(judged).entries().equals(entries)


def test_rejudging_the_day_keeps_an_approved_item_approved(
    judged: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decide(judged, ROGUE_REVIEW, "approve", reviewer="alice", rationale="Fine.")
    before = _item(judged, ROGUE_REVIEW)

    _refresh(judged)  # the same policies
    assert _item(judged, ROGUE_REVIEW) == before

    # New policies: a new revision judges the day again, and the ledger records its decisions;
    # the queue keeps one item per event, decided as it was.
    monkeypatch.setenv("AGENTOPS_POLICIES", str(_policies(tmp_path / "policies", approvals=2)))
    update = _refresh(judged)
    assert (update.decisions, update.bundle_changed, update.reviews) == (2, True, 0)
    assert _item(judged, ROGUE_REVIEW) == before
    assert _item(judged, REFUND_REVIEW)["approvals_required"] == 1  # queued under the old one
    assert reviews(judged).height == 2
    assert _entries(judged, "approval", ROGUE_REVIEW).height == 1


def test_a_crash_between_the_verdict_and_its_ledger_entry_is_caught_up(judged: Paths) -> None:
    # What a process killed right after writing the verdict leaves: the item approved, no entry.
    item = _item(judged, REFUND_REVIEW) | {
        "state": "approved",
        "approved_by": ["alice"],
        "decided_by": "alice",
        "decided_at": dt.datetime.now(dt.UTC),
        "rationale": "Refund agreed by the manager.",
    }
    review._write(judged.table_uri(REVIEW_QUEUE), item)
    assert _entries(judged, "approval").is_empty()

    update = refresh_ledger(judged, DAY, DAY)
    assert update.reviews == 1 and update.report.ok
    (approval,) = _entries(judged, "approval").iter_rows(named=True)
    assert (approval["subject"], approval["actor"]) == (REFUND_REVIEW, "alice")
    assert json.loads(approval["payload"])["rationale"] == "Refund agreed by the manager."
    assert refresh_ledger(judged, DAY, DAY).reviews == 0
    assert _entries(judged, "approval").height == 1


def test_a_lesson_a_dead_process_left_uncommitted_is_committed_by_the_next_refresh(
    judged: Paths,
) -> None:
    # Approved with a lesson, then killed before the memory commit.
    item = _item(judged, ROGUE_REVIEW) | {
        "state": "approved",
        "approved_by": ["alice"],
        "decided_by": "alice",
        "decided_at": dt.datetime.now(dt.UTC),
        "rationale": "Keys are for the platform team.",
        "correction": "Ask the platform team for IAM keys.",
        "lesson_key": "iam_keys",
    }
    review._write(judged.table_uri(REVIEW_QUEUE), item)
    store = MemoryStore(judged.table_uri(TABLE_NAME))
    assert store.version() is None

    refresh_ledger(judged, DAY, DAY)
    (commit,) = store.log(AGENT)
    assert commit.approved_by == "alice"
    assert _item(judged, ROGUE_REVIEW)["memory_version"] == commit.version
    assert _entries(judged, "memory_commit").height == 1
    refresh_ledger(judged, DAY, DAY)
    assert len(store.log(AGENT)) == 1


def test_an_approval_then_a_rejection_by_the_same_person_are_both_recorded(
    judged: Paths,
) -> None:
    item = _item(judged, REFUND_REVIEW) | {"approvals_required": 2}
    review._write(judged.table_uri(REVIEW_QUEUE), item)
    decide(judged, REFUND_REVIEW, "approve", reviewer="alice", rationale="Looks fine.")
    decide(judged, REFUND_REVIEW, "reject", reviewer="alice", rationale="On second thought, no.")
    assert _item(judged, REFUND_REVIEW)["state"] == "rejected"
    kinds = (
        _entries(judged, "approval", REFUND_REVIEW).height,
        _entries(judged, "rejection", REFUND_REVIEW).height,
    )
    assert kinds == (1, 1)


def test_apply_lesson_twice_commits_once(judged: Paths) -> None:
    outcome = _approve_with_lesson(judged)
    assert outcome.memory_version is not None
    store = MemoryStore(judged.table_uri(TABLE_NAME))
    assert review.apply_lesson(judged, outcome.review) == outcome.memory_version
    assert [c.version for c in store.log(AGENT)] == [outcome.memory_version]
    assert record_memory(AuditLedger(judged), judged) == 0
    assert _entries(judged, "memory_commit").height == 1
    assert _item(judged, ROGUE_REVIEW)["memory_version"] == outcome.memory_version


# --- 4. memory commits in the ledger ----------------------------------------------------------


def test_memory_commits_rollbacks_and_reverts_are_recorded_once_in_version_order(
    paths: Paths,
) -> None:
    store = MemoryStore(paths.table_uri(TABLE_NAME))
    ledger = AuditLedger(paths)
    assert record_memory(ledger, paths) == 0  # no memory yet

    def put(agent: str, key: str, value: str, cycle_id: str | None = None) -> Commit:
        changes = [FactChange.put(key, value)]
        commit = store.commit(agent, changes, message=key, author=agent, cycle_id=cycle_id)
        assert commit is not None
        return commit

    first = put("a-1", "tone", "formal", cycle_id="tr-1")
    other = put("b-1", "region", "eu")
    changed = put("a-1", "tone", "casual")
    assert record_memory(ledger, paths) == 3
    rolled = store.rollback("a-1", first.version, reason="Users.", author="ops", approved_by="al")
    reverted = store.revert("b-1", other.version, author="ops", reason="Wrong region.")
    later = put("b-1", "region", "us")
    assert record_memory(ledger, paths) == 3
    assert record_memory(ledger, paths) == 0

    recorded = ledger.entries().filter(pl.col("kind").is_in(["memory_commit", "memory_rollback"]))
    versions = recorded["payload"].str.json_path_match("$.version").cast(pl.Int64).to_list()
    commits = [first, other, changed, rolled, reverted, later]
    assert versions == [c.version for c in commits] == sorted(versions)
    commit, rollback = "memory_commit", "memory_rollback"
    assert recorded["kind"].to_list() == [commit, commit, commit, rollback, rollback, commit]
    a, b = "memory:a-1", "memory:b-1"
    assert recorded["subject"].to_list() == ["tr-1", b, a, a, b, b]
    payloads = [json.loads(p) for p in recorded["payload"]]
    assert (payloads[3]["kind"], payloads[3]["rolled_back_to"]) == ("rollback", first.version)
    assert payloads[3]["approved_by"] == "al" and recorded["actor"][3] == "ops"
    assert (payloads[4]["kind"], payloads[4]["reverted"]) == ("revert", other.version)
    assert ledger.verify().ok


# --- 5. policy bundle changes -----------------------------------------------------------------


def test_a_policy_bundle_change_is_recorded_once_naming_the_changed_file(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTOPS_POLICIES", raising=False)
    ledger = AuditLedger(paths)
    shipped = load_policies(paths)
    assert record_bundle_change(ledger, shipped)
    assert not record_bundle_change(ledger, load_policies(paths))
    (first,) = ledger.entries(kind="policy_bundle_change").iter_rows(named=True)
    payload = json.loads(first["payload"])
    assert first["subject"] == payload["revision"] == shipped.revision
    assert payload["previous"] is None
    assert payload["changed"] == ["agentops.rego", "capabilities.yaml"]

    # The same files in another folder are the same policies.
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "agentops.rego").write_text(SHIPPED_REGO.read_text())
    monkeypatch.setenv("AGENTOPS_POLICIES", str(folder))
    assert load_policies(paths).folder == folder
    assert not record_bundle_change(ledger, load_policies(paths))

    _policies(folder, approvals=2)
    stricter = load_policies(paths)
    assert stricter.revision != shipped.revision
    assert record_bundle_change(ledger, stricter)
    assert not record_bundle_change(ledger, load_policies(paths))
    changes = ledger.entries(kind="policy_bundle_change")
    assert changes.height == 2
    payload = json.loads(changes["payload"][-1])
    assert (changes["subject"][-1], payload["previous"]) == (stricter.revision, shipped.revision)
    assert payload["changed"] == ["agentops.rego"] and payload["folder"] == str(folder)
    assert ledger.verify().ok


# --- 6. audit verify --------------------------------------------------------------------------


def _anchored_ledger(paths: Paths, size: int = 5) -> AuditLedger:
    ledger = AuditLedger(paths)
    at = dt.datetime(2026, 11, 18, 9, tzinfo=dt.UTC)
    for n in range(1, size + 1):
        payload = {"zone": "yellow", "n": n}  # `edit` turns yellow into green
        ledger.append(
            [Entry("policy_decision", "agentops.governance", f"ev-{n}", payload, at + n * MINUTE)]
        )
    return ledger


@pytest.mark.parametrize(
    ("tamper", "position", "seq", "kind"),
    [(edit, 3, 3, "edited"), (delete, 2, 2, "deleted"), (reorder, 2, 2, "reordered"),
     (cut_tail, 4, 4, "tail_cut")],
)  # fmt: skip
def test_verify_exits_1_naming_the_first_failing_entry(
    paths: Paths, tamper: Tamper, position: int, seq: int, kind: str
) -> None:
    ledger = _anchored_ledger(paths)
    assert _cli("audit", "verify").exit_code == 0
    forge(ledger, tamper, position)
    result = _cli("audit", "verify")
    assert result.exit_code == 1, result.output
    assert f"The audit ledger fails at entry {seq} ({kind}):" in result.output
    assert f"{seq - 1} entries before it hold." in result.output
    assert "Traceback" not in result.output


def test_verify_catches_a_cut_tail_of_the_judged_ledger(judged: Paths) -> None:
    assert decide(judged, ROGUE_REVIEW, "approve", reviewer="alice", rationale="Fine.")
    head = AuditLedger(judged).head()
    assert head is not None and head.seq == 4  # bundle, two decisions, the approval
    forge(AuditLedger(judged), cut_tail, head.seq)
    result = _cli("audit", "verify")
    assert result.exit_code == 1
    assert f"fails at entry {head.seq} (tail_cut)" in result.output


def test_verify_on_an_empty_home_says_the_ledger_is_empty(paths: Paths) -> None:
    result = _cli("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "The audit ledger is empty" in result.output
    assert not (paths.home / "audit").exists()
