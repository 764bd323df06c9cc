"""Validation of text records against the telemetry contract, vectorised in polars.

Readers hand over every field as text. Here each field is cast to its stored type and
checked; a record that breaks a rule is set aside with the first rule it breaks, so it can be
quarantined with a reason instead of being dropped or crashing the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import polars as pl

from agentops_assets.telemetry.parsed import merge_into_attributes
from agentops_assets.telemetry.schema import (
    FEEDBACK_KINDS,
    FIELD_TYPES,
    KINDS,
    OUTCOMES,
    REQUIRED_FIELDS,
    TIERS,
    TOKEN_FIELDS,
    UTC_US,
)

EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
CLOCK_SKEW: Final = timedelta(days=1)  # producers' clocks run ahead; more than this is an error
_ISO_FORMATS: Final = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d",
)
_STATUS: Final = {
    "ok": "ok",
    "success": "ok",
    "succeeded": "ok",
    "unset": "ok",
    "status_code_ok": "ok",
    "status_code_unset": "ok",
    "error": "error",
    "failed": "error",
    "failure": "error",
    "fail": "error",
    "status_code_error": "error",
}
_ENUMS: Final = {"agent_tier": TIERS, "outcome": OUTCOMES, "feedback_kind": FEEDBACK_KINDS}
_NON_NEGATIVE: Final = ("duration_ms", "cost_usd", "attempt")
# Largest believable value of one event; above it a number is a producer bug, and finite but
# absurd sums (1e17 USD) would break every total built on the table.
MAX_USD: Final = 1e9
MAX_TOKENS: Final = 10**10
MAX_DURATION_MS: Final = 366 * 24 * 3600 * 1000.0  # a year
_UPPER_BOUNDS: Final = {
    "cost_usd": (MAX_USD, "USD"),
    "value_usd": (MAX_USD, "USD"),
    "duration_ms": (MAX_DURATION_MS, "ms (a year)"),
    **dict.fromkeys(TOKEN_FIELDS, (MAX_TOKENS, "tokens")),
}


@dataclass(frozen=True)
class Validated:
    """Typed rows that passed (``_index`` + canonical fields) and the ones that did not."""

    rows: pl.DataFrame
    failures: pl.DataFrame  # _index, reason, detail


def _epoch(text: pl.Expr) -> pl.Expr:
    """Epoch seconds / ms / µs / ns, told apart by magnitude."""
    number = text.cast(pl.Float64, strict=False)
    size = number.abs()
    epoch_us = (
        pl.when(size < 1e11)
        .then(number * 1e6)
        .when(size < 1e14)
        .then(number * 1e3)
        .when(size < 1e17)
        .then(number)
        .otherwise(number / 1e3)
    )
    return pl.when(epoch_us.abs() < 9e15).then(epoch_us).cast(pl.Int64, strict=False).cast(UTC_US)


def _iso(text: pl.Expr, format: str) -> pl.Expr:
    return text.str.to_datetime(format, strict=False, time_unit="us", time_zone="UTC")


def one_timestamp_format(columns: list[pl.Series]) -> list[bool]:
    """For each column of timestamps, whether all of them read in the first ISO format
    (``validate`` then reads them that way alone); records that agree on this can be
    validated together."""
    texts = [column.cast(pl.String) for column in columns]
    if not texts:
        return []
    first = _first_format(pl.concat(texts, rechunk=True))
    out, offset = [], 0
    for text in texts:
        out.append(first.slice(offset, text.len()).null_count() == text.null_count())
        offset += text.len()
    return out


def _first_format(text: pl.Series) -> pl.Series:
    return text.to_frame("ts").select(_iso(pl.col("ts"), _ISO_FORMATS[0])).to_series()


def _timestamps(text: pl.Series) -> pl.Series:
    """ISO 8601 text or an epoch number; null where neither reads."""
    first = _first_format(text)
    if first.null_count() == text.null_count():
        return first  # the common case: one format for every row
    frame = text.str.strip_chars().to_frame("ts")
    # The first that reads: an epoch number, else each ISO format in turn. The formats are
    # tried only on what is not a number (OTLP times are all numbers).
    epoch = frame.select(_epoch(pl.col("ts"))).to_series()
    left = epoch.is_null() & text.is_not_null()
    if not left.any():
        return epoch
    others = [_iso(pl.col("ts"), f) for f in _ISO_FORMATS]
    at = left.arg_true()
    read = frame[at].select(pl.coalesce(*others)).to_series()
    return epoch.scatter(at, read.cast(epoch.dtype))


def _number(column: pl.Expr, source: pl.DataType, dtype: pl.DataType) -> pl.Expr:
    if source == pl.String:
        column = column.str.strip_chars()
    value = column.cast(pl.Float64, strict=False)
    value = pl.when(value.is_finite()).then(value)
    if dtype.is_integer():
        whole = (value == value.round()) & (value.abs() < 2**53)
        return pl.when(whole).then(value).cast(dtype, strict=False)
    return value


def _typed(name: str, source: pl.DataType, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if dtype.is_numeric():
        return _number(column, source, dtype)
    if name in ("kind", "status", *_ENUMS):
        return column.str.strip_chars().str.to_lowercase()
    return column


def validate(records: pl.DataFrame, *, now: datetime | None = None) -> Validated:
    """Cast ``records`` (``schema.RAW_SCHEMA``) to the canonical types and check every rule."""
    latest = (now or datetime.now(UTC)) + CLOCK_SKEW
    frame = records.with_columns(
        *(
            _typed(name, records.schema[name], dtype).alias(f"{name}__t")
            for name, dtype in FIELD_TYPES.items()
            if name != "ts"
        ),
        _timestamps(records.get_column("ts").cast(pl.String)).alias("ts__t"),
    )
    rules: list[tuple[str, pl.Expr, pl.Expr]] = []
    for name in REQUIRED_FIELDS:
        blank = pl.col(name).is_null() | pl.col(name).str.contains(r"\S").not_()
        rules.append(("missing_field", blank, pl.lit(f"Required field '{name}' is missing.")))
    rules.append(
        (
            "invalid_timestamp",
            pl.col("ts__t").is_null(),
            pl.format("ts '{}' is not an ISO 8601 time or epoch number.", pl.col("ts")),
        )
    )
    rules.append(
        (
            "timestamp_out_of_range",
            (pl.col("ts__t") < EARLIEST) | (pl.col("ts__t") > latest),
            pl.format(
                "ts {} is outside 2000-01-01 .. now + 1 day.", pl.col("ts__t").dt.to_string()
            ),
        )
    )
    for name, dtype in FIELD_TYPES.items():
        if dtype.is_numeric():
            noun = "an integer" if dtype.is_integer() else "a number"
            rules.append(
                (
                    "wrong_type",
                    pl.col(name).is_not_null() & pl.col(f"{name}__t").is_null(),
                    pl.format(
                        f"{name} must be {noun}, got '{{}}'.",
                        pl.col(name).cast(pl.String).str.head(80),
                    ),
                )
            )
    for name in TOKEN_FIELDS:
        rules.append(
            (
                "negative_tokens",
                pl.col(f"{name}__t") < 0,
                pl.format(f"{name} is negative ({{}}).", pl.col(f"{name}__t")),
            )
        )
    for name in _NON_NEGATIVE:
        rules.append(
            (
                "negative_value",
                pl.col(f"{name}__t") < 0,
                pl.format(f"{name} is negative ({{}}).", pl.col(f"{name}__t")),
            )
        )
    for name, (bound, unit) in _UPPER_BOUNDS.items():
        rules.append(
            (
                "value_out_of_range",
                pl.col(f"{name}__t") > bound,
                pl.format(
                    f"{name} {{}} is above the limit of {bound:,.0f} {unit} for one event.",
                    pl.col(f"{name}__t"),
                ),
            )
        )
    rules.append(
        (
            "confidence_out_of_range",
            (pl.col("confidence__t") < 0) | (pl.col("confidence__t") > 1),
            pl.format("confidence {} is outside 0..1.", pl.col("confidence__t")),
        )
    )
    status = pl.col("status__t")
    rules.append(
        (
            "invalid_value",
            status.is_not_null() & ~status.is_in(list(_STATUS)),
            pl.format("status '{}' is not ok or error.", pl.col("status")),
        )
    )
    for name, allowed in _ENUMS.items():
        typed = pl.col(f"{name}__t")
        choices = ", ".join(sorted(allowed))
        rules.append(
            (
                "invalid_value",
                typed.is_not_null() & ~typed.is_in(sorted(allowed)),
                pl.format(f"{name} '{{}}' is not one of {choices}.", pl.col(name)),
            )
        )

    # One cheap pass finds the broken rows; only those get a reason and a detail.
    frame = frame.with_columns(
        _broken=pl.any_horizontal(broken.fill_null(False) for _, broken, _ in rules)
    )
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    detail: pl.Expr = pl.lit(None, dtype=pl.String)
    for code, broken, why in reversed(rules):
        reason = pl.when(broken.fill_null(False)).then(pl.lit(code)).otherwise(reason)
        detail = pl.when(broken.fill_null(False)).then(why).otherwise(detail)
    failures = frame.filter("_broken").select("_index", reason=reason, detail=detail)
    rows = _finish(frame.filter(pl.col("_broken").not_()))
    return Validated(rows=rows, failures=failures)


def _finish(passed: pl.DataFrame) -> pl.DataFrame:
    """Typed columns under their own names, with defaults filled in."""
    rows = passed.select(
        "_index",
        *(pl.col(f"{name}__t").alias(name) for name in FIELD_TYPES),
        _raw_kind=pl.col("kind"),
    )
    kind = pl.col("kind")
    known = kind.is_in(sorted(KINDS))
    status = pl.col("status").replace_strict(_STATUS, default=None, return_dtype=pl.String)
    unknown = rows.select(known.not_().arg_true()).to_series().to_list()
    rows = rows.with_columns(
        kind=pl.when(known).then(kind).otherwise(pl.lit("other")),
        status=pl.coalesce(
            status,
            pl.when(pl.col("error_type").is_not_null()).then(pl.lit("error")),
            pl.lit("ok"),
        ),
        attempt=pl.col("attempt").fill_null(0),
    )
    if unknown:
        # Keep a kind we do not know as an attribute: stored as "other", lost nowhere.
        kinds = rows.get_column("_raw_kind").gather(unknown).to_list()
        rows = merge_into_attributes(rows, unknown, [{"kind": k} for k in kinds])
    return normalise_tokens(rows.select("_index", *FIELD_TYPES))


# Usage keys of provider APIs, sent as they are (they land in ``attributes``): Anthropic's
# input_tokens leaves out the two cache counts, Gemini's candidates_token_count the thoughts.
_NATIVE_KEYS: Final = (
    r'"(?:cache_read_input_tokens|cache_creation_input_tokens|thoughts_token_count)"'
)
_NATIVE_USAGE: Final = ("$.{}", "$.usage.{}", "$.usage_metadata.{}")
NORMALISED_KEY: Final = "agentops.tokens.normalised"


def normalise_tokens(rows: pl.DataFrame) -> pl.DataFrame:
    """Token counts in the contract's convention (docs/telemetry.md, "Token convention").

    ``input_tokens`` includes cache reads and writes, ``output_tokens`` includes reasoning.
    Anthropic-native usage (``cache_read_input_tokens``, ``cache_creation_input_tokens`` next
    to an ``input_tokens`` that excludes them) and Gemini's ``thoughts_token_count`` (outside
    ``candidates_token_count``) are added in; any row whose cached tokens exceed its input, or
    reasoning its output, clearly left them out and gets them added. A changed row says what
    was added in ``attributes["agentops.tokens.normalised"]``.
    """
    rows = _native_usage(rows)
    inp, out, read, write, reasoning = (pl.col(c) for c in TOKEN_FIELDS)
    cached = read.fill_null(0) + write.fill_null(0)
    add_cache = cached > inp.fill_null(0)
    add_reasoning = reasoning.fill_null(0) > out.fill_null(0)
    flags = rows.select(add_cache.alias("cache"), add_reasoning.alias("reasoning"))
    if not (flags["cache"].any() or flags["reasoning"].any()):
        return rows
    rows = rows.with_columns(
        input_tokens=pl.when(add_cache).then(inp.fill_null(0) + cached).otherwise(inp),
        output_tokens=pl.when(add_reasoning).then(out.fill_null(0) + reasoning).otherwise(out),
    )
    return _mark(rows, flags["cache"], flags["reasoning"])


def _native_usage(rows: pl.DataFrame) -> pl.DataFrame:
    """Fold Anthropic and Gemini usage fields kept in ``attributes`` into the token columns."""
    hits = rows.get_column("attributes").str.contains(_NATIVE_KEYS).fill_null(False)
    if not hits.any():
        return rows
    at = hits.arg_true()
    part = rows[at]
    attributes = pl.col("attributes")

    def native(key: str) -> pl.Expr:
        found = [attributes.str.json_path_match(path.format(key)) for path in _NATIVE_USAGE]
        return pl.coalesce(found).cast(pl.Int64, strict=False)

    anthropic = pl.col("provider").str.strip_chars().str.to_lowercase() == "anthropic"
    read, write, thoughts = (
        native("cache_read_input_tokens"),
        native("cache_creation_input_tokens"),
        native("thoughts_token_count"),
    )
    is_native = anthropic.fill_null(False) & (read.is_not_null() | write.is_not_null())
    input_native = pl.coalesce(pl.col("input_tokens"), native("input_tokens"))
    output_native = pl.coalesce(
        pl.col("output_tokens"), native("output_tokens"), native("candidates_token_count")
    )
    part = part.with_columns(
        _cache=is_native,
        _thoughts=thoughts.is_not_null() & pl.col("reasoning_tokens").is_null(),
        _read=read,
        _write=write,
        _think=thoughts,
    ).with_columns(
        input_tokens=pl.when("_cache")
        .then(
            input_native.fill_null(0) + pl.col("_read").fill_null(0) + pl.col("_write").fill_null(0)
        )
        .otherwise("input_tokens"),
        cache_read_tokens=pl.when("_cache")
        .then(pl.coalesce("_read", "cache_read_tokens"))
        .otherwise("cache_read_tokens"),
        cache_write_tokens=pl.when("_cache")
        .then(pl.coalesce("_write", "cache_write_tokens"))
        .otherwise("cache_write_tokens"),
        output_tokens=pl.when("_thoughts")
        .then(output_native.fill_null(0) + pl.col("_think"))
        .when("_cache")
        .then(output_native)
        .otherwise("output_tokens"),
        reasoning_tokens=pl.coalesce("reasoning_tokens", "_think"),
    )
    cache, thought = part.get_column("_cache"), part.get_column("_thoughts")
    part = _mark(part.drop("_cache", "_thoughts", "_read", "_write", "_think"), cache, thought)
    return _scatter(rows, at, part)


def _scatter(rows: pl.DataFrame, at: pl.Series, part: pl.DataFrame) -> pl.DataFrame:
    """``rows`` with the rows at positions ``at`` replaced by ``part``."""
    names = [*TOKEN_FIELDS, "attributes"]
    return rows.with_columns(
        rows.get_column(name).scatter(at, part.get_column(name)) for name in names
    )


def _mark(rows: pl.DataFrame, cache: pl.Series, reasoning: pl.Series) -> pl.DataFrame:
    """Record in ``attributes`` which parts were added to the input and output counts."""
    changed = (cache | reasoning).arg_true().to_list()
    if not changed:
        return rows
    cache_list, reasoning_list = cache.to_list(), reasoning.to_list()
    notes = [
        {
            NORMALISED_KEY: [
                p
                for p, on in (
                    ("input+cache", cache_list[i]),
                    ("output+reasoning", reasoning_list[i]),
                )
                if on
            ]
        }
        for i in changed
    ]
    return merge_into_attributes(rows, changed, notes)
