"""``MemoryStore``: agent memory versioned like code, on one Delta table.

Every commit and rollback is one Delta ``MERGE`` of one agent's rows whose commit metadata
carries message, author, cycle and approver. Table versions are the memory's commit ids.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import polars as pl
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError

from memory import _table as t
from memory.errors import (
    CommitConflictError,
    FactExistsError,
    NothingToRevertError,
    RevertConflictError,
    UnknownAgentError,
    UnknownFactError,
    UnknownVersionError,
    VersionVacuumedError,
)
from memory.model import (
    DEFAULT_NAMESPACE,
    MAX_MESSAGE_BYTES,
    MAX_NAME_CHARS,
    ChangedFact,
    Commit,
    Fact,
    FactChange,
    FactDiff,
    check_agent_id,
    check_text,
    check_version,
)
from memory.redaction import redact_json, redact_text, secret_kinds

log = logging.getLogger(__name__)
# Commit metadata that people and agents write: redacted, as it is stored in the Delta log.
_REDACTED_KEYS = (t.MESSAGE, t.AUTHOR, t.CYCLE, t.APPROVER)
_COMMIT_KINDS = ("commit", "rollback", "revert")


@dataclass(frozen=True)
class _Plan:
    """The exact rows one commit writes, worked out against the snapshot it merges into."""

    source: pl.DataFrame
    added: int
    updated: int
    deleted: int


class MemoryStore:
    """Versioned memory for many agents in one Delta table (``<lake>/memory_facts``).

    Args:
        uri: Where the Delta table lives: a local path or an object-store URI
            (``s3://``, ``gs://``, ``az://``). Created on the first commit.
        storage_options: Object-store options passed to deltalake (credentials, region...).
        compact_after_files: Pack an agent's small files (under 1 MiB) after a commit leaves
            more than this many: merges scan every file of the agent, so this keeps commits
            and rollbacks fast as history grows. ``None`` leaves compaction to the caller.
        retry_seconds: How long a commit keeps retrying when concurrent writers win the race.

    Many processes and machines may write one store at once. One ``MemoryStore`` object keeps
    the table's state between calls: give each thread its own.

    Example:
        >>> store = MemoryStore("data/lake/memory_facts")  # doctest: +SKIP
        >>> store.commit("finance-01", [FactChange.add("Discounts above 10% need approval.",
        ...     fact_id="pricing.discount_policy")], message="learned policy", author="ops")
    """

    def __init__(
        self,
        uri: str | os.PathLike[str],
        *,
        storage_options: Mapping[str, str] | None = None,
        compact_after_files: int | None = 8,
        retry_seconds: float = 60.0,
    ) -> None:
        if compact_after_files is not None and compact_after_files < 2:
            raise ValueError("compact_after_files must be at least 2, or None to never compact.")
        self._uri = os.fspath(uri).rstrip("/")
        self._options = dict(storage_options or {})
        self._compact_after = compact_after_files
        self._retry_seconds = retry_seconds
        self._cached: DeltaTable | None = None

    @property
    def uri(self) -> str:
        """Where the memory table lives."""
        return self._uri

    def __repr__(self) -> str:
        return f"MemoryStore({self._uri!r})"

    # -- writing --------------------------------------------------------------------------

    def commit(
        self,
        agent_id: str,
        changes: Iterable[FactChange],
        *,
        message: str,
        author: str,
        cycle_id: str | None = None,
        approved_by: str | None = None,
        event_time: datetime | None = None,
    ) -> Commit | None:
        """Add, update and delete facts of one agent atomically, as ONE new version.

        Concurrent commits (other processes, other machines) are retried on conflict, so
        every commit lands or raises; none is lost.

        Args:
            agent_id: The agent whose memory changes.
            changes: ``FactChange.add/update/put/delete`` values, one per fact.
            message: Why the memory changes, as a person would read it in the log.
            author: Who or what made the change (an agent, a pipeline, a person).
            cycle_id: The reasoning cycle the change came from.
            approved_by: Who approved the change, when a review was required.
            event_time: When what the commit records happened (a cycle's time, timezone-aware),
                if not now; ``version_at`` and ``memory show --at`` go by it.

        Returns:
            The new commit, or ``None`` when the changes left the memory as it was.

        Raises:
            FactExistsError: An add names a fact the agent already holds.
            UnknownFactError: An update or delete names a fact the agent does not hold.
            CommitConflictError: Concurrent writers kept winning until ``retry_seconds``.
        """
        check_agent_id(agent_id)
        _refuse_secret(agent_id, "agent_id")
        if isinstance(changes, FactChange):
            raise ValueError("changes must be a list of FactChange values, not a single one.")
        changes = list(changes)
        if not changes:
            raise ValueError("changes is empty: a commit needs at least one FactChange.")
        if not all(isinstance(c, FactChange) for c in changes):
            raise ValueError("changes must be FactChange values (FactChange.add(...), ...).")
        seen: set[str] = set()
        for change in changes:
            if change.fact_id in seen:
                raise ValueError(f"fact {change.fact_id!r} appears twice in one commit.")
            seen.add(change.fact_id)
        changes = [_redacted(change) for change in changes]
        metadata = {
            t.KIND: "commit",
            t.AGENT: agent_id,
            t.MESSAGE: check_text(message, "message", max_bytes=MAX_MESSAGE_BYTES),
            t.AUTHOR: check_text(author, "author", max_chars=MAX_NAME_CHARS),
            t.CYCLE: check_text(cycle_id, "cycle_id", optional=True, max_chars=MAX_NAME_CHARS),
            t.APPROVER: check_text(
                approved_by, "approved_by", optional=True, max_chars=MAX_NAME_CHARS
            ),
            t.EVENT_TIME: None if event_time is None else _utc(event_time).isoformat(),
        }

        def plan(table: DeltaTable, now: datetime) -> _Plan:
            return _commit_plan(table, agent_id, changes, now)

        return self._write(agent_id, plan, metadata)

    def rollback(
        self,
        agent_id: str,
        to_version: int,
        *,
        reason: str,
        author: str,
        approved_by: str | None = None,
    ) -> Commit | None:
        """Bring one agent's facts back to their state at ``to_version``, as a NEW version.

        Other agents' facts are untouched and history is kept, so a rollback can itself be
        rolled back. Its cost follows the agent's facts, not the length of the history.

        Args:
            agent_id: The agent whose memory is rolled back.
            to_version: The version whose state this agent's facts return to.
            reason: Why, as a person would read it in the log.
            author: Who or what rolled back.
            approved_by: Who approved the rollback.

        Returns:
            The rollback commit, or ``None`` when the facts already were in that state.

        Raises:
            UnknownAgentError: The agent never committed.
            UnknownVersionError: ``to_version`` does not exist.
            VersionVacuumedError: ``to_version`` can no longer be read.
        """
        check_agent_id(agent_id)
        check_version(to_version, "to_version")
        desired = t.read_facts(self._load(version=to_version), agent_id)
        metadata = {
            t.KIND: "rollback",
            t.AGENT: agent_id,
            t.MESSAGE: check_text(reason, "reason", max_bytes=MAX_MESSAGE_BYTES),
            t.AUTHOR: check_text(author, "author", max_chars=MAX_NAME_CHARS),
            t.APPROVER: check_text(
                approved_by, "approved_by", optional=True, max_chars=MAX_NAME_CHARS
            ),
            t.ROLLED_BACK_TO: str(to_version),
        }

        def plan(table: DeltaTable, now: datetime) -> _Plan:
            result = _rollback_plan(table, agent_id, desired)
            if result.source.is_empty() and desired.is_empty():
                self._require_agent(agent_id, table)
            return result

        return self._write(agent_id, plan, metadata)

    def revert(
        self,
        agent_id: str,
        version: int,
        *,
        author: str,
        reason: str | None = None,
        approved_by: str | None = None,
    ) -> Commit:
        """Undo exactly what commit ``version`` did to one agent's facts, as a NEW version.

        Facts it added are removed, facts it changed get their previous value back and facts
        it removed come back; every later commit's other changes are kept (``git revert``).

        Args:
            agent_id: The agent whose commit is undone.
            version: A commit of this agent (see ``log``).
            author: Who or what reverts.
            reason: Why, added to the message ``Revert vN: <original message>``.
            approved_by: Who approved the revert.

        Returns:
            The revert commit.

        Raises:
            UnknownVersionError: ``version`` is not a commit of this agent.
            RevertConflictError: A later commit changed a fact that ``version`` changed.
            NothingToRevertError: The commit's changes are already undone.
        """
        check_agent_id(agent_id)
        check_version(version)
        target = self._agent_commit(agent_id, version)
        before = t.read_facts(self._load(version=version - 1), agent_id)
        after = t.read_facts(self._load(version=version), agent_id)
        message = f"Revert v{version}: {target.message}"
        if reason is not None:
            message += f" ({check_text(reason, 'reason')})"
        metadata = {
            t.KIND: "revert",
            t.AGENT: agent_id,
            t.MESSAGE: _bounded(message, MAX_MESSAGE_BYTES),
            t.AUTHOR: check_text(author, "author", max_chars=MAX_NAME_CHARS),
            t.APPROVER: check_text(
                approved_by, "approved_by", optional=True, max_chars=MAX_NAME_CHARS
            ),
            t.REVERTED: str(version),
        }

        def plan(table: DeltaTable, now: datetime) -> _Plan:
            work, conflicts = _revert_plan(table, agent_id, before, after, now)
            if conflicts:
                later = self._changed_since(agent_id, version, conflicts, table.version())
                raise RevertConflictError(_conflict(agent_id, version, conflicts, later))
            if work.source.is_empty():
                raise NothingToRevertError(
                    f"nothing to revert: the changes v{version} made to {agent_id!r} are "
                    f"already undone{self._reverted_by(agent_id, version)}."
                )
            return work

        commit = self._write(agent_id, plan, metadata)
        assert commit is not None  # an empty plan raised above
        return commit

    def _agent_commit(self, agent_id: str, version: int) -> Commit:
        """The commit ``version``, which must be a commit of ``agent_id``."""
        self._load(version=version)  # a version past the head or cleaned up: a clear error
        entry = self._entry_at(version)
        if entry is None or entry.get(t.KIND) not in _COMMIT_KINDS:
            raise UnknownVersionError(
                f"v{version} is not a memory commit (it is table housekeeping); pick a "
                f"version from `memory log {agent_id}`."
            )
        if entry.get(t.AGENT) != agent_id:
            raise UnknownVersionError(
                f"v{version} is a commit of agent {entry.get(t.AGENT)!r}, not of {agent_id!r}; "
                f"pick a version from `memory log {agent_id}`."
            )
        return _to_commit(entry)

    def _changed_since(
        self, agent_id: str, version: int, fact_ids: list[str], head: int
    ) -> list[int]:
        """Versions after ``version`` (up to ``head``) whose commit changed one of the facts."""
        table = self._table()
        assert table is not None
        later = [c.version for c in self._commits(table, agent_id, head - version)]
        changed = []
        for v in sorted(x for x in later if version < x <= head):
            old = t.read_facts(self._load(version=v - 1), agent_id, fact_ids=fact_ids)
            new = t.read_facts(self._load(version=v), agent_id, fact_ids=fact_ids)
            if not _same_values(old, new):
                changed.append(v)
        return changed

    def _reverted_by(self, agent_id: str, version: int) -> str:
        """`` by vN`` naming the latest revert of ``version``, or nothing when none is found."""
        table = self._table()
        assert table is not None
        commits = self._commits(table, agent_id, max(1, table.version() - version))
        found = next((c for c in commits if c.reverted == version), None)
        return "" if found is None else f" (reverted by v{found.version})"

    def _write(
        self,
        agent_id: str,
        plan: Callable[[DeltaTable, datetime], _Plan],
        metadata: dict[str, str | None],
    ) -> Commit | None:
        """Plan against the latest snapshot and merge; on conflict, re-read and do it again."""
        deadline = time.monotonic() + self._retry_seconds
        attempt = 0
        while True:
            table = self._latest() or self._create()
            now = datetime.now(UTC)
            work = plan(table, now)
            if work.source.is_empty():
                return None
            counts = {t.ADDED: work.added, t.UPDATED: work.updated, t.DELETED: work.deleted}
            custom = {k: str(v) for k, v in (metadata | counts).items() if v is not None}
            custom.update({k: redact_text(custom[k]) for k in _REDACTED_KEYS if k in custom})
            custom[t.COMMIT_ID] = uuid.uuid4().hex
            try:
                t.merge(table, agent_id, work.source, custom)
                break
            except CommitFailedError as exc:
                self._cached = None  # re-read the table from storage on the next attempt
                attempt += 1
                if time.monotonic() >= deadline:
                    raise CommitConflictError(
                        f"commit to agent {agent_id!r} lost the race to concurrent writers "
                        f"{attempt} times in {self._retry_seconds:.0f} s; nothing was written."
                    ) from exc
                pause = min(1.0, 0.005 * 2**attempt) * random.uniform(0.5, 1.5)
                log.debug("memory commit conflict (attempt %d), retry in %.3fs", attempt, pause)
                time.sleep(pause)
        commit = _to_commit(self._own_entry(table, custom[t.COMMIT_ID]))
        self._maybe_compact(table, agent_id)
        return commit

    def _own_entry(self, table: DeltaTable, commit_id: str) -> dict[str, Any]:
        """The history entry of the commit this process just made, found by its id."""
        newest = table.history(1)[0]
        if newest.get(t.COMMIT_ID) == commit_id:  # nobody committed since: the label is right
            return newest
        limit = 8
        while True:  # others committed since: search the (correctly labelled) recent history
            entries = t.history(table, limit)
            found = [e for e in entries if e.get(t.COMMIT_ID) == commit_id]
            if found:
                return found[0]
            if len(entries) < limit:
                raise RuntimeError(f"memory commit {commit_id} is missing from the log")
            limit *= 4

    def _maybe_compact(self, table: DeltaTable, agent_id: str) -> None:
        if self._compact_after is None or t.small_files(table, agent_id) <= self._compact_after:
            return
        try:
            t.compact(table, agent_id)
        except CommitFailedError:
            self._cached = None
            log.debug("compaction of %s lost a race; the next commit tries again", agent_id)

    def compact(self, agent_id: str | None = None) -> None:
        """Rewrite an agent's (or every agent's) small files into few.

        Commits compact automatically (see ``compact_after_files``); call this from a
        maintenance job when that is switched off. Compaction changes no fact and adds no
        memory commit to ``log``; after ``vacuum``, versions before it can no longer be read.
        """
        table = self._table()
        if table is None:
            return
        agents = [check_agent_id(agent_id)] if agent_id is not None else self.agents()
        for agent in agents:
            try:
                t.compact(table, agent)
            except CommitFailedError as exc:
                self._cached = None
                raise CommitConflictError(
                    f"compaction of agent {agent!r} lost the race to a concurrent commit; "
                    "run it again."
                ) from exc

    # -- reading --------------------------------------------------------------------------

    def version(self) -> int | None:
        """The latest version of the memory store, or ``None`` before its first commit."""
        table = self._table()
        return None if table is None else table.version()

    def agents(self) -> list[str]:
        """Agents that hold at least one fact now, sorted."""
        table = self._table()
        if table is None:
            return []
        return sorted({p[t.PARTITION] for p in table.partitions()})

    def log(self, agent_id: str | None = None, *, limit: int = 20) -> list[Commit]:
        """Memory commits and rollbacks, newest first, with their metadata.

        Args:
            agent_id: Only this agent's commits; every agent's when ``None``.
            limit: At most this many commits.

        Raises:
            UnknownAgentError: ``agent_id`` never committed.
        """
        if agent_id is not None:
            check_agent_id(agent_id)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}.")
        table = self._table()
        if table is None:
            if agent_id is not None:
                raise UnknownAgentError(_unknown_agent(agent_id))
            return []
        commits = self._commits(table, agent_id, limit)
        if agent_id is not None and not commits:
            self._require_agent(agent_id, table)  # holds facts whose commits were cleaned up
        return commits

    def version_at(self, agent_id: str, when: datetime) -> int:
        """The agent's memory version at an event time: its latest commit that happened then.

        A commit's event time is the time of what it records (the reasoning cycle, for commits
        fed from telemetry), else its commit time; the memory fed from a simulated week can so
        be read as it was on each day of that week, whenever it was ingested.

        Raises:
            UnknownAgentError: The agent never committed.
            UnknownVersionError: None of the agent's commits happened at or before ``when``.
        """
        when = _utc(when)
        head = self._table()
        self._require_agent(agent_id, head)
        commits = self._commits(head, agent_id, head.version() + 1)
        before = [c.version for c in commits if c.happened_at <= when]
        if not before:
            first = min((c.happened_at for c in commits), default=None)
            since = f"; its first commit happened at {first.isoformat()}" if first else ""
            raise UnknownVersionError(
                f"agent {agent_id!r} had no memory at {when.isoformat()}{since}."
            )
        return max(before)

    def as_of(
        self,
        agent_id: str,
        *,
        version: int | None = None,
        timestamp: datetime | None = None,
    ) -> list[Fact]:
        """One agent's facts as they were at a version or a time (now, when neither is given).

        Args:
            agent_id: The agent.
            version: A version of the memory store.
            timestamp: A timezone-aware time: the latest version committed at or before it.

        Returns:
            The facts, sorted by ``fact_id``; empty if the agent held none then.

        Raises:
            UnknownAgentError: The agent never committed.
            UnknownVersionError: The version does not exist, or the time is before the store.
            VersionVacuumedError: The version can no longer be read.
        """
        return _to_facts(self._agent_frame(agent_id, version=version, timestamp=timestamp))

    def frame(
        self,
        agent_id: str | None = None,
        *,
        version: int | None = None,
        timestamp: datetime | None = None,
    ) -> pl.DataFrame:
        """Like ``as_of`` but as a polars frame (``metadata`` as JSON), for bulk readers.

        With ``agent_id=None`` it holds every agent's facts.
        """
        if agent_id is not None:
            return self._agent_frame(agent_id, version=version, timestamp=timestamp)
        if version is timestamp is None:
            table = self._table()
            if table is None:
                return pl.DataFrame(schema=t.POLARS_SCHEMA)
        else:
            table = self._load(version=version, timestamp=timestamp)
        return t.read_facts(table, None)

    def diff(self, agent_id: str, from_version: int, to_version: int | None = None) -> FactDiff:
        """What changed in one agent's facts from one version to another.

        Args:
            agent_id: The agent.
            from_version: The older version.
            to_version: The newer version; the latest when ``None``.

        Returns:
            Facts added, removed and changed (old and new); ``str()`` of it reads like
            ``+ id: content`` / ``- id: content`` / ``~ id: old -> new``.
        """
        check_agent_id(agent_id)
        check_version(from_version, "from_version")
        if to_version is None:
            head = self._table()
            if head is None:
                raise UnknownAgentError(_unknown_agent(agent_id))
            to_version = head.version()
        check_version(to_version, "to_version")
        old = t.read_facts(self._load(version=from_version), agent_id)
        new = t.read_facts(self._load(version=to_version), agent_id)
        if old.is_empty() and new.is_empty():
            self._require_agent(agent_id)
        both = old.join(new, on="fact_id", how="inner", suffix="_new")
        differs = pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_new")) for c in t.COMPARED)
        changed = both.filter(differs)
        before = _to_facts(changed.select(t.COLUMNS))
        after = _to_facts(
            changed.select(*t.KEY, *(pl.col(f"{c}_new").alias(c) for c in t.VALUE_COLUMNS))
        )
        return FactDiff(
            agent_id=agent_id,
            from_version=from_version,
            to_version=to_version,
            added=_to_facts(new.join(old, on="fact_id", how="anti")),
            removed=_to_facts(old.join(new, on="fact_id", how="anti")),
            changed=[ChangedFact(o, n) for o, n in zip(before, after, strict=True)],
        )

    # -- helpers --------------------------------------------------------------------------

    def _table(self, version: int | None = None) -> DeltaTable | None:
        if version is None:
            return self._latest()
        return t.open_table(self._uri, self._options, version)

    def _latest(self) -> DeltaTable | None:
        """The latest table, brought up to date incrementally (cheaper than a fresh load)."""
        if self._cached is None:
            self._cached = t.open_table(self._uri, self._options)
        else:
            self._cached.update_incremental()
        return self._cached

    def _create(self) -> DeltaTable:
        self._cached = t.create_table(self._uri, self._options)
        return self._cached

    def _agent_frame(
        self, agent_id: str, *, version: int | None, timestamp: datetime | None
    ) -> pl.DataFrame:
        check_agent_id(agent_id)
        table = self._load(version=version, timestamp=timestamp)
        rows = t.read_facts(table, agent_id)
        if rows.is_empty():
            self._require_agent(agent_id)
        return rows

    def _load(self, *, version: int | None = None, timestamp: datetime | None = None) -> DeltaTable:
        """The table at a version or time, with a clear error when that cannot be read."""
        if version is not None and timestamp is not None:
            raise ValueError("pass version or timestamp, not both.")
        if timestamp is not None:
            return self._load_at_time(timestamp)
        if version is not None:
            check_version(version)
        error: DeltaError | None = None
        try:
            table = self._table(version)
        except DeltaError as exc:  # a version past the head, or one whose log was cleaned up
            table, error = None, exc
        if table is not None:
            return table
        head = self._latest()
        if head is None:
            raise UnknownVersionError(_nothing_committed(self._uri)) from error
        if version is None or version > head.version():
            raise UnknownVersionError(_no_version(version or 0, head.version())) from error
        raise VersionVacuumedError(
            f"memory version {version} can no longer be read: log cleanup removed its commit "
            "(see delta.logRetentionDuration). Pick a more recent version."
        ) from error

    def _load_at_time(self, timestamp: datetime) -> DeltaTable:
        if not isinstance(timestamp, datetime) or timestamp.tzinfo is None:
            raise ValueError(
                "timestamp must be a timezone-aware datetime, e.g. datetime.now(timezone.utc)."
            )
        table = t.open_table(self._uri, self._options)  # not the cached one: it moves back
        if table is None:
            raise UnknownVersionError(_nothing_committed(self._uri))
        created = datetime.fromtimestamp(table.metadata().created_time / 1000, UTC)
        if timestamp < created:
            raise UnknownVersionError(
                f"no memory version existed at {timestamp.isoformat()}: the store was created "
                f"at {created.isoformat()}."
            )
        gone = VersionVacuumedError(
            f"the memory as of {timestamp.isoformat()} can no longer be read: log cleanup "
            "removed the commits of that time (see delta.logRetentionDuration)."
        )
        try:
            table.load_as_version(timestamp)
        except DeltaError as exc:
            raise gone from exc
        # With no retained commit at or before the time, delta-rs answers with the oldest
        # retained version: check that one's own time when the log before it is gone.
        version = table.version()
        if version > 0 and not self._readable(version - 1):
            entry = self._entry_at(version)
            if entry is None or t.commit_time(entry) > timestamp:
                raise gone
        return table

    def _readable(self, version: int) -> bool:
        try:
            return self._table(version) is not None
        except DeltaError:
            return False

    def _entry_at(self, version: int) -> dict[str, Any] | None:
        head = self._latest()
        if head is None:
            return None
        entries = t.history(head, head.version() - version + 1)
        return next((e for e in entries if e["version"] == version), None)

    def _require_agent(self, agent_id: str, table: DeltaTable | None = None) -> None:
        """Raise ``UnknownAgentError`` unless the agent holds facts or ever committed."""
        table = table or self._table()
        if table is None:
            raise UnknownAgentError(_unknown_agent(agent_id))
        if table.partitions(file_pruning_predicate=[(t.PARTITION, "=", agent_id)]):
            return
        # Slow path (the whole history), only for agents that hold no facts now.
        head = self._table()
        if head is None or not self._commits(head, agent_id, 1):
            raise UnknownAgentError(_unknown_agent(agent_id))

    def _commits(self, table: DeltaTable, agent_id: str | None, limit: int) -> list[Commit]:
        """Newest-first memory commits, reading the log in growing pages until ``limit``."""
        fetch = max(4 * limit, 64) if agent_id else limit + 8
        while True:
            asked = min(fetch, table.version() + 1)
            entries = t.history(table, asked)
            commits = [
                _to_commit(e)
                for e in entries
                if e.get(t.KIND) in _COMMIT_KINDS
                and (agent_id is None or e.get(t.AGENT) == agent_id)
            ]
            # Done when enough, or when the log has no more (old commits may be cleaned up).
            if len(commits) >= limit or len(entries) < asked or asked > table.version():
                return commits[:limit]
            fetch *= 4


def _commit_plan(
    table: DeltaTable, agent_id: str, changes: list[FactChange], now: datetime
) -> _Plan:
    current = t.read_facts(table, agent_id, fact_ids=[c.fact_id for c in changes])
    held = {row["fact_id"]: row for row in current.iter_rows(named=True)}
    rows: list[tuple[Any, ...]] = []
    added = updated = deleted = 0
    for change in changes:
        old = held.get(change.fact_id)
        if change.op == "add" and old is not None:
            raise FactExistsError(
                f"agent {agent_id!r} already holds fact {change.fact_id!r}; use "
                "FactChange.update or FactChange.put to change it."
            )
        if change.op in ("update", "delete") and old is None:
            raise UnknownFactError(
                f"agent {agent_id!r} holds no fact {change.fact_id!r} to {change.op}."
            )
        if change.op == "delete":
            rows.append((agent_id, change.fact_id, *([None] * 7), "delete"))
            deleted += 1
            continue
        new = {
            "namespace": change.namespace,
            "content": change.content,
            "metadata": change.metadata_json,
            "source": change.source,
            "confidence": change.confidence,
        }
        if old is None:
            new["namespace"] = new["namespace"] or DEFAULT_NAMESPACE
            new["metadata"] = new["metadata"] or "{}"
            created = now
            added += 1
        else:
            new = {k: old[k] if v is None else v for k, v in new.items()}
            if all(new[k] == old[k] for k in t.COMPARED):
                continue  # nothing changes: no row, no version
            created = old["created_at"]
            updated += 1
        rows.append((agent_id, change.fact_id, *new.values(), created, now, "upsert"))
    source = pl.DataFrame(rows, schema=t.SOURCE_SCHEMA, orient="row")
    return _Plan(source, added, updated, deleted)


def _rollback_plan(table: DeltaTable, agent_id: str, desired: pl.DataFrame) -> _Plan:
    """Rows that turn the agent's current facts into ``desired`` exactly (timestamps too)."""
    current = t.read_facts(table, agent_id)
    gone = current.join(desired, on="fact_id", how="anti").select(t.KEY)
    differ = desired.join(current, on=list(t.COLUMNS), how="anti", nulls_equal=True)
    added = differ.join(current, on="fact_id", how="anti").height
    source = pl.concat(
        [differ.with_columns(_op=pl.lit("upsert")), gone.with_columns(_op=pl.lit("delete"))],
        how="diagonal",
    ).select(pl.col(name).cast(dtype) for name, dtype in t.SOURCE_SCHEMA.items())
    return _Plan(source, added, differ.height - added, gone.height)


def _revert_plan(
    table: DeltaTable, agent_id: str, before: pl.DataFrame, after: pl.DataFrame, now: datetime
) -> tuple[_Plan, list[str]]:
    """Rows that undo the change from ``before`` to ``after``, and the facts that conflict.

    A fact the commit touched is undone when it still holds the commit's result, skipped when
    it already holds the earlier value, and conflicts when a later commit made it anything else.
    """
    old = {r["fact_id"]: r for r in before.iter_rows(named=True)}
    new = {r["fact_id"]: r for r in after.iter_rows(named=True)}
    touched = sorted(f for f in old.keys() | new.keys() if not _same_row(old.get(f), new.get(f)))
    current = t.read_facts(table, agent_id, fact_ids=touched) if touched else before.clear()
    held = {r["fact_id"]: r for r in current.iter_rows(named=True)}
    rows: list[dict[str, Any]] = []
    conflicts: list[str] = []
    for fact_id in touched:
        now_row, wanted = held.get(fact_id), old.get(fact_id)
        if _same_row(now_row, wanted):
            continue  # already back to the value before the commit
        if not _same_row(now_row, new.get(fact_id)):
            conflicts.append(fact_id)
        elif wanted is None:
            rows.append({"agent_id": agent_id, "fact_id": fact_id, "_op": "delete"})
        else:
            rows.append({**wanted, "updated_at": now, "_op": "upsert"})
    source = pl.DataFrame(rows, schema=t.SOURCE_SCHEMA)
    upserts = [r for r in rows if r["_op"] == "upsert"]
    added = sum(r["fact_id"] not in held for r in upserts)
    plan = _Plan(source, added, len(upserts) - added, len(rows) - len(upserts))
    return plan, conflicts


def _same_row(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two fact rows (``None``: absent) hold the same values, timestamps aside."""
    if a is None or b is None:
        return a is b
    return all(a[c] == b[c] for c in t.COMPARED)


def _same_values(old: pl.DataFrame, new: pl.DataFrame) -> bool:
    a = {r["fact_id"]: r for r in old.iter_rows(named=True)}
    b = {r["fact_id"]: r for r in new.iter_rows(named=True)}
    return a.keys() == b.keys() and all(_same_row(a[f], b[f]) for f in a)


def _conflict(agent_id: str, version: int, fact_ids: list[str], later: list[int]) -> str:
    facts = ", ".join(repr(f) for f in fact_ids)
    by = ", ".join(f"v{v}" for v in later) or "a later commit"
    return (
        f"cannot revert v{version} of {agent_id!r}: {by} changed the same fact(s) {facts} "
        "since; revert those first, or commit the fix by hand. Nothing was written."
    )


def _bounded(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, ending in an ellipsis when cut."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[: max_bytes - 3].decode("utf-8", errors="ignore") + "…"


def _to_facts(frame: pl.DataFrame) -> list[Fact]:
    """Rows to ``Fact`` values; tuned because ``as_of`` of a large agent spends its time here."""
    if frame.is_empty():
        return []
    columns = [frame[c].to_list() for c in ("agent_id", "fact_id", "namespace", "content")]
    columns += [frame[c].to_list() for c in ("source", "confidence")]
    columns += [_datetimes(frame[c]) for c in ("created_at", "updated_at")]
    columns.append(frame["metadata"].to_list())
    # Pause the cyclic GC: 100,000 new objects would trigger it dozens of times for nothing
    # (a third of the time); none of these objects forms a cycle.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return [Fact(*row) for row in zip(*columns, strict=True)]
    finally:
        if enabled:
            gc.enable()


def _datetimes(series: pl.Series) -> list[datetime]:
    """Python datetimes, converting each distinct value once (commits share timestamps)."""
    distinct = series.unique()
    to_datetime = dict(zip(distinct.dt.epoch("us").to_list(), distinct.to_list(), strict=True))
    return [to_datetime[us] for us in series.dt.epoch("us").to_list()]


def _to_commit(entry: Mapping[str, Any]) -> Commit:
    rolled = entry.get(t.ROLLED_BACK_TO)
    reverted = entry.get(t.REVERTED)
    return Commit(
        version=entry["version"],
        timestamp=t.commit_time(entry),
        agent_id=entry[t.AGENT],
        kind=entry[t.KIND],
        message=entry[t.MESSAGE],
        author=entry[t.AUTHOR],
        cycle_id=entry.get(t.CYCLE),
        approved_by=entry.get(t.APPROVER),
        added=int(entry.get(t.ADDED, 0)),
        updated=int(entry.get(t.UPDATED, 0)),
        deleted=int(entry.get(t.DELETED, 0)),
        rolled_back_to=None if rolled is None else int(rolled),
        reverted=None if reverted is None else int(reverted),
        event_time=_parse_time(entry.get(t.EVENT_TIME)),
    )


def _utc(when: datetime) -> datetime:
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ValueError("a time must be a timezone-aware datetime, e.g. datetime.now(UTC).")
    return when.astimezone(UTC)


def _parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _unknown_agent(agent_id: str) -> str:
    return f"agent {agent_id!r} has no memory: it never committed to this store."


def _no_version(version: int, latest: int) -> str:
    if latest < 0:
        return f"memory version {version} does not exist: nothing was committed yet."
    return f"memory version {version} does not exist; the latest version is {latest}."


def _nothing_committed(uri: str) -> str:
    return f"there is no memory at {uri} yet: nothing was committed."


def _refuse_secret(value: str, name: str) -> None:
    """Refuse an id that holds a secret: ids are keys, so they are never silently renamed."""
    kinds = secret_kinds(value, bare_numbers=False)
    if kinds:
        raise ValueError(
            f"{name} holds what looks like a secret ({', '.join(kinds)}); it would be stored "
            "as a key, so choose an id without it. Nothing was written."
        )


def _redacted(change: FactChange) -> FactChange:
    """The change with secrets in its text replaced by markers; an id with one is refused."""
    if change.op == "delete":  # stores nothing new: deleting a fact stored earlier stays possible
        return change
    _refuse_secret(change.fact_id, "fact_id")

    def text(value: str | None) -> str | None:
        return None if value is None else redact_text(value)

    return replace(
        change,
        content=text(change.content),
        namespace=text(change.namespace),
        source=text(change.source),
        metadata_json=None if change.metadata_json is None else redact_json(change.metadata_json),
    )
