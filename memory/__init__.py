"""Agent memory versioned like code: commit, log, as-of, diff, rollback and revert on Delta Lake.

One Delta table holds every agent's facts; each commit or rollback is one Delta version whose
commit metadata says who changed what and why. No Dagster here: assets and the CLI call this.

    >>> from memory import FactChange, MemoryStore
    >>> store = MemoryStore("data/lake/memory_facts")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Each public name and the module defining it, imported on first use: code that needs only
# ``memory.redaction`` (every ingestion worker process) does not pay for the store's imports.
_HOMES = {
    **dict.fromkeys(
        (
            "CommitConflictError",
            "FactExistsError",
            "InvalidFactError",
            "MemoryStoreError",
            "NothingToRevertError",
            "RevertConflictError",
            "UnknownAgentError",
            "UnknownFactError",
            "UnknownVersionError",
            "VersionVacuumedError",
        ),
        "memory.errors",
    ),
    **dict.fromkeys(
        (
            "MAX_CONTENT_BYTES",
            "ChangedFact",
            "Commit",
            "Fact",
            "FactChange",
            "FactDiff",
            "derive_fact_id",
        ),
        "memory.model",
    ),
    "MemoryStore": "memory.store",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'memory' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


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
