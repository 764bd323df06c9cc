"""The audit ledger on real Delta tables: the chain, the anchors, and the tamper matrix."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake

from agentops_assets.governance.ledger import (
    AUDIT_LEDGER,
    GENESIS,
    LEDGER_SCHEMA,
    AuditLedger,
    Entry,
    entry_hash,
)
from agentops_assets.storage.config import Paths

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SIZE = 7
FIRST, MIDDLE, LAST = 1, 4, SIZE
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


def _rows(book: AuditLedger) -> list[dict]:
    return pl.read_delta(book.uri).sort("seq").rows(named=True)


def _rewrite(book: AuditLedger, rows: list[dict]) -> None:
    """Overwrite the table with ``rows``, as someone with write access to the lake could."""
    frame = pl.DataFrame(rows, schema=LEDGER_SCHEMA, orient="row")
    write_deltalake(book.uri, frame.to_arrow(), mode="overwrite")


def _rehash(rows: list[dict], start: int) -> None:
    """Recompute seq and the chain from position ``start`` (1-based) on."""
    for i in range(start - 1, len(rows)):
        row = rows[i]
        row["seq"] = i + 1
        row["prev_hash"] = rows[i - 1]["hash"] if i else GENESIS
        row["hash"] = entry_hash(
            prev_hash=row["prev_hash"],
            seq=row["seq"],
            at=row["at"],
            kind=row["kind"],
            actor=row["actor"],
            subject=row["subject"],
            payload=row["payload"],
        )


def _forged(rows: list[dict], k: int) -> dict:
    """An approval nobody gave, hashed properly onto the entry before position ``k``."""
    row = {
        "seq": k,
        "at": T0 + timedelta(minutes=k, seconds=30),
        "kind": "approval",
        "actor": "mallory",
        "subject": "trace-1",
        "payload": '{"approved":true}',
        "prev_hash": rows[k - 2]["hash"] if k > 1 else GENESIS,
    }
    row["hash"] = entry_hash(**{key: value for key, value in row.items()})
    return row


def edit(rows: list[dict], k: int) -> None:
    rows[k - 1]["payload"] = rows[k - 1]["payload"].replace("yellow", "green")


def edit_rehashing_it(rows: list[dict], k: int) -> None:
    edit(rows, k)
    row = rows[k - 1]
    row["hash"] = entry_hash(**{key: row[key] for key in row if key != "hash"})


def delete(rows: list[dict], k: int) -> None:
    del rows[k - 1]


def delete_renumbering(rows: list[dict], k: int) -> None:
    del rows[k - 1]
    for row in rows[k - 1 :]:
        row["seq"] -= 1


def insert_renumbering(rows: list[dict], k: int) -> None:
    rows.insert(k - 1, _forged(rows, k))
    for row in rows[k:]:
        row["seq"] += 1


def insert_rehashing(rows: list[dict], k: int) -> None:
    rows.insert(k - 1, _forged(rows, k))
    _rehash(rows, k)


def insert_same_seq(rows: list[dict], k: int) -> None:
    rows.append(_forged(rows, k))


def edit_rehashing_all(rows: list[dict], k: int) -> None:
    edit(rows, k)
    _rehash(rows, k)


def delete_rehashing(rows: list[dict], k: int) -> None:
    del rows[k - 1]
    _rehash(rows, k)


def reorder(rows: list[dict], k: int) -> None:
    """Swap entries k and k + 1 (each keeps its content and hash, and takes the other's seq)."""
    rows[k - 1]["seq"], rows[k]["seq"] = rows[k]["seq"], rows[k - 1]["seq"]


def cut_tail(rows: list[dict], k: int) -> None:
    del rows[k - 1 :]


Tamper = Callable[[list[dict], int], None]
# (tamper, position, the first failing seq verify must name, the kind it must name)
MATRIX: list[tuple[Tamper, int, int, str]] = [
    *[(edit, k, k, "edited") for k in (FIRST, MIDDLE, LAST)],
    *[(edit_rehashing_it, k, k, "edited") for k in (FIRST, MIDDLE, LAST)],
    *[(edit_rehashing_all, k, k, "edited") for k in (FIRST, MIDDLE, LAST)],
    *[(delete, k, k, "deleted") for k in (FIRST, MIDDLE)],
    *[(delete_renumbering, k, k, "deleted") for k in (FIRST, MIDDLE)],
    *[(delete_rehashing, k, k, "deleted") for k in (FIRST, MIDDLE)],
    # Deleting the last entry, however done, is cutting the tail by one.
    (delete, LAST, LAST, "tail_cut"),
    (delete_rehashing, LAST, LAST, "tail_cut"),
    *[(insert_renumbering, k, k, "inserted") for k in (FIRST, MIDDLE, LAST)],
    *[(insert_rehashing, k, k, "inserted") for k in (FIRST, MIDDLE, LAST)],
    *[(insert_same_seq, k, k, "inserted") for k in (FIRST, MIDDLE, LAST)],
    # A forged entry after the last one chains perfectly; the anchors never saw it.
    (insert_renumbering, LAST + 1, LAST + 1, "inserted"),
    *[(reorder, k, k, "reordered") for k in (FIRST, MIDDLE, LAST - 1)],
    *[(cut_tail, k, k, "tail_cut") for k in (FIRST, MIDDLE, LAST)],
]


@pytest.mark.parametrize(
    ("tamper", "position", "seq", "kind"),
    MATRIX,
    ids=[f"{t.__name__}-{p}" for t, p, _, _ in MATRIX],
)
def test_every_tampering_is_found_at_its_first_entry(
    ledger: AuditLedger, tamper: Tamper, position: int, seq: int, kind: str
) -> None:
    assert ledger.verify().ok
    rows = _rows(ledger)
    tamper(rows, position)
    _rewrite(ledger, rows)

    report = ledger.verify()

    assert not report.ok
    assert report.failure is not None
    assert (report.failure.seq, report.failure.kind) == (seq, kind), report.failure.detail
    assert report.checked == seq - 1


def test_an_untouched_ledger_verifies(ledger: AuditLedger) -> None:
    report = ledger.verify()
    assert report.ok and report.failure is None
    assert report.checked == SIZE and report.anchors == SIZE
    assert report.head == ledger.head() == ledger.anchors()[-1]
    # Rows stored in another physical order are the same ledger: order is the seq.
    _rewrite(ledger, list(reversed(_rows(ledger))))
    assert ledger.verify().ok


def test_the_hash_is_the_documented_formula(ledger: AuditLedger) -> None:
    rows = _rows(ledger)
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
    rows = _rows(book)
    edit_rehashing_all(rows, 5)
    _rewrite(book, rows)
    failure = book.verify().failure
    assert failure is not None and (failure.seq, failure.kind) == (4, "edited")
    assert "4..7" in failure.detail


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
    lines = Path(ledger.anchors_path).read_text().splitlines()
    assert len(lines) == SIZE and json.loads(lines[-1])["seq"] == SIZE
