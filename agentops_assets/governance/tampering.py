"""The forgeries :meth:`AuditLedger.verify` must catch, used by the tests and by
``bench/bench_governance.py``.

The forger has write access to the lake but not to the anchors file: they read the rows of
``audit_ledger`` (:func:`read_rows`), change them and overwrite the table (:func:`rewrite`, a
plain ``write_deltalake(mode="overwrite")``). Each tamper function changes the rows, in seq
order, at position ``k`` (1-based: the seq of that entry in an untouched ledger). Some also
renumber the seqs after it or recompute the whole chain from it, so that only the anchors still
tell.

:func:`matrix` pairs every tamper with the positions where it applies (first, middle, last,
after last) and the first entry and failure kind ``verify`` must report; :func:`run_matrix`
applies each case to a fresh ledger and says whether it was found there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

import polars as pl
from deltalake import write_deltalake

from agentops_assets.governance.ledger import (
    GENESIS,
    LEDGER_SCHEMA,
    AuditLedger,
    FailureKind,
    entry_hash,
)

Row = dict[str, Any]
Tamper = Callable[[list[Row], int], None]


def read_rows(ledger: AuditLedger) -> list[Row]:
    """The ledger's rows in seq order, as the forger reads them straight from the table."""
    return pl.read_delta(ledger.uri).sort("seq").rows(named=True)


def rewrite(ledger: AuditLedger, rows: list[Row]) -> None:
    """Overwrite the table with ``rows``, as someone with write access to the lake could."""
    frame = pl.DataFrame(rows, schema=LEDGER_SCHEMA, orient="row")
    write_deltalake(ledger.uri, frame.to_arrow(), mode="overwrite")


def forge(ledger: AuditLedger, tamper: Tamper, position: int) -> None:
    """Read the ledger's rows, apply ``tamper`` at ``position`` and write them back."""
    rows = read_rows(ledger)
    tamper(rows, position)
    rewrite(ledger, rows)


def edit(rows: list[Row], k: int) -> None:
    """Change entry k's payload (turn a yellow zone green, or add a field) and leave its hash as
    it was."""
    payload = rows[k - 1]["payload"]
    forged = payload.replace("yellow", "green")
    if forged == payload:
        forged = payload[:-1] + (',"forged":true}' if payload != "{}" else '"forged":true}')
    rows[k - 1]["payload"] = forged


def edit_rehashing_it(rows: list[Row], k: int) -> None:
    """Change entry k's payload and recompute its own hash (the next entry still points at the
    old one)."""
    edit(rows, k)
    row = rows[k - 1]
    row["hash"] = _hash(row)


def edit_rehashing_all(rows: list[Row], k: int) -> None:
    """Change entry k's payload and recompute the chain from it on."""
    edit(rows, k)
    _rehash(rows, k)


def delete(rows: list[Row], k: int) -> None:
    """Remove entry k."""
    del rows[k - 1]


def delete_renumbering(rows: list[Row], k: int) -> None:
    """Remove entry k and close the gap in the seqs (the hashes are left as they were)."""
    del rows[k - 1]
    for row in rows[k - 1 :]:
        row["seq"] -= 1


def delete_rehashing(rows: list[Row], k: int) -> None:
    """Remove entry k and recompute seqs and chain from there on."""
    del rows[k - 1]
    _rehash(rows, k)


def insert_renumbering(rows: list[Row], k: int) -> None:
    """Insert a forged entry at position k, chained onto the one before, and shift the seqs
    after it (their hashes are left as they were)."""
    rows.insert(k - 1, _forged(rows, k))
    for row in rows[k:]:
        row["seq"] += 1


def insert_rehashing(rows: list[Row], k: int) -> None:
    """Insert a forged entry at position k and recompute seqs and chain from there on."""
    rows.insert(k - 1, _forged(rows, k))
    _rehash(rows, k)


def insert_same_seq(rows: list[Row], k: int) -> None:
    """Add a forged entry that takes seq k beside the real entry k."""
    rows.append(_forged(rows, k))


def reorder(rows: list[Row], k: int) -> None:
    """Swap entries k and k + 1 (each keeps its content and hash, and takes the other's seq)."""
    rows[k - 1]["seq"], rows[k]["seq"] = rows[k]["seq"], rows[k - 1]["seq"]


def cut_tail(rows: list[Row], k: int) -> None:
    """Remove entry k and every entry after it."""
    del rows[k - 1 :]


class Case(NamedTuple):
    """One forgery: ``tamper`` at ``position``, and the first failing ``seq`` and ``kind``
    that ``verify`` must report."""

    tamper: Tamper
    position: int
    seq: int
    kind: FailureKind

    @property
    def name(self) -> str:
        return f"{self.tamper.__name__}-{self.position}"


def matrix(size: int) -> list[Case]:
    """Every forgery of a ledger of ``size`` entries, each anchored (appended one at a time).

    Positions are the first entry, the middle one, the last one, and after the last where a
    tamper can act there (an insertion); a swap acts on the last two.

    Raises:
        ValueError: ``size`` is below 4, too few entries for distinct positions.
    """
    if size < 4:
        raise ValueError(f"the tamper matrix needs a ledger of at least 4 entries, not {size}.")
    first, middle, last = 1, (size + 1) // 2, size
    ends = (first, middle, last)
    return [
        *[Case(edit, k, k, "edited") for k in ends],
        *[Case(edit_rehashing_it, k, k, "edited") for k in ends],
        *[Case(edit_rehashing_all, k, k, "edited") for k in ends],
        *[Case(delete, k, k, "deleted") for k in (first, middle)],
        *[Case(delete_renumbering, k, k, "deleted") for k in (first, middle)],
        *[Case(delete_rehashing, k, k, "deleted") for k in (first, middle)],
        # Deleting the last entry, however done, is cutting the tail by one.
        Case(delete, last, last, "tail_cut"),
        Case(delete_rehashing, last, last, "tail_cut"),
        *[Case(insert_renumbering, k, k, "inserted") for k in ends],
        *[Case(insert_rehashing, k, k, "inserted") for k in ends],
        *[Case(insert_same_seq, k, k, "inserted") for k in ends],
        # A forged entry after the last one chains perfectly; the anchors never saw it.
        Case(insert_renumbering, last + 1, last + 1, "inserted"),
        *[Case(reorder, k, k, "reordered") for k in (first, middle, last - 1)],
        *[Case(cut_tail, k, k, "tail_cut") for k in ends],
    ]


@dataclass(frozen=True)
class Outcome:
    """What ``verify`` reported for one :class:`Case`; ``found_*`` are ``None`` when it
    reported the ledger intact."""

    tamper: str
    position: int
    expected_seq: int
    expected_kind: FailureKind
    found_seq: int | None
    found_kind: FailureKind | None
    detected: bool


def try_case(ledger: AuditLedger, case: Case) -> Outcome:
    """Apply ``case`` to ``ledger`` (which it spoils) and verify it."""
    forge(ledger, case.tamper, case.position)
    failure = ledger.verify().failure
    found = (failure.seq, failure.kind) if failure else None
    return Outcome(
        tamper=case.tamper.__name__,
        position=case.position,
        expected_seq=case.seq,
        expected_kind=case.kind,
        found_seq=found[0] if found else None,
        found_kind=found[1] if found else None,
        detected=found == (case.seq, case.kind),
    )


def run_matrix(make_ledger: Callable[[], AuditLedger]) -> list[Outcome]:
    """Apply every case of :func:`matrix` to a fresh ledger from ``make_ledger``.

    Args:
        make_ledger: Returns a new, untouched ledger on each call, always the same entries,
            each appended on its own (so each has its anchor).

    Raises:
        ValueError: The ledger from ``make_ledger`` does not verify or has not one anchor per
            entry.
    """
    probe = make_ledger()
    cases = matrix(_anchored_size(probe))
    return [try_case(probe if i == 0 else make_ledger(), case) for i, case in enumerate(cases)]


def _anchored_size(ledger: AuditLedger) -> int:
    report = ledger.verify()
    if not report.ok or report.head is None:
        raise ValueError("run_matrix needs a non-empty ledger that verifies.")
    size = report.head.seq
    if [anchor.seq for anchor in ledger.anchors()] != list(range(1, size + 1)):
        raise ValueError("run_matrix needs one anchor per entry: append the entries one by one.")
    return size


def _hash(row: Row) -> str:
    return entry_hash(**{key: row[key] for key in row if key != "hash"})


def _rehash(rows: list[Row], start: int) -> None:
    """Recompute seq and the chain from position ``start`` (1-based) on."""
    for i in range(start - 1, len(rows)):
        row = rows[i]
        row["seq"] = i + 1
        row["prev_hash"] = rows[i - 1]["hash"] if i else GENESIS
        row["hash"] = _hash(row)


def _forged(rows: list[Row], k: int) -> Row:
    """An approval nobody gave, hashed properly onto the entry before position ``k`` and dated
    half a minute after it (before the first entry when ``k`` is 1)."""
    before = rows[k - 2] if k > 1 else None
    half_minute = timedelta(seconds=30)
    row: Row = {
        "seq": k,
        "at": before["at"] + half_minute if before else rows[0]["at"] - half_minute,
        "kind": "approval",
        "actor": "mallory",
        "subject": (before or rows[0])["subject"],
        "payload": '{"approved":true}',
        "prev_hash": before["hash"] if before else GENESIS,
    }
    row["hash"] = _hash(row)
    return row
