"""Snapshots: ``memory-v{N}`` tags pin the table version that reflects memory version ``N``.

A tag is created once and never moved, so a snapshot answers the same forever; it only goes
when ``delete`` forgets it.
"""

from __future__ import annotations

from lancedb.table import LanceTable

from memory.retrieval import _layout as lay


def tag_name(memory_version: int) -> str:
    """The tag of a memory version's snapshot."""
    return f"{lay.TAG_PREFIX}{memory_version}"


def table_version(table: LanceTable, memory_version: int) -> int | None:
    """The table version tagged for ``memory_version``; ``None`` when there is none."""
    try:
        return table.tags.get_version(tag_name(memory_version))
    except RuntimeError:  # LanceDB: "Ref not found error: tag ... does not exist"
        return None


def create(table: LanceTable, memory_version: int) -> None:
    """Tag the table's version as the snapshot of ``memory_version``, unless one exists."""
    if table_version(table, memory_version) is not None:
        return
    try:
        table.tags.create(tag_name(memory_version), table.version)
    except RuntimeError as exc:  # LanceDB: "Ref conflict error: tag ... already exists"
        if "already exists" not in str(exc):
            raise


def memory_versions(table: LanceTable) -> list[int]:
    """The memory versions the table holds snapshots of, oldest first."""
    prefix = lay.TAG_PREFIX
    return sorted(
        int(name[len(prefix) :])
        for name in table.tags.list()
        if name.startswith(prefix) and name[len(prefix) :].isdigit()
    )


def delete(table: LanceTable, memory_versions: list[int]) -> None:
    """Forget the snapshots of these memory versions (a tag may go; it never moves)."""
    for version in memory_versions:
        table.tags.delete(tag_name(version))


def missing(version: int, versions: list[int], table: str) -> str:
    """Why ``version`` cannot be searched, naming the snapshots nearest to it."""
    if not versions:
        return f"the index {table!r} holds no snapshot yet: run refresh_facts first."
    older = [v for v in versions if v < version]
    newer = [v for v in versions if v > version]
    if not newer:
        where = f"the newest it holds is {versions[-1]}; refresh it to reach {version}"
    else:
        near = ", ".join(str(v) for v in (older[-1:] + newer[:1]))
        where = f"the nearest it holds are {near}"
    shown = ", ".join(str(v) for v in versions[-20:])
    more = f" (the last 20 of {len(versions)})" if len(versions) > 20 else ""
    return (
        f"the index {table!r} holds no snapshot of memory version {version}: snapshots exist "
        f"only for versions it was refreshed at; {where}. Versions held{more}: {shown}."
    )
