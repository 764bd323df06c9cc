"""The tamper-evident audit ledger: the Delta table ``audit_ledger``, a hash chain, and anchors.

Every governance event (a yellow or red policy decision, an approval, a memory commit...) is
one entry. Entries are only ever appended, each batch in one Delta commit, and each entry's
``hash`` covers the one before it::

    hash = sha256(canonical([prev_hash, seq, at, kind, actor, subject, payload])).hexdigest()

where ``canonical`` is JSON with sorted keys, no spaces and UTF-8 text (``ensure_ascii=False``),
``at`` is written ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, microseconds), ``payload`` is the stored
canonical JSON text (a string inside the array), and the first entry's ``prev_hash`` is
:data:`GENESIS` (64 zeros). Editing, deleting, inserting or reordering entries breaks the chain.

A forger who rewrites the whole chain from some entry on, or simply cuts its tail, leaves a
consistent table. So each append also publishes the head (seq, hash) in an append-only file
outside the table, ``$AGENTOPS_HOME/audit/anchors.jsonl`` (each line fsync'd), in two steps:
a ``pending`` line before the Delta commit, a ``committed`` line after it. :meth:`verify`
checks that every committed anchor is still in the table with the same hash, and that the
table holds no entry after the last committed anchor, except a batch that ends exactly at a
later pending anchor: the commit of a writer killed before its ``committed`` line. A pending
anchor whose batch never landed (killed before or during the commit) is ignored. So a writer
killed at any point leaves a ledger that verifies, and the next append continues the chain.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl
from deltalake import DeltaTable

from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths

AUDIT_LEDGER: Final = "audit_ledger"
GENESIS: Final = "0" * 64
KINDS: Final = frozenset(
    {
        "policy_decision",
        "approval",
        "rejection",
        "memory_commit",
        "memory_rollback",
        "policy_bundle_change",
        "autonomy_change",
    }
)
LEDGER_SCHEMA: Final = pl.Schema(
    {
        "seq": pl.Int64(),
        "at": pl.Datetime("us", "UTC"),
        "kind": pl.String(),
        "actor": pl.String(),
        "subject": pl.String(),
        "payload": pl.String(),
        "prev_hash": pl.String(),
        "hash": pl.String(),
    }
)
FailureKind = Literal["edited", "deleted", "inserted", "reordered", "tail_cut"]
_WRITER = lake.writer_properties(unique=["hash", "prev_hash"], free_text=["payload"])


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON: sorted keys, no spaces, UTF-8 text, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def entry_hash(
    *, prev_hash: str, seq: int, at: datetime, kind: str, actor: str, subject: str, payload: str
) -> str:
    """The hash of one entry (see the module docstring); ``payload`` is its canonical text."""
    text = canonical_json([prev_hash, seq, _instant(at), kind, actor, subject, payload])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One governance event to append.

    Attributes:
        kind: One of :data:`KINDS`.
        actor: Who acted (a reviewer, an agent id, ``system``).
        subject: What it is about (an event, trace, review or memory commit id); what
            :meth:`AuditLedger.entries` filters on.
        payload: The details, stored as canonical JSON.
        at: When it happened (timezone-aware); defaults to the time of the append.
    """

    kind: str
    actor: str
    subject: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    at: datetime | None = None


@dataclass(frozen=True)
class Head:
    """The last entry of the chain."""

    seq: int
    hash: str


@dataclass(frozen=True)
class Failure:
    """The first entry at which the ledger no longer holds."""

    seq: int
    kind: FailureKind
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`AuditLedger.verify` found: ``ok``, entries checked, the first failure."""

    ok: bool
    checked: int
    anchors: int
    head: Head | None
    failure: Failure | None = None


class AuditLedger:
    """The append-only ``audit_ledger`` table of one storage layout, and its anchors file."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.uri = paths.table_uri(AUDIT_LEDGER)
        self.anchors_path: Path = paths.home / "audit" / "anchors.jsonl"
        # The head as of a table version: a long-lived ledger (the decision gate's) appends
        # without re-reading the whole chain while no one else has written.
        self._table: DeltaTable | None = None
        self._known: tuple[int, Head | None] | None = None

    def append(self, entries: Sequence[Entry]) -> Head:
        """Append ``entries`` to the chain in one Delta commit, then publish the new head.

        Writers on this machine take turns (a file lock), so appends from several processes
        form one gap-free chain.

        Raises:
            ValueError: No entries, an unknown kind, a naive ``at`` or a payload that is not
                JSON.
        """
        if not entries:
            raise ValueError("append needs at least one entry.")
        now = datetime.now(UTC)
        prepared = [_prepared(entry, now) for entry in entries]
        with lake.writer_lock(self.paths, AUDIT_LEDGER):
            head = self.head()
            seq, prev = (head.seq, head.hash) if head else (0, GENESIS)
            rows = []
            for at, kind, actor, subject, payload in prepared:
                seq += 1
                digest = entry_hash(
                    prev_hash=prev,
                    seq=seq,
                    at=at,
                    kind=kind,
                    actor=actor,
                    subject=subject,
                    payload=payload,
                )
                rows.append((seq, at, kind, actor, subject, payload, prev, digest))
                prev = digest
            frame = pl.DataFrame(rows, schema=LEDGER_SCHEMA, orient="row")
            new_head = Head(seq=seq, hash=prev)
            self._anchor(new_head, now, "pending")
            lake.append(
                self.uri,
                frame,
                metadata={"audit_head_seq": str(seq), "audit_head_hash": prev},
                writer=_WRITER,
            )
            self._anchor(new_head, now, "committed")
            # Under the lock, the version after this commit is this commit's.
            version = self._version()
            self._known = (version, new_head) if version is not None else None
        return new_head

    def head(self) -> Head | None:
        """The entry with the highest seq, or ``None`` for an empty ledger.

        Read from the table, unless its version is the one this object last read or wrote:
        any other commit (another writer's append, a compaction, a tamperer's edit) makes it
        read the chain again.
        """
        version = self._version()
        if version is not None and self._known is not None and self._known[0] == version:
            return self._known[1]
        head = self._scan_head()
        self._known = (version, head) if version is not None else None
        return head

    def _version(self) -> int | None:
        """The table's current version (None before it exists), from a handle kept open."""
        if self._table is None:
            if not lake.table_exists(self.uri):
                return None
            self._table = DeltaTable(self.uri)
        else:
            self._table.update_incremental()
        return self._table.version()

    def _scan_head(self) -> Head | None:
        frame = lake.scan(self.uri)
        if frame is None:
            return None
        last = frame.select("seq", "hash").sort("seq").tail(1).collect()
        if last.is_empty():
            return None
        return Head(seq=int(last["seq"][0]), hash=str(last["hash"][0]))

    def entries(
        self,
        subject: str | None = None,
        *,
        kind: str | None = None,
        since: datetime | None = None,
    ) -> pl.DataFrame:
        """Entries in seq order, optionally only those about ``subject``, of ``kind`` or at or
        after ``since``."""
        frame = lake.scan(self.uri)
        if frame is None:
            return LEDGER_SCHEMA.to_frame()
        if subject is not None:
            frame = frame.filter(pl.col("subject") == subject)
        if kind is not None:
            frame = frame.filter(pl.col("kind") == kind)
        if since is not None:
            frame = frame.filter(pl.col("at") >= _utc(since))
        return frame.sort("seq").collect()

    def anchors(self) -> list[Head]:
        """Published heads of committed appends, oldest first. A line torn by a crash
        mid-write is skipped."""
        return self._anchor_lines("committed")

    def pending_anchors(self) -> list[Head]:
        """Heads announced before a commit, oldest first (every append writes one)."""
        return self._anchor_lines("pending")

    def _anchor_lines(self, state: str) -> list[Head]:
        if not self.anchors_path.exists():
            return []
        heads = []
        for line in self.anchors_path.read_text("utf-8").splitlines():
            try:
                record = json.loads(line)
                if record.get("state", "committed") != state:
                    continue
                heads.append(Head(seq=int(record["seq"]), hash=str(record["hash"])))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        return heads

    def verify(self) -> VerifyReport:
        """Check the chain entry by entry, then every anchor against the table.

        Returns:
            ``ok`` when both hold; otherwise the first failing entry and what happened to it:
            ``edited`` (content changed), ``deleted`` (an entry is missing), ``inserted`` (an
            entry was added), ``reordered`` (entries swapped places) or ``tail_cut`` (the last
            entries are gone). A forger who recomputed the chain is caught by the anchors; the
            failure then names the first entry after the last anchor that still holds.
        """
        # Under the writers' lock: an append between its commit and its anchor is not a gap.
        with lake.writer_lock(self.paths, AUDIT_LEDGER):
            frame = self.entries()
            anchors = self.anchors()
            pending = self.pending_anchors()
        rows = frame.sort("seq", maintain_order=True).rows(named=True)
        failure = _chain_failure(rows)
        if failure is None:
            failure = _anchor_failure(rows, anchors, pending)
        head = Head(seq=rows[-1]["seq"], hash=rows[-1]["hash"]) if rows else None
        checked = len(rows) if failure is None else failure.seq - 1
        return VerifyReport(
            ok=failure is None,
            checked=max(0, checked),
            anchors=len(anchors),
            head=head,
            failure=failure,
        )

    def _anchor(self, head: Head, at: datetime, state: str) -> None:
        self.anchors_path.parent.mkdir(parents=True, exist_ok=True)
        line = canonical_json(
            {"seq": head.seq, "hash": head.hash, "at": _instant(at), "state": state}
        )
        with self.anchors_path.open("ab") as file:
            # After a torn last line, start a fresh one rather than extend the torn one.
            if file.tell() > 0:
                with self.anchors_path.open("rb") as reader:
                    reader.seek(-1, os.SEEK_END)
                    if reader.read(1) != b"\n":
                        file.write(b"\n")
            file.write(line.encode("utf-8") + b"\n")
            file.flush()
            os.fsync(file.fileno())


def _prepared(entry: Entry, now: datetime) -> tuple[datetime, str, str, str, str]:
    if entry.kind not in KINDS:
        raise ValueError(
            f"unknown ledger entry kind '{entry.kind}'; expected one of {sorted(KINDS)}."
        )
    try:
        payload = canonical_json(dict(entry.payload))
    except (TypeError, ValueError) as error:
        raise ValueError(f"the payload of a {entry.kind} entry is not JSON ({error}).") from None
    return _utc(entry.at or now), entry.kind, entry.actor, entry.subject, payload


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"time {at.isoformat()} has no timezone; give it in UTC.")
    return at.astimezone(UTC)


def _instant(at: datetime) -> str:
    return _utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _row_hash(row: Mapping[str, Any], seq: int) -> str:
    return entry_hash(
        prev_hash=row["prev_hash"],
        seq=seq,
        at=row["at"],
        kind=row["kind"],
        actor=row["actor"],
        subject=row["subject"],
        payload=row["payload"],
    )


def _chain_failure(rows: list[dict[str, Any]]) -> Failure | None:
    """The first position where the stored chain breaks, classified by what the row shows.

    Position ``i`` (1-based) must hold seq ``i``, hash to its stored ``hash`` and point at the
    hash of position ``i - 1``. Where a row points instead tells what happened: at an earlier
    row, entries were inserted after it; at a later row, entries were swapped; at no row, its
    predecessor was deleted or (when the row's own seq still fits) edited and re-hashed.
    """
    position_of = {GENESIS: 0} | {row["hash"]: i for i, row in enumerate(rows, start=1)}
    prev = GENESIS
    for i, row in enumerate(rows, start=1):
        seq = row["seq"]
        points_to = position_of.get(row["prev_hash"])
        if _row_hash(row, seq) != row["hash"]:
            moved = any(_row_hash(row, s) == row["hash"] for s in range(1, len(rows) + 2))
            if not moved:
                return Failure(seq, "edited", f"entry {seq} does not match its hash.")
            return _misplaced(i, points_to, f"entry {seq} was stored under another seq")
        if seq > i:
            return Failure(i, "deleted", f"entry {i} is missing (the next stored is {seq}).")
        if seq < i:
            return Failure(seq, "inserted", f"seq {seq} appears more than once.")
        if row["prev_hash"] != prev:
            if points_to is None and i > 1:
                return Failure(
                    i - 1, "edited", f"entry {i - 1} was changed and re-hashed; {i} no longer "
                    "points at it."
                )  # fmt: skip
            return _misplaced(i, points_to, f"entry {seq} does not point at entry {i - 1}")
        prev = row["hash"]
    return None


def _misplaced(i: int, points_to: int | None, what: str) -> Failure:
    if points_to is None:
        return Failure(i, "deleted", f"{what}: the entry before it is missing.")
    if points_to < i - 1:
        return Failure(
            points_to + 1, "inserted", f"{what}: entries were inserted after {points_to}."
        )
    if points_to > i - 1:
        return Failure(i, "reordered", f"{what}: it follows entry {points_to}.")
    return Failure(i, "edited", f"{what}.")


def _anchor_failure(
    rows: list[dict[str, Any]], anchors: list[Head], pending: list[Head]
) -> Failure | None:
    """The first committed anchor the (internally consistent) chain no longer holds, or
    entries after the last one that no pending anchor announced."""
    hash_at = {row["seq"]: row["hash"] for row in rows}
    head_seq = rows[-1]["seq"] if rows else 0
    last_anchor = max((a.seq for a in anchors), default=0)
    held = 0  # the last anchored seq that still holds
    for anchor in sorted(anchors, key=lambda a: a.seq):
        if anchor.seq > head_seq:
            # Everything anchored up to the head holds, and entries after it are gone.
            return Failure(
                head_seq + 1,
                "tail_cut",
                f"the table ends at entry {head_seq} but entry {anchor.seq} was published.",
            )
        if hash_at[anchor.seq] != anchor.hash:
            first = held + 1
            kind: FailureKind = (
                "inserted"
                if head_seq > last_anchor
                else "deleted"
                if head_seq < last_anchor
                else "edited"
            )
            return Failure(
                first,
                kind,
                f"the chain was rewritten: entry {anchor.seq} differs from its published hash "
                f"(the change lies in entries {first}..{anchor.seq}).",
            )
        held = anchor.seq
    if head_seq > last_anchor:
        if any(p.seq == head_seq and p.hash == hash_at[head_seq] for p in pending):
            return None  # a writer killed after its commit, before its committed anchor
        return Failure(
            last_anchor + 1,
            "inserted",
            f"entries {last_anchor + 1}..{head_seq} were never published as a head.",
        )
    return None
