"""Dagster metadata tables from polars frames: typed columns the UI shows as a table."""

import math
from collections.abc import Sequence
from datetime import date
from typing import Any

import dagster as dg
import polars as pl

DIGITS = 4  # floats in tables: a cost per decision is often a fraction of a cent


def table(frame: pl.DataFrame, columns: Sequence[dg.TableColumn]) -> dg.TableMetadataValue:
    """``frame``'s ``columns`` as a Dagster table; an empty frame gives an empty table.

    Floats are rounded to ``DIGITS`` places (NaN and infinities, which the UI cannot read,
    become null) and dates and other values of string columns become text.
    """
    names = [column.name for column in columns]
    kinds = [column.type for column in columns]
    records = [
        dg.TableRecord(
            {name: _cell(value, kind) for name, kind, value in zip(names, kinds, row, strict=True)}
        )
        for row in frame.select(names).iter_rows()
    ]
    return dg.MetadataValue.table(records, dg.TableSchema(columns=list(columns)))


def _cell(value: Any, kind: str) -> str | int | float | bool | None:
    if value is None:
        return None
    if kind == "float":
        return round(float(value), DIGITS) if math.isfinite(value) else None
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    return value.isoformat() if isinstance(value, date) else str(value)
