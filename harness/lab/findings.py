"""The findings ledger: `FINDINGS.md` and `findings.csv` at the reports root, derived from the
experiment folders' statistics (plan.json and data/summary.csv), never from a model's text.

A finding is one comparison on one env: the settings in which an arm differs from its
experiment's baseline, against the baseline's. Every experiment that ran the same comparison
(either way round) adds evidence: the effect (the arm's mean best minus the baseline's, signed
so that positive is better for the raw objective's direction), its 95% CI and the seeds. The
claim is worded after the first experiment's arm ("on toy, c_puct=2 beats c_puct=1"); status:
  supported    every significant effect (the CI excludes 0) agrees with the claim
  refuted      every significant effect goes against it
  contested    significant effects both ways (both experiments linked)
  within noise no significant effect, but some with a CI (n >= 2 on both sides)
  no effect    every experiment found exactly the same score on both sides
  open         no CI yet (n = 1)
Only arms with valid data count as evidence: an arm (or baseline) whose actions were valid
less often than WEAK_VALID_FRAC (report_text.py) supports no claim either way.
Rows are ordered by env and claim, evidence by folder name; nothing depends on the clock, so
`harness reindex` rebuilds the files byte for byte.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.base.config import Config
from harness.env import env_class
from harness.lab.folders import experiment_folders, read_plan
from harness.lab.report_text import WEAK_VALID_FRAC
from harness.lab.stats import difference

FINDINGS_MD, FINDINGS_CSV = "FINDINGS.md", "findings.csv"
CSV_COLUMNS = ["env", "claim", "status", "effect", "ci95", "seeds", "experiments", "evidence"]
SETTLED = ("supported", "refuted", "contested")


@dataclass(frozen=True)
class Evidence:
    folder: str        # relative to the reports root
    effect: float      # arm minus baseline, positive = better (claim's orientation)
    ci95: float        # half-width; nan when a side has n < 2
    n_arm: int
    n_base: int

    @property
    def significant(self) -> bool:
        return not math.isnan(self.ci95) and abs(self.effect) > self.ci95

    def text(self) -> str:
        ci = "" if math.isnan(self.ci95) else f" ± {self.ci95:.4g}"
        return (f"[{self.folder}]({self.folder}/report.md): {self.effect:+.4g}{ci} "
                f"(seeds {self.n_arm}/{self.n_base})")


@dataclass(frozen=True)
class Finding:
    env: str
    claim: str
    status: str
    evidence: tuple[Evidence, ...]

    def row(self) -> dict:
        last = self.evidence[-1]
        return {"env": self.env, "claim": self.claim, "status": self.status,
                "effect": f"{last.effect:.6g}",
                "ci95": "" if math.isnan(last.ci95) else f"{last.ci95:.6g}",
                "seeds": f"{last.n_arm}/{last.n_base}",
                "experiments": ";".join(e.folder for e in self.evidence),
                "evidence": "; ".join(e.text() for e in self.evidence)}


def _sides(plan: dict, arm: dict) -> tuple[str, str]:
    """The settings in which `arm` differs from the baseline arm: (arm side, baseline side)."""
    defaults = Config().to_dict()
    base = plan["arms"][[a["name"] for a in plan["arms"]].index(plan["baseline"])]
    full_a, full_b = {**defaults, **arm["overrides"]}, {**defaults, **base["overrides"]}
    keys = [k for k in defaults if full_a[k] != full_b[k]]
    side = (lambda full: ", ".join(f"{k}={full[k]}" for k in keys)) if keys else None
    return (side(full_a), side(full_b)) if side else (arm["name"], base["name"])


def collect(root: Path) -> list[Finding]:
    """Every finding under `root`, from the experiment folders' plan.json and summary.csv."""

    root = Path(root)
    found: dict[tuple, list] = {}   # (env, sorted sides) -> [(arm side, base side, Evidence)]
    for folder in experiment_folders(root):
        summary_file = folder / "data" / "summary.csv"
        if not summary_file.exists():
            continue
        plan = read_plan(folder)
        rows = {r["arm"]: r for r in pd.read_csv(summary_file, dtype={"arm": str})
                .to_dict("records") if r["n"] > 0 and _valid_enough(r)}
        base = rows.get(plan["baseline"])
        if base is None:
            continue
        direction = env_class(plan["env"]).direction
        for arm in plan["arms"]:
            if arm["name"] == plan["baseline"] or arm["name"] not in rows:
                continue
            a, b = _sides(plan, arm)
            effect, ci = difference(rows[arm["name"]], base, direction)
            ev = Evidence(folder.relative_to(root).as_posix(), effect, ci,
                          int(rows[arm["name"]]["n"]), int(base["n"]))
            found.setdefault((plan["env"], tuple(sorted((a, b)))), []).append((a, b, ev))
    findings = [_finding(env, items) for (env, _), items in found.items()]
    return sorted(findings, key=lambda f: (f.env, f.claim))


def _valid_enough(row: dict) -> bool:
    """Whether an arm's actions were valid often enough for its score to mean something."""
    valid = row.get("valid_frac", math.nan)
    return not (isinstance(valid, float) and not math.isnan(valid) and valid < WEAK_VALID_FRAC)


def _finding(env: str, items: list) -> Finding:
    a0, b0, _ = items[0]
    evidence = tuple(ev if a == a0 else Evidence(ev.folder, 0.0 - ev.effect, ev.ci95, ev.n_base,
                                                 ev.n_arm) for a, _, ev in items)
    significant = [e for e in evidence if e.significant]
    pos, neg = any(e.effect > 0 for e in significant), any(e.effect < 0 for e in significant)
    status = ("contested" if pos and neg else "supported" if pos else "refuted" if neg else
              "no effect" if all(e.effect == 0 for e in evidence) else
              "within noise" if any(not math.isnan(e.ci95) for e in evidence) else "open")
    claim = f"on {env}, {a0} vs {b0}: no effect" if status == "no effect" else \
        f"on {env}, {a0} beats {b0}"
    return Finding(env, claim, status, evidence)


def render_markdown(findings: list[Finding]) -> str:
    lines = ["# Findings", "",
             "Derived from the experiment folders' statistics by `harness report` (rebuilt by "
             "`harness reindex`). Evidence: the arm's mean best minus the baseline's (positive "
             "= better for the raw objective) ± 95% CI, with seeds per side.", "",
             "| status | env | claim | evidence |", "| --- | --- | --- | --- |"]
    for f in findings:
        evidence = "; ".join(e.text() for e in f.evidence).replace("|", "/")
        lines.append(f"| {f.status} | {f.env} | {f.claim.replace('|', '/')} | {evidence} |")
    return "\n".join(lines) + "\n"


def render_csv(findings: list[Finding]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(f.row() for f in findings)
    return out.getvalue()


def write_findings(root: Path) -> Path:
    """FINDINGS.md and findings.csv at `root`, rebuilt from its experiment folders."""
    findings = collect(root)
    (Path(root) / FINDINGS_CSV).write_text(render_csv(findings))
    path = Path(root) / FINDINGS_MD
    path.write_text(render_markdown(findings))
    return path


def ledger_text(root: Path, env: str | None = None) -> str:
    """The ledger's lines for `env` (all envs when None), as a planner or reviewer reads them."""
    rows = [f for f in collect(root) if env is None or f.env == env]
    return "\n".join(f"- [{f.status}] {f.claim}: {'; '.join(e.text() for e in f.evidence)}"
                     for f in rows)


def settled_about(root: Path, env: str, keys: set[str]) -> list[Finding]:
    """Supported, refuted or contested findings on `env` whose claim names one of `keys`."""
    return [f for f in collect(root) if f.env == env and f.status in SETTLED
            and any(f"{k}=" in f.claim for k in keys)]
