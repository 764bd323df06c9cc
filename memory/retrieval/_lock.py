"""One writer at a time per index table.

Local databases: an exclusive file lock (``filelock``, an ``flock`` underneath) on
``<database>/<table>.lock``, beside the table's ``<table>.lance`` folder. The kernel drops it
when its holder exits, killed or not, so a crash never leaves the index locked. Object stores
hold no such lock: writers in one process still take turns, and across processes the scheduler
must serialise them (Dagster's ``agentops_index_writers`` pool does).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

_REMOTE: dict[tuple[str, str], threading.Lock] = {}
_REMOTE_GUARD = threading.Lock()


def local_path(uri: str) -> Path | None:
    """The folder of a local database (a path or a ``file://`` URI); ``None`` for others."""
    if "://" not in uri:
        return Path(uri)
    parsed = urlparse(uri)
    return Path(parsed.path) if parsed.scheme == "file" else None


@contextmanager
def exclusive(uri: str, table: str) -> Iterator[None]:
    """Hold the writer lock of ``table`` in the database at ``uri`` (blocks until it is free).

    Not reentrant: a holder that asks again waits for itself.
    """
    folder = local_path(uri)
    if folder is None:
        with _REMOTE_GUARD:
            lock = _REMOTE.setdefault((uri, table), threading.Lock())
        with lock:
            yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{table}.lock"
    lock = FileLock(path, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another writer of the index %r (lock %s)", table, path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
