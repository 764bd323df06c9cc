"""What every bench script prints and times with."""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


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


@contextmanager
def work_folder(prefix: str, keep: Path | None) -> Iterator[Path]:
    """A scratch folder for one bench run: ``keep`` if given (and kept), else a temporary one."""
    root = keep or Path(tempfile.mkdtemp(prefix=prefix))
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield root
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def shared_home() -> Path | None:
    """``$AGENTOPS_BENCH_HOME``: where the 10 M-event home of bench_finops.py is built once and
    read by the anomaly and drift benches too (``make bench`` sets it); ``None`` when unset."""
    value = os.environ.get("AGENTOPS_BENCH_HOME")
    return Path(value) if value else None


def holds(home: Path | None, table: str) -> bool:
    """Whether ``home`` has the Delta table ``table`` in its lake."""
    return home is not None and (home / "lake" / table / "_delta_log").is_dir()


def run_child(home: Path, code: str, *args: str) -> tuple[str, float]:
    """Run ``code`` in a child Python with ``AGENTOPS_HOME=home``.

    Returns its last line of output and the peak RSS in MB of the children run so far (a
    fresh process, so start-up state of this one does not count).
    """
    env = {**os.environ, "AGENTOPS_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, check=True, capture_output=True, text=True
    )
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out.stdout.strip().splitlines()[-1], peak_mb
