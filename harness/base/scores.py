"""Scores by an env's direction ("min": lower is better, "max": higher is better), and how a
number is printed. The one home of both: every report, digest, reviewer and console line
asks here which of two scores is better and how to write one.
"""

from __future__ import annotations

import math

DIRECTIONS = ("min", "max")


def better(direction: str) -> str:
    """'lower' for a min env, 'higher' for a max one."""
    return "lower" if _checked(direction) == "min" else "higher"


def beats(a: float, b: float, direction: str) -> bool:
    """True when score `a` is strictly better than `b`."""
    return a < b if _checked(direction) == "min" else a > b


def gain(a: float, b: float, direction: str) -> float:
    """How much better `a` is than `b` (negative when worse), in the score's units."""
    return (a - b if _checked(direction) == "max" else b - a) + 0.0  # + 0.0: never "-0"


def default_reward(raw_score: float, direction: str) -> float:
    """The reward of a raw score unless an env says otherwise: the score itself for a max
    env, 1 / score for a min one (higher is better either way)."""
    return raw_score if _checked(direction) == "max" else 1.0 / raw_score


def improved(value: float, by: float, direction: str) -> float:
    """`value` made better by `by` (lower for a min env)."""
    return value - by if _checked(direction) == "min" else value + by


def best_of(values, direction: str):
    """The best of `values` (a pandas Series skips NaN; None when there are none)."""
    if hasattr(values, "idxmin"):
        return values.min() if _checked(direction) == "min" else values.max()
    values = list(values)
    if not values:
        return None
    return min(values) if _checked(direction) == "min" else max(values)


def best_index(series, direction: str):
    """The index label of the best value of a pandas Series."""
    return series.idxmin() if _checked(direction) == "min" else series.idxmax()


def sort_key(direction: str):
    """A key that sorts scores best first."""
    return (lambda x: x) if _checked(direction) == "min" else (lambda x: -x)


def running_best(values, direction: str):
    """The best so far at each position of a numpy array."""
    import numpy as np

    accumulate = np.minimum.accumulate if _checked(direction) == "min" else np.maximum.accumulate
    return accumulate(values)


def _checked(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be min or max, got {direction!r}")
    return direction


# --- numbers as text ---
def fmt(value, digits: int = 6) -> str:
    """A number in a table or a line: `digits` significant digits, '-' for None or NaN;
    anything else as str()."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def format_score(value: float | None) -> str:
    """A raw score as prompts show it: 6 significant digits, large totals as integers."""
    if value is None:
        return "none"
    return f"{value:.0f}" if abs(value) >= 1e5 else f"{value:.6g}"
