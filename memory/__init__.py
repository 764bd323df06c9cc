"""Agent memory versioned like code: commit, log, as-of, diff, rollback and revert on Delta Lake.

One Delta table holds every agent's facts; each commit or rollback is one Delta version whose
commit metadata says who changed what and why. No Dagster here: assets and the CLI call this.

    >>> from memory import FactChange, MemoryStore
    >>> store = MemoryStore("data/lake/memory_facts")  # doctest: +SKIP
"""

from memory.errors import (
    CommitConflictError,
    FactExistsError,
    InvalidFactError,
    MemoryStoreError,
    NothingToRevertError,
    RevertConflictError,
    UnknownAgentError,
    UnknownFactError,
    UnknownVersionError,
    VersionVacuumedError,
)
from memory.model import (
    MAX_CONTENT_BYTES,
    ChangedFact,
    Commit,
    Fact,
    FactChange,
    FactDiff,
    derive_fact_id,
)
from memory.store import MemoryStore

TABLE_NAME = "memory_facts"
"""The table's name under the lake root (``Paths.table_uri(TABLE_NAME)``)."""

__all__ = [
    "MAX_CONTENT_BYTES",
    "TABLE_NAME",
    "ChangedFact",
    "Commit",
    "CommitConflictError",
    "Fact",
    "FactChange",
    "FactDiff",
    "FactExistsError",
    "InvalidFactError",
    "MemoryStore",
    "MemoryStoreError",
    "NothingToRevertError",
    "RevertConflictError",
    "UnknownAgentError",
    "UnknownFactError",
    "UnknownVersionError",
    "VersionVacuumedError",
    "derive_fact_id",
]
