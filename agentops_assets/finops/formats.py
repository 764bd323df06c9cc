"""How FinOps figures read in the CLI's tables and the Dagster UI's metadata: one style.

Any number prints, however absurd: from :data:`EXACT_BELOW` on (ten trillion), a figure prints
with four significant digits (``$1.235e+17``). A float holds no cents there, and an amount that
large is a data error to show, not to read to the cent.
"""

from __future__ import annotations

from typing import Any, Final

EXACT_BELOW: Final = 1e13


def _exact(value: float) -> bool:
    return abs(value) < EXACT_BELOW  # False for inf and NaN as well


def usd(value: float | None) -> str:
    """``$1,234.50``; under ten cents, four decimals (cost per decision is often a fraction
    of a cent, which ``$0.00`` would hide)."""
    if value is None:
        return "-"
    if not _exact(value):
        return f"${value:.4g}"
    return f"${value:,.4f}" if 0 < abs(value) < 0.1 else f"${value:,.2f}"


def dollars(value: float | None) -> str:
    """Whole dollars, for large amounts such as the value agents produced."""
    if value is None:
        return "-"
    return f"${value:,.0f}" if _exact(value) else f"${value:.4g}"


def pct(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if _exact(value * 100) else f"{value * 100:.4g}%"


def times(value: float | None) -> str:
    """A ratio such as ROI: ``4,095x``."""
    if value is None:
        return "-"
    return f"{value:,.0f}x" if _exact(value) else f"{value:.4g}x"


def number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if _exact(value) else f"{value:.4g}"
    return f"{value:,}"
