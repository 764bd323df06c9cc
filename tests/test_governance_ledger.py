"""The audit ledger on real Delta tables: the chain, the anchors, and the tamper matrix."""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from agentops_assets.governance.ledger import (
    AUDIT_LEDGER,
    GENESIS,
    LEDGER_SCHEMA,
    AuditLedger,
    Entry,
)
from agentops_assets.governance.tampering import (
    Case,
    Tamper,
    edit_rehashing_all,
    forge,
    matrix,
    read_rows,
    rewrite,
    run_matrix,
    try_case,
)
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SIZE = 7
KINDS = ("policy_decision", "approval", "rejection", "memory_commit", "memory_rollback")


def _entry(n: int, subject: str = "trace-1") -> Entry:
    return Entry(
        kind=KINDS[n % len(KINDS)],
        actor=f"reviewer-{n % 2}",
        subject=subject,
        payload={"n": n, "zone": "yellow", "reasons": ["über the limit", "a\nb"]},
        at=T0 + timedelta(minutes=n),
    )


@pytest.fixture
def ledger(paths: Paths) -> AuditLedger:
    """A ledger of SIZE entries, one append each, so every seq has its anchor."""
    book = AuditLedger(paths)
    for n in range(1, SIZE + 1):
        book.append([_entry(n)])
    return book


MATRIX = matrix(SIZE)


@pytest.mark.parametrize(
    ("tamper", "position", "seq", "kind"),
    MATRIX,
    ids=[case.name for case in MATRIX],
)
def test_every_tampering_is_found_at_its_first_entry(
    ledger: AuditLedger, tamper: Tamper, position: int, seq: int, kind: str
) -> None:
    assert ledger.verify().ok
    forge(ledger, tamper, position)

    report = ledger.verify()

    assert not report.ok
    assert report.failure is not None
    assert (report.failure.seq, report.failure.kind) == (seq, kind), report.failure.detail
    assert report.checked == seq - 1


def test_run_matrix_tries_every_case_on_a_fresh_copy(ledger: AuditLedger, tmp_path: Path) -> None:
    copies = itertools.count()

    def fresh() -> AuditLedger:
        home = tmp_path / f"copy-{next(copies)}"
        shutil.copytree(ledger.paths.home, home)
        return AuditLedger(Paths(home=home, lake_uri=str(home / "lake")))

    outcomes = run_matrix(fresh)

    assert next(copies) == len(MATRIX)
    assert [(o.tamper, o.position, o.expected_seq, o.expected_kind) for o in outcomes] == [
        (case.tamper.__name__, case.position, case.seq, case.kind) for case in MATRIX
    ]
    assert all(o.detected for o in outcomes)
    assert all((o.found_seq, o.found_kind) == (o.expected_seq, o.expected_kind) for o in outcomes)
    assert ledger.verify().ok  # only the copies were forged


def test_a_forgery_verify_misses_is_reported_as_not_detected(ledger: AuditLedger) -> None:
    def leave_alone(rows: list[dict], k: int) -> None:
        pass

    outcome = try_case(ledger, Case(leave_alone, 4, 4, "edited"))
    assert (outcome.found_seq, outcome.found_kind, outcome.detected) == (None, None, False)
    rewrite(ledger, read_rows(ledger)[:-1])  # found, but at another entry than expected
    outcome = try_case(ledger, Case(leave_alone, 4, 4, "edited"))
    assert (outcome.found_seq, outcome.found_kind, outcome.detected) == (SIZE, "tail_cut", False)


def test_run_matrix_needs_one_anchor_per_entry(paths: Paths) -> None:
    book = AuditLedger(paths)
    book.append([_entry(n) for n in range(1, SIZE + 1)])
    with pytest.raises(ValueError, match="one anchor per entry"):
        run_matrix(lambda: book)
    with pytest.raises(ValueError, match="at least 4 entries"):
        matrix(3)


def test_an_untouched_ledger_verifies(ledger: AuditLedger) -> None:
    report = ledger.verify()
    assert report.ok and report.failure is None
    assert report.checked == SIZE and report.anchors == SIZE
    assert report.head == ledger.head() == ledger.anchors()[-1]
    # Rows stored in another physical order are the same ledger: order is the seq.
    rewrite(ledger, list(reversed(read_rows(ledger))))
    assert ledger.verify().ok


def test_the_hash_is_the_documented_formula(ledger: AuditLedger) -> None:
    rows = read_rows(ledger)
    assert [row["seq"] for row in rows] == list(range(1, SIZE + 1))
    assert rows[0]["prev_hash"] == GENESIS
    for before, row in zip(rows, rows[1:], strict=False):
        assert row["prev_hash"] == before["hash"]
    row = rows[2]
    payload = json.loads(row["payload"])
    assert row["payload"] == json.dumps(payload, sort_keys=True, separators=(",", ":"),
                                        ensure_ascii=False)  # fmt: skip
    assert "über" in row["payload"] and "\\n" in row["payload"]
    text = json.dumps(
        [row["prev_hash"], 3, "2026-11-20T09:03:00.000000Z", row["kind"], row["actor"],
         row["subject"], row["payload"]],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )  # fmt: skip
    assert row["hash"] == hashlib.sha256(text.encode()).hexdigest()
    assert row["at"] == T0 + timedelta(minutes=3)


def test_a_batch_is_one_commit_continuing_the_chain(paths: Paths) -> None:
    book = AuditLedger(paths)
    assert book.head() is None and book.verify().ok and book.verify().checked == 0
    first = book.append([_entry(n) for n in range(3)])
    head = book.append([_entry(n, subject="trace-2") for n in range(4)])
    assert (first.seq, head.seq) == (3, 7)
    assert book.anchors() == [first, head]
    assert len(DeltaTable(book.uri).history()) == 2
    assert book.entries("trace-2")["seq"].to_list() == [4, 5, 6, 7]
    assert book.entries(kind="approval")["seq"].to_list() == [2, 5]
    assert book.entries(since=T0 + timedelta(minutes=2))["seq"].to_list() == [3, 6, 7]
    assert book.verify().ok

    # Between anchors, a rewritten chain is found no later than its anchor, no earlier than
    # the entry after the last anchor that holds.
    rows = read_rows(book)
    edit_rehashing_all(rows, 5)
    rewrite(book, rows)
    failure = book.verify().failure
    assert failure is not None and (failure.seq, failure.kind) == (4, "edited")
    assert "4..7" in failure.detail


def test_a_kept_ledger_object_follows_every_other_commit(paths: Paths) -> None:
    # The gate keeps one ledger object and its head between appends; another writer's append
    # and a row slipped in behind the ledger's back must still be chained onto, not forked.
    kept, other = AuditLedger(paths), AuditLedger(paths)
    kept.append([_entry(1)])
    other.append([_entry(2), _entry(3)])
    assert kept.append([_entry(4)]).seq == 4
    assert kept.head() == other.head() == AuditLedger(paths).head()
    rows = read_rows(kept)
    forged = {**rows[-1], "seq": 5, "subject": "forged"}
    lake.append(kept.uri, pl.DataFrame([forged], schema=LEDGER_SCHEMA))
    assert kept.head().seq == 5  # the forged row is seen, not the head kept in memory
    assert kept.append([_entry(6)]).seq == 6
    assert AuditLedger(paths).entries()["seq"].to_list() == [1, 2, 3, 4, 5, 6]
    assert not kept.verify().ok  # and verify names the forgery


def test_a_torn_anchor_line_is_skipped_and_the_next_append_starts_a_new_line(
    ledger: AuditLedger,
) -> None:
    with ledger.anchors_path.open("ab") as file:
        file.write(b'{"hash":"ab')
    assert ledger.verify().ok
    head = ledger.append([_entry(99)])
    assert ledger.anchors()[-1] == head and len(ledger.anchors()) == SIZE + 1
    assert ledger.verify().ok


def test_bad_entries_are_refused_before_anything_is_written(paths: Paths) -> None:
    book = AuditLedger(paths)
    with pytest.raises(ValueError, match="unknown ledger entry kind 'aproval'"):
        book.append([_entry(1), Entry(kind="aproval", actor="a", subject="s")])
    with pytest.raises(ValueError, match="has no timezone"):
        book.append([Entry(kind="approval", actor="a", subject="s", at=datetime(2026, 1, 1))])
    with pytest.raises(ValueError, match="is not JSON"):
        book.append([Entry(kind="approval", actor="a", subject="s", payload={"x": object()})])
    with pytest.raises(ValueError, match="at least one entry"):
        book.append([])
    assert book.head() is None and not book.anchors_path.exists()


def _append_many(home: str, worker: str, batches: int) -> None:
    book = AuditLedger(Paths.from_env(home))
    for n in range(batches):
        book.append([_entry(n, subject=worker), _entry(n + 100, subject=worker)])


def test_two_processes_appending_at_once_keep_one_gap_free_chain(paths: Paths) -> None:
    batches = 12
    spawn = multiprocessing.get_context("spawn")
    workers = [
        spawn.Process(target=_append_many, args=(str(paths.home), name, batches))
        for name in ("worker-a", "worker-b")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0

    book = AuditLedger(paths)
    report = book.verify()
    assert report.ok, report.failure
    assert report.checked == 4 * batches and report.anchors == 2 * batches
    rows = pl.read_delta(paths.table_uri(AUDIT_LEDGER)).sort("seq")
    assert rows["seq"].to_list() == list(range(1, 4 * batches + 1))
    assert rows["seq"].n_unique() == rows.height
    # Each batch stayed together.
    subjects = rows["subject"].to_list()
    assert all(subjects[i] == subjects[i + 1] for i in range(0, len(subjects), 2))
    assert subjects.count("worker-a") == subjects.count("worker-b") == 2 * batches
    assert [a.seq for a in book.anchors()] == list(range(2, 4 * batches + 1, 2))


def test_anchors_live_outside_the_lake(ledger: AuditLedger, paths: Paths) -> None:
    assert ledger.anchors_path == paths.home / "audit" / "anchors.jsonl"
    assert not str(ledger.anchors_path).startswith(paths.lake_uri)
    lines = [json.loads(line) for line in Path(ledger.anchors_path).read_text().splitlines()]
    # Each append announces its head, commits, then confirms it.
    assert len(lines) == 2 * SIZE
    assert [(line["seq"], line["state"]) for line in lines[-2:]] == [
        (SIZE, "pending"),
        (SIZE, "committed"),
    ]


# Where a writer can die: before announcing its head, after announcing it, after its Delta
# commit (before confirming it), and after confirming it.
KILL_POINTS = ("before_pending", "before_commit", "after_commit", "after_committed")
_CHILD = """
import os, signal
from datetime import UTC, datetime
from agentops_assets.governance import ledger as ledger_module
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths

point = {point!r}
anchor, append = ledger_module.AuditLedger._anchor, lake.append

def kill(name):
    if name == point:
        os.kill(os.getpid(), signal.SIGKILL)

def anchored(self, head, at, state):
    kill("before_" + state)
    anchor(self, head, at, state)
    kill("after_" + state)

def appended(*args, **kwargs):
    kill("before_commit")
    append(*args, **kwargs)
    kill("after_commit")

ledger_module.AuditLedger._anchor = anchored
ledger_module.lake.append = appended
ledger = ledger_module.AuditLedger(Paths.from_env())
ledger.append([ledger_module.Entry("approval", "alice", "rv-1", {{"n": 1}}),
               ledger_module.Entry("approval", "bob", "rv-1", {{"n": 2}})])
"""


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_writer_killed_at_any_point_leaves_a_ledger_that_verifies_and_continues(
    ledger: AuditLedger, paths: Paths, point: str
) -> None:
    before = ledger.verify()
    child = subprocess.run(
        [sys.executable, "-c", _CHILD.format(point=point)],
        env={**os.environ, "AGENTOPS_HOME": str(paths.home)},
        capture_output=True,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()

    report = ledger.verify()
    assert report.ok, report.failure
    landed = point in ("after_commit", "after_committed")
    assert report.checked == before.checked + (2 if landed else 0)
    ledger.append([Entry("rejection", "carol", "rv-2", {"n": 3})])
    after = ledger.verify()
    assert after.ok and after.checked == report.checked + 1
