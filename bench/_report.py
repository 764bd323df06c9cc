"""What every bench script prints and times with."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def row(name: str, figure: str, target: str, ok: bool | None, *, width: int = 46) -> None:
    """One figure beside its target, with PASS or FAIL when the target is a bound."""
    verdict = "" if ok is None else ("PASS" if ok else "FAIL")
    print(f"  {name:<{width}} {figure:>20}   {target:<22} {verdict}", flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def timed(call: Callable[[], object]) -> float:
    """Seconds one call takes."""
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]
