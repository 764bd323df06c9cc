"""The statistical tests of drift: one per kind of metric and scope, vectorised where possible.

- A rate (both scopes): a two-proportion z-test whose variance is widened by the baseline's
  quasi-binomial dispersion (days vary more than coin flips do); effect size Cohen's h.
- A continuous metric of a whole agent type: the two-sample Kolmogorov-Smirnov test of the
  day's cycles against the window's; effect size the Wasserstein distance between the two,
  each window day weighted equally, in units of the baseline's spread.
- A continuous metric of one agent (tens of cycles a day): a z-test of the day's mean whose
  variance includes the between-day variance of the baseline; effect size the difference of
  means in baseline spreads.

Each p-value is two-sided; :func:`benjamini_hochberg` adjusts them across one day's tests.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import stats


def rate_tests(rows: pl.DataFrame) -> pl.DataFrame:
    """Add ``test``, ``statistic``, ``p_value`` and ``effect_size`` to rate rows.

    ``rows`` carries ``baseline_value`` (the window's day-equal rate), ``baseline_n``,
    ``baseline_hits``, ``dispersion``, ``current_value``, ``current_n`` and ``current_hits``.
    """
    p_base = rows["baseline_value"].to_numpy().astype(float)
    p_cur = rows["current_value"].to_numpy().astype(float)
    n_base = rows["baseline_n"].to_numpy().astype(float)
    n_cur = rows["current_n"].to_numpy().astype(float)
    pooled = (rows["baseline_hits"].to_numpy() + rows["current_hits"].to_numpy()) / (n_base + n_cur)
    variance = rows["dispersion"].to_numpy() * pooled * (1 - pooled) * (1 / n_base + 1 / n_cur)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(variance > 0, (p_cur - p_base) / np.sqrt(variance), 0.0)
    h = 2 * np.arcsin(np.sqrt(np.clip(p_cur, 0, 1))) - 2 * np.arcsin(np.sqrt(np.clip(p_base, 0, 1)))
    return rows.with_columns(
        pl.lit("two_proportion_z").alias("test"),
        pl.Series("statistic", z),
        pl.Series("p_value", 2 * stats.norm.sf(np.abs(z))),
        pl.Series("effect_size", np.abs(h)),
    )


def mean_tests(rows: pl.DataFrame) -> pl.DataFrame:
    """Add the test columns to rows of a continuous metric of one agent (see module doc)."""
    diff = (rows["current_value"] - rows["baseline_value"]).to_numpy().astype(float)
    n_base = rows["baseline_n"].to_numpy().astype(float)
    n_cur = rows["current_n"].to_numpy().astype(float)
    variance = (
        rows["current_var"].to_numpy() / n_cur
        + rows["within_var"].to_numpy() / n_base
        + rows["between_var"].to_numpy()
    )
    spread = rows["baseline_spread"].to_numpy().astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(variance > 0, diff / np.sqrt(variance), 0.0)
        effect = np.where(spread > 0, np.abs(diff) / spread, np.where(diff != 0, np.inf, 0.0))
    return rows.with_columns(
        pl.lit("mean_z").alias("test"),
        pl.Series("statistic", z),
        pl.Series("p_value", 2 * stats.norm.sf(np.abs(z))),
        pl.Series("effect_size", effect),
    )


def distribution_test(
    current: np.ndarray, window: list[np.ndarray], spread: float
) -> tuple[float, float, float, float, float]:
    """KS test of ``current`` against the pooled ``window`` days, and the normalised distance.

    Returns ``(statistic, p_value, effect_size, window_p50, window_p99)``; the effect is the
    Wasserstein distance with every window day weighted equally, divided by ``spread``.
    """
    pooled = np.concatenate(window)
    result = stats.ks_2samp(current, pooled, method="asymp")
    weights = np.concatenate([np.full(len(day), 1.0 / len(day)) for day in window])
    distance = stats.wasserstein_distance(current, pooled, v_weights=weights)
    effect = distance / spread if spread > 0 else (float("inf") if distance > 0 else 0.0)
    p50, p99 = np.quantile(pooled, [0.5, 0.99])
    return float(result.statistic), float(result.pvalue), effect, float(p50), float(p99)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """p-values adjusted for the false discovery rate across one family of tests."""
    if len(p_values) == 0:
        return p_values
    return stats.false_discovery_control(np.clip(p_values, 0.0, 1.0), method="bh")
