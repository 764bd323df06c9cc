"""Reading what drift needs from the lake: the cycles of a range of days, with counts of their
events that ``reasoning_cycles`` does not hold (tool errors, defective input context)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

import polars as pl

from agentops_assets.drift.metrics import CYCLE_COLUMNS, EVENT_COUNTS
from agentops_assets.finops.tables import REASONING_CYCLES
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.schema import AGENT_EVENTS

# Input context a broken upstream produced: blank, U+FFFD replacement characters, or UTF-8
# decoded as Latin-1 ("Ã©", "â€™").
_DEFECTIVE_CONTEXT: Final = "\ufffd|Ã[\x80-\xbf©¢]|â€"


def read_cycles(paths: Paths, first_day: date, last_day: date) -> pl.DataFrame:
    """``reasoning_cycles`` of ``[first_day, last_day]`` with :data:`EVENT_COUNTS` per cycle.

    Empty (with the columns) when the tables do not exist yet.
    """
    cycles = lake.scan(paths.table_uri(REASONING_CYCLES))
    events = lake.scan(paths.table_uri(AGENT_EVENTS))
    if cycles is None or events is None:
        return pl.DataFrame(schema={**_empty_schema(), **dict.fromkeys(EVENT_COUNTS, pl.Int64)})
    cycles = cycles.select(CYCLE_COLUMNS).filter(pl.col("day").is_between(first_day, last_day))
    context = pl.col("input_context")
    defective = context.str.strip_chars().eq("") | context.str.contains(_DEFECTIVE_CONTEXT)
    counts = (
        # A cycle's events may run into the next day.
        events.filter(pl.col("event_date").is_between(first_day, last_day + timedelta(days=1)))
        .group_by("trace_id")
        .agg(
            ((pl.col("kind") == "tool_call") & (pl.col("status") == "error"))
            .sum()
            .cast(pl.Int64)
            .alias("tool_errors"),
            context.is_not_null().sum().cast(pl.Int64).alias("contexts"),
            defective.fill_null(False).sum().cast(pl.Int64).alias("context_defects"),
        )
    )
    return (
        cycles.join(counts, on="trace_id", how="left")
        .with_columns(pl.col(name).fill_null(0) for name in EVENT_COUNTS)
        .collect()
    )


def _empty_schema() -> dict[str, pl.DataType]:
    from agentops_assets.finops.cycles import CYCLES_SCHEMA

    return {name: CYCLES_SCHEMA[name] for name in CYCLE_COLUMNS}
