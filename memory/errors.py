"""Errors the memory library raises: one base class, one subclass per thing that can go wrong."""

from __future__ import annotations


class MemoryStoreError(Exception):
    """Base class of every error the memory library raises on purpose."""


class UnknownAgentError(MemoryStoreError, LookupError):
    """The agent has never committed to this memory store."""


class UnknownVersionError(MemoryStoreError, LookupError):
    """The version (or timestamp) names no version of the memory store."""


class VersionVacuumedError(MemoryStoreError):
    """The version existed, but vacuum or log cleanup removed the files needed to read it."""


class InvalidFactError(MemoryStoreError, ValueError):
    """A fact's content, metadata or confidence is not acceptable (empty, too large, ...)."""


class UnknownFactError(MemoryStoreError, LookupError):
    """An update or delete names a fact the agent does not hold."""


class FactExistsError(MemoryStoreError):
    """An add names a fact the agent already holds."""


class CommitConflictError(MemoryStoreError):
    """Concurrent writers kept winning: the commit was retried until the deadline, then dropped."""


class RevertConflictError(MemoryStoreError):
    """A later commit changed a fact that the commit being reverted changed."""


class NothingToRevertError(MemoryStoreError):
    """The commit's changes are already undone (it was reverted before)."""
