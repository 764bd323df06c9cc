"""The decision gate behind ``POST /v1/decide``: may this action go ahead, now?

:meth:`Gate.decide` judges one proposed action document with the governance policies in force
(``policies/*.rego`` and ``capabilities.yaml``), in the context the platform knows about the
agent, and answers ``allow`` (green), ``review`` (yellow or red: a ``review_queue`` item is
created and its id returned) or ``deny``. The context is the one ``agentops policy decide``
gives, served from memory:

- the type's capability entry, today's worst budget status of the type (fleet budgets
  included; before today's budgets are computed, the status the control file published) and
  the open drift findings on the type or the agent (today and yesterday);
- the agent's autonomy state from the control file ``$AGENTOPS_HOME/control/autonomy.json``
  (its own entry, else its type's), with its allowed tools and failover route;
- ``data.stats``: each action's count, failure and override rates over the 30 days before
  today.

A context the document brings cannot replace these keys (an agent does not get to say it is
not frozen); other context keys it sends are kept. The token name that asked is put in the
judged document as ``caller``. On top of the policies the gate enforces the control output
itself, so a custom policy that ignores autonomy cannot loosen it: a frozen agent is denied, a
sandboxed one is denied any tool call outside its allowed (read-only) tools, a ``human_only``
one needs an approval first, and an agent that claims another type than the control file
knows is denied.

**Fail closed.** Whatever goes wrong (policies that do not compile, an engine error or
timeout, a control file that cannot be read, a lake that cannot be read, a bug) the answer
is ``deny`` in the red zone with the reason; :meth:`Gate.decide` never raises.

**Cache.** The context, the 30-day statistics and the compiled policies are built once and
rebuilt by a background thread when something they come from changes: it checks at most
every ``check_interval_s`` (1 s) the versions of ``agent_events``, ``budget_compliance`` and
``drift_findings`` (the ``_delta_log`` folder's change time on a local lake, taken as seen only
once it is 50 ms old, since folder times tick coarsely; the table version on an object store),
the policy files and the day; :meth:`Gate.refresh` does the same at once. The control file is
checked at every call (one ``stat``), so an ``agentops control set`` is seen as soon as the
file changes. Policies are evaluated on a small pool of bundle copies (one evaluation at a
time per bundle; rego-cpp runs outside the GIL), and identical judged documents under the
same revision and statistics are evaluated once (not when a policy calls a built-in whose
answer changes between calls, such as ``time.now_ns``).

**Answers that wait for nothing.** :meth:`Gate.decide_now` gives the answer at once when it
needs nothing that waits (the agent's context cached, the policies' answer memoized, a gate
that is not ``durable``), else ``None`` having logged nothing; a ``review`` comes as an
:class:`AnswerAfterFsync`, its line written, whose ``finish()`` waits for the fsync and only
then gives the answer. The service calls it on its event loop and sends only the rest to a
thread (a thread's round trip, and each turn of the GIL it needs while the loop is busy,
cost more than such an answer: under load the tail came from there). Both fill ``timings``
with the seconds of each phase when asked (``Server-Timing``).
The gate's own commits (``policy_decisions``, ``review_queue``, the ledger) are not among the
tables the cache watches, so they never make it rebuild.

**Logging and durability.** Every decision becomes a row of ``policy_decisions`` with the
fields the pipeline writes and ``source`` ``gate`` (re-judging days in the pipeline keeps
these rows); yellow and red ones also a ``policy_decision`` entry in the audit ledger (actor
``agentops.gate``, with the caller). Writes are group commits: concurrent calls hand their rows
to writer threads, each appending everything pending in one Delta commit under the table's
writer lock, through a table handle kept open, compacting its own small files every
:data:`REVIEW_COMPACT_EVERY` / :data:`DECISION_COMPACT_EVERY` commits.

**Write-ahead journal.** Before a decision is answered, its row (and, for ``review``, the fact
that it queues an item) is written as one JSON line to this gate's journal, under
``$AGENTOPS_HOME/service/gate-journal/`` (:func:`~agentops_assets.governance.review.gate_journal`);
then the row goes to the writers. A ``review`` answer (and with ``durable=True`` every answer)
also waits until its line is fsynced: group fsync, one ``fsync`` covers every line written
before it, so concurrent callers share it (about 0.3 ms on the bench machine, against
15-50 ms for a Delta commit, which the answer no longer waits for).

- ``GET /v1/reviews/{id}`` finds an item at once: :meth:`Gate.review` reads the queue, and
  answers an item not committed yet from memory (``pending``). Its writer commits it
  :data:`REVIEW_LINGER_S` (0.4 s) after the first of a batch, so within ~0.5 s (a commit per
  review costs a 2-core machine more than the answers: the tail of every answer grew with
  it; at 0.2 s, review commits were the largest part of the server's CPU in delta-rs);
  ``review.decide`` waits for an id it finds in a journal rather than call it unknown.
  An event id the agent sends names its item (``review_id(event_id)``): asking again about
  the same event gives the same item.
- Decision rows are committed :data:`DECISION_LINGER_S` (1 s) after the first of a batch
  arrives (a commit's fixed cost, paid 5 times a second at 0.2 s, was a fifth of the
  server's CPU at 200 decisions/s), ledger entries :data:`LEDGER_LINGER_S` (1 s) after their
  rows are committed (each ledger append reads the chain's head); :meth:`Gate.close` and
  :meth:`Gate.flush` commit what is pending. A batch's frame is built a few dozen rows at a
  time, so that no answer waits for the GIL while polars converts a second of rows.
- The journal is crash-safe by construction, with no offsets to keep: each gate writes its
  own files (``OWNER.NNNNNN.jsonl``) and holds ``OWNER.lock`` (``flock``, which the kernel
  drops when the process dies, SIGKILL included). The journal counts, per file, the rows and
  items not committed yet; when the current file's count reaches zero it is truncated to
  zero bytes, and a file that reached :data:`JOURNAL_SEGMENT_BYTES` (1 MiB; under steady load
  the count rarely reaches zero) is fsynced and followed by a new one, then deleted once its
  count does. So a file only ever loses lines that are committed; a crash at any point leaves
  lines that may or may not be committed, never a missing one.
- Replay: a starting gate (under ``recover.lock``, so one at a time, and after taking its own
  lock) takes the files of every owner whose lock is free, commits the rows
  ``policy_decisions`` lacks (by ``decision_id``; their ledger entries follow) and the items
  ``review_queue`` lacks (by ``review_id``), then deletes those files. Nothing committed twice,
  nothing answered lost; a torn last line (the process died inside the write) was never
  answered and is skipped. A live gate's journal is never touched. A row whose commit
  failed (after retries) stays in the journal, and in memory for :meth:`Gate.review`, until
  the next start replays it.
- What a crash can lose: no answered decision row or review item on a SIGKILL (the line is
  written before the answer, and the kernel keeps it); on a power cut, the ``allow`` and
  ``deny`` rows of the last ~1 s whose lines no later fsync covered (never a review item,
  nor any row with ``durable=True``). Either way, ledger entries (not journalled) of the last
  ~2 s: the next pipeline run adds them (``refresh_ledger`` catches up every yellow and red
  decision of its days).
- A journal that cannot be written (disk full) fails closed: ``deny``, and the next line goes
  to a new file.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

import orjson
import polars as pl
from deltalake import CommitProperties, DeltaTable, write_deltalake

from agentops_assets.control.output import control_path
from agentops_assets.drift.tables import DRIFT_FINDINGS
from agentops_assets.finops.tables import BUDGET_COMPLIANCE
from agentops_assets.governance.audit import decision_payload
from agentops_assets.governance.capabilities import CAPABILITIES_FILE
from agentops_assets.governance.engine import Decision, PolicyBundle
from agentops_assets.governance.judge import (
    Policies,
    action_document,
    load_policies,
    policy_folder,
    stats_document,
    with_context,
)
from agentops_assets.governance.ledger import AuditLedger, Entry
from agentops_assets.governance.refresh import add_source_column
from agentops_assets.governance.review import candidates, gate_journal, review_id
from agentops_assets.governance.tables import (
    BUNDLE_NAME,
    DECISION_PATH,
    DECISION_SCHEMA,
    POLICY_DECISIONS,
    REVIEW_QUEUE,
    REVIEW_SCHEMA,
    SOURCE_GATE,
)
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.schema import AGENT_EVENTS

GATE_ACTOR: Final = "agentops.gate"
CHECK_INTERVAL_S: Final = 1.0
# Context keys only the gate fills; a document's own values for them are ignored.
GATE_CONTEXT_KEYS: Final = frozenset({"capabilities", "autonomy", "budget", "drift"})
CONTEXT_TABLES: Final = (AGENT_EVENTS, BUDGET_COMPLIANCE, DRIFT_FINDINGS)
# Decision rows wait this long to share a commit: a commit's fixed cost (20-60 ms of CPU on the
# 2-core bench machine, most of it in delta-rs's threads) is paid once a second, not 5 times.
DECISION_LINGER_S: Final = 1.0
LEDGER_LINGER_S: Final = 1.0  # ledger entries too (each append reads the chain's head)
REVIEW_LINGER_S: Final = 0.4  # review items too: the journal keeps them meanwhile
# A commit costs more the more files the table has (about 0.3 ms a file on the 2-core bench
# machine), so the gate compacts the small files it writes: the review queue, whose commits
# callers wait for, often; policy_decisions, written behind the answers, less often.
REVIEW_COMPACT_EVERY: Final = 20
DECISION_COMPACT_EVERY: Final = 100
COMPACT_TARGET_BYTES: Final = 16 * 2**20  # files this large are left alone: bounded rewrites
_WRITER: Final = lake.writer_properties()
_FRAME_CHUNK: Final = 64  # rows per polars construction (~2 ms holding the GIL)
_MEMO_SIZE: Final = 50_000  # judged documents remembered per revision and statistics
_KNOWN_SIZE: Final = 100_000  # agents whose context or type is kept
_RETRIES: Final = (0.05, 0.25, 1.0)  # seconds between attempts of a failed commit
JOURNAL_SEGMENT_BYTES: Final = 2**20  # a journal file this large is followed by a new one
_SETTLING_NS: Final = 50_000_000
_EVENT_ID_MAX: Final = 200
_REVIEW_ID = re.compile(r"rv-[0-9a-f]{16}")
# Built-ins whose answer changes from one call to the next: such policies are not memoized.
_UNSTABLE = re.compile(r"\b(?:time\.now_ns|rand\.|uuid\.rfc4122|http\.send|opa\.runtime|net\.)")
_WARMUP: Final = {"agent_type": "-", "kind": "decision", "action": "-", "context": {}}

_log = logging.getLogger(__name__)
T = TypeVar("T")


class GateError(Exception):
    """The gate cannot answer a read (e.g. the control file is unreadable); the message says
    why in one sentence."""


# -- the control file ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Control:
    """The parsed control file (empty when there is none yet) or why it cannot be read."""

    signature: tuple[int, int, int] | None
    agents: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    agent_types: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    day: str | None = None
    generated_at: str | None = None
    error: str | None = None

    def entry(
        self, agent_id: str | None, agent_type: str | None
    ) -> tuple[Mapping[str, Any] | None, str | None]:
        """The agent's own entry, else its type's; and which of the two (``agent``,
        ``agent_type``), or ``(None, None)``."""
        if agent_id is not None and agent_id in self.agents:
            return self.agents[agent_id], "agent"
        if agent_type is not None and agent_type in self.agent_types:
            return self.agent_types[agent_type], "agent_type"
        return None, None


class _ControlFile:
    """The control file, read again whenever its inode, size or change time differ."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._current = _Control(signature=None)

    def current(self) -> _Control:
        try:
            status = os.stat(self.path)
            signature = (status.st_ino, status.st_size, status.st_mtime_ns)
        except FileNotFoundError:
            return _Control(signature=None)  # control never ran: no autonomy restrictions
        except OSError as error:
            return _Control(signature=None, error=f"the control file cannot be read ({error})")
        current = self._current
        if current.signature == signature:
            return current
        with self._lock:
            if self._current.signature != signature:
                self._current = _parse_control(self.path, signature)
            return self._current


def _parse_control(path: Path, signature: tuple[int, int, int]) -> _Control:
    try:
        content = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        return _Control(signature, error=f"the control file {path} is not valid JSON ({error})")
    agents = content.get("agents") if isinstance(content, dict) else None
    types = content.get("agent_types") if isinstance(content, dict) else None
    if not isinstance(agents, dict) or not isinstance(types, dict):
        return _Control(signature, error=f"the control file {path} has no agents and agent_types")
    if not all(isinstance(e, dict) for e in (*agents.values(), *types.values())):
        return _Control(signature, error=f"the control file {path} has an entry that is no object")
    return _Control(
        signature,
        agents=agents,
        agent_types=types,
        day=content.get("day"),
        generated_at=content.get("generated_at"),
    )


# -- policies, statistics and context: the cached state ---------------------------------------


class _BundlePool:
    """Copies of one policy bundle; a caller leases one for one evaluation."""

    def __init__(self, bundle: PolicyBundle, size: int, data: Mapping[str, Any]) -> None:
        self.revision = bundle.revision
        self._free: queue.SimpleQueue[PolicyBundle] = queue.SimpleQueue()
        self._all = [bundle.copy() for _ in range(size)]
        self._retired = False
        for copy in self._all:
            copy.evaluate(_WARMUP, data)  # compile now, not on a caller's time
            self._free.put(copy)

    @contextmanager
    def lease(self) -> Iterator[PolicyBundle]:
        bundle = self._free.get()
        try:
            yield bundle
        finally:
            self._free.put(bundle)
            if self._retired:
                bundle.close()

    def retire(self) -> None:
        """Stop the bundles' workers (those leased stop when they come back)."""
        self._retired = True
        for bundle in self._all:
            bundle.close()


@dataclass
class _State:
    """What judging needs, rebuilt when its sources change (see the module docstring)."""

    signature: tuple[Any, ...]
    day: date
    policies: Policies
    pool: _BundlePool
    stats: dict[str, Any]
    memoize: bool
    contexts: dict[tuple[str | None, str | None], dict[str, Any]] = field(default_factory=dict)
    memo: dict[bytes, Decision] = field(default_factory=dict)
    error: str | None = None


def _table_signature(uri: str) -> Any:
    """Something that changes with every commit of the table at ``uri``, cheaply: on a local
    lake the change time of its ``_delta_log`` folder (a commit adds a file there), else the
    table version."""
    if "://" not in uri or uri.startswith("file://"):
        log = Path(uri.removeprefix("file://")) / "_delta_log"
        try:
            changed = log.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if time.time_ns() - changed < _SETTLING_NS:
            # Folder times tick coarsely (a few ms): a commit in the same tick as the one just
            # seen would not change it. A recent change is not trusted: it never compares equal.
            return ("settling", changed, time.monotonic_ns())
        return changed
    try:
        return DeltaTable(uri).version() if lake.table_exists(uri) else None
    except Exception as error:  # noqa: BLE001 - unknown version: rebuild, the build reports it
        return f"unknown: {error}"


def _settling(signature: tuple[Any, ...]) -> bool:
    return any(isinstance(t, tuple) and t[0] == "settling" for t in signature[2])


def _policy_signature(paths: Paths) -> tuple[Any, ...]:
    folder = policy_folder(paths)
    files = [*sorted(folder.glob("*.rego")), paths.policy_file(CAPABILITIES_FILE)]
    found: list[Any] = [str(folder)]
    for path in files:
        try:
            status = path.stat()
            found.append((path.name, status.st_size, status.st_mtime_ns, status.st_ino))
        except OSError:
            found.append((path.name, None))
    return tuple(found)


# -- group commit -----------------------------------------------------------------------------


class _Ticket:
    """A caller's claim on one item handed to a :class:`_GroupCommit`."""

    __slots__ = ("_done", "error")

    def __init__(self) -> None:
        self._done = threading.Event()
        self.error: str | None = None

    def settle(self, error: str | None) -> None:
        self.error = error
        self._done.set()

    def wait(self, timeout: float) -> str | None:
        """``None`` once committed, else why not."""
        if not self._done.wait(timeout):
            return f"the write was not committed within {timeout:g} s"
        return self.error


class _GroupCommit(Generic[T]):
    """A writer thread committing everything handed to it since its last commit at once.

    A caller handing an item over wakes the writer only when it was idle (the first item of
    a batch): waking it for each item of a batch it is already waiting to gather cost every
    answer a thread switch and a turn of the GIL under load."""

    def __init__(
        self, name: str, commit: Callable[[list[T]], None], *, linger_s: float = 0.0
    ) -> None:
        self._commit = commit
        self._linger = linger_s
        self._pending: list[tuple[T | None, _Ticket | None]] = []
        self._wake = threading.Condition()
        self._stopping = False
        self.committed = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> bool:
        """Hand ``item`` over to be committed; ``False`` when the writer is closed."""
        with self._wake:
            if self._stopping:
                return False
            self._pending.append((item, None))
            if len(self._pending) == 1:
                self._wake.notify()
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is committed (or failed)."""
        marker = _Ticket()
        with self._wake:
            if not self._pending and not self._thread.is_alive():
                return True
            self._pending.append((None, marker))
            self._wake.notify()
        return marker.wait(timeout) is None

    def close(self, timeout: float = 30.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopping:
                    self._wake.wait()
                # Let more items join: fewer, larger commits (less CPU and fewer small files).
                deadline = time.monotonic() + self._linger
                while not self._stopping and (left := deadline - time.monotonic()) > 0:
                    self._wake.wait(left)
                batch, self._pending = self._pending, []
                if not batch and self._stopping:
                    return
            items = [item for item, _ in batch if item is not None]
            error = self._commit_with_retries(items) if items else None
            with self._wake:
                if error is None:
                    self.committed += len(items)
                else:
                    self.failed += len(items)
            for _, ticket in batch:
                if ticket is not None:
                    ticket.settle(error)

    def _commit_with_retries(self, items: list[T]) -> str | None:
        for pause in (*_RETRIES, None):
            try:
                self._commit(items)
                return None
            except Exception as error:  # noqa: BLE001 - retried, then reported to the callers
                if pause is None:
                    _log.error("gate: %d rows not written: %s", len(items), _short(error))
                    return _short(error)
                time.sleep(pause)
        return None  # unreachable


# -- the write-ahead journal ------------------------------------------------------------------


class _Segment:
    """One journal file of this gate, and how many of its items are not committed yet."""

    __slots__ = ("fd", "outstanding", "path", "size")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.size = 0
        self.outstanding = 0  # parts (decision rows, review items) not committed yet


class _Journal:
    """This gate's write-ahead journal: JSON lines in segments ``OWNER.NNNNNN.jsonl`` of the
    journal folder, the owner holding ``OWNER.lock`` (flock) while it lives. See the module
    docstring for the scheme."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._lock = threading.Lock()  # writes, counts, rotation, truncation
        self._sync_lock = threading.Lock()  # one fsync at a time; it covers everyone before it
        self._written = 0  # lines written
        self._synced = 0  # lines known to be on disk (or committed)
        self._unsyncable = 0  # lines up to this one: in a segment whose fsync failed
        self._number = 0
        self.syncs = 0
        self._lock_fd = os.open(folder / f"{self.owner}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._segments: list[_Segment] = []
        self._current = self._open_segment()

    def write(self, line: bytes, parts: int) -> tuple[_Segment, int]:
        """Append one line (``parts`` items to commit); returns its segment and number.

        Raises:
            OSError: The line could not be written whole (the next goes to a new segment).
        """
        with self._lock:
            current = self._current
            if current.fd < 0:
                raise OSError("the journal is closed")
            if current.size >= JOURNAL_SEGMENT_BYTES:
                current = self._rotate()
            try:
                written = os.write(current.fd, line)
            except OSError:
                current.size = JOURNAL_SEGMENT_BYTES  # maybe torn: nothing more goes after it
                raise
            current.size += written
            if written != len(line):
                current.size = JOURNAL_SEGMENT_BYTES
                raise OSError(f"the journal took {written} of {len(line)} bytes (disk full?)")
            current.outstanding += parts
            self._written += 1
            return current, self._written

    def sync(self, number: int) -> None:
        """Return once line ``number`` is on disk: the first caller fsyncs every line written
        so far, the others waiting meanwhile find theirs covered (group fsync)."""
        with self._sync_lock:
            with self._lock:
                if self._synced >= number:
                    return
                if number <= self._unsyncable:
                    raise OSError("the journal file of this line could not be fsynced")
                fd, upto = self._current.fd, self._written
            os.fsync(fd)  # earlier segments were fsynced when they were rotated out
            with self._lock:
                self._synced = max(self._synced, upto)
                self.syncs += 1

    def done(self, segments: list[_Segment]) -> None:
        """One part of each line in ``segments`` (one entry per part) is committed: a rotated
        segment whose parts all are is deleted, the current one emptied."""
        with self._sync_lock, self._lock:  # no fsync of a descriptor closed here
            for segment in segments:
                segment.outstanding -= 1
            for segment in {id(s): s for s in segments}.values():
                if segment.outstanding > 0:
                    continue
                if segment is self._current:
                    if segment.size and segment.size < JOURNAL_SEGMENT_BYTES:
                        os.ftruncate(segment.fd, 0)  # all committed: a crash now loses nothing
                        segment.size = 0
                        self._synced = self._written
                elif segment in self._segments:
                    self._drop(segment)

    @property
    def outstanding(self) -> int:
        """Parts written and not committed yet."""
        with self._lock:
            return sum(s.outstanding for s in self._segments)

    def close(self) -> None:
        """Delete the segments whose items are all committed; leave the others to be replayed
        by the next gate (this one's lock is released)."""
        with self._sync_lock, self._lock:
            for segment in list(self._segments):
                if segment.outstanding <= 0:
                    self._drop(segment)
                else:
                    with suppress(OSError):
                        os.fsync(segment.fd)
                    os.close(segment.fd)
                    segment.fd = -1
            if not self._segments:
                with suppress(FileNotFoundError):
                    os.unlink(self.folder / f"{self.owner}.lock")
            os.close(self._lock_fd)

    def _rotate(self) -> _Segment:
        old = self._current
        try:
            os.fsync(old.fd)  # sync() fsyncs the current segment only: the old one's lines now
            self._synced = self._written
        except OSError as error:
            _log.error("gate: a journal file could not be fsynced: %s", _short(error))
            self._unsyncable = self._written
        self._current = self._open_segment()
        if old.outstanding <= 0:
            self._drop(old)
        return self._current

    def _open_segment(self) -> _Segment:
        self._number += 1
        segment = _Segment(self.folder / f"{self.owner}.{self._number:06d}.jsonl")
        _sync_folder(self.folder)  # the new file's name is on disk before a line is promised
        self._segments.append(segment)
        return segment

    def _drop(self, segment: _Segment) -> None:
        os.close(segment.fd)
        segment.fd = -1
        with suppress(FileNotFoundError):
            os.unlink(segment.path)
        self._segments.remove(segment)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@dataclass(frozen=True)
class _Leftover:
    """The journal of a gate that is gone (killed, or closed with items not committed)."""

    owner: str
    segments: list[Path]
    lock_fd: int | None  # its lock, held while replaying; None when the file is gone


def _leftovers(folder: Path, own: str) -> list[_Leftover]:
    """The journals in ``folder`` whose owner is no longer alive (its lock is free)."""
    owners: dict[str, list[Path]] = {}
    for segment in sorted(folder.glob("*.jsonl")):
        owners.setdefault(segment.name.split(".", 1)[0], []).append(segment)
    for lock in folder.glob("*.lock"):
        if lock.name != "recover.lock":
            owners.setdefault(lock.stem, [])
    found = []
    for owner, segments in owners.items():
        if owner == own:
            continue
        try:
            fd: int | None = os.open(folder / f"{owner}.lock", os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live gate's journal
                continue
        found.append(_Leftover(owner, segments, fd))
    return found


def _journal_lines(segments: list[Path]) -> list[dict[str, Any]]:
    """The records of ``segments``; a torn last line (never answered) is skipped."""
    records = []
    for segment in segments:
        for line in segment.read_bytes().split(b"\n"):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
                row = record["row"]
                row["day"] = date.fromisoformat(row["day"])
                for key in ("timestamp", "judged_at"):
                    row[key] = datetime.fromisoformat(row[key])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                _log.warning("gate: skipped a torn line of %s", segment.name)
                continue
            records.append(record)
    return records


@dataclass(frozen=True)
class _Logged:
    """One decision on its way to ``policy_decisions`` (and the ledger when yellow or red)."""

    row: dict[str, Any]
    caller: str
    segment: _Segment | None = None  # its journal line (None: replayed, or not journalled)


@dataclass(frozen=True)
class _Queued:
    """One review item on its way to ``review_queue`` (``row`` is its decision's row)."""

    row: dict[str, Any]
    segment: _Segment | None = None


class AnswerAfterFsync:
    """A ``review`` answer :meth:`Gate.decide_now` gave: its journal line is written, not yet
    on disk. :meth:`finish` (on a thread: it waits for the group fsync) returns the answer to
    send, never before the line is fsynced; it fails closed (``deny``) when it cannot be."""

    def __init__(
        self,
        finish: Callable[[], dict[str, Any]],
        fail_closed: Callable[..., dict[str, Any]],
        judged: Any,
        caller: str,
    ) -> None:
        self._finish = finish
        self._fail_closed = fail_closed
        self._judged = judged
        self._caller = caller

    def finish(self) -> dict[str, Any]:
        try:
            return self._finish()
        except Exception as error:  # noqa: BLE001 - fail closed on anything
            _log.exception("gate: a review answer failed closed")
            reason = f"the gate failed ({_short(error)})"
            return self._fail_closed(self._judged, self._caller, reason)


class _WouldWait(Exception):
    """:meth:`Gate.decide_now` cannot answer without waiting; nothing was logged."""


class _Phases:
    """Adds the seconds since the previous mark to a phase of one decision's ``timings``
    (nothing when the caller asked for none)."""

    __slots__ = ("_into", "_last")

    def __init__(self, into: dict[str, float] | None) -> None:
        self._into = into
        self._last = time.perf_counter()

    def mark(self, phase: str) -> None:
        if self._into is None:
            return
        now = time.perf_counter()
        self._into[phase] = self._into.get(phase, 0.0) + now - self._last
        self._last = now


# -- the gate ---------------------------------------------------------------------------------


class Gate:
    """The decision gate of one home; thread-safe. See the module docstring."""

    def __init__(
        self,
        paths: Paths,
        *,
        durable: bool = False,
        check_interval_s: float = CHECK_INTERVAL_S,
        bundles: int | None = None,
    ) -> None:
        """Build the cached state (policies compiled, context read) and start the writers.

        Items a gate that is gone left in its journal are committed first (the replay).

        Args:
            paths: the home.
            durable: fsync every call's journal line before answering, not only a review's,
                so that no answered decision is lost even to a power cut.
            check_interval_s: how often the background thread looks for changed sources.
            bundles: policy evaluations that may run at once (default: the cores, at least 2).
        """
        self.paths = paths
        self.durable = durable
        self._interval = check_interval_s
        self._pool_size = bundles or max(2, os.cpu_count() or 1)
        self._control = _ControlFile(control_path(paths))
        self._types: dict[str, str] = {}  # agent id -> the type its decisions named
        self._refresh_lock = threading.Lock()
        self._state: _State = self._build(None)
        self._source_checked = False
        self._decision_table = _Appender(
            paths.table_uri(POLICY_DECISIONS),
            partition_by="day",
            compact_every=DECISION_COMPACT_EVERY,
        )
        self._review_table = _Appender(
            paths.table_uri(REVIEW_QUEUE), compact_every=REVIEW_COMPACT_EVERY
        )
        self._known_reviews: set[str] = set()
        self._known_reviews_at: int | None = None  # the queue's version when the set was right
        self._pending: dict[str, dict[str, Any]] = {}  # review id -> row, not committed yet
        self._pending_lock = threading.Lock()
        self._audit = AuditLedger(paths)
        self._ledger = _GroupCommit[Entry](
            "gate-ledger", self._commit_ledger, linger_s=LEDGER_LINGER_S
        )
        self._decisions = _GroupCommit[_Logged](
            "gate-decisions", self._commit_decisions, linger_s=DECISION_LINGER_S
        )
        self._reviews = _GroupCommit[_Queued](
            "gate-reviews", self._commit_reviews, linger_s=REVIEW_LINGER_S
        )
        folder = gate_journal(paths)
        folder.mkdir(parents=True, exist_ok=True)
        with _flock(folder / "recover.lock"):  # one gate at a time registers and replays
            self._journal = _Journal(folder)
            self.replayed = self._replay(folder)
        self._closed = threading.Event()
        self._refresher = threading.Thread(target=self._refresh_loop, name="gate-refresh")
        self._refresher.daemon = True
        self._refresher.start()

    # -- public API ---------------------------------------------------------------------------

    def decide(
        self, document: Any, *, caller: str, timings: dict[str, float] | None = None
    ) -> dict[str, Any]:
        """Judge one proposed action; never raises.

        Args:
            document: the action document (``agent_id``, ``agent_type``, ``kind``, ``action``,
                ``target``, ``amount_usd``, ``data_zone``, optional ``event_id`` and
                ``trace_id``...).
            caller: the name of the token that asks.
            timings: when given, filled with the seconds this call spent in each phase:
                ``context`` (control file and cached context), ``rego`` (memo or policy
                evaluation), ``journal`` (the line written), ``fsync`` (waiting for it to be
                on disk) and ``handoff`` (to the writer threads); the service reports them in
                a ``Server-Timing`` header.

        Returns:
            ``decision`` (allow, review, deny), ``zone``, ``reasons``, ``rules``,
            ``obligations``, ``revision``, ``decision_id``, ``review_id`` (review only),
            ``event_id``, ``agent_id``, ``autonomy`` (state, reason, since, until, allowed
            tools, whether the agent's own or its type's entry; null when the control file
            knows neither), ``failover_route``, ``budget_status`` and ``error`` (why it failed
            closed, else null).
        """
        try:
            if self._closed.is_set():
                return self._fail_closed(document, caller, "the gate is closed", log=False)
            return self._decide(document, caller, _Phases(timings))
        except Exception as error:  # noqa: BLE001 - fail closed on anything
            _log.exception("gate: decision failed closed")
            return self._fail_closed(document, caller, f"the gate failed ({_short(error)})")

    def decide_now(
        self, document: Any, *, caller: str, timings: dict[str, float] | None = None
    ) -> dict[str, Any] | AnswerAfterFsync | None:
        """:meth:`decide` when the answer needs nothing that waits: the agent's context is
        cached and the policies' answer memoized, on a gate that is not ``durable``; else
        ``None``, having logged nothing (call :meth:`decide` on a thread then). A ``review``
        comes as an :class:`AnswerAfterFsync`, whose ``finish()`` (on a thread) waits for its
        journal line's fsync and gives the answer. Made to be called on an event loop: most
        answers under load take this path, without a thread's round trip, and a review's
        thread does nothing but wait for the disk."""
        if self.durable:
            return None
        try:
            if self._closed.is_set():
                return self._fail_closed(document, caller, "the gate is closed", log=False)
            return self._decide(document, caller, _Phases(timings), now=True)
        except _WouldWait:
            return None
        except Exception as error:  # noqa: BLE001 - fail closed on anything
            _log.exception("gate: decision failed closed")
            return self._fail_closed(document, caller, f"the gate failed ({_short(error)})")

    def review(self, review_id: str) -> dict[str, Any] | None:
        """The state of one review item (``pending``, ``approved``, ``rejected``) with who
        decided, when, why and the correction; ``None`` for an unknown id. An item answered
        and not committed yet is ``pending``, from memory."""
        if not isinstance(review_id, str) or not _REVIEW_ID.fullmatch(review_id):
            return None
        # Memory first: an item leaves it only once committed, so the read below then finds it.
        with self._pending_lock:
            waiting = self._pending.get(review_id)
        frame = lake.scan(self.paths.table_uri(REVIEW_QUEUE))
        rows = None
        if frame is not None:
            rows = frame.filter(pl.col("review_id") == review_id).collect()
        if rows is None or rows.is_empty():
            if waiting is None:
                return None
            rows = _review_items([waiting])
        item = rows.row(0, named=True)
        keys = (
            "review_id", "state", "source", "decision_id", "event_id", "trace_id", "agent_id",
            "agent_type", "action", "zone", "reasons", "approvals_required", "approved_by",
            "decided_by", "decided_at", "rationale", "correction", "lesson_key", "created_at",
        )  # fmt: skip
        return {key: _jsonable(item.get(key)) for key in keys}

    def agent_state(self, agent_id: str) -> dict[str, Any] | None:
        """The control output of one agent: its own entry of the control file, else its
        type's (when the agent's type is known from its decisions), else ``None``. A type
        name gives the type's entry.

        Raises:
            GateError: The control file cannot be read.
        """
        control = self._control.current()
        if control.error is not None:
            raise GateError(control.error + ".")
        known = {"day": control.day, "generated_at": control.generated_at}
        if agent_id in control.agents:
            return {**control.agents[agent_id], "agent_id": agent_id, "scope": "agent", **known}
        agent_type = self._types.get(agent_id)
        if agent_type is not None and agent_type in control.agent_types:
            entry = control.agent_types[agent_type]
            return {**entry, "agent_id": agent_id, "scope": "agent_type", **known}
        if agent_id in control.agent_types:
            entry = control.agent_types[agent_id]
            return {**entry, "agent_id": None, "scope": "agent_type", **known}
        return None

    def refresh(self) -> bool:
        """Rebuild the cached state now if a source changed; returns whether it did."""
        with self._refresh_lock:
            signature = self._signature()
            if _settling(signature):  # a table just committed: read it once it has settled
                time.sleep(_SETTLING_NS / 1e9)
                signature = self._signature()
            if signature == self._state.signature:
                return False
            old = self._state
            self._state = self._build(old, signature)
            if self._state.pool is not old.pool:
                old.pool.retire()
            return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every decision answered so far is committed; whether all were."""
        return all(w.flush(timeout) for w in (self._reviews, self._decisions, self._ledger))

    def close(self) -> None:
        """Stop the refresh thread and commit every pending log row; idempotent. The journal
        is deleted when all it holds is committed, else left for the next gate to replay."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._reviews.close()
        self._decisions.close()  # hands its last ledger entries over before the ledger closes
        self._ledger.close()
        self._journal.close()
        self._refresher.join(5.0)
        self._state.pool.retire()

    @property
    def written(self) -> dict[str, int]:
        """Decision rows and review items committed and failed so far, journal fsyncs, and
        journalled parts (rows, items) not committed yet."""
        return {
            "decisions": self._decisions.committed,
            "decisions_failed": self._decisions.failed,
            "reviews": self._reviews.committed,
            "reviews_failed": self._reviews.failed,
            "ledger": self._ledger.committed,
            "ledger_failed": self._ledger.failed,
            "journal_syncs": self._journal.syncs,
            "journal_outstanding": self._journal.outstanding,
        }

    # -- the cached state ---------------------------------------------------------------------

    def _signature(self) -> tuple[Any, ...]:
        tables = tuple(_table_signature(self.paths.table_uri(t)) for t in CONTEXT_TABLES)
        return (datetime.now(UTC).date(), _policy_signature(self.paths), tables)

    def _build(self, old: _State | None, signature: tuple[Any, ...] | None = None) -> _State:
        signature = signature or self._signature()
        day = signature[0]
        same_policies = old is not None and old.error is None and old.signature[1] == signature[1]
        policies = old.policies if old is not None and same_policies else load_policies(self.paths)
        pool = None
        try:
            stats = stats_document(self.paths, day)
            if old is not None and same_policies and old.stats == stats:
                pool = old.pool  # same policies, same statistics: the compiled bundles hold
            else:
                pool = _BundlePool(policies.bundle, self._pool_size, {"stats": stats})
            unstable = any(_UNSTABLE.search(s) for s in policies.bundle.sources.values())
            state = _State(signature, day, policies, pool, stats, memoize=not unstable)
            self._load_contexts(state)
        except Exception as error:  # noqa: BLE001 - an unreadable context denies, says why
            _log.exception("gate: cannot build its context")
            reason = f"the gate cannot read its context ({_short(error)})"
            pool = pool or _BundlePool(policies.bundle, 1, {})
            return _State(signature, day, policies, pool, {}, memoize=False, error=reason)
        return state

    def _load_contexts(self, state: _State) -> None:
        """The lake's context of every agent and type the control file names, in one read."""
        control = self._control.current()
        subjects = [(e.get("agent_type"), a) for a, e in control.agents.items()]
        subjects += [(t, None) for t in control.agent_types]
        subjects = [(t, a) for t, a in subjects if isinstance(t, str)]
        for key, context in _lake_contexts(self.paths, state, subjects).items():
            state.contexts[key] = context

    def _context_of(
        self, state: _State, agent_type: str | None, agent_id: str | None, *, now: bool = False
    ) -> dict[str, Any]:
        key = (agent_type, agent_id)
        context = state.contexts.get(key)
        if context is None:
            if now:
                raise _WouldWait  # a read of the lake
            context = _lake_contexts(self.paths, state, [key])[key]
            if len(state.contexts) >= _KNOWN_SIZE:
                state.contexts.clear()
            state.contexts[key] = context
        return context

    def _refresh_loop(self) -> None:
        while not self._closed.wait(self._interval):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the next tick tries again
                _log.exception("gate: refresh failed")

    # -- one decision -------------------------------------------------------------------------

    def _decide(
        self, document: Any, caller: str, phases: _Phases, *, now: bool = False
    ) -> dict[str, Any]:
        """One decision; with ``now``, :class:`_WouldWait` before anything that waits (a lake
        read, a policy evaluation, an fsync) and before anything is logged."""
        state = self._state
        control = self._control.current()
        agent_id = _text(document, "agent_id")
        agent_type = _text(document, "agent_type")
        entry, scope = control.entry(agent_id, agent_type)
        if state.error is not None or control.error is not None:
            reason = state.error or control.error or ""
            return self._fail_closed(document, caller, reason, state=state, entry=entry)
        if not isinstance(document, dict):
            if now:
                raise _WouldWait
            with state.pool.lease() as bundle:
                denial = bundle.evaluate(document)  # denies: the input is not an object
            return self._answer(state, document, caller, denial, entry)
        context = dict(self._context_of(state, agent_type, agent_id, now=now))
        if entry is not None:
            context["autonomy"] = {"state": entry.get("state"), "reason": entry.get("reason")}
            if "budget" not in context and entry.get("budget_status"):
                context["budget"] = {"status": entry["budget_status"]}
        given = document.get("context")
        extra = {}
        if isinstance(given, dict):
            extra = {k: v for k, v in given.items() if k not in GATE_CONTEXT_KEYS}
        judged = {**document, "caller": caller, "context": {**extra, **context}}
        phases.mark("context")
        decision = self._evaluate(state, judged, now=now)
        decision = _enforce_control(decision, judged, entry, scope)
        phases.mark("rego")
        if agent_id is not None and agent_type is not None:
            if len(self._types) >= _KNOWN_SIZE:
                self._types.clear()
            self._types[agent_id] = agent_type
        return self._answer(
            state, judged, caller, decision, entry, scope=scope, phases=phases, defer=now
        )

    def _evaluate(self, state: _State, judged: dict[str, Any], *, now: bool = False) -> Decision:
        key = None
        if state.memoize:
            fields = state.policies.bundle.input_fields
            projected = judged if fields is None else {k: judged[k] for k in fields if k in judged}
            try:
                key = orjson.dumps(projected, option=orjson.OPT_SORT_KEYS)
            except TypeError:
                key = None
            if key is not None and (known := state.memo.get(key)) is not None:
                return known
        if now:
            raise _WouldWait
        with state.pool.lease() as bundle:
            decision = bundle.evaluate(judged, {"stats": state.stats})
        if key is not None and decision.error is None:
            if len(state.memo) >= _MEMO_SIZE:
                state.memo.clear()
            state.memo[key] = decision
        return decision

    def _answer(
        self,
        state: _State,
        judged: Any,
        caller: str,
        decision: Decision,
        entry: Mapping[str, Any] | None,
        *,
        scope: str | None = None,
        log: bool = True,
        phases: _Phases | None = None,
        defer: bool = False,
    ) -> dict[str, Any]:
        """The answer, journalled and handed to the writers; with ``defer``, a ``review``'s
        is an :class:`AnswerAfterFsync` (its line written, not yet fsynced)."""
        phases = phases or _Phases(None)
        now = datetime.now(UTC)
        decision_id = str(uuid.uuid4())
        event_id = _text(judged, "event_id")
        if event_id is None or len(event_id) > _EVENT_ID_MAX:
            event_id = f"gate:{decision_id}"
        row = _row(judged, decision, decision_id, event_id, now)
        answer: dict[str, Any] = {
            "decision": decision.decision,
            "zone": decision.zone,
            "reasons": list(decision.reasons),
            "rules": list(decision.rules),
            "obligations": dict(decision.obligations),
            "revision": decision.revision,
            "decision_id": decision_id,
            "event_id": event_id,
            "agent_id": row["agent_id"],
            "autonomy": _autonomy(entry, scope),
            "failover_route": entry.get("failover_route") if entry is not None else None,
            "budget_status": _budget_status(judged),
            "error": decision.error,
        }
        if not log:
            return answer
        item = review_id(event_id) if decision.decision == "review" else None
        record = {"row": row, "caller": caller, "review_id": item}
        try:
            line = orjson.dumps(record, default=str) + b"\n"
            segment, number = self._journal.write(line, parts=1 if item is None else 2)
            phases.mark("journal")
        except (OSError, TypeError) as error:
            if decision.error is not None:  # a denial already: logged as well as it can be
                self._decisions.submit(_Logged(row, caller))
                return answer
            reason = f"the decision could not be journalled ({_short(error)})"
            return self._fail_closed(judged, caller, reason, state=state, entry=entry)

        def finish() -> dict[str, Any]:
            problem = None
            if item is not None or self.durable:
                # Before the writers wake: a busy writer thread would hold the GIL when the
                # fsync returns, and the answer would wait for Python's switch interval (5 ms).
                try:
                    self._journal.sync(number)
                except OSError as error:
                    problem = f"the decision could not be made durable ({_short(error)})"
                phases.mark("fsync")
            if item is not None:
                with self._pending_lock:
                    self._pending.setdefault(item, row)
                self._reviews.submit(_Queued(row, segment))
            self._decisions.submit(_Logged(row, caller, segment))  # done once committed
            phases.mark("handoff")
            if problem is not None:
                return self._fail_closed(judged, caller, problem, state=state, entry=entry)
            if item is not None:
                answer["review_id"] = item
            return answer

        if defer and item is not None:
            return AnswerAfterFsync(finish, self._fail_closed, judged, caller)  # type: ignore[return-value]
        return finish()

    def _fail_closed(
        self,
        document: Any,
        caller: str,
        reason: str,
        *,
        state: _State | None = None,
        entry: Mapping[str, Any] | None = None,
        log: bool = True,
    ) -> dict[str, Any]:
        """``deny`` with ``reason``; logged when possible, never raising."""
        revision = ""
        with suppress(Exception):  # a gate broken before its first state has no revision
            revision = (state or self._state).policies.revision
        denial = Decision(
            "deny", "red", (f"Denied because {reason}.",), ("gate_error",), {}, revision, reason
        )
        try:
            return self._answer(
                state or self._state,
                document,
                caller,
                denial,
                entry,
                log=log and not self._closed.is_set(),
            )
        except Exception:  # noqa: BLE001 - the answer must not fail: a bare denial
            _log.exception("gate: could not log a denial")
            return {
                "decision": "deny",
                "zone": "red",
                "reasons": list(denial.reasons),
                "rules": list(denial.rules),
                "obligations": {},
                "revision": revision,
                "decision_id": str(uuid.uuid4()),
                "event_id": None,
                "agent_id": None,
                "autonomy": None,
                "failover_route": None,
                "budget_status": None,
                "error": reason,
            }

    # -- writes -------------------------------------------------------------------------------

    def _commit_decisions(self, items: list[_Logged]) -> None:
        frame = _frame([item.row for item in items], DECISION_SCHEMA)
        with lake.writer_lock(self.paths, POLICY_DECISIONS):
            if not self._source_checked:
                add_source_column(self.paths)  # a table from before the column existed
                self._source_checked = True
            self._decision_table.append(frame, "gate_decide")
        for item in items:
            if item.row["zone"] in ("yellow", "red"):
                self._ledger.submit(_ledger_entry(item))
        self._journal.done([item.segment for item in items if item.segment is not None])

    def _commit_ledger(self, entries: list[Entry]) -> None:
        self._audit.append(entries)  # one ledger object: its head is kept between appends

    def _commit_reviews(self, queued: list[_Queued], *, check_all: bool = False) -> None:
        items = _review_items([q.row for q in queued])
        items = items.unique("review_id", keep="first", maintain_order=True)
        uri = self.paths.table_uri(REVIEW_QUEUE)
        with lake.writer_lock(self.paths, REVIEW_QUEUE):
            # Only an event id the agent sent can have an item already (gate ids are new),
            # unless the items are replayed from a journal.
            if check_all or not items["event_id"].str.starts_with("gate:").all():
                known = self._review_ids(uri)
                fresh = [item not in known for item in items["review_id"]]
                items = items.filter(pl.Series(fresh, dtype=pl.Boolean))
            if not items.is_empty():
                version = self._review_table.append(items, "gate_review")
                if self._known_reviews_at is not None:
                    self._known_reviews.update(items["review_id"])
                    self._known_reviews_at = version
        with self._pending_lock:
            for q in queued:
                self._pending.pop(review_id(q.row["event_id"]), None)
        self._journal.done([q.segment for q in queued if q.segment is not None])

    def _replay(self, folder: Path) -> int:
        """Commit what the journals of gates that are gone hold and their tables lack (by
        decision id, by review id), then delete those journals; returns the lines replayed.
        Called at start, under the journal folder's recovery lock."""
        leftovers = _leftovers(folder, self._journal.owner)
        records = _journal_lines([s for left in leftovers for s in left.segments])
        if records:
            rows = {r["row"]["decision_id"]: r for r in records}
            logged = self._logged_ids(list(rows), {r["row"]["day"] for r in records})
            missing = [_Logged(r["row"], r["caller"]) for i, r in rows.items() if i not in logged]
            if missing:
                self._commit_decisions(missing)
            reviews = [_Queued(r["row"]) for r in records if r.get("review_id")]
            if reviews:
                self._commit_reviews(reviews, check_all=True)
            _log.warning(
                "gate: replayed %d journalled decisions of %d stopped gates: %d rows and %d "
                "review items were missing", len(records), len(leftovers), len(missing),
                len(reviews),
            )  # fmt: skip
        for left in leftovers:
            for segment in left.segments:
                segment.unlink(missing_ok=True)
            (folder / f"{left.owner}.lock").unlink(missing_ok=True)
            if left.lock_fd is not None:
                os.close(left.lock_fd)
        if leftovers:
            _sync_folder(folder)
        return len(records)

    def _logged_ids(self, decision_ids: list[str], days: set[date]) -> set[str]:
        """Which of ``decision_ids`` (of ``days``) ``policy_decisions`` has."""
        frame = lake.scan(self.paths.table_uri(POLICY_DECISIONS))
        if frame is None:
            return set()
        found = (
            frame.filter(pl.col("day").is_in(list(days)))
            .filter(pl.col("decision_id").is_in(decision_ids))
            .select("decision_id")
            .collect()
        )
        return set(found["decision_id"])

    def _review_ids(self, uri: str) -> set[str]:
        """Every review id in the queue; read again only when another writer (the pipeline,
        a reviewer) committed since this gate last did. Called under the writer lock."""
        version = self._review_table.version()
        if version is None or version != self._known_reviews_at:
            frame = lake.scan(uri)
            ids = frame.select("review_id").collect()["review_id"] if frame is not None else []
            self._known_reviews = set(ids)
            self._known_reviews_at = version
        return self._known_reviews


class _Appender:
    """Appends to one Delta table through a handle kept between commits, so that a commit
    reads only the log entries added since the previous one (``lake.append`` loads the table
    again each time: tens of milliseconds a commit once the log is long). Every
    ``compact_every`` commits it compacts the small files its commits left (those of the
    partition it last wrote, for a partitioned table): a commit costs more the more files the
    table has, and so does every read. Called under the table's writer lock."""

    def __init__(self, uri: str, *, partition_by: str | None = None, compact_every: int) -> None:
        self.uri = uri
        self.partition_by = partition_by
        self.compact_every = compact_every
        self._table: DeltaTable | None = None
        self._commits = 0

    def version(self) -> int | None:
        """The table's version now, its newer commits read (``None`` before it exists)."""
        if self._table is None:
            if not lake.table_exists(self.uri):
                return None
            self._table = DeltaTable(self.uri)
        else:
            self._table.update_incremental()  # commits of other writers, and schema changes
        return self._table.version()

    def append(self, frame: pl.DataFrame, operation: str) -> int | None:
        """Append ``frame`` in one commit; returns the table's version after it."""
        metadata = {"agentops.operation": operation}
        partitions = [self.partition_by] if self.partition_by else None
        if self.version() is None:
            lake.append(self.uri, frame, partition_by=partitions, metadata=metadata)
            return self.version()
        assert self._table is not None
        write_deltalake(
            self._table,
            frame.to_arrow(),
            mode="append",
            partition_by=partitions,
            commit_properties=CommitProperties(custom_metadata=metadata),
            writer_properties=_WRITER,
        )
        self._commits += 1
        if self._commits % self.compact_every == 0:
            self._compact(frame)
        return self._table.version()  # the handle follows its own commits

    def _compact(self, frame: pl.DataFrame) -> None:
        assert self._table is not None
        filters = None
        if self.partition_by:
            value = frame[self.partition_by].max()
            filters = [(self.partition_by, "=", _jsonable(value))]
        try:
            self._table.optimize.compact(
                partition_filters=filters,
                target_size=COMPACT_TARGET_BYTES,
                writer_properties=_WRITER,
            )
        except Exception as error:  # noqa: BLE001 - housekeeping: maintenance compacts too
            _log.warning("gate: compaction of %s failed: %s", self.uri, _short(error))


def _lake_contexts(
    paths: Paths, state: _State, subjects: list[tuple[str | None, str | None]]
) -> dict[tuple[str | None, str | None], dict[str, Any]]:
    """The context judge gives (capabilities, today's budget status, open drift) of each
    (agent type, agent id)."""
    if not subjects:
        return {}
    frame = pl.DataFrame(
        {
            "day": [state.day] * len(subjects),
            "agent_type": [t for t, _ in subjects],
            "agent_id": [a for _, a in subjects],
        },
        schema={"day": pl.Date, "agent_type": pl.String, "agent_id": pl.String},
    ).unique()
    found = {}
    for row in with_context(paths, frame).iter_rows(named=True):
        document = action_document(row, state.policies.registry)
        found[(row["agent_type"], row["agent_id"])] = document["context"]
    return found


def _enforce_control(
    decision: Decision,
    judged: Mapping[str, Any],
    entry: Mapping[str, Any] | None,
    scope: str | None,
) -> Decision:
    """The decision made at least as strict as the control output says."""
    if entry is None or decision.error is not None:
        return decision
    state = entry.get("state")
    who = judged.get("agent_id") or judged.get("agent_type")
    findings: list[tuple[str, str, str]] = []
    known_type, claimed = entry.get("agent_type"), judged.get("agent_type")
    if scope == "agent" and known_type and isinstance(claimed, str) and known_type != claimed:
        findings.append(
            (
                "agent_type_mismatch",
                "deny",
                f"Agent {who} is a {known_type} in the control output, not a {claimed}.",
            )
        )
    if state == "frozen":
        findings.append(
            ("autonomy_frozen", "deny", f"Agent {who} is frozen: nothing runs until released.")
        )
    elif state == "sandboxed" and judged.get("kind") == "tool_call":
        allowed = entry.get("allowed_tools") or []
        action = judged.get("action")
        if not isinstance(action, str) or not any(_glob(p, action) for p in allowed):
            findings.append(
                (
                    "autonomy_sandboxed",
                    "deny",
                    f"Agent {who} is sandboxed: {action} is not one of its allowed tools.",
                )
            )
    elif state == "human_only":
        findings.append(
            ("autonomy_human_only", "red", f"Agent {who} is human_only: approval comes first.")
        )
    new = [f for f in findings if f[0] not in decision.rules]
    if not new:
        return decision
    rules = tuple(sorted({*decision.rules, *(rule for rule, _, _ in new)}))
    reasons = (*(decision.reasons if decision.rules else ()), *(r for _, _, r in new))
    if any(effect == "deny" for _, effect, _ in new):
        return replace(decision, decision="deny", zone="red", reasons=reasons, rules=rules)
    if decision.decision == "deny" or decision.zone == "red":
        return replace(decision, reasons=reasons, rules=rules)
    obligations = {**decision.obligations, "approvals": 1, "review": "before"}
    obligations.pop("sample_rate", None)
    return replace(
        decision,
        decision="review",
        zone="red",
        reasons=reasons,
        rules=rules,
        obligations=obligations,
    )


def _glob(pattern: Any, name: str) -> bool:
    from fnmatch import fnmatchcase

    return isinstance(pattern, str) and fnmatchcase(name, pattern)


def _row(
    judged: Any, decision: Decision, decision_id: str, event_id: str, now: datetime
) -> dict[str, Any]:
    """The ``policy_decisions`` row of one decision (the pipeline's fields, source gate)."""
    result = decision.to_dict()
    result.pop("revision")
    approvals = decision.obligations.get("approvals", 0)
    return {
        "day": now.date(),
        "decision_id": decision_id,
        "path": DECISION_PATH,
        "input": orjson.dumps(judged, default=str).decode(),
        "result": orjson.dumps(result).decode(),
        "bundles": orjson.dumps({BUNDLE_NAME: {"revision": decision.revision}}).decode(),
        "timestamp": now,
        "revision": decision.revision,
        "event_id": event_id,
        "trace_id": _text(judged, "trace_id"),
        "agent_id": _text(judged, "agent_id"),
        "agent_type": _text(judged, "agent_type"),
        "kind": _text(judged, "kind"),
        "action": _text(judged, "action"),
        "decision": decision.decision,
        "zone": decision.zone,
        "reasons": list(decision.reasons),
        "rules": list(decision.rules),
        "approvals_required": int(approvals) if isinstance(approvals, int | float) else 0,
        "sample_rate": 1.0 if decision.decision == "review" else 0.0,  # the gate queues all
        "error": decision.error,
        "judged_at": now,
        "source": SOURCE_GATE,
    }


def _frame(rows: list[dict[str, Any]], schema: Mapping[str, Any]) -> pl.DataFrame:
    """``rows`` as a frame, built :data:`_FRAME_CHUNK` rows at a time: polars holds the GIL
    for the whole of one construction (about 0.03 ms a row), so one frame of a second's
    decisions would stop every answer for tens of milliseconds; between chunks they run."""
    if len(rows) <= _FRAME_CHUNK:
        return pl.DataFrame(rows, schema=schema)
    chunks = [
        pl.DataFrame(rows[start : start + _FRAME_CHUNK], schema=schema)
        for start in range(0, len(rows), _FRAME_CHUNK)
    ]
    return pl.concat(chunks, rechunk=False)


def _review_items(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The ``review_queue`` items of ``review`` decisions' rows (source gate, created when
    decided: the same item whether it is committed at once or replayed later)."""
    frame = _frame(rows, DECISION_SCHEMA)
    items = candidates(frame)  # every row: the gate queues all its review decisions
    return items.with_columns(
        frame["timestamp"].alias("created_at"), pl.lit(SOURCE_GATE).alias("source")
    ).cast(dict(REVIEW_SCHEMA))  # type: ignore[arg-type]


def _ledger_entry(item: _Logged) -> Entry:
    """The ``policy_decision`` entry of one yellow or red decision (audit.record_decisions'
    payload, plus where it came from and who asked)."""
    row = item.row
    return Entry(
        kind="policy_decision",
        actor=GATE_ACTOR,
        subject=row["event_id"],
        payload={**decision_payload(row), "source": SOURCE_GATE, "caller": item.caller},
        at=row["timestamp"],
    )


def _autonomy(entry: Mapping[str, Any] | None, scope: str | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    keys = ("state", "reason", "rule", "override", "since", "until", "allowed_tools")
    return {**{key: entry.get(key) for key in keys}, "scope": scope}


def _budget_status(judged: Any) -> str | None:
    context = judged.get("context") if isinstance(judged, dict) else None
    budget = context.get("budget") if isinstance(context, dict) else None
    return budget.get("status") if isinstance(budget, dict) else None


def _text(document: Any, name: str) -> str | None:
    value = document.get(name) if isinstance(document, dict) else None
    return value if isinstance(value, str) and value else None


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}"


__all__ = ["CHECK_INTERVAL_S", "GATE_ACTOR", "AnswerAfterFsync", "Gate", "GateError"]
