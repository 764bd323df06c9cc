"""The memory library on real Delta tables in temporary folders: versions, rollback, errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from memory import (
    MAX_CONTENT_BYTES,
    Commit,
    FactChange,
    FactExistsError,
    InvalidFactError,
    MemoryStore,
    MemoryStoreError,
    NothingToRevertError,
    RevertConflictError,
    UnknownAgentError,
    UnknownFactError,
    UnknownVersionError,
    VersionVacuumedError,
    derive_fact_id,
)

FIN = "finance-agent-01"
OPS = "ops-agent-02"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    return MemoryStore(str(tmp_path / "lake" / "memory_facts"))


def _contents(store: MemoryStore, agent: str, **at: object) -> dict[str, str]:
    return {f.fact_id: f.content for f in store.as_of(agent, **at)}  # type: ignore[arg-type]


def _seed(store: MemoryStore) -> tuple[Commit, Commit, Commit]:
    """v1: two facts; v2: one changed, one added; v3: one deleted."""
    first = store.commit(
        FIN,
        [
            FactChange.add("Discounts above 10% need approval.", fact_id="pricing.discount"),
            FactChange.add("Customer 42 prefers email.", fact_id="crm.c42", source="tr-1"),
        ],
        message="learn pricing and contact rules",
        author="finance-agent-01",
        cycle_id="cy-1",
    )
    second = store.commit(
        FIN,
        [
            FactChange.update("pricing.discount", "Discounts above 15% need approval."),
            FactChange.add("Quarter closes on the 28th.", fact_id="calendar.close"),
        ],
        message="policy changed",
        author="ops-team",
        approved_by="alice",
    )
    third = store.commit(
        FIN, [FactChange.delete("crm.c42")], message="customer churned", author="ops-team"
    )
    assert first and second and third
    return first, second, third


def test_commit_returns_one_version_with_its_metadata(store: MemoryStore) -> None:
    first, second, third = _seed(store)
    assert (first.version, second.version, third.version) == (1, 2, 3)  # v0 creates the table
    assert (first.added, first.updated, first.deleted) == (2, 0, 0)
    assert (second.added, second.updated, second.deleted) == (1, 1, 0)
    assert (third.added, third.updated, third.deleted) == (0, 0, 1)
    assert second.approved_by == "alice" and first.cycle_id == "cy-1"
    history = DeltaTable(store.uri).history()
    assert [h["operation"] for h in history[:3]] == ["MERGE"] * 3  # one Delta commit each
    assert store.version() == 3
    assert store.agents() == [FIN]


def test_log_is_newest_first_and_filters_by_agent(store: MemoryStore) -> None:
    first, second, third = _seed(store)
    other = store.commit(OPS, [FactChange.add("Restart nightly.")], message="m", author="ops")
    assert [c.version for c in store.log()] == [other.version, 3, 2, 1]
    assert store.log(FIN) == [third, second, first]
    assert store.log(FIN, limit=2) == [third, second]
    assert [c.agent_id for c in store.log(OPS)] == [OPS]
    assert str(second).startswith("v2 ") and "policy changed" in str(second)


def test_as_of_version_and_timestamp(store: MemoryStore) -> None:
    first, second, third = _seed(store)
    assert _contents(store, FIN, version=first.version) == {
        "crm.c42": "Customer 42 prefers email.",
        "pricing.discount": "Discounts above 10% need approval.",
    }
    assert _contents(store, FIN, timestamp=second.timestamp) == _contents(store, FIN, version=2)
    assert _contents(store, FIN, timestamp=second.timestamp + timedelta(days=1)) == _contents(
        store, FIN
    )
    now = store.as_of(FIN)
    assert [f.fact_id for f in now] == ["calendar.close", "pricing.discount"]
    discount = now[1]
    assert discount.created_at < discount.updated_at  # created at v1, updated at v2
    assert store.as_of(FIN, version=0) == []  # the agent held nothing before its first commit


def test_diff_lists_added_removed_and_changed_for_people(store: MemoryStore) -> None:
    first, _, third = _seed(store)
    diff = store.diff(FIN, first.version, third.version)
    assert [f.fact_id for f in diff.added] == ["calendar.close"]
    assert [f.fact_id for f in diff.removed] == ["crm.c42"]
    assert [(c.old.content, c.new.content) for c in diff.changed] == [
        ("Discounts above 10% need approval.", "Discounts above 15% need approval.")
    ]
    text = str(diff)
    assert "+ calendar.close: Quarter closes on the 28th." in text
    assert "- crm.c42: Customer 42 prefers email." in text
    assert (
        "~ pricing.discount: Discounts above 10% need approval. -> "
        "Discounts above 15% need approval." in text
    )
    assert not store.diff(FIN, third.version, third.version)
    assert store.diff(FIN, first.version).to_version == third.version


def test_update_keeps_what_it_does_not_name_and_noop_writes_nothing(store: MemoryStore) -> None:
    store.commit(
        FIN,
        [FactChange.add("A", fact_id="a", metadata={"k": 1}, source="tr-9", confidence=0.5)],
        message="m",
        author="x",
    )
    changed = store.commit(FIN, [FactChange.update("a", confidence=0.9)], message="m", author="x")
    assert changed and changed.updated == 1
    fact = store.as_of(FIN)[0]
    assert (fact.content, fact.metadata, fact.source, fact.confidence) == (
        "A",
        {"k": 1},
        "tr-9",
        0.9,
    )
    assert "~ a: confidence 0.5 -> 0.9" in str(store.diff(FIN, 1, 2))
    store.commit(FIN, [FactChange.update("a", metadata={"k": 2})], message="m", author="x")
    assert '~ a: metadata {"k": 1} -> {"k": 2}' in str(store.diff(FIN, 2, 3))
    version = store.version()
    assert store.commit(FIN, [FactChange.put("a", "A")], message="same", author="x") is None
    assert store.version() == version
    put = store.commit(FIN, [FactChange.put("b", "B")], message="m", author="x")
    assert put and put.added == 1


def test_rollback_restores_one_agent_and_leaves_others_alone(store: MemoryStore) -> None:
    first, _, third = _seed(store)
    ops = store.commit(
        OPS, [FactChange.add("Restart nightly.", fact_id="r")], message="m", author="o"
    )
    ops_files = {f for f in DeltaTable(store.uri).file_uris() if f"agent_id={OPS}" in f}
    before = store.as_of(FIN, version=first.version)

    back = store.rollback(FIN, first.version, reason="bad policy update", author="alice")

    assert back and back.kind == "rollback" and back.rolled_back_to == first.version
    assert (back.added, back.updated, back.deleted) == (1, 1, 1)
    assert store.as_of(FIN) == before  # content, metadata and timestamps as they were
    assert _contents(store, OPS) == {"r": "Restart nightly."}
    assert {f for f in DeltaTable(store.uri).file_uris() if f"agent_id={OPS}" in f} == ops_files
    assert store.log(OPS) == [ops]
    assert [c.version for c in store.log(FIN)] == [back.version, 3, 2, 1]  # history kept
    assert _contents(store, FIN, version=third.version) != _contents(store, FIN)


def test_rollback_of_a_rollback(store: MemoryStore) -> None:
    first, _, third = _seed(store)
    undo = store.rollback(FIN, first.version, reason="bad", author="alice")
    assert undo
    redo = store.rollback(FIN, third.version, reason="it was fine", author="bob")
    assert redo and redo.rolled_back_to == third.version
    assert store.as_of(FIN) == store.as_of(FIN, version=third.version)
    assert store.rollback(FIN, third.version, reason="again", author="bob") is None  # no change


def test_rollback_to_before_the_agent_existed_forgets_everything(store: MemoryStore) -> None:
    _seed(store)
    gone = store.rollback(FIN, 0, reason="start over", author="alice")
    assert gone and gone.deleted == 2
    assert store.as_of(FIN) == []
    assert store.agents() == []
    assert store.log(FIN, limit=1) == [gone]  # still a known agent through its history


def test_change_data_feed_records_commits_and_rollbacks(store: MemoryStore) -> None:
    first, _, _ = _seed(store)
    back = store.rollback(FIN, first.version, reason="r", author="a")
    assert back
    changes = pl.DataFrame(DeltaTable(store.uri).load_cdf(starting_version=back.version))
    assert sorted(changes["_change_type"].to_list()) == [
        "delete",
        "insert",
        "update_postimage",
        "update_preimage",
    ]


def test_unknown_agent_and_version_errors(store: MemoryStore) -> None:
    with pytest.raises(UnknownAgentError, match="nobody"):
        store.log("nobody")
    with pytest.raises(UnknownVersionError, match="nothing was committed"):
        store.as_of(FIN, version=0)
    _seed(store)
    for call in (
        lambda: store.as_of("nobody"),
        lambda: store.log("nobody"),
        lambda: store.diff("nobody", 1, 2),
        lambda: store.rollback("nobody", 1, reason="r", author="a"),
    ):
        with pytest.raises(UnknownAgentError, match="'nobody' has no memory"):
            call()
    with pytest.raises(UnknownVersionError, match="version 42 does not exist; the latest"):
        store.as_of(FIN, version=42)
    with pytest.raises(UnknownVersionError):
        store.rollback(FIN, 42, reason="r", author="a")
    with pytest.raises(UnknownVersionError, match="store was created"):
        store.as_of(FIN, timestamp=datetime(2000, 1, 1, tzinfo=UTC))
    with pytest.raises(UnknownFactError, match="holds no fact 'nope'"):
        store.commit(FIN, [FactChange.delete("nope")], message="m", author="a")
    with pytest.raises(FactExistsError, match="already holds fact 'pricing.discount'"):
        store.commit(
            FIN, [FactChange.add("x", fact_id="pricing.discount")], message="m", author="a"
        )
    assert issubclass(UnknownAgentError, MemoryStoreError)


def test_vacuumed_version_is_reported_as_such(store: MemoryStore) -> None:
    first, _, third = _seed(store)
    store.compact(FIN)  # rewrite the agent's files so the old ones are only in old versions
    DeltaTable(store.uri).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    for call in (
        lambda: store.as_of(FIN, version=first.version),
        lambda: store.diff(FIN, first.version, third.version),
        lambda: store.rollback(FIN, first.version, reason="r", author="a"),
    ):
        with pytest.raises(VersionVacuumedError, match=f"version {first.version} can no longer"):
            call()
    assert len(store.as_of(FIN)) == 2  # the latest version still reads


def test_versions_whose_log_was_cleaned_up_are_reported(store: MemoryStore) -> None:
    first, second, _ = _seed(store)
    table = DeltaTable(store.uri)
    table.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
    table.create_checkpoint()
    table.cleanup_metadata()
    with pytest.raises(VersionVacuumedError, match="log cleanup removed"):
        store.as_of(FIN, version=first.version)
    with pytest.raises(VersionVacuumedError, match="log cleanup removed"):
        store.as_of(FIN, timestamp=second.timestamp)  # delta-rs alone answers with a later one
    assert len(store.as_of(FIN, timestamp=datetime.now(UTC))) == 2
    assert store.log(FIN) == []  # its commits are gone from the log, the agent is still known
    with pytest.raises(UnknownAgentError):
        store.log("nobody")


def test_fact_content_is_checked(store: MemoryStore) -> None:
    with pytest.raises(InvalidFactError, match="content is empty"):
        FactChange.add("   ")
    with pytest.raises(InvalidFactError, match="more than the 32,768-byte limit"):
        FactChange.put("big", "x" * (MAX_CONTENT_BYTES + 1))
    with pytest.raises(InvalidFactError, match="confidence must be between 0 and 1"):
        FactChange.add("ok", confidence=1.5)
    with pytest.raises(InvalidFactError, match="not JSON-serialisable"):
        FactChange.add("ok", metadata={"when": object()})
    assert FactChange.put("edge", "é" * (MAX_CONTENT_BYTES // 2)).content  # bytes, not chars
    assert (
        FactChange.add("same").fact_id == derive_fact_id("same") == FactChange.add("same").fact_id
    )


def test_bad_arguments_raise_value_error_with_a_sentence(store: MemoryStore) -> None:
    cases = {
        "agent_id must be": lambda: store.commit("bad id!", [], message="m", author="a"),
        "changes is empty": lambda: store.commit(FIN, [], message="m", author="a"),
        "message must be": lambda: store.commit(FIN, [FactChange.add("x")], message="", author="a"),
        "appears twice": lambda: store.commit(
            FIN, [FactChange.put("a", "1"), FactChange.put("a", "2")], message="m", author="a"
        ),
        "changes nothing": lambda: FactChange.update("a"),
        "not a single one": lambda: store.commit(
            FIN,
            FactChange.add("x"),  # type: ignore[arg-type]
            message="m",
            author="a",
        ),
        "limit must be": lambda: store.log(limit=0),
        "timezone-aware": lambda: store.as_of(FIN, timestamp=datetime(2026, 1, 1)),
        "not both": lambda: store.as_of(FIN, version=1, timestamp=datetime.now(UTC)),
        "to_version must be": lambda: store.rollback(FIN, -1, reason="r", author="a"),
    }
    for words, call in cases.items():
        with pytest.raises(ValueError, match=words):
            call()


_WRITER = textwrap.dedent(
    """
    import sys
    from memory import FactChange, MemoryStore
    uri, agent, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = MemoryStore(uri)
    for i in range(n):
        fact = FactChange.put(f"{tag}.{i}", f"fact {i} from {tag}")
        store.commit(agent, [fact], message=f"{tag} {i}", author=tag)
    """
)


@pytest.mark.parametrize("same_agent", [False, True], ids=["different-agents", "same-agent"])
def test_concurrent_commits_from_two_processes_all_land(
    store: MemoryStore, same_agent: bool
) -> None:
    n = 12
    agents = [FIN, FIN] if same_agent else [FIN, OPS]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, store.uri, agent, tag, str(n)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for agent, tag in zip(agents, ["p1", "p2"], strict=True)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    commits = store.log(limit=100)
    assert len(commits) == 2 * n
    assert len({c.version for c in commits}) == 2 * n
    assert sorted(c.message for c in commits) == sorted(
        f"{tag} {i}" for tag in ("p1", "p2") for i in range(n)
    )
    held = {f.fact_id for agent in set(agents) for f in store.as_of(agent)}
    assert held == {f"{tag}.{i}" for tag in ("p1", "p2") for i in range(n)}


def test_automatic_compaction_keeps_an_agent_in_few_files(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "memory_facts", compact_after_files=4)
    for i in range(10):
        store.commit(FIN, [FactChange.put(f"f{i}", f"fact {i}")], message="m", author="a")
    table = DeltaTable(store.uri)
    assert len(table.file_uris()) <= 4
    assert any(h["operation"] == "OPTIMIZE" for h in table.history())
    assert len(store.log(FIN, limit=100)) == 10  # compaction is not a memory commit
    assert len(store.as_of(FIN)) == 10
    assert store.frame().height == 10


def test_revert_undoes_one_commit_and_keeps_later_unrelated_facts(store: MemoryStore) -> None:
    first, second, third = _seed(store)
    store.commit(
        OPS,
        [FactChange.add("Restart only stateless pods.", fact_id="k8s")],
        message="x",
        author="ops",
    )
    later = store.commit(
        FIN, [FactChange.add("Invoices in EUR.", fact_id="fx.ccy")], message="fx", author="t"
    )
    assert later
    # v2 changed pricing.discount and added calendar.close: both undone, nothing else.
    undo = store.revert(FIN, second.version, author="maria", reason="bad policy")
    assert undo.kind == "revert" and undo.reverted == second.version
    assert undo.message == "Revert v2: policy changed (bad policy)"
    assert (undo.added, undo.updated, undo.deleted) == (0, 1, 1)
    assert _contents(store, FIN) == {
        "pricing.discount": "Discounts above 10% need approval.",
        "fx.ccy": "Invoices in EUR.",
    }
    assert _contents(store, OPS) == {"k8s": "Restart only stateless pods."}
    assert store.log(FIN, limit=1)[0].version == undo.version


def test_revert_of_a_removal_brings_the_fact_back(store: MemoryStore) -> None:
    first, _, third = _seed(store)
    undo = store.revert(FIN, third.version, author="maria")
    assert (undo.added, undo.updated, undo.deleted) == (1, 0, 0)
    back = {f.fact_id: f for f in store.as_of(FIN)}["crm.c42"]
    assert back.content == "Customer 42 prefers email." and back.source == "tr-1"
    assert back.created_at == store.as_of(FIN, version=first.version)[1].created_at


def test_revert_refuses_when_a_later_commit_changed_the_same_fact(store: MemoryStore) -> None:
    first, second, third = _seed(store)
    fix = store.commit(
        FIN, [FactChange.update("pricing.discount", "Above 12%.")], message="fix", author="rev"
    )
    assert fix
    head = store.version()
    with pytest.raises(RevertConflictError) as caught:
        store.revert(FIN, second.version, author="maria")
    text = str(caught.value)
    assert "'pricing.discount'" in text and f"v{fix.version}" in text
    assert "calendar.close" not in text and f"v{third.version}" not in text
    assert store.version() == head  # nothing was written
    # v1 is blocked by the changes to pricing.discount; crm.c42, which v3 removed since, is not.
    with pytest.raises(RevertConflictError, match=r"v2, v4 changed the same fact\(s\) 'pricing"):
        store.revert(FIN, first.version, author="maria")


def test_revert_twice_and_of_foreign_versions_say_why(store: MemoryStore) -> None:
    _, second, _ = _seed(store)
    other = store.commit(OPS, [FactChange.add("x", fact_id="k")], message="ops", author="o")
    assert other
    undo = store.revert(FIN, second.version, author="maria")
    with pytest.raises(
        NothingToRevertError, match=rf"already undone \(reverted by v{undo.version}\)"
    ):
        store.revert(FIN, second.version, author="maria")
    with pytest.raises(UnknownVersionError, match=f"commit of agent '{OPS}', not of '{FIN}'"):
        store.revert(FIN, other.version, author="maria")
    with pytest.raises(UnknownVersionError, match="not a memory commit"):
        store.revert(FIN, 0, author="maria")
    with pytest.raises(UnknownVersionError, match="does not exist"):
        store.revert(FIN, 99, author="maria")
    # Reverting the revert brings the change of v2 back.
    store.revert(FIN, undo.version, author="maria")
    assert _contents(store, FIN)["pricing.discount"] == "Discounts above 15% need approval."


def test_revert_message_is_bounded_and_redacted(store: MemoryStore) -> None:
    long = store.commit(FIN, [FactChange.add("a", fact_id="a")], message="m" * 4090, author="t")
    assert long
    undo = store.revert(FIN, long.version, author="t", reason="key AKIAIOSFODNN7EXAMPLE leaked")
    assert len(undo.message.encode()) <= 4096 and undo.message.startswith("Revert v1: mmm")
    secret = store.commit(FIN, [FactChange.add("b", fact_id="b")], message="b", author="t")
    assert secret
    undo = store.revert(FIN, secret.version, author="t", reason="key AKIAIOSFODNN7EXAMPLE")
    assert "AKIAIOSFODNN7EXAMPLE" not in undo.message


def test_version_at_goes_by_event_time_not_ingest_time(store: MemoryStore) -> None:
    monday = datetime(2026, 10, 5, 9, tzinfo=UTC)
    first = store.commit(
        "fin-1",
        [FactChange.add("Refunds over $1,000 need approval.", fact_id="limit")],
        message="cycle of monday",
        author="feed",
        event_time=monday,
    )
    second = store.commit(
        "fin-1",
        [FactChange.update("limit", "Refunds over $5,000 need approval.")],
        message="cycle of wednesday",
        author="feed",
        event_time=monday + timedelta(days=2),
    )
    assert first is not None and second is not None
    assert store.log("fin-1", limit=1)[0].event_time == monday + timedelta(days=2)

    tuesday = store.version_at("fin-1", monday + timedelta(days=1))
    assert tuesday == first.version
    assert store.as_of("fin-1", version=tuesday)[0].content == "Refunds over $1,000 need approval."
    assert store.version_at("fin-1", datetime.now(UTC)) == second.version
    with pytest.raises(UnknownVersionError, match="its first commit happened at 2026-10-05"):
        store.version_at("fin-1", monday - timedelta(hours=1))

    # A commit without an event time happened when it was committed.
    third = store.commit("fin-1", [FactChange.delete("limit")], message="now", author="maria")
    assert third is not None and third.event_time is None
    assert store.version_at("fin-1", datetime.now(UTC)) == third.version
    assert store.version_at("fin-1", monday + timedelta(days=3)) == second.version
