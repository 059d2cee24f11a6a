"""How two arms compare: the one home of the intervals every report, ledger, reviewer and
digest uses. An arm's summary row has `mean_best` (mean over seeds of each run's best raw
score), `ci95` (the half-width of its 95% Student-t interval) and `n` (seeds).
"""

from __future__ import annotations

import math

from harness.base.scores import gain

T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000}


def t95(df: int) -> float:
    """Two-sided 95% Student-t quantile (the table's next smaller df; 1.96 beyond 60)."""
    return T95[max(k for k in T95 if k <= df)] if df <= 60 else 1.96


def ci95(values) -> float:
    """Half-width of the 95% interval of the mean of `values` (a pandas Series); nan below 2."""
    n = len(values)
    return t95(n - 1) * values.std(ddof=1) / math.sqrt(n) if n >= 2 else math.nan


def separated(a: dict, b: dict) -> bool:
    """The 95% CIs of two arms' mean best do not overlap (needs n >= 2 on both)."""
    if min(a["n"], b["n"]) < 2 or math.isnan(a["ci95"]) or math.isnan(b["ci95"]):
        return False
    return (a["mean_best"] - a["ci95"] > b["mean_best"] + b["ci95"]
            or b["mean_best"] - b["ci95"] > a["mean_best"] + a["ci95"])


def difference(row: dict, base: dict, direction: str) -> tuple[float, float]:
    """(effect, half-width): how much better `row`'s mean best is than `base`'s, and the 95%
    half-width of that difference (Welch, the smaller n's df; nan when a side has n < 2)."""
    effect = gain(row["mean_best"], base["mean_best"], direction)
    if min(row["n"], base["n"]) < 2:
        return effect, math.nan
    se2 = sum((r["ci95"] / t95(int(r["n"]) - 1)) ** 2 for r in (row, base))
    return effect, t95(int(min(row["n"], base["n"])) - 1) * math.sqrt(se2)
