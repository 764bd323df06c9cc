"""Redaction before telemetry reaches a table, and the policy for secrets in identifiers.

The engine (patterns, checks, the polars prefilter) lives in ``memory.redaction`` so that the
memory library, which imports nothing of ``agentops_assets``, screens what it stores with the
same rules; it is re-exported here. Free text and labels are redacted in place
(``schema.TEXT_FIELDS``); a secret in a key column (``schema.KEY_FIELDS``) sends the record
to quarantine instead, since a redacted key would merge distinct events, traces or agents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from agentops_assets.telemetry.schema import KEY_FIELDS, LABEL_FIELDS
from agentops_assets.telemetry.validate import Validated
from memory import redaction
from memory.redaction import (
    DETECT,
    KINDS,
    flag_cells,
    redact_json,
    redact_text,
    redact_texts,
    secret_kinds,
)

SECRET_IN_IDENTIFIER: Final = "secret_in_identifier"

__all__ = [
    "DETECT",
    "KINDS",
    "SECRET_IN_IDENTIFIER",
    "flag_cells",
    "quarantine_secret_keys",
    "redact_frame",
    "redact_json",
    "redact_text",
    "redact_texts",
    "secret_kinds",
]


def redact_frame(
    frame: pl.DataFrame,
    columns: Sequence[str] | None = None,
    labels: Sequence[str] = LABEL_FIELDS,
) -> pl.DataFrame:
    """``memory.redaction.redact_frame`` with telemetry's repeated labels (``LABEL_FIELDS``)."""
    return redaction.redact_frame(frame, columns, labels=labels)


def quarantine_secret_keys(checked: Validated) -> Validated:
    """Move rows whose key column holds a secret from ``rows`` to ``failures``.

    The detail names the column and the kind of secret, never the value. A key made of digits
    alone is not taken for a card number (numeric ids pass the Luhn check one time in ten).
    """
    rows = checked.rows
    names = [name for name in KEY_FIELDS if name in rows.columns]
    if rows.is_empty() or not names:
        return checked
    masks = [_suspect_keys(rows.get_column(name), repeated=name in LABEL_FIELDS) for name in names]
    masks = [mask for mask in masks if mask is not None]
    if not masks:
        return checked
    flagged = pl.select(pl.any_horizontal(masks)).to_series()
    indexes, details = [], []
    for row in rows.filter(flagged).select("_index", *names).iter_rows(named=True):
        for name in names:
            kinds = secret_kinds(row[name], bare_numbers=False) if row[name] else []
            if kinds:
                indexes.append(row["_index"])
                details.append(
                    f"{name} holds what looks like a secret ({', '.join(kinds)}); the record "
                    "is kept here, redacted, so that the value is never stored as a key."
                )
                break
    if not indexes:
        return checked
    failures = pl.DataFrame(
        {"_index": indexes, "reason": SECRET_IN_IDENTIFIER, "detail": details},
        schema=checked.failures.schema,
    )
    return Validated(
        rows=rows.filter(pl.col("_index").is_in(indexes).not_()),
        failures=pl.concat([checked.failures, failures]),
    )


def _suspect_keys(column: pl.Series, *, repeated: bool) -> pl.Series | None:
    """``flag_cells`` for a key column; lowercase hex ids (most of them) are skipped first,
    since only a bare number, never taken for a secret in a key, fits in that alphabet."""
    if repeated:
        return flag_cells(column, distinct=True)
    other = column.str.contains("[^0-9a-f]").fill_null(False)
    if not other.any():
        return None
    where = other.arg_true()
    mask = flag_cells(column.gather(where))
    if mask is None:
        return None
    flags = pl.repeat(False, column.len(), eager=True)
    return flags.scatter(where.filter(mask), True)
