"""How FinOps figures read in the CLI's tables and the Dagster UI's markdown: one style."""

from __future__ import annotations

from typing import Any


def usd(value: float | None) -> str:
    """``$1,234.50``; under ten cents, four decimals (cost per decision is often a fraction
    of a cent, which ``$0.00`` would hide)."""
    if value is None:
        return "-"
    return f"${value:,.4f}" if 0 < abs(value) < 0.1 else f"${value:,.2f}"


def dollars(value: float | None) -> str:
    """Whole dollars, for large amounts such as the value agents produced."""
    return "-" if value is None else f"${value:,.0f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
