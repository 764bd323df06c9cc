"""Redaction before telemetry reaches a table, and the policy for secrets in identifiers.

The engine (patterns, checks, the polars prefilter) lives in ``memory.redaction`` so that the
memory library, which imports nothing of ``agentops_assets``, screens what it stores with the
same rules; it is re-exported here. Free text and labels are redacted in place
(``schema.TEXT_FIELDS``); a secret in a key column (``schema.KEY_FIELDS``) sends the record
to quarantine instead, since a redacted key would merge distinct events, traces or agents.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
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
    *,
    labels: Sequence[str] = LABEL_FIELDS,
) -> pl.DataFrame:
    """``memory.redaction.redact_frame``, screening telemetry's repeated labels once per value.

    The same cells come out: the loose ``DETECT`` pass flags cells, and each distinct flagged
    text is redacted once by ``redact_text`` (telemetry repeats texts: a batch of spans flagged
    for one id shape often shares whole attribute objects).
    """
    names = [c for c in columns or frame.columns if frame.schema[c] == pl.String]
    if not names or frame.is_empty():
        return frame
    updates = []
    for name in names:
        column = frame.get_column(name)
        label = name in labels
        mask = flag_cells(column, distinct=label)
        if mask is None:
            continue
        rows = mask.arg_true()
        flagged = column.gather(rows).to_list()
        redacted = redact_texts(set(flagged), bare_numbers=not label)
        if all(text == out for text, out in redacted.items()):
            continue  # flagged, but nothing in it is a secret
        fixed = pl.Series([redacted[text] for text in flagged], dtype=pl.String)
        updates.append(column.scatter(rows, fixed))
    return frame.with_columns(updates) if updates else frame


def redact_texts(texts: Collection[str], *, bare_numbers: bool = True) -> dict[str, str]:
    """``redact_text`` of each text, as a dict; the same results, found faster.

    ``redact_text`` tries every kind in turn, each behind a cheap gate (a regex search) that
    must pass before its pattern runs: some twenty Python searches a text. Here the gates that
    are plain regexes run over all the texts at once in polars (same patterns; on ASCII text
    Rust's and Python's ASCII-mode regexes agree), and a text then runs, in ``redact_text``'s
    order, only the kinds whose gate passed. Once a kind has changed the text, later gates are
    tested on the new text in Python, as ``redact_text`` does. Non-ASCII texts, and any gate
    polars cannot run, take ``redact_text``'s own path.
    """
    out: dict[str, str] = {}
    ascii_texts = []
    for text in texts:
        if _GATES is not None and text.isascii():
            ascii_texts.append(text)
        else:
            out[text] = redact_text(text, bare_numbers=bare_numbers)
    if not ascii_texts:
        return out
    column = pl.Series("t", ascii_texts, dtype=pl.String)
    passed = pl.select(
        column.str.contains(gate).alias(str(n)) if gate is not None else pl.lit(True).alias(str(n))
        for n, gate in enumerate(_GATES)
    )
    gates = zip(*(passed.to_series(n).to_list() for n in range(passed.width)), strict=True)
    for text, maybe in zip(ascii_texts, gates, strict=True):
        out[text] = _redact_gated(text, maybe, bare_numbers)
    return out


def _redact_gated(text: str, maybe: tuple[bool, ...], bare_numbers: bool) -> str:
    """``memory.redaction.redact_text``, skipping kinds whose gate failed on ``text`` itself."""
    number = not bare_numbers and text.isdigit()
    unchanged = True
    for name, gate, pattern, replace, may in zip(*_ENGINE, maybe, strict=True):  # type: ignore[misc]
        if unchanged and not may:
            continue  # the gate did not pass on this very text
        if gate(text) and not (number and name == "card_number"):
            redacted = pattern.sub(replace, text)
            if unchanged and redacted != text:
                unchanged = False
            text = redacted
    return text


def _engine() -> tuple[tuple[object, ...], ...] | None:
    """``memory.redaction``'s kinds as (names, gates, patterns, replacers), or ``None`` if its
    internals are not the ones ``_redact_gated`` follows (then ``redact_text`` is used)."""
    kinds = getattr(redaction, "_KINDS", None)
    replacers = getattr(redaction, "_REPLACERS", None)
    if not kinds or not replacers or len(kinds) != len(replacers):
        return None
    try:
        names = tuple(kind.name for kind in kinds)
        gates = tuple(gate for gate, _, _ in replacers)
        patterns = tuple(pattern for _, pattern, _ in replacers)
        replaces = tuple(replace for _, _, replace in replacers)
    except (AttributeError, TypeError, ValueError):
        return None
    if any(gate is not kind.gate for gate, kind in zip(gates, kinds, strict=True)):
        return None
    return names, gates, patterns, replaces


def _polars_gates(gates: tuple[object, ...]) -> tuple[str | None, ...] | None:
    """Each gate as a pattern polars runs, or ``None`` for a gate that stays in Python."""
    out: list[str | None] = []
    for gate in gates:
        compiled = getattr(gate, "__self__", None)
        pattern = None
        if (
            isinstance(compiled, re.Pattern)
            and getattr(gate, "__name__", "") == "search"
            and compiled.flags & re.ASCII
            and not compiled.flags & ~(re.ASCII | re.UNICODE | re.IGNORECASE)
        ):
            pattern = compiled.pattern
            if compiled.flags & re.IGNORECASE:
                pattern = f"(?i:{pattern})"
            try:
                pl.select(pl.lit("probe").str.contains(pattern))
            except pl.exceptions.PolarsError:
                pattern = None
        out.append(pattern)
    return tuple(out)


_ENGINE: Final = _engine()
_GATES: Final = None if _ENGINE is None else _polars_gates(_ENGINE[1])


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
