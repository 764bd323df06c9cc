"""The memory store and the retrieval index where the configuration puts them.

``memory/`` is a plain library that knows nothing of ``AGENTOPS_*`` variables: it takes a URI
and storage options. These functions hand it the lake's memory table and the configured index
(``AGENTOPS_INDEX_URI``, a folder or an object-store URI) with their options, so the assets,
sensors, checks and CLI open the same stores the same way. LanceDB is imported only by the
functions that need it (the CLI's other commands start without it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentops_assets.storage.config import Paths, delta_storage_options, lance_storage_options
from memory import TABLE_NAME, MemoryStore

if TYPE_CHECKING:
    from memory.retrieval import MemoryIndex, RefreshResult


def memory_uri(paths: Paths) -> str:
    """The memory table's URI (``<lake>/memory_facts``)."""
    return paths.table_uri(TABLE_NAME)


def memory_store(paths: Paths) -> MemoryStore:
    """The agents' versioned memory in the lake."""
    uri = memory_uri(paths)
    return MemoryStore(uri, storage_options=delta_storage_options(uri))


def memory_index(paths: Paths) -> MemoryIndex:
    """The retrieval index at ``paths.index_uri``; refresh it with :func:`refresh_index`."""
    from memory.retrieval import MemoryIndex

    return MemoryIndex(paths.index_uri, storage_options=lance_storage_options(paths.index_uri))


def refresh_index(index: MemoryIndex, paths: Paths, *, version: int | None = None) -> RefreshResult:
    """Bring ``index`` up to ``version`` of the lake's memory (the latest when ``None``)."""
    uri = memory_uri(paths)
    return index.refresh_facts(uri, version=version, storage_options=delta_storage_options(uri))


def index_exists(paths: Paths) -> bool:
    """Whether there may be an index to read, without creating anything.

    A local index exists once its folder does (reading never creates it); on object storage,
    once the index table is listed.
    """
    from agentops_assets.storage.maintenance import lance_tables
    from memory.retrieval._lock import local_path
    from memory.retrieval.index import DEFAULT_TABLE

    folder = local_path(paths.index_uri)
    if folder is not None:
        return folder.exists()
    return DEFAULT_TABLE in lance_tables(paths.index_uri)
