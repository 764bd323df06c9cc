"""Redaction of secrets and personal data before text reaches any table.

Each pattern is written in the syntax shared by Python's ``re`` and Rust's ``regex`` (no
look-around), so one combined pattern screens whole columns in polars and only the cells
that match are rewritten in Python. Card numbers are confirmed with the Luhn checksum.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import polars as pl

# Order matters: more specific keys first (an Anthropic key also starts with "sk-").
_PATTERNS: Final[tuple[tuple[str, str], ...]] = (
    ("anthropic_key", r"sk-ant-[A-Za-z0-9_\-]{20,}"),
    ("openai_key", r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
    ("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    ("bearer_token", r"(?i:bearer)\s+[A-Za-z0-9\-._~+/]{16,}=*"),
    ("email", r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"),
    # Issuer prefixes of Visa, Mastercard, Amex, Discover, JCB and Diners keep timestamps and
    # ids (which start with 1) out; the Luhn checksum confirms the rest.
    (
        "card_number",
        r"\b(?:4\d{3}|5[1-5]\d{2}|2[2-7]\d{2}|3[47]\d{2}|3(?:0[0-5]|[568]\d)\d|6(?:011|5\d{2}|4[4-9]\d))"
        r"(?:[ \-]?\d){9,15}\b",
    ),
)

DETECT: Final = "|".join(f"(?:{pattern})" for _, pattern in _PATTERNS)
_COMPILED: Final = tuple((name, re.compile(pattern)) for name, pattern in _PATTERNS)


def _luhn_ok(candidate: str) -> bool:
    digits = [int(c) for c in candidate if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _marker(name: str):
    marker = f"[REDACTED:{name}]"
    if name == "card_number":
        return lambda match: marker if _luhn_ok(match.group(0)) else match.group(0)
    if name == "bearer_token":
        return lambda match: f"Bearer {marker}"
    return lambda match: marker


_REPLACERS: Final = tuple((pattern, _marker(name)) for name, pattern in _COMPILED)


def redact_text(text: str) -> str:
    """Replace secrets and personal data in ``text`` with markers like ``[REDACTED:email]``."""
    for pattern, replace in _REPLACERS:
        text = pattern.sub(replace, text)
    return text


def redact_frame(frame: pl.DataFrame, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """Redact every string column (or ``columns``) of ``frame``.

    One vectorised pass finds the cells that may hold a secret; only those are rewritten.
    """
    names = [c for c in columns or frame.columns if frame.schema[c] == pl.String]
    if not names or frame.is_empty():
        return frame
    hits = frame.select(pl.col(names).str.contains(DETECT).fill_null(False))
    updates = []
    for name in names:
        mask = hits.get_column(name)
        if not mask.any():
            continue
        column = frame.get_column(name)
        rows = mask.arg_true()
        fixed = pl.Series([redact_text(v) for v in column.gather(rows)], dtype=pl.String)
        updates.append(column.scatter(rows, fixed))
    return frame.with_columns(updates) if updates else frame
