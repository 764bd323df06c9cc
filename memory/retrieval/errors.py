"""Errors the retrieval index raises; all are ``MemoryStoreError`` subclasses."""

from __future__ import annotations

from memory.errors import MemoryStoreError


class RetrievalError(MemoryStoreError):
    """Base class of every error the retrieval index raises on purpose."""


class IndexNotFoundError(RetrievalError, LookupError):
    """No index exists at this location yet: refresh it from the memory table first."""


class IndexVersionNotFoundError(RetrievalError, LookupError):
    """The index holds no snapshot of the requested memory version."""


class EmbedderMismatchError(RetrievalError):
    """The index was built by another embedder; its vectors cannot be compared with this one's."""
