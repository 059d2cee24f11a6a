"""Figures of an experiment, drawn from its tidy CSVs (matplotlib, Agg backend, PNG files).

- best_so_far.png: the best raw score after each step per arm (mean over seeds; thin lines per
  seed), starting from the start state; steps are numbered from 0 everywhere, as in the CSVs;
- reward_distribution.png: the rewards of each step's rollouts per arm, as in the paper's
  Figure 1 (invalid actions count as reward 0);
- arm_comparison.png: each arm's best raw score, mean (a point) and 95% CI over seeds, seeds
  as dots;
- valid_fraction.png: the fraction of valid actions per step per arm (diagnostics).
A sweep's best_across_experiments.png and a tracks folder's tracks_best.png come from here too.
Each function returns the file it wrote, or None when there is nothing to draw yet.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FixedLocator, MaxNLocator  # noqa: E402

from harness.base.scores import running_best  # noqa: E402

STYLES = ("-", "--", ":", "-.")
START_X = -1  # the start state sits left of step 0: steps are numbered from 0, as in the CSVs
MARKERS = ("o", "s", "^", "v", "D")


def _ylabel(objective: str, direction: str) -> str:
    return f"{objective} ({'lower' if direction == 'min' else 'higher'} is better)"


def _save(fig, path: Path) -> Path:
    for ax in fig.axes:
        if ax.get_xlabel() == "step" and \
                not isinstance(ax.xaxis.get_major_locator(), FixedLocator):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def best_so_far(steps: pd.DataFrame, arms: list[str], start: float | None, objective: str,
                direction: str, path: Path) -> Path | None:
    if steps.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, arm in enumerate(arms):
        rows = steps[steps["arm"] == arm]
        if rows.empty:
            continue
        color = f"C{i % 10}"
        for _, run in rows.groupby("seed"):
            x = run["step"].to_numpy()
            y = run["score/best"].to_numpy()
            if start is not None:
                x, y = np.r_[START_X, x], np.r_[start, y]
            if rows["seed"].nunique() > 1:
                ax.plot(x, y, color=color, alpha=0.25, lw=0.8)
        mean = rows.groupby("step")["score/best"].mean()
        x, y = mean.index.to_numpy(), mean.to_numpy()
        if start is not None:
            x, y = np.r_[START_X, x], np.r_[start, y]
        # tied arms draw the same line: distinct dashes and markers keep each one visible
        ax.plot(x, y, color=color, ls=STYLES[i % len(STYLES)], marker=MARKERS[i % len(MARKERS)],
                ms=7 - 1.5 * (i % 3), mfc="none", lw=2.2 - 0.5 * (i % 3), label=arm)
    if start is not None:
        ax.axhline(start, color="grey", ls=":", lw=1, label="start state")
    ax.set_xlabel("step")
    ax.set_ylabel(_ylabel(objective, direction))
    ax.set_title("Best so far (after each step)")
    if start is not None:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ticks = [t for t in ax.get_xticks() if START_X < t <= steps["step"].max()]
        ax.set_xticks([START_X, *ticks], ["start", *(str(int(t)) for t in ticks)])
    ax.legend(fontsize=8)
    return _save(fig, path)


def reward_distribution(rollouts: pd.DataFrame, arms: list[str], path: Path) -> Path | None:
    present = [a for a in arms if (rollouts["arm"] == a).any()] if not rollouts.empty else []
    if not present:
        return None
    cols = min(len(present), 3)
    rows_n = -(-len(present) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.2 * rows_n), squeeze=False,
                             sharey=True)
    for ax in axes.flat[len(present):]:
        ax.axis("off")
    for ax, arm in zip(axes.flat, present, strict=False):
        data = rollouts[rollouts["arm"] == arm]
        steps = sorted(data["step"].unique())
        groups = [data.loc[data["step"] == s, "reward"].to_numpy() for s in steps]
        steps = [int(s) for s in steps]  # numbered as in the CSVs, from 0
        ax.boxplot(groups, positions=steps, widths=0.6, showfliers=False, manage_ticks=False)
        ax.set_xticks(steps, [str(s) for s in steps])
        ax.set_xlim(min(steps) - 0.6, max(steps) + 0.6)
        jitter = np.random.default_rng(0)
        for s, values in zip(steps, groups, strict=True):
            ax.scatter(s + jitter.uniform(-0.2, 0.2, len(values)), values, s=6, alpha=0.4,
                       color="C0")
        ax.set_title(arm, fontsize=9)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("reward (invalid = 0)")
    fig.suptitle("Reward distribution per step")
    return _save(fig, path)


def arm_comparison(summary: pd.DataFrame, runs: pd.DataFrame, baseline: str, objective: str,
                   direction: str, path: Path) -> Path | None:
    shown = summary[summary["n"] > 0]
    if shown.empty:
        return None
    fig, ax = plt.subplots(figsize=(max(4.5, 1.2 * len(shown) + 2), 4))
    x = np.arange(len(shown))
    errors = shown["ci95"].fillna(0).to_numpy()
    colors = ["C1" if a == baseline else "C0" for a in shown["arm"]]
    # points with CIs, not bars: a bar's length reads as the value, which a y-axis that does
    # not start at zero would exaggerate (17 vs 18 looked huge, issue 18)
    ax.errorbar(x, shown["mean_best"], yerr=errors, fmt="none", ecolor="grey", capsize=5)
    ax.scatter(x, shown["mean_best"], color=colors, s=60, marker="D", zorder=2,
               label="mean over seeds")
    for i, arm in enumerate(shown["arm"]):
        values = runs.loc[(runs["arm"] == arm) & runs["best_raw"].notna(), "best_raw"]
        ax.scatter(np.full(len(values), i), values, color="black", s=12, zorder=3)
    low, high = shown["mean_best"].min() - errors.max(), shown["mean_best"].max() + errors.max()
    pad = 0.1 * (high - low) or 0.05 * abs(high) or 1.0
    ax.set_ylim(low - pad, high + pad)
    ax.set_xticks(x, shown["arm"], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(_ylabel(objective, direction))
    ax.set_title("Best score per arm\n(diamond: mean, bars: 95% CI over seeds, dots: seeds)",
                 fontsize=10)
    return _save(fig, path)


def valid_fraction(steps: pd.DataFrame, arms: list[str], path: Path) -> Path | None:
    if steps.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for i, arm in enumerate(arms):
        rows = steps[steps["arm"] == arm]
        if not rows.empty:
            mean = rows.groupby("step")["valid_frac"].mean()
            ax.plot(mean.index, mean.to_numpy(), marker="o", ms=3, color=f"C{i % 10}",
                    label=arm)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("valid fraction")
    ax.set_title("Valid actions per step")
    ax.legend(fontsize=8)
    return _save(fig, path)


def best_across_experiments(points: list[tuple[int, float | None]], objective: str,
                            direction: str, path: Path) -> Path | None:
    """A sweep's headline per experiment (its best arm's mean best score; dots) and the best
    so far (a step line); experiments without a score are left out."""
    scored = [(i, v) for i, v in points if v is not None and not np.isnan(v)]
    if not scored:
        return None
    x, y = np.array([i for i, _ in scored]), np.array([v for _, v in scored])
    best = running_best(y, direction)
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.step(x, best, where="post", color="C1", label="best so far")
    ax.scatter(x, y, color="C0", zorder=3, label="experiment's best arm (mean over seeds)")
    ax.set_xticks([i for i, _ in points])
    ax.set_xlabel("experiment")
    ax.set_ylabel(_ylabel(objective, direction))
    ax.set_title("Best score across the sweep's experiments")
    ax.legend(fontsize=8)
    return _save(fig, path)


def best_across_tracks(tracks: list[tuple[str, str, str, list[tuple[int, float | None]]]],
                       path: Path) -> Path | None:
    """Parallel tracks (tracks.py): each track's best score so far per experiment (a step
    line; dots: its experiments' headlines), one panel per objective. `tracks`: (label,
    objective, direction, [(experiment index, headline or None)]) each."""
    panels: dict[tuple[str, str], list] = {}
    for i, (label, objective, direction, points) in enumerate(tracks):
        scored = [(x, v) for x, v in points if v is not None and not np.isnan(v)]
        if scored:
            panels.setdefault((objective, direction), []).append((i, label, scored))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 3.8), squeeze=False)
    for ax, ((objective, direction), lines) in zip(axes[0], panels.items(), strict=True):
        for i, label, scored in lines:
            x, y = np.array([p[0] for p in scored]), np.array([p[1] for p in scored])
            ax.step(x, running_best(y, direction), where="post", color=f"C{i % 10}",
                    label=label)
            ax.scatter(x, y, color=f"C{i % 10}", s=14, alpha=0.6, zorder=3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("experiment")
        ax.set_ylabel(_ylabel(objective, direction))
        ax.legend(fontsize=8)
    fig.suptitle("Best score so far per track (dots: each experiment's best arm)")
    return _save(fig, path)


