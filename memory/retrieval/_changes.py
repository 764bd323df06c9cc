"""What the index must change to match the memory table: full reads and the change data feed.

Reads go through polars and ``load_cdf`` wrapped with ``pa.table``, never ``to_pyarrow_*``,
which can abort a short process at exit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from memory.errors import UnknownVersionError, VersionVacuumedError
from memory.retrieval import _layout as lay

# The memory table's columns the index uses (see memory/_table.py for the whole layout).
FACT_COLUMNS = ("agent_id", "fact_id", "namespace", "content", "source", "confidence", "updated_at")
_CDF_COLUMNS = [*FACT_COLUMNS, "_change_type", "_commit_version"]


class ChangeFeedUnavailable(Exception):
    """The change data feed cannot be read for the versions asked (internal: means rebuild)."""


@dataclass(frozen=True)
class Changes:
    """Index rows to write (``ROW_SCHEMA``, vectors still to embed) and row keys to delete."""

    upserts: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=lay.ROW_SCHEMA))
    deletes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.upserts.height or self.deletes)


def open_facts(
    uri: str, storage_options: Mapping[str, str] | None, version: int | None
) -> DeltaTable:
    """The memory table at ``version`` (the latest when ``None``)."""
    options = dict(storage_options) if storage_options else None
    try:
        table = DeltaTable(uri, storage_options=options)
    except TableNotFoundError as exc:
        raise UnknownVersionError(
            f"there is no memory table at {uri}: nothing was committed, so nothing to index."
        ) from exc
    if version is None or version == table.version():
        return table
    if version > table.version():
        raise UnknownVersionError(
            f"memory version {version} does not exist; the latest version is {table.version()}."
        )
    try:
        table.load_as_version(version)
    except DeltaError as exc:
        raise VersionVacuumedError(
            f"memory version {version} can no longer be read: its log entries were cleaned up."
        ) from exc
    return table


def to_rows(facts: pl.DataFrame) -> pl.DataFrame:
    """Memory-table rows (``FACT_COLUMNS``) as index rows."""
    return facts.select(
        lay.fact_key(pl.col("agent_id"), pl.col("fact_id")).alias("id"),
        pl.lit(lay.FACT).alias("kind"),
        "agent_id",
        "namespace",
        pl.col("fact_id").alias("item_id"),
        "source",
        pl.col("content").alias("text"),
        "confidence",
        "updated_at",
    ).cast(dict(lay.ROW_SCHEMA))


def read_facts(table: DeltaTable) -> pl.DataFrame:
    """Every fact at the table's loaded version, as index rows."""
    return to_rows(_collect(table, FACT_COLUMNS))


def read_keys(table: DeltaTable) -> pl.Series:
    """The row key of every fact at the table's loaded version."""
    key = lay.fact_key(pl.col("agent_id"), pl.col("fact_id")).alias("id")
    return _collect(table, [key]).get_column("id")


def _collect(table: DeltaTable, columns: Sequence[str | pl.Expr]) -> pl.DataFrame:
    """``columns`` of the table at its loaded version; a clear error when vacuum took files."""
    try:
        return pl.scan_delta(table).select(columns).collect()
    except (FileNotFoundError, pl.exceptions.ComputeError, OSError) as exc:
        raise VersionVacuumedError(
            f"memory version {table.version()} can no longer be read: vacuum removed data "
            f"files it needs ({exc})."
        ) from exc


def unaccounted(held: pl.Series, changes: Changes, keys: pl.Series) -> str | None:
    """Why ``changes`` would not make the index's facts the memory's (``None`` if they would).

    The feed since the indexed version is trusted only if applying it to the keys the index
    holds (``held``) gives exactly the memory's keys (``keys``): otherwise something happened
    that the feed does not show (the memory's history was replaced, an index write was lost).
    Sets are compared by size and a sum of key hashes (a difference goes unseen with odds of
    about 2**-64), which costs a few milliseconds where a join would cost tens.
    """
    written = changes.upserts.get_column("id")
    touched = pl.concat([written, pl.Series(changes.deletes, dtype=pl.String)])
    expected = pl.concat([held.filter(~held.is_in(touched.implode())), written])
    if _digest(expected) == _digest(keys):
        return None
    extra = expected.filter(~expected.is_in(keys.implode())).len()
    missing = keys.filter(~keys.is_in(expected.implode())).len()
    return (
        f"the change data feed does not account for what the index holds ({extra} indexed "
        f"fact(s) are not in the memory, {missing} fact(s) of the memory are not indexed)"
    )


def _digest(keys: pl.Series) -> tuple[int, int, int]:
    """Size and hash sums of a set of distinct keys: equal sets give equal digests."""
    hashes = pl.DataFrame({"h": keys.hash()})
    high, low = hashes.select(
        high=(pl.col("h") // 2**32).sum(), low=(pl.col("h") % 2**32).sum()
    ).row(0)
    return keys.len(), high, low


def read_changes(table: DeltaTable, start: int, end: int) -> Changes:
    """The net change of every fact touched by versions ``start`` to ``end`` (inclusive).

    Raises:
        ChangeFeedUnavailable: The feed cannot be read for that range (log entries cleaned
            up, change files lost, feed not enabled then): the caller rebuilds instead.
    """
    try:
        feed = table.load_cdf(starting_version=start, ending_version=end, columns=_CDF_COLUMNS)
        cdf = pl.from_arrow(pa.table(feed))
    except (DeltaError, pa.ArrowException, OSError, ValueError) as exc:
        raise ChangeFeedUnavailable(str(exc).splitlines()[0][:300]) from exc
    assert isinstance(cdf, pl.DataFrame)
    return net_changes(cdf)


def net_changes(cdf: pl.DataFrame) -> Changes:
    """Reduce a change feed to the last state of each fact: upsert it, or delete it.

    Within one commit a delete sorts before an insert of the same key, so a commit that
    rewrote a fact (delete + insert, as an overwrite does) leaves it present.
    """
    if cdf.is_empty():
        return Changes()
    last = (
        cdf.filter(pl.col("_change_type") != "update_preimage")
        .with_columns(_deleted=pl.col("_change_type") == "delete")
        .sort(["_commit_version", pl.col("_deleted").not_()])
        .unique(subset=["agent_id", "fact_id"], keep="last", maintain_order=True)
    )
    gone = last.filter(pl.col("_deleted"))
    keys = gone.select(lay.fact_key(pl.col("agent_id"), pl.col("fact_id")).cast(pl.String))
    return Changes(
        upserts=to_rows(last.filter(~pl.col("_deleted")).select(FACT_COLUMNS)),
        deletes=keys.to_series().to_list(),
    )


def diff(
    desired: pl.DataFrame, indexed: pl.DataFrame, *, compare: tuple[str, ...] = lay.ROW_COLUMNS
) -> Changes:
    """Rows of ``desired`` that the index lacks or holds differently, and keys it should drop.

    Both frames are index rows (``ROW_SCHEMA``) of one kind; rows are equal when every
    ``compare`` column is.
    """
    desired = desired.select(lay.ROW_COLUMNS).cast(dict(lay.ROW_SCHEMA))
    indexed = indexed.select(lay.ROW_COLUMNS).cast(dict(lay.ROW_SCHEMA))
    changed = desired.join(indexed, on=list(compare), how="anti", nulls_equal=True)
    gone = indexed.join(desired, on="id", how="anti")
    return Changes(upserts=changed, deletes=gone.get_column("id").to_list())
